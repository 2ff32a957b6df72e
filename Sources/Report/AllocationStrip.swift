import AllocationIndex
import ImageFormats

/// A picture-sized summary of an allocation map: the disk cut into equal bins, each given the kind of
/// range that covers most of it.
public struct AllocationStrip: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case data = "data"
        case parent = "parent"
        case zero = "zero"
        case unallocated = "unallocated"

        /// - Parameter rawDepths: chain depths that are raw files: their holes are unallocated, not zero.
        init(_ extent: Extent, rawDepths: Set<UInt32> = []) {
            if extent.storesData {
                self = extent.depth == 0 ? .data : .parent
            } else if extent.present && !rawDepths.contains(extent.depth) {
                self = .zero
            } else {
                self = .unallocated
            }
        }
    }

    public var bins: [Kind]

    /// The disk's size, for the byte range of each bin.
    public var virtualSize: UInt64

    public init(store: any IndexStoring, scanID: Int64, virtualSize: UInt64, binCount: Int = 480, rawDepths: Set<UInt32> = []) throws {
        self.virtualSize = virtualSize
        let count = max(1, min(binCount, Int(max(virtualSize, 1))))
        var weights = [[UInt64]](repeating: [0, 0, 0, 0], count: count)
        let binSize = Double(max(virtualSize, 1)) / Double(count)
        try store.forEachExtent(scanID: scanID) { extent in
            let kind = Kind.allCases.firstIndex(of: Kind(extent, rawDepths: rawDepths)) ?? 3
            var start = extent.start
            while start < extent.end {
                let bin = min(Int(Double(start) / binSize), count - 1)
                let binEnd = bin == count - 1 ? extent.end : min(UInt64((Double(bin + 1) * binSize).rounded(.up)), extent.end)
                let stop = max(binEnd, start + 1)
                weights[bin][kind] += min(stop, extent.end) - start
                start = min(stop, extent.end)
            }
        }
        bins = weights.map { weight in
            // Any data in a bin shows: small writes must not vanish in a large disk.
            if weight[0] > 0 { return .data }
            if weight[1] > 0 { return .parent }
            return weight[2] > weight[3] ? .zero : .unallocated
        }
    }
}
