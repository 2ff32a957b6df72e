import Testing

@testable import ImageFormats

@Suite struct ExtentTests {
    @Test("merges only equal status with continuing host offsets, like qemu-img map")
    func merging() {
        var builder = ExtentListBuilder()
        builder.append(Extent(start: 0, length: 10, depth: 0, present: true, zero: false, data: true, offset: 100))
        builder.append(Extent(start: 10, length: 10, depth: 0, present: true, zero: false, data: true, offset: 110))
        builder.append(Extent(start: 20, length: 10, depth: 0, present: true, zero: false, data: true, offset: 500))
        builder.append(Extent(start: 30, length: 10, depth: 1, present: true, zero: false, data: true, offset: 510))
        builder.append(Extent(start: 40, length: 0, depth: 1, present: true, zero: false, data: true, offset: 520))
        #expect(builder.extents.map(\.length) == [20, 10, 10])
    }

    @Test("clipping moves the host offset along")
    func clipping() {
        let extent = Extent(start: 100, length: 50, depth: 0, present: true, zero: false, data: true, offset: 1000)
        #expect(
            extent.clipped(to: 120, 130) == Extent(start: 120, length: 10, depth: 0, present: true, zero: false, data: true, offset: 1020))
        #expect(extent.clipped(to: 150, 200) == nil)
    }
}
