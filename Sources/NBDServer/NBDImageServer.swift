import Dispatch
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Where the server listens.
public enum NBDListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// A Unix domain socket at this path (an existing socket there is replaced; any other file is refused).
    case unix(path: String)
    /// A TCP address (`127.0.0.1`, `::1`, `0.0.0.0`...); port 0 picks a free port.
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let path): return "unix:\(path)"
        case let .tcp(host, port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// A Unix socket path the server cannot take.
public struct NBDSocketError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// A read-only NBD server for indexed images, on SwiftNIO: each accepted connection is served by its own
/// task (``NBDConnection``); connections are independent, so one client's failure or hostility never stops
/// the others.
public struct NBDImageServer: Sendable {
    public let catalog: any ImageExportCatalog
    public let logger: Logger
    /// Permissions of a Unix socket: nil leaves them to the umask (as qemu-nbd); otherwise the socket is
    /// bound under a temporary name, given these, and only then renamed into place, so no client connects
    /// before they apply.
    public var socketMode: mode_t?
    /// The group a Unix socket is given (with ``socketMode``, before it is renamed into place): members of
    /// it may connect when the mode is 0660, as libvirt and qemu-nbd deployments do with file permissions.
    public var socketGroup: gid_t?
    /// Told of connections and requests (the service's metrics).
    public var observer: (any NBDServerObserver)?
    /// Sessions open at once on this listener, in all and per client address (qemu-nbd's `--shared`);
    /// nil: no limit. A client past it is told why (`NBD_REP_ERR_POLICY`) and disconnected.
    public var limiter: ConnectionLimiter?
    /// A connection from which nothing arrives for this long is closed (nil: never).
    public var idleLimit: TimeAmount?

    public init(catalog: any ImageExportCatalog, logger: Logger) {
        self.catalog = catalog
        self.logger = logger
    }

    /// A server for one image.
    public init(export: ImageExport, logger: Logger) {
        self.init(catalog: SingleImageCatalog(export), logger: logger)
    }

    /// Binds `address` and serves clients until the task is cancelled or accepting fails.
    /// - Parameter onListening: Called once bound, with the address actually bound (the port chosen for 0).
    public func run(on address: NBDListenAddress, onListening: @Sendable (NBDListenAddress) -> Void = { _ in }) async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        let idleLimit = self.idleLimit
        let idleObserver = self.observer
        let initializer: @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                if let idleLimit {
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: idleLimit), CloseWhenIdle(observer: idleObserver),
                    ])
                }
                // After the idle handlers, so that requests answered here still count as activity.
                try channel.pipeline.syncOperations.addHandler(BlockStatusFastPath())
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        let bound: NBDListenAddress
        do {
            (server, bound) = try await bind(address, bootstrap: bootstrap, initializer: initializer)
        } catch {
            throw ListenError(address: address.description, bindError: error) ?? error
        }
        // Starts the blocking-I/O pool's threads now, not when the first client negotiates.
        _ = try? await NIOThreadPool.singleton.runIfActive {}
        onListening(bound)
        let catalog = self.catalog
        let logger = self.logger
        let observer = self.observer
        let limiter = self.limiter
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    // An IP address, or on a Unix socket the connecting user (SO_PEERCRED): each user its own share.
                    let client = await ClientIdentity.key(of: connection.channel)
                    let refusal = limiter?.admit(client: client)
                    if let refusal {
                        observer?.limitHit(refusal.isPerClient ? "sessions_per_client" : "sessions")
                        logger.warning("NBD connection refused: \(refusal)")
                    }
                    group.addTask(executorPreference: EventLoopTaskExecutor(connection.channel.eventLoop)) {
                        var served = NBDConnection(catalog: catalog, logger: logger, observer: observer)
                        served.client = client
                        served.refusal = refusal.map { "\($0)" }
                        await served.run(connection)
                        if refusal == nil { limiter?.release(client: client) }
                    }
                }
            }
        }
    }

    /// Binds the listener: a Unix socket (made with `socketMode` under a temporary name, then renamed into
    /// place) or a TCP address.
    private func bind(
        _ address: NBDListenAddress, bootstrap: ServerBootstrap,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>>
    ) async throws -> (NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, NBDListenAddress) {
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        let bound: NBDListenAddress
        switch address {
        case .unix(let path):
            if let socketMode {
                try Self.refuseNonSocket(at: path)
                let temporary = Self.temporaryName(for: path)
                server = try await bootstrap.bind(unixDomainSocketPath: temporary, childChannelInitializer: initializer)
                guard chown(temporary, uid_t.max, socketGroup ?? gid_t.max) == 0, chmod(temporary, socketMode) == 0,
                    rename(temporary, path) == 0
                else {
                    let failure = NBDSocketError(path: path, reason: String(cString: strerror(errno)))
                    unlink(temporary)
                    try? await server.channel.close()
                    throw failure
                }
            } else {
                server = try await bootstrap.bind(
                    unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            }
            bound = address
        case let .tcp(host, port):
            server = try await bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port, childChannelInitializer: initializer)
            bound = .tcp(host: host, port: server.channel.localAddress?.port ?? port)
        }
        return (server, bound)
    }

    /// Refuses to replace anything but a socket (an earlier server's) at `path`.
    static func refuseNonSocket(at path: String) throws {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw NBDSocketError(path: path, reason: "it exists and is not a socket; refusing to replace it")
        }
    }

    /// A name beside `path` for binding before the permissions are set.
    static func temporaryName(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        return directory + ".nbd-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    /// ``run(on:onListening:)`` for callers without an async context (the CLI): blocks the calling thread
    /// until the server stops, and rethrows what stopped it.
    public func serve(on address: NBDListenAddress, onListening: @escaping @Sendable (NBDListenAddress) -> Void = { _ in }) throws {
        let failure = NIOLockedValueBox<(any Error)?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Task {
            do {
                try await run(on: address, onListening: onListening)
            } catch {
                failure.withLockedValue { $0 = error }
            }
            finished.signal()
        }
        finished.wait()
        if let error = failure.withLockedValue({ $0 }) { throw error }
    }
}

/// Closes a connection from which nothing was read for the idle limit (``NBDImageServer/idleLimit``).
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let observer: (any NBDServerObserver)?

    init(observer: (any NBDServerObserver)?) {
        self.observer = observer
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            observer?.limitHit("idle")
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
