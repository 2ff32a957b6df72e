import AllocationIndex
import Foundation
import Report
import Scanner
import Testing

@testable import Catalog
@testable import TestSupport

/// The one status rule, on a real index and real files.
@Suite struct ImageStateTests {
    /// A fresh directory holding one raw file of `size` bytes; returns its path and a cleanup.
    static func rawImage(size: Int) throws -> (path: String, cleanup: () -> Void) {
        let directory = try TemporaryDirectory(prefix: "extentdb-state")
        let path = directory.path("disk.raw")
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: size))
        return (path, directory.cleanup)
    }

    @Test("fresh, then stale when a layer changes, failed when a later scan fails, missing when the file goes")
    func lifecycle() throws {
        let (path, cleanup) = try Self.rawImage(size: 65536)
        defer { cleanup() }
        let store = try IndexStore()
        let catalog = ImageCatalog(indexer: ImageIndexer(store: store))
        let indexed = try catalog.lookup(path: path).indexed
        #expect(try catalog.summary(of: indexed).state == "fresh")
        #expect(ImageState.of(path: path, indexed: indexed, failure: nil) == .fresh)

        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(repeating: 1, count: 512))
        try handle.close()
        let stale = try catalog.summary(of: indexed)
        #expect(stale.state == "stale")
        #expect(stale.staleReason?.contains("changed size") == true, "\(stale)")

        try store.recordFailure(path: path, message: "it broke", atNanoseconds: indexed.scan.scannedAtNs + 1)
        let failed = try catalog.summary(of: indexed)
        #expect(failed.state == "failed")
        #expect(failed.error == "it broke")
        #expect(failed.failedAt != nil)

        try FileManager.default.removeItem(atPath: path)
        #expect(try catalog.summary(of: indexed).state == "missing")
        // Listed with the same words: one summary per image, failures included.
        #expect(try catalog.summaries(matching: { _ in true }).map(\.state) == ["missing"])
    }

    @Test("a lookup that may not scan an unindexed image throws not_indexed, and one that may scans it")
    func lookupPolicy() throws {
        let (path, cleanup) = try Self.rawImage(size: 4096)
        defer { cleanup() }
        let catalog = ImageCatalog(indexer: ImageIndexer(store: try IndexStore()))
        let refused = #expect(throws: CatalogError.self) { try catalog.lookup(path: path, rescan: false) }
        #expect(refused?.code == .notIndexed)
        let scanned = try catalog.lookup(path: path, rescan: true)
        #expect(scanned.indexed.scan.virtualSize == 4096)
        #expect(try catalog.lookup(path: path, rescan: false).rescannedBecause == nil)
    }
}
