import AllocationIndex
import Foundation

/// Where an index lives, as `--db`, `$EXTENTDB_DB` or `serve`'s configuration names it: a SQLite file (the
/// embedded default) or a PostgreSQL catalog shared by a pool (`postgres://...`). The one place that opens
/// a store by its location, for every front end.
public enum IndexLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    /// - Throws: ``PoolCatalogError/badLocation(_:_:)`` for a `postgres://` URL that cannot be used.
    public init(_ text: String) throws {
        if PostgresLocation.isURL(text) {
            self = .postgres(try PostgresLocation(parsing: text, defaultUser: Self.loginName))
        } else {
            self = .sqlite(path: text)
        }
    }

    /// The user a URL without one connects as: libpq's default, the login name.
    static var loginName: String? {
        let environment = ProcessInfo.processInfo.environment
        if let user = environment["PGUSER"], !user.isEmpty { return user }
        if let user = environment["USER"], !user.isEmpty { return user }
        return getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) }
    }

    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let location): return location.description
        }
    }

    /// True when the index is known not to exist (a SQLite file that is missing); a catalog server is asked.
    public var isMissing: Bool {
        if case .sqlite(let path) = self { return !FileManager.default.fileExists(atPath: path) }
        return false
    }

    /// Opens the store, applying pending migrations.
    ///
    /// - Parameters:
    ///   - createsPrivately: a new SQLite file and its directory are made 0600/0700 (the default location).
    ///   - maximumConnections: connections a PostgreSQL store opens at most (a service's concurrent work).
    ///   - warn: told about anything ignored on the way (a password file others may read).
    public func open(createsPrivately: Bool = false, maximumConnections: Int = 4, warn: (String) -> Void = { _ in }) throws
        -> any IndexStoring
    {
        switch self {
        case .sqlite(let path):
            return try IndexStore(path: path, createsPrivately: createsPrivately)
        case .postgres(let location):
            return try PostgresStore(
                location: location, password: PostgresPassword.lookup(for: location, warn: warn), maximumConnections: maximumConnections)
        }
    }
}
