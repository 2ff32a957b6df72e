import Foundation
import ImageFormats

/// Pulls a scan's extents in guest order, a few stored chunks at a time, so exports walk huge maps with
/// bounded memory and one indexed lookup per batch of chunks.
///
/// Each batch is its own read, so the scan can leave the index between two of them (`forget`, `DELETE
/// /v1/images/{id}`, or, in an index from before migration 0004, a forget and a rescan that reuses the
/// row id). Every batch therefore checks, in
/// the same read, that the scan row is still there (with the scan time the cursor was made for), that the
/// chunks continue where the last batch ended, and at the end that they reached the end of the range:
/// a cursor throws ``StoreError/scanGone(_:)`` rather than end early, since a reader would take the
/// missing tail for unallocated space (zeros).
public final class ExtentCursor {
    private let store: any IndexStoring
    private let scanID: Int64
    /// The scan time of the scan meant, when the caller knows it; else the one found at the first batch.
    private var scannedAt: Int64?
    private let lower: UInt64
    private let upper: UInt64
    private var buffer: [Extent] = []
    private var index = 0
    /// Start of the next chunk row to load, or nil before the first load.
    private var nextChunkStart: Int64?
    private var exhausted = false
    static let chunksPerLoad = 8

    /// - Parameter scannedAtNanoseconds: the scan time of the scan meant (``ScanRecord/scannedAtNs``): a
    ///   scan row found with another time is a different scan that reuses the id (possible only in an index
    ///   from before migration 0004, which stopped ids being reused).
    public init(
        store: any IndexStoring, scanID: Int64, scannedAtNanoseconds: Int64? = nil, from lower: UInt64 = 0,
        to upper: UInt64 = UInt64(Int64.max)
    ) {
        self.store = store
        self.scanID = scanID
        scannedAt = scannedAtNanoseconds
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
        let batch = try store.extentChunks(
            scanID: scanID, from: lower, continuingAt: nextChunkStart, to: upper, limit: Self.chunksPerLoad)
        guard let batch else { throw StoreError.scanGone("scan \(scanID) is no longer in the index") }
        let virtualSize = batch.virtualSize
        let time = batch.scannedAtNanoseconds
        let rows = batch.chunks
        if let scannedAt, scannedAt != time {
            throw StoreError.scanGone("scan \(scanID) is now another scan (scanned at \(time) ns, not \(scannedAt) ns)")
        }
        scannedAt = time
        if let first = rows.first {
            let start = first.start
            if let expected = nextChunkStart, start != expected {
                throw StoreError.scanGone("the extents of scan \(scanID) continue at \(start), not at \(expected)")
            }
            if nextChunkStart == nil, UInt64(start) > lower {
                throw StoreError.scanGone("the extents of scan \(scanID) start at \(start), after \(lower)")
            }
        }
        if rows.count < Self.chunksPerLoad { exhausted = true }
        for row in rows {
            let start = row.start
            let count = row.count
            let blob = row.runs
            var chunkEnd = UInt64(start)
            try ExtentRunCodec.decode(blob, start: UInt64(start), count: count) { extent in
                chunkEnd = extent.end
                if let clipped = extent.clipped(to: lower, upper) { buffer.append(clipped) }
            }
            nextChunkStart = Int64(chunkEnd)
        }
        // The chunks of a scan tile [0, virtual size): ending short of the range means they were taken away.
        // Once they reach its end there is nothing more to read (and nothing to miss if the scan goes now).
        let reached = nextChunkStart.map { UInt64($0) } ?? lower
        let end = min(upper, UInt64(max(virtualSize, 0)))
        if reached >= end { exhausted = true }
        if exhausted, reached < end {
            throw StoreError.scanGone("the extents of scan \(scanID) end at \(reached), before \(end)")
        }
    }
}
