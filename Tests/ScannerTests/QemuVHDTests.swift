import Foundation
import ImageFormats
import Testing

@testable import Scanner
@testable import TestSupport

/// True when every byte of `inner` lies inside some extent of `outer` with data.
func covered(_ range: Range<UInt64>, by extents: [Extent]) -> Bool {
    var position = range.lowerBound
    for extent in extents where extent.data && extent.end > position && extent.start <= position {
        position = min(extent.end, range.upperBound)
        if position >= range.upperBound { return true }
    }
    return position >= range.upperBound
}

/// VHDs written by qemu-img: qemu marks whole blocks in its bitmaps, so its data blocks and ours agree.
/// qemu reports unallocated dynamic blocks as present zeros; extentdb reports them unallocated
/// (`present: false`), as for qcow2.
@Suite struct QemuVHDTests {
    static let writes: [(offset: UInt64, length: UInt64)] = [
        (0, 4096), (3 << 20, 65536), (1 << 32, 4096), ((1 << 32) + (5 << 20), 1 << 20),
    ]

    @Test("qemu-made dynamic VHDs up to 2000 GiB: written ranges are data, our data lies in qemu's blocks")
    func dynamic() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        for (name, size) in [("small.vhd", "64M"), ("big.vhd", "2000G")] {
            let path = directory.path(name)
            try run("qemu-img", ["create", "-q", "-f", "vpc", path, size])
            let total = name == "big.vhd" ? UInt64(2000) << 30 : UInt64(64) << 20
            var writes = Self.writes.filter { $0.offset + $0.length <= total - (1 << 20) }
            if name == "big.vhd" { writes.append((total - (8 << 20), 8192)) }
            try run(
                "qemu-io",
                ["-f", "vpc"]
                    + writes.enumerated().flatMap { ["-c", "write -P \($0.offset + 1) \($0.element.offset) \($0.element.length)"] } + [path]
            )
            let ours = try ChainScanner.scan(path: path)
            #expect(ours.top.format == .vhd)
            let qemu = try qemuExtents(Data(run("qemu-img", ["map", "-f", "vpc", "--output=json", path]).utf8))
            for write in writes {
                #expect(covered(write.offset..<(write.offset + write.length), by: ours.extents), "\(name) write at \(write.offset)")
            }
            for extent in ours.extents where extent.data {
                #expect(covered(extent.start..<extent.end, by: qemu), "\(name): our data at \(extent.start) is outside qemu's blocks")
            }
            #expect(ours.extents.last?.end == ours.top.metadata.virtualSize)
        }
    }

    @Test("qemu-made fixed VHDs map like raw over the footer's current size")
    func fixed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.path("fixed.vhd")
        try run("qemu-img", ["create", "-q", "-f", "vpc", "-o", "subformat=fixed", path, "16M"])
        try run("qemu-io", ["-f", "vpc", "-c", "write -P 3 1M 4k", path])
        let ours = try ChainScanner.scan(path: path)
        #expect(ours.top.metadata.vhd?.diskType == "fixed")
        #expect(covered(1_048_576..<1_052_672, by: ours.extents))
        // qemu maps the trailing footer sector as guest data; the footer's current size excludes it.
        let fileSize = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64)
        #expect(ours.top.metadata.virtualSize == fileSize - 512)
        #expect(ours.extents.last?.end == fileSize - 512)
    }
}
