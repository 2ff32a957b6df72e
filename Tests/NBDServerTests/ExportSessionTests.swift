import AllocationIndex
import Export
import NBD
import NIOCore
import Scanner
import Testing

@testable import NBDServer
@testable import TestSupport

/// Replies of an `ExportSession` for qemu-made fixtures, without sockets.
@Suite struct ExportSessionTests {
    static func session(_ fixture: String, structured: Bool, contexts: [String] = []) throws -> (ExportSession, ExportPlan) {
        let path = try Fixtures.directory().appendingPathComponent(fixture).path
        let store = try IndexStore()
        let options = ScanOptions(allowsOutsideBacking: false, trustedRoots: [try Fixtures.directory().path], pinnedFormat: nil)
        let indexed = try ImageIndexer(store: store, options: options).ensureIndexed(path: path).indexed
        let export = try ImageExport(store: store, indexed: indexed)
        var negotiation = NBDNegotiation(export: export.advertised)
        var bytes = ByteBuffer()
        bytes.writeInteger(NBDClientFlags.fixedNewstyle)
        if structured { NBDOption(code: NBDOptionCode.structuredReply, data: ByteBuffer()).encode(into: &bytes) }
        if structured && !contexts.isEmpty {
            var data = ByteBuffer()
            NBDMetaContextQuery(exportName: "", queries: contexts).encode(into: &data)
            NBDOption(code: NBDOptionCode.setMetaContext, data: data).encode(into: &bytes)
        }
        var decoder = NBDServerDecoder()
        while let message = try decoder.next(from: &bytes) { _ = negotiation.handle(message) }
        return (ExportSession(export: export, negotiation: negotiation, staleReason: nil), export.plan)
    }

    /// The guest bytes of `range` as the export's own stream gives them.
    static func guest(_ plan: ExportPlan, _ range: Range<UInt64>) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xEE, count: Int(range.count))
        let stream = GuestStream(plan: plan, reader: GuestReader(plan: plan), from: range.lowerBound)
        try bytes.withUnsafeMutableBytes { try stream.fill(from: range.lowerBound, into: $0) }
        return bytes
    }

    /// Reassembles a structured read reply: (data bytes with holes as zeros, hole chunk count).
    static func structuredRead(_ reply: ByteBuffer, range: Range<UInt64>) throws -> (bytes: [UInt8], holes: Int) {
        var reply = reply
        var bytes = [UInt8](repeating: 0xEE, count: Int(range.count))
        var holes = 0
        while true {
            let header = reply.readMultipleIntegers(as: (UInt32, UInt16, UInt16, UInt64, UInt32).self)
            let (magic, flags, type, _, length) = try #require(header)
            #expect(magic == NBDMagic.structuredReply)
            let slice = reply.readSlice(length: Int(length))
            var payload = try #require(slice)
            let start = payload.readInteger(as: UInt64.self)
            let offset = try #require(start)
            let at = Int(offset - range.lowerBound)
            if type == NBDReplyType.offsetData {
                let data = payload.readBytes(length: payload.readableBytes) ?? []
                bytes.replaceSubrange(at..<(at + data.count), with: data)
            } else {
                #expect(type == NBDReplyType.offsetHole)
                let hole = payload.readInteger(as: UInt32.self)
                let size = Int(try #require(hole))
                bytes.replaceSubrange(at..<(at + size), with: repeatElement(0, count: size))
                holes += 1
            }
            if flags & NBDReplyFlags.done != 0 { break }
        }
        #expect(reply.readableBytes == 0)
        return (bytes, holes)
    }

    @Test("structured reads of a chain equal the guest stream, with zero ranges as holes, in any order")
    func structuredReads() throws {
        let (session, plan) = try Self.session("chain-top.qcow2", structured: true)
        let ranges: [Range<UInt64>] = [0..<(4 << 20), (12 << 20)..<(16 << 20), 1_000_000..<1_300_001, 4_200_000..<4_200_512, 0..<65536]
        var sawHole = false
        for (index, range) in ranges.enumerated() {
            let request = NBDRequest(type: NBDCommand.read, cookie: UInt64(index), offset: range.lowerBound, length: UInt32(range.count))
            let reply = try #require(session.reply(to: request))
            let (bytes, holes) = try Self.structuredRead(reply, range: range)
            #expect(bytes == (try Self.guest(plan, range)), "\(range)")
            sawHole = sawHole || holes > 0
        }
        #expect(sawHole)
    }

    @Test("simple reads carry every byte after a 16-byte header")
    func simpleReads() throws {
        let (session, plan) = try Self.session("compressed-zlib.qcow2", structured: false)
        let range: Range<UInt64> = 100_000..<(100_000 + 3 << 20)
        var reply = try #require(
            session.reply(to: NBDRequest(type: NBDCommand.read, cookie: 9, offset: range.lowerBound, length: UInt32(range.count))))
        let header = reply.readMultipleIntegers(as: (UInt32, UInt32, UInt64).self)
        let (magic, error, cookie) = try #require(header)
        #expect(magic == NBDMagic.simpleReply && error == 0 && cookie == 9)
        #expect(reply.readBytes(length: reply.readableBytes) == (try Self.guest(plan, range)))
    }

    @Test("block status: one descriptor with REQ_ONE, within the request; both contexts in one reply")
    func blockStatus() throws {
        let (session, _) = try Self.session("chain-top.qcow2", structured: true, contexts: ["base:allocation", "qemu:allocation-depth"])
        var one = try #require(
            session.reply(
                to: NBDRequest(flags: NBDCommandFlags.requestOne, type: NBDCommand.blockStatus, cookie: 1, offset: 0, length: 16 << 20)))
        for expectedID: UInt32 in [1, 2] {
            let header = one.readMultipleIntegers(as: (UInt32, UInt16, UInt16, UInt64, UInt32).self)
            let (_, flags, type, _, length) = try #require(header)
            #expect(type == NBDReplyType.blockStatus && length == 12)
            #expect((flags & NBDReplyFlags.done != 0) == (expectedID == 2))
            let body = one.readMultipleIntegers(as: (UInt32, UInt32, UInt32).self)
            let (id, extentLength, _) = try #require(body)
            #expect(id == expectedID && extentLength > 0 && extentLength <= 16 << 20)
        }
        let (plain, _) = try Self.session("chain-top.qcow2", structured: false)
        var refused = try #require(plain.reply(to: NBDRequest(type: NBDCommand.blockStatus, cookie: 2, offset: 0, length: 4096)))
        let refusal = refused.readMultipleIntegers(as: (UInt32, UInt32).self)
        #expect(refusal?.1 == NBDError.invalid.rawValue)
    }

    @Test("a session opened on a changed image answers reads with EIO")
    func stale() throws {
        let (fresh, _) = try Self.session("sparse.raw", structured: true, contexts: ["base:allocation"])
        let session = ExportSession(
            export: fresh.export,
            negotiation: {
                var negotiation = NBDNegotiation(export: fresh.export.advertised)
                _ = negotiation.handle(.option(NBDOption(code: NBDOptionCode.structuredReply, data: ByteBuffer())))
                return negotiation
            }(), staleReason: "changed")
        let reply = try #require(session.reply(to: NBDRequest(type: NBDCommand.read, cookie: 1, offset: 0, length: 512)))
        #expect(reply.getInteger(at: 6, as: UInt16.self) == NBDReplyType.error)
        #expect(reply.getInteger(at: 20, as: UInt32.self) == NBDError.io.rawValue)
    }
}
