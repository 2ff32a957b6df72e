import NIOCore

/// Command types of transmission requests (§Request types).
public enum NBDCommand {
    public static let read: UInt16 = 0
    public static let write: UInt16 = 1
    public static let disconnect: UInt16 = 2
    public static let flush: UInt16 = 3
    public static let trim: UInt16 = 4
    public static let cache: UInt16 = 5
    public static let writeZeroes: UInt16 = 6
    public static let blockStatus: UInt16 = 7
    public static let resize: UInt16 = 8
}

/// Command flags (§Command flags).
public enum NBDCommandFlags {
    public static let fua: UInt16 = 1 << 0
    public static let noHole: UInt16 = 1 << 1
    public static let dontFragment: UInt16 = 1 << 2
    public static let requestOne: UInt16 = 1 << 3
    public static let fastZero: UInt16 = 1 << 4
    public static let payloadLength: UInt16 = 1 << 5
}

/// One transmission request, 28 bytes (§Request message); a write's payload follows it on the wire.
///
/// ```
///  0      4      6      8        16       24     28
///  +------+------+------+--------+--------+------+
///  | magic| flags| type | cookie | offset |length|
///  +------+------+------+--------+--------+------+
/// ```
public struct NBDRequest: Sendable, Equatable {
    public static let size = 28
    public var flags: UInt16
    public var type: UInt16
    public var cookie: UInt64
    public var offset: UInt64
    public var length: UInt32

    public init(flags: UInt16 = 0, type: UInt16, cookie: UInt64, offset: UInt64, length: UInt32) {
        self.flags = flags
        self.type = type
        self.cookie = cookie
        self.offset = offset
        self.length = length
    }

    /// True for the commands whose payload (of `length` bytes) follows the request.
    public var hasPayload: Bool { type == NBDCommand.write }

    /// Reads one request from `buffer` if all 28 bytes are there (nil otherwise, consuming nothing).
    public static func read(from buffer: inout ByteBuffer) throws(NBDProtocolError) -> NBDRequest? {
        guard buffer.readableBytes >= size else { return nil }
        guard let magic = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self), magic == NBDMagic.request else {
            let found = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) ?? 0
            throw .badMagic(field: "request", found: UInt64(found))
        }
        guard
            let (_, flags, type, cookie, offset, length) = buffer.readMultipleIntegers(
                as: (UInt32, UInt16, UInt16, UInt64, UInt64, UInt32).self)
        else { return nil }
        return NBDRequest(flags: flags, type: type, cookie: cookie, offset: offset, length: length)
    }

    /// Writes the request as a client would.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(NBDMagic.request, flags, type, cookie, offset, length)
    }
}
