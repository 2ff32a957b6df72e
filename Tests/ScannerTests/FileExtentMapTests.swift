import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import SystemPackage
import Testing

@testable import Scanner
@testable import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Drops a file's clean pages from the page cache (POSIX_FADV_DONTNEED needs no privileges, unlike
/// /proc/sys/vm/drop_caches; the pages must be written back first, hence the fsync).
func dropCachedPages(_ path: String) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw CommandFailed(command: "open \(path)", status: errno, stderr: "") }
    defer { close(fd) }
    fsync(fd)
    _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
}

/// Reads a whole file, so its pages are in the page cache.
func warmCache(_ path: String) throws {
    _ = try Data(contentsOf: URL(fileURLWithPath: path))
}

/// The data segments of `path` by one method, or the one the file system allows.
func segments(_ path: String, method: FileExtentMap.Method? = nil) throws -> (segments: [Range<UInt64>], method: FileExtentMap.Method) {
    let source = try FileBlockSource(path: path)
    defer { source.close() }
    return try FileExtentMap.dataSegments(descriptor: source.descriptor, size: source.size, path: path, method: method)
}

/// The composed map of a lone raw file, as a scan records it.
func scannedMap(_ path: String) throws -> [Extent] {
    try ChainScanner.scan(path: path).extents
}

@Suite(.serialized) struct FileExtentMapTests {
    /// 1 MiB with data at 64 KiB, fallocated (unwritten) ranges at 256 KiB and at the end, holes elsewhere.
    func makeFallocatedFile(in scratch: TemporaryDirectory) throws -> String {
        try run(
            "bash",
            [
                "-c",
                """
                set -e
                truncate -s 1M r.raw
                qemu-io -f raw -c 'write -q -P 7 64k 4k' r.raw >/dev/null
                fallocate -n -o 256k -l 128k r.raw
                fallocate -n -o 1040384 -l 8192 r.raw
                """,
            ], in: scratch.url)
        return scratch.path("r.raw")
    }

    @Test("a fallocated range maps as zero cold and warm: the answer does not depend on the page cache")
    func coldAndWarm() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        let path = try makeFallocatedFile(in: scratch)
        let expected: [Extent] = [
            Extent(start: 0, length: 65536, depth: 0, present: true, zero: true, data: false, offset: 0),
            Extent(start: 65536, length: 4096, depth: 0, present: true, zero: false, data: true, offset: 65536),
            Extent(start: 69632, length: 978_944, depth: 0, present: true, zero: true, data: false, offset: 69632),
        ]
        try dropCachedPages(path)
        let cold = try scannedMap(path)
        try warmCache(path)
        let warm = try scannedMap(path)
        #expect(cold == warm)
        let method = try segments(path).method
        if method == .fiemap {
            #expect(cold == expected)
        }
        // The scan through the index says the same after a forced rescan of a warm file.
        let store = try IndexStore()
        let indexer = ImageIndexer(store: store)
        _ = try indexer.ensureIndexed(path: path, force: true)
        try warmCache(path)
        let rescanned = try indexer.ensureIndexed(path: path, force: true).indexed
        #expect(try store.extents(scanID: try #require(rescanned.scan.id)) == cold)
    }

    @Test("FIEMAP and the SEEK_DATA fallback agree on a cold file; the fallback is what a file system without FIEMAP gets")
    func fallbackAgreesCold() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        let path = try makeFallocatedFile(in: scratch)
        try dropCachedPages(path)
        let seek = try segments(path, method: .seek)
        #expect(seek.method == .seek)
        #expect(seek.segments == [65536..<69632])
        let chosen = try segments(path)
        #expect(chosen.segments == seek.segments, "method \(chosen.method)")

        // tmpfs has no FIEMAP: the fallback answers there (when this machine has /dev/shm).
        let shm = "/dev/shm/extentdb-\(UUID().uuidString).raw"
        guard FileManager.default.createFile(atPath: shm, contents: nil) else { return }
        defer { try? FileManager.default.removeItem(atPath: shm) }
        try run("bash", ["-c", "truncate -s 1M '\(shm)' && qemu-io -f raw -c 'write -q -P 7 64k 4k' '\(shm)' >/dev/null"], in: scratch.url)
        let tmpfs = try segments(shm)
        #expect(tmpfs.segments == [65536..<69632], "method \(tmpfs.method)")
        #expect(try scannedMap(shm).filter(\.data).map { $0.start..<$0.end } == [65536..<69632])
    }

    @Test("data written through the cache into a fallocated range is data before it is written back")
    func dirtyPagesInUnwrittenExtent() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        let path = scratch.path("d.raw")
        try run("bash", ["-c", "truncate -s 1M d.raw && fallocate -n -o 0 -l 512k d.raw"], in: scratch.url)
        let fd = open(path, O_WRONLY)
        #expect(fd >= 0)
        let bytes = [UInt8](repeating: 0x5A, count: 4096)
        #expect(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 131_072) } == 4096)
        close(fd)
        let found = try segments(path)
        #expect(found.segments == [131_072..<135_168], "method \(found.method)")
    }

    @Test("thousands of extents: FIEMAP continues past its batch and merges neighbours like SEEK_DATA")
    func manyExtents() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        let path = scratch.path("many.raw")
        let count = 3000
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        let block = [UInt8](repeating: 1, count: 4096)
        for index in 0..<count {
            // Every other 4 KiB block, plus a run of two adjacent blocks every 100 (two extents, one segment).
            _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(index) * 8192) }
            if index % 100 == 0 { _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(index) * 8192 + 4096) } }
        }
        _ = ftruncate(fd, off_t(count) * 8192 + 65536)
        fsync(fd)
        close(fd)
        let chosen = try segments(path)
        let seek = try segments(path, method: .seek)
        #expect(chosen.segments == seek.segments, "method \(chosen.method)")
        #expect(chosen.segments.count == count - count / 100)
    }
}
