import Foundation
import Testing

@testable import PoolCatalog

/// `postgres://` locations and the password file, as libpq reads them.
@Suite struct PostgresLocationTests {
    @Test("TCP and Unix-socket URLs, ports, sslmode, and the URL printed back without a password")
    func parses() throws {
        let tcp = try PostgresLocation(parsing: "postgres://extentdb@db.pool.example:6543/catalog?sslmode=require")
        #expect(tcp.endpoint == .tcp(host: "db.pool.example", port: 6543))
        #expect(tcp.user == "extentdb" && tcp.database == "catalog" && tcp.tls == .require)
        #expect(tcp.description == "postgres://extentdb@db.pool.example:6543/catalog?sslmode=require")
        let socket = try PostgresLocation(parsing: "postgresql://extentdb@/catalog?host=/run/postgresql")
        #expect(socket.endpoint == .unixSocket(directory: "/run/postgresql", port: 5432))
        #expect(socket.socketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(socket.tls == .disable)
        let v6 = try PostgresLocation(parsing: "postgres://u@[::1]:5433/d")
        #expect(v6.endpoint == .tcp(host: "::1", port: 5433))
        #expect(v6.description == "postgres://u@[::1]:5433/d")
        let defaulted = try PostgresLocation(parsing: "postgres:///d", defaultUser: "root")
        #expect(defaulted.user == "root" && defaulted.endpoint == .unixSocket(directory: "/run/postgresql", port: 5432))
        #expect(IndexLocation.sqlite(path: "/var/lib/extentdb/index.sqlite") == (try IndexLocation("/var/lib/extentdb/index.sqlite")))
    }

    @Test("refuses a password in the URL (without echoing it), and names what else is wrong")
    func refuses() {
        for (url, words) in [
            ("postgres://u:hunter2@h/d", "holds a password"), ("postgres://u@h:70000/d", "port '70000'"),
            ("postgres://u@h", "names no database"),
            ("postgres://u@h/d?sslmode=maybe", "sslmode"), ("postgres://u@h/d?foo=1", "unknown parameter 'foo'"),
            ("mysql://u@h/d", "postgres://"),
        ] {
            do {
                _ = try PostgresLocation(parsing: url)
                Issue.record("\(url) was accepted")
            } catch {
                #expect("\(error)".contains(words), "\(url): \(error)")
                #expect(!"\(error)".contains("hunter2"))
            }
        }
    }

    @Test("password file: first matching line, wildcards, escapes, localhost for sockets; a readable file is not used")
    func passwordFile() throws {
        let socket = try PostgresLocation(parsing: "postgres://extentdb@/catalog?host=/run/postgresql")
        let tcp = try PostgresLocation(parsing: "postgres://extentdb@db:5432/catalog")
        let text = """
            # comment
            other:5432:catalog:extentdb:wrong
            db:5432:catalog:extentdb:pa\\:ss\\\\word
            localhost:5432:*:extentdb:socket-secret
            *:*:*:*:fallback
            """
        #expect(PostgresPassword.match(text, location: tcp) == "pa:ss\\word")
        #expect(PostgresPassword.match(text, location: socket) == "socket-secret")
        #expect(PostgresPassword.match("*:*:*:*:fallback", location: tcp) == "fallback")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("pgpass").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        var warnings: [String] = []
        #expect(PostgresPassword.lookup(for: tcp, environment: ["PGPASSFILE": file], warn: { warnings.append($0) }) == nil)
        #expect(warnings.first?.contains("readable by group or others") == true)
        chmod(file, 0o600)
        #expect(PostgresPassword.lookup(for: tcp, environment: ["PGPASSFILE": file]) == "pa:ss\\word")
        #expect(PostgresPassword.lookup(for: tcp, environment: ["PGPASSFILE": file, "PGPASSWORD": "env"]) == "env")
    }

    @Test("migration files split into statements at semicolons outside quotes, comments and dollar quotes")
    func splitsStatements() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
            SELECT "odd;name" FROM a
            """
        #expect(
            SQLStatements.split(sql) == [
                "CREATE TABLE a (x text DEFAULT 'a;b')", "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "SELECT \"odd;name\" FROM a",
            ])
    }
}
