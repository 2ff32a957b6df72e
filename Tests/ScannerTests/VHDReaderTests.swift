import Foundation
import ImageFormats
import Testing

@testable import Scanner
@testable import TestSupport

/// The data extents a spec reader must report for a writer's marked sectors: merged sector runs.
func expectedDataRuns(_ writer: VHDWriter) -> [Range<UInt64>] {
    var runs: [Range<UInt64>] = []
    for sector in writer.sectors.keys.sorted() {
        let start = sector * 512
        let end = min(start + 512, writer.virtualSize)
        if let last = runs.last, last.upperBound == start {
            runs[runs.count - 1] = last.lowerBound..<end
        } else {
            runs.append(start..<end)
        }
    }
    return runs
}

func dataRuns(_ extents: [Extent], depth: UInt32? = nil) -> [Range<UInt64>] {
    var runs: [Range<UInt64>] = []
    for extent in extents where extent.data && (depth == nil || extent.depth == depth) {
        if let last = runs.last, last.upperBound == extent.start {
            runs[runs.count - 1] = last.lowerBound..<extent.end
        } else {
            runs.append(extent.start..<extent.end)
        }
    }
    return runs
}

@Suite struct VHDReaderTests {
    @Test(
        "dynamic disks map exactly the marked sectors; unmarked sectors are not data whatever bytes they hold",
        arguments: [UInt32(512 << 10), 2 << 20, 16 << 20])
    func partialBitmaps(blockSize: UInt32) throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        // A partial last block: the size is not a multiple of the block size.
        var writer = VHDWriter(kind: .dynamic, virtualSize: UInt64(blockSize) * 3 + 33 * 512, blockSize: blockSize)
        writer.garbage = 0xEE
        writer.write(sector: 0, count: 1, byte: 1)
        writer.write(sector: 2, count: 7, byte: 2)
        writer.write(sector: 9, count: 1, byte: 3)
        let perBlock = UInt64(blockSize) / 512
        writer.write(sector: perBlock - 1, count: 2, byte: 4)  // straddles a block boundary
        writer.write(sector: perBlock * 3 + 30, count: 3, byte: 5)  // the partial last block, to its end
        writer.emptyAllocatedBlocks = [2]
        let path = directory.path("dynamic.vhd")
        try writer.write(to: path)
        let scan = try ChainScanner.scan(path: path)
        #expect(scan.top.format == .vhd)
        #expect(scan.top.metadata.virtualSize == writer.virtualSize)
        #expect(dataRuns(scan.extents) == expectedDataRuns(writer))
        #expect(scan.extents.last?.end == writer.virtualSize)
        // Host offsets point at the sectors' bytes in the blocks.
        let layout = writer.layout()
        let first = try #require(scan.extents.first { $0.data })
        #expect(first.offset == layout.block(0).map { $0.dataOffset })
        #expect(scan.top.metadata.vhd?.blockSize == UInt64(blockSize))
    }

    @Test("a BAT with more entries than the disk has blocks is fine; only the needed entries are used")
    func longerBAT() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var writer = VHDWriter(kind: .dynamic, virtualSize: 4 << 20)
        writer.write(sector: 7, count: 3, byte: 1)
        writer.maxTableEntriesOverride = UInt32(writer.naturalTableEntries) + 100
        let path = directory.path("long-bat.vhd")
        try writer.write(to: path)
        let scan = try ChainScanner.scan(path: path)
        #expect(dataRuns(scan.extents) == expectedDataRuns(writer))
        #expect(scan.top.metadata.vhd?.batEntries == UInt32(writer.naturalTableEntries) + 100)
    }

    @Test("fixed VHD from the writer: the data area is the disk")
    func fixed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var writer = VHDWriter(kind: .fixed, virtualSize: 6 << 20)
        writer.write(sector: 100, count: 8, byte: 9)
        let path = directory.path("fixed.vhd")
        try writer.write(to: path)
        let scan = try ChainScanner.scan(path: path)
        #expect(scan.top.metadata.vhd?.diskType == "fixed")
        #expect(scan.top.metadata.virtualSize == 6 << 20)
        #expect(scan.extents.last?.end == 6 << 20)
    }

    /// parent.vhd <- child.vhd (<- grandchild.vhd), each layer writing some sectors.
    func makeChain(in directory: TemporaryDirectory, locators: [String], levels: Int = 2, garbage: UInt8? = 0xEE) throws -> [VHDWriter] {
        var parent = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
        parent.garbage = garbage
        parent.write(sector: 0, count: 64, byte: 0x11)
        parent.write(sector: 4096, count: 16, byte: 0x12)
        parent.write(sector: 12000, count: 5, byte: 0x13)
        try parent.write(to: directory.path("parent.vhd"))
        var writers = [parent]
        for level in 1..<levels {
            let parentName = level == 1 ? "parent.vhd" : "child.vhd"
            var child = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
            child.garbage = garbage
            child.parentUniqueID = writers[level - 1].uniqueID
            child.parentName = parentName
            child.locators = locators.map { code in
                switch code {
                case "W2ru": return .init(code: "W2ru", path: ".\\" + parentName)
                case "W2ku": return .init(code: "W2ku", path: "C:\\images\\" + parentName)
                default: return .init(code: "MacX", path: "file://" + directory.path(parentName))
                }
            }
            child.write(sector: UInt64(10 * level), count: 20, byte: UInt8(0x20 + level))
            child.write(sector: 4100 + UInt64(level), count: 1, byte: UInt8(0x30 + level))
            let name = level == 1 ? "child.vhd" : "grandchild.vhd"
            try child.write(to: directory.path(name))
            writers.append(child)
        }
        return writers
    }

    @Test(
        "differencing chains: marked sectors come from the child, the rest from the parent, by depth",
        arguments: [["W2ru"], ["W2ku"], ["MacX"], ["W2ku", "MacX", "W2ru"]])
    func differencing(locators: [String]) throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let writers = try makeChain(in: directory, locators: locators)
        let scan = try ChainScanner.scan(path: directory.path("child.vhd"))
        #expect(scan.layers.count == 2)
        #expect(dataRuns(scan.extents, depth: 0) == expectedDataRuns(writers[1]))
        // The parent supplies its sectors except where the child's marked sectors cover them.
        var parentOnly = writers[0]
        for sector in writers[1].sectors.keys { parentOnly.sectors[sector] = nil }
        #expect(dataRuns(scan.extents, depth: 1) == expectedDataRuns(parentOnly))
        #expect(scan.top.metadata.vhd?.parentLocators?.map(\.code).sorted() == locators.sorted())
    }

    @Test("a three-level chain attributes every sector to the nearest layer that marks it")
    func threeLevels() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let writers = try makeChain(in: directory, locators: ["W2ru"], levels: 3)
        let scan = try ChainScanner.scan(path: directory.path("grandchild.vhd"))
        #expect(scan.layers.map(\.format) == [.vhd, .vhd, .vhd])
        var seen = Set<UInt64>()
        for (depth, writer) in writers.reversed().enumerated() {
            var own = writer
            for sector in seen { own.sectors[sector] = nil }
            #expect(dataRuns(scan.extents, depth: UInt32(depth)) == expectedDataRuns(own), "depth \(depth)")
            seen.formUnion(writer.sectors.keys)
        }
    }

    @Test("a bad footer at the end falls back to the copy at 0, and says so")
    func footerFallback() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        for corrupt in ["checksum", "cookie"] {
            var writer = VHDWriter(kind: .dynamic, virtualSize: 4 << 20)
            writer.write(sector: 3, count: 2, byte: 7)
            if corrupt == "checksum" { writer.corruptEndFooterChecksum = true } else { writer.corruptEndFooterCookie = true }
            let path = directory.path("fallback-\(corrupt).vhd")
            try writer.write(to: path)
            let scan = try ChainScanner.scan(path: path)
            #expect(scan.top.metadata.vhd?.usedFooterCopy == true)
            #expect(scan.top.metadata.warnings.contains { $0.contains("copy at offset 0") })
            #expect(dataRuns(scan.extents) == expectedDataRuns(writer))
        }
    }

    static let corruptions: [(String, @Sendable (inout VHDWriter) -> Void, [String])] = [
        (
            "both footers bad",
            {
                $0.corruptEndFooterChecksum = true; $0.corruptFooterCopyChecksum = true
            }, ["VHD footer checksum"]
        ),
        ("header checksum", { $0.corruptHeaderChecksum = true }, ["VHD dynamic header checksum", "offset 548"]),
        ("header cookie", { $0.corruptHeaderCookie = true }, ["VHD dynamic header cookie", "offset 512"]),
        ("max table entries 2^32-1", { $0.maxTableEntriesOverride = UInt32.max }, ["max table entries", "offset 540"]),
        ("max table entries too small", { $0.maxTableEntriesOverride = 1 }, ["max table entries"]),
        ("block size 0", { $0.blockSizeOverride = 0 }, ["block size", "offset 544"]),
        ("block size 3 MiB", { $0.blockSizeOverride = 3 << 20 }, ["block size"]),
        ("disk type 7", { $0.diskTypeOverride = 7 }, ["disk type"]),
        ("BAT entry beyond EOF", { $0.batOverrides = [0: 0x0FFF_FFFF] }, ["BAT entry 0", "offset"]),
        ("BAT entry into the header", { $0.batOverrides = [0: 1] }, ["BAT entry 0", "overlaps"]),
        ("two BAT entries naming one block", { $0.batOverrides = [1: 4] }, ["BAT entry 1", "names the same block", "entry 0"]),
        ("BAT entries whose blocks overlap", { $0.batOverrides = [1: 5] }, ["BAT entry 1", "overlaps the block of entry 0"]),
        ("data offset beyond EOF", { $0.dataOffsetOverride = 1 << 40 }, ["data offset"]),
        ("table offset beyond EOF", { $0.tableOffsetOverride = 1 << 40 }, ["max table entries"]),
        ("truncated block", { $0.truncateTo = 1536 + 512 + 512 + 4096 }, ["offset"]),
    ]

    @Test("corrupt VHDs are refused with file, field and offset", arguments: corruptions)
    func corrupt(name: String, mutate: @Sendable (inout VHDWriter) -> Void, fragments: [String]) throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var writer = VHDWriter(kind: .dynamic, virtualSize: 4 << 20)
        writer.write(sector: 0, count: 16, byte: 7)
        writer.write(sector: 5000, count: 16, byte: 8)
        mutate(&writer)
        let path = directory.path("corrupt.vhd")
        try writer.write(to: path)
        do {
            _ = try ChainScanner.scan(path: path)
            Issue.record("\(name): accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains(path), "\(name): \(message)")
            for fragment in fragments { #expect(message.contains(fragment), "\(name): \(message) lacks \(fragment)") }
        }
    }

    @Test("every prefix of a VHD fails cleanly (drip-feed over footer copy, header, BAT, bitmaps)")
    func dripFeed() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var writer = VHDWriter(kind: .dynamic, virtualSize: 4 << 20)
        writer.write(sector: 0, count: 16, byte: 7)
        let bytes = writer.bytes()
        let path = directory.path("cut.vhd")
        for length in stride(from: 0, to: bytes.count - 1, by: 509) {
            try Data(bytes.prefix(length)).write(to: URL(fileURLWithPath: path))
            // A prefix may still read as a raw file (no VHD footer at its end); it must never trap.
            if let scan = try? ChainScanner.scan(path: path) {
                #expect(scan.top.format == .raw || scan.top.format == .vhd, "prefix \(length)")
            }
        }
    }

    @Test("differencing parents: missing, another unique id, or a loop are errors naming the files")
    func parentErrors() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var writers = try makeChain(in: directory, locators: ["W2ru"])
        // Wrong unique id.
        writers[1].parentUniqueID = Array(repeating: 0xAB, count: 16)
        try writers[1].write(to: directory.path("child.vhd"))
        #expect(throws: ImageError.self) { try ChainScanner.scan(path: directory.path("child.vhd")) }
        do {
            _ = try ChainScanner.scan(path: directory.path("child.vhd"))
        } catch {
            #expect("\(error)".contains("parent.vhd") && "\(error)".contains("child.vhd") && "\(error)".contains("unique id"))
        }
        // Missing parent.
        try FileManager.default.removeItem(atPath: directory.path("parent.vhd"))
        do {
            _ = try ChainScanner.scan(path: directory.path("child.vhd"))
            Issue.record("missing parent accepted")
        } catch {
            #expect("\(error)".contains("parent of differencing VHD not found"), "\(error)")
        }
        // A loop: a differencing disk whose parent is itself.
        var selfish = VHDWriter(kind: .differencing, virtualSize: 1 << 20)
        selfish.parentUniqueID = selfish.uniqueID
        selfish.locators = [.init(code: "W2ru", path: ".\\loop.vhd")]
        try selfish.write(to: directory.path("loop.vhd"))
        do {
            _ = try ChainScanner.scan(path: directory.path("loop.vhd"))
            Issue.record("loop accepted")
        } catch {
            #expect("\(error)".contains("loops"), "\(error)")
        }
    }
}

@Suite struct MetadataCodingTests {
    @Test("metadata survives the index's snake_case JSON round trip (qcow2 and differencing VHD)")
    func roundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        var parent = VHDWriter(kind: .dynamic, virtualSize: 1 << 20)
        parent.write(sector: 1, count: 1, byte: 1)
        try parent.write(to: directory.path("p.vhd"))
        var child = VHDWriter(kind: .differencing, virtualSize: 1 << 20)
        child.parentUniqueID = parent.uniqueID
        child.locators = [.init(code: "MacX", path: "file://" + directory.path("p.vhd"))]
        try child.write(to: directory.path("c.vhd"))
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "p.vhd", "-F", "vpc", directory.path("q.qcow2")])
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        for name in ["c.vhd", "q.qcow2"] {
            let layer = try ChainScanner.scan(path: directory.path(name)).top
            let decoded = try decoder.decode(ImageMetadata.self, from: encoder.encode(layer.metadata))
            #expect(decoded == layer.metadata, "\(name)")
            #expect(decoded.backing?.resolvedPath == directory.path("p.vhd"))
        }
    }
}
