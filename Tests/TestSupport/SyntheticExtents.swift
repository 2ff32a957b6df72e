import ImageFormats

/// A pseudo-random composed map: contiguous extents of mixed status, tiling [0, size).
public func syntheticExtents(count: Int, seed: UInt64 = 42) -> [Extent] {
    var state = seed
    func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 33
    }
    var builder = ExtentListBuilder()
    var start: UInt64 = 0
    var host: UInt64 = 0x50000
    while builder.extents.count < count {
        let length = (next() % 64 + 1) * 4096
        switch next() % 4 {
        case 0:
            builder.append(
                Extent(start: start, length: length, depth: UInt32(next() % 3), present: true, zero: false, data: true, offset: host))
            host += length + (next() % 2) * 65536
        case 1: builder.append(Extent(start: start, length: length, depth: 0, present: true, zero: true, data: false))
        case 2: builder.append(Extent(start: start, length: length, depth: 0, present: true, zero: false, data: true, compressed: true))
        default: builder.append(Extent(start: start, length: length, depth: 2, present: false, zero: true, data: false))
        }
        start += length
    }
    return builder.extents
}
