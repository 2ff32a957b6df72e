import Foundation
import ImageFormats
import Testing

@testable import AllocationIndex
import TestSupport

/// A cursor reads a scan in batches, each its own read: the scan may leave the index between two of them.
@Suite struct ExtentCursorTests {
    /// More extents than one batch holds (8 chunks of 4,096), so a cursor reads the index again part-way.
    static let extents = syntheticExtents(count: ExtentCursor.chunksPerLoad * IndexStore.extentsPerChunk + 5000, seed: 7)

    /// Reads the first extent (loading the first batch), then the first extent of the second batch.
    func readIntoFirstBatch(_ cursor: ExtentCursor) throws {
        for _ in 0..<(ExtentCursor.chunksPerLoad * IndexStore.extentsPerChunk) { _ = try cursor.next() }
    }

    @Test("a whole read returns every extent, then nil")
    func wholeRead() throws {
        let store = try IndexStore()
        let saved = try store.save(newScan(extents: Self.extents))
        let cursor = ExtentCursor(store: store, scanID: saved.scan.id ?? -1, scannedAtNanoseconds: saved.scan.scannedAtNs)
        var read: [Extent] = []
        while let extent = try cursor.next() { read.append(extent) }
        #expect(read == Self.extents)
    }

    @Test("a scan forgotten part-way throws scanGone instead of ending early")
    func forgottenMidRead() throws {
        let store = try IndexStore()
        let saved = try store.save(newScan(extents: Self.extents))
        let cursor = ExtentCursor(store: store, scanID: saved.scan.id ?? -1, scannedAtNanoseconds: saved.scan.scannedAtNs)
        try readIntoFirstBatch(cursor)
        _ = try store.forget(paths: ["/images/disk.qcow2"])
        #expect(throws: StoreError.self) {
            while try cursor.next() != nil {}
        }
    }

    @Test("a forget and a rescan part-way throws too: the new scan has a new id (and a different scan time)")
    func replacedMidRead() throws {
        let store = try IndexStore()
        let saved = try store.save(newScan(extents: Self.extents))
        let cursor = ExtentCursor(store: store, scanID: saved.scan.id ?? -1, scannedAtNanoseconds: saved.scan.scannedAtNs)
        try readIntoFirstBatch(cursor)
        _ = try store.forget(paths: ["/images/disk.qcow2"])
        var rescan = newScan(extents: syntheticExtents(count: Self.extents.count, seed: 8))
        rescan.scannedAtNanoseconds = saved.scan.scannedAtNs + 1
        let replacement = try store.save(rescan)
        #expect(replacement.scan.id != saved.scan.id)
        #expect(throws: StoreError.self) {
            while try cursor.next() != nil {}
        }
    }

    @Test("gc handing the chunks to a surviving scan part-way does not disturb the read")
    func handedOverMidRead() throws {
        let store = try IndexStore()
        try store.save(newScan(extents: Self.extents, mtime: 1))
        // An unchanged rescan: it borrows the first scan's chunks.
        let latest = try store.save(newScan(extents: Self.extents, mtime: 2))
        let cursor = ExtentCursor(store: store, scanID: latest.scan.id ?? -1, scannedAtNanoseconds: latest.scan.scannedAtNs)
        var read: [Extent] = []
        for _ in 0..<(ExtentCursor.chunksPerLoad * IndexStore.extentsPerChunk) { if let extent = try cursor.next() { read.append(extent) } }
        #expect(try store.collectGarbage(keep: 1, olderThanNanoseconds: nil).scansDeleted == 1)
        while let extent = try cursor.next() { read.append(extent) }
        #expect(read == Self.extents)
    }
}
