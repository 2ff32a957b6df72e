import Foundation
import ImageIO

#if canImport(Glibc)
    import Glibc
#endif

/// The output file (written under a temporary name and renamed into place when complete) or stdout.
final class ExportDestination {
    let descriptor: Int32
    let name: String
    private let finalPath: String?
    private let temporaryPath: String?

    init(path: String?) throws {
        guard let path else {
            guard isatty(1) == 0 else {
                throw CommandFailure("refusing to write a binary image to a terminal; use --to FILE or redirect standard output")
            }
            descriptor = 1
            name = "standard output"
            finalPath = nil
            temporaryPath = nil
            return
        }
        let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
        let directory = PathResolver.directory(of: absolute)
        let base = String(absolute.split(separator: "/").last ?? "export")
        let temporary = "\(directory)/.\(base).extentdb-\(getpid()).partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CommandFailure("\(temporary): cannot create: \(String(cString: strerror(errno)))") }
        descriptor = fd
        name = path
        finalPath = absolute
        temporaryPath = temporary
    }

    func commit() throws {
        guard let finalPath, let temporaryPath else { return }
        guard close(descriptor) == 0 else { throw CommandFailure("\(name): close failed: \(String(cString: strerror(errno)))") }
        // Remove an earlier output first: renaming over an existing file makes ext4 flush the whole new
        // file synchronously (auto_da_alloc), which is what --fsync is for. The old file still stays until
        // the export has completed.
        if unlink(finalPath) != 0 && errno != ENOENT {
            throw CommandFailure("\(name): cannot replace the existing file: \(String(cString: strerror(errno)))")
        }
        guard rename(temporaryPath, finalPath) == 0 else {
            throw CommandFailure("\(name): cannot rename \(temporaryPath) into place: \(String(cString: strerror(errno)))")
        }
    }

    func abandon() {
        guard let temporaryPath else { return }
        close(descriptor)
        unlink(temporaryPath)
    }
}
