import AllocationIndex
import Foundation
import ImageFormats
import Testing

/// ``Extent/storedZero`` survives the index's packing, and keeps extents apart in storage but not in `map`.
@Suite struct HostZeroCodecTests {
    @Test("flag bit 6 round-trips; blobs without it decode as before")
    func roundTrip() throws {
        let extents = [
            Extent(start: 0, length: 65536, depth: 0, present: true, zero: false, data: true, offset: 327680),
            Extent(start: 65536, length: 131072, depth: 0, present: true, zero: false, data: true, offset: 393216, storedZero: true),
            Extent(start: 196608, length: 65536, depth: 1, present: false, zero: true, data: false),
        ]
        let blob = ExtentRunCodec.encode(extents[...])
        var decoded: [Extent] = []
        try ExtentRunCodec.decode(blob, start: 0, count: extents.count) { decoded.append($0) }
        #expect(decoded == extents)
        #expect(decoded.map(\.storesData) == [true, false, false])
    }

    @Test("storage keeps data and host-zero runs apart; qemu-img map's merge does not see the difference")
    func merging() {
        let data = Extent(start: 0, length: 65536, depth: 0, present: true, zero: false, data: true, offset: 0)
        let hole = Extent(start: 65536, length: 65536, depth: 0, present: true, zero: false, data: true, offset: 65536, storedZero: true)
        #expect(!data.canMerge(with: hole))
        #expect(data.canMergeForDisplay(with: hole))
        #expect(hole.withStoredZerosShown.zero && !hole.withStoredZerosShown.storedZero)
        #expect(ExtentListBuilder.displayMerged([data, hole]).count == 1)
    }
}
