import ImageFormats

/// Inclusive ranges of clusters that hold data, built from extents in guest order.
public struct DataClusterRanges: Sendable {
    public let clusterBits: UInt64
    public private(set) var ranges: [ClosedRange<UInt64>] = []

    public init(clusterBits: UInt64) { self.clusterBits = clusterBits }

    /// Adds the clusters an extent touches, if it holds data that does not read as zeros.
    public mutating func add(_ extent: Extent) {
        guard extent.data, !extent.zero, extent.length > 0 else { return }
        let first = extent.start >> clusterBits
        let last = (extent.end - 1) >> clusterBits
        if let previous = ranges.last, first <= previous.upperBound + 1 {
            ranges[ranges.count - 1] = previous.lowerBound...max(previous.upperBound, last)
        } else {
            ranges.append(first...last)
        }
    }
}
