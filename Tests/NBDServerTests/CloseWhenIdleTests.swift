import NIOCore
import NIOEmbedded
import Testing

@testable import NBDServer

/// The NBD idle timeout's branch, in process: a read-idle event closes the session; other events pass on.
@Suite struct CloseWhenIdleTests {
    @Test("a read-idle event closes the connection; a write-idle event does not")
    func idleCloses() throws {
        let channel = EmbeddedChannel(handler: CloseWhenIdle(observer: nil))
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 10809)).wait()
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
        #expect(channel.isActive)
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!channel.isActive)
    }
}
