import Foundation

/// The one way tests make a scratch directory: a fresh, uniquely named directory under the system's temporary
/// directory, optionally populated by a bash setup script run in it, and removed by `cleanup()`. Workspaces
/// with particular contents (the CLI tests' `makeWorkspace`, `makeServeWorkspace`, ...) are this with their
/// setup script.
struct TemporaryDirectory {
    let url: URL

    /// Creates `<temporary directory>/<prefix>-<UUID>`.
    init(prefix: String = "extentdb-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Creates the directory and runs `setup` in it with bash; when the script fails, removes the directory
    /// and throws what the script wrote on standard error.
    init(prefix: String = "extentdb-test", setup: String) throws {
        try self.init(prefix: prefix)
        do {
            try shell(setup, in: url)
        } catch {
            cleanup()
            throw error
        }
    }

    /// The path of `name` inside the directory.
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func cleanup() { try? FileManager.default.removeItem(at: url) }
}
