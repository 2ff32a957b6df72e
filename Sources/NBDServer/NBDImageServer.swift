import Dispatch
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

/// A read-only NBD server for one indexed image, on SwiftNIO: each accepted connection is served by its
/// own task (``NBDConnection``); connections are independent, so one client's failure or hostility never
/// stops the others.
public struct NBDImageServer: Sendable {
    public let export: ImageExport
    public let logger: Logger

    public init(export: ImageExport, logger: Logger) {
        self.export = export
        self.logger = logger
    }

    /// Binds `address` and serves clients until the task is cancelled or accepting fails.
    /// - Parameter onListening: Called once bound, with the address actually bound (the port chosen for 0).
    public func run(on address: NBDListenAddress, onListening: @Sendable (NBDListenAddress) -> Void = { _ in }) async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        let initializer: @Sendable (Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        let bound: NBDListenAddress
        switch address {
        case .unix(let path):
            server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
            bound = address
        case let .tcp(host, port):
            server = try await bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port, childChannelInitializer: initializer)
            bound = .tcp(host: host, port: server.channel.localAddress?.port ?? port)
        }
        onListening(bound)
        let export = self.export
        let logger = self.logger
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask {
                        await NBDConnection(export: export, logger: logger).run(connection)
                    }
                }
            }
        }
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
