import Foundation
internal import GRDB

extension IndexStore {
    public func imagePage(after: String?, limit: Int, under directories: [String]) throws -> [ListedImage] {
        let ranges = PathRanges.under(directories)
        var arguments: [any DatabaseValueConvertible] = [after ?? ""]
        var filter = ""
        if !ranges.isEmpty {
            filter = " AND (" + ranges.map { _ in "(path >= ? AND path < ?)" }.joined(separator: " OR ") + ")"
            for range in ranges { arguments += [range.lower, range.upper] }
        }
        let pathSQL = """
            SELECT path FROM images WHERE latest_scan_id IS NOT NULL AND path > ?\(filter)
            UNION SELECT path FROM scan_failures WHERE path > ?\(filter)
            ORDER BY path LIMIT ?
            """
        return try writer.read { db in
            let paths = try String.fetchAll(
                db, sql: pathSQL, arguments: StatementArguments(arguments + arguments + [max(limit, 0)]))
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
            return paths.map { path in
                let scanned = byPath[path].flatMap { image -> ImageWithScan? in
                    guard let id = image.latestScanId, let scan = scans[id] else { return nil }
                    return ImageWithScan(image: image, scan: scan, layers: layers[id] ?? [])
                }
                return ListedImage(
                    path: path, scanned: scanned, failure: failures[path],
                    scansKept: byPath[path]?.id.flatMap { counts[$0] } ?? 0)
            }
        }
    }
}
