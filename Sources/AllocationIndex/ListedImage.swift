/// One row of the image list: an image the index knows, scanned or failed, with what its summary needs.
public struct ListedImage: Sendable {
    public var path: String
    /// Its latest scan, with the chain; nil for an image whose only record is a failed scan.
    public var scanned: ImageWithScan?
    public var failure: ScanFailure?
    /// Scans kept of the image.
    public var scansKept: Int

    public init(path: String, scanned: ImageWithScan?, failure: ScanFailure?, scansKept: Int) {
        self.path = path
        self.scanned = scanned
        self.failure = failure
        self.scansKept = scansKept
    }
}

/// The path ranges of a page query: a path is under directory `d` when `d/` ≤ path < `d0` in byte order
/// (`0` follows `/`), so each directory is one range an index on the path answers.
public enum PathRanges {
    public static func under(_ directories: [String]) -> [(lower: String, upper: String)] {
        directories.map { directory in
            let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
            return (base + "/", base + "0")
        }
    }
}

/// What a listed image's summary is made from, in a few numbers: two equal keys mean the index holds the
/// same latest scan, the same failure record and the same number of scans for the path (a rescan, a failed
/// scan, a forget or a retention pass moves the key).
public struct ListedImageKey: Sendable, Hashable {
    public var path: String
    /// The latest scan's id: ids are never reused (SQLite since migration 0004, which every index a service
    /// opens has; an identity column on PostgreSQL), so the id alone names one scan.
    public var scanID: Int64?
    public var failedAtNanoseconds: Int64?
    public var scansKept: Int

    public init(path: String, scanID: Int64?, failedAtNanoseconds: Int64?, scansKept: Int) {
        self.path = path
        self.scanID = scanID
        self.failedAtNanoseconds = failedAtNanoseconds
        self.scansKept = scansKept
    }
}

extension ListedImage {
    /// This row's key, equal to what ``IndexStoring/imagePageKeys(after:limit:under:)`` answers for it.
    public var key: ListedImageKey {
        ListedImageKey(
            path: path, scanID: scanned?.scan.id, failedAtNanoseconds: failure?.failedAtNanoseconds,
            scansKept: scanned == nil ? 0 : scansKept)
    }
}
