import AllocationIndex
import Catalog
import Foundation
import NIOCore
import Report
import Testing

@testable import Server

@Suite struct ListingCacheTests {
    /// Summaries whose strings try to look like the `"path"` key the cache cuts at.
    static func summaries() -> [ListedSummary] {
        var scanned = ImageSummary(path: "/sr/a/\"path\":x,{\"path\":é.qcow2", state: .missing)
        scanned.id = 7
        scanned.format = "qcow2"
        scanned.state = "fresh"
        scanned.error = nil
        scanned.scanId = 42
        scanned.scannedAt = "2026-12-06T10:00:00Z"
        scanned.virtualSize = 1 << 30
        scanned.allocatedBytes = 65536
        scanned.zeroBytes = 0
        scanned.chainLength = 2
        scanned.scansKept = 3
        var failed = ImageSummary(
            failure: ScanFailure(path: "/sr/b/1.qcow2", failedAtNanoseconds: 5, message: #"header at 0x0: ,"path":"/etc" / \ bad"#))
        failed.lastChecked = "not kept: the page sets it"
        let missing = ImageSummary(path: "/sr/c.qcow2", state: .missing)
        return [
            ListedSummary(
                key: ListedImageKey(path: scanned.path, scanID: 42, failedAtNanoseconds: nil, scansKept: 3),
                summary: scanned, layerPaths: [scanned.path, "/sr/base.raw"]),
            ListedSummary(
                key: ListedImageKey(path: failed.path, scanID: nil, failedAtNanoseconds: 5, scansKept: 0),
                summary: failed, layerPaths: []),
            ListedSummary(
                key: ListedImageKey(path: missing.path, scanID: 9, failedAtNanoseconds: nil, scansKept: 1),
                summary: missing, layerPaths: [missing.path]),
        ]
    }

    @Test("a page from kept entries is byte for byte the JSON of the summaries, last_checked and next included")
    func pageBytes() throws {
        let built = Self.summaries()
        let cache = ListingCache(watched: true)
        let made = cache.remember(built, isMarkedMissing: { _ in false })
        let entries = try built.map { try #require(made[$0.key.path]) }
        // Times in one second, either side of a rounding to the next, none: each entry gets its own text.
        let times: [[Double?]] = [[1_765_000_000.25, nil, 3], [1_765_000_000.25, 1_765_000_000.9996, 1_765_000_000.5], [7.1, 7.2, 7.3]]
        for (next, checked) in zip([nil, "/sr/c.qcow2", "/sr/\"odd\"/é"], times) {
            let body = ListingCache.page(entries, next: next, lastChecked: checked)
            var expected = built.map(\.summary)
            for index in expected.indices {
                expected[index].lastChecked = checked[index].map { ImageReport.timestamp(Int64($0 * 1e9)) }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let reference = try encoder.encode(ImageRoutes.ImagePage(images: expected, next: next))
            #expect(String(buffer: body) == String(decoding: reference, as: UTF8.self))
        }
    }

    @Test("an entry answers while its key and missing mark hold; a changed layer drops the images over it")
    func validity() throws {
        let built = Self.summaries()
        let cache = ListingCache(watched: true)
        _ = cache.remember(built, isMarkedMissing: { _ in false })
        let keys = built.map(\.key)
        #expect(cache.entries(for: keys, markedMissing: [false, false, false]).allSatisfy { $0 != nil })
        var rescanned = keys
        rescanned[0].scanID = 43
        rescanned[1].failedAtNanoseconds = 6
        rescanned[2].scansKept = 2
        #expect(cache.entries(for: rescanned, markedMissing: [false, false, false]).allSatisfy { $0 == nil })
        #expect(cache.entries(for: keys, markedMissing: [false, false, true]).map { $0 == nil } == [false, false, true])
        cache.forget(path: "/sr/base.raw")
        #expect(cache.entries(for: keys, markedMissing: [false, false, false]).map { $0 == nil } == [true, false, false])
        cache.forget(path: keys[1].path)
        #expect(cache.entries(for: keys, markedMissing: [false, false, false]).map { $0 == nil } == [true, true, false])
    }

    @Test("with no watcher, an entry answers for a second at most")
    func unwatched() async throws {
        let built = Self.summaries()
        let cache = ListingCache(watched: false)
        _ = cache.remember(built, isMarkedMissing: { _ in false })
        #expect(cache.entries(for: built.map(\.key), markedMissing: [false, false, false]).allSatisfy { $0 != nil })
        try await Task.sleep(for: .milliseconds(Int(ListingCache.unwatchedLifetime * 1000) + 100))
        #expect(cache.entries(for: built.map(\.key), markedMissing: [false, false, false]).allSatisfy { $0 == nil })
    }
}
