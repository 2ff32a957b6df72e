import NIOCore

/// Reply types the server answers options with (§Option reply types).
public enum NBDOptionReplyType {
    public static let ack: UInt32 = 1
    public static let server: UInt32 = 2
    public static let info: UInt32 = 3
    public static let metaContext: UInt32 = 4
    public static let errorUnsupported: UInt32 = 1 << 31 | 1
    public static let errorPolicy: UInt32 = 1 << 31 | 2
    public static let errorInvalid: UInt32 = 1 << 31 | 3
    public static let errorPlatform: UInt32 = 1 << 31 | 4
    public static let errorTLSRequired: UInt32 = 1 << 31 | 5
    public static let errorUnknown: UInt32 = 1 << 31 | 6
    public static let errorShutdown: UInt32 = 1 << 31 | 7
    public static let errorTooBig: UInt32 = 1 << 31 | 9
}

/// One reply to an option:
///
/// ```
///  0          8       12      16      20
///  +----------+-------+-------+-------+---------------+
///  | magic    | option| type  | length| data (length) |
///  +----------+-------+-------+-------+---------------+
/// ```
public enum NBDOptionReply: Sendable, Equatable {
    /// `NBD_REP_ACK`: the option succeeded (ends a list of replies).
    case ack
    /// `NBD_REP_SERVER`: one export of an `NBD_OPT_LIST`.
    case server(name: String)
    /// `NBD_REP_INFO` / `NBD_INFO_EXPORT`: the export's size and transmission flags.
    case exportInfo(size: UInt64, flags: UInt16)
    /// `NBD_REP_INFO` / `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block sizes.
    case blockSize(minimum: UInt32, preferred: UInt32, maximum: UInt32)
    /// `NBD_REP_META_CONTEXT`: a context id and its name.
    case metaContext(id: UInt32, name: String)
    /// An error reply type (`NBD_REP_ERR_*`) with a message for people.
    case error(type: UInt32, message: String)

    public var type: UInt32 {
        switch self {
        case .ack: return NBDOptionReplyType.ack
        case .server: return NBDOptionReplyType.server
        case .exportInfo, .blockSize: return NBDOptionReplyType.info
        case .metaContext: return NBDOptionReplyType.metaContext
        case .error(let type, _): return type
        }
    }

    /// Writes the reply to option `option`.
    public func encode(option: UInt32, into buffer: inout ByteBuffer) {
        var data = ByteBuffer()
        switch self {
        case .ack:
            break
        case .server(let name):
            data.writeNBDString(name)
        case let .exportInfo(size, flags):
            data.writeInteger(NBDInfoType.export)
            data.writeInteger(size)
            data.writeInteger(flags)
        case let .blockSize(minimum, preferred, maximum):
            data.writeInteger(NBDInfoType.blockSize)
            data.writeInteger(minimum)
            data.writeInteger(preferred)
            data.writeInteger(maximum)
        case let .metaContext(id, name):
            data.writeInteger(id)
            data.writeString(name)
        case .error(_, let message):
            data.writeString(message)
        }
        buffer.writeInteger(NBDMagic.optionReply)
        buffer.writeInteger(option)
        buffer.writeInteger(type)
        buffer.writeInteger(UInt32(data.readableBytes))
        buffer.writeImmutableBuffer(data)
    }
}

/// The old-style answer to `NBD_OPT_EXPORT_NAME`, which ends negotiation (§NBD_OPT_EXPORT_NAME):
/// 64-bit size, 16-bit transmission flags, then 124 zero bytes unless the client set `NO_ZEROES`.
public struct NBDExportNameReply: Sendable, Equatable {
    public var size: UInt64
    public var flags: UInt16
    public var zeroes: Bool

    public init(size: UInt64, flags: UInt16, zeroes: Bool) {
        self.size = size
        self.flags = flags
        self.zeroes = zeroes
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(size)
        buffer.writeInteger(flags)
        if zeroes { buffer.writeRepeatingByte(0, count: 124) }
    }
}
