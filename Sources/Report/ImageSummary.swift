import AllocationIndex
import ImageIO
import Scanner

/// One image as every machine output names it: `list`, `info`, `report` and the HTTP API share these keys
/// and, for the same image, these values (the README's vocabulary table).
///
/// A failed image that was never scanned has only `path`, `state`, `error` and `failed_at`.
public struct ImageSummary: Codable, Sendable, Equatable {
    public var id: Int64?
    public var path: String
    public var format: String?
    public var virtualSize: UInt64?
    /// ``ImageState/word``: fresh, stale, missing or failed.
    public var state: String
    /// The failed scan's error (state failed).
    public var error: String?
    public var staleReason: String?
    public var scanId: Int64?
    /// RFC 3339, UTC, to the second.
    public var scannedAt: String?
    /// When the failed scan ran (state failed).
    public var failedAt: String?
    /// Data the image's own layer stores.
    public var allocatedBytes: UInt64?
    /// Ranges the image's own layer records as reading zero.
    public var zeroBytes: UInt64?
    /// Data over the whole chain: what a full export sends.
    public var chainAllocatedBytes: UInt64?
    /// Layers in the chain, the image included.
    public var chainLength: UInt64?
    /// What the file occupies on disk (`st_blocks * 512`, as `du` shows).
    public var diskUsage: UInt64?
    public var extentCount: UInt64?
    /// Scans of the image the index keeps.
    public var scansKept: Int?
    /// When the service last compared the image with the disk (HTTP only).
    public var lastChecked: String?

    enum CodingKeys: String, CodingKey {
        case id, path, format, state, error
        case virtualSize = "virtual_size"
        case staleReason = "stale_reason"
        case scanId = "scan_id"
        case scannedAt = "scanned_at"
        case failedAt = "failed_at"
        case allocatedBytes = "allocated_bytes"
        case zeroBytes = "zero_bytes"
        case chainAllocatedBytes = "chain_allocated_bytes"
        case chainLength = "chain_length"
        case diskUsage = "disk_usage"
        case extentCount = "extent_count"
        case scansKept = "scans_kept"
        case lastChecked = "last_checked"
    }

    /// The summary of a scanned image: its report figures.
    public init(_ report: ImageReport, scansKept: Int? = nil) {
        id = report.id
        path = report.path
        format = report.format
        virtualSize = report.virtualSize
        state = report.state
        error = report.error
        staleReason = report.staleReason
        scanId = report.scanId
        scannedAt = report.scannedAt
        allocatedBytes = report.allocatedBytes
        zeroBytes = report.zeroBytes
        chainAllocatedBytes = report.chainAllocatedBytes
        chainLength = report.chainLength
        diskUsage = report.diskUsage
        extentCount = report.extentCount
        self.scansKept = scansKept
    }

    /// An image with no scan to show, in the given state.
    public init(path: String, state: ImageState) {
        self.path = path
        self.state = state.word
        error = state.error
        staleReason = state.staleReason
    }

    /// An image whose scans all failed: never indexed, or forgotten since.
    public init(failure: ScanFailure) {
        path = failure.path
        let state = ImageState.of(path: failure.path, indexed: nil, failure: failure)
        self.state = state.word
        error = state.error
        failedAt = ImageReport.timestamp(failure.failedAtNanoseconds)
    }

    /// The summary of one image's latest scan, figures and state as `report` computes them.
    public init(_ indexed: IndexedScan, failure: ScanFailure? = nil, knownMissing: Bool = false, scansKept: Int? = nil) {
        let entry = ImageWithScan(image: indexed.image, scan: indexed.scan, layers: indexed.layers)
        self.init(ImageReport(entry, history: nil, failure: failure, knownMissing: knownMissing), scansKept: scansKept)
        if error != nil, let failure { failedAt = ImageReport.timestamp(failure.failedAtNanoseconds) }
    }
}
