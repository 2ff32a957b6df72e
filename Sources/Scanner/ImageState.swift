import AllocationIndex
import Foundation

/// What an indexed (or once tried) image is now, in the one vocabulary every output uses: `list`, `info`,
/// `report` and every HTTP response.
public enum ImageState: Sendable, Equatable {
    /// Every chain layer has the identity it had at the last scan.
    case fresh
    /// A layer changed since the last scan; the next map or export rescans it.
    case stale(reason: String)
    /// The image file is gone; its last scan is still in the index (`prune` forgets it).
    case missing
    /// Its last scan failed, after any scan that succeeded.
    case failed(error: String)

    /// `fresh`, `stale`, `missing` or `failed`: the `state` key's value.
    public var word: String {
        switch self {
        case .fresh: return "fresh"
        case .stale: return "stale"
        case .missing: return "missing"
        case .failed: return "failed"
        }
    }

    /// Why it is stale, or nil.
    public var staleReason: String? {
        if case .stale(let reason) = self { return reason }
        return nil
    }

    /// The failed scan's error, or nil.
    public var error: String? {
        if case .failed(let error) = self { return error }
        return nil
    }

    /// The one rule: a deleted file is `missing`; a scan that failed after the latest good one makes it
    /// `failed`; otherwise a `stat` of each layer (``ImageIndexer/freshness(of:)``) says fresh or stale.
    ///
    /// - Parameters:
    ///   - indexed: the latest good scan, or nil when the image was never scanned.
    ///   - failure: the last failed scan the index recorded for the path, if any.
    ///   - knownMissing: a watcher already saw the file deleted.
    public static func of(path: String, indexed: IndexedScan?, failure: ScanFailure?, knownMissing: Bool = false) -> ImageState {
        guard !knownMissing, FileManager.default.fileExists(atPath: path) else { return .missing }
        if let failure, failure.failedAtNanoseconds > indexed?.scan.scannedAtNs ?? Int64.min { return .failed(error: failure.message) }
        guard let indexed else { return .stale(reason: "not in the index") }
        if case .stale(let reason) = ImageIndexer.freshness(of: indexed) { return .stale(reason: reason) }
        return .fresh
    }
}
