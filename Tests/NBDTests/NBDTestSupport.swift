import NIOCore

@testable import NBD

/// A client's side of the conversation, as bytes, for feeding the decoder.
enum ClientBytes {
    static func flags(_ flags: UInt32 = NBDClientFlags.fixedNewstyle | NBDClientFlags.noZeroes) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(flags)
        return buffer
    }

    static func option(_ code: UInt32, _ data: ByteBuffer = ByteBuffer()) -> ByteBuffer {
        var buffer = ByteBuffer()
        NBDOption(code: code, data: data).encode(into: &buffer)
        return buffer
    }

    static func go(_ name: String = "", requests: [UInt16] = [NBDInfoType.blockSize]) -> ByteBuffer {
        var data = ByteBuffer()
        NBDExportQuery(name: name, requests: requests).encode(into: &data)
        return option(NBDOptionCode.go, data)
    }

    static func meta(_ code: UInt32, export: String = "", queries: [String]) -> ByteBuffer {
        var data = ByteBuffer()
        NBDMetaContextQuery(exportName: export, queries: queries).encode(into: &data)
        return option(code, data)
    }

    static func request(_ type: UInt16, cookie: UInt64, offset: UInt64 = 0, length: UInt32 = 0, flags: UInt16 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        NBDRequest(flags: flags, type: type, cookie: cookie, offset: offset, length: length).encode(into: &buffer)
        return buffer
    }

    static func joined(_ parts: [ByteBuffer]) -> ByteBuffer {
        var all = ByteBuffer()
        for var part in parts { all.writeBuffer(&part) }
        return all
    }
}

/// One option reply as the client reads it.
struct DecodedOptionReply: Equatable {
    var option: UInt32
    var type: UInt32
    var data: [UInt8]
}

/// Splits a buffer of option replies; nil if it is malformed.
func decodeOptionReplies(_ buffer: ByteBuffer) -> [DecodedOptionReply]? {
    var buffer = buffer
    var replies: [DecodedOptionReply] = []
    while buffer.readableBytes > 0 {
        guard let (magic, option, type, length) = buffer.readMultipleIntegers(as: (UInt64, UInt32, UInt32, UInt32).self),
            magic == NBDMagic.optionReply, let data = buffer.readBytes(length: Int(length))
        else { return nil }
        replies.append(DecodedOptionReply(option: option, type: type, data: data))
    }
    return replies
}

/// What a server loop does with the decoder and the negotiation: decode everything in `chunks` (fed one
/// after the other), switching to transmission when the negotiation says so.
struct ServerLoop {
    var decoder = NBDServerDecoder()
    var negotiation = NBDNegotiation(
        export: NBDExport(name: "", size: 1 << 20, metaContexts: ["base:allocation", "qemu:allocation-depth"]))
    var pending = ByteBuffer()
    var messages: [NBDClientMessage] = []
    var replies = ByteBuffer()
    var closed = false

    mutating func feed(_ bytes: ByteBuffer) throws(NBDProtocolError) {
        pending.writeImmutableBuffer(bytes)
        while !closed, let message = try decoder.next(from: &pending) {
            messages.append(message)
            if decoder.isTransmitting { continue }
            switch negotiation.handle(message) {
            case .reply(let reply):
                replies.writeImmutableBuffer(reply)
            case .beginTransmission(let reply):
                replies.writeImmutableBuffer(reply)
                decoder.beginTransmission()
            case .close(let reply):
                replies.writeImmutableBuffer(reply)
                closed = true
            }
        }
        pending.discardReadBytes()
    }
}
