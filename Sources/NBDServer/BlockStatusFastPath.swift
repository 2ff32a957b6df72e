import NBD
import NIOCore

/// Answers block-status requests over bitmap contexts on the event loop, as they arrive, without the
/// connection's async request loop (whose per-request cost made a client mapping a 1 TiB bitmap, 256
/// requests, slower than qemu-nbd).
///
/// It sits in front of the connection's `NIOAsyncChannel` handler and frames every message the client
/// sends with its own ``NBDServerDecoder``; everything it does not answer is passed on, byte for byte, so
/// the async loop decodes the same stream minus the requests answered here. It answers a request only
/// when all of these hold:
/// - transmission has begun (the async loop says so once `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME` succeeded;
///   bytes after such an option are held back until the loop says how it ended);
/// - the request's bytes are just its 28-byte header (no write payload of an earlier request in them);
/// - no request passed on is still unanswered (each reply the loop writes passes through here), so
///   replies stay in request order and the session is never used by two threads at once;
/// - the session answers it from memory (``ExportSession/answersFromMemory(_:)``);
/// - the channel is writable: a client that sends requests and never reads its replies gets them through
///   the async loop, whose writes wait for the socket, so its replies cannot pile up in memory here.
///
/// Not thread-safe: every method runs on the channel's event loop.
final class BlockStatusFastPath: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Option haggling: messages are framed and passed on.
        case negotiating
        /// An `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME` was passed on; what follows waits for its outcome.
        case awaitingOutcome
        /// Transmission with this session: in-memory requests are answered here.
        case transmitting(ExportSession)
        /// Everything is passed on unframed (a refused connection, a stream this handler cannot frame).
        case passThrough
    }

    private var state = State.negotiating
    private var decoder = NBDServerDecoder()
    private var pending = ByteBuffer()
    /// Requests passed on whose reply the async loop has not written yet.
    private var outstanding = 0
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Told by the async loop (on the event loop)

    /// The connection is refused or otherwise not framed here: pass everything on.
    func passEverythingOn() {
        state = .passThrough
        flushPending()
        context?.fireChannelReadComplete()
    }

    /// The `NBD_OPT_GO`/`NBD_OPT_EXPORT_NAME` passed on did not begin transmission: haggling goes on.
    func negotiationContinues() {
        guard case .awaitingOutcome = state else { return }
        state = .negotiating
        process()
        // Outside a read event: the async handler hands reads to the loop on read-complete.
        context?.fireChannelReadComplete()
    }

    /// Transmission began with `session`: its in-memory requests are answered here from now on.
    func transmissionBegan(_ session: ExportSession) {
        guard case .awaitingOutcome = state else { return }
        decoder.beginTransmission()
        state = .transmitting(session)
        process()
        context?.fireChannelReadComplete()
    }

    // MARK: Pipeline

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if case .passThrough = state {
            context.fireChannelRead(data)
            return
        }
        pending.writeBuffer(&bytes)
        process()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Each reply the async loop writes in transmission answers one request it was passed.
        if case .transmitting = state, outstanding > 0 { outstanding -= 1 }
        context.write(data, promise: promise)
    }

    /// Frames what is pending: passes messages on, answers what it may, holds bytes after a GO.
    private func process() {
        guard let context else { return }
        while true {
            switch state {
            case .awaitingOutcome, .passThrough:
                return
            case .negotiating, .transmitting:
                break
            }
            // The bytes as they were before decoding: a message's bytes are sliced from here (a ByteBuffer
            // gives no slice of bytes already read).
            let before = pending
            let start = pending.readerIndex
            let message: NBDClientMessage?
            do {
                message = try decoder.next(from: &pending)
            } catch {
                // The async loop's decoder will see the same bytes and close the connection.
                state = .passThrough
                pending.moveReaderIndex(to: start)
                flushPending()
                return
            }
            let consumed = pending.readerIndex - start
            guard let message else {
                // Skipped payload bytes are passed on as they arrive; a partial message waits.
                if consumed > 0, let skipped = before.getSlice(at: start, length: consumed) {
                    context.fireChannelRead(wrapInboundOut(skipped))
                }
                pending.discardReadBytes()
                return
            }
            if case .transmitting(let session) = state, case .request(let request) = message, consumed == NBDRequest.size,
                outstanding == 0, context.channel.isWritable, session.answersFromMemory(request), let reply = session.reply(to: request)
            {
                context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
                continue
            }
            if let slice = before.getSlice(at: start, length: consumed) { context.fireChannelRead(wrapInboundOut(slice)) }
            switch message {
            case .request:
                outstanding += 1
            case .option(let option) where option.code == NBDOptionCode.go || option.code == NBDOptionCode.exportName:
                state = .awaitingOutcome
            default:
                break
            }
        }
    }

    /// Passes on every byte still pending, unframed.
    private func flushPending() {
        guard let context, pending.readableBytes > 0 else { return }
        let rest = pending
        pending = ByteBuffer()
        context.fireChannelRead(wrapInboundOut(rest))
    }
}
