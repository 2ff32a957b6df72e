import Foundation
internal import GRDB

extension IndexStore {
    /// Records (or replaces) the digests of a scan, in one transaction, moving the stored data they found
    /// to read as zeros from the scan's data figures to its zero figures.
    public func saveDigests(_ digests: ScanDigests) throws {
        guard !isReadOnly else { throw StoreError.readOnly(path ?? "the index") }
        try writer.write { db in
            // What an earlier record of the same scan moved already (a replaced record moves only the difference).
            let earlier = try Row.fetchOne(
                db, sql: "SELECT zero_data_bytes, own_zero_data_bytes FROM scan_digests WHERE scan_id = ?", arguments: [digests.scanID])
            let movedBefore: Int64 = earlier?[0] ?? 0
            let ownMovedBefore: Int64 = earlier?[1] ?? 0
            let moved = Int64(digests.zeroDataBytes) - movedBefore
            let ownMoved = Int64(digests.ownZeroDataBytes) - ownMovedBefore
            try db.execute(
                sql: """
                    UPDATE scans SET data_bytes = data_bytes - ?, zero_bytes = zero_bytes + ?, own_data_bytes = own_data_bytes - ?,
                        own_zero_bytes = own_zero_bytes + ?
                    WHERE id = ? AND data_bytes >= ? AND own_data_bytes >= ?
                    """, arguments: [moved, moved, ownMoved, ownMoved, digests.scanID, moved, ownMoved])
            guard db.changesCount == 1 else {
                throw StoreError.invalidScan("scan \(digests.scanID) is gone, or its figures do not hold the zeros its digests found")
            }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO scan_digests (scan_id, chunk_size, chunk_count, digests, sources, zero_count, zero_ranges,
                        zero_data_bytes, own_zero_data_bytes, bytes_read, chunks_read, made_at_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    digests.scanID, Int64(digests.chunkSize), digests.chunkCount, Data(digests.digests), WordPacking.pack(digests.sources),
                    digests.zeroRanges.count, RangePacking.pack(digests.zeroRanges), Int64(digests.zeroDataBytes),
                    Int64(digests.ownZeroDataBytes), Int64(digests.bytesRead), digests.chunksRead, digests.madeAtNanoseconds,
                ])
        }
    }

    /// The digests recorded for scan `scanID`, or nil when no digest scan was made of it.
    public func digests(scanID: Int64) throws -> ScanDigests? {
        try writer.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM scan_digests WHERE scan_id = ?", arguments: [scanID]).map(Self.digests(from:))
        }
    }

    /// The guest ranges a digest scan of scan `scanID` found to read as zeros inside stored data (empty
    /// without a digest scan): what exports of the scan treat as zeros.
    public func foundZeroRanges(scanID: Int64) throws -> [Range<UInt64>] {
        try writer.read { db in
            guard let blob = try Data.fetchOne(db, sql: "SELECT zero_ranges FROM scan_digests WHERE scan_id = ?", arguments: [scanID])
            else { return [] }
            guard let ranges = RangePacking.unpack(blob) else {
                throw StoreError.corruptChunk("the zero ranges of scan \(scanID) are malformed")
            }
            return ranges
        }
    }

    /// The kept scans of the image at `path` that have digests, oldest first: what `--since-scan` may name.
    public func digestScans(path: String) throws -> [DigestScanSummary] {
        try writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT d.scan_id, d.chunk_count, d.made_at_ns FROM scan_digests d JOIN scans s ON s.id = d.scan_id
                    JOIN images i ON i.id = s.image_id WHERE i.path = ? ORDER BY d.scan_id
                    """, arguments: [path]
            ).map { DigestScanSummary(scanID: $0[0], chunkCount: $0[1], madeAtNanoseconds: $0[2]) }
        }
    }

    /// The latest digests recorded for any kept scan of the image at `path` (what a new digest scan may
    /// keep chunks from), or nil.
    public func latestDigests(path: String) throws -> ScanDigests? {
        try writer.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT d.* FROM scan_digests d JOIN scans s ON s.id = d.scan_id JOIN images i ON i.id = s.image_id
                    WHERE i.path = ? ORDER BY d.made_at_ns DESC, d.scan_id DESC LIMIT 1
                    """, arguments: [path]
            ).map(Self.digests(from:))
        }
    }

    private static func digests(from row: Row) throws -> ScanDigests {
        let scanID: Int64 = row["scan_id"]
        let count: Int = row["chunk_count"]
        let digests: Data = row["digests"]
        let sources: Data = row["sources"]
        let zeroBlob: Data = row["zero_ranges"]
        guard count >= 0, digests.count == 32 * count, sources.count == 8 * count, let zeros = RangePacking.unpack(zeroBlob) else {
            throw StoreError.corruptChunk("the digests of scan \(scanID) are malformed")
        }
        let chunkSize: Int64 = row["chunk_size"]
        let zeroDataBytes: Int64 = row["zero_data_bytes"]
        let ownZeroDataBytes: Int64 = row["own_zero_data_bytes"]
        let bytesRead: Int64 = row["bytes_read"]
        return ScanDigests(
            scanID: scanID, chunkSize: UInt64(chunkSize), digests: [UInt8](digests), sources: WordPacking.unpack(sources),
            zeroRanges: zeros,
            zeroDataBytes: UInt64(max(zeroDataBytes, 0)), ownZeroDataBytes: UInt64(max(ownZeroDataBytes, 0)),
            bytesRead: UInt64(max(bytesRead, 0)), chunksRead: row["chunks_read"],
            madeAtNanoseconds: row["made_at_ns"])
    }
}
