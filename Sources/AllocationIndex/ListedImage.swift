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
