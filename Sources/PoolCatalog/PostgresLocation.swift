import Foundation

/// Where a PostgreSQL pool catalog lives: a `postgres://` URL as libpq reads it, without the password.
///
/// Accepted forms (libpq's connection URIs, "Connection URIs" in the PostgreSQL manual, §34.1.1):
/// - `postgres://USER@HOST:PORT/DB` (TCP; PORT defaults to 5432),
/// - `postgres://USER@/DB?host=/run/postgresql` (a Unix socket in that directory, `.s.PGSQL.PORT`),
/// - `postgresql://` as a synonym, and `?sslmode=disable|prefer|require` for TCP.
///
/// A password in the URL is refused: a command line is visible to every user in `ps`. The password comes
/// from `PGPASSWORD`, or from the `~/.pgpass`-style file `PGPASSFILE` names (``PostgresPasswordFile``).
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket's directory and port (the socket is `DIRECTORY/.s.PGSQL.PORT`).
        case unixSocket(directory: String, port: Int)
    }

    public enum TLSMode: String, Sendable, Equatable {
        case disable, prefer, require
    }

    public var endpoint: Endpoint
    public var user: String
    public var database: String
    public var tls: TLSMode

    /// The socket file of a Unix-socket endpoint.
    public var socketPath: String? {
        guard case let .unixSocket(directory, port) = endpoint else { return nil }
        return (directory.hasSuffix("/") ? directory : directory + "/") + ".s.PGSQL.\(port)"
    }

    /// The URL again, password-free: what messages and logs name.
    public var description: String {
        switch endpoint {
        case let .tcp(host, port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "postgres://\(user)@\(shown):\(port)/\(database)" + (tls == .prefer ? "" : "?sslmode=\(tls.rawValue)")
        case let .unixSocket(directory, port):
            return "postgres://\(user)@/\(database)?host=\(directory)" + (port == 5432 ? "" : "&port=\(port)")
        }
    }

    /// True for strings that name a PostgreSQL catalog rather than a SQLite file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses a `postgres://` URL.
    ///
    /// - Parameter defaultUser: the user when the URL names none (libpq takes the login name).
    /// - Throws: ``PoolCatalogError/badLocation(_:_:)`` naming what is wrong.
    public init(parsing text: String, defaultUser: String? = nil) throws {
        guard Self.isURL(text) else { throw PoolCatalogError.badLocation(text, "does not start with postgres://") }
        var rest = Substring(text.drop { $0 != ":" }.dropFirst(3))
        var query: [String: String] = [:]
        if let mark = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: mark)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let key = parts[0].removingPercentEncoding, let value = parts[1].removingPercentEncoding
                else { throw PoolCatalogError.badLocation(text, "the parameter '\(pair)' is not NAME=VALUE") }
                query[key] = value
            }
            rest = rest[..<mark]
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let databasePart = slash < rest.endIndex ? rest[rest.index(after: slash)...] : ""
        var userPart: Substring = ""
        var hostPart = authority
        if let at = authority.lastIndex(of: "@") {
            userPart = authority[..<at]
            hostPart = authority[authority.index(after: at)...]
        }
        if userPart.contains(":") {
            throw PoolCatalogError.badLocation(
                Self.redacted(text), "holds a password; give it in PGPASSWORD or a ~/.pgpass file, never on a command line (ps shows it)")
        }
        guard let user = (userPart.isEmpty ? query["user"] ?? defaultUser : String(userPart).removingPercentEncoding), !user.isEmpty
        else { throw PoolCatalogError.badLocation(text, "names no user (postgres://USER@HOST/DB)") }
        let database = String(databasePart).removingPercentEncoding ?? ""
        guard !database.isEmpty || query["dbname"] != nil else {
            throw PoolCatalogError.badLocation(text, "names no database (postgres://USER@HOST/DB)")
        }
        self.user = user
        self.database = database.isEmpty ? query["dbname"] ?? "" : database
        var port = 5432
        var host = String(hostPart)
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.port(String(after.dropFirst()), in: text) }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            port = try Self.port(String(host[host.index(after: colon)...]), in: text)
            host = String(host[..<colon])
        }
        if let value = query["port"] { port = try Self.port(value, in: text) }
        if let value = query["host"] { host = value }
        if host.isEmpty { host = "/run/postgresql" }
        if host.hasPrefix("/") {
            endpoint = .unixSocket(directory: host, port: port)
            tls = .disable
        } else {
            endpoint = .tcp(host: host, port: port)
            guard let mode = TLSMode(rawValue: query["sslmode"] ?? "prefer") else {
                throw PoolCatalogError.badLocation(text, "sslmode must be disable, prefer or require")
            }
            tls = mode
        }
        let known: Set<String> = ["host", "port", "user", "dbname", "sslmode", "application_name"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw PoolCatalogError.badLocation(text, "unknown parameter '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    private static func port(_ text: String, in url: String) throws -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw PoolCatalogError.badLocation(url, "port '\(text)' is not a number from 1 to 65535")
        }
        return port
    }

    /// The URL with any password replaced, for the message that refuses it.
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@") else { return text }
        let credentials = text[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}
