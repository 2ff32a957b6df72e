import Foundation
import GRDB
import ImageFormats

/// Pulls a scan's extents in guest order, a few stored chunks at a time, so exports walk huge maps with
/// bounded memory and one indexed lookup per batch of chunks.
public final class ExtentCursor {
    private let store: IndexStore
    private let scanID: Int64
    private let lower: UInt64
    private let upper: UInt64
    private var buffer: [Extent] = []
    private var index = 0
    /// Start of the next chunk row to load, or nil before the first load.
    private var nextChunkStart: Int64?
    private var exhausted = false
    static let chunksPerLoad = 8

    public init(store: IndexStore, scanID: Int64, from lower: UInt64 = 0, to upper: UInt64 = UInt64(Int64.max)) {
        self.store = store
        self.scanID = scanID
        self.lower = lower
        self.upper = min(upper, UInt64(Int64.max))
    }

    /// The next extent overlapping `[lower, upper)`, clipped to it; nil at the end.
    public func next() throws -> Extent? {
        while index >= buffer.count {
            guard !exhausted else { return nil }
            try load()
        }
        defer { index += 1 }
        return buffer[index]
    }

    private func load() throws {
        buffer.removeAll(keepingCapacity: true)
        index = 0
        let rows: [Row] = try store.writer.read { db in
            if let start = nextChunkStart {
                return try Row.fetchAll(
                    db,
                    sql: "SELECT start, extent_count, runs FROM extent_chunks WHERE scan_id = (SELECT coalesce(extents_scan_id, id) FROM scans WHERE id = ?) AND start >= ? AND start < ? ORDER BY start LIMIT ?",
                    arguments: [scanID, start, Int64(upper), Self.chunksPerLoad])
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
                arguments: ["scan": scanID, "lower": Int64(lower), "upper": Int64(upper), "limit": Self.chunksPerLoad])
        }
        if rows.count < Self.chunksPerLoad { exhausted = true }
        for row in rows {
            let start: Int64 = row[0]
            let count: Int = row[1]
            let blob: Data = row[2]
            var chunkEnd = UInt64(start)
            try ExtentRunCodec.decode(blob, start: UInt64(start), count: count) { extent in
                chunkEnd = extent.end
                if let clipped = extent.clipped(to: lower, upper) { buffer.append(clipped) }
            }
            nextChunkStart = Int64(chunkEnd)
        }
        if rows.isEmpty { exhausted = true }
    }
}
