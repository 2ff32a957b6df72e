import Foundation

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

    /// The chunk numbers to send, in order.
    public func chunksToSend() throws -> [UInt64] {
        let size = plan.virtualSize
        guard size > 0 else { return [] }
        let last = (size - 1) / Self.chunkSize
        var chunks: [UInt64] = [0]
        try plan.forEachUnitRun(unitSize: Self.chunkSize) { first, count, roles in
            let send = roles.contains(.data) || (plan.baseDepth != nil && roles.contains(.zero))
            guard send else { return }
            for chunk in first..<(first + count) where chunk != chunks.last { chunks.append(chunk) }
        }
        if chunks.last != last { chunks.append(last) }
        return chunks
    }

    public func export(to output: ExportOutput) throws {
        let stream = GuestStream(plan: plan, reader: reader)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(Self.chunkSize), alignment: 4096)
        defer { buffer.deallocate() }
        for chunk in try chunksToSend() {
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
