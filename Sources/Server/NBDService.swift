import NIOConcurrencyHelpers
import Foundation
import Logging
import NBDServer
import ServiceLifecycle

/// `serve --nbd-socket/--nbd-listen`: the NBD server over ``RootExportCatalog``, run beside the HTTP
/// server in the same service group. Graceful shutdown stops accepting, ends the connections, and removes
/// the socket.
struct NBDService: Service {
    let service: IndexService
    let address: NBDListenAddress
    /// Told when this listener is bound (the watcher waits for every listener).
    let gate: ListenGate

    func run() async throws {
        var configured = NBDImageServer(catalog: RootExportCatalog(service: service), logger: service.logger)
        if case .unix = address {
            // 0600 (root's clients only), or 0660 for a --socket-group whose members are the clients.
            configured.socketMode = service.configuration.socketGroup == nil ? 0o600 : 0o660
            configured.socketGroup = service.configuration.socketGroup
        }
        configured.observer = service.metrics.nbd
        let sessions = service.configuration.nbdMaximumSessions
        configured.limiter = ConnectionLimiter(total: sessions, perClient: sessions)
        configured.idleLimit = .nanoseconds(Int64(service.configuration.nbdIdleTimeout * 1e9))
        let server = configured
        let logger = service.logger
        let gate = self.gate
        let listening = NIOLockedValueBox(false)
        // Only a socket this server bound is removed: a refused path stays as it was.
        defer { if case .unix(let path) = address, listening.withLockedValue({ $0 }) { unlink(path) } }
        do {
            try await cancelWhenGracefulShutdown {
                try await server.run(on: address) { bound in
                    listening.withLockedValue { $0 = true }
                    logger.info("NBD listening on \(bound)")
                    gate.listenerBound()
                }
            }
        } catch is CancellationError {
            // Graceful shutdown.
        }
    }
}
