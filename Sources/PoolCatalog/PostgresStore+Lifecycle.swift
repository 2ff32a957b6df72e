import AllocationIndex
import Foundation
import PostgresNIO

extension PostgresStore {
    // MARK: Retention

    /// Deletes the oldest scans of an image beyond `keep` (the latest is always kept) and, when set, those
    /// made before `olderThanNanoseconds`; chunks a surviving scan shares are handed to it first.
    @discardableResult
    static func pruneHistory(imageID: Int64, keep: Int?, olderThanNanoseconds: Int64?, _ session: BlockingPostgres.Session) throws
        -> Int
    {
        let scans = try session.rows("SELECT id, scanned_at_ns FROM scans WHERE image_id = \(imageID) ORDER BY id DESC")
            .map { try $0.decode((Int64, Int64).self) }
        var doomed: [Int64] = []
        for (position, (id, at)) in scans.enumerated() where position > 0 {
            if let keep, position >= max(keep, 1) {
                doomed.append(id)
            } else if let olderThanNanoseconds, at < olderThanNanoseconds {
                doomed.append(id)
            }
        }
        for id in doomed { try deleteScan(id, session) }
        return doomed.count
    }

    /// Deletes one scan; if other scans use its chunks, the newest of them takes the chunks over.
    static func deleteScan(_ id: Int64, _ session: BlockingPostgres.Session) throws {
        let heirs = try session.rows("SELECT id FROM scans WHERE extents_scan_id = \(id) ORDER BY id DESC").map {
            try $0.decode(Int64.self)
        }
        if let heir = heirs.first {
            try session.execute("UPDATE extent_chunks SET scan_id = \(heir) WHERE scan_id = \(id)")
            try session.execute("UPDATE scans SET extents_scan_id = NULL WHERE id = \(heir)")
            try session.execute("UPDATE scans SET extents_scan_id = \(heir) WHERE extents_scan_id = \(id)")
        }
        try session.execute("UPDATE images SET latest_scan_id = NULL WHERE latest_scan_id = \(id)")
        try session.execute("DELETE FROM scans WHERE id = \(id)")
    }

    public func collectGarbage(keep: Int?, olderThanNanoseconds: Int64?) throws -> RetentionResult {
        try database.transaction { session in
            var deleted = 0
            for row in try session.rows("SELECT DISTINCT image_id FROM scans") {
                deleted += try Self.pruneHistory(
                    imageID: try row.decode(Int64.self), keep: keep, olderThanNanoseconds: olderThanNanoseconds, session)
            }
            return RetentionResult(scansDeleted: deleted, imagesForgotten: try Self.dropUnusedLayerImages(session))
        }
    }

    /// Removes image rows with no scan that no remaining scan uses as a chain layer.
    static func dropUnusedLayerImages(_ session: BlockingPostgres.Session) throws -> Int {
        try session.execute(
            """
            DELETE FROM images
            WHERE latest_scan_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM scans WHERE scans.image_id = images.id)
              AND NOT EXISTS (SELECT 1 FROM scan_layers WHERE scan_layers.path = images.path)
            """)
    }

    // MARK: Forget

    public func forget(paths: [String]) throws -> [String] {
        try database.transaction { session in
            var forgotten: [String] = []
            for path in paths {
                var known = false
                if let id = try session.rows("SELECT id FROM images WHERE path = \(path)").first?.decode(Int64.self) {
                    try Self.notify(CatalogChange(imageID: id, scanID: nil, host: HostName.current, path: path), session)
                    try session.execute(
                        "UPDATE scans SET extents_scan_id = NULL WHERE extents_scan_id IN (SELECT id FROM scans WHERE image_id = \(id))")
                    try session.execute("UPDATE images SET latest_scan_id = NULL WHERE id = \(id)")
                    try session.execute("DELETE FROM scans WHERE image_id = \(id)")
                    try session.execute("DELETE FROM images WHERE id = \(id)")
                    known = true
                }
                if try session.execute("DELETE FROM scan_failures WHERE path = \(path)") > 0 { known = true }
                try session.execute("DELETE FROM image_sightings WHERE path = \(path)")
                if known { forgotten.append(path) }
            }
            _ = try Self.dropUnusedLayerImages(session)
            return forgotten
        }
    }

    // MARK: Check and vacuum

    /// Schema version and rows that point at nothing (the server keeps its own pages whole: there is no
    /// `integrity_check` to run; `amcheck` is the DBA's).
    public func check() throws -> IndexCheck {
        let applied = try appliedMigrations().sorted()
        return try database.transaction(readOnly: true) { session in
            var orphans: [String] = []
            for (what, sql) in IndexStore.orphanProbes {
                let count = try session.rows(PostgresQuery(unsafeSQL: sql)).first?.decode(Int64.self) ?? 0
                if count > 0 { orphans.append("\(count) \(what)") }
            }
            return IndexCheck(
                integrityProblems: [], appliedMigrations: applied, knownMigrations: PostgresMigrator.migrationNames.sorted(),
                orphans: orphans)
        }
    }

    /// Runs `VACUUM` on the catalog's tables; returns the database's size before and after.
    public func vacuum() throws -> (before: UInt64, after: UInt64) {
        try database.withConnection { session in
            let size = { () throws -> UInt64 in
                UInt64(max(try session.rows("SELECT pg_database_size(current_database())").first?.decode(Int64.self) ?? 0, 0))
            }
            let before = try size()
            try session.execute("VACUUM")
            return (before, try size())
        }
    }
}
