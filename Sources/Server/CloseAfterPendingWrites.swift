import NIOCore

/// Holds a connection's `close` until every write before it has reached the socket.
///
/// Hummingbird closes a connection right after writing the end of a response when the connection must
/// not be reused: during graceful shutdown (quiescing) or for `Connection: close`. NIO fails writes still
/// queued in the channel when it closes, so a streamed export to a client reading slower than we produce
/// lost up to its last megabyte or two: the client saw a body shorter than its `Content-Length`. This
/// handler sits between the HTTP codec and Hummingbird's connection state handler, counts writes in
/// flight, and closes only when none is left (a write to a vanished client fails, which also counts as
/// done, so a close is never held forever by a dead peer).
final class CloseAfterPendingWrites: ChannelOutboundHandler, RemovableChannelHandler {
    /// Passed through untouched (HTTP response parts), never unwrapped.
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private var pending = 0
    private var heldClose: (mode: CloseMode, promise: EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        pending += 1
        let written = promise ?? context.eventLoop.makePromise()
        // Write promises complete on the channel's event loop, where this handler lives.
        written.futureResult.assumeIsolated().whenComplete { [self] _ in
            pending -= 1
            if pending == 0, let held = heldClose {
                heldClose = nil
                context.close(mode: held.mode, promise: held.promise)
            }
        }
        context.write(data, promise: written)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard pending > 0, mode != .input, heldClose == nil else {
            context.close(mode: mode, promise: promise)
            return
        }
        heldClose = (mode, promise)
        context.flush()
    }
}
