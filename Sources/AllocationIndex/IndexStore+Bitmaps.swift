import Foundation
internal import GRDB

/// A qcow2 persistent dirty bitmap: as a scan reads it from the image, and as the index records it
/// (`scan_bitmaps`, migration 0006).
public struct DirtyBitmap: Sendable, Equatable {
    public var name: String
    public var granularity: UInt64
    /// Its writer did not save it (qcow2's `in_use` flag): its content may be stale.
    public var inUse: Bool
    /// It tracks every write (qcow2's `auto` flag: qemu's "enabled").
    public var auto: Bool
    /// Dirty guest ranges, merged, in order.
    public var ranges: [Range<UInt64>]

    public init(name: String, granularity: UInt64, inUse: Bool, auto: Bool, ranges: [Range<UInt64>]) {
        self.name = name
        self.granularity = granularity
        self.inUse = inUse
        self.auto = auto
        self.ranges = ranges
    }

    public var dirtyBytes: UInt64 { ranges.reduce(0) { $0 + UInt64($1.count) } }

    /// The ranges as stored: little-endian (start, end) u64 pairs.
    var packedRanges: Data { RangePacking.pack(ranges) }

    /// Unpacks stored ranges; nil when the blob is not whole pairs of ordered, increasing ranges.
    static func ranges(unpacking data: Data) -> [Range<UInt64>]? { RangePacking.unpack(data) }
}

extension IndexStore {
    /// The bitmaps a scan recorded, by name.
    public func bitmaps(scanID: Int64) throws -> [DirtyBitmap] {
        try writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT name, granularity, in_use, auto, ranges FROM scan_bitmaps WHERE scan_id = ? ORDER BY name",
                arguments: [scanID]
            ).map { row in
                let name: String = row[0]
                let blob: Data = row[4]
                guard let ranges = DirtyBitmap.ranges(unpacking: blob) else {
                    throw StoreError.corruptChunk("bitmap '\(name)' of scan \(scanID) has malformed ranges")
                }
                let granularity: Int64 = row[1]
                let inUse: Bool = row[2]
                let auto: Bool = row[3]
                return DirtyBitmap(name: name, granularity: UInt64(granularity), inUse: inUse, auto: auto, ranges: ranges)
            }
        }
    }

    /// Records a scan's bitmaps inside its save transaction.
    static func insertBitmaps(_ bitmaps: [DirtyBitmap], scanID: Int64, _ db: Database) throws {
        for bitmap in bitmaps {
            try db.execute(
                sql: """
                    INSERT INTO scan_bitmaps (scan_id, name, granularity, in_use, auto, range_count, dirty_bytes, ranges)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    scanID, bitmap.name, Int64(bitmap.granularity), bitmap.inUse, bitmap.auto, bitmap.ranges.count,
                    Int64(bitmap.dirtyBytes), bitmap.packedRanges,
                ])
        }
    }
}
