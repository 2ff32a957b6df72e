import ImageFormats

/// The index operations the library uses, named once: the storage seam.
///
/// ``IndexStore`` (SQLite through GRDB) is the embedded default; a pool catalog on a server engine plugs in
/// (`PostgresStore`, module PoolCatalog) plugs in behind the same protocol, and tests run one suite against
/// both. Front ends and the library take `any IndexStoring`.
/// Every operation is one transaction: a reader never sees half a scan.
public protocol IndexStoring: AnyObject, Sendable {
    /// Where the index lives, for messages (nil in memory).
    var path: String? { get }
    /// This process can only read the index: nothing is migrated, scanned or recorded.
    var isReadOnly: Bool { get }
    /// True when several hosts may scan into this index at once (a pool catalog): ``withScanLock(path:_:)``
    /// then coordinates them, and a directory scan visits its images in an order of its own host's.
    var isShared: Bool { get }

    // MARK: Save a scan

    /// Records a scan of one image's chain, with its extents, in one transaction; history beyond
    /// ``NewScan/keepScans`` is pruned in the same transaction.
    func save(_ scan: NewScan) throws -> IndexedScan

    // MARK: The latest scan, by path or id

    func latestScan(path: String) throws -> IndexedScan?
    func latestScan(imageID: Int64) throws -> IndexedScan?
    /// The latest scans of `paths` (paths with none are left out, the order is the store's): a directory
    /// scan's look-ahead, one round trip for many images on a server.
    func latestScans(paths: [String]) throws -> [IndexedScan]
    /// One scan by id, with its image and chain.
    func indexedScan(id: Int64) throws -> IndexedScan?
    /// The image row for `path`, scanned or not.
    func image(path: String) throws -> ImageRecord?

    // MARK: Extents in a window

    /// Calls `body` with each extent of a scan overlapping `[lower, upper)`, clipped to it, in guest order.
    func forEachExtent(scanID: Int64, from lower: UInt64, to upper: UInt64, _ body: (Extent) throws -> Void) throws
    /// The next stored chunks of a scan for a cursor (``ExtentCursor``), or nil when the scan is gone.
    func extentChunks(scanID: Int64, from lower: UInt64, continuingAt: Int64?, to upper: UInt64, limit: Int) throws -> ExtentChunkBatch?

    /// The qcow2 persistent dirty bitmaps a scan recorded, by name.
    func bitmaps(scanID: Int64) throws -> [DirtyBitmap]

    // MARK: Content digests

    /// Records (or replaces) the chunk digests of a scan, in one transaction.
    func saveDigests(_ digests: ScanDigests) throws
    /// The digests recorded for a scan, or nil when no digest scan was made of it.
    func digests(scanID: Int64) throws -> ScanDigests?
    /// Guest ranges a digest scan of the scan found to read as zeros inside stored data (empty without one).
    func foundZeroRanges(scanID: Int64) throws -> [Range<UInt64>]
    /// The kept scans of the image that have digests, oldest first.
    func digestScans(path: String) throws -> [DigestScanSummary]
    /// The latest digests of any kept scan of the image at `path` (what a new digest scan keeps chunks from).
    func latestDigests(path: String) throws -> ScanDigests?

    // MARK: History

    /// Every kept scan of the image at `path`, oldest first.
    func scans(path: String) throws -> [ScanRecord]
    /// How many scans each image keeps, by image id.
    func scanCounts() throws -> [Int64: Int]
    /// True when scan `id` existed once and was removed (retention, `gc`, a forgotten image).
    func scanWasRemoved(id: Int64) throws -> Bool

    // MARK: Forget and collect

    /// Removes images with all their scans and failure records; returns the paths that were known.
    func forget(paths: [String]) throws -> [String]
    /// Applies retention to every image (the latest scan is always kept).
    func collectGarbage(keep: Int?, olderThanNanoseconds: Int64?) throws -> RetentionResult
    /// Every path the index knows as an image, scanned or failed.
    func knownImagePaths() throws -> [String]

    // MARK: Report rows

    /// Every image with a scan, with that scan and its chain; only those at `paths` or under `directories`
    /// unless both are empty.
    func scannedImages(matching paths: [String], directories: [String]) throws -> [ImageWithScan]

    /// One page of the image list as keys: images with a scan and paths with only a failed scan, in byte
    /// order of their paths, those after `after` (nil: from the start), at most `limit`, only under
    /// `directories` (none: all). Work is per page, not per image in the index. A key is what a kept summary
    /// of the row is checked against (a summary is rebuilt only when its key moved).
    func imagePageKeys(after: String?, limit: Int, under directories: [String]) throws -> [ListedImageKey]
    /// The rows of the image list at `paths`, in the order given; a path the index no longer knows is left
    /// out.
    func listedImages(paths: [String]) throws -> [ListedImage]

    // MARK: Failures

    func recordFailure(path: String, message: String, atNanoseconds: Int64) throws
    func failure(path: String) throws -> ScanFailure?
    func failures() throws -> [String: ScanFailure]

    // MARK: Scans across processes

    /// Runs `body` while holding the index's scan lock for `path`, so processes sharing the index (the hosts
    /// of a pool) scan an image one at a time; the others wait here, then find the new scan and reuse it.
    /// The lock goes with the process: one that dies releases it. An embedded SQLite index is one host's
    /// and has no such lock (its writes are serialised anyway).
    func withScanLock<T>(path: String, _ body: () throws -> T) throws -> T
    /// Like ``withScanLock(path:_:)``, but returns nil at once, without running `body`, when another process
    /// holds the lock (a host scanning a shared directory moves on to the next image and comes back later).
    func withScanLockIfFree<T>(path: String, _ body: () throws -> T) throws -> T?

    /// Calls `handler` whenever any process sharing the index records a scan or forgets an image (this one
    /// included), until the returned subscription is stopped; nil when the store has no such feed (an
    /// embedded SQLite index is one host's: its service sees its own changes). `interrupted` is told when
    /// the feed drops and when it is back (what changed in between was not heard).
    func watchChanges(
        _ handler: @escaping @Sendable (CatalogChange) -> Void, interrupted: @escaping @Sendable (String) -> Void
    ) throws -> (any ChangeSubscription)?

    // MARK: Operator's checks

    /// Schema version, integrity (what the engine can check) and rows that point at nothing.
    func check() throws -> IndexCheck
    /// Gives free space back (`VACUUM`); returns the index's size before and after.
    func vacuum() throws -> (before: UInt64, after: UInt64)
}

extension IndexStoring {
    public var isShared: Bool { false }

    /// One ``latestScan(path:)`` after another: what an embedded store needs.
    public func latestScans(paths: [String]) throws -> [IndexedScan] {
        try paths.compactMap { try latestScan(path: $0) }
    }

    /// One page of the image list (``imagePageKeys(after:limit:under:)``) with each row whole
    /// (``listedImages(paths:)``); a row forgotten between the two reads is left out.
    public func imagePage(after: String?, limit: Int, under directories: [String]) throws -> [ListedImage] {
        try listedImages(paths: imagePageKeys(after: after, limit: limit, under: directories).map(\.path))
    }

    public func withScanLock<T>(path: String, _ body: () throws -> T) throws -> T {
        try body()
    }

    public func withScanLockIfFree<T>(path: String, _ body: () throws -> T) throws -> T? {
        try body()
    }

    public func watchChanges(
        _ handler: @escaping @Sendable (CatalogChange) -> Void, interrupted: @escaping @Sendable (String) -> Void
    ) throws -> (any ChangeSubscription)? {
        nil
    }

    /// Every extent of a scan from `lower` on, or all of them.
    public func forEachExtent(scanID: Int64, from lower: UInt64 = 0, _ body: (Extent) throws -> Void) throws {
        try forEachExtent(scanID: scanID, from: lower, to: UInt64(Int64.max), body)
    }

    /// Like ``forEachExtent(scanID:from:to:_:)`` but hands over the extents in batches (clipped to the range),
    /// which keeps per-extent overhead out of hot output loops.
    public func forEachBatch(
        scanID: Int64, from lower: UInt64 = 0, to upper: UInt64 = UInt64(Int64.max), _ body: ([Extent]) throws -> Void
    ) throws {
        var batch: [Extent] = []
        batch.reserveCapacity(IndexStore.extentsPerChunk)
        try forEachExtent(scanID: scanID, from: lower, to: upper) { extent in
            if batch.count == IndexStore.extentsPerChunk {
                try body(batch)
                batch.removeAll(keepingCapacity: true)
            }
            batch.append(extent)
        }
        if !batch.isEmpty { try body(batch) }
    }

    /// The extents of a scan overlapping `[lower, upper)`, clipped to it.
    public func extents(scanID: Int64, from lower: UInt64 = 0, to upper: UInt64 = UInt64(Int64.max)) throws -> [Extent] {
        var result: [Extent] = []
        try forEachExtent(scanID: scanID, from: lower, to: upper) { result.append($0) }
        return result
    }

    /// Every image with a scan.
    public func scannedImages() throws -> [ImageWithScan] {
        try scannedImages(matching: [], directories: [])
    }
}

extension IndexStore: IndexStoring {
    public func save(_ scan: NewScan) throws -> IndexedScan {
        try save(scan, beforeCommit: nil)
    }
}
