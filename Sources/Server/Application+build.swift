import AllocationIndex
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NBDServer
import Logging
import NIOCore
import ServiceLifecycle

/// Builds the service: routes, middleware, the background services (watcher, scan queue), bound to
/// `configuration.host:port`. Tests call it directly (Hummingbird's template keeps it in the library).
///
/// - Throws: when the configuration is refused or the index cannot be opened.
public func buildApplication(_ configuration: ServerConfiguration, logger: Logger = Logger(label: "extentdb.serve")) throws
    -> some ApplicationProtocol
{
    try buildApplicationAndGate(configuration, logger: logger).app
}

/// ``buildApplication(_:logger:)``, and the gate its listeners open (the HTTP one, then one per NBD address).
func buildApplicationAndGate(_ configuration: ServerConfiguration, logger: Logger) throws -> (
    app: some ApplicationProtocol, gate: ListenGate
) {
    var configuration = configuration
    try configuration.validate()
    // Connections get what the descriptor limit leaves after the reserve, HTTP first, then each NBD listener.
    let budget = DescriptorBudget.raise()
    let listeners = configuration.nbdAddresses.count
    if configuration.maximumConnections + listeners * configuration.nbdMaximumSessions > budget {
        let share = max(budget / (1 + listeners), 1)
        logger.warning("connection caps lowered to fit \(budget) descriptors: \(share) per listener")
        configuration.maximumConnections = min(configuration.maximumConnections, share)
        configuration.nbdMaximumSessions = min(configuration.nbdMaximumSessions, share)
    }
    if let tls = configuration.tls {
        logger.info("serving HTTPS with the certificate in \(tls.certificatePath)")
        if tls.keyIsWorldReadable {
            logger.warning("\(tls.keyPath) can be read by every user: make it mode 0600 (or 0640 for a group)")
        }
    }
    let gate = ListenGate(listeners: 1 + configuration.nbdAddresses.count)
    let service = try IndexService(configuration: configuration, logger: logger)
    let router = buildRouter(service: service)
    let limiter = ConnectionLimiter(total: configuration.maximumConnections, perClient: configuration.maximumConnectionsPerClient)
    let metrics = service.metrics
    let stall = TimeAmount.nanoseconds(Int64(configuration.writeStallTimeout * 1e9))
    let http = HTTPServerBuilder.http1(
        configuration: .init(
            additionalChannelHandlers: [
                ConnectionCap(limiter: limiter, metrics: metrics), WriteStallTimeout(limit: stall, metrics: metrics),
                CloseAfterPendingWrites(),
            ],
            // Hummingbird counts a connection active only once a whole request head has arrived, so
            // this also bounds how long a half-sent request holds its descriptor.
            idleTimeout: .nanoseconds(Int64(configuration.idleTimeout * 1e9))))
    var app = Application(
        router: router,
        server: try configuration.tlsConfiguration.map { try .tls(http, tlsConfiguration: $0) } ?? http,
        configuration: ApplicationConfiguration(
            address: configuration.unixSocketPath.map { .unixDomainSocket(path: $0) }
                ?? .hostname(configuration.host, port: configuration.port),
            serverName: "extentdb"),
        // The watcher waits for every listener: a busy port stops the service before anything is scanned.
        onServerRunning: { [unixSocketPath = configuration.unixSocketPath, socketGroup = configuration.socketGroup] _ in
            // An HTTP Unix socket gets its mode (and group) at once; until then it has the umask's, which
            // (022, 027, 077) lets nobody else connect: connecting needs write permission on the socket.
            if let path = unixSocketPath {
                _ = chown(path, uid_t.max, socketGroup ?? gid_t.max)
                _ = chmod(path, socketGroup == nil ? 0o600 : 0o660)
            }
            gate.listenerBound()
        },
        logger: logger)
    app.addServices(LifecycleService(service: service))
    if configuration.watchInterval > 0 {
        app.addServices(RootWatcher(service: service, gate: gate))
    }
    for address in configuration.nbdAddresses {
        app.addServices(NBDService(service: service, address: address, gate: gate))
    }
    return (app, gate)
}

/// The routes: `/healthz` and `/metrics` open, everything under `/v1` behind the bearer token.
func buildRouter(service: IndexService) -> Router<ServiceRequestContext> {
    let router = Router(context: ServiceRequestContext.self)
    router.add(middleware: JSONErrorMiddleware())
    router.add(middleware: MetricsMiddleware())
    router.get("healthz") { _, _ in Response.json(["status": "ok"]) }
    router.get("metrics") { _, _ in
        let text = service.metrics.render(indexSizeBytes: (service.store as? IndexStore)?.fileSize ?? 0)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
    }
    let v1 = router.group("v1")
    v1.add(middleware: AccessLogMiddleware(logger: service.logger))
    if let token = service.configuration.token { v1.add(middleware: BearerAuthMiddleware(token: token)) }
    ImageRoutes(service: service).register(on: v1)
    ExportRoute(service: service).register(on: v1)
    ChangesRoute(service: service).register(on: v1)
    DigestsRoute(service: service).register(on: v1)
    ScanRoutes(service: service).register(on: v1)
    ReportRoute(service: service).register(on: v1)
    router.add(middleware: MethodNotAllowedMiddleware(routes: RouteMethods(router.routes.map { ($0.path.description, $0.method) })))
    return router
}

/// Waits for the graceful shutdown, then lets running scans finish and stops the worker threads.
struct LifecycleService: Service {
    let service: IndexService

    func run() async throws {
        try? await gracefulShutdown()
        service.logger.info("shutting down: letting running scans finish")
        // Past --shutdown-timeout the service group cancels this task: the scans still running are named
        // and stopped (each rolls back) rather than vanishing with the process.
        let scans = service.scans
        await withTaskCancellationHandler {
            await service.shutdown()
        } onCancel: {
            scans.cutRunning()
        }
    }
}

/// A built service the CLI can run until SIGTERM/SIGINT.
public protocol ApplicationRunner: Sendable {
    func runService() async throws
}

/// Builds the service for `extentdb serve`.
public func makeServeRunner(_ configuration: ServerConfiguration, logger: Logger) throws -> any ApplicationRunner {
    let (app, gate) = try buildApplicationAndGate(configuration, logger: logger)
    return Runner(
        app: app, address: configuration.listenAddress, gate: gate, shutdownTimeout: configuration.shutdownTimeout, logger: logger)
}

private struct Runner<App: ApplicationProtocol>: ApplicationRunner {
    let app: App
    let address: String
    let gate: ListenGate
    /// How long a graceful shutdown may drain exports and scans before the service is cancelled.
    let shutdownTimeout: Double
    let logger: Logger

    /// Runs the service. A socket error before every listener is bound is the HTTP listener's failure to
    /// bind (each NBD listener throws its own ``ListenError``): it becomes one naming the address.
    func runService() async throws {
        // Hummingbird's runService(), with the drain bounded: past the timeout the group is cancelled, which
        // closes the connections still exporting (an unfinished export ends short, as a client sees it).
        var configuration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(shutdownTimeout * 1000))
        configuration.maximumCancellationDuration = .seconds(5)
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch let error as ListenError {
            throw error
        } catch {
            guard !gate.isOpen, let failure = ListenError(address: address, bindError: error) else { throw error }
            throw failure
        }
    }
}
