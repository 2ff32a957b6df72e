/// FNV-1a, 64-bit (Fowler, Noll, Vo): a byte a step, so only for short inputs (a host name) and for the
/// header checksums indexes recorded before XXH64 (``XXH64``).
public enum FNV1a {
    public static func hash64(_ bytes: some Sequence<UInt8>) -> UInt64 {
        bytes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
    }
}
