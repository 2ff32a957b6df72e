import Foundation
import ImageFormats
import Testing

@testable import AllocationIndex
import TestSupport

@Suite struct PackedScanExtentsTests {
    @Test("skippingTo: extents ending at or before the skip point are not handed over; the rest equal a full decode's")
    func skipsBeforeTheWindow() throws {
        let extents = ExtentRunCodecWindowTests.extents
        let blob = ExtentRunCodec.encode(extents[...])
        for skip: UInt64 in [0, 1 << 20, (1 << 20) + 1, (1 << 20) + 4096, (1 << 20) + 4096 * 37 + 100, (1 << 20) + 4096 * 100, .max] {
            var decoded: [Extent] = []
            try ExtentRunCodec.decode(blob, start: 1 << 20, count: extents.count, skippingTo: skip) { decoded.append($0) }
            #expect(decoded == extents.filter { $0.end > skip }, "skip \(skip)")
        }
    }

    @Test("decoding from a reported resume point gives the extents from that index on")
    func resumePoints() throws {
        let extents = syntheticExtents(count: 300)
        let blob = ExtentRunCodec.encode(extents[...])
        var points: [ExtentRunCodec.ResumePoint] = []
        try ExtentRunCodec.decode(blob, from: .init(start: 0), count: extents.count, markingEvery: 7, mark: { points.append($0) }) { _ in }
        #expect(points.map(\.index) == Array(stride(from: 0, to: extents.count, by: 7)))
        for point in points {
            var decoded: [Extent] = []
            try ExtentRunCodec.decode(blob, from: point, count: extents.count) { decoded.append($0) }
            #expect(decoded == Array(extents[point.index...]), "from extent \(point.index)")
            #expect(point.guest == extents[point.index].start)
        }
    }

    @Test("windows from the packed copy equal the index's, at chunk edges and inside chunks")
    func windowsEqualTheIndex() throws {
        let store = try IndexStore()
        // Three and a half chunks of mixed extents, compressed clusters included.
        let extents = syntheticExtents(count: IndexStore.extentsPerChunk * 7 / 2)
        let indexed = try store.save(newScan(extents: extents))
        let scanID = try #require(indexed.scan.id)
        let packed = try #require(
            try PackedScanExtents.load(
                store: store, scanID: scanID, scannedAtNanoseconds: indexed.scan.scannedAtNs, maximumBytes: 1 << 30))
        let size = extents.last?.end ?? 0
        var windows: [(UInt64, UInt64)] = [(0, size), (0, 1), (size - 1, size), (size, size + 1), (0, .max), (5, 5)]
        for boundary in [extents[IndexStore.extentsPerChunk].start, extents[2 * IndexStore.extentsPerChunk].start] {
            windows += [(boundary - 1, boundary + 1), (boundary, boundary + 4096), (boundary - 4096, boundary)]
        }
        var state: UInt64 = 7
        for _ in 0..<200 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let lower = (state >> 11) % size
            windows.append((lower, lower + (state >> 40) % (1 << 22) + 1))
        }
        for (lower, upper) in windows {
            var fromPacked: [Extent] = []
            try packed.forEachExtent(from: lower, to: upper) { fromPacked.append($0) }
            #expect(fromPacked == (try store.extents(scanID: scanID, from: lower, to: upper)), "window \(lower)..<\(upper)")
        }
    }

    @Test("no copy of a scan past the size limit, gone, or scanned at another time")
    func refusals() throws {
        let store = try IndexStore()
        let indexed = try store.save(newScan(extents: syntheticExtents(count: 5000)))
        let scanID = try #require(indexed.scan.id)
        let time = indexed.scan.scannedAtNs
        #expect(try PackedScanExtents.load(store: store, scanID: scanID, scannedAtNanoseconds: time, maximumBytes: 100) == nil)
        #expect(try PackedScanExtents.load(store: store, scanID: scanID, scannedAtNanoseconds: time + 1, maximumBytes: 1 << 30) == nil)
        #expect(try PackedScanExtents.load(store: store, scanID: scanID + 1, scannedAtNanoseconds: time, maximumBytes: 1 << 30) == nil)
    }
}
