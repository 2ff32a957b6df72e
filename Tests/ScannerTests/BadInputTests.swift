import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Testing

@testable import Scanner
@testable import TestSupport

/// Corrupt variants of qemu-made images: each must fail with a message naming the file, the field and
/// the offset, never trap, hang or allocate what the file does not hold.
@Suite struct BadInputTests {
    /// A 1 GiB qcow2 (64 KiB clusters) with data in its first cluster. qemu lays it out as:
    /// header 0x0, refcount table 0x10000, refcount block 0x20000, L1 0x30000, L2 0x40000, data 0x50000.
    func makeImage(in directory: TemporaryDirectory, name: String = "disk.qcow2") throws -> String {
        let path = directory.path(name)
        try run("qemu-img", ["create", "-q", "-f", "qcow2", path, "1G"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 7 0 64k", "-c", "write -c -P 8 1M 64k", path])
        return path
    }

    func expectFailure(_ path: String, mentions fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try ChainScanner.scan(path: path)
            Issue.record("scan of a corrupt image succeeded", sourceLocation: sourceLocation)
        } catch {
            let message = "\(error)"
            #expect(error is ImageError, sourceLocation: sourceLocation)
            for fragment in fragments {
                #expect(message.contains(fragment), "\(message) lacks \(fragment)", sourceLocation: sourceLocation)
            }
        }
    }

    static let patches: [(String, UInt64, [UInt8], [String])] = [
        ("L1 entry beyond EOF", 0x30000, bigEndian(UInt64(0x8000_0000_1000_0000)), ["L1 entry", "offset 196608"]),
        ("L1 entry unaligned", 0x30000, bigEndian(UInt64(0x8000_0000_0004_0200)), ["L1 entry", "not cluster aligned"]),
        ("data offset unaligned", 0x40000, bigEndian(UInt64(0x8000_0000_0005_0200)), ["L2 entry", "offset 262144"]),
        ("data offset beyond EOF", 0x40000, bigEndian(UInt64(0x8000_00F0_0000_0000)), ["L2 entry", "offset 262144"]),
        ("compressed beyond EOF", 0x40000, bigEndian(UInt64(1) << 62 | 0xFF_FFFF_FFFF), ["compressed L2 entry"]),
        ("l1_size 2^31", 36, bigEndian(UInt32(1) << 31), ["l1_size", "offset 36"]),
        ("cluster_bits 8", 20, bigEndian(UInt32(8)), ["cluster_bits", "offset 20"]),
        ("cluster_bits 40", 20, bigEndian(UInt32(40)), ["cluster_bits"]),
        ("nb_snapshots 2^32-1", 60, bigEndian(UInt32.max), ["nb_snapshots"]),
        ("refcount_order 7", 96, bigEndian(UInt32(7)), ["refcount_order", "offset 96"]),
        ("version 4", 4, bigEndian(UInt32(4)), ["version"]),
        ("corrupt bit", 79, [2], ["corrupt"]),
        ("unknown incompatible bit", 78, [1], ["incompatible"]),
        ("backing name 4 GiB", 8, bigEndian(UInt64(0x200)) + bigEndian(UInt32.max), ["backing_file_size"]),
        ("snapshot table beyond EOF", 60, bigEndian(UInt32(3)) + bigEndian(UInt64(0x7000_0000)), ["snapshots_offset"]),
    ]

    @Test("corrupt fields are refused with file, field and offset", arguments: patches)
    func corruptField(name: String, offset: UInt64, bytes: [UInt8], fragments: [String]) throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = try makeImage(in: directory)
        try patch(path, at: offset, bytes)
        expectFailure(path, mentions: [path] + fragments)
    }

    @Test("a file truncated inside any table fails cleanly (drip-feed over header, L1 and L2)")
    func truncations() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let original = try makeImage(in: directory)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: original))
        let cut = directory.path("cut.qcow2")
        var lengths = Array(4..<130) + [0x10000, 0x20008, 0x30000, 0x30008, 0x40000, 0x48000]
        lengths.append(0x4FFFF)
        for length in lengths where length < bytes.count {
            try bytes.prefix(length).write(to: URL(fileURLWithPath: cut))
            expectFailure(cut, mentions: [cut])
        }
    }

    @Test("a dirty image is mapped, with a warning")
    func dirty() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = try makeImage(in: directory)
        try patch(path, at: 79, [1])
        let scan = try ChainScanner.scan(path: path)
        #expect(scan.top.metadata.warnings.contains { $0.contains("dirty") })
        #expect(scan.extents.contains { $0.data })
    }

    @Test("a missing backing file is an error naming it")
    func missingBacking() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let top = directory.path("top.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2", top, "1G"])
        expectFailure(top, mentions: ["gone.qcow2", "not found"])
    }

    @Test("a backing chain that loops back is refused")
    func backingLoop() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let a = directory.path("a.qcow2")
        let b = directory.path("b.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", b, "1G"])
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a, "1G"])
        try run("qemu-img", ["rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", b])
        expectFailure(a, mentions: ["loops"])
    }

    @Test("a backing name escaping the directory to a non-image is resolved but not opened")
    func escapingBacking() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let top = directory.path("top.qcow2")
        let escape = String(repeating: "../", count: 12) + "etc/passwd"
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", escape, "-F", "raw", top, "1G"])
        expectFailure(top, mentions: ["/etc/passwd", "is not a regular file beneath the image's directory"])
        let layer = try ChainScanner.inspect(path: top)
        #expect(layer.metadata.backing?.resolvedPath == "/etc/passwd")
        #expect(layer.metadata.backing?.escapesImageDirectory == true)
        let trusted = try ChainScanner.scan(path: top, options: ScanOptions(allowsOutsideBacking: true))
        #expect(trusted.layers.count == 2)
    }

    @Test("an external data file outside the image's directory is not read unless trusted")
    func escapingDataFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        try FileManager.default.createDirectory(atPath: directory.path("images"), withIntermediateDirectories: true)
        let image = directory.path("images/disk.qcow2")
        try run(
            "qemu-img", ["create", "-q", "-f", "qcow2", "-o", "data_file=../outside.data", image, "16M"],
            in: URL(fileURLWithPath: directory.path("images")))
        expectFailure(image, mentions: ["outside.data", "is not a regular file beneath the image's directory"])
        let layer = try ChainScanner.inspect(path: image)
        #expect(layer.metadata.qcow2?.externalDataFileResolved == directory.path("outside.data"))
        #expect(layer.metadata.qcow2?.externalDataFileEscapes == true)
        #expect(try ChainScanner.scan(path: image, options: ScanOptions(allowsOutsideBacking: true)).layers.count == 1)
    }

    @Test("a qcow2 backing file outside the directory is followed only when trusted (--trust-root or --allow-outside-backing)")
    func outsideQCOW2Backing() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        try FileManager.default.createDirectory(atPath: directory.path("sub"), withIntermediateDirectories: true)
        try run("qemu-img", ["create", "-q", "-f", "qcow2", directory.path("base.qcow2"), "1G"])
        let top = directory.path("sub/top.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", top, "1G"])
        expectFailure(top, mentions: ["base.qcow2", "is not a regular file beneath the image's directory"])
        // The remedy is named, not spelled: each front end says it its own way (the CLI: --trust-root).
        let refusal = #expect(throws: ImageError.self) { try ChainScanner.scan(path: top) }
        #expect(refusal?.remedy == .trustDirectory)
        let root = try #require(PathResolver.canonical(directory.path(".")))
        #expect(try ChainScanner.scan(path: top, options: ScanOptions(trustedRoots: [root])).layers.count == 2)
        #expect(try ChainScanner.scan(path: top, options: ScanOptions(allowsOutsideBacking: true)).layers.count == 2)
    }
}

@Suite struct IndexerTests {
    @Test("rescans only when a layer's identity changes")
    func freshness() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let base = directory.path("base.qcow2")
        let top = directory.path("top.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"])
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top, "64M"])
        let indexer = ImageIndexer(store: try IndexStore())
        #expect(try indexer.ensureIndexed(path: top).action == .scanned)
        #expect(try indexer.ensureIndexed(path: top).action == .unchanged)
        // A write to the backing file makes the top's index stale too.
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 1 0 64k", base])
        let after = try indexer.ensureIndexed(path: top)
        #expect(after.action == .scanned)
        #expect(after.indexed.scan.dataBytes == 65536)
        #expect(after.indexed.scan.ownDataBytes == 0)
        #expect(try indexer.ensureIndexed(path: top, force: true).action == .scanned)
    }

    @Test("a header rewritten with its mtime restored is caught by its ctime and by the header checksum")
    func headerChecksum() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let image = directory.path("disk.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"])
        try run("cp", ["-p", image, directory.path("stamp")])
        let indexer = ImageIndexer(store: try IndexStore())
        #expect(try indexer.ensureIndexed(path: image).action == .scanned)
        try patch(image, at: 87, [1])  // compatible_features: lazy refcounts
        try run("touch", ["-r", directory.path("stamp"), image])
        let indexed = try #require(try indexer.store.latestScan(path: try ImageIndexer.canonicalPath(image)))
        // The owner restored the mtime, not the ctime, which no owner can set.
        #expect(
            ImageIndexer.freshness(of: indexed)
                == .stale("layer 0 \(indexed.image.path) was changed (its ctime moved, whatever its mtime says)"))
        #expect(!ImageIndexer.freshnessWithHeaders(of: indexed).isFresh)
        #expect(try indexer.ensureIndexed(path: image).action == .scanned)
    }
}
