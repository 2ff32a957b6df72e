import Foundation
internal import GRDB
import ImageFormats

/// The SQLite allocation index: images, their scans, each scan's chain identity and packed extents.
///
/// One database file per store, opened in WAL mode; every scan is saved in a single write transaction,
/// so a failed or killed scan leaves the previous one intact and nothing half-written.
public final class IndexStore: Sendable {
    let writer: any DatabaseWriter
    /// The database file (nil in memory).
    public let path: String?
    /// The file could not be written by this process: nothing is migrated, scanned or recorded.
    public let isReadOnly: Bool
    /// Extents packed per `extent_chunks` row.
    public static let extentsPerChunk = 4096

    /// The database's `application_id` (SQLite header offset 68): "EXDB". A file with another id, or with
    /// none but tables of another program, is not opened for writing.
    public static let applicationID: Int32 = 0x4558_4442

    /// Opens (creating if needed) the index at `path` and applies pending migrations.
    ///
    /// A file this process may not write is opened read-only (nothing is migrated or rescanned); a file that
    /// is not SQLite, or is another program's database, is refused before anything is written to it.
    ///
    /// - Parameter createsPrivately: create a missing directory 0700 and a missing database file 0600
    ///   (the default location: an index names every image on the host and their layout). Otherwise new
    ///   files follow the umask. SQLite gives its `-wal` and `-shm` files the database file's mode.
    public init(path: String, createsPrivately: Bool = false) throws {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        let exists = FileManager.default.fileExists(atPath: path)
        // A dangling link where the index should be would have SQLite (often root) create whatever file the
        // link names, anywhere: an index is only created under its own name.
        var link = stat()
        if !exists, lstat(path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK {
            throw StoreError.danglingLink(path)
        }
        if exists {
            try Self.checkIsOurs(path)
        }
        let writable = !exists || (access(path, W_OK) == 0 && access(directory.isEmpty ? "." : directory, W_OK) == 0)
        if !writable {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.busyMode = .timeout(30)
            let queue = try DatabaseQueue(path: Self.readOnlyLocation(path), configuration: configuration)
            let applied = try queue.read { db in try Self.migrator.appliedIdentifiers(db) }
            guard Set(Self.migrationNames).isSubset(of: applied) else {
                throw StoreError.needsUpgrade(path)
            }
            writer = queue
            isReadOnly = true
            return
        }
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
        let pool = try Self.openMigrated(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in
            if try Int32.fetchOne(db, sql: "PRAGMA application_id") != Self.applicationID {
                try db.execute(sql: "PRAGMA application_id = \(Self.applicationID)")
            }
        }
        writer = pool
        isReadOnly = false
    }

    /// The tables an extentdb index may hold: every table a migration creates, GRDB's migration table and
    /// SQLite's own. Taken from the migrations themselves, so that an index another process is creating
    /// right now (its tables made, its id not yet set) is never mistaken for a foreign database, whatever
    /// migrations come later (a fixed list missed `scan_bitmaps`: eight processes creating one index at once
    /// could refuse it).
    static let ownTables: Set<String> = {
        var tables: Set<String> = ["grdb_migrations", "sqlite_sequence", "sqlite_stat1"]
        for migration in EmbeddedMigrations.all {
            let words = migration.sql.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "(" || $0 == "\t" })
            for index in words.indices.dropLast(2)
            where words[index].uppercased() == "CREATE" && words[words.index(after: index)].uppercased() == "TABLE" {
                var name = words[words.index(index, offsetBy: 2)]
                if name.uppercased() == "IF", words.count > index + 5 { name = words[words.index(index, offsetBy: 5)] }
                tables.insert(String(name).trimmingCharacters(in: CharacterSet(charactersIn: "\"`[]")))
            }
        }
        return tables
    }()

    /// Refuses a file that is not SQLite or belongs to another program, reading it read-only.
    static func checkIsOurs(_ path: String) throws {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(30)
        var attempt = 0
        while true {
            do {
                try checkIsOursOnce(path, configuration: configuration)
                return
            } catch StoreError.unreadable(_, let reason)
                where attempt < openAttempts && (reason.contains("locked") || reason.contains("busy"))
            {
                // Another process is creating or migrating the file right now: look again shortly.
                attempt += 1
                usleep(UInt32(min(attempt, 20) * 20_000))
            }
        }
    }

    static func checkIsOursOnce(_ path: String, configuration: Configuration) throws {
        do {
            let queue = try DatabaseQueue(path: readOnlyLocation(path), configuration: configuration)
            let (id, tables) = try queue.read { db in
                (
                    try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                    Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
                )
            }
            try queue.close()
            if id == applicationID || tables.isEmpty { return }
            // An index made before the id was set, or one another process is creating right now: no id yet,
            // and no table but ours.
            if id == 0, tables.isSubset(of: Self.ownTables) { return }
            throw StoreError.foreignDatabase(path: path, applicationID: id, tables: tables.sorted())
        } catch let error as DatabaseError {
            let reason = error.message ?? "\(error.resultCode)"
            if Self.isDamage(error) { throw StoreError.damaged(path: path, reason: reason) }
            throw StoreError.unreadable(path: path, reason: reason)
        }
    }

    /// Where a read-only connection opens `path`. A WAL database needs its `-shm` and `-wal` files, which a
    /// reader without write access cannot create; when no writer has them open (they are missing), the
    /// file is opened as immutable (SQLite's `immutable=1` URI parameter), which needs neither.
    static func readOnlyLocation(_ path: String) -> String {
        let manager = FileManager.default
        if manager.fileExists(atPath: path + "-wal") && manager.fileExists(atPath: path + "-shm") { return path }
        if manager.isWritableFile(
            atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent)
        {
            return path
        }
        let absolute = path.hasPrefix("/") ? path : manager.currentDirectoryPath + "/" + path
        let encoded = absolute.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? absolute
        return "file:\(encoded)?immutable=1"
    }

    /// A database error in words, without the SQL statement (which `DatabaseError.description` carries).
    public static func describe(_ error: any Error) -> String? {
        guard let error = error as? DatabaseError else { return nil }
        let message = "index error: \(error.message ?? "\(error.resultCode)")"
        return isDamage(error) ? message + "; " + StoreError.rebuildHint : message
    }

    /// True when SQLite found the file is no database, or a damaged one.
    static func isDamage(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB
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
        path = nil
        isReadOnly = false
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

    /// The migrations applied to the index at `path`, read without changing it.
    public static func appliedMigrations(path: String) throws -> [String] {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(30)
        let queue = try DatabaseQueue(path: readOnlyLocation(path), configuration: configuration)
        return try queue.read { db in try migrator.appliedMigrations(db) }
    }

    /// The schema as SQLite stores it (tables and indexes), for snapshot tests.
    public func schemaSQL() throws -> [String] {
        try writer.read { db in
            try String.fetchAll(
                db, sql: "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'grdb_%' ORDER BY name")
        }
    }
}
