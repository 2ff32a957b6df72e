import Foundation
internal import GRDB

/// One read of a scan's stored extents for an ``ExtentCursor``: the scan's size and time, and its next
/// chunks (packed runs, ``ExtentRunCodec``), read together so they belong to one state of the index.
public struct ExtentChunkBatch: Sendable {
    public struct Chunk: Sendable {
        public var start: Int64
        public var count: Int
        public var runs: Data

        public init(start: Int64, count: Int, runs: Data) {
            self.start = start
            self.count = count
            self.runs = runs
        }
    }

    public var virtualSize: Int64
    public var scannedAtNanoseconds: Int64
    public var chunks: [Chunk]

    public init(virtualSize: Int64, scannedAtNanoseconds: Int64, chunks: [Chunk]) {
        self.virtualSize = virtualSize
        self.scannedAtNanoseconds = scannedAtNanoseconds
        self.chunks = chunks
    }
}

extension IndexStore {
    /// Up to `limit` stored chunks of a scan overlapping `[lower, upper)`: from the chunk holding `lower`,
    /// or from `continuingAt` when a cursor already read the chunks before it. Nil when the scan is gone.
    public func extentChunks(scanID: Int64, from lower: UInt64, continuingAt: Int64?, to upper: UInt64, limit: Int) throws
        -> ExtentChunkBatch?
    {
        let upper = min(upper, UInt64(Int64.max))
        let lower = min(lower, upper)
        return try writer.read { db in
            let scan = try Row.fetchOne(db, sql: "SELECT virtual_size, scanned_at_ns FROM scans WHERE id = ?", arguments: [scanID])
            guard let scan else { return nil }
            let rows = try Self.chunkRows(scanID: scanID, lower: lower, continuingAt: continuingAt, upper: upper, limit: limit, db)
            return ExtentChunkBatch(
                virtualSize: scan[0], scannedAtNanoseconds: scan[1],
                chunks: rows.map { ExtentChunkBatch.Chunk(start: $0[0], count: $0[1], runs: $0[2]) })
        }
    }

    /// The next batch of chunk rows (start, extent count, runs) overlapping the range.
    static func chunkRows(
        scanID: Int64, lower: UInt64, continuingAt nextChunkStart: Int64?, upper: UInt64, limit: Int, _ db: Database
    ) throws -> [Row] {
        if let start = nextChunkStart {
            return try Row.fetchAll(
                db,
                sql:
                    "SELECT start, extent_count, runs FROM extent_chunks WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = ?) AND start >= ? AND start < ? ORDER BY start LIMIT ?",
                arguments: [scanID, start, Int64(upper), limit])
        }
        return try Row.fetchAll(
            db,
            sql: """
                SELECT start, extent_count, runs FROM extent_chunks
                WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = :scan)
                  AND start >= coalesce((SELECT max(start) FROM extent_chunks WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = :scan) AND start <= :lower), 0)
                  AND start < :upper
                ORDER BY start LIMIT :limit
                """,
            arguments: ["scan": scanID, "lower": Int64(lower), "upper": Int64(upper), "limit": limit])
    }
}
