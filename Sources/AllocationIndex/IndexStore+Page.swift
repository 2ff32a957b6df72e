import Foundation
internal import GRDB

extension IndexStore {
    public func imagePageKeys(after: String?, limit: Int, under directories: [String]) throws -> [ListedImageKey] {
        let (listed, arguments) = Self.pageSQL(after: after, limit: limit, under: directories)
        let sql = """
            WITH listed AS (\(listed))
            SELECT l.path, i.latest_scan_id, f.failed_at_ns,
                CASE WHEN i.id IS NULL THEN 0 ELSE (SELECT count(*) FROM scans k WHERE k.image_id = i.id) END
            FROM listed l
            LEFT JOIN images i ON i.path = l.path AND i.latest_scan_id IS NOT NULL
            LEFT JOIN scan_failures f ON f.path = l.path
            ORDER BY l.path
            """
        // A cursor, and optionals read as null checks: a page is a thousand rows, read on every request.
        func number(_ row: Row, _ index: Int) -> Int64? { row.hasNull(atIndex: index) ? nil : row[index] as Int64 }
        return try writer.read { db in
            var keys: [ListedImageKey] = []
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try rows.next() {
                keys.append(
                    ListedImageKey(
                        path: row[0], scanID: number(row, 1), failedAtNanoseconds: number(row, 2), scansKept: row[3]))
            }
            return keys
        }
    }

    public func listedImages(paths: [String]) throws -> [ListedImage] {
        guard !paths.isEmpty else { return [] }
        return try writer.read { db in try Self.listedImages(db, paths: paths) }
    }

    /// The page's paths: scanned images and paths with only a failed scan, after `after` in byte order
    /// (SQLite's BINARY collation), under `directories`, at most `limit`.
    private static func pageSQL(after: String?, limit: Int, under directories: [String]) -> (String, StatementArguments) {
        let ranges = PathRanges.under(directories)
        var arguments: [any DatabaseValueConvertible] = [after ?? ""]
        var filter = ""
        if !ranges.isEmpty {
            filter = " AND (" + ranges.map { _ in "(path >= ? AND path < ?)" }.joined(separator: " OR ") + ")"
            for range in ranges { arguments += [range.lower, range.upper] }
        }
        let sql = """
            SELECT path FROM images WHERE latest_scan_id IS NOT NULL AND path > ?\(filter)
            UNION SELECT path FROM scan_failures WHERE path > ?\(filter)
            ORDER BY path LIMIT ?
            """
        return (sql, StatementArguments(arguments + arguments + [max(limit, 0)]))
    }

    /// The list rows at `paths`, in that order, read in `db`'s transaction.
    private static func listedImages(_ db: Database, paths: [String]) throws -> [ListedImage] {
        guard !paths.isEmpty else { return [] }
        let images = try Stored<ImageRecord>.filter(paths.contains(Columns.path) && Columns.latestScanId != nil).fetchAll(db).map(
            \.value)
        let scanIDs = images.compactMap(\.latestScanId)
        var scans: [Int64: ScanRecord] = [:]
        for stored in try Stored<ScanRecord>.fetchAll(db, keys: scanIDs) { if let id = stored.value.id { scans[id] = stored.value } }
        var layers: [Int64: [ScanLayerRecord]] = [:]
        for stored in try Stored<ScanLayerRecord>.filter(scanIDs.contains(Columns.scanId)).order(Columns.depth).fetchAll(db) {
            layers[stored.value.scanId, default: []].append(stored.value)
        }
        let marks = Array(repeating: "?", count: paths.count).joined(separator: ",")
        var failures: [String: ScanFailure] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT path, failed_at_ns, message FROM scan_failures WHERE path IN (\(marks))",
            arguments: StatementArguments(paths))
        {
            let failure = ScanFailure(path: row[0], failedAtNanoseconds: row[1], message: row[2])
            failures[failure.path] = failure
        }
        let imageIDs = images.compactMap(\.id)
        var counts: [Int64: Int] = [:]
        if !imageIDs.isEmpty {
            let idMarks = Array(repeating: "?", count: imageIDs.count).joined(separator: ",")
            for row in try Row.fetchAll(
                db, sql: "SELECT image_id, count(*) FROM scans WHERE image_id IN (\(idMarks)) GROUP BY image_id",
                arguments: StatementArguments(imageIDs))
            {
                counts[row[0]] = row[1]
            }
        }
        let byPath = Dictionary(images.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        return paths.compactMap { path in
            let scanned = byPath[path].flatMap { image -> ImageWithScan? in
                guard let id = image.latestScanId, let scan = scans[id] else { return nil }
                return ImageWithScan(image: image, scan: scan, layers: layers[id] ?? [])
            }
            guard scanned != nil || failures[path] != nil else { return nil }
            return ListedImage(
                path: path, scanned: scanned, failure: failures[path],
                scansKept: scanned == nil ? 0 : byPath[path]?.id.flatMap { counts[$0] } ?? 0)
        }
    }
}
