import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Testing

@testable import Scanner
@testable import TestSupport

/// The header checksum a scan records (XXH64) and the FNV-1a ones older indexes hold.
@Suite struct HeaderChecksumTests {
    @Test("FNV-1a is the 64-bit reference function, so checksums older indexes hold still compare")
    func fnvReference() {
        // Reference values of FNV-1a 64 (Fowler, Noll, Vo): "" and "a".
        #expect(HeaderChecksum.fnv1a64([]) == "fnv1a64:cbf29ce484222325")
        #expect(HeaderChecksum.fnv1a64(Array("a".utf8)) == "fnv1a64:af63dc4c8601ec8c")
        // XXH64 of "" with seed 0 (the xxHash reference).
        #expect(HeaderChecksum.of([]) == "xxh64:ef46db3751d8e999")
    }

    @Test("matches uses the algorithm the record names, and any changed byte fails it")
    func matchesByName() {
        let bytes = (0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var changed = bytes
        changed[40000] ^= 1
        for recorded in [HeaderChecksum.of(bytes), HeaderChecksum.fnv1a64(bytes)] {
            #expect(HeaderChecksum.matches(recorded, bytes: bytes))
            #expect(!HeaderChecksum.matches(recorded, bytes: changed))
        }
        #expect(!HeaderChecksum.matches("sha1:0000", bytes: bytes))
    }

    @Test("scans record XXH64; an index holding FNV-1a stays fresh, and still sees a rewritten header")
    func legacyRecords() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let qcow2 = directory.path("disk.qcow2")
        let vhd = directory.path("disk.vhd")
        let raw = directory.path("disk.raw")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", qcow2, "64M"])
        try run("qemu-img", ["create", "-q", "-f", "vpc", vhd, "64M"])
        try run("qemu-img", ["create", "-q", "-f", "raw", raw, "64M"])
        let database = directory.path("index.sqlite")
        let indexer = ImageIndexer(store: try IndexStore(path: database))
        for image in [qcow2, vhd, raw] {
            let scanned = try indexer.ensureIndexed(path: image).indexed
            let layer = try #require(scanned.layers.first)
            #expect(layer.headerChecksum.hasPrefix("xxh64:"), "\(image): \(layer.headerChecksum)")
            let source = try FileBlockSource(path: image)
            defer { source.close() }
            let header = try FormatRegistry.driver(for: layer.format).headerBytes(source)
            #expect(layer.headerChecksum == HeaderChecksum.of(header))
            // What an index written before XXH64 holds for the same file.
            let legacy = HeaderChecksum.fnv1a64(header)
            try run(
                "python3",
                [
                    "-c",
                    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                        + "c.execute('UPDATE scan_layers SET header_checksum = ? WHERE path = ?', (sys.argv[2], sys.argv[3])); c.commit()",
                    database, legacy, layer.path,
                ])
            let reread = try #require(try indexer.store.latestScan(path: layer.path))
            #expect(reread.layers.first?.headerChecksum == legacy)
            #expect(ImageIndexer.freshnessWithHeaders(of: reread) == .fresh)
            #expect(try indexer.ensureIndexed(path: image).action == .unchanged)
        }
        // A header rewritten under the legacy record, mtime restored: stale by its checksum alone.
        let indexed = try #require(try indexer.store.latestScan(path: try ImageIndexer.canonicalPath(qcow2)))
        try run("cp", ["-p", qcow2, directory.path("stamp")])
        try patch(qcow2, at: 87, [1])  // compatible_features: lazy refcounts
        try run("touch", ["-r", directory.path("stamp"), qcow2])
        // As if the ctime had not moved either (a copy whose times were all kept): only the header tells.
        var ctimeKept = indexed
        ctimeKept.layers[0].ctimeNs = try FileIdentity(path: qcow2).changeTimeNanoseconds
        #expect(ctimeKept.layers[0].headerChecksum.hasPrefix("fnv1a64:"))
        #expect(ImageIndexer.freshnessWithHeaders(of: ctimeKept) == .stale("layer 0 \(indexed.image.path) has a new header"))
        let rescanned = try indexer.ensureIndexed(path: qcow2)
        #expect(rescanned.action == .scanned)
        #expect(rescanned.indexed.layers.first?.headerChecksum.hasPrefix("xxh64:") == true)
    }
}
