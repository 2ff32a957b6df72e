import Foundation
import ImageFormats

/// A whole scan's stored chunks held in memory as they are in the index (packed runs, ``ExtentRunCodec``),
/// for a service that answers many windows of the same scan: a window costs a binary search over the chunk
/// starts, another over the chunk's resume points (one every ``resumeInterval`` extents, found by decoding
/// every chunk once, which also checks it), and the decoding of at most that many extents before the window;
/// no SQL and no page reads.
///
/// A scan's extents never change once recorded (a rescan is a new scan), so a copy stays true for as long
/// as its scan is the one meant: callers key it by scan id and ``scannedAtNanoseconds``.
public struct PackedScanExtents: Sendable {
    public let scanID: Int64
    public let scannedAtNanoseconds: Int64
    /// Chunk starts (guest offsets), ascending, with each chunk's extent count and runs.
    private let starts: [UInt64]
    private let counts: [Int]
    private let runs: [Data]
    private let points: [[ExtentRunCodec.ResumePoint]]
    public static let resumeInterval = 64
    /// Memory held, roughly: the runs plus the per-chunk arrays.
    public let byteCount: Int

    /// Reads every chunk of scan `scanID`, a batch of chunk rows per read, each read checking that the scan
    /// is still the one scanned at `scannedAtNanoseconds`.
    ///
    /// - Returns: nil when the scan is gone or is another scan now, when its runs exceed `maximumBytes`, or
    ///   when its chunks are not in order or do not decode; callers then read the index as usual (which
    ///   reports a damaged chunk).
    /// - Throws: a store error.
    public static func load(store: any IndexStoring, scanID: Int64, scannedAtNanoseconds: Int64, maximumBytes: Int) throws
        -> PackedScanExtents?
    {
        let perRead = 256
        var starts: [UInt64] = []
        var counts: [Int] = []
        var runs: [Data] = []
        var points: [[ExtentRunCodec.ResumePoint]] = []
        var bytes = 0
        var next: Int64?
        while true {
            guard
                let batch = try store.extentChunks(scanID: scanID, from: 0, continuingAt: next, to: UInt64(Int64.max), limit: perRead),
                batch.scannedAtNanoseconds == scannedAtNanoseconds
            else { return nil }
            for chunk in batch.chunks {
                guard chunk.start >= 0, chunk.start < Int64.max, starts.last.map({ UInt64(chunk.start) > $0 }) ?? true else { return nil }
                bytes += chunk.runs.count + 3 * MemoryLayout<Int>.size + MemoryLayout<Data>.size
                var marks: [ExtentRunCodec.ResumePoint] = []
                do {
                    try ExtentRunCodec.decode(
                        chunk.runs, from: .init(start: UInt64(chunk.start)), count: chunk.count, skippingTo: .max,
                        markingEvery: resumeInterval, mark: { marks.append($0) }, { _ in })
                } catch {
                    return nil
                }
                bytes += marks.count * MemoryLayout<ExtentRunCodec.ResumePoint>.stride
                guard bytes <= maximumBytes else { return nil }
                points.append(marks)
                starts.append(UInt64(chunk.start))
                counts.append(chunk.count)
                runs.append(chunk.runs)
            }
            guard batch.chunks.count == perRead, let last = batch.chunks.last else { break }
            next = last.start + 1
        }
        return PackedScanExtents(
            scanID: scanID, scannedAtNanoseconds: scannedAtNanoseconds, starts: starts, counts: counts, runs: runs, points: points,
            byteCount: bytes)
    }

    private init(
        scanID: Int64, scannedAtNanoseconds: Int64, starts: [UInt64], counts: [Int], runs: [Data],
        points: [[ExtentRunCodec.ResumePoint]], byteCount: Int
    ) {
        self.scanID = scanID
        self.scannedAtNanoseconds = scannedAtNanoseconds
        self.starts = starts
        self.counts = counts
        self.runs = runs
        self.points = points
        self.byteCount = byteCount
    }

    /// Calls `body` with each extent that overlaps `[lower, upper)`, clipped to it, in order: the same
    /// extents as ``IndexStore/forEachExtent(scanID:from:to:_:)`` (the chunks from the one holding `lower`
    /// to the last starting before `upper`).
    public func forEachExtent(from lower: UInt64, to upper: UInt64, _ body: (Extent) throws -> Void) throws {
        let upper = min(upper, UInt64(Int64.max))
        guard lower < upper else { return }
        // The last chunk starting at or before `lower`, else the first.
        var low = 0
        var high = starts.count
        while low < high {
            let middle = (low + high) / 2
            if starts[middle] <= lower { low = middle + 1 } else { high = middle }
        }
        var index = max(low - 1, 0)
        var resume = index < starts.count ? Self.lastPoint(in: points[index], atOrBefore: lower) : nil
        while index < starts.count, starts[index] < upper {
            let from = resume ?? .init(start: starts[index])
            resume = nil
            try ExtentRunCodec.decode(runs[index], from: from, count: counts[index], skippingTo: lower, until: upper) { extent in
                if extent.start >= lower && extent.end <= upper {
                    try body(extent)
                } else if let clipped = extent.clipped(to: lower, upper) {
                    try body(clipped)
                }
            }
            index += 1
        }
    }

    /// The last of a chunk's resume points at or before guest offset `lower` (nil: from the chunk's start).
    static func lastPoint(in points: [ExtentRunCodec.ResumePoint], atOrBefore lower: UInt64) -> ExtentRunCodec.ResumePoint? {
        var low = 0
        var high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].guest <= lower { low = middle + 1 } else { high = middle }
        }
        return low > 0 ? points[low - 1] : nil
    }

    /// Like ``forEachExtent(from:to:_:)``, in batches of at most ``IndexStore/extentsPerChunk`` extents (as
    /// ``IndexStoring/forEachBatch(scanID:from:to:_:)``).
    public func forEachBatch(from lower: UInt64, to upper: UInt64, _ body: ([Extent]) throws -> Void) throws {
        var batch: [Extent] = []
        try forEachExtent(from: lower, to: upper) { extent in
            if batch.count == IndexStore.extentsPerChunk {
                try body(batch)
                batch.removeAll(keepingCapacity: true)
            }
            batch.append(extent)
        }
        if !batch.isEmpty { try body(batch) }
    }
}
