import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Report
import Scanner

/// The front door: what the CLI, the HTTP service and the NBD server ask of the index, with the policy
/// (lookup and rescan, state, vocabulary, confinement) decided here once.
///
/// Front ends parse a request, call one of these, and render the answer or the ``CatalogError``. Every
/// error thrown from here is a ``CatalogError``.
public struct ImageCatalog: Sendable {
    public let indexer: ImageIndexer
    public var store: any IndexStoring { indexer.store }

    public init(indexer: ImageIndexer) {
        self.indexer = indexer
    }

    /// The latest scan of the image at `path`, rescanned first when the index is missing or stale: the one
    /// lookup every front end uses (``ImageIndexer/staleness(of:checkHeaders:)`` decides).
    ///
    /// - Parameters:
    ///   - rescan: scan when needed; false makes a missing or stale index a `not_indexed` or `stale` error,
    ///     unless `answerStale` asks for the stale scan as it is.
    ///   - checkHeaders: also compare each layer's header checksum (exports), not only `stat`.
    public func lookup(path: String, rescan: Bool = true, checkHeaders: Bool = false, answerStale: Bool = false) throws(CatalogError)
        -> ImageIndexer.Lookup
    {
        try classified { try indexer.lookup(path: path, rescan: rescan, checkHeaders: checkHeaders, answerStale: answerStale) }
    }

    /// The canonical path the index keys `path` by.
    public func canonicalPath(_ path: String) throws(CatalogError) -> String {
        try classified { try ImageIndexer.canonicalPath(path) }
    }

    /// Every image the index knows that `matches` selects, with its state: scanned images and images whose
    /// every scan failed, sorted by path (`list`, `GET /v1/images`).
    ///
    /// - Parameter knownMissing: paths a watcher already saw deleted.
    public func summaries(matching matches: (String) -> Bool, knownMissing: (String) -> Bool = { _ in false }) throws(CatalogError)
        -> [ImageSummary]
    {
        try classified {
            let failures = try store.failures()
            let counts = try store.scanCounts()
            var summaries: [ImageSummary] = []
            var listed = Set<String>()
            for item in try store.scannedImages() where matches(item.image.path) {
                let indexed = IndexedScan(image: item.image, scan: item.scan, layers: item.layers)
                summaries.append(
                    ImageSummary(
                        indexed, failure: failures[item.image.path], knownMissing: knownMissing(item.image.path),
                        scansKept: item.image.id.flatMap { counts[$0] } ?? 0))
                listed.insert(item.image.path)
            }
            for failure in failures.values where !listed.contains(failure.path) && matches(failure.path) {
                summaries.append(ImageSummary(failure: failure))
            }
            return summaries.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        }
    }

    /// The keys of one page of ``summaries(matching:knownMissing:)`` (the images under `directories` whose
    /// paths follow `after` in byte order, at most `limit`), for a caller that keeps summaries between
    /// requests: the page's rows as a few numbers each, one light query.
    public func pageKeys(after: String?, limit: Int, under directories: [String]) throws(CatalogError) -> [ListedImageKey] {
        try classified { try store.imagePageKeys(after: after, limit: limit, under: directories) }
    }

    /// The summaries of the listed images at `paths` (each with its key and the paths of its chain's
    /// layers), for those the index still lists.
    public func listedSummaries(paths: [String], knownMissing: (String) -> Bool = { _ in false }) throws(CatalogError)
        -> [ListedSummary]
    {
        try classified {
            try store.listedImages(paths: paths).map { row in
                ListedSummary(
                    key: row.key, summary: Self.summary(of: row, knownMissing: knownMissing(row.path)),
                    layerPaths: row.scanned?.layers.map(\.path) ?? [])
            }
        }
    }

    /// The summary of one row of the image list, its state from the disk as ``summary(of:knownMissing:)``.
    static func summary(of row: ListedImage, knownMissing: Bool) -> ImageSummary {
        guard let scanned = row.scanned else {
            return row.failure.map { ImageSummary(failure: $0) } ?? ImageSummary(path: row.path, state: .missing)
        }
        return ImageSummary(
            IndexedScan(image: scanned.image, scan: scanned.scan, layers: scanned.layers), failure: row.failure,
            knownMissing: knownMissing, scansKept: row.scansKept)
    }

    /// The summary of one indexed image, its state and figures as every output shows them.
    public func summary(of indexed: IndexedScan, knownMissing: Bool = false) throws(CatalogError) -> ImageSummary {
        try classified {
            let failure = try store.failure(path: indexed.image.path)
            let kept = try indexed.image.id.flatMap { try store.scanCounts()[$0] }
            return ImageSummary(indexed, failure: failure, knownMissing: knownMissing, scansKept: kept)
        }
    }

    /// Runs `body`, classifying whatever it throws.
    func classified<T>(_ body: () throws -> T) throws(CatalogError) -> T {
        do {
            return try body()
        } catch {
            throw CatalogError(classifying: error)
        }
    }
}

/// One listed image's summary with what it was made from: its ``ListedImageKey`` and its chain's layer paths
/// (a change to any of them can change its state).
public struct ListedSummary: Sendable {
    public var key: ListedImageKey
    public var summary: ImageSummary
    public var layerPaths: [String]

    public init(key: ListedImageKey, summary: ImageSummary, layerPaths: [String]) {
        self.key = key
        self.summary = summary
        self.layerPaths = layerPaths
    }
}
