import NBD
import NIOCore

/// libFuzzer entry point: the NBD server's codec, fed a client's bytes as `extentdb nbd` feeds it.
///
/// Input: one byte choosing the chunk size the bytes arrive in (1 to 256), one byte choosing the export
/// size (`1 << (byte % 64)`), then the client's stream: client flags, options (GO/INFO/SET_META_CONTEXT
/// payloads parsed by `NBDExportQuery` and `NBDMetaContextQuery`), then transmission requests once the
/// negotiation starts transmission. Every request is classified by `NBDTransmission` and its reply
/// encoded as `ExportSession` would (without image data).
///
/// Checked: nothing traps; the stream decodes to the same messages, replies and end whether it arrives
/// whole or in chunks; the decoder never holds more than one option's worth of bytes; every option reply
/// is well formed and names the option it answers; parsed option payloads survive encode/parse; served
/// ranges lie inside the export; block status descriptors add up to what they claim to cover.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNBD(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    guard input.count >= 2 else { return 0 }
    let chunk = Int(input[0]) + 1
    let export = NBDExport(name: "", size: 1 << UInt64(input[1] % 64), metaContexts: ["base:allocation", "qemu:allocation-depth"])
    var stream = ByteBuffer()
    stream.writeBytes(UnsafeRawBufferPointer(rebasing: input[2...]))

    var whole = Conversation(export: export)
    whole.feed(stream)
    var chunked = Conversation(export: export)
    var rest = stream
    while rest.readableBytes > 0, !chunked.ended {
        guard let part = rest.readSlice(length: min(chunk, rest.readableBytes)) else { break }
        chunked.feed(part)
        if !chunked.ended {
            precondition(
                chunked.pending.readableBytes < 16 + Int(NBDLimits.maximumOptionLength),
                "the decoder holds \(chunked.pending.readableBytes) bytes it cannot decode")
        }
    }
    precondition(whole.messages == chunked.messages, "chunks of \(chunk) bytes decode to other messages")
    precondition(whole.replies == chunked.replies, "chunks of \(chunk) bytes get other replies")
    precondition(whole.end == chunked.end, "chunks of \(chunk) bytes end otherwise: \(whole.end) / \(chunked.end)")
    return 0
}

/// The loop of `NBDConnection.serve`, minus the socket and the image.
struct Conversation {
    enum End: Equatable {
        case open
        case closed
        case disconnected
        case protocolError(String)
    }

    var decoder = NBDServerDecoder()
    var negotiation: NBDNegotiation
    var pending = ByteBuffer()
    var messages: [NBDClientMessage] = []
    var replies = ByteBuffer()
    var end = End.open
    var ended: Bool { end != .open }

    init(export: NBDExport) {
        negotiation = NBDNegotiation(export: export)
    }

    mutating func feed(_ bytes: ByteBuffer) {
        guard !ended else { return }
        pending.writeImmutableBuffer(bytes)
        do {
            while !ended, let message = try decoder.next(from: &pending) {
                messages.append(message)
                if decoder.isTransmitting {
                    guard case .request(let request) = message else { preconditionFailure("\(message) during transmission") }
                    transmit(request)
                } else {
                    negotiate(message)
                }
            }
        } catch {
            end = .protocolError(error.description)
        }
        pending.discardReadBytes()
    }

    private mutating func negotiate(_ message: NBDClientMessage) {
        if case .option(let option) = message { checkPayload(option) }
        let code: UInt32?
        switch message {
        case .option(let option): code = option.code
        case .oversizedOption(let optionCode, _): code = optionCode
        default: code = nil
        }
        switch negotiation.handle(message) {
        case .reply(let reply):
            if let code { checkOptionReplies(reply, option: code) }
            replies.writeImmutableBuffer(reply)
        case .beginTransmission(let reply):
            if code == NBDOptionCode.exportName {
                precondition(reply.readableBytes == 10 || reply.readableBytes == 134, "export name reply of \(reply.readableBytes) bytes")
            } else if let code {
                checkOptionReplies(reply, option: code)
            }
            replies.writeImmutableBuffer(reply)
            decoder.beginTransmission()
        case .close(let reply):
            if let code, reply.readableBytes > 0 { checkOptionReplies(reply, option: code) }
            replies.writeImmutableBuffer(reply)
            end = .closed
        }
    }

    /// GO/INFO and the meta-context options: what parses must encode back to something that parses equal.
    private func checkPayload(_ option: NBDOption) {
        switch option.code {
        case NBDOptionCode.info, NBDOptionCode.go:
            guard let query = try? NBDExportQuery(parsing: option.data) else { return }
            var again = ByteBuffer()
            query.encode(into: &again)
            precondition((try? NBDExportQuery(parsing: again)) == query, "export query does not round-trip")
        case NBDOptionCode.listMetaContext, NBDOptionCode.setMetaContext:
            guard let query = try? NBDMetaContextQuery(parsing: option.data) else { return }
            var again = ByteBuffer()
            query.encode(into: &again)
            precondition((try? NBDMetaContextQuery(parsing: again)) == query, "meta context query does not round-trip")
        default:
            break
        }
    }

    /// Option replies as a client reads them (§Option haggling): magic, the option answered, a type, a
    /// length and that many bytes; the last one is ACK or an error.
    private func checkOptionReplies(_ buffer: ByteBuffer, option: UInt32) {
        var buffer = buffer
        var last: UInt32?
        while buffer.readableBytes > 0 {
            guard let (magic, answered, type, length) = buffer.readMultipleIntegers(as: (UInt64, UInt32, UInt32, UInt32).self),
                magic == NBDMagic.optionReply, answered == option, buffer.readSlice(length: Int(length)) != nil
            else { preconditionFailure("malformed reply to option \(option)") }
            last = type
        }
        if let last {
            precondition(last == NBDOptionReplyType.ack || last & (1 << 31) != 0, "reply to option \(option) ends with type \(last)")
        }
    }

    private mutating func transmit(_ request: NBDRequest) {
        // Transmission begins only once GO or EXPORT_NAME chose an export.
        guard let export = negotiation.chosen else { preconditionFailure("transmission without a chosen export") }
        var reply = ByteBuffer()
        switch NBDTransmission.action(for: request, export: export, hasContexts: !negotiation.selectedContexts.isEmpty) {
        case .disconnect:
            end = .disconnected
            return
        case .succeed:
            NBDStructuredReply.encodeDone(cookie: request.cookie, into: &reply)
        case let .fail(error, message):
            NBDStructuredReply.encodeError(cookie: request.cookie, error: error, message: message, into: &reply)
            precondition(reply.readableBytes <= NBDStructuredReply.headerSize + 6 + Int(NBDLimits.maximumStringLength))
        case let .read(offset, length):
            checkRange(offset, length, in: export, limit: export.maximumBlockSize)
            NBDStructuredReply.encodeDataHeader(cookie: request.cookie, offset: offset, dataLength: length, done: true, into: &reply)
        case let .blockStatus(offset, length, requestOne):
            checkRange(offset, length, in: export, limit: UInt32.max)
            for id in negotiation.selectedContexts {
                precondition(export.contextName(id: id) != nil, "selected context \(id) does not exist")
                // Runs of the cookie's bits, as the index would give them; one descriptor with REQ_ONE.
                var builder = NBDDescriptorBuilder(limit: requestOne ? 1 : 64)
                // At most 256 runs (then the rest as one), so a long request stays quick.
                var remaining = UInt64(length)
                var bits = request.cookie
                var fits = true
                for _ in 0..<256 where remaining > 0 && fits {
                    let run = min(remaining, (bits & 0xFFFF) + 1)
                    fits = builder.add(length: run, flags: UInt32(bits >> 16 & 3))
                    remaining -= fits ? run : 0
                    bits = bits >> 3 | bits << 61
                }
                if remaining > 0, fits { builder.add(length: remaining, flags: 0) }
                let described = builder.descriptors.reduce(UInt64(0)) { $0 + UInt64($1.length) }
                precondition(described == builder.covered && described <= UInt64(length), "descriptors describe \(described) bytes")
                precondition(builder.descriptors.count <= builder.limit, "\(builder.descriptors.count) descriptors past the limit")
                precondition(!builder.descriptors.contains { $0.length == 0 }, "an empty descriptor")
                NBDStructuredReply.encodeBlockStatus(
                    cookie: request.cookie, contextID: id, descriptors: builder.descriptors, done: false, into: &reply)
            }
            NBDStructuredReply.encodeDone(cookie: request.cookie, into: &reply)
        }
        replies.writeImmutableBuffer(reply)
    }

    private func checkRange(_ offset: UInt64, _ length: UInt32, in export: NBDExport, limit: UInt32) {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
        precondition(
            length > 0 && length <= limit && !overflow && end <= export.size, "served range \(offset)+\(length) is outside the export")
    }
}
