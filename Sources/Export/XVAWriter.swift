import Foundation
import ImageFormats

/// Writes the disk part of xapi's XVA stream (what `stream_vdi` writes and `vm-import` reads): a tar of
/// 1 MiB chunks named `PREFIX/NNNNNNNN` (8-digit chunk number), each followed by `PREFIX/NNNNNNNN.xxhash`
/// holding the chunk's XXH64 as 16 uppercase hex digits. Chunks without data are left out, except the
/// first and the last, which are always sent (a limitation of the XVA format). With a base, only chunks
/// holding changed ranges are sent. The stream ends with the two zero blocks that close a tar archive
/// (`--no-tar-end` leaves them out, for splicing into a larger XVA).
public struct XVAWriter {
    public static let chunkSize: UInt64 = 1 << 20

    public let plan: ExportPlan
    public let reader: GuestReader
    public let prefix: String
    public let closeArchive: Bool

    public init(plan: ExportPlan, reader: GuestReader, prefix: String = "Ref:0", closeArchive: Bool = true) {
        self.plan = plan
        self.reader = reader
        self.prefix = prefix
        self.closeArchive = closeArchive
    }

    /// Calls `body` with each chunk number to send, in order, streaming the plan (no list of chunks is
    /// kept, whatever the disk size).
    public func forEachChunkToSend(_ body: (UInt64) throws -> Void) throws {
        let size = plan.virtualSize
        guard size > 0 else { return }
        let last = (size - 1) / Self.chunkSize
        try plan.forEachUnitRun(unitSize: Self.chunkSize) { first, count, roles in
            let send = roles.contains(.data) || (plan.baseDepth != nil && roles.contains(.zero))
            if send {
                for chunk in first..<(first + count) { try body(chunk) }
            } else {
                if first == 0 { try body(0) }
                if last != 0 && first <= last && last < first + count { try body(last) }
            }
        }
    }

    /// The bytes the stream holds: per chunk sent, a tar header, the chunk padded to 512, a header and the
    /// 16-digit hash padded to 512; then the two end-of-archive blocks.
    public func bytesSent() throws -> UInt64 {
        let block = UInt64(TarHeader.blockSize)
        var total: UInt64 = closeArchive ? 2 * block : 0
        try forEachChunkToSend { chunk in
            let length = min(Self.chunkSize, plan.virtualSize - chunk * Self.chunkSize)
            total += block + length + UInt64(TarHeader.padding(after: length)) + block + 16 + UInt64(TarHeader.padding(after: 16))
        }
        return total
    }

    public func export(to output: ExportOutput) throws {
        if output.wantsTotal { output.announce(total: try bytesSent()) }
        let stream = GuestStream(plan: plan, reader: reader)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(Self.chunkSize), alignment: 4096)
        defer { buffer.deallocate() }
        try forEachChunkToSend { chunk in
            let start = chunk * Self.chunkSize
            let length = Int(min(Self.chunkSize, plan.virtualSize - start))
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            try stream.fill(from: start, into: data)
            let name = prefix + "/" + String(format: "%08llu", chunk)
            try output.write(try TarHeader.file(name: name, size: UInt64(length)))
            try output.write(UnsafeRawBufferPointer(data))
            try output.writeZeros(UInt64(TarHeader.padding(after: UInt64(length))))
            let digest = Array(String(format: "%016llX", XXH64.hash(UnsafeRawBufferPointer(data))).utf8)
            try output.write(try TarHeader.file(name: name + ".xxhash", size: UInt64(digest.count)))
            try output.write(digest)
            try output.writeZeros(UInt64(TarHeader.padding(after: UInt64(digest.count))))
        }
        if closeArchive { try output.writeZeros(UInt64(2 * TarHeader.blockSize)) }
    }
}
