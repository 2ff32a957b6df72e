import AllocationIndex
import ImageFormats
import Scanner

/// How a base is related to an image: the nearest layer their chains share, and the ranges the base's own
/// branch wrote above it. Decided from the index alone; no image data is read.
///
/// XenServer/XCP-ng snapshots are siblings: snapshotting a VDI turns its data into a read-only parent with
/// two children (the snapshot and the running disk), so the previous backup's snapshot `S1` is a sibling
/// or cousin of the next one, `S2`, not its ancestor. A delta of `S2` against `S1` carries every guest range
/// a layer above the common ancestor supplies on either branch, with `S2`'s content: ranges only `S1`'s
/// branch wrote are reverted to what `S2` reads there (zeros included), as xapi's `vhd-tool` does.
///
/// ```
///   ancestor base        sibling base            cousin base
///      B                    A                        A
///      |                   / \                      / \
///      I                  B   I                    x   y
///                                                  |   |
///                                                  B   I
/// ```
public struct BaseRelation: Sendable, Equatable {
    /// Depth in the image's chain of the nearest shared layer (the common ancestor).
    public var imageDepth: Int
    /// Depth of that layer in the base's chain: 0 when the base is the ancestor itself.
    public var baseDepth: Int

    /// The nearest layer both chains share, matched by file identity (device and inode), and for VHD layers
    /// also by the unique id the footer carries; nil when the chains share no layer.
    ///
    /// - Parameter uniqueID: the VHD unique id of a layer path, or nil for other formats.
    public static func between(image: IndexedScan, base: IndexedScan, uniqueID: (String) -> String? = { _ in nil }) -> BaseRelation? {
        for imageLayer in image.layers {
            for baseLayer in base.layers where sameFile(imageLayer, baseLayer) {
                if imageLayer.format == .vhd, baseLayer.format == .vhd, uniqueID(imageLayer.path) != uniqueID(baseLayer.path) { continue }
                return BaseRelation(imageDepth: Int(imageLayer.depth), baseDepth: Int(baseLayer.depth))
            }
        }
        return nil
    }

    static func sameFile(_ a: ScanLayerRecord, _ b: ScanLayerRecord) -> Bool {
        a.device == b.device && a.inode == b.inode
    }

    /// The guest ranges the base's branch supplies above the common ancestor, merged, in order: empty when
    /// the base is the ancestor.
    public func baseBranchRanges(of base: IndexedScan, store: any IndexStoring) throws -> [Range<UInt64>] {
        guard baseDepth > 0, let scanID = base.scan.id else { return [] }
        var ranges: [Range<UInt64>] = []
        try store.forEachExtent(scanID: scanID) { extent in
            guard extent.present, extent.depth < UInt32(baseDepth) else { return }
            if let last = ranges.last, last.upperBound == extent.start {
                ranges[ranges.count - 1] = last.lowerBound..<extent.end
            } else {
                ranges.append(extent.start..<extent.end)
            }
        }
        return ranges
    }
}

/// Sorted, disjoint guest ranges, asked in increasing order: which ranges a delta must carry whatever the
/// image's own layers say.
public struct RangeSet: Sendable {
    public let ranges: [Range<UInt64>]

    public init(_ ranges: [Range<UInt64>]) {
        self.ranges = ranges
    }

    public var isEmpty: Bool { ranges.isEmpty }

    /// The index of the first range that ends after `offset` (`ranges.count` when none does).
    public func firstIndex(endingAfter offset: UInt64) -> Int {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound <= offset { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// True when `offset` lies in a range.
    public func contains(_ offset: UInt64) -> Bool {
        let index = firstIndex(endingAfter: offset)
        return index < ranges.count && ranges[index].lowerBound <= offset
    }

    /// The first range boundary strictly inside `(start, end)`, where an extent must be cut so that it lies
    /// wholly inside or wholly outside the set; nil when there is none.
    public func boundary(after start: UInt64, before end: UInt64) -> UInt64? {
        let index = firstIndex(endingAfter: start)
        guard index < ranges.count else { return nil }
        let range = ranges[index]
        if range.lowerBound > start { return range.lowerBound < end ? range.lowerBound : nil }
        return range.upperBound < end ? range.upperBound : nil
    }
}

/// A plan's extents in guest order, cut where the base's branch ranges begin and end, so that each extent
/// lies wholly inside or outside them (``ExportPlan/role(of:)`` then decides per extent), and where the
/// zeros a digest scan found begin and end: stored data inside those is marked ``Extent/storedZero``.
public final class PlanCursor {
    private let cursor: ExtentCursor
    private let cuts: RangeSet
    private let zeros: RangeSet
    private var pending: Extent?

    init(cursor: ExtentCursor, cuts: RangeSet, zeros: RangeSet = RangeSet([])) {
        self.cursor = cursor
        self.cuts = cuts
        self.zeros = zeros
    }

    public func next() throws -> Extent? {
        guard var extent = try pending ?? cursor.next() else { return nil }
        pending = nil
        let branchCut = cuts.isEmpty ? nil : cuts.boundary(after: extent.start, before: extent.end)
        let zeroCut = zeros.isEmpty ? nil : zeros.boundary(after: extent.start, before: extent.end)
        if let cut = min(branchCut ?? .max, zeroCut ?? .max) as UInt64?, cut != .max {
            pending = extent.clipped(to: cut, extent.end)
            extent = extent.clipped(to: extent.start, cut) ?? extent
        }
        if extent.storesData, !zeros.isEmpty, zeros.contains(extent.start) { extent.storedZero = true }
        return extent
    }
}
