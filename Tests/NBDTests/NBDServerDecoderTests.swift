import NIOCore
import Testing

@testable import NBD

@Suite struct NBDServerDecoderTests {
    /// A whole negotiation and a few requests, as a client such as nbdcopy sends them.
    static let conversation: ByteBuffer = {
        var payload = ByteBuffer()
        payload.writeRepeatingByte(0xAB, count: 700)
        return ClientBytes.joined([
            ClientBytes.flags(),
            ClientBytes.option(NBDOptionCode.structuredReply),
            ClientBytes.meta(NBDOptionCode.setMetaContext, queries: ["base:allocation", "qemu:allocation-depth"]),
            ClientBytes.option(NBDOptionCode.list),
            ClientBytes.go(),
            ClientBytes.request(NBDCommand.read, cookie: 1, offset: 4096, length: 65536),
            ClientBytes.request(NBDCommand.write, cookie: 2, offset: 0, length: 700), payload,
            ClientBytes.request(NBDCommand.blockStatus, cookie: 3, offset: 0, length: 1 << 20, flags: NBDCommandFlags.requestOne),
            ClientBytes.request(NBDCommand.disconnect, cookie: 4),
        ])
    }()

    static func decodeWhole() throws -> ServerLoop {
        var loop = ServerLoop()
        try loop.feed(conversation)
        return loop
    }

    @Test("decodes a whole conversation: flags, four options, four requests (the write's payload skipped)")
    func whole() throws {
        let loop = try Self.decodeWhole()
        #expect(loop.messages.count == 9)
        #expect(loop.decoder.isTransmitting)
        #expect(loop.messages.last == .request(NBDRequest(type: NBDCommand.disconnect, cookie: 4, offset: 0, length: 0)))
        #expect(loop.negotiation.structuredReplies)
        #expect(loop.negotiation.selectedContexts == [1, 2])
    }

    @Test("drip-feed: every split point gives the same messages, and every prefix alone decodes without error")
    func dripFeed() throws {
        let whole = try Self.decodeWhole()
        let bytes = Self.conversation
        for split in 0...bytes.readableBytes {
            var loop = ServerLoop()
            try loop.feed(bytes.getSlice(at: 0, length: split) ?? ByteBuffer())
            #expect(loop.messages.count <= whole.messages.count)
            try loop.feed(bytes.getSlice(at: split, length: bytes.readableBytes - split) ?? ByteBuffer())
            #expect(loop.messages == whole.messages, "split at \(split)")
            #expect(loop.replies == whole.replies, "split at \(split)")
        }
    }

    @Test("one byte at a time")
    func byteByByte() throws {
        let whole = try Self.decodeWhole()
        var loop = ServerLoop()
        for byte in Self.conversation.readableBytesView {
            var one = ByteBuffer()
            one.writeInteger(byte)
            try loop.feed(one)
        }
        #expect(loop.messages == whole.messages)
    }

    @Test("an oversized option is skipped as it arrives and answered ERR_TOO_BIG; the next option decodes")
    func oversizedOption() throws {
        var loop = ServerLoop()
        try loop.feed(ClientBytes.flags())
        var header = ByteBuffer()
        header.writeMultipleIntegers(NBDMagic.option, UInt32(NBDOptionCode.info), NBDLimits.maximumOptionLength + 1)
        try loop.feed(header)
        #expect(loop.messages.last == .oversizedOption(code: NBDOptionCode.info, length: NBDLimits.maximumOptionLength + 1))
        var junk = ByteBuffer()
        junk.writeRepeatingByte(7, count: Int(NBDLimits.maximumOptionLength) + 1)
        try loop.feed(junk)
        #expect(loop.pending.capacity <= 2 * Int(NBDLimits.maximumOptionLength) + 64)
        try loop.feed(ClientBytes.option(NBDOptionCode.list))
        let replies = try #require(decodeOptionReplies(loop.replies))
        #expect(replies.map(\.type) == [NBDOptionReplyType.errorTooBig, NBDOptionReplyType.server, NBDOptionReplyType.ack])
    }

    @Test("a 4 GiB option length is skipped, never allocated")
    func hugeOption() throws {
        var loop = ServerLoop()
        try loop.feed(ClientBytes.flags())
        var header = ByteBuffer()
        header.writeMultipleIntegers(NBDMagic.option, UInt32(NBDOptionCode.go), UInt32.max)
        try loop.feed(header)
        #expect(loop.decoder.skipping == UInt64(UInt32.max))
    }

    @Test("an oversized export name closes the connection (NBD_OPT_EXPORT_NAME has no error reply)")
    func oversizedExportName() {
        var loop = ServerLoop()
        var header = ClientBytes.flags()
        header.writeMultipleIntegers(NBDMagic.option, UInt32(NBDOptionCode.exportName), UInt32(1 << 30))
        #expect(throws: NBDProtocolError.self) { try loop.feed(header) }
    }

    @Test("bad magics, unknown client flags and oversized write payloads are protocol errors")
    func protocolErrors() throws {
        var noFixed = ServerLoop()
        #expect(throws: NBDProtocolError.badClientFlags(0)) { try noFixed.feed(ClientBytes.flags(0)) }
        var unknownFlag = ServerLoop()
        #expect(throws: NBDProtocolError.badClientFlags(5)) { try unknownFlag.feed(ClientBytes.flags(5)) }
        var badOption = ServerLoop()
        var bytes = ClientBytes.flags()
        bytes.writeRepeatingByte(0x41, count: 16)
        #expect(throws: NBDProtocolError.self) { try badOption.feed(bytes) }

        var write = ServerLoop()
        try write.feed(ClientBytes.joined([ClientBytes.flags(), ClientBytes.go()]))
        #expect(write.decoder.isTransmitting)
        #expect(throws: NBDProtocolError.self) {
            try write.feed(ClientBytes.request(NBDCommand.write, cookie: 9, length: NBDLimits.maximumPayload + 1))
        }
        var badRequest = ServerLoop()
        try badRequest.feed(ClientBytes.joined([ClientBytes.flags(), ClientBytes.go()]))
        var garbage = ByteBuffer()
        garbage.writeRepeatingByte(0xFF, count: NBDRequest.size)
        #expect(throws: NBDProtocolError.self) { try badRequest.feed(garbage) }
    }

    @Test("requests round-trip through encode and read")
    func requestRoundTrip() throws {
        let request = NBDRequest(
            flags: NBDCommandFlags.requestOne, type: NBDCommand.blockStatus, cookie: 0x0102_0304_0506_0708, offset: 1 << 40, length: 123)
        var buffer = ByteBuffer()
        request.encode(into: &buffer)
        #expect(buffer.readableBytes == NBDRequest.size)
        #expect(try NBDRequest.read(from: &buffer) == request)
        #expect(buffer.readableBytes == 0)
    }
}
