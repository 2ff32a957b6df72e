import AllocationIndex
import Foundation
import PostgresNIO

extension PostgresStore {
    /// Records (or replaces) a scan's digests, moving the stored data they found to read as zeros from the
    /// scan's data figures to its zero figures, as ``IndexStore/saveDigests(_:)`` does.
    public func saveDigests(_ digests: ScanDigests) throws {
        try database.transaction { session in
            let earlier = try session.rows(
                "SELECT zero_data_bytes, own_zero_data_bytes FROM scan_digests WHERE scan_id = \(digests.scanID) FOR UPDATE"
            ).first.map { try $0.decode((Int64, Int64).self) }
            let moved = Int64(digests.zeroDataBytes) - (earlier?.0 ?? 0)
            let ownMoved = Int64(digests.ownZeroDataBytes) - (earlier?.1 ?? 0)
            let changed = try session.execute(
                """
                UPDATE scans SET data_bytes = data_bytes - \(moved), zero_bytes = zero_bytes + \(moved),
                    own_data_bytes = own_data_bytes - \(ownMoved), own_zero_bytes = own_zero_bytes + \(ownMoved)
                WHERE id = \(digests.scanID) AND data_bytes >= \(moved) AND own_data_bytes >= \(ownMoved)
                """)
            guard changed == 1 else {
                throw StoreError.invalidScan("scan \(digests.scanID) is gone, or its figures do not hold the zeros its digests found")
            }
            try session.execute(
                """
                INSERT INTO scan_digests (scan_id, chunk_size, chunk_count, digests, sources, zero_count, zero_ranges,
                    zero_data_bytes, own_zero_data_bytes, bytes_read, chunks_read, made_at_ns)
                VALUES (\(digests.scanID), \(Int64(digests.chunkSize)), \(Int64(digests.chunkCount)), \(Data(digests.digests)),
                    \(WordPacking.pack(digests.sources)), \(Int64(digests.zeroRanges.count)), \(RangePacking.pack(digests.zeroRanges)),
                    \(Int64(digests.zeroDataBytes)), \(Int64(digests.ownZeroDataBytes)), \(Int64(digests.bytesRead)),
                    \(Int64(digests.chunksRead)), \(digests.madeAtNanoseconds))
                ON CONFLICT (scan_id) DO UPDATE SET chunk_size = excluded.chunk_size, chunk_count = excluded.chunk_count,
                    digests = excluded.digests, sources = excluded.sources, zero_count = excluded.zero_count,
                    zero_ranges = excluded.zero_ranges, zero_data_bytes = excluded.zero_data_bytes,
                    own_zero_data_bytes = excluded.own_zero_data_bytes, bytes_read = excluded.bytes_read,
                    chunks_read = excluded.chunks_read, made_at_ns = excluded.made_at_ns
                """)
        }
    }

    /// The columns ``digests(from:)`` reads.
    static let digestColumns =
        "d.scan_id, d.chunk_size, d.chunk_count, d.digests, d.sources, d.zero_ranges, d.zero_data_bytes, d.own_zero_data_bytes, d.bytes_read, d.chunks_read, d.made_at_ns"

    static func digests(from row: PostgresRow) throws -> ScanDigests {
        let (scanID, chunkSize, count, digests, sources, zeroBlob, zeroData, ownZeroData, bytesRead, chunksRead, madeAt) = try row.decode(
            (Int64, Int64, Int64, Data, Data, Data, Int64, Int64, Int64, Int64, Int64).self)
        guard count >= 0, digests.count == 32 * Int(count), sources.count == 8 * Int(count), let zeros = RangePacking.unpack(zeroBlob)
        else { throw StoreError.corruptChunk("the digests of scan \(scanID) are malformed") }
        return ScanDigests(
            scanID: scanID, chunkSize: UInt64(chunkSize), digests: [UInt8](digests), sources: WordPacking.unpack(sources),
            zeroRanges: zeros, zeroDataBytes: UInt64(max(zeroData, 0)), ownZeroDataBytes: UInt64(max(ownZeroData, 0)),
            bytesRead: UInt64(max(bytesRead, 0)), chunksRead: Int(chunksRead), madeAtNanoseconds: madeAt)
    }

    public func digests(scanID: Int64) throws -> ScanDigests? {
        try database.withConnection { session in
            try session.rows("SELECT \(unescaped: Self.digestColumns) FROM scan_digests d WHERE d.scan_id = \(scanID)").first.map(
                Self.digests(from:))
        }
    }

    public func foundZeroRanges(scanID: Int64) throws -> [Range<UInt64>] {
        try database.withConnection { session in
            guard let blob = try session.rows("SELECT zero_ranges FROM scan_digests WHERE scan_id = \(scanID)").first?.decode(Data.self)
            else { return [] }
            guard let ranges = RangePacking.unpack(blob) else {
                throw StoreError.corruptChunk("the zero ranges of scan \(scanID) are malformed")
            }
            return ranges
        }
    }

    public func digestScans(path: String) throws -> [DigestScanSummary] {
        try database.withConnection { session in
            try session.rows(
                """
                SELECT d.scan_id, d.chunk_count, d.made_at_ns FROM scan_digests d JOIN scans s ON s.id = d.scan_id
                JOIN images i ON i.id = s.image_id WHERE i.path = \(path) ORDER BY d.scan_id
                """
            ).map { row in
                let (id, count, at) = try row.decode((Int64, Int64, Int64).self)
                return DigestScanSummary(scanID: id, chunkCount: Int(count), madeAtNanoseconds: at)
            }
        }
    }

    public func latestDigests(path: String) throws -> ScanDigests? {
        try database.withConnection { session in
            try session.rows(
                """
                SELECT \(unescaped: Self.digestColumns) FROM scan_digests d JOIN scans s ON s.id = d.scan_id
                JOIN images i ON i.id = s.image_id WHERE i.path = \(path) ORDER BY d.made_at_ns DESC, d.scan_id DESC LIMIT 1
                """
            ).first.map(Self.digests(from:))
        }
    }
}
