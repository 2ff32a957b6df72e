import AllocationIndex
import Foundation
import ImageFormats
import Testing

@Suite struct ExtentRunCodecWindowTests {
    /// 100 extents of 4 KiB alternating data (with host offsets) and holes, from guest offset 1 MiB.
    static let extents: [Extent] = (0..<100).map { index in
        let start = UInt64(1 << 20 + index * 4096)
        return index % 2 == 0
            ? Extent(start: start, length: 4096, depth: 0, present: true, zero: false, data: true, offset: UInt64(8 << 20 + index * 4096))
            : Extent(start: start, length: 4096, depth: 1, present: false, zero: false, data: false)
    }

    @Test("until: decoding ends before the first extent at or past the stop, and the prefix equals a full decode's")
    func stopsAtTheWindowEnd() throws {
        let blob = ExtentRunCodec.encode(Self.extents[...])
        for stop: UInt64 in [0, 1 << 20, (1 << 20) + 1, (1 << 20) + 4096 * 37 + 100, (1 << 20) + 4096 * 100, .max] {
            var decoded: [Extent] = []
            try ExtentRunCodec.decode(blob, start: 1 << 20, count: Self.extents.count, until: stop) { decoded.append($0) }
            #expect(decoded == Self.extents.filter { $0.start < stop }, "stop \(stop)")
        }
        var all: [Extent] = []
        try ExtentRunCodec.decode(blob, start: 1 << 20, count: Self.extents.count) { all.append($0) }
        #expect(all == Self.extents)
    }
}
