import Foundation
import ImageFormats

/// A whole scan's stored chunks held in memory as they are in the index (packed runs, ``ExtentRunCodec``),
/// for a service that answers many windows of the same scan: a window costs a binary search over the chunk
/// starts and the decoding of its chunk up to the window's end, with no SQL and no page reads.
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
    /// Memory held, roughly: the runs plus the per-chunk arrays.
    public let byteCount: Int

    /// Reads every chunk of scan `scanID`, a batch of chunk rows per read, each read checking that the scan
    /// is still the one scanned at `scannedAtNanoseconds`.
    ///
    /// - Returns: nil when the scan is gone or is another scan now, when its runs exceed `maximumBytes`, or
    ///   when its chunks are not in order; callers then read the index as usual.
    /// - Throws: a store error.
    public static func load(store: any IndexStoring, scanID: Int64, scannedAtNanoseconds: Int64, maximumBytes: Int) throws
        -> PackedScanExtents?
    {
        let perRead = 256
        var starts: [UInt64] = []
        var counts: [Int] = []
        var runs: [Data] = []
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
                guard bytes <= maximumBytes else { return nil }
                starts.append(UInt64(chunk.start))
                counts.append(chunk.count)
                runs.append(chunk.runs)
            }
            guard batch.chunks.count == perRead, let last = batch.chunks.last else { break }
            next = last.start + 1
        }
        return PackedScanExtents(
            scanID: scanID, scannedAtNanoseconds: scannedAtNanoseconds, starts: starts, counts: counts, runs: runs, byteCount: bytes)
    }

    private init(scanID: Int64, scannedAtNanoseconds: Int64, starts: [UInt64], counts: [Int], runs: [Data], byteCount: Int) {
        self.scanID = scanID
        self.scannedAtNanoseconds = scannedAtNanoseconds
        self.starts = starts
        self.counts = counts
        self.runs = runs
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
        while index < starts.count, starts[index] < upper {
            try ExtentRunCodec.decode(runs[index], start: starts[index], count: counts[index], skippingTo: lower, until: upper) { extent in
                if extent.start >= lower && extent.end <= upper {
                    try body(extent)
                } else if let clipped = extent.clipped(to: lower, upper) {
                    try body(clipped)
                }
            }
            index += 1
        }
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
