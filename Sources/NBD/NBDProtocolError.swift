/// A client broke the protocol in a way that leaves no reply to give: the server closes the connection.
public enum NBDProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A magic number is wrong (the stream is out of step or not NBD).
    case badMagic(field: String, found: UInt64)
    /// The client flags name bits this server does not know, or lack fixed newstyle (§Newstyle negotiation).
    case badClientFlags(UInt32)
    /// A length the server cannot accept without resynchronising (an export name or write payload too large).
    case oversized(field: String, length: UInt64, limit: UInt64)

    public var description: String {
        switch self {
        case let .badMagic(field, found): return "bad \(field) magic 0x\(String(found, radix: 16))"
        case .badClientFlags(let flags): return "unsupported client flags 0x\(String(flags, radix: 16))"
        case let .oversized(field, length, limit): return "\(field) of \(length) bytes exceeds \(limit)"
        }
    }
}
