import Foundation
import ImageFormats
import Scanner

#if canImport(Glibc)
    import Glibc
#endif

/// Files in a private directory under /dev/shm that a harness rewrites for every input, so the scanner
/// reads them through its real path (open, fstat, pread, FIEMAP) without touching a disk.
///
/// Only the files a harness writes live in the directory, so a backing name or parent locator in a fuzzed
/// image can resolve to one of them and to nothing else. scripts/fuzz.sh names the directory in
/// `EXTENTDB_FUZZ_SCRATCH` and removes it afterwards.
public final class ScratchImages: @unchecked Sendable {
    public let directory: String

    public init() {
        directory = ProcessInfo.processInfo.environment["EXTENTDB_FUZZ_SCRATCH"] ?? "/dev/shm/extentdb-fuzz-\(getpid())"
        mkdir(directory, 0o700)
    }

    /// Replaces the file `name` in the directory with `bytes` and returns its path.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer, as name: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fatalError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        guard let base = bytes.baseAddress else { return path }
        var done = 0
        while done < bytes.count {
            let count = Glibc.write(fd, base + done, bytes.count - done)
            guard count > 0 else { fatalError("cannot write \(path): errno \(errno)") }
            done += count
        }
        return path
    }

    public func remove(_ name: String) {
        unlink(directory + "/" + name)
    }

    /// Scans `path` as `extentdb scan` would. A thrown error is a correct outcome for hostile bytes; a
    /// successful scan must keep the map's invariant: sorted extents tiling `[0, virtual size)` exactly.
    public func scan(_ path: String) {
        guard let scan = try? ChainScanner.scan(path: path) else { return }
        var expected: UInt64 = 0
        for extent in scan.extents {
            precondition(extent.start == expected && extent.length > 0, "composed map does not tile the disk at \(expected)")
            expected = extent.start + extent.length
        }
        precondition(expected == scan.top.map.virtualSize, "composed map ends at \(expected), not at the virtual size")
    }
}

/// Splits a fuzz input into two files: a big-endian 24-bit count of bytes for the first file, then its
/// bytes, then the second file (the rest, nil when empty). An input too short for the prefix is one file.
public func splitTwoFiles(_ input: UnsafeRawBufferPointer) -> (first: UnsafeRawBufferPointer, second: UnsafeRawBufferPointer?) {
    guard input.count >= 3 else { return (input, nil) }
    let declared = Int(input[0]) << 16 | Int(input[1]) << 8 | Int(input[2])
    let body = UnsafeRawBufferPointer(rebasing: input[3...])
    let firstCount = min(declared, body.count)
    let second = UnsafeRawBufferPointer(rebasing: body[firstCount...])
    return (UnsafeRawBufferPointer(rebasing: body[..<firstCount]), second.isEmpty ? nil : second)
}
