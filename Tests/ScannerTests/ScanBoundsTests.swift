import Foundation
import ImageFormats
import ImageIO
import Synchronization
import Testing

@testable import Scanner
@testable import TestSupport

/// What a hostile table may cost a scan: reads bounded by what the file holds, extents and time bounded by
/// the caller's limits (the service's `--max-scan-extents` and `--scan-time-limit`).
@Suite(.serialized) struct ScanBoundsTests {
    /// Rewrites, with Python, the L1 or L2 entries of a qcow2 that qemu made.
    func python(_ code: String, _ path: String) throws {
        _ = try run("python3", ["-c", code, path])
    }

    @Test("2,048 L2 tables lying in a sparse file's hole are not read: the scan reads kilobytes, not 4 GiB")
    func tablesInHolesAreNotRead() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("holes.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", path, "1P"])
        // Every L1 entry names its own 2 MiB L2 table, all of them past the end of the real file, in a hole.
        try python(
            """
            import os, struct, sys
            f = open(sys.argv[1], "r+b")
            header = f.read(48)
            l1_size, = struct.unpack(">I", header[36:40]); l1_offset, = struct.unpack(">Q", header[40:48])
            base = 64 << 20
            f.seek(l1_offset)
            f.write(b"".join(struct.pack(">Q", (1 << 63) | (base + i * (2 << 20))) for i in range(l1_size)))
            f.truncate(base + l1_size * (2 << 20))
            """, path)
        let before = FileBlockSource.bytesRead.load(ordering: .relaxed)
        let chain = try ChainScanner.scan(path: path)
        let read = FileBlockSource.bytesRead.load(ordering: .relaxed) - before
        #expect(chain.extents.allSatisfy { !$0.data && !$0.present })
        // Other tests running at the same time read through the same counter: the bound is generous, and
        // still far below the 4 GiB that reading each table would cost.
        #expect(read < 512 << 20, "read \(read) bytes")
    }

    /// A 1 GiB qcow2 whose first L2 table alternates zero-flag and unallocated entries: one extent per
    /// 8-byte entry, 8,192 extents from one 64 KiB table.
    func makeAlternating(in directory: TemporaryDirectory) throws -> String {
        let path = directory.path("alternating.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", path, "1G"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 1 0 64k", path])
        try python(
            """
            import struct, sys
            f = open(sys.argv[1], "r+b")
            header = f.read(48)
            l1_offset, = struct.unpack(">Q", header[40:48])
            f.seek(l1_offset); l2_offset = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
            f.seek(l2_offset)
            f.write(b"".join(struct.pack(">Q", 1 if i % 2 == 0 else 0) for i in range(8192)))
            """, path)
        return path
    }

    @Test("a table that makes one extent per entry is refused past the extent limit, and mapped without one")
    func extentLimit() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = try makeAlternating(in: directory)
        var options = ScanOptions()
        options.maximumExtents = 1000
        #expect(throws: ScanStopped.self) { try ChainScanner.scan(path: path, options: options) }
        do {
            _ = try ChainScanner.scan(path: path, options: options)
        } catch {
            #expect("\(error)".contains("more than 1000 extents"), "\(error)")
        }
        #expect(try ChainScanner.scan(path: path).extents.count >= 8192)
    }

    @Test("a scan past its time limit stops with a clear error")
    func timeLimit() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = try makeAlternating(in: directory)
        var options = ScanOptions()
        options.timeLimit = 1e-9
        do {
            _ = try ChainScanner.scan(path: path, options: options)
            Issue.record("the scan finished past its time limit")
        } catch {
            #expect(error is ScanStopped)
            #expect("\(error)".contains("time limit"), "\(error)")
        }
        let cancelled = ScanProgress()
        cancelled.cancel()
        options = ScanOptions()
        options.progress = cancelled
        #expect(throws: ScanStopped.self) { try ChainScanner.scan(path: path, options: options) }
    }

    @Test("a VHD's parent locators cannot tell whether a host path exists: existing and missing read the same")
    func vhdLocatorsDoNotProbe() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var messages: [String] = []
        for target in ["/etc/passwd", "/nonexistent/secret.vhd"] {
            var child = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
            child.parentName = "parent.vhd"
            child.locators = [.init(code: "MacX", path: "file://" + target)]
            let path = directory.path("child-\(messages.count).vhd")
            try child.write(to: path)
            do {
                _ = try ChainScanner.scan(path: path)
                Issue.record("a parent outside the directory was opened")
            } catch {
                messages.append("\(error)".replacingOccurrences(of: path, with: "CHILD").replacingOccurrences(of: target, with: "TARGET"))
            }
        }
        #expect(messages.count == 2)
        #expect(messages.first == messages.last, "\(messages)")
        #expect(messages.first?.contains("is not a regular file beneath the image's directory") == true, "\(messages)")
    }
}
