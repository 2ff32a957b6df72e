import NIOCore
import Testing

@testable import NBD

/// A negotiation over several exports, as `serve --nbd-socket` offers them.
@Suite struct NBDExportDirectoryTests {
    /// Two exports, and a name that exists but cannot be served (the message reaches the client).
    struct Directory: NBDExportDirectory {
        static let contexts = ["base:allocation", "qemu:allocation-depth"]
        func exportNames() -> [String] { ["a.qcow2", "vm/b.vhd"] }
        func export(named name: String) -> Result<NBDExport, NBDExportUnavailable> {
            switch name {
            case "a.qcow2": return .success(NBDExport(name: name, size: 1 << 20, metaContexts: Self.contexts))
            case "vm/b.vhd": return .success(NBDExport(name: name, size: 3 << 20, metaContexts: Self.contexts))
            case "new.raw": return .failure(NBDExportUnavailable("'new.raw' is not indexed yet: scan it first"))
            default: return .failure(NBDExportUnavailable("no export named '\(name)'"))
            }
        }
    }

    func negotiate(_ parts: [ByteBuffer]) throws -> (ServerLoop, [DecodedOptionReply]) {
        var loop = ServerLoop()
        loop.negotiation = NBDNegotiation(exports: Directory())
        try loop.feed(ClientBytes.joined([ClientBytes.flags()] + parts))
        return (loop, try #require(decodeOptionReplies(loop.replies)))
    }

    @Test("LIST names every export, then ACK")
    func list() throws {
        let (_, answers) = try negotiate([ClientBytes.option(NBDOptionCode.list)])
        #expect(answers.map(\.type) == [NBDOptionReplyType.server, NBDOptionReplyType.server, NBDOptionReplyType.ack])
        // NBD_REP_SERVER: a 32-bit name length, then the name.
        #expect(answers.dropLast().map { String(decoding: $0.data.dropFirst(4), as: UTF8.self) } == ["a.qcow2", "vm/b.vhd"])
    }

    @Test("GO picks the named export (its size); an unavailable one is ERR_UNKNOWN with the directory's reason")
    func goByName() throws {
        let (loop, answers) = try negotiate([ClientBytes.go("new.raw"), ClientBytes.go("vm/b.vhd")])
        #expect(answers.first?.type == NBDOptionReplyType.errorUnknown)
        #expect(String(decoding: answers[0].data, as: UTF8.self) == "'new.raw' is not indexed yet: scan it first")
        #expect(loop.decoder.isTransmitting)
        #expect(loop.negotiation.chosen?.name == "vm/b.vhd")
        var info = ByteBuffer(bytes: answers[1].data)
        let read = info.readMultipleIntegers(as: (UInt16, UInt64, UInt16).self)
        let fields = try #require(read)
        #expect(fields.1 == 3 << 20)
    }

    @Test("EXPORT_NAME of an unknown name closes the connection (the option has no error reply)")
    func exportNameUnknown() throws {
        let (loop, answers) = try negotiate([ClientBytes.option(NBDOptionCode.exportName, ByteBuffer(string: "nope"))])
        #expect(loop.closed && answers.isEmpty && loop.negotiation.chosen == nil)
    }

    @Test("contexts selected for one export do not carry over to GO of another")
    func contextsFollowTheExport() throws {
        let select = [
            ClientBytes.option(NBDOptionCode.structuredReply),
            ClientBytes.meta(NBDOptionCode.setMetaContext, export: "a.qcow2", queries: ["base:allocation"]),
        ]
        let (same, _) = try negotiate(select + [ClientBytes.go("a.qcow2")])
        #expect(same.negotiation.selectedContexts == [1])
        let (other, _) = try negotiate(select + [ClientBytes.go("vm/b.vhd")])
        #expect(other.negotiation.chosen?.name == "vm/b.vhd" && other.negotiation.selectedContexts.isEmpty)
    }
}
