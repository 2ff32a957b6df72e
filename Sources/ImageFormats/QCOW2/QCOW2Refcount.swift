/// Refcount structures (qcow2.txt, "Host cluster management").
///
/// The refcount table (at `refcount_table_offset`, `refcount_table_clusters` clusters) holds 64-bit
/// entries whose bits 9-63 give a refcount block's offset (0 = not allocated, all refcounts 0). A refcount
/// block is one cluster of `refcount_bits`-wide entries (big-endian; sub-byte widths count bit 0 as the
/// least significant bit of each byte).
public enum QCOW2Refcount {
    /// qemu's QCOW_MAX_REFTABLE_SIZE: 8 MiB of refcount table.
    public static let maxTableBytes = Limits.QCOW2.maxRefcountTableBytes
    public static let blockOffsetMask: UInt64 = ~UInt64(0x1FF)

    /// Refcount of entry `index` of a refcount block.
    @inline(__always)
    public static func entry(_ block: UnsafeRawBufferPointer, index: Int, refcountBits: Int) -> UInt64 {
        switch refcountBits {
        case 1, 2, 4:
            let bit = index * refcountBits
            let byte = block[bit / 8]
            return UInt64((byte >> UInt8(bit % 8)) & UInt8((1 << refcountBits) - 1))
        case 8:
            return UInt64(block[index])
        case 16:
            return UInt64(UInt16(bigEndian: block.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        case 32:
            return UInt64(UInt32(bigEndian: block.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
        default:
            return UInt64(bigEndian: block.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
        }
    }
}
