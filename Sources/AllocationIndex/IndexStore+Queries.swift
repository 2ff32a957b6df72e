import Foundation
internal import GRDB
import ImageFormats

/// A scan as read back from the index: the image, the scan, and the chain identity it was taken against.
public struct IndexedScan: Sendable, Equatable {
    public var image: ImageRecord
    public var scan: ScanRecord
    /// Layer 0 is the image itself.
    public var layers: [ScanLayerRecord]

    public init(image: ImageRecord, scan: ScanRecord, layers: [ScanLayerRecord]) {
        self.image = image
        self.scan = scan
        self.layers = layers
    }
}

extension IndexStore {
    /// The latest scan of the image at the canonical `path`, if it has one.
    public func latestScan(path: String) throws -> IndexedScan? {
        try writer.read { db in
            guard let image = try Self.imageRow(path: path, db), let scanID = image.latestScanId else { return nil }
            return try Self.indexedScan(scanID: scanID, db)
        }
    }

    /// The image row for `path`. This and ``indexedScan(scanID:_:)`` serve every lookup (a freshness check
    /// of each image a scan visits, each HTTP and NBD request): their statements are prepared once per
    /// connection (`cachedStatement`), as a query built each time was compiled and authorized again, a
    /// sixth of the CPU of looking up an unchanged image. They name their columns: a cached `SELECT *`
    /// keeps the columns it was prepared with while SQLite re-prepares it after another process's migration
    /// adds one ("column not found", seen with eight processes creating one index).
    static func imageRow(path: String, _ db: Database) throws -> ImageRecord? {
        try Stored<ImageRecord>.fetchOne(db.cachedStatement(sql: imagesByPath), arguments: [path])?.value
    }

    /// The image row with this id (the HTTP service names images by id), from a cached statement.
    static func imageRow(id: Int64, _ db: Database) throws -> ImageRecord? {
        try Stored<ImageRecord>.fetchOne(db.cachedStatement(sql: imagesByID), arguments: [id])?.value
    }

    /// `SELECT` of `columns` (quoted) from `table`, for a cached statement.
    private static func select(_ columns: [String], from table: String, where condition: String) -> String {
        "SELECT " + columns.map { "\"\($0)\"" }.joined(separator: ", ") + " FROM \(table) WHERE \(condition)"
    }

    private static let imagesByPath = select(ImageRecord.columnNames, from: "images", where: "path = ?")
    private static let imagesByID = select(ImageRecord.columnNames, from: "images", where: "id = ?")
    private static let scansByID = select(ScanRecord.columnNames, from: "scans", where: "id = ?")
    private static let layersByScan = select(ScanLayerRecord.columnNames, from: "scan_layers", where: "scan_id = ? ORDER BY depth")

    /// True when scan `id` was recorded once and is gone now (history retention, `gc`, or its image
    /// forgotten): ids are never reused, and `id_high_water` keeps the largest ever given (migration 0004).
    public func scanWasRemoved(id: Int64) throws -> Bool {
        try writer.read { db in
            let last = try Int64.fetchOne(db, sql: "SELECT last FROM id_high_water WHERE name = 'scans'") ?? 0
            guard id > 0, id <= last else { return false }
            return try Stored<ScanRecord>.fetchOne(db, key: id) == nil
        }
    }

    /// The image row for `path`, scanned or not.
    public func image(path: String) throws -> ImageRecord? {
        try writer.read { db in try Self.imageRow(path: path, db) }
    }

    /// All scans of the image at `path`, oldest first.
    public func scans(path: String) throws -> [ScanRecord] {
        try writer.read { db in
            guard let image = try Stored<ImageRecord>.filter(Columns.path == path).fetchOne(db)?.value, let id = image.id
            else { return [] }
            return try Stored<ScanRecord>.filter(Columns.imageId == id).order(Columns.id).fetchAll(db).map(\.value)
        }
    }

    static func indexedScan(scanID: Int64, _ db: Database) throws -> IndexedScan? {
        guard
            let scan = try Stored<ScanRecord>.fetchOne(db.cachedStatement(sql: scansByID), arguments: [scanID])?.value,
            let image = try imageRow(id: scan.imageId, db)
        else { return nil }
        let layers = try Stored<ScanLayerRecord>.fetchAll(
            db.cachedStatement(sql: layersByScan), arguments: [scanID]
        ).map(\.value)
        return IndexedScan(image: image, scan: scan, layers: layers)
    }

    /// Calls `body` with each extent of a scan that overlaps `[lower, upper)`, clipped to it, in order.
    ///
    /// Only the chunks overlapping the range are read: a bounded lookup on `(scan_id, start)`.
    public func forEachExtent(scanID: Int64, from lower: UInt64, to upper: UInt64, _ body: (Extent) throws -> Void) throws {
        guard lower < upper else { return }
        let sql = """
            SELECT start, extent_count, runs FROM extent_chunks
            WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = :scan)
              AND start >= coalesce((SELECT max(start) FROM extent_chunks WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = :scan) AND start <= :lower), 0)
              AND start < :upper
            ORDER BY start
            """
        let arguments: StatementArguments = ["scan": scanID, "lower": Int64(lower), "upper": Int64(min(upper, UInt64(Int64.max)))]
        try writer.read { db in
            // A cached statement (compiled once per connection), and the blob read in place, not copied.
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            while let row = try rows.next() {
                let start: Int64 = row[0]
                let count: Int = row[1]
                try row.withUnsafeData(atIndex: 2) { blob in
                    guard let blob else { throw StoreError.corruptChunk("chunk at \(start) has no runs") }
                    try Self.forEachExtent(inChunk: blob, start: start, count: count, from: lower, to: upper, body)
                }
            }
        }
    }

    /// Calls `body` with each extent of one stored chunk that overlaps `[lower, upper)`, clipped to it.
    public static func forEachExtent(
        inChunk blob: some ContiguousBytes, start: Int64, count: Int, from lower: UInt64, to upper: UInt64, _ body: (Extent) throws -> Void
    ) throws {
        try ExtentRunCodec.decode(blob, start: UInt64(start), count: count, skippingTo: lower, until: upper) { extent in
            if extent.start >= lower && extent.end <= upper {
                try body(extent)
            } else if let clipped = extent.clipped(to: lower, upper) {
                try body(clipped)
            }
        }
    }

    /// Sums of the per-chunk totals of a scan, computed in SQL.
    public func chunkTotals(scanID: Int64) throws -> (extents: Int64, data: Int64, ownData: Int64, zero: Int64, compressed: Int64) {
        try writer.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT coalesce(sum(extent_count), 0), coalesce(sum(data_bytes), 0), coalesce(sum(own_data_bytes), 0),
                           coalesce(sum(zero_bytes), 0), coalesce(sum(compressed_bytes), 0)
                    FROM extent_chunks WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = ?)
                    """, arguments: [scanID])
            guard let row else { return (0, 0, 0, 0, 0) }
            return (row[0], row[1], row[2], row[3], row[4])
        }
    }
}

/// An indexed image with its latest scan and that scan's chain, for reports.
public struct ImageWithScan: Sendable {
    public var image: ImageRecord
    public var scan: ScanRecord
    public var layers: [ScanLayerRecord]

    public init(image: ImageRecord, scan: ScanRecord, layers: [ScanLayerRecord]) {
        self.image = image
        self.scan = scan
        self.layers = layers
    }
}

extension IndexStore {
    /// Every image that has a scan, optionally only those at `paths` or under directory prefixes.
    ///
    /// Three queries whatever the number of images: images, their latest scans, those scans' layers.
    public func scannedImages(matching paths: [String], directories: [String] = []) throws -> [ImageWithScan] {
        try writer.read { db in
            var images = try Stored<ImageRecord>.filter(Columns.latestScanId != nil).order(Columns.path).fetchAll(db).map(\.value)
            if !paths.isEmpty || !directories.isEmpty {
                let exact = Set(paths)
                images = images.filter { image in
                    exact.contains(image.path) || directories.contains { image.path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
                }
            }
            let scanIDs = images.compactMap(\.latestScanId)
            let scans = Dictionary(
                uniqueKeysWithValues: try Stored<ScanRecord>.fetchAll(db, keys: scanIDs).compactMap { stored in
                    stored.value.id.map { ($0, stored.value) }
                })
            var layers: [Int64: [ScanLayerRecord]] = [:]
            for stored in try Stored<ScanLayerRecord>.filter(scanIDs.contains(Columns.scanId)).order(Columns.depth).fetchAll(db) {
                layers[stored.value.scanId, default: []].append(stored.value)
            }
            return images.compactMap { image in
                guard let id = image.latestScanId, let scan = scans[id] else { return nil }
                return ImageWithScan(image: image, scan: scan, layers: layers[id] ?? [])
            }
        }
    }

    /// One scan by id, with its image and chain.
    public func indexedScan(id: Int64) throws -> IndexedScan? {
        try writer.read { db in try Self.indexedScan(scanID: id, db) }
    }
}
