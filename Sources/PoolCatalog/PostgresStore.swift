import AllocationIndex
import Foundation
import ImageFormats
import Logging
import PostgresNIO

/// The index on a PostgreSQL server: one catalog for a pool of hosts that share storage (`--db postgres://...`).
///
/// Same concepts and answers as the SQLite ``IndexStore`` (the same record types, the same packed extent
/// blobs, `bytea` here), schema from `migrations/postgres/`. Every operation is one transaction; a reader
/// sees one snapshot (`REPEATABLE READ`). Records are decoded from their columns by the names the records'
/// coding keys already give (``RowDecoder``), so both stores decode rows the same way; a scan comes as one
/// row per layer.
public final class PostgresStore: IndexStoring, Sendable {
    let database: BlockingPostgres
    /// Connections that hold scan locks (``withScanLock(path:_:)``) for as long as a scan runs, apart from
    /// those that run statements, so waiting scans never starve the store of connections.
    let locks: BlockingPostgres
    public let location: PostgresLocation

    /// The URL, password-free, where messages name the index.
    public var path: String? { location.description }
    /// The role may not write the catalog (no INSERT on `scans`): a monitoring role. Commands then answer from
    /// what is there and say the index is read-only instead of failing on the server's refusal.
    public let isReadOnly: Bool
    public var isShared: Bool { true }

    /// Connects (the first connection is made now, so a wrong URL fails at once) and applies pending
    /// migrations under an advisory lock.
    ///
    /// - Parameters:
    ///   - password: from ``PostgresPassword/lookup(for:environment:warn:)``; nil for trust or peer auth.
    ///   - migrate: apply pending migrations (`extentdb db migrate` reports them itself).
    public init(location: PostgresLocation, password: String?, maximumConnections: Int = 4, migrate: Bool = true) throws {
        self.location = location
        var logger = Logger(label: "extentdb.postgres")
        logger.logLevel = .critical
        database = try BlockingPostgres(location: location, password: password, maximumConnections: maximumConnections, logger: logger)
        locks = try BlockingPostgres(location: location, password: password, maximumConnections: 64, logger: logger)
        isReadOnly = try database.withConnection { session in
            let rows = try session.rows(
                "SELECT to_regclass('scans') IS NOT NULL AND NOT has_table_privilege(current_user, 'scans', 'INSERT')")
            return try rows.first?.decode(Bool.self) ?? false
        }
        if isReadOnly {
            // A reading role cannot migrate: a catalog that needs it waits for a host that may write.
            let applied = Set((try? PostgresMigrator.applied(database)) ?? [])
            guard Set(PostgresMigrator.migrationNames).isSubset(of: applied) else { throw StoreError.needsUpgrade(location.description) }
        } else if migrate {
            _ = try PostgresMigrator.migrate(database)
        }
    }

    /// Applies pending migrations; returns the names applied now, in order.
    public func migrate() throws -> [String] {
        try PostgresMigrator.migrate(database)
    }

    /// The migrations this binary carries and those the catalog has.
    public func appliedMigrations() throws -> [String] {
        try PostgresMigrator.applied(database)
    }

    // MARK: One scan per image across hosts

    /// Holds a session-level advisory lock on the path's 64-bit hash while `body` runs. Hosts that want the
    /// same image wait in `pg_advisory_lock`; the lock ends with its connection, so a host that dies
    /// mid-scan releases it (and its uncommitted scan is rolled back by the server).
    public func withScanLock<T>(path: String, _ body: () throws -> T) throws -> T {
        try locks.withConnection { session in
            try session.execute("SELECT pg_advisory_lock(hashtextextended(\(path), 0))")
            return try Self.unlocking(path: path, session, body)
        }
    }

    /// `pg_try_advisory_lock`: nil when another session holds the image's lock.
    public func withScanLockIfFree<T>(path: String, _ body: () throws -> T) throws -> T? {
        try locks.withConnection { session in
            let taken = try session.rows("SELECT pg_try_advisory_lock(hashtextextended(\(path), 0))").first?.decode(Bool.self) ?? false
            guard taken else { return nil }
            return try Self.unlocking(path: path, session, body)
        }
    }

    /// Runs `body`, then lets go of the path's lock whatever happened.
    private static func unlocking<T>(path: String, _ session: BlockingPostgres.Session, _ body: () throws -> T) throws -> T {
        do {
            let result = try body()
            try session.execute("SELECT pg_advisory_unlock(hashtextextended(\(path), 0))")
            return result
        } catch {
            _ = try? session.execute("SELECT pg_advisory_unlock(hashtextextended(\(path), 0))")
            throw error
        }
    }

    // MARK: Reading rows

    /// Decodes the record whose columns carry `prefix` (``imageColumns``, ``scanColumns``, ``layerColumns``)
    /// from a row.
    static func record<T: Decodable>(_ type: T.Type, columns: PostgresRandomAccessRow, prefix: String) throws -> T {
        try record(type, row: columns, at: RowDecoder.Columns(of: columns, prefix: prefix))
    }

    /// Decodes a record from a row whose columns for it were found already (once for all rows of a result).
    static func record<T: Decodable>(_ type: T.Type, row: PostgresRandomAccessRow, at columns: RowDecoder.Columns) throws -> T {
        do {
            return try T(from: RowDecoder(row: row, columns: columns))
        } catch {
            throw StoreError.corruptChunk("a \(type) row does not decode: \(error)")
        }
    }

    /// An image's columns as ``RowDecoder`` reads them (`i.id AS i_id`, ...), of the table aliased `i`.
    static let imageColumns = ImageRecord.columnNames.map { "i.\($0) AS i_\($0)" }.joined(separator: ", ")
    /// A scan's columns (`s.id AS s_id`, ...), of the table aliased `s`.
    static let scanColumns = ScanRecord.columnNames.map { "s.\($0) AS s_\($0)" }.joined(separator: ", ")
    /// A chain layer's columns (`y.depth AS y_depth`, ...), of `scan_layers` aliased `y`.
    static let layerColumns = ScanLayerRecord.columnNames.map { "y.\($0) AS y_\($0)" }.joined(separator: ", ")

    /// The SELECT list that reads a scan, its image and one of its layers column by column (`i_`, `s_`, `y_`
    /// prefixed, for ``RowDecoder``): a scan comes as one row per layer, which ``indexedScans(_:groupedBy:)``
    /// puts back together. Joined as `images i`, `scans s`, `scan_layers y` and ordered by the scan, then
    /// `y.depth`. The scan's and layer's columns are null when an outer join found none.
    static let indexedScanColumns = "\(imageColumns), \(scanColumns), \(layerColumns)"

    /// Rows of ``indexedScanColumns``, one per layer, as groups: consecutive rows with the same `column`
    /// (a bigint: the scan's id, or a listing's position) are one scan. Each group gives its first row (for
    /// the query's other columns) and its scan, nil when the row has no scan (`s_id` null).
    static func indexedScans(_ rows: [PostgresRow], groupedBy column: String = "s_id") throws -> [(
        row: PostgresRandomAccessRow, indexed: IndexedScan?
    )] {
        var groups: [(row: PostgresRandomAccessRow, key: Int64?, indexed: IndexedScan?)] = []
        guard let first = rows.first?.makeRandomAccess() else { return [] }
        // The rows of a result share their columns: each record's are found once.
        let imageAt = RowDecoder.Columns(of: first, prefix: "i_")
        let scanAt = RowDecoder.Columns(of: first, prefix: "s_")
        let layerAt = RowDecoder.Columns(of: first, prefix: "y_")
        for row in rows {
            let columns = row.makeRandomAccess()
            let key = try columns[column].decode(Int64?.self)
            let layer = columns["y_scan_id"].bytes == nil ? nil : try record(ScanLayerRecord.self, row: columns, at: layerAt)
            if let last = groups.last, let key, last.key == key, let layer {
                groups[groups.count - 1].indexed?.layers.append(layer)
                continue
            }
            var indexed: IndexedScan?
            if columns["s_id"].bytes != nil {
                indexed = IndexedScan(
                    image: try record(ImageRecord.self, row: columns, at: imageAt),
                    scan: try record(ScanRecord.self, row: columns, at: scanAt), layers: layer.map { [$0] } ?? [])
            }
            groups.append((columns, key, indexed))
        }
        return groups.map { ($0.row, $0.indexed) }
    }

    static func indexedScan(scanID: Int64, _ session: BlockingPostgres.Session) throws -> IndexedScan? {
        try indexedScans(
            session.rows(
                """
                SELECT \(unescaped: indexedScanColumns) FROM scans s JOIN images i ON i.id = s.image_id
                LEFT JOIN scan_layers y ON y.scan_id = s.id WHERE s.id = \(scanID) ORDER BY y.depth
                """)
        ).first?.indexed
    }

    // MARK: The latest scan, by path or id

    public func latestScan(path: String) throws -> IndexedScan? {
        try latestScan(imageColumn: "path", equals: path)
    }

    public func latestScan(imageID: Int64) throws -> IndexedScan? {
        try latestScan(imageColumn: "id", equals: imageID)
    }

    /// The latest scan of the image whose `imageColumn` (a fixed column name, never input) equals `value`.
    private func latestScan(imageColumn: String, equals value: some PostgresEncodable & Sendable) throws -> IndexedScan? {
        try database.withConnection { session in
            try Self.indexedScans(
                session.rows(
                    """
                    SELECT \(unescaped: Self.indexedScanColumns) FROM images i JOIN scans s ON s.id = i.latest_scan_id
                    LEFT JOIN scan_layers y ON y.scan_id = s.id WHERE i.\(unescaped: imageColumn) = \(value) ORDER BY y.depth
                    """)
            ).first?.indexed
        }
    }

    /// The latest scans of `paths` in one statement (a directory scan's look-ahead); paths with none are left
    /// out.
    public func latestScans(paths: [String]) throws -> [IndexedScan] {
        guard !paths.isEmpty else { return [] }
        return try database.withConnection { session in
            try Self.indexedScans(
                session.rows(
                    """
                    SELECT \(unescaped: Self.indexedScanColumns) FROM images i JOIN scans s ON s.id = i.latest_scan_id
                    LEFT JOIN scan_layers y ON y.scan_id = s.id WHERE i.path = ANY(\(paths)) ORDER BY s.id, y.depth
                    """)
            ).compactMap(\.indexed)
        }
    }

    public func indexedScan(id: Int64) throws -> IndexedScan? {
        try database.withConnection { session in try Self.indexedScan(scanID: id, session) }
    }

    public func image(path: String) throws -> ImageRecord? {
        try image(column: "path", equals: path)
    }

    /// The image row with this id, scanned or not.
    public func image(id: Int64) throws -> ImageRecord? {
        try image(column: "id", equals: id)
    }

    /// The image row whose `column` (a fixed column name, never input) equals `value`.
    private func image(column: String, equals value: some PostgresEncodable & Sendable) throws -> ImageRecord? {
        try database.withConnection { session in
            try session.rows("SELECT \(unescaped: Self.imageColumns) FROM images i WHERE i.\(unescaped: column) = \(value)").first.map {
                try Self.record(ImageRecord.self, columns: $0.makeRandomAccess(), prefix: "i_")
            }
        }
    }

    // MARK: Extents in a window

    /// Chunk rows read per round trip while walking a window.
    static let chunksPerBatch = 256

    public func forEachExtent(scanID: Int64, from lower: UInt64, to upper: UInt64, _ body: (Extent) throws -> Void) throws {
        guard lower < upper else { return }
        var continuingAt: Int64?
        while true {
            guard
                let batch = try extentChunks(scanID: scanID, from: lower, continuingAt: continuingAt, to: upper, limit: Self.chunksPerBatch)
            else { return }
            for chunk in batch.chunks {
                try IndexStore.forEachExtent(inChunk: chunk.runs, start: chunk.start, count: chunk.count, from: lower, to: upper, body)
            }
            guard batch.chunks.count == Self.chunksPerBatch, let last = batch.chunks.last else { return }
            continuingAt = last.start + 1
        }
    }

    public func extentChunks(scanID: Int64, from lower: UInt64, continuingAt: Int64?, to upper: UInt64, limit: Int) throws
        -> ExtentChunkBatch?
    {
        let upper = Int64(min(upper, UInt64(Int64.max)))
        let lower = min(Int64(min(lower, UInt64(Int64.max))), upper)
        return try database.transaction(readOnly: true) { session -> ExtentChunkBatch? in
            guard let scan = try session.rows("SELECT virtual_size, scanned_at_ns FROM scans WHERE id = \(scanID)").first else {
                return nil
            }
            let (virtualSize, scannedAt) = try scan.decode((Int64, Int64).self)
            let owner = "(SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = \(scanID))"
            let rows: [PostgresRow]
            if let continuingAt {
                rows = try session.rows(
                    """
                    SELECT start, extent_count, runs FROM extent_chunks WHERE scan_id = \(unescaped: owner)
                      AND start >= \(continuingAt) AND start < \(upper) ORDER BY start LIMIT \(limit)
                    """)
            } else {
                rows = try session.rows(
                    """
                    SELECT start, extent_count, runs FROM extent_chunks WHERE scan_id = \(unescaped: owner)
                      AND start >= coalesce((SELECT max(start) FROM extent_chunks WHERE scan_id = \(unescaped: owner) AND start <= \(lower)), 0)
                      AND start < \(upper) ORDER BY start LIMIT \(limit)
                    """)
            }
            return ExtentChunkBatch(
                virtualSize: virtualSize, scannedAtNanoseconds: scannedAt,
                chunks: try rows.map { row in
                    let (start, count, runs) = try row.decode((Int64, Int64, Data).self)
                    return ExtentChunkBatch.Chunk(start: start, count: Int(count), runs: runs)
                })
        }
    }

    // MARK: History

    public func scans(path: String) throws -> [ScanRecord] {
        try database.withConnection { session in
            try session.rows(
                "SELECT \(unescaped: Self.scanColumns) FROM scans s JOIN images i ON i.id = s.image_id WHERE i.path = \(path) ORDER BY s.id"
            ).map { try Self.record(ScanRecord.self, columns: $0.makeRandomAccess(), prefix: "s_") }
        }
    }

    public func scanCounts() throws -> [Int64: Int] {
        try database.withConnection { session in
            var counts: [Int64: Int] = [:]
            for row in try session.rows("SELECT image_id, count(*) FROM scans GROUP BY image_id") {
                let (id, count) = try row.decode((Int64, Int64).self)
                counts[id] = Int(count)
            }
            return counts
        }
    }

    /// Sequences never hand out a number twice: an id at or below the sequence's last value that names no
    /// scan was removed.
    public func scanWasRemoved(id: Int64) throws -> Bool {
        try database.withConnection { session in
            let last =
                try session.rows("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM scans_id_seq").first?.decode(Int64.self) ?? 0
            guard id > 0, id <= last else { return false }
            return try session.rows("SELECT 1 FROM scans WHERE id = \(id)").isEmpty
        }
    }

    // MARK: Report rows

    public func scannedImages(matching paths: [String], directories: [String]) throws -> [ImageWithScan] {
        let exact = Set(paths)
        let rows = try database.withConnection { session in
            try session.rows(
                """
                SELECT \(unescaped: Self.indexedScanColumns) FROM images i JOIN scans s ON s.id = i.latest_scan_id
                LEFT JOIN scan_layers y ON y.scan_id = s.id ORDER BY i.path, y.depth
                """)
        }
        return try Self.indexedScans(rows).compactMap { group -> ImageWithScan? in
            guard let indexed = group.indexed else { return nil }
            let path = indexed.image.path
            if !exact.isEmpty || !directories.isEmpty,
                !exact.contains(path) && !directories.contains(where: { path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") })
            {
                return nil
            }
            return ImageWithScan(image: indexed.image, scan: indexed.scan, layers: indexed.layers)
        }
    }

    // MARK: Bitmaps

    public func bitmaps(scanID: Int64) throws -> [DirtyBitmap] {
        try database.withConnection { session in
            try session.rows(
                "SELECT name, granularity, in_use, auto, ranges FROM scan_bitmaps WHERE scan_id = \(scanID) ORDER BY name"
            ).map { row in
                let (name, granularity, inUse, auto, blob) = try row.decode((String, Int64, Bool, Bool, Data).self)
                guard let ranges = RangePacking.unpack(blob) else {
                    throw StoreError.corruptChunk("bitmap '\(name)' of scan \(scanID) has malformed ranges")
                }
                return DirtyBitmap(name: name, granularity: UInt64(granularity), inUse: inUse, auto: auto, ranges: ranges)
            }
        }
    }

    // MARK: Failures

    public func recordFailure(path: String, message: String, atNanoseconds: Int64) throws {
        try database.withConnection { session in
            try session.execute(
                """
                INSERT INTO scan_failures (path, failed_at_ns, message, host) VALUES (\(path), \(atNanoseconds), \(message), \(HostName.current))
                ON CONFLICT (path) DO UPDATE SET failed_at_ns = excluded.failed_at_ns, message = excluded.message, host = excluded.host
                """)
        }
    }

    public func failure(path: String) throws -> ScanFailure? {
        try database.withConnection { session in
            try session.rows("SELECT path, failed_at_ns, message FROM scan_failures WHERE path = \(path)").first.map { row in
                let (path, at, message) = try row.decode((String, Int64, String).self)
                return ScanFailure(path: path, failedAtNanoseconds: at, message: message)
            }
        }
    }

    public func failures() throws -> [String: ScanFailure] {
        try database.withConnection { session in
            var result: [String: ScanFailure] = [:]
            for row in try session.rows("SELECT path, failed_at_ns, message FROM scan_failures") {
                let (path, at, message) = try row.decode((String, Int64, String).self)
                result[path] = ScanFailure(path: path, failedAtNanoseconds: at, message: message)
            }
            return result
        }
    }

    public func knownImagePaths() throws -> [String] {
        try database.withConnection { session in
            try session.rows(
                "SELECT path FROM images WHERE latest_scan_id IS NOT NULL UNION SELECT path FROM scan_failures ORDER BY path"
            ).map { try $0.decode(String.self) }
        }
    }
}
