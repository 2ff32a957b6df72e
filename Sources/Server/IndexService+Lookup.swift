import AllocationIndex
import Foundation
import NIOPosix
import Scanner

extension IndexService {
    /// The image with this id, as its latest scan, refusing images whose chain leaves the roots.
    ///
    /// - Throws: ``APIError`` 404 when there is no such indexed image, 403 outside the roots.
    func indexedImage(id: Int64) throws -> IndexedScan {
        guard let indexed = try store.latestScan(imageID: id) else { throw APIError.notFound("no indexed image with id \(id)") }
        try confine(indexed)
        return indexed
    }

    /// Refuses an image any of whose layers (or data files) lies outside the roots: such a chain was
    /// indexed by someone else sharing the index, and the service never opens files outside its roots.
    func confine(_ indexed: IndexedScan) throws {
        let paths = [indexed.image.path] + indexed.layers.flatMap { [$0.path] + ($0.dataPath.map { [$0] } ?? []) }
        for path in paths where !policy.contains(path) {
            throw APIError.forbidden("image \(indexed.image.id ?? 0) uses \(path), outside the service's roots")
        }
    }

    /// The image's latest scan, made fresh first when a `stat` (or, for exports, a header checksum) shows
    /// it changed: the CLI's freshness policy (``ImageIndexer/lookup(path:rescan:checkHeaders:)``). The fresh
    /// case answers on the calling thread; a rescan runs on a worker thread.
    func freshImage(id: Int64, checkHeaders: Bool = false) async throws -> IndexedScan {
        let now = Date().timeIntervalSince1970
        let indexed: IndexedScan
        if !checkHeaders, let cached = cache.scan(imageID: id, now: now) {
            indexed = cached
        } else {
            indexed = try indexedImage(id: id)
            cache.remember(indexed, imageID: id, now: now)
        }
        let freshness = checkHeaders ? ImageIndexer.freshnessWithHeaders(of: indexed) : ImageIndexer.freshness(of: indexed)
        if freshness.isFresh { return indexed }
        let path = indexed.image.path
        guard FileManager.default.fileExists(atPath: path) else {
            markChecked(path, exists: false)
            throw APIError(.gone, "missing", "\(path) was deleted; its last scan is still in the index")
        }
        let indexer = indexer
        let rescanned = try await blockingPool.runIfActive {
            try indexer.lookup(path: path, rescan: true, checkHeaders: checkHeaders).indexed
        }
        markChecked(path)
        cache.forget(imageID: id)
        try confine(rescanned)
        return rescanned
    }
}
