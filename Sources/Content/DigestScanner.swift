import AllocationIndex
import Crypto
import Export
import Foundation
import ImageFormats
import Scanner

/// Computes the SHA-256 of every chunk of a scan's guest view (`scan --digests`), reading only what it must.
///
/// - A chunk with no stored data (unallocated, zero clusters, stored zeros) gets the digest of zeros
///   without being read.
/// - A chunk whose fingerprint (its extents, and the identity of each layer file they come from) equals
///   the one an earlier digest scan of the image recorded keeps that scan's digest unread: in a chain where
///   only the top layer changed, only chunks the top layer supplies are read again.
/// - Every other chunk is read through the export reader, in bounded memory (one chunk), and each 4 KiB
///   block of stored data in it that holds only zero bytes is recorded as a zero range.
///
/// The digests equal those a Proxmox Backup Server client computes for the same disk (fixed 4 MiB chunks,
/// SHA-256 of the chunk's bytes; the last chunk short).
public struct DigestScanner {
    public let store: any IndexStoring
    public var chunkSize: UInt64 = ScanDigests.standardChunkSize
    /// Called after each chunk with (bytes of the disk done, virtual size).
    public var progress: ((UInt64, UInt64) -> Void)?
    /// Cancellation and the time limit of the scan job this digest scan belongs to (checked per chunk).
    public var stop: ScanProgress?
    /// Read files whose identity changed since the scan (`verify`: their content is what is checked).
    public var readsChangedFiles = false

    public init(store: any IndexStoring) {
        self.store = store
    }

    /// The digests of `indexed`.
    /// - Parameter previous: an earlier digest scan of the same image to keep unchanged chunks from; nil
    ///   reads every chunk that holds data (`verify`).
    public func digest(_ indexed: IndexedScan, keepingFrom previous: ScanDigests?) throws -> ScanDigests {
        guard let scanID = indexed.scan.id else { throw ExportError.plan("the scan of \(indexed.image.path) has no id") }
        // Every stored byte is read: zeros an earlier digest scan found are found again, or not.
        let plan = try ExportPlan(store: store, indexed: indexed, basePath: nil, usingFoundZeros: false)
        let size = plan.virtualSize
        let chunks = (size + chunkSize - 1) / chunkSize
        guard chunks <= UInt64(Limits.Digests.maximumChunks) else {
            throw ExportError.plan(
                "\(indexed.image.path): a \(size)-byte disk has \(chunks) chunks of \(chunkSize) bytes, over the \(Limits.Digests.maximumChunks) "
                    + "a digest scan covers (\(UInt64(Limits.Digests.maximumChunks) * chunkSize) bytes)")
        }
        let count = Int(chunks)
        let layerIdentities = indexed.layers.map(Self.identity(of:))
        let kept = previous.flatMap { $0.chunkSize == chunkSize ? $0 : nil }
        var digests = [UInt8]()
        digests.reserveCapacity(count * 32)
        var sources = [UInt64]()
        sources.reserveCapacity(count)
        var zeros = ZeroRanges()
        var ownZeroBytes: UInt64 = 0
        var bytesRead: UInt64 = 0
        var chunksRead = 0
        var zeroDigests: [UInt64: [UInt8]] = [:]
        let cursor = plan.cursor(from: 0, to: size)
        let reader = GuestReader(plan: plan)
        reader.checksIdentity = !readsChangedFiles
        let stream = GuestStream(plan: plan, reader: reader, from: 0)
        var carried: Extent?
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(min(chunkSize, max(size, 1))), alignment: 4096)
        defer { buffer.deallocate() }
        for index in 0..<count {
            try stop?.checkpoint()
            let start = UInt64(index) * chunkSize
            let end = min(start + chunkSize, size)
            // The chunk's pieces: extents clipped to it (an extent crossing the end is carried to the next).
            var pieces: [Extent] = []
            while true {
                guard let extent = try carried ?? cursor.next() else { break }
                carried = nil
                if let piece = extent.clipped(to: max(extent.start, start), min(extent.end, end)) { pieces.append(piece) }
                if extent.end > end {
                    carried = extent
                    break
                }
            }
            let fingerprint = Self.fingerprint(pieces, chunkStart: start, layers: layerIdentities)
            sources.append(fingerprint)
            let length = end - start
            if !pieces.contains(where: \.storesData) {
                if zeroDigests[length] == nil { zeroDigests[length] = Self.zeroDigest(length: length) }
                digests.append(contentsOf: zeroDigests[length] ?? [])
            } else if let kept, index < kept.chunkCount, kept.sources[index] == fingerprint {
                digests.append(contentsOf: kept.digest(index))
                let before = zeros.bytes
                zeros.append(contentsOf: kept.zeroRanges, clippedTo: start..<end)
                ownZeroBytes += Self.ownShare(of: zeros.bytes - before, pieces: pieces, zeros: zeros, chunk: start..<end)
            } else {
                let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(length)])
                try stream.fill(from: start, into: UnsafeMutableRawBufferPointer(bytes))
                var hasher = SHA256()
                hasher.update(bufferPointer: UnsafeRawBufferPointer(bytes))
                digests.append(contentsOf: hasher.finalize())
                for piece in pieces where piece.storesData {
                    bytesRead += piece.length
                    guard zeros.ranges.count < Limits.Digests.maximumZeroRanges else { continue }
                    let before = zeros.bytes
                    Self.findZeroBlocks(in: piece, chunkStart: start, bytes: UnsafeRawBufferPointer(bytes), into: &zeros)
                    if piece.depth == 0 { ownZeroBytes += zeros.bytes - before }
                }
                chunksRead += 1
            }
            progress?(end, size)
        }
        return ScanDigests(
            scanID: scanID, chunkSize: chunkSize, digests: digests, sources: sources, zeroRanges: zeros.ranges,
            zeroDataBytes: zeros.bytes, ownZeroDataBytes: ownZeroBytes, bytesRead: bytesRead, chunksRead: chunksRead,
            madeAtNanoseconds: Int64(Date().timeIntervalSince1970 * 1e9))
    }

    /// The bytes of the zero ranges inside `chunk` that the image itself stores (depth-0 pieces), of a kept
    /// chunk whose zero ranges were just added (`added` bytes of them).
    static func ownShare(of added: UInt64, pieces: [Extent], zeros: ZeroRanges, chunk: Range<UInt64>) -> UInt64 {
        guard added > 0 else { return 0 }
        var own: UInt64 = 0
        for piece in pieces where piece.storesData && piece.depth == 0 {
            own += zeros.overlap(with: piece.start..<piece.end)
        }
        return min(own, added)
    }

    /// The SHA-256 of `length` zero bytes.
    static func zeroDigest(length: UInt64) -> [UInt8] {
        var hasher = SHA256()
        let block = [UInt8](repeating: 0, count: 1 << 16)
        var left = length
        while left > 0 {
            let take = Int(min(left, UInt64(block.count)))
            block.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
            left -= UInt64(take)
        }
        return Array(hasher.finalize())
    }

    /// What identifies a layer file's content: device, inode, size, mtime and ctime (and its data file's).
    static func identity(of layer: ScanLayerRecord) -> UInt64 {
        let fields: [Int64] = [
            layer.device, layer.inode, layer.fileSize, layer.mtimeNs, layer.ctimeNs ?? -1, layer.dataDevice ?? -1,
            layer.dataInode ?? -1, layer.dataFileSize ?? -1, layer.dataMtimeNs ?? -1, layer.dataCtimeNs ?? -1,
        ]
        return fields.withUnsafeBytes { XXH64.hash($0) }
    }

    /// A chunk's fingerprint: each piece's position in the chunk, length, status and host location, and for
    /// stored data the identity of the layer file it comes from. Equal fingerprints mean equal bytes unless a
    /// file was changed behind its identity (which `verify` exists to catch).
    static func fingerprint(_ pieces: [Extent], chunkStart: UInt64, layers: [UInt64]) -> UInt64 {
        var words: [UInt64] = []
        words.reserveCapacity(pieces.count * 6)
        for piece in pieces {
            let flags: UInt64 =
                (piece.present ? 1 : 0) | (piece.zero ? 2 : 0) | (piece.data ? 4 : 0) | (piece.compressed ? 8 : 0)
                | (piece.storedZero ? 16 : 0)
            words.append(piece.start - chunkStart)
            words.append(piece.length)
            words.append(flags)
            guard piece.storesData else { continue }
            words.append(Int(piece.depth) < layers.count ? layers[Int(piece.depth)] : UInt64(piece.depth))
            words.append(piece.offset ?? UInt64.max)
            words.append(piece.compressedCluster.map { $0.hostOffset ^ (UInt64($0.byteCount) << 48) } ?? 0)
        }
        return words.withUnsafeBytes { XXH64.hash($0) }
    }

    /// Adds the 4 KiB-aligned blocks wholly inside `piece` whose bytes are all zero (the runs an export's
    /// zero detection finds, ``ExportOutput/forEachRun(of:at:_:)``).
    static func findZeroBlocks(in piece: Extent, chunkStart: UInt64, bytes: UnsafeRawBufferPointer, into zeros: inout ZeroRanges) {
        let at = Int(piece.start - chunkStart)
        let pieceBytes = UnsafeRawBufferPointer(rebasing: bytes[at..<(at + Int(piece.length))])
        ExportOutput.forEachRun(of: pieceBytes, at: piece.start) { run, zero in
            if zero { zeros.append((piece.start + UInt64(run.lowerBound))..<(piece.start + UInt64(run.upperBound))) }
        }
    }
}
