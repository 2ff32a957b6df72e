/// A problem with the index database itself (not with an image).
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case corruptChunk(String)
    case cannotCreateDirectory(String)
    case notFound(String)
    /// A scan handed to ``IndexStore/save(_:beforeCommit:)`` whose extents do not tile its disk.
    case invalidScan(String)
    /// Another program's SQLite database: not touched.
    case foreignDatabase(path: String, applicationID: Int32, tables: [String])
    /// Cannot be opened right now (locked, busy, not permitted).
    case unreadable(path: String, reason: String)
    /// Not an SQLite database, or a damaged one (SQLite's SQLITE_NOTADB, SQLITE_CORRUPT).
    case damaged(path: String, reason: String)
    /// Read-only, and written by an older extentdb (its schema needs migrating).
    case needsUpgrade(String)
    /// A change was asked of an index this process can only read.
    case readOnly(String)
    /// The index could not be written because its file system is full (SQLite's SQLITE_FULL): the
    /// transaction was rolled back, so what the index held before is intact.
    case full(path: String, detail: String)
    /// A scan being read in batches was removed (forgotten, collected) or replaced between two batches:
    /// what was read so far cannot be completed.
    case scanGone(String)
    /// The index path is a symbolic link to a file that does not exist: it is not created through it.
    case danglingLink(String)
    /// The catalog server (PostgreSQL) could not be reached, or refused or failed a statement; the
    /// transaction was rolled back. The location is password-free.
    case server(location: String, reason: String)

    /// What to do about a damaged index: nothing in it is lost that a scan cannot find again.
    public static let rebuildHint =
        "the index is a cache that can be rebuilt by rescanning: move the file aside and scan the images again"

    public var description: String {
        switch self {
        case .corruptChunk(let detail): return "index is damaged: extent chunk \(detail); \(Self.rebuildHint)"
        case .cannotCreateDirectory(let path): return "cannot create index directory \(path)"
        case .notFound(let what): return "\(what) is not in the index"
        case .danglingLink(let path):
            return
                "\(path) is a symbolic link to a file that does not exist; refusing to create an index through it (remove the link, or name the index file itself)"
        case .invalidScan(let detail): return "refusing to record a scan: \(detail)"
        case let .foreignDatabase(path, id, tables):
            return "\(path) is not an extentdb index (application_id 0x\(String(UInt32(bitPattern: id), radix: 16)), tables: "
                + "\(tables.prefix(8).joined(separator: ", "))); refusing to change it"
        case let .unreadable(path, reason): return "\(path) cannot be read as an index: \(reason)"
        case let .damaged(path, reason): return "\(path) cannot be read as an index: \(reason); \(Self.rebuildHint)"
        case .needsUpgrade(let path):
            return "\(path) was written by an older extentdb and is read-only here; open it once as a user who can write it"
        case .readOnly(let path): return "\(path) is read-only for this user; the index cannot be changed"
        case .full(let path, let detail):
            return "cannot write the index \(path): its file system is full; nothing of this scan was recorded and "
                + "the index is intact (\(detail))"
        case let .server(location, reason): return "catalog \(location): \(reason)"
        case .scanGone(let detail):
            return "the scan being read left the index meanwhile (forgotten or collected): \(detail)"
        }
    }
}
