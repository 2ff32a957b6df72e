import AllocationIndex
import Logging
import NIOCore
import PostgresNIO

extension PostgresStore {
    /// `LISTEN`s on a connection of its own for the changes every host's saves and forgets `NOTIFY`
    /// (``CatalogChange``); malformed payloads are ignored. The handler runs on the connection's event loop:
    /// it must not block.
    public func watchChanges(_ handler: @escaping @Sendable (CatalogChange) -> Void) throws -> (any ChangeSubscription)? {
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
        return PostgresChangeSubscription(connection: connection, context: context)
    }
}

/// A `LISTEN` connection; stopping closes it (the server forgets the listener with the session).
final class PostgresChangeSubscription: ChangeSubscription {
    let connection: PostgresConnection
    let context: PostgresListenContext

    init(connection: PostgresConnection, context: PostgresListenContext) {
        self.connection = connection
        self.context = context
    }

    func stop() {
        context.stop()
        if !connection.isClosed { _ = try? BlockingPostgres.result(of: connection.close() as EventLoopFuture<Void>) }
    }

    deinit { stop() }
}
