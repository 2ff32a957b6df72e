/// Numbers of the NBD protocol, from the specification (`doc/proto.md` of NetworkBlockDevice/nbd).
///
/// Every integer on the wire is big-endian ("network byte order", proto.md §Protocol phases).
public enum NBDMagic {
    /// "NBDMAGIC": the first 8 bytes the server sends (§Newstyle negotiation).
    public static let greeting: UInt64 = 0x4E42_444D_4147_4943
    /// "IHAVEOPT": follows the greeting, and starts every option the client sends (§Option haggling).
    public static let option: UInt64 = 0x4948_4156_454F_5054
    /// Starts every reply to an option (§Option haggling).
    public static let optionReply: UInt64 = 0x0003_E889_0455_65A9
    /// Starts every transmission request (§Request message).
    public static let request: UInt32 = 0x2560_9513
    /// Starts a simple reply (§Simple reply message).
    public static let simpleReply: UInt32 = 0x6744_6698
    /// Starts a structured reply chunk (§Structured reply chunk message).
    public static let structuredReply: UInt32 = 0x668E_33EF
}

/// Handshake flags the server sends after the greeting (§Newstyle negotiation).
public enum NBDHandshakeFlags {
    public static let fixedNewstyle: UInt16 = 1 << 0
    public static let noZeroes: UInt16 = 1 << 1
}

/// Client flags, the 32 bits the client answers the greeting with (§Newstyle negotiation).
public enum NBDClientFlags {
    public static let fixedNewstyle: UInt32 = 1 << 0
    public static let noZeroes: UInt32 = 1 << 1
    public static let known: UInt32 = fixedNewstyle | noZeroes
}

/// Transmission flags: what the export supports (§Transmission flags).
public enum NBDTransmissionFlags {
    public static let hasFlags: UInt16 = 1 << 0
    public static let readOnly: UInt16 = 1 << 1
    public static let sendFlush: UInt16 = 1 << 2
    public static let sendFUA: UInt16 = 1 << 3
    public static let rotational: UInt16 = 1 << 4
    public static let sendTrim: UInt16 = 1 << 5
    public static let sendWriteZeroes: UInt16 = 1 << 6
    public static let sendDF: UInt16 = 1 << 7
    public static let canMultiConn: UInt16 = 1 << 8
}

/// Error values carried by replies: the protocol's own numbers, equal to Linux errno (§Error values).
public enum NBDError: UInt32, Sendable, Equatable {
    case perm = 1
    case io = 5
    case noMemory = 12
    case invalid = 22
    case noSpace = 28
    case overflow = 75
    case notSupported = 95
    case shutdown = 108
}

/// Limits this implementation enforces on what a client may send or ask for.
public enum NBDLimits {
    /// Largest read (and write payload) a request may name: the maximum block size advertised (32 MiB, the
    /// size the specification says every client may assume, §Block size constraints).
    public static let maximumPayload: UInt32 = 32 << 20
    /// Largest option payload read into memory; longer options are skipped and answered `ERR_TOO_BIG`.
    public static let maximumOptionLength: UInt32 = 64 << 10
    /// Longest string (export or context name) accepted, as the specification bounds strings (§Option haggling).
    public static let maximumStringLength: UInt32 = 4096
}
