import Foundation
import ImageFormats

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// qemu-made fixtures from scripts/make-fixtures.sh, built once per test process.
enum Fixtures {
    static let built: Result<URL, any Error> = Result {
        removeStaleFixtureDirectories()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("extentdb-fixtures-\(getpid())")
        try run("bash", [packageRoot.appendingPathComponent("scripts/make-fixtures.sh").path, directory.path])
        return directory
    }

    static func directory() throws -> URL { try built.get() }

    /// Fixture directories of earlier test processes that are gone (there is no suite-wide teardown).
    static func removeStaleFixtureDirectories() {
        let temporary = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where name.hasPrefix("extentdb-fixtures-")
        {
            guard let pid = Int32(name.dropFirst("extentdb-fixtures-".count)), pid != getpid() else { continue }
            if kill(pid, 0) != 0 { try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name)) }
        }
    }

    /// (name, top image file) pairs from the manifest.
    static func manifest() throws -> [(name: String, file: String)] {
        let text = try String(contentsOf: try directory().appendingPathComponent("manifest.tsv"), encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let parts = line.split(separator: "\t")
            return (String(parts[0]), String(parts[1]))
        }
    }
}

/// Overwrites bytes of a file in place.
func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    handle.write(Data(bytes))
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

/// Decodes `qemu-img map --output=json` into extents.
func qemuExtents(_ json: Data) throws -> [Extent] {
    struct Entry: Decodable {
        var start: UInt64, length: UInt64, depth: UInt32, present: Bool, zero: Bool, data: Bool
        var compressed: Bool?
        var offset: UInt64?
    }
    return try JSONDecoder().decode([Entry].self, from: json).map {
        Extent(
            start: $0.start, length: $0.length, depth: $0.depth, present: $0.present, zero: $0.zero, data: $0.data,
            compressed: $0.compressed ?? false, offset: $0.offset)
    }
}
