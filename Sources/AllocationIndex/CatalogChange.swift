/// A change another process made to a shared index: a new scan of an image, or the image forgotten.
/// What a pool catalog tells every host's service (PostgreSQL `NOTIFY`), so their caches stay true.
public struct CatalogChange: Sendable, Equatable {
    public var imageID: Int64
    /// The new scan, or nil when the image was forgotten.
    public var scanID: Int64?
    /// The host that made the change (``HostName``).
    public var host: String
    public var path: String

    public init(imageID: Int64, scanID: Int64?, host: String, path: String) {
        self.imageID = imageID
        self.scanID = scanID
        self.host = host
        self.path = path
    }

    /// The `NOTIFY` payload: `IMAGE_ID TAB SCAN_ID (0: forgotten) TAB HOST TAB PATH`.
    public var payload: String { "\(imageID)\t\(scanID ?? 0)\t\(host)\t\(path)" }

    /// Parses a payload; nil when it is not one (a payload is never trusted to be well formed).
    public init?(payload: String) {
        let fields = payload.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, let imageID = Int64(fields[0]), let scanID = Int64(fields[1]), !fields[3].isEmpty else { return nil }
        self.init(imageID: imageID, scanID: scanID == 0 ? nil : scanID, host: String(fields[2]), path: String(fields[3]))
    }
}

/// A running subscription to an index's changes; `stop()` ends it.
public protocol ChangeSubscription: Sendable {
    func stop()
}
