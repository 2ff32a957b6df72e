import AllocationIndex
import Foundation
import PostgresNIO

extension PostgresStore {
    /// One page of the image list's keys in byte order of the paths (`COLLATE "C"`, the order SQLite and
    /// every listing use), answered by the path indexes of migration 0002.
    ///
    /// The keys come back as one row of four arrays (nulls as `Int64.min`): a thousand rows cost the client
    /// far more to receive and decode one by one, on every request of a listing. The page's scanned images
    /// come from one scan of the path index (with their ids), merged with the failed paths; the scans kept
    /// are counted by the image index for each row.
    public func imagePageKeys(after: String?, limit: Int, under directories: [String]) throws -> [ListedImageKey] {
        let (filter, bindings, limitIndex) = Self.pageFilter(after: after, limit: limit, under: directories)
        let none = "-9223372036854775808"
        let sql = """
            WITH scanned AS (
                SELECT path, id, latest_scan_id FROM images WHERE latest_scan_id IS NOT NULL AND path COLLATE "C" > $1\(filter)
                ORDER BY path COLLATE "C" LIMIT $\(limitIndex)
            ),
            failed AS (
                SELECT path, failed_at_ns FROM scan_failures WHERE path COLLATE "C" > $1\(filter)
                ORDER BY path COLLATE "C" LIMIT $\(limitIndex)
            ),
            listed AS (
                SELECT coalesce(s.path, f.path) AS path, s.id, s.latest_scan_id, f.failed_at_ns
                FROM scanned s FULL JOIN failed f ON f.path = s.path
                ORDER BY coalesce(s.path, f.path) COLLATE "C" LIMIT $\(limitIndex)
            )
            SELECT coalesce(array_agg(l.path), '{}'),
                coalesce(array_agg(coalesce(l.latest_scan_id, \(none))), '{}'),
                coalesce(array_agg(coalesce(l.failed_at_ns, \(none))), '{}'),
                coalesce(array_agg(CASE WHEN l.id IS NULL THEN 0 ELSE (SELECT count(*) FROM scans k WHERE k.image_id = l.id) END), '{}')
            FROM listed l
            """
        var keys = try database.withConnection { session -> [ListedImageKey] in
            guard let row = try session.rows(PostgresQuery(unsafeSQL: sql, binds: bindings)).first else { return [] }
            let (paths, scanIDs, failedAt, kept) = try row.decode(([String], [Int64], [Int64], [Int64]).self)
            // One aggregate pass fills all four arrays from the same rows: they stay aligned.
            guard [scanIDs.count, failedAt.count, kept.count].allSatisfy({ $0 == paths.count }) else {
                throw StoreError.server(location: location.description, reason: "the image page's key arrays differ in length")
            }
            func value(_ number: Int64) -> Int64? { number == Int64.min ? nil : number }
            return paths.indices.map { index in
                ListedImageKey(
                    path: paths[index], scanID: value(scanIDs[index]), failedAtNanoseconds: value(failedAt[index]),
                    scansKept: Int(kept[index]))
            }
        }
        // An aggregate keeps the order of a sorted subquery in practice, not by promise: sorted here if not.
        let ordered = zip(keys, keys.dropFirst()).allSatisfy { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        if !ordered { keys.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) } }
        return keys
    }

    /// A page's bindings: `$1` the cursor, then each directory's path range (`filter`, in byte order), then
    /// the limit (`$limitIndex`).
    private static func pageFilter(after: String?, limit: Int, under directories: [String]) -> (
        filter: String, bindings: PostgresBindings, limitIndex: Int
    ) {
        var bindings = PostgresBindings()
        bindings.append(after ?? "")
        var filter = ""
        for range in PathRanges.under(directories) {
            bindings.append(range.lower)
            bindings.append(range.upper)
            let lower = bindings.count - 1
            filter += (filter.isEmpty ? "" : " OR ") + "(path COLLATE \"C\" >= $\(lower) AND path COLLATE \"C\" < $\(lower + 1))"
        }
        filter = filter.isEmpty ? "" : " AND (\(filter))"
        bindings.append(Int64(max(limit, 0)))
        return (filter, bindings, bindings.count)
    }

    /// The list rows of `paths`, in that order (one statement), answered by the path indexes of migration
    /// 0002; paths the index no longer knows are left out.
    public func listedImages(paths: [String]) throws -> [ListedImage] {
        guard !paths.isEmpty else { return [] }
        var bindings = PostgresBindings()
        bindings.append(paths)
        let sql = """
            WITH listed AS (SELECT path, ordinality FROM unnest($1::text[]) WITH ORDINALITY AS given(path))
            SELECT g.ordinality AS listed_at, g.path AS listed_path, \(Self.indexedScanColumns),
                f.failed_at_ns AS failed_at_ns, f.message AS failure_message,
                CASE WHEN s.id IS NULL THEN 0 ELSE (SELECT count(*) FROM scans k WHERE k.image_id = i.id) END AS scans_kept
            FROM listed g
            LEFT JOIN images i ON i.path = g.path AND i.latest_scan_id IS NOT NULL
            LEFT JOIN scans s ON s.id = i.latest_scan_id
            LEFT JOIN scan_layers y ON y.scan_id = s.id
            LEFT JOIN scan_failures f ON f.path = g.path
            ORDER BY g.ordinality, y.depth
            """
        let rows = try database.withConnection { session in try session.rows(PostgresQuery(unsafeSQL: sql, binds: bindings)) }
        let listed = try Self.indexedScans(rows, groupedBy: "listed_at").map { group in
            let columns = group.row
            let path = try columns["listed_path"].decode(String.self)
            let failure = try columns["failed_at_ns"].decode(Int64?.self).map {
                ScanFailure(path: path, failedAtNanoseconds: $0, message: try columns["failure_message"].decode(String?.self) ?? "")
            }
            return ListedImage(
                path: path, scanned: group.indexed.map { ImageWithScan(image: $0.image, scan: $0.scan, layers: $0.layers) },
                failure: failure, scansKept: Int(try columns["scans_kept"].decode(Int64.self)))
        }
        return listed.filter { $0.scanned != nil || $0.failure != nil }
    }
}
