import AllocationIndex
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// A few PostgreSQL connections used from blocking callers: the store protocol is synchronous (its SQLite
/// implementation is), and its callers run on their own threads (the CLI's, the service's thread pool).
///
/// The connections live on one event loop thread of their own; a caller waits on a semaphore for a
/// connection's reply, never with `EventLoopFuture.wait()`, so calling from another event loop's thread is
/// allowed (it only blocks that thread for the round trip). Connections open on first use, up to
/// `maximumConnections`; a caller beyond that waits for one to be handed back. A connection that failed is
/// dropped and replaced on the next use.
final class BlockingPostgres: Sendable {
    let location: PostgresLocation
    private let configuration: PostgresConnection.Configuration
    private let group: MultiThreadedEventLoopGroup
    private let idle = NIOLockedValueBox<[PostgresConnection]>([])
    private let slots: DispatchSemaphore
    private let nextID = NIOLockedValueBox(0)
    let logger: Logger

    init(location: PostgresLocation, password: String?, maximumConnections: Int = 4, logger: Logger) throws {
        self.location = location
        self.logger = logger
        var configuration: PostgresConnection.Configuration
        switch location.endpoint {
        case .unixSocket:
            configuration = PostgresConnection.Configuration(
                unixSocketPath: location.socketPath ?? "", username: location.user, password: password, database: location.database)
        case let .tcp(host, port):
            let tls: PostgresConnection.Configuration.TLS
            switch location.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = PostgresConnection.Configuration(
                host: host, port: port, username: location.user, password: password, database: location.database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.additionalStartupParameters = [("application_name", "extentdb")]
        self.configuration = configuration
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        slots = DispatchSemaphore(value: max(1, maximumConnections))
    }

    /// Closes every connection (PostgresNIO requires it before a connection is released) and stops the
    /// event loop thread.
    deinit {
        let connections = idle.withLockedValue { $0 }
        for connection in connections {
            let closing: EventLoopFuture<Void> = connection.close()
            _ = try? Self.result(of: closing)
        }
        idle.withLockedValue { $0.removeAll() }
        if MultiThreadedEventLoopGroup.currentEventLoop == nil {
            try? group.syncShutdownGracefully()
        } else {
            group.shutdownGracefully { _ in }
        }
    }

    /// Runs `body` with a connection of its own, waiting for one when all are in use.
    func withConnection<T>(_ body: (Session) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        let connection = try idle.withLockedValue { $0.popLast() } ?? connect()
        let session = Session(connection: connection, owner: self)
        do {
            let result = try body(session)
            idle.withLockedValue { $0.append(connection) }
            return result
        } catch {
            if !connection.isClosed { idle.withLockedValue { $0.append(connection) } }
            throw error
        }
    }

    /// One transaction: BEGIN, `body`, COMMIT; ROLLBACK when `body` throws (the server rolls back by itself
    /// when the connection or this process dies, so nothing is half-written).
    func transaction<T>(readOnly: Bool = false, _ body: (Session) throws -> T) throws -> T {
        try withConnection { session in
            try session.execute(readOnly ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN")
            do {
                let result = try body(session)
                try session.execute("COMMIT")
                return result
            } catch {
                _ = try? session.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// A connection of the caller's own, outside the pool (a `LISTEN` that lasts as long as the service); the
    /// caller closes it.
    func openDedicated() throws -> PostgresConnection {
        try connect()
    }

    private func connect() throws -> PostgresConnection {
        let id = nextID.withLockedValue { value -> Int in
            value += 1
            return value
        }
        let future = PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger)
        do {
            return try Self.result(of: future)
        } catch {
            throw StoreError.server(location: location.description, reason: "cannot connect: \(Self.describe(error))")
        }
    }

    /// Waits for a future completed on the connections' own event loop.
    static func result<T>(of future: EventLoopFuture<T>) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<Result<T, any Error>?>(nil)
        future.whenComplete { result in
            outcome.withLockedValue { $0 = result }
            done.signal()
        }
        done.wait()
        guard let result = outcome.withLockedValue({ $0 }) else { preconditionFailure("a completed future has a result") }
        return try result.get()
    }

    /// A PostgreSQL error in words: the server's message (and detail), or the client's error code.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let info = error.serverInfo, let message = info[.message] {
                let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                let detail = info[.detail].map { ": \($0)" } ?? ""
                return message + detail + state
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// One connection, for the statements of one operation.
    struct Session {
        let connection: PostgresConnection
        let owner: BlockingPostgres

        /// Runs a statement and returns its rows.
        func rows(_ query: PostgresQuery) throws -> [PostgresRow] {
            try run(query).rows
        }

        /// Runs a statement; returns the number of rows it changed.
        @discardableResult
        func execute(_ query: PostgresQuery) throws -> Int {
            try run(query).metadata.rows ?? 0
        }

        private func run(_ query: PostgresQuery) throws -> PostgresQueryResult {
            do {
                return try BlockingPostgres.result(of: connection.query(query, logger: owner.logger))
            } catch {
                throw StoreError.server(location: owner.location.description, reason: BlockingPostgres.describe(error))
            }
        }
    }
}
