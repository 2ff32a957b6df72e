import ImageFormats

/// A host's own order of a directory's images on a pool catalog: a permutation drawn from a generator seeded
/// by the host's name, the same on every run of that host, different from the other hosts'.
public enum HostOrder {
    /// A permutation of `0..<count` (Fisher–Yates over SplitMix64 seeded by the FNV-1a hash of `seed`).
    public static func permutation(count: Int, seed: String) -> [Int] {
        var state = FNV1a.hash64(seed.utf8)
        func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
            return mixed ^ (mixed >> 31)
        }
        var order = Array(0..<count)
        var index = count - 1
        while index > 0 {
            order.swapAt(index, Int(next() % UInt64(index + 1)))
            index -= 1
        }
        return order
    }
}
