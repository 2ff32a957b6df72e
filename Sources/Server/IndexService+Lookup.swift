import AllocationIndex
import Catalog
import Foundation
import ImageIO
import NIOPosix
import Scanner

extension IndexService {
    /// The image with this id, as its latest scan, refusing images whose chain leaves the roots.
    ///
    /// - Throws: ``CatalogError`` `notFound` when there is no such indexed image, or when it may not be served here (the
    ///   same answer, so a client learns nothing about images outside the roots).
    func indexedImage(id: Int64) throws -> IndexedScan {
        guard let indexed = try store.latestScan(imageID: id) else { throw Self.noImage(id) }
        try confine(indexed)
        return indexed
    }

    static func noImage(_ id: Int64) -> CatalogError { CatalogError(.notFound, "no indexed image with id \(id)") }

    static func replaced(_ id: Int64) -> CatalogError {
        CatalogError(.replaced, "image \(id): its file was replaced by a symbolic link; it is not followed (scan the path again)")
    }

    /// Refuses an image the service may not serve: the image outside the roots, or a layer or data file
    /// outside both the roots and the trusted roots. Such a chain was indexed by someone else sharing the
    /// index, under trust the service does not give. The answer is a plain 404, naming no path.
    func confine(_ indexed: IndexedScan) throws {
        let id = indexed.image.id ?? 0
        guard policy.contains(indexed.image.path) else { throw Self.noImage(id) }
        let paths = indexed.layers.flatMap { [$0.path] + ($0.dataPath.map { [$0] } ?? []) }
        let trusted = RootPolicy(roots: configuration.roots + configuration.trustRoots)
        for path in paths where !trusted.contains(path) { throw Self.noImage(id) }
    }

    /// The image's latest scan, made fresh first when a `stat` (or, for exports, a header checksum) shows
    /// it changed: the CLI's freshness policy (``ImageIndexer/lookup(path:rescan:checkHeaders:)``). The fresh
    /// case answers on the calling thread; a rescan runs on a worker thread.
    func freshImage(id: Int64, checkHeaders: Bool = false) async throws -> IndexedScan {
        let now = Date().timeIntervalSince1970
        let indexed: IndexedScan
        // The trust check decodes the scan's record; a cached scan passed it when it was cached.
        let covered: Bool
        if !checkHeaders, let cached = cache.scan(imageID: id, now: now) {
            indexed = cached
            covered = true
        } else {
            indexed = try indexedImage(id: id)
            covered = indexer.trustShortfall(of: indexed) == nil
            if covered { cache.remember(indexed, imageID: id, now: now) }
        }
        // ``ImageIndexer/staleness(of:checkHeaders:)`` in two halves: the trust half was decided when the scan
        // was cached (the service pins no format), so a cached answer costs only the stat.
        let freshness = checkHeaders ? ImageIndexer.freshnessWithHeaders(of: indexed) : ImageIndexer.freshness(of: indexed)
        if freshness.isFresh && covered { return indexed }
        let path = indexed.image.path
        // An id names the file it was indexed from: its recorded path is canonical, so a symbolic link on it
        // now means the file was replaced by a pointer to another one (another tenant's disk, perhaps).
        if let now = PathResolver.canonical(path), !now.utf8.elementsEqual(path.utf8) { throw Self.replaced(id) }
        guard FileManager.default.fileExists(atPath: path) else {
            markChecked(path, exists: false)
            throw CatalogError(.missing, "\(path) was deleted; its last scan is still in the index")
        }
        let catalog = catalog
        let rescanned = try await blockingPool.runIfActive {
            try catalog.lookup(path: path, rescan: true, checkHeaders: checkHeaders).indexed
        }
        markChecked(path)
        cache.forget(imageID: id)
        guard rescanned.image.id == id else { throw Self.replaced(id) }
        try confine(rescanned)
        return rescanned
    }

    /// The packed extents of `indexed`'s scan, from memory, or read from the index now when no other
    /// request is reading them and they fit the cache (``ResponseCache``); nil otherwise (read the index).
    func packedExtents(of indexed: IndexedScan) throws -> PackedScanExtents? {
        var claim = true
        if let packed = cache.packedExtents(of: indexed.scan, claim: &claim) { return packed }
        guard claim, let scanID = indexed.scan.id else { return nil }
        let loaded: PackedScanExtents?
        do {
            loaded = try PackedScanExtents.load(
                store: store, scanID: scanID, scannedAtNanoseconds: indexed.scan.scannedAtNs, maximumBytes: ResponseCache.largestPackedScan)
        } catch {
            cache.abandonLoading(scanID: scanID, refuse: false)
            throw error
        }
        guard let loaded else {
            cache.abandonLoading(scanID: scanID, refuse: true)
            return nil
        }
        cache.remember(loaded, imageID: indexed.image.id ?? -1)
        return loaded
    }
}
