import NIOCore

/// Structured reply chunk types (§Structured reply types).
public enum NBDReplyType {
    public static let none: UInt16 = 0
    public static let offsetData: UInt16 = 1
    public static let offsetHole: UInt16 = 2
    public static let blockStatus: UInt16 = 5
    public static let error: UInt16 = 1 << 15 | 1
    public static let errorOffset: UInt16 = 1 << 15 | 2
}

/// Structured reply flags (§Structured reply flags).
public enum NBDReplyFlags {
    /// The last chunk of the reply to a request.
    public static let done: UInt16 = 1 << 0
}

/// A simple reply (§Simple reply message): 16 bytes, followed by the data of a successful read.
///
/// ```
///  0      4      8        16
///  +------+------+--------+------------------+
///  | magic| error| cookie | data (reads only)|
///  +------+------+--------+------------------+
/// ```
public enum NBDSimpleReply {
    public static let headerSize = 16

    public static func encodeHeader(cookie: UInt64, error: NBDError?, into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(NBDMagic.simpleReply, error?.rawValue ?? 0, cookie)
    }
}

/// One block status descriptor: a length and the context's flags for it (§NBD_REPLY_TYPE_BLOCK_STATUS).
public struct NBDBlockDescriptor: Sendable, Equatable {
    public var length: UInt32
    public var flags: UInt32

    public init(length: UInt32, flags: UInt32) {
        self.length = length
        self.flags = flags
    }
}

/// A structured reply chunk (§Structured reply chunk message): a 20-byte header and a payload.
///
/// ```
///  0      4      6      8        16      20
///  +------+------+------+--------+-------+-------------------+
///  | magic| flags| type | cookie | length| payload (length)  |
///  +------+------+------+--------+-------+-------------------+
/// ```
public enum NBDStructuredReply {
    public static let headerSize = 20

    public static func encodeHeader(flags: UInt16, type: UInt16, cookie: UInt64, length: UInt32, into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(NBDMagic.structuredReply, flags, type, cookie, length)
    }

    /// `NBD_REPLY_TYPE_NONE` with `DONE`: a command succeeded with nothing to say.
    public static func encodeDone(cookie: UInt64, into buffer: inout ByteBuffer) {
        encodeHeader(flags: NBDReplyFlags.done, type: NBDReplyType.none, cookie: cookie, length: 0, into: &buffer)
    }

    /// `NBD_REPLY_TYPE_OFFSET_HOLE`: `length` bytes at `offset` read as zeros; no data is sent.
    public static func encodeHole(cookie: UInt64, offset: UInt64, length: UInt32, done: Bool, into buffer: inout ByteBuffer) {
        encodeHeader(flags: done ? NBDReplyFlags.done : 0, type: NBDReplyType.offsetHole, cookie: cookie, length: 12, into: &buffer)
        buffer.writeInteger(offset)
        buffer.writeInteger(length)
    }

    /// The header and offset of `NBD_REPLY_TYPE_OFFSET_DATA`; the `dataLength` bytes of data follow.
    public static func encodeDataHeader(cookie: UInt64, offset: UInt64, dataLength: UInt32, done: Bool, into buffer: inout ByteBuffer) {
        encodeHeader(
            flags: done ? NBDReplyFlags.done : 0, type: NBDReplyType.offsetData, cookie: cookie, length: 8 + dataLength, into: &buffer)
        buffer.writeInteger(offset)
    }

    /// `NBD_REPLY_TYPE_BLOCK_STATUS`: the descriptors of one metadata context.
    public static func encodeBlockStatus(
        cookie: UInt64, contextID: UInt32, descriptors: [NBDBlockDescriptor], done: Bool, into buffer: inout ByteBuffer
    ) {
        let length = 4 + 8 * descriptors.count
        encodeHeader(
            flags: done ? NBDReplyFlags.done : 0, type: NBDReplyType.blockStatus, cookie: cookie, length: UInt32(length), into: &buffer)
        buffer.reserveCapacity(minimumWritableBytes: length)
        buffer.writeInteger(contextID)
        // Written straight into the reserved bytes: a map of a large bitmap sends tens of thousands.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 8 * descriptors.count) { target in
            for (index, descriptor) in descriptors.enumerated() {
                target.storeBytes(of: descriptor.length.bigEndian, toByteOffset: 8 * index, as: UInt32.self)
                target.storeBytes(of: descriptor.flags.bigEndian, toByteOffset: 8 * index + 4, as: UInt32.self)
            }
            return 8 * descriptors.count
        }
    }

    /// `NBD_REPLY_TYPE_ERROR` with `DONE`: the command failed; `message` is for people (bounded to 4 KiB).
    public static func encodeError(cookie: UInt64, error: NBDError, message: String, into buffer: inout ByteBuffer) {
        let text = Array(message.utf8.prefix(Int(NBDLimits.maximumStringLength)))
        encodeHeader(flags: NBDReplyFlags.done, type: NBDReplyType.error, cookie: cookie, length: UInt32(6 + text.count), into: &buffer)
        buffer.writeInteger(error.rawValue)
        buffer.writeInteger(UInt16(text.count))
        buffer.writeBytes(text)
    }
}
