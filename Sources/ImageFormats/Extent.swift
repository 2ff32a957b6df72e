/// One run of the guest disk with uniform allocation status, as `qemu-img map --output=json` reports it.
///
/// A composed map is a sorted list of extents that tiles `[0, virtual_size)` exactly, with adjacent
/// extents of equal status merged (see ``ExtentListBuilder``).
public struct Extent: Sendable, Equatable, Hashable {
    /// Guest byte offset of the first byte.
    public var start: UInt64
    /// Length in bytes; never zero.
    public var length: UInt64
    /// Chain layer that supplies the range: 0 is the image itself, 1 its backing file or parent, and so on.
    /// For ranges no layer allocates it is the layer where the lookup stopped (qemu-img's convention).
    public var depth: UInt32
    /// Some layer allocates the range (data or zero). False for ranges that fall through every layer.
    public var present: Bool
    /// The range reads as zeros.
    public var zero: Bool
    /// The range is backed by stored data (which may itself read as zeros, e.g. a host-file hole).
    public var data: Bool
    /// The data is stored compressed (qcow2), so it has no plain host offset.
    public var compressed: Bool
    /// The format's metadata says data, but the stored bytes are known to read as zeros: the host file
    /// system holds them as a hole or an unwritten (fallocated) extent (FIEMAP, at scan), or a scan that read
    /// them (`scan --digests`) found only zero bytes. A preallocated image's unused clusters or blocks.
    /// qemu-img map shows host holes as `zero: true` only for images its metadata-preallocation heuristic
    /// picks (``zero`` is then set instead); extentdb knows them for every image, so exports skip these
    /// ranges and reports count them as zeros, while `map` stays equal to qemu-img's.
    public var storedZero: Bool
    /// Host offset of `start` in the file of the supplying layer, where the format gives one.
    public var offset: UInt64?
    /// Where a compressed cluster's stored bytes are (compressed extents cover exactly one cluster, or the
    /// part of it inside the disk or a queried range). Not part of qemu-img's output; exports need it.
    public var compressedCluster: CompressedCluster?

    /// A compressed cluster's descriptor: host byte offset and an upper bound of its stored length.
    public struct CompressedCluster: Sendable, Equatable, Hashable {
        public var hostOffset: UInt64
        public var byteCount: UInt32

        @inlinable
        public init(hostOffset: UInt64, byteCount: UInt32) {
            self.hostOffset = hostOffset
            self.byteCount = byteCount
        }
    }

    @inlinable
    public init(
        start: UInt64, length: UInt64, depth: UInt32, present: Bool, zero: Bool, data: Bool,
        compressed: Bool = false, offset: UInt64? = nil, compressedCluster: CompressedCluster? = nil, storedZero: Bool = false
    ) {
        self.start = start
        self.length = length
        self.depth = depth
        self.present = present
        self.zero = zero
        self.data = data
        self.compressed = compressed
        self.offset = offset
        self.compressedCluster = compressedCluster
        self.storedZero = storedZero
    }

    @inlinable public var end: UInt64 { start + length }

    /// This extent with a stored zero shown as qemu shows host holes in preallocated images: `zero` set (what
    /// `map --detect-zeros` and the human map print).
    @inlinable public var withStoredZerosShown: Extent {
        guard storedZero else { return self }
        var shown = self
        shown.zero = true
        shown.storedZero = false
        return shown
    }

    /// True when the range's bytes must be read from a file: stored data that neither the format nor the
    /// host file system says reads as zeros.
    @inlinable public var storesData: Bool { data && !zero && !storedZero }

    /// True when `next` starts where this ends and carries the same status, so the two are one run.
    /// Host offsets must continue (or both be absent), as qemu-img map merges them. Compressed clusters
    /// with descriptors stay separate (each has its own stored bytes); see ``displayMerged(with:)``.
    @inlinable
    public func canMerge(with next: Extent) -> Bool {
        guard compressedCluster == nil, next.compressedCluster == nil, storedZero == next.storedZero else { return false }
        return canMergeForDisplay(with: next)
    }

    /// Like ``canMerge(with:)`` but ignoring compressed descriptors: the runs qemu-img map prints.
    @inlinable
    public func canMergeForDisplay(with next: Extent) -> Bool {
        guard next.start == end, next.depth == depth, next.present == present, next.zero == zero,
            next.data == data, next.compressed == compressed
        else { return false }
        switch (offset, next.offset) {
        case (nil, nil): return true
        case let (mine?, theirs?): return mine &+ length == theirs
        default: return false
        }
    }

    /// The part of this extent inside `[lower, upper)`, with the host offset moved along.
    public func clipped(to lower: UInt64, _ upper: UInt64) -> Extent? {
        let newStart = Swift.max(start, lower)
        let newEnd = Swift.min(end, upper)
        guard newStart < newEnd else { return nil }
        var copy = self
        copy.start = newStart
        copy.length = newEnd - newStart
        if let offset { copy.offset = offset + (newStart - start) }
        return copy
    }
}

/// Appends extents in guest order and merges each with its predecessor where qemu-img would.
public struct ExtentListBuilder: Sendable {
    /// The merged extents so far (appended to only through `append`).
    public var extents: [Extent] = []
    /// Merge compressed clusters too, dropping their descriptors (what qemu-img map prints).
    public let forDisplay: Bool

    public init(forDisplay: Bool = false) { self.forDisplay = forDisplay }

    @inlinable
    public mutating func append(_ extent: Extent) {
        guard extent.length > 0 else { return }
        if let last = extents.last, forDisplay ? last.canMergeForDisplay(with: extent) : last.canMerge(with: extent) {
            extents[extents.count - 1].length += extent.length
            if forDisplay { extents[extents.count - 1].compressedCluster = nil }
        } else {
            extents.append(extent)
        }
    }

    /// `extents` merged the way qemu-img map prints them.
    public static func displayMerged(_ extents: [Extent]) -> [Extent] {
        var builder = ExtentListBuilder(forDisplay: true)
        for extent in extents { builder.append(extent) }
        return builder.extents
    }
}
