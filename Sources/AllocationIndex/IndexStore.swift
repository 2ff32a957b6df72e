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
        let pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        writer = pool
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
