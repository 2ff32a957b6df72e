import Foundation

/// The PostgreSQL server the pool catalog's tests use, and a fresh database on it per test.
///
/// `$EXTENTDB_TEST_POSTGRES` names a server (`.ci/run` starts a private cluster and sets it); without it
/// the first test that asks starts a private cluster with `scripts/pg-test-cluster.sh`, which stops when
/// this test process exits. Either way: a Unix socket, trust authentication, no TCP.
public enum TestPostgres {
    /// The server's URL (its `postgres` database), or why there is none.
    public static let server: Result<String, any Error> = Result {
        if let url = ProcessInfo.processInfo.environment["EXTENTDB_TEST_POSTGRES"], !url.isEmpty { return url }
        let directory = NSTemporaryDirectory() + "extentdb-test-pg-\(getpid())"
        let script = repositoryRoot + "/scripts/pg-test-cluster.sh"
        // system(3), not Process: this runs inside a lazy global's initialisation, where Foundation's child
        // monitoring was seen never to reap the script (the test run hung).
        let output = directory + ".out"
        let status = system("/bin/bash '\(script)' start '\(directory)' --watch \(getpid()) >'\(output)' 2>&1")
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        unlink(output)
        guard status == 0, let line = printed.split(separator: "\n").last(where: { $0.hasPrefix("export ") }),
            let quote = line.firstIndex(of: "'")
        else {
            throw SetupFailure("cannot start a private PostgreSQL cluster (\(script), status \(status)): \(printed)")
        }
        return String(line[line.index(after: quote)...].dropLast())
    }

    struct SetupFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The checkout this test binary was built from.
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// A new, empty database on the server; returns its URL.
    public static func freshDatabase() throws -> String {
        let url = try server.get()
        let name = "t_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        let result = try runProcess(
            URL(fileURLWithPath: "/usr/bin/psql"), [url, "-v", "ON_ERROR_STOP=1", "-qAtc", "CREATE DATABASE \(name)"])
        guard result.status == 0 else { throw SetupFailure("CREATE DATABASE \(name) failed: \(result.stderr)") }
        return Self.url(database: name, on: url)
    }

    /// `url` with its database replaced by `database`.
    public static func url(database: String, on url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let slash = url[at...].firstIndex(of: "/") else { return url }
        let end = url[slash...].firstIndex(of: "?") ?? url.endIndex
        return String(url[...slash]) + database + String(url[end...])
    }

    /// Runs SQL on the database at `url` with psql; returns its unaligned output.
    @discardableResult
    public static func psql(_ url: String, _ sql: String) throws -> String {
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/psql"), [url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        guard result.status == 0 else { throw SetupFailure("psql failed: \(result.stderr)") }
        return result.stdout
    }
}
