import Logging
import NBD
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Serves one client: the greeting, option haggling through `NBDNegotiation` (export names looked up in
/// the catalog on a blocking-I/O thread), then requests one at a time through an ``ExportSession``, until
/// the client disconnects or breaks the protocol.
///
/// Memory per connection is bounded: NIO reads at most a few chunks ahead (the async channel's
/// back-pressure), options are buffered up to 64 KiB, write payloads are skipped unread, and one reply
/// (at most 32 MiB of data, or 1 MiB of descriptors per context) is built at a time.
///
/// A client has `handshakeLimit` to finish negotiating (qemu-nbd allows 10 s); then it is disconnected.
struct NBDConnection {
    let catalog: any ImageExportCatalog
    let logger: Logger
    var observer: (any NBDServerObserver)?
    var handshakeLimit: TimeAmount = .seconds(30)
    /// Why this connection may not have a session (a connection limit): every option is answered
    /// `NBD_REP_ERR_POLICY` with this text, then the connection is closed.
    var refusal: String?
    /// Who the client is, for the access log (``ClientIdentity``); its address when not given.
    var client: String?

    func run(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let raw = channel.channel
        let deadline = raw.eventLoop.scheduleTask(in: handshakeLimit) { raw.close(promise: nil) }
        let session = SessionFigures(inner: observer)
        var counted = self
        counted.observer = session
        session.connectionOpened()
        let started = ContinuousClock.now
        let client = self.client ?? raw.remoteAddress?.ipAddress ?? "local"
        defer {
            session.connectionClosed()
            // The access log's record of an NBD session: who read which export, how much, for how long.
            if let export = session.export {
                let elapsed = ContinuousClock.now - started
                logger.info(
                    "nbd session",
                    metadata: [
                        "client": "\(client)", "export": "\(export)", "bytes": "\(session.bytesRead)",
                        "seconds": "\(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)",
                    ])
            }
        }
        do {
            try await channel.executeThenClose { inbound, outbound in
                try await counted.serve(
                    channel: raw, inbound: inbound, outbound: outbound, negotiated: { deadline.cancel() }, session: session)
            }
        } catch let error as ChannelError where error == .ioOnClosedChannel || error == .alreadyClosed || error == .eof {
            // A client that went away: the normal end of a connection.
            logger.debug("connection closed by the client")
        } catch {
            logger.notice("connection closed: \(error)")
        }
    }

    private func serve(
        channel: any Channel, inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        negotiated: () -> Void,
        session figures: SessionFigures
    ) async throws {
        let exports = NegotiatedExports(catalog: catalog)
        var negotiation = NBDNegotiation(exports: exports)
        var decoder = NBDServerDecoder()
        var session: ExportSession?
        let fastPath = try? await channel.pipeline.handler(type: BlockStatusFastPath.self).get()
        let loop = channel.eventLoop
        if refusal != nil, let fastPath { try await loop.submit { fastPath.passEverythingOn() }.get() }
        try await outbound.write(NBDNegotiation.greeting())
        var pending = ByteBuffer()
        if let refusal {
            // Said in the protocol, so the client shows the reason rather than a dropped connection.
            for try await bytes in inbound {
                pending.writeImmutableBuffer(bytes)
                while let message = try decoder.next(from: &pending) {
                    let code: UInt32
                    switch message {
                    case .option(let option): code = option.code
                    case .oversizedOption(let optionCode, _): code = optionCode
                    default: continue
                    }
                    var reply = ByteBuffer()
                    NBDOptionReply.error(type: NBDOptionReplyType.errorPolicy, message: refusal).encode(option: code, into: &reply)
                    try await outbound.write(reply)
                    return
                }
            }
            return
        }
        for try await bytes in inbound {
            if pending.readableBytes == 0 {
                pending = bytes
            } else {
                pending.writeImmutableBuffer(bytes)
            }
            while let message = try decoder.next(from: &pending) {
                if let session {
                    guard case .request(let request) = message else { continue }
                    let answer =
                        session.answersFromMemory(request)
                        ? session.reply(to: request) : try await NIOThreadPool.singleton.runIfActive({ session.reply(to: request) })
                    guard let reply = answer else { return }
                    try await outbound.write(reply)
                    continue
                }
                let before = negotiation
                // Options that may look an export up (the index, a rescan, a header check) run on the
                // blocking-I/O pool, and `NBD_OPT_GO` starts the session in the same step; the others, and
                // options about the export this negotiation already found, are answered here.
                let step: (NBDNegotiation, NBDNegotiation.Outcome, ExportSession?)
                let handle: @Sendable () -> (NBDNegotiation, NBDNegotiation.Outcome, ExportSession?) = {
                    var negotiation = before
                    let outcome = negotiation.handle(message)
                    guard case .beginTransmission = outcome, let name = negotiation.chosen?.name, let export = exports.image(named: name)
                    else { return (negotiation, outcome, nil) }
                    return (negotiation, outcome, startSession(negotiation, export: export, justChecked: exports.imagesWereChecked))
                }
                if NBDNegotiation.consultsDirectory(message) && !exports.answersFromMemory(message) {
                    step = try await NIOThreadPool.singleton.runIfActive(handle)
                } else {
                    step = handle()
                }
                negotiation = step.0
                let choosing: Bool
                if case .option(let option) = message {
                    choosing = option.code == NBDOptionCode.go || option.code == NBDOptionCode.exportName
                } else {
                    choosing = false
                }
                switch step.1 {
                case .reply(let reply):
                    if reply.readableBytes > 0 { try await outbound.write(reply) }
                    // A GO that did not begin transmission: the fast path goes on framing options.
                    if choosing, let fastPath { loop.execute { fastPath.negotiationContinues() } }
                case .beginTransmission(let reply):
                    try await outbound.write(reply)
                    decoder.beginTransmission()
                    negotiated()
                    guard let started = step.2, let name = negotiation.chosen?.name else { return }
                    figures.export = name
                    session = started
                    // After the GO reply is written: what the fast path answers comes after it.
                    if let fastPath { loop.execute { fastPath.transmissionBegan(started) } }
                case .close(let reply):
                    if reply.readableBytes > 0 { try await outbound.write(reply) }
                    return
                }
            }
            pending.discardReadBytes()
        }
    }

    /// Checks the image against the index (stat and header checksum) as the client starts transmission,
    /// unless the catalog did that when this negotiation looked the image up (`justChecked`).
    private func startSession(_ negotiation: NBDNegotiation, export: ImageExport, justChecked: Bool) -> ExportSession {
        var staleReason: String?
        if !justChecked, case .stale(let reason) = export.freshness() {
            staleReason = "\(export.indexed.image.path) changed since it was indexed (\(reason)); reconnect to rescan it"
            logger.warning("\(staleReason ?? "")")
        }
        return ExportSession(export: export, negotiation: negotiation, staleReason: staleReason, observer: observer)
    }
}

/// One connection's figures for the access log, passing every event on to the server's observer.
final class SessionFigures: NBDServerObserver, @unchecked Sendable {
    private let inner: (any NBDServerObserver)?
    private let lock = NIOLock()
    private var read: UInt64 = 0
    private var name: String?

    init(inner: (any NBDServerObserver)?) {
        self.inner = inner
    }

    var bytesRead: UInt64 { lock.withLock { read } }
    var export: String? {
        get { lock.withLock { name } }
        set { lock.withLock { name = newValue } }
    }

    func connectionOpened() { inner?.connectionOpened() }
    func connectionClosed() { inner?.connectionClosed() }
    func read(bytes: Int) {
        lock.withLock { read += UInt64(max(bytes, 0)) }
        inner?.read(bytes: bytes)
    }
    func blockStatusAnswered() { inner?.blockStatusAnswered() }
    func requestFailed() { inner?.requestFailed() }
    func limitHit(_ limit: String) { inner?.limitHit(limit) }
}
