import Foundation
import ImageFormats
import Testing

@testable import Scanner
@testable import TestSupport

/// Random single-byte corruptions of every metadata structure: a scan either succeeds or throws an
/// ``ImageError``; it never traps (a trap would end the test process) and never hangs.
@Suite struct BitFlipTests {
    func flipAndScan(original: [UInt8], regions: [Range<Int>], path: String, flips: Int, seed: UInt64) throws -> (ok: Int, refused: Int) {
        var state = seed
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        var ok = 0
        var refused = 0
        for _ in 0..<flips {
            var bytes = original
            let region = regions[next() % regions.count]
            let position = region.lowerBound + next() % region.count
            bytes[position] ^= UInt8(1 << (next() % 8)) | (next() % 4 == 0 ? 0xF0 : 0)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let scan = try ChainScanner.scan(path: path)
                #expect(scan.extents.first?.start == 0 && scan.extents.last?.end == scan.top.metadata.virtualSize)
                ok += 1
            } catch is ImageError {
                refused += 1
            }
        }
        return (ok, refused)
    }

    @Test("qcow2: flips in the header, refcount structures, L1 and L2 tables")
    func qcow2() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let image = directory.path("disk.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", image, "256M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 1 0 64k", "-c", "write -c -P 2 1M 64k", "-c", "write -z 2M 64k", image])
        try run("qemu-img", ["snapshot", "-c", "s1", image])
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: image)))
        // Header + extensions, refcount table/block, L1, first L2 tables (4 KiB clusters).
        let result = try flipAndScan(
            original: bytes, regions: [0..<512, 4096..<12288, 12288..<min(bytes.count, 32768)], path: directory.path("flip.qcow2"),
            flips: 400, seed: 1)
        #expect(result.ok + result.refused == 400)
        #expect(result.refused > 0)
    }

    @Test("VHD: flips in the footers, dynamic header, BAT and bitmaps")
    func vhd() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var writer = VHDWriter(kind: .dynamic, virtualSize: 4 << 20, blockSize: 512 << 10)
        writer.write(sector: 3, count: 9, byte: 1)
        writer.write(sector: 2000, count: 40, byte: 2)
        let bytes = writer.bytes()
        let layout = writer.layout()
        let bitmaps = layout.blocks.map { Int($0.bitmapOffset)..<Int($0.bitmapOffset + layout.bitmapByteCount) }
        let regions =
            [
                0..<1536, Int(layout.batOffset ?? 1536)..<Int((layout.batOffset ?? 1536) + layout.batByteCount),
                (bytes.count - 512)..<bytes.count,
            ] + bitmaps
        let result = try flipAndScan(original: bytes, regions: regions, path: directory.path("flip.vhd"), flips: 400, seed: 2)
        #expect(result.ok + result.refused == 400)
        #expect(result.refused > 0 && result.ok > 0)
    }
}
