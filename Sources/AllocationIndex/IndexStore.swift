import Foundation
import GRDB
import ImageFormats

/// The SQLite allocation index: images, their scans, each scan's chain identity and packed extents.
///
/// One database file per store, opened in WAL mode; every scan is saved in a single write transaction,
/// so a failed or killed scan leaves the previous one intact and nothing half-written.
public final class IndexStore: Sendable {
    let writer: any DatabaseWriter
    /// Extents packed per `extent_chunks` row.
    public static let extentsPerChunk = 4096

    /// Opens (creating if needed) the index at `path` and applies pending migrations.
    ///
    /// - Parameter createsPrivately: create a missing directory 0700 and a missing database file 0600
    ///   (the default location: an index names every image on the host and their layout). Otherwise new
    ///   files follow the umask. SQLite gives its `-wal` and `-shm` files the database file's mode.
    public init(path: String, createsPrivately: Bool = false) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            do {
                let attributes: [FileAttributeKey: Any]? = createsPrivately ? [.posixPermissions: 0o700] : nil
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: attributes)
            } catch {
                throw StoreError.cannotCreateDirectory(directory)
            }
        }
        if createsPrivately {
            // Create the file first with mode 0600 (O_EXCL: an existing index keeps its mode).
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd >= 0 { close(fd) }
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        writer = try Self.openMigrated(path: path, configuration: configuration)
    }

    /// Attempts at opening and migrating an index that other processes are creating or migrating too.
    static let openAttempts = 50

    /// Opens the pool and applies pending migrations, retrying when another process is doing the same.
    ///
    /// Two races are not covered by SQLite's busy timeout: switching a new file to WAL
    /// (`PRAGMA journal_mode = WAL` fails at once with SQLITE_BUSY while another connection holds a lock),
    /// and GRDB's migrator, which reads the applied migrations before each migration's own transaction, so
    /// two processes opening a new index may both run the same migration and the second fails ("table ...
    /// already exists", "duplicate column"; its transaction rolls back). The first resolves once the other
    /// connection lets go; the second when the other process has applied the migration. So: retry a busy or
    /// locked database, and retry a failed migration when the applied migrations have grown meanwhile,
    /// with a growing pause (about 40 s in all, a little more than the busy timeout); else report the error.
    static func openMigrated(path: String, configuration: Configuration) throws -> DatabasePool {
        var attempt = 0
        while true {
            var appliedBefore: Set<String> = []
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                appliedBefore = try pool.read { db in try migrator.appliedIdentifiers(db) }
                try migrator.migrate(pool)
                return pool
            } catch let error as DatabaseError where attempt + 1 < openAttempts {
                switch error.resultCode {
                case .SQLITE_BUSY, .SQLITE_LOCKED:
                    break
                default:
                    // Another process's migration got there first only if the applied set has grown; if even
                    // reading it fails, the migration's own error is the one to report.
                    let appliedNow = try? DatabasePool(path: path, configuration: configuration).read { db in
                        try migrator.appliedIdentifiers(db)
                    }
                    guard let appliedNow, appliedNow.count > appliedBefore.count else { throw error }
                }
                attempt += 1
                usleep(UInt32(min(attempt, 20) * 50_000))
            }
        }
    }

    /// An in-memory index, for tests.
    public init(inMemory: Void = ()) throws {
        let queue = try DatabaseQueue()
        try Self.migrator.migrate(queue)
        writer = queue
    }

    /// Registers each embedded `migrations/NNNN_name.sql`, in order, under its file name.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in EmbeddedMigrations.all {
            let sql = migration.sql
            migrator.registerMigration(migration.name) { db in try db.execute(sql: sql) }
        }
        return migrator
    }

    /// Names of the migrations this binary carries, in order.
    public static var migrationNames: [String] { EmbeddedMigrations.all.map(\.name) }

    /// Names of the migrations applied to this database.
    public func appliedMigrations() throws -> [String] {
        try writer.read { db in try Self.migrator.appliedMigrations(db) }
    }

    /// The schema as SQLite stores it (tables and indexes), for snapshot tests.
    public func schemaSQL() throws -> [String] {
        try writer.read { db in
            try String.fetchAll(
                db, sql: "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'grdb_%' ORDER BY name")
        }
    }
}
