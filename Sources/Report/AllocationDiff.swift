import AllocationIndex
import ImageFormats

/// Ranges where two allocation maps differ. Both maps stream from the index.
///
/// Two scans of one image are compared by ``Comparison/layout``: another status (data, zero,
/// unallocated), another supplying layer, or another host location (data rewritten elsewhere). Two
/// different images are compared by ``Comparison/guest``: only what the guest sees, data or zeros, per
/// guest range; host offsets, layers and how a format records zeros do not count, so an image and its
/// export (raw, qcow2, VHD) do not differ.
public struct AllocationDiff: Sendable {
    /// What makes a range differ.
    public enum Comparison: String, Sendable, Codable {
        /// Data versus reading zeros, per guest range (two images).
        case guest
        /// Status, supplying layer and host offset (two scans of one image).
        case layout
    }

    /// One differing range with the status on each side.
    public struct Change: Sendable, Equatable, Codable {
        public var start: UInt64
        public var length: UInt64
        public var before: Side
        public var after: Side
    }

    public struct Side: Sendable, Equatable, Codable {
        public var depth: UInt32
        public var present: Bool
        public var zero: Bool
        public var data: Bool
        public var offset: UInt64?

        init(_ extent: Extent?, at position: UInt64) {
            guard let extent else {
                self.init(depth: 0, present: false, zero: true, data: false, offset: nil)
                return
            }
            self.init(
                depth: extent.depth, present: extent.present, zero: extent.zero || extent.storedZero, data: extent.data,
                offset: extent.offset.map { $0 + (position - extent.start) })
        }

        init(depth: UInt32, present: Bool, zero: Bool, data: Bool, offset: UInt64?) {
            self.depth = depth
            self.present = present
            self.zero = zero
            self.data = data
            self.offset = offset
        }

        /// True when the guest reads stored data here; false when it reads zeros (a zero range, data
        /// flagged as reading zero, a hole, or nothing at all).
        public var guestData: Bool { data && !zero }

        /// The side as the guest sees it: data or zeros, with no layer or host location.
        var guestView: Side {
            Side(depth: 0, present: true, zero: !guestData, data: guestData, offset: nil)
        }

        func sameStatus(_ other: Side) -> Bool {
            depth == other.depth && present == other.present && zero == other.zero && data == other.data && offset == other.offset
        }
    }

    public var changes: [Change] = []
    /// Bytes that hold data after but did not before, and the reverse.
    public var newlyAllocatedBytes: UInt64 = 0
    public var freedBytes: UInt64 = 0
    public var changedBytes: UInt64 = 0
    public var comparison: Comparison

    /// Compares scan `before` with scan `after` over `[0, max(sizes))`.
    /// - Parameter comparison: `.layout` for two scans of one image, `.guest` for two images.
    public init(store: any IndexStoring, before: Int64, after: Int64, comparison: Comparison = .layout) throws {
        self.comparison = comparison
        let left = ExtentCursor(store: store, scanID: before)
        let right = ExtentCursor(store: store, scanID: after)
        var a = try left.next()
        var b = try right.next()
        var position: UInt64 = 0
        while a != nil || b != nil {
            let aEnd = a?.end ?? UInt64.max
            let bEnd = b?.end ?? UInt64.max
            let stop = min(aEnd, bEnd)
            var sideA = Side(a, at: position)
            var sideB = Side(b, at: position)
            if comparison == .guest {
                sideA = sideA.guestView
                sideB = sideB.guestView
            }
            if !sideA.sameStatus(sideB) {
                let length = stop - position
                if let last = changes.last, last.start + last.length == position, Self.continues(last, sideA, sideB, at: position) {
                    changes[changes.count - 1].length += length
                } else {
                    changes.append(Change(start: position, length: length, before: sideA, after: sideB))
                }
                changedBytes += length
                if sideB.guestData && !sideA.guestData { newlyAllocatedBytes += length }
                if sideA.guestData && !sideB.guestData { freedBytes += length }
            }
            position = stop
            if aEnd == stop { a = try left.next() }
            if bEnd == stop { b = try right.next() }
        }
    }

    /// True when a change at `position` continues `last`: same statuses, host offsets moving along.
    static func continues(_ last: Change, _ before: Side, _ after: Side, at position: UInt64) -> Bool {
        let moved = position - last.start
        func follows(_ old: Side, _ new: Side) -> Bool {
            old.depth == new.depth && old.present == new.present && old.zero == new.zero && old.data == new.data
                && (old.offset.map { $0 + moved } == new.offset)
        }
        return follows(last.before, before) && follows(last.after, after)
    }
}
