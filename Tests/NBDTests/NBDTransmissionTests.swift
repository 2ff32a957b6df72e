import NIOCore
import Testing

@testable import NBD

@Suite struct NBDTransmissionTests {
    static let export = NBDExport(name: "", size: 10_000, metaContexts: ["base:allocation"])

    func action(_ type: UInt16, offset: UInt64 = 0, length: UInt32 = 512, flags: UInt16 = 0, contexts: Bool = true) -> NBDAction {
        NBDTransmission.action(
            for: NBDRequest(flags: flags, type: type, cookie: 1, offset: offset, length: length), export: Self.export, hasContexts: contexts
        )
    }

    func isFailure(_ action: NBDAction, _ error: NBDError) -> Bool {
        if case .fail(let got, _) = action { return got == error }
        return false
    }

    @Test("reads inside the export are served; empty, past-the-end, overflowing and over-32-MiB reads are EINVAL")
    func reads() {
        #expect(action(NBDCommand.read, offset: 9_488, length: 512) == .read(offset: 9_488, length: 512))
        #expect(isFailure(action(NBDCommand.read, offset: 9_489, length: 512), .invalid))
        #expect(isFailure(action(NBDCommand.read, length: 0), .invalid))
        #expect(isFailure(action(NBDCommand.read, offset: UInt64.max - 10, length: 512), .invalid))
        let big = NBDExport(name: "", size: 1 << 40, metaContexts: [])
        let over = NBDTransmission.action(
            for: NBDRequest(type: NBDCommand.read, cookie: 1, offset: 0, length: NBDLimits.maximumPayload + 1), export: big,
            hasContexts: false)
        #expect(isFailure(over, .invalid))
    }

    @Test("writes, trims and write-zeroes are EPERM; unknown commands EINVAL; DISC disconnects; FLUSH succeeds")
    func others() {
        #expect(isFailure(action(NBDCommand.write), .perm))
        #expect(isFailure(action(NBDCommand.trim), .perm))
        #expect(isFailure(action(NBDCommand.writeZeroes), .perm))
        #expect(isFailure(action(NBDCommand.cache), .invalid))
        #expect(isFailure(action(42), .invalid))
        #expect(action(NBDCommand.disconnect) == .disconnect)
        #expect(action(NBDCommand.flush) == .succeed)
    }

    @Test("block status needs a context and a range inside the export; REQ_ONE is passed on")
    func blockStatus() {
        #expect(isFailure(action(NBDCommand.blockStatus, contexts: false), .invalid))
        #expect(
            action(NBDCommand.blockStatus, length: 10_000, flags: NBDCommandFlags.requestOne)
                == .blockStatus(offset: 0, length: 10_000, requestOne: true))
        #expect(isFailure(action(NBDCommand.blockStatus, offset: 10_000, length: 1), .invalid))
    }

    @Test("descriptors merge equal neighbours, stop at the limit, and split past 32 bits")
    func descriptors() {
        var builder = NBDDescriptorBuilder(limit: 2)
        let added1 = builder.add(length: 100, flags: 3)
        #expect(added1)
        let added2 = builder.add(length: 50, flags: 3)
        #expect(added2)
        let added3 = builder.add(length: 10, flags: 0)
        #expect(added3)
        let added4 = builder.add(length: 10, flags: 3)
        #expect(!added4)
        #expect(builder.descriptors == [NBDBlockDescriptor(length: 150, flags: 3), NBDBlockDescriptor(length: 10, flags: 0)])
        #expect(builder.covered == 160)

        var one = NBDDescriptorBuilder(limit: 1)
        let added5 = one.add(length: 1 << 33, flags: 0)
        #expect(added5 == false)
        #expect(one.descriptors == [NBDBlockDescriptor(length: UInt32.max, flags: 0)])

        var wide = NBDDescriptorBuilder(limit: 4)
        let added6 = wide.add(length: 1 << 33, flags: 1)
        #expect(added6)
        #expect(wide.descriptors.count == 3 && wide.covered == 1 << 33)
    }

    @Test("structured chunks: a hole, data header and error are laid out as the specification says")
    func chunks() {
        var hole = ByteBuffer()
        NBDStructuredReply.encodeHole(cookie: 7, offset: 4096, length: 512, done: true, into: &hole)
        #expect(hole.readableBytes == 20 + 12)
        #expect(hole.getInteger(at: 0, as: UInt32.self) == NBDMagic.structuredReply)
        #expect(hole.getInteger(at: 4, as: UInt16.self) == NBDReplyFlags.done)
        #expect(hole.getInteger(at: 6, as: UInt16.self) == NBDReplyType.offsetHole)
        #expect(hole.getInteger(at: 8, as: UInt64.self) == 7)
        #expect(hole.getInteger(at: 16, as: UInt32.self) == 12)
        #expect(hole.getInteger(at: 20, as: UInt64.self) == 4096)
        #expect(hole.getInteger(at: 28, as: UInt32.self) == 512)

        var error = ByteBuffer()
        NBDStructuredReply.encodeError(cookie: 7, error: .io, message: String(repeating: "x", count: 10_000), into: &error)
        #expect(error.getInteger(at: 6, as: UInt16.self) == NBDReplyType.error)
        #expect(error.getInteger(at: 20, as: UInt32.self) == 5)
        #expect(error.getInteger(at: 24, as: UInt16.self) == 4096)
        #expect(error.readableBytes == 20 + 6 + 4096)

        var simple = ByteBuffer()
        NBDSimpleReply.encodeHeader(cookie: 9, error: .perm, into: &simple)
        #expect(Array(simple.readableBytesView) == [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9])
    }
}
