import Foundation

/// What a digest scan (`scan --digests`) recorded for one scan (`scan_digests`, migration 0007): the
/// SHA-256 of each chunk of the guest view, in order, and what it learned on the way.
public struct ScanDigests: Sendable, Equatable {
    /// The Proxmox Backup Server chunk size for fixed-size (disk image) backups: 4 MiB.
    public static let standardChunkSize: UInt64 = 4 << 20

    public var scanID: Int64
    public var chunkSize: UInt64
    /// 32 bytes per chunk: chunk `i` covers `[i * chunkSize, min((i + 1) * chunkSize, virtual size))`.
    public var digests: [UInt8]
    /// Per chunk, a fingerprint of what supplied it (its extents and their layers' file identities).
    public var sources: [UInt64]
    /// Guest ranges inside stored data that the read found to hold only zero bytes (4 KiB-aligned).
    public var zeroRanges: [Range<UInt64>]
    /// Bytes of stored data (``Extent/storesData``) inside `zeroRanges`: data a report counts as zero.
    public var zeroDataBytes: UInt64
    /// The part of ``zeroDataBytes`` the image itself stores (depth 0).
    public var ownZeroDataBytes: UInt64
    /// What this digest scan read: the rest was kept from an earlier one or known to be zeros.
    public var bytesRead: UInt64
    public var chunksRead: Int
    public var madeAtNanoseconds: Int64

    public init(
        scanID: Int64, chunkSize: UInt64, digests: [UInt8], sources: [UInt64], zeroRanges: [Range<UInt64>], zeroDataBytes: UInt64,
        ownZeroDataBytes: UInt64, bytesRead: UInt64, chunksRead: Int, madeAtNanoseconds: Int64
    ) {
        self.scanID = scanID
        self.chunkSize = chunkSize
        self.digests = digests
        self.sources = sources
        self.zeroRanges = zeroRanges
        self.zeroDataBytes = zeroDataBytes
        self.ownZeroDataBytes = ownZeroDataBytes
        self.bytesRead = bytesRead
        self.chunksRead = chunksRead
        self.madeAtNanoseconds = madeAtNanoseconds
    }

    public var chunkCount: Int { sources.count }

    /// Chunk `index`'s SHA-256.
    public func digest(_ index: Int) -> ArraySlice<UInt8> { digests[(index * 32)..<(index * 32 + 32)] }

    /// Chunk `index`'s SHA-256 in lowercase hex.
    public func hexDigest(_ index: Int) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in digest(index) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// A digest scan as `info` lists it.
public struct DigestScanSummary: Codable, Sendable, Equatable {
    public var scanID: Int64
    public var chunkCount: Int
    public var madeAtNanoseconds: Int64

    public init(scanID: Int64, chunkCount: Int, madeAtNanoseconds: Int64) {
        self.scanID = scanID
        self.chunkCount = chunkCount
        self.madeAtNanoseconds = madeAtNanoseconds
    }

    enum CodingKeys: String, CodingKey {
        case scanID = "scan_id"
        case chunkCount = "chunk_count"
        case madeAtNanoseconds = "made_at_ns"
    }
}
