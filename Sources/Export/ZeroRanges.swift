import Foundation

/// Guest ranges found to read as zeros, in increasing order, neighbours merged (a digest scan's, an
/// export's read-ahead).
public struct ZeroRanges: Sendable {
    public init() {}

    public private(set) var ranges: [Range<UInt64>] = []
    public private(set) var bytes: UInt64 = 0

    /// Bytes of the ranges inside `window` (searched from the end: the window is the latest chunk).
    public func overlap(with window: Range<UInt64>) -> UInt64 {
        var total: UInt64 = 0
        for range in ranges.reversed() {
            if range.upperBound <= window.lowerBound { break }
            let low = max(range.lowerBound, window.lowerBound)
            let high = min(range.upperBound, window.upperBound)
            if low < high { total += high - low }
        }
        return total
    }

    public mutating func append(_ range: Range<UInt64>) {
        guard !range.isEmpty else { return }
        bytes += UInt64(range.count)
        if let last = ranges.last, last.upperBound == range.lowerBound {
            ranges[ranges.count - 1] = last.lowerBound..<range.upperBound
        } else {
            ranges.append(range)
        }
    }

    /// Adds the parts of `sorted` inside `window`.
    public mutating func append(contentsOf sorted: [Range<UInt64>], clippedTo window: Range<UInt64>) {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle].upperBound <= window.lowerBound { low = middle + 1 } else { high = middle }
        }
        var index = low
        while index < sorted.count, sorted[index].lowerBound < window.upperBound {
            append(max(sorted[index].lowerBound, window.lowerBound)..<min(sorted[index].upperBound, window.upperBound))
            index += 1
        }
    }
}
