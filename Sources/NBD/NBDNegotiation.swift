import NIOCore

/// The server's side of option haggling (§Option haggling, fixed newstyle only): given each decoded client
/// message, the bytes to answer with and whether transmission starts. Pure: no sockets, no clocks; export
/// names are looked up in an ``NBDExportDirectory``.
public struct NBDNegotiation: Sendable {
    /// What to do after a message.
    public enum Outcome: Sendable, Equatable {
        /// Send these bytes and keep haggling.
        case reply(ByteBuffer)
        /// Send these bytes; transmission begins after them.
        case beginTransmission(ByteBuffer)
        /// Send these bytes (possibly none) and close the connection.
        case close(ByteBuffer)
    }

    public let exports: any NBDExportDirectory
    /// The export transmission is for, set when `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME` succeeds.
    public private(set) var chosen: NBDExport?
    public private(set) var clientFlags: UInt32 = 0
    /// True once `NBD_OPT_STRUCTURED_REPLY` was acknowledged.
    public private(set) var structuredReplies = false
    /// Context ids selected by the last `NBD_OPT_SET_META_CONTEXT`.
    public private(set) var selectedContexts: [UInt32] = []
    /// The export name of that `NBD_OPT_SET_META_CONTEXT`: a different name in `NBD_OPT_GO` selects none.
    private var selectedFor: String?

    public init(exports: any NBDExportDirectory) {
        self.exports = exports
    }

    /// A server with one export.
    public init(export: NBDExport) {
        self.init(exports: NBDSingleExport(export))
    }

    /// The bytes the server opens with: "NBDMAGIC", "IHAVEOPT", handshake flags (§Newstyle negotiation).
    public static func greeting() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeMultipleIntegers(NBDMagic.greeting, NBDMagic.option, NBDHandshakeFlags.fixedNewstyle | NBDHandshakeFlags.noZeroes)
        return buffer
    }

    /// True when answering `message` may consult the export directory (which may read the index or a file,
    /// so the caller runs it where blocking is allowed); the other messages are answered from the
    /// negotiation's own state.
    public static func consultsDirectory(_ message: NBDClientMessage) -> Bool {
        guard case .option(let option) = message else { return false }
        switch option.code {
        case NBDOptionCode.exportName, NBDOptionCode.list, NBDOptionCode.info, NBDOptionCode.go, NBDOptionCode.listMetaContext,
            NBDOptionCode.setMetaContext:
            return true
        default:
            return false
        }
    }

    /// Answers one message of the negotiation phase.
    public mutating func handle(_ message: NBDClientMessage) -> Outcome {
        switch message {
        case .clientFlags(let flags):
            clientFlags = flags
            return .reply(ByteBuffer())
        case let .oversizedOption(code, length):
            return .reply(
                replies(code, [.error(type: NBDOptionReplyType.errorTooBig, message: "option data of \(length) bytes is too large")]))
        case .request:
            return .close(ByteBuffer())
        case .option(let option):
            return handle(option)
        }
    }

    private mutating func handle(_ option: NBDOption) -> Outcome {
        let code = option.code
        switch code {
        case NBDOptionCode.exportName:
            let name = String(decoding: option.data.readableBytesView, as: UTF8.self)
            // This option has no error reply: an unknown name closes the connection (§NBD_OPT_EXPORT_NAME).
            guard case .success(let export) = exports.export(named: name) else { return .close(ByteBuffer()) }
            choose(export)
            var buffer = ByteBuffer()
            NBDExportNameReply(size: export.size, flags: export.flags, zeroes: clientFlags & NBDClientFlags.noZeroes == 0)
                .encode(into: &buffer)
            return .beginTransmission(buffer)
        case NBDOptionCode.abort:
            return .close(replies(code, [.ack]))
        case NBDOptionCode.list:
            guard option.data.readableBytes == 0 else { return .reply(invalid(code, "NBD_OPT_LIST takes no data")) }
            return .reply(replies(code, exports.exportNames().map { .server(name: $0) } + [.ack]))
        case NBDOptionCode.structuredReply:
            guard option.data.readableBytes == 0 else { return .reply(invalid(code, "NBD_OPT_STRUCTURED_REPLY takes no data")) }
            structuredReplies = true
            return .reply(replies(code, [.ack]))
        case NBDOptionCode.info, NBDOptionCode.go:
            return exportInformation(option)
        case NBDOptionCode.listMetaContext, NBDOptionCode.setMetaContext:
            return metaContexts(option)
        default:
            return .reply(replies(code, [.error(type: NBDOptionReplyType.errorUnsupported, message: "option \(code) is not supported")]))
        }
    }

    /// `NBD_OPT_INFO` / `NBD_OPT_GO`: `NBD_INFO_EXPORT` and `NBD_INFO_BLOCK_SIZE` (always sent), then ACK.
    private mutating func exportInformation(_ option: NBDOption) -> Outcome {
        let query: NBDExportQuery
        do {
            query = try NBDExportQuery(parsing: option.data)
        } catch {
            return .reply(invalid(option.code, error.reason))
        }
        let export: NBDExport
        switch exports.export(named: query.name) {
        case .success(let found): export = found
        case .failure(let unavailable): return .reply(unknown(option.code, unavailable))
        }
        let buffer = replies(
            option.code,
            [
                .exportInfo(size: export.size, flags: export.flags),
                .blockSize(minimum: export.minimumBlockSize, preferred: export.preferredBlockSize, maximum: export.maximumBlockSize),
                .ack,
            ])
        guard option.code == NBDOptionCode.go else { return .reply(buffer) }
        choose(export)
        return .beginTransmission(buffer)
    }

    /// `NBD_OPT_LIST_META_CONTEXT` / `NBD_OPT_SET_META_CONTEXT` (§Metadata querying). LIST answers id 0;
    /// SET needs structured replies and selects exact names only, replacing any earlier selection.
    private mutating func metaContexts(_ option: NBDOption) -> Outcome {
        let query: NBDMetaContextQuery
        do {
            query = try NBDMetaContextQuery(parsing: option.data)
        } catch {
            return .reply(invalid(option.code, error.reason))
        }
        let isSet = option.code == NBDOptionCode.setMetaContext
        if isSet && !structuredReplies {
            return .reply(invalid(option.code, "NBD_OPT_SET_META_CONTEXT needs structured replies first"))
        }
        let export: NBDExport
        switch exports.export(named: query.exportName) {
        case .success(let found): export = found
        case .failure(let unavailable): return .reply(unknown(option.code, unavailable))
        }
        var answers: [NBDOptionReply] = []
        if isSet {
            var selected: [UInt32] = []
            for name in query.queries {
                guard let id = export.contextID(named: name), !selected.contains(id) else { continue }
                selected.append(id)
                answers.append(.metaContext(id: id, name: name))
            }
            selectedContexts = selected
            selectedFor = query.exportName
        } else {
            answers = export.contexts(listing: query.queries).map { .metaContext(id: 0, name: $0) }
        }
        return .reply(replies(option.code, answers + [.ack]))
    }

    private func replies(_ code: UInt32, _ answers: [NBDOptionReply]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for answer in answers { answer.encode(option: code, into: &buffer) }
        return buffer
    }

    /// Transmission will be for `export`; contexts selected for another export do not apply to it
    /// (§NBD_OPT_SET_META_CONTEXT: the names must match).
    private mutating func choose(_ export: NBDExport) {
        chosen = export
        if selectedFor != export.name { selectedContexts = [] }
    }

    private func unknown(_ code: UInt32, _ unavailable: NBDExportUnavailable) -> ByteBuffer {
        replies(code, [.error(type: NBDOptionReplyType.errorUnknown, message: unavailable.message)])
    }

    private func invalid(_ code: UInt32, _ reason: String) -> ByteBuffer {
        replies(code, [.error(type: NBDOptionReplyType.errorInvalid, message: reason)])
    }
}
