import AllocationIndex
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

extension PostgresStore {
    /// `LISTEN`s on a connection of its own for the changes every host's saves and forgets `NOTIFY`
    /// (``CatalogChange``); malformed payloads are ignored. The handler runs on the connection's event loop:
    /// it must not block. A connection that drops (a server restart, a terminated backend) is opened again,
    /// after 1 s and then up to every 30 s, until the subscription is stopped; `interrupted` hears of each
    /// drop and each return (changes made meanwhile were not heard: a listener should forget what it cached).
    public func watchChanges(
        _ handler: @escaping @Sendable (CatalogChange) -> Void, interrupted: @escaping @Sendable (String) -> Void
    ) throws -> (any ChangeSubscription)? {
        let subscription = PostgresChangeSubscription(store: self, handler: handler, interrupted: interrupted)
        try subscription.listen()
        return subscription
    }

    /// Opens a connection that `LISTEN`s on the change channel, handing every well-formed payload to `handler`.
    func openListener(_ handler: @escaping @Sendable (CatalogChange) -> Void) throws -> (PostgresConnection, PostgresListenContext) {
        let connection = try database.openDedicated()
        let context = connection.addListener(channel: Self.changeChannel) { _, notification in
            if let change = CatalogChange(payload: notification.payload) { handler(change) }
        }
        do {
            _ = try BlockingPostgres.result(of: connection.query("LISTEN \(unescaped: Self.changeChannel)", logger: database.logger))
        } catch {
            context.stop()
            _ = try? BlockingPostgres.result(of: connection.close() as EventLoopFuture<Void>)
            throw StoreError.server(
                location: location.description, reason: "cannot listen for changes: \(BlockingPostgres.describe(error))")
        }
        return (connection, context)
    }
}

/// A `LISTEN` connection kept open: reopened when it drops, closed by `stop()` (the server forgets the
/// listener with the session).
final class PostgresChangeSubscription: ChangeSubscription {
    private struct State {
        var connection: PostgresConnection?
        var context: PostgresListenContext?
        var stopped = false
    }

    let store: PostgresStore
    let handler: @Sendable (CatalogChange) -> Void
    let interrupted: @Sendable (String) -> Void
    private let state = NIOLockedValueBox(State())
    private let queue = DispatchQueue(label: "extentdb.change-feed")

    init(store: PostgresStore, handler: @escaping @Sendable (CatalogChange) -> Void, interrupted: @escaping @Sendable (String) -> Void) {
        self.store = store
        self.handler = handler
        self.interrupted = interrupted
    }

    /// Opens the listening connection and watches it close.
    func listen() throws {
        let (connection, context) = try store.openListener(handler)
        let keep = state.withLockedValue { state -> Bool in
            guard !state.stopped else { return false }
            state.connection = connection
            state.context = context
            return true
        }
        guard keep else {
            context.stop()
            _ = connection.close() as EventLoopFuture<Void>
            return
        }
        connection.closeFuture.whenComplete { [weak self] _ in self?.dropped(connection) }
    }

    private func dropped(_ connection: PostgresConnection) {
        let current = state.withLockedValue { state -> Bool in
            guard !state.stopped, state.connection === connection else { return false }
            state.connection = nil
            state.context = nil
            return true
        }
        guard current else { return }
        interrupted("the catalog's change feed dropped; reconnecting")
        reconnect(after: 1)
    }

    private func reconnect(after seconds: Double) {
        queue.asyncAfter(deadline: .now() + seconds) { [weak self] in
            guard let self, !self.state.withLockedValue({ $0.stopped }) else { return }
            do {
                try self.listen()
                self.interrupted("the catalog's change feed is back; changes made meanwhile were not heard")
            } catch {
                self.reconnect(after: min(seconds * 2, 30))
            }
        }
    }

    func stop() {
        let (connection, context) = state.withLockedValue { state -> (PostgresConnection?, PostgresListenContext?) in
            state.stopped = true
            defer {
                state.connection = nil
                state.context = nil
            }
            return (state.connection, state.context)
        }
        context?.stop()
        if let connection, !connection.isClosed { _ = try? BlockingPostgres.result(of: connection.close() as EventLoopFuture<Void>) }
    }

    deinit { stop() }
}
