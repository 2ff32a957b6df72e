import AllocationIndex
import Export
import ImageFormats
import NBD
import NIOCore

/// One connection's view of an ``ImageExport`` in the transmission phase: turns each request into the
/// bytes of its reply. Reads go through the connection's own `GuestReader` (data extents only; zero and
/// unallocated ranges are never read); block status comes from the index alone.
///
/// Not thread-safe: a connection handles its requests one at a time, each awaited before the next, on
/// NIO's blocking-I/O thread pool (so `pread` and SQLite never block Swift's cooperative threads). That
/// one-at-a-time use is why it may be sent across threads.
final class ExportSession: @unchecked Sendable {
    let export: ImageExport
    let structuredReplies: Bool
    /// Selected metadata contexts, as (id, context), in the order they were selected.
    let contexts: [(id: UInt32, context: MetaContext)]
    /// Why reads fail with EIO: the image changed after it was indexed (checked at connect).
    let staleReason: String?
    /// Most descriptors per context in one block status reply (qemu's bound: 1 MiB of descriptors).
    static let maximumDescriptors = 131_072

    private let reader: GuestReader
    private let readWindow: ExtentWindow
    private let statusWindow: ExtentWindow

    let observer: (any NBDServerObserver)?

    init(export: ImageExport, negotiation: NBDNegotiation, staleReason: String?, observer: (any NBDServerObserver)? = nil) {
        self.observer = observer
        self.export = export
        structuredReplies = negotiation.structuredReplies
        contexts = negotiation.selectedContexts.compactMap { id in
            export.advertised.contextName(id: id).flatMap(MetaContext.init(name:)).map { (id, $0) }
        }
        self.staleReason = staleReason
        reader = GuestReader(plan: export.plan)
        readWindow = ExtentWindow(plan: export.plan)
        statusWindow = ExtentWindow(plan: export.plan)
    }

    /// True when the reply to `request` reads neither a file nor the index: block status over bitmap
    /// contexts only, answered from the ranges in memory. The connection then answers it where it is,
    /// without a hop to the blocking-I/O pool (a client mapping a bitmap sends hundreds of these).
    func answersFromMemory(_ request: NBDRequest) -> Bool {
        guard request.type == NBDCommand.blockStatus, staleReason == nil, !contexts.isEmpty else { return false }
        return contexts.allSatisfy { entry in
            if case .dirtyBitmap = entry.context { return true }
            return false
        }
    }

    /// The reply to `request` (nil for `NBD_CMD_DISC`, which has none).
    func reply(to request: NBDRequest) -> ByteBuffer? {
        let cookie = request.cookie
        switch NBDTransmission.action(for: request, export: export.advertised, hasContexts: !contexts.isEmpty) {
        case .disconnect:
            return nil
        case .succeed:
            var buffer = ByteBuffer()
            if structuredReplies {
                NBDStructuredReply.encodeDone(cookie: cookie, into: &buffer)
            } else {
                NBDSimpleReply.encodeHeader(cookie: cookie, error: nil, into: &buffer)
            }
            return buffer
        case let .fail(error, message):
            return failure(cookie: cookie, error: error, message: message)
        case let .read(offset, length):
            if let staleReason { return failure(cookie: cookie, error: .io, message: staleReason) }
            do {
                let reply = try read(cookie: cookie, range: offset..<(offset + UInt64(length)))
                observer?.read(bytes: Int(length))
                return reply
            } catch {
                return failure(cookie: cookie, error: .io, message: "\(error)")
            }
        case let .blockStatus(offset, length, requestOne):
            if let staleReason { return failure(cookie: cookie, error: .io, message: staleReason) }
            do {
                let reply = try blockStatus(cookie: cookie, range: offset..<(offset + UInt64(length)), requestOne: requestOne)
                observer?.blockStatusAnswered()
                return reply
            } catch {
                return failure(cookie: cookie, error: .io, message: "\(error)")
            }
        }
    }

    private func failure(cookie: UInt64, error: NBDError, message: String) -> ByteBuffer {
        observer?.requestFailed()
        var buffer = ByteBuffer()
        if structuredReplies {
            NBDStructuredReply.encodeError(cookie: cookie, error: error, message: message, into: &buffer)
        } else {
            NBDSimpleReply.encodeHeader(cookie: cookie, error: error, into: &buffer)
        }
        return buffer
    }

    /// A run of the read range: stored data (read from the chain's files) or zeros (never read).
    private struct Run {
        var range: Range<UInt64>
        var pieces: [(extent: Extent, range: Range<UInt64>)]
        var isData: Bool { !pieces.isEmpty }
    }

    /// Splits `range` into data and zero runs, merging neighbours of the same kind.
    private func runs(of range: Range<UInt64>) throws -> [Run] {
        var runs: [Run] = []
        try readWindow.visit(range) { extent, piece in
            let data = extent.map(\.storesData) ?? false
            if let last = runs.last, last.isData == data, last.range.upperBound == piece.lowerBound {
                runs[runs.count - 1].range = last.range.lowerBound..<piece.upperBound
                if data, let extent { runs[runs.count - 1].pieces.append((extent, piece)) }
            } else {
                runs.append(Run(range: piece, pieces: data ? extent.map { [($0, piece)] } ?? [] : []))
            }
            return true
        }
        return runs
    }

    /// Reads `range`: with structured replies, `OFFSET_DATA` chunks for data runs and `OFFSET_HOLE` chunks
    /// for zero runs; otherwise a simple reply with every byte. The files are checked to be unchanged
    /// after reading and before anything is sent, so a reply never mixes old and new data.
    private func read(cookie: UInt64, range: Range<UInt64>) throws -> ByteBuffer {
        let runs = try runs(of: range)
        let total = Int(range.count)
        var buffer = ByteBuffer()
        if structuredReplies {
            let dataBytes = runs.reduce(0) { $0 + ($1.isData ? Int($1.range.count) : 0) }
            buffer.reserveCapacity(dataBytes + runs.count * 32)
            for (index, run) in runs.enumerated() {
                let done = index == runs.count - 1
                if run.isData {
                    NBDStructuredReply.encodeDataHeader(
                        cookie: cookie, offset: run.range.lowerBound, dataLength: UInt32(run.range.count), done: done, into: &buffer)
                    try readPieces(run.pieces, into: &buffer)
                } else {
                    NBDStructuredReply.encodeHole(
                        cookie: cookie, offset: run.range.lowerBound, length: UInt32(run.range.count), done: done, into: &buffer)
                }
            }
        } else {
            buffer.reserveCapacity(NBDSimpleReply.headerSize + total)
            NBDSimpleReply.encodeHeader(cookie: cookie, error: nil, into: &buffer)
            for run in runs {
                if run.isData {
                    try readPieces(run.pieces, into: &buffer)
                } else {
                    buffer.writeRepeatingByte(0, count: Int(run.range.count))
                }
            }
        }
        try reader.verifyUnchanged()
        return buffer
    }

    private func readPieces(_ pieces: [(extent: Extent, range: Range<UInt64>)], into buffer: inout ByteBuffer) throws {
        for (extent, piece) in pieces {
            let count = Int(piece.count)
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { target in
                try reader.read(extent, guestStart: piece.lowerBound, into: UnsafeMutableRawBufferPointer(rebasing: target[0..<count]))
                return count
            }
        }
    }

    /// One `BLOCK_STATUS` chunk per selected context, from the index alone; the last carries `DONE`.
    /// Extent contexts follow the extents; a bitmap context follows its dirty ranges.
    private func blockStatus(cookie: UInt64, range: Range<UInt64>, requestOne: Bool) throws -> ByteBuffer {
        let limit = requestOne ? 1 : Self.maximumDescriptors
        var builders = contexts.map { _ in NBDDescriptorBuilder(limit: limit) }
        var open = contexts.map { entry in
            if case .dirtyBitmap = entry.context { return false }
            return true
        }
        if open.contains(true) {
            try statusWindow.visit(range) { extent, piece in
                for index in builders.indices where open[index] {
                    open[index] = builders[index].add(length: UInt64(piece.count), flags: contexts[index].context.flags(of: extent))
                }
                return open.contains(true)
            }
        }
        for (index, entry) in contexts.enumerated() {
            guard case .dirtyBitmap(let name) = entry.context else { continue }
            Self.describe(range, by: export.bitmaps[name] ?? RangeSet([]), into: &builders[index])
        }
        var buffer = ByteBuffer()
        for (index, builder) in builders.enumerated() {
            NBDStructuredReply.encodeBlockStatus(
                cookie: cookie, contextID: contexts[index].id, descriptors: builder.descriptors, done: index == builders.count - 1,
                into: &buffer)
        }
        return buffer
    }

    /// Descriptors for `range` from a bitmap's dirty ranges: bit 0 where dirty. One binary search finds
    /// the first range, then the ranges are walked in order (a map of a 1 TiB bitmap asks this hundreds
    /// of times, each over tens of thousands of ranges).
    static func describe(_ range: Range<UInt64>, by dirty: RangeSet, into builder: inout NBDDescriptorBuilder) {
        let ranges = dirty.ranges
        var index = dirty.firstIndex(endingAfter: range.lowerBound)
        var position = range.lowerBound
        while position < range.upperBound {
            let next: UInt64
            let flags: UInt32
            if index < ranges.count, ranges[index].lowerBound <= position {
                next = min(ranges[index].upperBound, range.upperBound)
                flags = MetaContext.stateDirty
                index += 1
            } else {
                next = index < ranges.count ? min(ranges[index].lowerBound, range.upperBound) : range.upperBound
                flags = 0
            }
            guard builder.add(length: next - position, flags: flags) else { return }
            position = next
        }
    }
}
