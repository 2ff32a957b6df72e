import NIOCore
import Testing

@testable import NBD

@Suite struct NBDNegotiationTests {
    static let export = NBDExport(name: "disk", size: 1 << 30, metaContexts: ["base:allocation", "qemu:allocation-depth"])

    func replies(_ parts: [ByteBuffer]) throws -> (ServerLoop, [DecodedOptionReply]) {
        var loop = ServerLoop()
        loop.negotiation = NBDNegotiation(export: Self.export)
        try loop.feed(ClientBytes.joined([ClientBytes.flags()] + parts))
        return (loop, try #require(decodeOptionReplies(loop.replies)))
    }

    @Test("the greeting is NBDMAGIC, IHAVEOPT and the fixed-newstyle and no-zeroes flags")
    func greeting() {
        let bytes = Array(NBDNegotiation.greeting().readableBytesView)
        #expect(bytes == Array("NBDMAGICIHAVEOPT".utf8) + [0, 3])
    }

    @Test("NBD_OPT_GO answers INFO_EXPORT (size, read-only, multi-conn), INFO_BLOCK_SIZE, then ACK")
    func go() throws {
        let (loop, answers) = try replies([ClientBytes.go("disk")])
        #expect(loop.decoder.isTransmitting)
        #expect(answers.map(\.type) == [NBDOptionReplyType.info, NBDOptionReplyType.info, NBDOptionReplyType.ack])
        var info = ByteBuffer(bytes: answers[0].data)
        let fields = info.readMultipleIntegers(as: (UInt16, UInt64, UInt16).self)
        let (type, size, flags) = try #require(fields)
        #expect(type == NBDInfoType.export && size == 1 << 30)
        #expect(flags & NBDTransmissionFlags.readOnly != 0 && flags & NBDTransmissionFlags.canMultiConn != 0)
        var block = ByteBuffer(bytes: answers[1].data)
        let read = block.readMultipleIntegers(as: (UInt16, UInt32, UInt32, UInt32).self)
        let sizes = try #require(read)
        #expect(sizes.0 == NBDInfoType.blockSize && sizes.1 == 1 && sizes.2 == 4096 && sizes.3 == 32 << 20)
    }

    @Test("NBD_OPT_INFO answers like GO but stays in negotiation; an unknown name gets ERR_UNKNOWN")
    func info() throws {
        var query = ByteBuffer()
        NBDExportQuery(name: "disk", requests: []).encode(into: &query)
        let (loop, answers) = try replies([ClientBytes.option(NBDOptionCode.info, query), ClientBytes.go("other")])
        #expect(!loop.decoder.isTransmitting)
        #expect(
            answers.map(\.type) == [
                NBDOptionReplyType.info, NBDOptionReplyType.info, NBDOptionReplyType.ack, NBDOptionReplyType.errorUnknown,
            ])
    }

    @Test("a GO whose counts do not add up is ERR_INVALID")
    func invalidGo() throws {
        var data = ByteBuffer()
        data.writeMultipleIntegers(UInt32(4), UInt32(0x6469_736B), UInt16(3), UInt16(0))
        let (_, answers) = try replies([ClientBytes.option(NBDOptionCode.go, data)])
        #expect(answers.map(\.type) == [NBDOptionReplyType.errorInvalid])
        var lying = ByteBuffer()
        lying.writeMultipleIntegers(UInt32.max, UInt16(0))
        let (_, more) = try replies([ClientBytes.option(NBDOptionCode.go, lying)])
        #expect(more.map(\.type) == [NBDOptionReplyType.errorInvalid])
    }

    @Test("LIST names the export; unsupported options (STARTTLS, extended headers, 99) get ERR_UNSUP")
    func listAndUnsupported() throws {
        let (_, answers) = try replies([
            ClientBytes.option(NBDOptionCode.list), ClientBytes.option(NBDOptionCode.startTLS),
            ClientBytes.option(NBDOptionCode.extendedHeaders), ClientBytes.option(99),
        ])
        #expect(
            answers.map(\.type) == [NBDOptionReplyType.server, NBDOptionReplyType.ack]
                + Array(repeating: NBDOptionReplyType.errorUnsupported, count: 3))
        #expect(answers[0].data == [0, 0, 0, 4] + Array("disk".utf8))
    }

    @Test("meta contexts: LIST by namespace with id 0; SET needs structured replies and selects exact names")
    func metaContexts() throws {
        let (_, listed) = try replies([ClientBytes.meta(NBDOptionCode.listMetaContext, export: "disk", queries: ["qemu:"])])
        #expect(listed.map(\.type) == [NBDOptionReplyType.metaContext, NBDOptionReplyType.ack])
        #expect(listed[0].data == [0, 0, 0, 0] + Array("qemu:allocation-depth".utf8))

        let (_, early) = try replies([ClientBytes.meta(NBDOptionCode.setMetaContext, export: "disk", queries: ["base:allocation"])])
        #expect(early.map(\.type) == [NBDOptionReplyType.errorInvalid])

        let (loop, set) = try replies([
            ClientBytes.option(NBDOptionCode.structuredReply),
            ClientBytes.meta(
                NBDOptionCode.setMetaContext, export: "disk", queries: ["qemu:allocation-depth", "nope:x", "base:allocation"]),
        ])
        #expect(
            set.map(\.type) == [
                NBDOptionReplyType.ack, NBDOptionReplyType.metaContext, NBDOptionReplyType.metaContext, NBDOptionReplyType.ack,
            ])
        #expect(loop.negotiation.selectedContexts == [2, 1])

        let (_, wrongExport) = try replies([
            ClientBytes.option(NBDOptionCode.structuredReply), ClientBytes.meta(NBDOptionCode.setMetaContext, export: "x", queries: []),
        ])
        #expect(wrongExport.last?.type == NBDOptionReplyType.errorUnknown)
    }

    @Test("a meta-context query count larger than the data is ERR_INVALID, not an allocation")
    func lyingQueryCount() throws {
        var data = ByteBuffer()
        data.writeMultipleIntegers(UInt32(4), UInt32(0x6469_736B), UInt32.max)
        let (_, answers) = try replies([ClientBytes.option(NBDOptionCode.listMetaContext, data)])
        #expect(answers.map(\.type) == [NBDOptionReplyType.errorInvalid])
    }

    @Test("NBD_OPT_EXPORT_NAME: size, flags and 124 zeroes unless NO_ZEROES; a wrong name closes")
    func exportName() throws {
        var loop = ServerLoop()
        loop.negotiation = NBDNegotiation(export: Self.export)
        try loop.feed(
            ClientBytes.joined([
                ClientBytes.flags(NBDClientFlags.fixedNewstyle), ClientBytes.option(NBDOptionCode.exportName, ByteBuffer(string: "disk")),
            ]))
        #expect(loop.decoder.isTransmitting)
        #expect(loop.replies.readableBytes == 8 + 2 + 124)

        var short = ServerLoop()
        short.negotiation = NBDNegotiation(export: Self.export)
        try short.feed(ClientBytes.joined([ClientBytes.flags(), ClientBytes.option(NBDOptionCode.exportName, ByteBuffer(string: "disk"))]))
        #expect(short.replies.readableBytes == 10)

        var wrong = ServerLoop()
        wrong.negotiation = NBDNegotiation(export: Self.export)
        try wrong.feed(ClientBytes.joined([ClientBytes.flags(), ClientBytes.option(NBDOptionCode.exportName, ByteBuffer(string: "x"))]))
        #expect(wrong.closed && wrong.replies.readableBytes == 0)
    }

    @Test("ABORT is acknowledged and closes")
    func abort() throws {
        let (loop, answers) = try replies([ClientBytes.option(NBDOptionCode.abort), ClientBytes.option(NBDOptionCode.list)])
        #expect(loop.closed)
        #expect(answers.map(\.type) == [NBDOptionReplyType.ack])
    }
}
