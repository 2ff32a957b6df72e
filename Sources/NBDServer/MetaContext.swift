import Export
import ImageFormats
import NBD

/// The metadata contexts the server answers block status in, and what each says of a range.
public enum MetaContext: Sendable, Equatable {
    /// `base:allocation` (proto.md §base:allocation metadata context): bit 0 `NBD_STATE_HOLE` where no
    /// data is stored, bit 1 `NBD_STATE_ZERO` where the range reads as zeros, as qemu-img map's
    /// `data`/`zero`.
    case baseAllocation
    /// `qemu:allocation-depth` (qemu docs/interop/nbd.txt): 0 where no layer of the chain allocates the
    /// range, 1 for the image itself, 2 for its backing file or parent, and so on (qemu-img map's
    /// `depth` + 1 where `present`).
    case allocationDepth
    /// `qemu:dirty-bitmap:NAME` (qemu docs/interop/nbd.txt): bit 0 set where the qcow2 persistent bitmap
    /// NAME marks the range dirty, as `qemu-nbd -B NAME` serves it.
    case dirtyBitmap(String)

    /// The contexts every export offers, in id order; bitmaps follow.
    public static let standard: [MetaContext] = [.baseAllocation, .allocationDepth]
    static let dirtyBitmapPrefix = "qemu:dirty-bitmap:"

    public var name: String {
        switch self {
        case .baseAllocation: return "base:allocation"
        case .allocationDepth: return "qemu:allocation-depth"
        case .dirtyBitmap(let bitmap): return Self.dirtyBitmapPrefix + bitmap
        }
    }

    public init?(name: String) {
        switch name {
        case "base:allocation": self = .baseAllocation
        case "qemu:allocation-depth": self = .allocationDepth
        default:
            guard name.hasPrefix(Self.dirtyBitmapPrefix), name.count > Self.dirtyBitmapPrefix.count else { return nil }
            self = .dirtyBitmap(String(name.dropFirst(Self.dirtyBitmapPrefix.count)))
        }
    }

    public static let stateHole: UInt32 = 1 << 0
    public static let stateZero: UInt32 = 1 << 1
    /// `qemu:dirty-bitmap:` bit 0: the range is dirty.
    public static let stateDirty: UInt32 = 1 << 0

    /// The descriptor flags of `extent` for a context that follows the extents (nil: a range the index has
    /// no extent for, which reads as zeros). Bitmap contexts answer from their ranges instead.
    public func flags(of extent: Extent?) -> UInt32 {
        guard let extent else {
            return self == .baseAllocation ? Self.stateHole | Self.stateZero : 0
        }
        switch self {
        case .baseAllocation:
            return (extent.data ? 0 : Self.stateHole) | (extent.zero ? Self.stateZero : 0)
        case .allocationDepth:
            return extent.present ? extent.depth + 1 : 0
        case .dirtyBitmap:
            return 0
        }
    }
}
