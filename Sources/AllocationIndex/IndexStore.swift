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
    public init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StoreError.cannotCreateDirectory(directory)
            }
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
