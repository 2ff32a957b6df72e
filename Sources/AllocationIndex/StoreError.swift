/// A problem with the index database itself (not with an image).
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case corruptChunk(String)
    case cannotCreateDirectory(String)
    case notFound(String)
    /// A scan handed to ``IndexStore/save(_:beforeCommit:)`` whose extents do not tile its disk.
    case invalidScan(String)
    /// The index could not be written because its file system is full (SQLite's SQLITE_FULL): the
    /// transaction was rolled back, so what the index held before is intact.
    case full(path: String, detail: String)

    public var description: String {
        switch self {
        case .corruptChunk(let detail): return "index is damaged: extent chunk \(detail)"
        case .cannotCreateDirectory(let path): return "cannot create index directory \(path)"
        case .notFound(let what): return "\(what) is not in the index"
        case .invalidScan(let detail): return "refusing to record a scan: \(detail)"
        case .full(let path, let detail):
            return "cannot write the index \(path): its file system is full; nothing of this scan was recorded and "
                + "the index is intact (\(detail))"
        }
    }
}
