import AllocationIndex
import Foundation
import PoolCatalog
import Scanner
import Synchronization
import Testing

@testable import TestSupport

/// A directory scan's look-ahead on a pool catalog (``LatestScanLookahead``) and the hints it gives
/// ``ImageIndexer/ensureIndexed(path:force:progress:waitsForOtherHosts:hint:)``: real qcow2 images, real stores.
@Suite struct LatestScanLookaheadTests {
    /// `count` small qcow2 images (`d0.qcow2`, ...), each with data of its own.
    static func images(_ count: Int, in directory: TemporaryDirectory) throws -> [String] {
        try (0..<count).map { index in
            let path = directory.path("d\(index).qcow2")
            try run("qemu-img", ["create", "-q", "-f", "qcow2", path, "16M"])
            try run("qemu-io", ["-f", "qcow2", "-c", "write -q -P \(index % 250 + 1) \(index % 16)M 64k", path])
            return path
        }
    }

    @Test("on a pool catalog every indexed image visited gets its latest scan once, batch by batch; others get none")
    func hintsOnAPool() throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-lookahead")
        defer { scratch.cleanup() }
        let store = try StoreBackend.postgres.makeStore(in: scratch.url)
        // More than a batch, so that a second read happens; every fourth image is not indexed.
        let paths = try Self.images(LatestScanLookahead.batchSize + 8, in: scratch)
        let indexer = ImageIndexer(store: store)
        var indexed: [String: IndexedScan] = [:]
        for (index, path) in paths.enumerated() where index % 4 != 3 {
            indexed[path] = try indexer.ensureIndexed(path: path).indexed
        }
        let visiting = Array(paths.reversed())
        let lookahead = LatestScanLookahead(store: store, canonicalPaths: visiting.map { try? ImageIndexer.canonicalPath($0) } + [nil])
        for (position, path) in visiting.enumerated() {
            #expect(lookahead.hint(at: position) == indexed[path], "\(path)")
            // Handed out once: a second ask finds nothing kept.
            #expect(lookahead.hint(at: position) == nil)
        }
        // A path that did not resolve (nil), and positions outside the order, get none.
        #expect(lookahead.hint(at: visiting.count) == nil)
        #expect(lookahead.hint(at: visiting.count + 1) == nil)
        #expect(lookahead.hint(at: -1) == nil)
    }

    @Test("visits from several threads at once: each image gets its own latest scan, once; a batch is read while others wait")
    func concurrentVisits() throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-lookahead")
        defer { scratch.cleanup() }
        let store = try StoreBackend.postgres.makeStore(in: scratch.url)
        let paths = try Self.images(LatestScanLookahead.batchSize * 2 + 5, in: scratch)
        let indexer = ImageIndexer(store: store)
        var indexed: [String: IndexedScan] = [:]
        for path in paths { indexed[path] = try indexer.ensureIndexed(path: path).indexed }
        let lookahead = LatestScanLookahead(store: store, canonicalPaths: paths.map { try? ImageIndexer.canonicalPath($0) })
        let handedOut = Mutex<[Int: [IndexedScan]]>([:])
        // Every position asked twice, by whichever threads take the turns, in an order where neighbours race
        // for one batch.
        DispatchQueue.concurrentPerform(iterations: paths.count * 2) { turn in
            let position = turn % paths.count
            let hint = lookahead.hint(at: position)
            handedOut.withLock { $0[position, default: []] += hint.map { [$0] } ?? [] }
        }
        let answers = handedOut.withLock { $0 }
        for (position, path) in paths.enumerated() {
            #expect(answers[position] == [try #require(indexed[path])], "\(path): its scan, handed out once")
        }
    }

    @Test("an embedded store is asked nothing ahead: each visit looks its image up itself")
    func nothingOnSQLite() throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-lookahead")
        defer { scratch.cleanup() }
        let store = try StoreBackend.sqlite.makeStore(in: scratch.url)
        let paths = try Self.images(2, in: scratch)
        for path in paths { _ = try ImageIndexer(store: store).ensureIndexed(path: path) }
        let lookahead = LatestScanLookahead(store: store, canonicalPaths: paths.map { try? ImageIndexer.canonicalPath($0) })
        #expect(lookahead.hint(at: 0) == nil && lookahead.hint(at: 1) == nil)
    }

    @Test("a hint that holds answers; a stale one rescans; one of another image is ignored", arguments: StoreBackend.allCases)
    func hintsAnswerOnlyWhenTheyHold(backend: StoreBackend) throws {
        let scratch = try TemporaryDirectory(prefix: "extentdb-lookahead")
        defer { scratch.cleanup() }
        let store = try backend.makeStore(in: scratch.url)
        let paths = try Self.images(2, in: scratch)
        let indexer = ImageIndexer(store: store)
        let first = try indexer.ensureIndexed(path: paths[0]).indexed
        let second = try indexer.ensureIndexed(path: paths[1]).indexed
        func visit(_ path: String, hint: IndexedScan) throws -> IndexingOutcome {
            try #require(try indexer.ensureIndexed(path: path, force: false, progress: nil, waitsForOtherHosts: true, hint: hint))
        }
        let fresh = try visit(paths[0], hint: first)
        #expect(fresh.action == .unchanged && fresh.indexed == first)
        // The hint answers, not a lookup: given an earlier scan that still holds, that scan is the answer.
        let newer = try indexer.ensureIndexed(path: paths[1], force: true).indexed
        #expect(newer.scan.id != second.scan.id)
        let hinted = try visit(paths[1], hint: second)
        #expect(hinted.action == .unchanged && hinted.indexed == second)
        // A hint of the second image given for the first: the first's own scan answers.
        let crossed = try visit(paths[0], hint: second)
        #expect(crossed.action == .unchanged && crossed.indexed == first)
        // The image changed after its hint was read: it is scanned again, and the new scan is the latest.
        try run("qemu-io", ["-f", "qcow2", "-c", "write -q -P 7 8M 64k", paths[0]])
        let stale = try visit(paths[0], hint: first)
        #expect(stale.action == .scanned && stale.indexed.scan.id != first.scan.id)
        #expect(try store.latestScan(path: paths[0]) == stale.indexed)
        #expect(stale.indexed.scan.dataBytes == first.scan.dataBytes + 65536)
    }
}
