import ImageFormats
import NBD

/// The metadata contexts the server answers block status in, and what each says of an extent.
public enum MetaContext: String, CaseIterable, Sendable {
    /// `base:allocation` (proto.md §base:allocation metadata context): bit 0 `NBD_STATE_HOLE` where no
    /// data is stored, bit 1 `NBD_STATE_ZERO` where the range reads as zeros, as qemu-img map's
    /// `data`/`zero`.
    case baseAllocation = "base:allocation"
    /// `qemu:allocation-depth` (qemu docs/interop/nbd.txt): 0 where no layer of the chain allocates the
    /// range, 1 for the image itself, 2 for its backing file or parent, and so on (qemu-img map's
    /// `depth` + 1 where `present`).
    case allocationDepth = "qemu:allocation-depth"

    public static let stateHole: UInt32 = 1 << 0
    public static let stateZero: UInt32 = 1 << 1

    /// The descriptor flags of `extent` (nil: a range the index has no extent for, which reads as zeros).
    public func flags(of extent: Extent?) -> UInt32 {
        guard let extent else {
            return self == .baseAllocation ? Self.stateHole | Self.stateZero : 0
        }
        switch self {
        case .baseAllocation:
            return (extent.data ? 0 : Self.stateHole) | (extent.zero ? Self.stateZero : 0)
        case .allocationDepth:
            return extent.present ? extent.depth + 1 : 0
        }
    }
}
