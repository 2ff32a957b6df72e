import NBDServer
import NIOCore
import NIOEmbedded
import Testing

@testable import Server

/// The service's connection guards in process, on NIO's `EmbeddedChannel`: the branches the end-to-end
/// limit tests reach only through real sockets and timeouts.
@Suite struct ConnectionGuardTests {
    /// An embedded connection from `address`, with a fresh ``ConnectionCap`` in front.
    static func connection(from address: String, limiter: ConnectionLimiter) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: ConnectionCap(limiter: limiter, metrics: ServiceMetrics.shared))
        try channel.connect(to: try SocketAddress(ipAddress: address, port: 40000)).wait()
        return channel
    }

    @Test("past the per-client cap a connection is closed at once; another client is still admitted; a close frees a slot")
    func perClientCap() throws {
        let limiter = ConnectionLimiter(total: 3, perClient: 2)
        let first = try Self.connection(from: "127.0.0.2", limiter: limiter)
        let second = try Self.connection(from: "127.0.0.2", limiter: limiter)
        let third = try Self.connection(from: "127.0.0.2", limiter: limiter)
        #expect(first.isActive && second.isActive)
        #expect(!third.isActive, "the third connection of one client must be closed")
        let other = try Self.connection(from: "127.0.0.3", limiter: limiter)
        #expect(other.isActive)
        #expect(limiter.openCount == 3)
        let fourth = try Self.connection(from: "127.0.0.4", limiter: limiter)
        #expect(!fourth.isActive, "past the total cap")
        _ = try first.finish()
        #expect(limiter.openCount == 2)
        let again = try Self.connection(from: "127.0.0.2", limiter: limiter)
        #expect(again.isActive)
        for channel in [second, other, again] { _ = try channel.finish() }
        #expect(limiter.openCount == 0)
    }
}
