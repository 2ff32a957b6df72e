import AllocationIndex
import Foundation
import PostgresNIO

extension PostgresStore {
    /// One page of the image list in byte order of the paths (`COLLATE "C"`, the order SQLite and every
    /// listing use), answered by the path indexes of migration 0002 and one statement.
    public func imagePage(after: String?, limit: Int, under directories: [String]) throws -> [ListedImage] {
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
        let limitIndex = bindings.count
        let sql = """
            WITH listed AS (
                SELECT path FROM (
                    (SELECT path FROM images WHERE latest_scan_id IS NOT NULL AND path COLLATE "C" > $1\(filter)
                     ORDER BY path COLLATE "C" LIMIT $\(limitIndex))
                    UNION
                    (SELECT path FROM scan_failures WHERE path COLLATE "C" > $1\(filter) ORDER BY path COLLATE "C" LIMIT $\(limitIndex))
                ) candidates ORDER BY path COLLATE "C" LIMIT $\(limitIndex)
            )
            SELECT l.path,
                CASE WHEN s.id IS NULL THEN NULL ELSE row_to_json(s)::text END,
                CASE WHEN s.id IS NULL THEN NULL ELSE row_to_json(i)::text END,
                CASE WHEN s.id IS NULL THEN NULL ELSE
                    (SELECT coalesce(json_agg(y ORDER BY y.depth), '[]'::json)::text FROM scan_layers y WHERE y.scan_id = s.id) END,
                f.failed_at_ns, f.message,
                CASE WHEN s.id IS NULL THEN 0 ELSE (SELECT count(*) FROM scans k WHERE k.image_id = i.id) END
            FROM listed l
            LEFT JOIN images i ON i.path = l.path AND i.latest_scan_id IS NOT NULL
            LEFT JOIN scans s ON s.id = i.latest_scan_id
            LEFT JOIN scan_failures f ON f.path = l.path
            ORDER BY l.path COLLATE "C"
            """
        return try database.withConnection { session in
            try session.rows(PostgresQuery(unsafeSQL: sql, binds: bindings)).map { row in
                let (path, scanJSON, imageJSON, layersJSON, failedAt, message, kept) = try row.decode(
                    (String, String?, String?, String?, Int64?, String?, Int64).self)
                var scanned: ImageWithScan?
                if let scanJSON, let imageJSON, let layersJSON {
                    scanned = ImageWithScan(
                        image: try Self.record(ImageRecord.self, json: imageJSON), scan: try Self.record(ScanRecord.self, json: scanJSON),
                        layers: try Self.record([ScanLayerRecord].self, json: layersJSON))
                }
                let failure = failedAt.map { ScanFailure(path: path, failedAtNanoseconds: $0, message: message ?? "") }
                return ListedImage(path: path, scanned: scanned, failure: failure, scansKept: Int(kept))
            }
        }
    }
}
