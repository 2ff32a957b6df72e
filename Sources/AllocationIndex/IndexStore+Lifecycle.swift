import Foundation
internal import GRDB

/// A failed scan as the index remembers it (`scan_failures`).
public struct ScanFailure: Sendable, Equatable {
    public var path: String
    public var failedAtNanoseconds: Int64
    public var message: String

    public init(path: String, failedAtNanoseconds: Int64, message: String) {
        self.path = path
        self.failedAtNanoseconds = failedAtNanoseconds
        self.message = message
    }
}

/// What `check` found.
public struct IndexCheck: Sendable {
    /// `PRAGMA integrity_check` lines other than "ok".
    public var integrityProblems: [String]
    public var appliedMigrations: [String]
    public var knownMigrations: [String]
    /// Rows that point at nothing, as "table: count (what)".
    public var orphans: [String]

    public init(integrityProblems: [String], appliedMigrations: [String], knownMigrations: [String], orphans: [String]) {
        self.integrityProblems = integrityProblems
        self.appliedMigrations = appliedMigrations
        self.knownMigrations = knownMigrations
        self.orphans = orphans
    }

    public var isHealthy: Bool {
        integrityProblems.isEmpty && orphans.isEmpty && appliedMigrations == knownMigrations
    }
}

/// What a retention run removed.
public struct RetentionResult: Sendable, Equatable {
    public var scansDeleted: Int
    public var imagesForgotten: Int

    public init(scansDeleted: Int, imagesForgotten: Int) {
        self.scansDeleted = scansDeleted
        self.imagesForgotten = imagesForgotten
    }
}

extension IndexStore {
    // MARK: Unchanged rescans

    /// The scan holding chunks equal to `chunks` when it is the image's previous scan, else nil.
    static func chunkOwnerWithSameExtents(as chunks: [PackedChunk], imageID: Int64, excluding scanID: Int64, _ db: Database) throws
        -> Int64?
    {
        guard
            let previous = try Int64.fetchOne(
                db, sql: "SELECT coalesce(extents_scan_id, id) FROM scans WHERE image_id = ? AND id <> ? ORDER BY id DESC LIMIT 1",
                arguments: [imageID, scanID])
        else { return nil }
        let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM extent_chunks WHERE scan_id = ?", arguments: [previous]) ?? -1
        guard count == chunks.count else { return nil }
        let rows = try Row.fetchCursor(
            db, sql: "SELECT start, length, runs FROM extent_chunks WHERE scan_id = ? ORDER BY start", arguments: [previous])
        var index = 0
        while let row = try rows.next() {
            let chunk = chunks[index]
            guard row[0] == Int64(chunk.start), row[1] == Int64(chunk.length), row[2] == chunk.runs else { return nil }
            index += 1
        }
        return previous
    }

    // MARK: Retention

    /// Deletes the oldest scans of an image beyond `keep` (the latest is always kept) and, when set, those
    /// scanned before `olderThanNanoseconds`. Chunks a surviving scan shares are handed to it first.
    @discardableResult
    static func pruneHistory(imageID: Int64, keep: Int?, olderThanNanoseconds: Int64?, _ db: Database) throws -> Int {
        let scans = try Row.fetchAll(
            db, sql: "SELECT id, scanned_at_ns FROM scans WHERE image_id = ? ORDER BY id DESC", arguments: [imageID])
        var doomed: [Int64] = []
        for (position, row) in scans.enumerated() where position > 0 {
            let id: Int64 = row[0]
            let at: Int64 = row[1]
            if let keep, position >= max(keep, 1) { doomed.append(id); continue }
            if let olderThanNanoseconds, at < olderThanNanoseconds { doomed.append(id) }
        }
        for id in doomed { try deleteScan(id, db) }
        return doomed.count
    }

    /// Deletes one scan; if other scans use its chunks, the newest of them takes the chunks over.
    static func deleteScan(_ id: Int64, _ db: Database) throws {
        let heirs = try Int64.fetchAll(db, sql: "SELECT id FROM scans WHERE extents_scan_id = ? ORDER BY id DESC", arguments: [id])
        if let heir = heirs.first {
            try db.execute(sql: "UPDATE extent_chunks SET scan_id = ? WHERE scan_id = ?", arguments: [heir, id])
            try db.execute(sql: "UPDATE scans SET extents_scan_id = NULL WHERE id = ?", arguments: [heir])
            try db.execute(sql: "UPDATE scans SET extents_scan_id = ? WHERE extents_scan_id = ?", arguments: [heir, id])
        }
        try db.execute(sql: "UPDATE images SET latest_scan_id = NULL WHERE latest_scan_id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM scans WHERE id = ?", arguments: [id])
    }

    /// Applies retention to every image: at most `keep` scans each, and none older than the cut-off
    /// (the latest scan of an image is always kept). One transaction.
    public func collectGarbage(keep: Int?, olderThanNanoseconds: Int64?) throws -> RetentionResult {
        try writer.write { db in
            var deleted = 0
            for imageID in try Int64.fetchAll(db, sql: "SELECT DISTINCT image_id FROM scans") {
                deleted += try Self.pruneHistory(imageID: imageID, keep: keep, olderThanNanoseconds: olderThanNanoseconds, db)
            }
            let forgotten = try Self.dropUnusedLayerImages(db)
            return RetentionResult(scansDeleted: deleted, imagesForgotten: forgotten)
        }
    }

    /// Removes image rows that have no scan and that no remaining scan uses as a chain layer (backing files
    /// recorded only as layers of images since forgotten).
    static func dropUnusedLayerImages(_ db: Database) throws -> Int {
        try db.execute(
            sql: """
                DELETE FROM images
                WHERE latest_scan_id IS NULL
                  AND NOT EXISTS (SELECT 1 FROM scans WHERE scans.image_id = images.id)
                  AND NOT EXISTS (SELECT 1 FROM scan_layers WHERE scan_layers.path = images.path)
                """)
        return db.changesCount
    }

    // MARK: Forget

    /// Removes images (by canonical or recorded path) with all their scans, and their failure records.
    /// - Returns: the paths that were in the index.
    public func forget(paths: [String]) throws -> [String] {
        try writer.write { db in
            var forgotten: [String] = []
            for path in paths {
                var known = false
                if let id = try Int64.fetchOne(db, sql: "SELECT id FROM images WHERE path = ?", arguments: [path]) {
                    for scan in try Int64.fetchAll(db, sql: "SELECT id FROM scans WHERE image_id = ?", arguments: [id]) {
                        try db.execute(sql: "UPDATE scans SET extents_scan_id = NULL WHERE extents_scan_id = ?", arguments: [scan])
                    }
                    try db.execute(sql: "DELETE FROM scans WHERE image_id = ?", arguments: [id])
                    try db.execute(sql: "DELETE FROM images WHERE id = ?", arguments: [id])
                    known = true
                }
                try db.execute(sql: "DELETE FROM scan_failures WHERE path = ?", arguments: [path])
                if db.changesCount > 0 { known = true }
                if known { forgotten.append(path) }
            }
            _ = try Self.dropUnusedLayerImages(db)
            return forgotten
        }
    }

    /// Every path the index knows as an image (scanned or failed), for `list` and `prune`.
    public func knownImagePaths() throws -> [String] {
        try writer.read { db in
            try String.fetchAll(
                db,
                sql: "SELECT path FROM images WHERE latest_scan_id IS NOT NULL UNION SELECT path FROM scan_failures ORDER BY path")
        }
    }

    // MARK: Failures

    /// Remembers that scanning `path` failed (replacing an earlier failure).
    public func recordFailure(path: String, message: String, atNanoseconds: Int64) throws {
        try writer.write { db in
            try db.execute(
                sql: "INSERT INTO scan_failures (path, failed_at_ns, message) VALUES (?, ?, ?) "
                    + "ON CONFLICT(path) DO UPDATE SET failed_at_ns = excluded.failed_at_ns, message = excluded.message",
                arguments: [path, atNanoseconds, message])
        }
    }

    static func clearFailure(path: String, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM scan_failures WHERE path = ?", arguments: [path])
    }

    /// The recorded failure of one path (its primary key: one indexed lookup), if any.
    public func failure(path: String) throws -> ScanFailure? {
        try writer.read { db in
            try Row.fetchOne(db, sql: "SELECT path, failed_at_ns, message FROM scan_failures WHERE path = ?", arguments: [path]).map {
                ScanFailure(path: $0[0], failedAtNanoseconds: $0[1], message: $0[2])
            }
        }
    }

    /// The recorded failures, by path.
    public func failures() throws -> [String: ScanFailure] {
        try writer.read { db in
            var result: [String: ScanFailure] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT path, failed_at_ns, message FROM scan_failures") {
                let failure = ScanFailure(path: row[0], failedAtNanoseconds: row[1], message: row[2])
                result[failure.path] = failure
            }
            return result
        }
    }

    /// Number of scans kept per image id.
    public func scanCounts() throws -> [Int64: Int] {
        try writer.read { db in
            var counts: [Int64: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT image_id, count(*) FROM scans GROUP BY image_id") {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    // MARK: Check and vacuum

    /// Counts of rows that point at nothing, as (what, SQL counting them): the same probes in both stores.
    public static let orphanProbes: [(what: String, sql: String)] = [
        ("scans without their image", "SELECT count(*) FROM scans WHERE image_id NOT IN (SELECT id FROM images)"),
        ("chain layers without their scan", "SELECT count(*) FROM scan_layers WHERE scan_id NOT IN (SELECT id FROM scans)"),
        ("extent chunks without their scan", "SELECT count(*) FROM extent_chunks WHERE scan_id NOT IN (SELECT id FROM scans)"),
        (
            "scans sharing extents that are gone",
            "SELECT count(*) FROM scans WHERE extents_scan_id IS NOT NULL AND extents_scan_id NOT IN (SELECT scan_id FROM extent_chunks)"
        ),
        (
            "images whose latest scan is gone",
            "SELECT count(*) FROM images WHERE latest_scan_id IS NOT NULL AND latest_scan_id NOT IN (SELECT id FROM scans)"
        ),
        (
            "scans with no extents",
            "SELECT count(*) FROM scans WHERE extents_scan_id IS NULL AND id NOT IN (SELECT scan_id FROM extent_chunks) AND virtual_size > 0"
        ),
    ]

    /// Integrity, schema version and rows that point at nothing.
    public func check() throws -> IndexCheck {
        try writer.read { db in
            let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").filter { $0 != "ok" }
            let applied = try Self.migrator.appliedIdentifiers(db).sorted()
            var orphans: [String] = []
            for (what, sql) in Self.orphanProbes {
                let count = try Int.fetchOne(db, sql: sql) ?? 0
                if count > 0 { orphans.append("\(count) \(what)") }
            }
            return IndexCheck(
                integrityProblems: integrity, appliedMigrations: applied, knownMigrations: Self.migrationNames.sorted(), orphans: orphans)
        }
    }

    /// Gives free pages back to the file system (`VACUUM`), then truncates the WAL.
    /// - Returns: the file size before and after.
    public func vacuum() throws -> (before: UInt64, after: UInt64) {
        let before = fileSize
        try writer.vacuum()
        _ = try? writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        return (before, fileSize)
    }

    /// Bytes of the database file and its WAL.
    public var fileSize: UInt64 {
        guard let path else { return 0 }
        return [path, path + "-wal"].reduce(0) { total, file in
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? UInt64) ?? 0
            return total + size
        }
    }
}
