import NIOCore

/// What a client sent, decoded.
public enum NBDClientMessage: Sendable, Equatable {
    /// The 32 client flags answering the greeting.
    case clientFlags(UInt32)
    /// One option with its data.
    case option(NBDOption)
    /// An option whose data is longer than `NBDLimits.maximumOptionLength`: its data is skipped unread,
    /// and the server answers `NBD_REP_ERR_TOO_BIG`.
    case oversizedOption(code: UInt32, length: UInt32)
    /// One transmission request (a write's payload is skipped: the export is read-only).
    case request(NBDRequest)
}

/// Turns the bytes a client sends into messages, whatever way they are split: bytes in, messages out, no
/// sockets. Memory is bounded: option data is buffered only up to `NBDLimits.maximumOptionLength`, and
/// payloads the server does not use are skipped as they arrive, never held.
///
/// The server says when option haggling ends (`beginTransmission()`), since only it knows whether an
/// `NBD_OPT_GO` succeeded (§Option haggling).
public struct NBDServerDecoder: Sendable {
    enum Phase: Sendable, Equatable {
        case clientFlags
        case haggling
        case transmission
    }

    private(set) var phase: Phase = .clientFlags
    /// Bytes still to discard before decoding resumes.
    private(set) var skipping: UInt64 = 0

    public init() {}

    /// True once transmission has begun.
    public var isTransmitting: Bool { phase == .transmission }

    /// Ends option haggling: the next bytes are transmission requests.
    public mutating func beginTransmission() {
        phase = .transmission
    }

    /// Decodes the next message from `buffer`, consuming its bytes; nil when more bytes are needed.
    /// - Throws: `NBDProtocolError` when the stream cannot be understood; the connection must close.
    public mutating func next(from buffer: inout ByteBuffer) throws(NBDProtocolError) -> NBDClientMessage? {
        while skipping > 0 {
            guard buffer.readableBytes > 0 else { return nil }
            let count = Int(min(UInt64(buffer.readableBytes), skipping))
            buffer.moveReaderIndex(forwardBy: count)
            skipping -= UInt64(count)
        }
        switch phase {
        case .clientFlags:
            guard let flags = buffer.readInteger(as: UInt32.self) else { return nil }
            guard flags & NBDClientFlags.fixedNewstyle != 0, flags & ~NBDClientFlags.known == 0 else {
                throw .badClientFlags(flags)
            }
            phase = .haggling
            return .clientFlags(flags)
        case .haggling:
            return try nextOption(from: &buffer)
        case .transmission:
            guard let request = try NBDRequest.read(from: &buffer) else { return nil }
            if request.hasPayload {
                guard request.length <= NBDLimits.maximumPayload else {
                    throw .oversized(field: "write payload", length: UInt64(request.length), limit: UInt64(NBDLimits.maximumPayload))
                }
                skipping = UInt64(request.length)
            }
            return .request(request)
        }
    }

    private mutating func nextOption(from buffer: inout ByteBuffer) throws(NBDProtocolError) -> NBDClientMessage? {
        guard buffer.readableBytes >= 16 else { return nil }
        let start = buffer.readerIndex
        guard let magic = buffer.getInteger(at: start, as: UInt64.self), magic == NBDMagic.option else {
            throw .badMagic(field: "option", found: buffer.getInteger(at: start, as: UInt64.self) ?? 0)
        }
        guard let code = buffer.getInteger(at: start + 8, as: UInt32.self),
            let length = buffer.getInteger(at: start + 12, as: UInt32.self)
        else { return nil }
        if length > NBDLimits.maximumOptionLength {
            // NBD_OPT_EXPORT_NAME has no error reply: the only answer is to close (§NBD_OPT_EXPORT_NAME).
            if code == NBDOptionCode.exportName {
                throw .oversized(field: "export name", length: UInt64(length), limit: UInt64(NBDLimits.maximumStringLength))
            }
            buffer.moveReaderIndex(forwardBy: 16)
            skipping = UInt64(length)
            return .oversizedOption(code: code, length: length)
        }
        guard buffer.readableBytes >= 16 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 16)
        guard let data = buffer.readSlice(length: Int(length)) else { return nil }
        return .option(NBDOption(code: code, data: data))
    }
}
