import NBDServer
import NIOCore

/// Admits an HTTP connection only under the service's caps (``ConnectionLimiter``: in all and per client
/// address); a connection past them is closed at once, before a byte is read.
final class ConnectionCap: ChannelInboundHandler, RemovableChannelHandler {
    /// Passed through untouched (HTTP request parts), never unwrapped.
    typealias InboundIn = Any

    private let limiter: ConnectionLimiter
    private let metrics: ServiceMetrics
    private var client: String?

    init(limiter: ConnectionLimiter, metrics: ServiceMetrics) {
        self.limiter = limiter
        self.metrics = metrics
    }

    func channelActive(context: ChannelHandlerContext) {
        let key = context.remoteAddress?.ipAddress ?? "local"
        if let refusal = limiter.admit(client: key) {
            metrics.limitHit(refusal.isPerClient ? "http_connections_per_client" : "http_connections")
            context.close(promise: nil)
            return
        }
        client = key
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { limiter.release(client: client) }
        client = nil
        context.fireChannelInactive()
    }
}

/// Closes a connection whose writes have made no progress for `limit`: a client that stops reading an
/// export would otherwise hold an export slot, a thread and a descriptor for ever.
///
/// It sits nearer the socket than ``CloseAfterPendingWrites``, so its close is not held back by the very
/// writes that stalled.
final class WriteStallTimeout: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private let limit: TimeAmount
    private let metrics: ServiceMetrics
    private var pending = 0
    private var lastProgress = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(limit: TimeAmount, metrics: ServiceMetrics) {
        self.limit = limit
        self.metrics = metrics
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if pending == 0 { lastProgress = .now() }
        pending += 1
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.assumeIsolated().whenComplete { [self] _ in
            pending -= 1
            lastProgress = .now()
        }
        context.write(data, promise: written)
        if check == nil { schedule(context) }
    }

    private func schedule(_ context: ChannelHandlerContext) {
        let loop = context.eventLoop
        check = loop.assumeIsolated().scheduleTask(in: .nanoseconds(max(limit.nanoseconds / 4, 1_000_000))) { [self] in
            check = nil
            guard pending > 0 else { return }
            if NIODeadline.now() - lastProgress >= limit {
                metrics.limitHit("export_stalled")
                context.close(promise: nil)
                return
            }
            schedule(context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }
}
