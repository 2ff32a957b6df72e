import AllocationIndex
import Export
import NBD
import NIOCore
import NIOEmbedded
import Scanner
import Testing

@testable import NBDServer
@testable import TestSupport

/// The event-loop fast path for bitmap block status: what it answers, what it passes on byte for byte, and
/// that replies stay in request order.
@Suite struct BlockStatusFastPathTests {
    /// Collects the bytes passed on to the async loop.
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var bytes = ByteBuffer()
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            bytes.writeBuffer(&buffer)
        }
    }

    /// A session on a fixture with a made-up bitmap `b0` (dirty 1 MiB at 2 MiB), selected as the only context.
    static func session() throws -> (ExportSession, NBDNegotiation) {
        let path = try Fixtures.directory().appendingPathComponent("chain-top.qcow2").path
        let store = try IndexStore()
        let options = ScanOptions(allowsOutsideBacking: false, trustedRoots: [try Fixtures.directory().path], pinnedFormat: nil)
        let indexed = try ImageIndexer(store: store, options: options).ensureIndexed(path: path).indexed
        let bitmap = DirtyBitmap(name: "b0", granularity: 65536, inUse: false, auto: true, ranges: [(2 << 20)..<(3 << 20)])
        let export = try ImageExport(store: store, indexed: indexed, bitmaps: [bitmap])
        var negotiation = NBDNegotiation(export: export.advertised)
        var bytes = ByteBuffer()
        bytes.writeInteger(NBDClientFlags.fixedNewstyle)
        NBDOption(code: NBDOptionCode.structuredReply, data: ByteBuffer()).encode(into: &bytes)
        var data = ByteBuffer()
        NBDMetaContextQuery(exportName: "", queries: ["qemu:dirty-bitmap:b0"]).encode(into: &data)
        NBDOption(code: NBDOptionCode.setMetaContext, data: data).encode(into: &bytes)
        var decoder = NBDServerDecoder()
        while let message = try decoder.next(from: &bytes) { _ = negotiation.handle(message) }
        return (ExportSession(export: export, negotiation: negotiation, staleReason: nil), negotiation)
    }

    static func request(_ type: UInt16, cookie: UInt64, offset: UInt64 = 0, length: UInt32 = 4 << 20) -> ByteBuffer {
        var buffer = ByteBuffer()
        NBDRequest(type: type, cookie: cookie, offset: offset, length: length).encode(into: &buffer)
        return buffer
    }

    @Test("options pass on; bytes after GO wait for its outcome; in-memory requests are answered only with nothing outstanding")
    func framing() throws {
        let (session, _) = try Self.session()
        let fastPath = BlockStatusFastPath()
        let collector = Collector()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([fastPath, collector])

        // Haggling, then GO, then a block-status request sent early (pipelined): all in one read.
        var inbound = ByteBuffer()
        inbound.writeInteger(NBDClientFlags.fixedNewstyle)
        NBDOption(code: NBDOptionCode.structuredReply, data: ByteBuffer()).encode(into: &inbound)
        var go = ByteBuffer()
        NBDExportQuery(name: "", requests: []).encode(into: &go)
        NBDOption(code: NBDOptionCode.go, data: go).encode(into: &inbound)
        let negotiationBytes = inbound.readableBytes
        var early = Self.request(NBDCommand.blockStatus, cookie: 1)
        inbound.writeBuffer(&early)
        try channel.writeInbound(inbound)
        #expect(collector.bytes.readableBytes == negotiationBytes, "options pass on; the request waits for GO's outcome")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)

        // GO succeeded: the held request is answered here, from the bitmap.
        fastPath.transmissionBegan(session)
        let first = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(first.getInteger(at: 0, as: UInt32.self) == NBDMagic.structuredReply)
        #expect(first.getInteger(at: 8, as: UInt64.self) == 1, "the reply carries the request's cookie")
        #expect(collector.bytes.readableBytes == negotiationBytes)

        // A read is passed on; a block status behind it waits its turn (passed on too), keeping the order.
        try channel.writeInbound(Self.request(NBDCommand.read, cookie: 2, length: 4096))
        try channel.writeInbound(Self.request(NBDCommand.blockStatus, cookie: 3))
        #expect(collector.bytes.readableBytes == negotiationBytes + 2 * NBDRequest.size)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        // The async loop answers both (two writes); after them, block status is answered here again.
        try channel.writeOutbound(ByteBuffer(string: "reply 2"))
        try channel.writeOutbound(ByteBuffer(string: "reply 3"))
        _ = try channel.readOutbound(as: ByteBuffer.self)
        _ = try channel.readOutbound(as: ByteBuffer.self)
        try channel.writeInbound(Self.request(NBDCommand.blockStatus, cookie: 4))
        let fourth = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(fourth.getInteger(at: 8, as: UInt64.self) == 4)
        #expect(collector.bytes.readableBytes == negotiationBytes + 2 * NBDRequest.size)

        // A client that does not read its replies (the socket is not writable) is not answered here: the
        // request goes to the async loop, whose writes wait for the socket.
        channel.isWritable = false
        try channel.writeInbound(Self.request(NBDCommand.blockStatus, cookie: 6))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(collector.bytes.readableBytes == negotiationBytes + 3 * NBDRequest.size)
        try channel.writeOutbound(ByteBuffer(string: "reply 6"))
        _ = try channel.readOutbound(as: ByteBuffer.self)
        channel.isWritable = true

        // A write with its payload, split across reads, passes on byte for byte.
        var write = Self.request(NBDCommand.write, cookie: 5, length: 6)
        write.writeString("abc")
        try channel.writeInbound(write)
        try channel.writeInbound(ByteBuffer(string: "def"))
        var passed = collector.bytes
        passed.moveReaderIndex(forwardBy: negotiationBytes + 3 * NBDRequest.size)
        #expect(passed.readableBytes == NBDRequest.size + 6)
        #expect(passed.getString(at: passed.readerIndex + NBDRequest.size, length: 6) == "abcdef")
        _ = try channel.finish()
    }

    @Test("a GO that fails lets haggling go on; a refused connection passes everything on unframed")
    func outcomes() throws {
        let fastPath = BlockStatusFastPath()
        let collector = Collector()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([fastPath, collector])
        var inbound = ByteBuffer()
        inbound.writeInteger(NBDClientFlags.fixedNewstyle)
        var go = ByteBuffer()
        NBDExportQuery(name: "nope", requests: []).encode(into: &go)
        NBDOption(code: NBDOptionCode.go, data: go).encode(into: &inbound)
        let first = inbound.readableBytes
        NBDOption(code: NBDOptionCode.abort, data: ByteBuffer()).encode(into: &inbound)
        try channel.writeInbound(inbound)
        #expect(collector.bytes.readableBytes == first)
        fastPath.negotiationContinues()
        #expect(collector.bytes.readableBytes == first + 16, "the option after the failed GO passes on")
        fastPath.passEverythingOn()
        try channel.writeInbound(ByteBuffer(string: "not even NBD"))
        #expect(collector.bytes.readableBytes == first + 16 + 12)
        _ = try channel.finish()
    }
}
