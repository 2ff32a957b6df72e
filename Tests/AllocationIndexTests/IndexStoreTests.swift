import Foundation
import GRDB
import ImageFormats
import Testing

@testable import AllocationIndex
@testable import TestSupport

func newScan(path: String = "/images/disk.qcow2", extents: [Extent], mtime: Int64 = 1) -> NewScan {
    let size = extents.last?.end ?? 0
    let layer = NewLayer(
        path: path, format: .qcow2, virtualSize: size, clusterSize: 65536, backingPath: nil, metadataJSON: "{}",
        device: 1, inode: 2, fileSize: 3, mtimeNanoseconds: mtime, ctimeNanoseconds: mtime, headerChecksum: "fnv1a64:0")
    return NewScan(layers: [layer], extents: extents, scannedAtNanoseconds: 5, durationNanoseconds: 6, toolVersion: "test", warnings: [])
}

struct Crash: Error {}

@Suite struct IndexStoreTests {
    @Test("migrates an empty database to the embedded schema")
    func migrateFromEmpty() throws {
        let store = try IndexStore()
        #expect(try store.appliedMigrations() == IndexStore.migrationNames)
        #expect(IndexStore.migrationNames.first == "0001_initial")
        let schema = try store.schemaSQL().joined(separator: "\n")
        for table in ["CREATE TABLE images", "CREATE TABLE scans", "CREATE TABLE scan_layers", "CREATE TABLE extent_chunks"] {
            #expect(schema.contains(table))
        }
        #expect(schema.contains("PRIMARY KEY (scan_id, start)"))
    }

    @Test("the migrations embedded in the binary are the files in migrations/")
    func embeddedMatchesFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.map { String($0.dropLast(4)) } == IndexStore.migrationNames)
        for (file, embedded) in zip(files, EmbeddedMigrations.all) {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            #expect(text == embedded.sql)
        }
    }

    @Test("a real database file is WAL, reopens, and keeps its scans")
    func fileDatabase() throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb")
        defer { scratch.cleanup() }
        let path = scratch.url.appendingPathComponent("nested/index.sqlite").path
        let extents = syntheticExtents(count: 100)
        do {
            let store = try IndexStore(path: path)
            try store.save(newScan(extents: extents))
        }
        let reopened = try IndexStore(path: path)
        let latest = try #require(try reopened.latestScan(path: "/images/disk.qcow2"))
        #expect(try reopened.extents(scanID: try #require(latest.scan.id)) == extents)
        let mode = try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test("saves and reads back many chunks exactly, with totals agreeing in SQL")
    func roundTrip() throws {
        let store = try IndexStore()
        let extents = syntheticExtents(count: IndexStore.extentsPerChunk * 3 + 17)
        let saved = try store.save(newScan(extents: extents))
        let scanID = try #require(saved.scan.id)
        #expect(try store.extents(scanID: scanID) == extents)
        var expected = ExtentTotals()
        for extent in extents { expected.add(extent) }
        let totals = try store.chunkTotals(scanID: scanID)
        #expect(totals.extents == Int64(extents.count))
        #expect(totals.data == Int64(expected.data))
        #expect(totals.ownData == Int64(expected.ownData))
        #expect(totals.zero == Int64(expected.zero))
        #expect(totals.compressed == Int64(expected.compressed))
        #expect(saved.scan.dataBytes == Int64(expected.data))
        #expect(saved.scan.extentCount == Int64(extents.count))
    }

    @Test("refuses scans whose extents overlap, leave gaps or miss the virtual size; counts merged rows")
    func tilingAndRows() throws {
        let store = try IndexStore()
        let zero = Extent(start: 0, length: 4096, depth: 0, present: true, zero: true, data: false, offset: 0)
        var overlapping = newScan(extents: [zero, zero])
        overlapping.layers[0].virtualSize = 8192
        #expect(throws: StoreError.self) { try store.save(overlapping) }
        var short = newScan(extents: [zero])
        short.layers[0].virtualSize = 8192
        #expect(throws: StoreError.self) { try store.save(short) }
        // Two compressed clusters stay two stored extents (descriptors) but are one printed row.
        let clusters = (0..<2).map { index in
            Extent(
                start: UInt64(index) * 65536, length: 65536, depth: 0, present: true, zero: false, data: true, compressed: true,
                compressedCluster: .init(hostOffset: 0x10000 * UInt64(index + 3), byteCount: 512))
        }
        let saved = try store.save(newScan(extents: clusters))
        #expect(try store.extents(scanID: try #require(saved.scan.id)).count == 2)
        #expect(saved.scan.extentCount == 1)
    }

    @Test("range queries return exactly the overlapping extents, clipped")
    func rangeQueries() throws {
        let store = try IndexStore()
        let extents = syntheticExtents(count: IndexStore.extentsPerChunk * 2 + 5)
        let scanID = try #require(try store.save(newScan(extents: extents)).scan.id)
        let size = extents.last!.end
        for (lower, upper) in [(0, 1), (size / 3, size / 3 + 12345), (size / 2, size), (size - 1, size), (4096, 4096 * 1000)]
            as [(UInt64, UInt64)]
        {
            let expected = extents.compactMap { $0.clipped(to: lower, upper) }
            #expect(try store.extents(scanID: scanID, from: lower, to: upper) == expected, "range \(lower)..<\(upper)")
        }
        #expect(try store.extents(scanID: scanID, from: size, to: size + 100).isEmpty)
    }

    @Test("a scan that fails inside its transaction leaves the previous scan intact and nothing half-written")
    func crashInTransaction() throws {
        let store = try IndexStore()
        let first = syntheticExtents(count: 50, seed: 1)
        let saved = try store.save(newScan(extents: first, mtime: 1))
        #expect(throws: Crash.self) {
            try store.save(newScan(extents: syntheticExtents(count: 9000, seed: 2), mtime: 2)) { _ in throw Crash() }
        }
        let latest = try #require(try store.latestScan(path: "/images/disk.qcow2"))
        #expect(latest == saved)
        #expect(try store.scans(path: "/images/disk.qcow2").count == 1)
        #expect(try store.extents(scanID: try #require(latest.scan.id)) == first)
        let chunkRows = try store.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM extent_chunks") }
        #expect(chunkRows == 1)
    }

    @Test("image and scan ids are never reused after forget or gc removed the newest ones (migration 0004)")
    func idsAreNotReused() throws {
        let store = try IndexStore()
        let first = try store.save(newScan(path: "/images/a.qcow2", extents: syntheticExtents(count: 10, seed: 1)))
        let newest = try store.save(newScan(path: "/images/b.qcow2", extents: syntheticExtents(count: 10, seed: 2)))
        _ = try store.forget(paths: ["/images/b.qcow2"])
        let next = try store.save(newScan(path: "/images/c.qcow2", extents: syntheticExtents(count: 10, seed: 3)))
        #expect(try #require(next.image.id) > (try #require(newest.image.id)))
        #expect(try #require(next.scan.id) > (try #require(newest.scan.id)))
        // gc removing the newest scan of an image: its id is not given again either.
        let older = try store.save(newScan(path: "/images/a.qcow2", extents: syntheticExtents(count: 12, seed: 4), mtime: 2))
        _ = try store.forget(paths: ["/images/c.qcow2"])
        _ = try store.collectGarbage(keep: 1, olderThanNanoseconds: nil)
        let again = try store.save(newScan(path: "/images/d.qcow2", extents: syntheticExtents(count: 10, seed: 5)))
        #expect(try #require(again.scan.id) > (try #require(older.scan.id)))
        #expect(try #require(again.image.id) > (try #require(next.image.id)))
        // An existing path keeps its image id.
        let rescan = try store.save(newScan(path: "/images/a.qcow2", extents: syntheticExtents(count: 14, seed: 6), mtime: 3))
        #expect(rescan.image.id == first.image.id)
    }

    @Test("the high-water marks follow every insert (the triggers of migration 0004)")
    func highWaterFromOlderSchema() throws {
        let store = try IndexStore()
        try store.save(newScan(path: "/images/a.qcow2", extents: syntheticExtents(count: 10, seed: 1)))
        let marks = try store.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT name, last FROM id_high_water ORDER BY name").map {
                [$0[0] as String, String($0[1] as Int64)]
            }
        }
        #expect(marks == [["images", "1"], ["scans", "1"]])
    }

    @Test("rescans keep history and move latest_scan_id")
    func history() throws {
        let store = try IndexStore()
        try store.save(newScan(extents: syntheticExtents(count: 10, seed: 1), mtime: 1))
        let second = try store.save(newScan(extents: syntheticExtents(count: 20, seed: 2), mtime: 2))
        #expect(try store.scans(path: "/images/disk.qcow2").count == 2)
        #expect(try store.latestScan(path: "/images/disk.qcow2") == second)
    }

    @Test("the schema refuses extents chunks that would break invariants")
    func schemaInvariants() throws {
        let store = try IndexStore()
        #expect(throws: DatabaseError.self) {
            try store.writer.write { db in
                try db.execute(
                    sql:
                        "INSERT INTO extent_chunks (scan_id, start, length, extent_count, data_bytes, own_data_bytes, zero_bytes, compressed_bytes, runs) VALUES (999, 0, 0, 1, 0, 0, 0, 0, x'00')"
                )
            }
        }
    }
}

@Suite struct ExtentRunCodecTests {
    @Test("round-trips every flag combination and offset pattern")
    func roundTrip() throws {
        let extents = syntheticExtents(count: 3000, seed: 7)
        let blob = ExtentRunCodec.encode(extents[...])
        var decoded: [Extent] = []
        try ExtentRunCodec.decode(blob, start: 0, count: extents.count) { decoded.append($0) }
        #expect(decoded == extents)
        #expect(blob.count < extents.count * 8, "packed runs should be compact")
    }

    @Test("a damaged blob throws instead of trapping")
    func damaged() {
        let blob = ExtentRunCodec.encode(syntheticExtents(count: 10)[...])
        for cut in 0..<blob.count {
            #expect(throws: StoreError.self) {
                try ExtentRunCodec.decode(blob.prefix(cut), start: 0, count: 10) { _ in }
            }
        }
    }
}

@Suite struct DataExtentStatisticsTests {
    func extents(_ lengths: [UInt64]) -> [Extent] {
        var start: UInt64 = 0
        return lengths.map { length in
            defer { start += length + 4096 }
            return Extent(start: start, length: length, depth: 0, present: true, zero: false, data: true, offset: start)
        }
    }

    @Test("median, largest, count and histogram equal a sort-based answer, equal lengths included")
    func statistics() {
        var state: UInt64 = 3
        for shape in 0..<4 {
            let lengths: [UInt64] = (0..<(shape == 0 ? 200_000 : 5001)).map { index in
                state = state &* 6_364_136_223_846_793_005 &+ 1
                switch shape {
                case 0: return 4096  // every extent alike: the case that made a plain quickselect quadratic
                case 1: return (state >> 40) % 1_000_000 + 1
                case 2: return index % 3 == 0 ? 65536 : 512
                default: return UInt64(index + 1)
                }
            }
            let statistics = DataExtentStatistics(extents(lengths))
            let sorted = lengths.sorted()
            #expect(statistics.median == sorted[(sorted.count - 1) / 2], "shape \(shape)")
            #expect(statistics.largest == sorted.last)
            #expect(statistics.count == UInt64(lengths.count))
            #expect(statistics.histogram.reduce(0, +) == UInt64(lengths.count))
        }
        #expect(DataExtentStatistics([]).median == 0)
    }
}
