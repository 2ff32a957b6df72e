import AllocationIndex
import Foundation
import ImageFormats
import PoolCatalog
import Testing

@testable import TestSupport

/// The storage seam's contract, run against SQLite and PostgreSQL alike: what one store answers, the
/// other answers too.
@Suite struct StoreConformanceTests {
    @Test("a scan saved in many chunks reads back exactly, whole and by window", arguments: StoreBackend.allCases)
    func roundTrip(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        let extents = syntheticExtents(count: 10_000)
        let saved = try store.save(scanOf("/pool/a.qcow2", extents: extents))
        let scanID = try #require(saved.scan.id)
        #expect(try store.extents(scanID: scanID) == extents)
        #expect(try store.latestScan(path: "/pool/a.qcow2") == saved)
        #expect(try store.latestScan(imageID: try #require(saved.image.id)) == saved)
        #expect(try store.indexedScan(id: scanID) == saved)
        #expect(saved.scan.host == HostName.current)
        #expect(saved.scan.warnings == ["w"])
        let size = extents.last?.end ?? 0
        for (lower, upper) in [(0, 1), (4096, size / 3), (size / 2, size / 2 + 12_345), (size - 1, size)] as [(UInt64, UInt64)] {
            let expected = extents.compactMap { $0.clipped(to: lower, upper) }
            #expect(try store.extents(scanID: scanID, from: lower, to: upper) == expected)
        }
        // The cursor's batches: every chunk once, in order.
        var starts: [Int64] = []
        var continuing: Int64?
        while let batch = try store.extentChunks(scanID: scanID, from: 0, continuingAt: continuing, to: size, limit: 1),
            let chunk = batch.chunks.first
        {
            starts.append(chunk.start)
            continuing = chunk.start + 1
        }
        #expect(starts.count == 3)
        #expect(try store.extentChunks(scanID: 999_999, from: 0, continuingAt: nil, to: size, limit: 4) == nil)
    }

    @Test("a chain records every layer, in order, each with its image row", arguments: StoreBackend.allCases)
    func chain(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        let saved = try store.save(scanOf("/pool/top.qcow2", extents: syntheticExtents(count: 50), layers: 3))
        #expect(saved.layers.map(\.depth) == [0, 1, 2])
        #expect(saved.layers.map(\.path) == ["/pool/top.qcow2", "/pool/top.qcow2.base1", "/pool/top.qcow2.base2"])
        let base = try #require(try store.image(path: "/pool/top.qcow2.base1"))
        #expect(saved.image.backingImageId == base.id)
        #expect(base.latestScanId == nil)
        #expect(try store.scannedImages().map(\.image.path) == ["/pool/top.qcow2"])
    }

    @Test(
        "the latest scans of many paths in one call: each image's latest, chains whole, the rest left out", arguments: StoreBackend.allCases
    )
    func latestScansOfMany(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        var expected: [IndexedScan] = []
        for index in 0..<12 {
            let path = "/pool/m\(index).qcow2"
            // Two scans of every third image (the batch answers the latest), chains of 1 to 3 layers (24 in all).
            if index % 3 == 0 { _ = try store.save(scanOf(path, extents: syntheticExtents(count: 20), layers: 1 + index % 3, at: 1)) }
            expected.append(
                try store.save(scanOf(path, extents: syntheticExtents(count: 20, seed: UInt64(index)), layers: 1 + index % 3, at: 2)))
        }
        let asked = expected.map(\.image.path) + ["/pool/m1.qcow2.base1", "/pool/never.qcow2"]
        let found = try store.latestScans(paths: asked.reversed())
        #expect(found.sorted { $0.image.path < $1.image.path } == expected.sorted { $0.image.path < $1.image.path })
        let layerCount = found.reduce(0) { $0 + $1.layers.count }
        #expect(layerCount == 24)
        #expect(try store.latestScans(paths: []).isEmpty)
    }

    @Test("history, shared chunks of unchanged rescans, retention and removed ids", arguments: StoreBackend.allCases)
    func history(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        let extents = syntheticExtents(count: 5000)
        let first = try store.save(scanOf("/pool/h.qcow2", extents: extents, at: 10))
        let second = try store.save(scanOf("/pool/h.qcow2", extents: extents, at: 20))
        let changed = syntheticExtents(count: 5000, seed: 99)
        let third = try store.save(scanOf("/pool/h.qcow2", extents: changed, at: 30))
        #expect(second.scan.extentsScanId == first.scan.id)
        #expect(try store.scans(path: "/pool/h.qcow2").map(\.id) == [first.scan.id, second.scan.id, third.scan.id])
        #expect(try store.scanCounts()[try #require(first.image.id)] == 3)
        // Dropping the scan that owns the shared chunks hands them to the one that shares them.
        let dropped = try store.collectGarbage(keep: nil, olderThanNanoseconds: 15)
        #expect(dropped.scansDeleted == 1)
        #expect(try store.extents(scanID: try #require(second.scan.id)) == extents)
        #expect(try store.scanWasRemoved(id: try #require(first.scan.id)))
        #expect(try !store.scanWasRemoved(id: try #require(third.scan.id)))
        #expect(try !store.scanWasRemoved(id: 1_000_000))
        let kept = try store.collectGarbage(keep: 1, olderThanNanoseconds: nil)
        #expect(kept.scansDeleted == 1)
        #expect(try store.latestScan(path: "/pool/h.qcow2")?.scan.id == third.scan.id)
        #expect(try store.extents(scanID: try #require(third.scan.id)) == changed)
        // keepScans prunes inside the save.
        var pruning = scanOf("/pool/h.qcow2", extents: extents, at: 40)
        pruning.keepScans = 1
        let fourth = try store.save(pruning)
        #expect(try store.scans(path: "/pool/h.qcow2").map(\.id) == [fourth.scan.id])
        #expect(try store.check().isHealthy)
    }

    @Test(
        "what save returns is what reading the scan back gives (and the listing): new, unchanged, changed, retention, chains, trust",
        arguments: StoreBackend.allCases)
    func saveReturnsStoredRows(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        func saved(_ scan: NewScan, _ note: Comment) throws -> IndexedScan {
            let returned = try store.save(scan)
            let stored = try #require(try store.latestScan(path: scan.layers[0].path))
            #expect(returned == stored, note)
            // The listing reads the same rows with its own query (one statement for a page of paths).
            let listed = try #require(try store.listedImages(paths: [scan.layers[0].path]).first?.scanned)
            #expect(listed.image == stored.image && listed.scan == stored.scan && listed.layers == stored.layers, note)
            // So do the batch lookup and the lookup by scan id.
            #expect(try store.latestScans(paths: [scan.layers[0].path]) == [stored], note)
            #expect(try store.indexedScan(id: try #require(stored.scan.id)) == stored, note)
            return returned
        }
        let extents = syntheticExtents(count: 3000)
        let changed = syntheticExtents(count: 3000, seed: 5)
        var scan = scanOf("/pool/r.qcow2", extents: extents, at: 10)
        scan.keepScans = 2
        let first = try saved(scan, "new image")
        scan.scannedAtNanoseconds = 20
        let second = try saved(scan, "unchanged rescan sharing the first's chunks")
        #expect(second.scan.extentsScanId == first.scan.id)
        // The third save deletes the first, which owns the chunks the second shares and this one reuses.
        scan.scannedAtNanoseconds = 30
        let third = try saved(scan, "retention deletes the owner of the shared chunks")
        #expect(try store.scans(path: "/pool/r.qcow2").map(\.id) == [second.scan.id, third.scan.id])
        #expect(try store.extents(scanID: try #require(third.scan.id)) == extents)
        scan = scanOf("/pool/r.qcow2", extents: changed, at: 40)
        scan.keepScans = 2
        let fourth = try saved(scan, "changed extents, retention deletes one")
        #expect(fourth.scan.extentsScanId == nil)
        scan.keepScans = nil
        scan.allowsOutsideBacking = true
        scan.trust = ScanTrust(outside: true, roots: ["/pool"])
        scan.warnings = ["a \"quoted\" warning", "é"]
        scan.scannedAtNanoseconds = 50
        let fifth = try saved(scan, "no retention, trust and warnings recorded")
        #expect(fifth.image.allowsOutsideBacking && fifth.scan.trust == scan.trust)
        var chain = scanOf("/pool/top.qcow2", extents: syntheticExtents(count: 40), layers: 3)
        chain.layers[2].dataPath = "/pool/data.raw"
        chain.layers[2].dataIdentity = StoredFileIdentity(device: 9, inode: 8, size: 7, mtimeNanoseconds: 6, ctimeNanoseconds: 5)
        chain.keepScans = 3
        _ = try saved(chain, "a chain, a data file on its base")
        #expect(try store.check().isHealthy)
    }

    @Test("failures are recorded, listed, cleared by a scan, and forgotten", arguments: StoreBackend.allCases)
    func failuresAndForget(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        try store.recordFailure(path: "/pool/bad.qcow2", message: "l1_table_offset past the end", atNanoseconds: 7)
        try store.recordFailure(path: "/pool/bad.qcow2", message: "again", atNanoseconds: 8)
        try store.recordFailure(path: "/pool/good.qcow2", message: "was bad once", atNanoseconds: 9)
        #expect(
            try store.failure(path: "/pool/bad.qcow2") == ScanFailure(path: "/pool/bad.qcow2", failedAtNanoseconds: 8, message: "again"))
        _ = try store.save(scanOf("/pool/good.qcow2", extents: syntheticExtents(count: 10)))
        #expect(try store.failure(path: "/pool/good.qcow2") == nil)
        #expect(try store.failures().keys.sorted() == ["/pool/bad.qcow2"])
        #expect(try store.knownImagePaths() == ["/pool/bad.qcow2", "/pool/good.qcow2"])
        #expect(
            try store.forget(paths: ["/pool/good.qcow2", "/pool/bad.qcow2", "/pool/never.qcow2"]) == [
                "/pool/good.qcow2", "/pool/bad.qcow2",
            ])
        #expect(try store.knownImagePaths().isEmpty)
        #expect(try store.latestScan(path: "/pool/good.qcow2") == nil)
        #expect(try store.check().isHealthy)
    }

    @Test("bitmaps and digests round-trip; digests move found zeros into the zero figures", arguments: StoreBackend.allCases)
    func bitmapsAndDigests(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        let extents = [Extent(start: 0, length: 8 << 20, depth: 0, present: true, zero: false, data: true, offset: 0x50000)]
        var scan = scanOf("/pool/d.qcow2", extents: extents)
        scan.bitmaps = [
            DirtyBitmap(name: "b0", granularity: 65536, inUse: false, auto: true, ranges: [0..<65536, 1 << 20..<(2 << 20)]),
            DirtyBitmap(name: "a1", granularity: 512, inUse: true, auto: false, ranges: []),
        ]
        let saved = try store.save(scan)
        let scanID = try #require(saved.scan.id)
        #expect(try store.bitmaps(scanID: scanID).map(\.name) == ["a1", "b0"])
        #expect(try store.bitmaps(scanID: scanID).last == scan.bitmaps[0])
        #expect(try store.digests(scanID: scanID) == nil)
        #expect(try store.foundZeroRanges(scanID: scanID).isEmpty)
        let digests = ScanDigests(
            scanID: scanID, chunkSize: 4 << 20, digests: (0..<64).map { UInt8($0) }, sources: [1, UInt64.max], zeroRanges: [4096..<8192],
            zeroDataBytes: 4096, ownZeroDataBytes: 4096, bytesRead: 8 << 20, chunksRead: 2, madeAtNanoseconds: 77)
        try store.saveDigests(digests)
        try store.saveDigests(digests)  // replacing moves only the difference
        #expect(try store.digests(scanID: scanID) == digests)
        #expect(try store.latestDigests(path: "/pool/d.qcow2") == digests)
        #expect(try store.foundZeroRanges(scanID: scanID) == [4096..<8192])
        #expect(try store.digestScans(path: "/pool/d.qcow2") == [DigestScanSummary(scanID: scanID, chunkCount: 2, madeAtNanoseconds: 77)])
        let after = try #require(try store.latestScan(path: "/pool/d.qcow2"))
        #expect(after.scan.dataBytes == saved.scan.dataBytes - 4096)
        #expect(after.scan.zeroBytes == saved.scan.zeroBytes + 4096)
        var gone = digests
        gone.scanID = 424_242
        #expect(throws: StoreError.self) { try store.saveDigests(gone) }
    }

    @Test("the same operations give the same answers from SQLite and PostgreSQL")
    func sameAnswers() throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let stores = try StoreBackend.allCases.map { try $0.makeStore(in: scratch.url) }
        var answers: [[String]] = []
        for store in stores {
            var lines: [String] = []
            for (index, path) in ["/pool/x/1.qcow2", "/pool/x/2.vhd", "/pool/y/3.qcow2"].enumerated() {
                let saved = try store.save(
                    scanOf(path, extents: syntheticExtents(count: 300 * (index + 1), seed: UInt64(index)), layers: index + 1))
                lines.append(
                    "\(saved.image.id ?? -1) \(saved.scan.id ?? -1) \(saved.scan.dataBytes) \(saved.scan.zeroBytes) \(saved.scan.extentCount)"
                )
            }
            for row in try store.scannedImages(matching: [], directories: ["/pool/x"]) {
                lines.append("\(row.image.path) \(row.layers.count) \(row.scan.ownDataBytes) \(row.scan.dataExtentHistogram)")
            }
            let extents = try store.extents(scanID: 2, from: 12_345, to: 999_999)
            lines.append("\(extents.count) \(extents.first.map { "\($0)" } ?? "")")
            answers.append(lines)
        }
        #expect(answers[0] == answers[1])
    }

    @Test("the image list in pages: byte order, failed paths among scanned ones, directories, cursor", arguments: StoreBackend.allCases)
    func pages(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-store")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        let scanned = [
            "/sr/a/2.qcow2", "/sr/a/10.qcow2", "/sr/a/Z.qcow2", "/sr/a0/x.qcow2", "/sr/b/1.qcow2", "/other/1.qcow2", "/sr/a/é.qcow2",
        ]
        for path in scanned { _ = try store.save(scanOf(path, extents: syntheticExtents(count: 5))) }
        _ = try store.save(scanOf("/sr/a/2.qcow2", extents: syntheticExtents(count: 6)))
        try store.recordFailure(path: "/sr/a/3.qcow2", message: "bad", atNanoseconds: 9)
        try store.recordFailure(path: "/sr/a/10.qcow2", message: "later failure", atNanoseconds: 99)
        let everything = (scanned + ["/sr/a/3.qcow2"]).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var walked: [String] = []
        var after: String?
        repeat {
            let page = try store.imagePage(after: after, limit: 3, under: [])
            walked += page.map(\.path)
            after = page.count == 3 ? page.last?.path : nil
        } while after != nil
        #expect(walked == everything)
        let underA = try store.imagePage(after: nil, limit: 100, under: ["/sr/a"])
        #expect(underA.map(\.path) == ["/sr/a/10.qcow2", "/sr/a/2.qcow2", "/sr/a/3.qcow2", "/sr/a/Z.qcow2", "/sr/a/é.qcow2"])
        #expect(underA[0].failure?.message == "later failure")
        #expect(underA[0].scanned != nil)
        #expect(underA[1].scansKept == 2)
        #expect(underA[2].scanned == nil && underA[2].failure?.message == "bad")
        #expect(
            try store.imagePage(after: "/sr/a/2.qcow2", limit: 2, under: ["/sr/a/", "/sr/b"]).map(\.path) == [
                "/sr/a/3.qcow2", "/sr/a/Z.qcow2",
            ])
        #expect(try store.imagePage(after: "/sr/zzz", limit: 5, under: []).isEmpty)

        // The keys of a page are its rows' keys; the rows by path come back in the order asked, unknown
        // paths left out; a rescan, a failure and a forget each move or remove a key.
        let keys = try store.imagePageKeys(after: nil, limit: 100, under: ["/sr/a"])
        #expect(keys == underA.map(\.key))
        #expect(keys[1].scansKept == 2 && keys[1].scanID != nil && keys[2].scanID == nil && keys[2].failedAtNanoseconds == 9)
        let asked = ["/sr/b/1.qcow2", "/nowhere.qcow2", "/sr/a/3.qcow2", "/sr/a/10.qcow2"]
        let rows = try store.listedImages(paths: asked)
        #expect(rows.map(\.path) == ["/sr/b/1.qcow2", "/sr/a/3.qcow2", "/sr/a/10.qcow2"])
        #expect(rows[2].key == keys[0])
        #expect(try store.imagePageKeys(after: "/sr/a/2.qcow2", limit: 2, under: []).map(\.path) == ["/sr/a/3.qcow2", "/sr/a/Z.qcow2"])
        _ = try store.save(scanOf("/sr/a/Z.qcow2", extents: syntheticExtents(count: 7)))
        try store.recordFailure(path: "/sr/a/2.qcow2", message: "now failing", atNanoseconds: 1_000)
        _ = try store.forget(paths: ["/sr/a/10.qcow2"])
        let moved = try store.imagePageKeys(after: nil, limit: 100, under: ["/sr/a"])
        #expect(moved.map(\.path) == ["/sr/a/2.qcow2", "/sr/a/3.qcow2", "/sr/a/Z.qcow2", "/sr/a/é.qcow2"])
        #expect(moved[0].failedAtNanoseconds == 1_000 && moved[0].scanID == keys[1].scanID)
        #expect(moved[2].scanID != keys[3].scanID && moved[2].scansKept == 2)
        #expect(moved[3] == keys[4])
        #expect(try store.listedImages(paths: []).isEmpty)
    }
}
