import Foundation
internal import GRDB
import ImageFormats

/// One layer of a scanned chain, as the index records it.
public struct NewLayer: Sendable {
    public var path: String
    public var format: ImageFormat
    public var virtualSize: UInt64
    public var clusterSize: UInt64?
    public var backingPath: String?
    public var metadataJSON: String
    public var device: UInt64
    public var inode: UInt64
    public var fileSize: UInt64
    public var mtimeNanoseconds: Int64
    public var ctimeNanoseconds: Int64
    public var headerChecksum: String
    /// The file holding this layer's data when it is not the image itself (qcow2 external data file).
    public var dataPath: String?
    /// The identity of that data file at scan time.
    public var dataIdentity: StoredFileIdentity?

    public init(
        path: String, format: ImageFormat, virtualSize: UInt64, clusterSize: UInt64?, backingPath: String?,
        metadataJSON: String, device: UInt64, inode: UInt64, fileSize: UInt64, mtimeNanoseconds: Int64, ctimeNanoseconds: Int64,
        headerChecksum: String, dataPath: String? = nil, dataIdentity: StoredFileIdentity? = nil
    ) {
        self.ctimeNanoseconds = ctimeNanoseconds
        self.path = path
        self.format = format
        self.virtualSize = virtualSize
        self.clusterSize = clusterSize
        self.backingPath = backingPath
        self.metadataJSON = metadataJSON
        self.device = device
        self.inode = inode
        self.fileSize = fileSize
        self.mtimeNanoseconds = mtimeNanoseconds
        self.headerChecksum = headerChecksum
        self.dataPath = dataPath
        self.dataIdentity = dataIdentity
    }
}

/// A file's identity as the index stores it: device, inode, size, mtime and ctime.
public struct StoredFileIdentity: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    public var mtimeNanoseconds: Int64
    /// Nil when recorded before schema version 5: such an identity matches no file, so it is rescanned.
    public var ctimeNanoseconds: Int64?

    public init(device: UInt64, inode: UInt64, size: UInt64, mtimeNanoseconds: Int64, ctimeNanoseconds: Int64?) {
        self.ctimeNanoseconds = ctimeNanoseconds
        self.device = device
        self.inode = inode
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
    }
}

/// A finished scan to record: the chain (layer 0 first) and its composed extents.
public struct NewScan: Sendable {
    public var layers: [NewLayer]
    public var extents: [Extent]
    public var scannedAtNanoseconds: Int64
    public var durationNanoseconds: UInt64
    public var toolVersion: String
    public var warnings: [String]
    /// The scan followed files outside the image's directory by the caller's trust; recorded on the image
    /// so later automatic rescans keep that trust.
    public var allowsOutsideBacking = false
    /// Keep at most this many scans of the image (this one included), deleting the oldest; nil keeps all.
    public var keepScans: Int?
    /// The trust the chain needed (trusted roots reached, files followed outside every allowed directory).
    /// The image's qcow2 persistent dirty bitmaps (its own layer's).
    public var bitmaps: [DirtyBitmap] = []
    public var trust = ScanTrust()
    /// The host making the scan.
    public var host = HostName.current

    public init(
        layers: [NewLayer], extents: [Extent], scannedAtNanoseconds: Int64, durationNanoseconds: UInt64,
        toolVersion: String, warnings: [String], allowsOutsideBacking: Bool = false, keepScans: Int? = nil, trust: ScanTrust = ScanTrust()
    ) {
        self.trust = trust
        self.keepScans = keepScans
        self.allowsOutsideBacking = allowsOutsideBacking
        self.layers = layers
        self.extents = extents
        self.scannedAtNanoseconds = scannedAtNanoseconds
        self.durationNanoseconds = durationNanoseconds
        self.toolVersion = toolVersion
        self.warnings = warnings
    }
}

/// Byte totals over a list of extents, as stored per chunk and per scan.
public struct ExtentTotals: Sendable, Equatable {
    public var data: UInt64 = 0
    public var ownData: UInt64 = 0
    public var zero: UInt64 = 0
    public var ownZero: UInt64 = 0
    public var compressed: UInt64 = 0

    public init() {}

    /// Data that reads as zeros (flagged by the format, or over a host hole or unwritten extent) counts as
    /// zero, not data: a preallocated image is not reported full.
    public mutating func add(_ extent: Extent) {
        if extent.storesData {
            data += extent.length
            if extent.depth == 0 { ownData += extent.length }
        } else if extent.present && (extent.zero || extent.data) {
            zero += extent.length
            if extent.depth == 0 { ownZero += extent.length }
        }
        if extent.compressed { compressed += extent.length }
    }

    public mutating func merge(_ other: ExtentTotals) {
        data += other.data
        ownData += other.ownData
        zero += other.zero
        ownZero += other.ownZero
        compressed += other.compressed
    }
}

/// Size statistics of the data extents of a map (stored extents; compressed clusters count one each).
public struct DataExtentStatistics: Sendable, Equatable {
    public var count: UInt64 = 0
    public var largest: UInt64 = 0
    public var median: UInt64 = 0
    /// `histogram[k]` counts data extents with `2^k <= length < 2^(k+1)`.
    public var histogram: [UInt64] = []

    public init(_ extents: [Extent]) {
        var lengths: [UInt64] = []
        var buckets = [UInt64](repeating: 0, count: 64)
        for extent in extents where extent.storesData {
            lengths.append(extent.length)
            buckets[63 - extent.length.leadingZeroBitCount] += 1
        }
        count = UInt64(lengths.count)
        largest = lengths.max() ?? 0
        median = lengths.isEmpty ? 0 : Self.select(&lengths, rank: (lengths.count - 1) / 2)
        let used = (buckets.lastIndex { $0 > 0 } ?? -1) + 1
        histogram = Array(buckets.prefix(used))
    }

    /// The element of rank `rank` (0-based) in linear expected time: quickselect with a three-way
    /// partition, so the many equal lengths real maps have (every 4 KiB write) cost one pass, not n².
    static func select(_ values: inout [UInt64], rank: Int) -> UInt64 {
        var low = 0
        var high = values.count - 1
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while low < high {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            let pivot = values[low + Int(state >> 33) % (high - low + 1)]
            // [low, less) < pivot, [less, index) == pivot, (greater, high] > pivot.
            var less = low
            var index = low
            var greater = high
            while index <= greater {
                if values[index] < pivot {
                    values.swapAt(index, less)
                    less += 1
                    index += 1
                } else if values[index] > pivot {
                    values.swapAt(index, greater)
                    greater -= 1
                } else {
                    index += 1
                }
            }
            if rank < less {
                high = less - 1
            } else if rank > greater {
                low = greater + 1
            } else {
                return pivot
            }
        }
        return values[low]
    }
}

extension IndexStore {
    /// Records a scan in one transaction: upserts every layer's image row, inserts the scan, its layer
    /// identities and packed extents, and makes it the image's latest scan.
    ///
    /// - Parameter beforeCommit: runs inside the transaction just before it commits (tests use it to
    ///   simulate a crash mid-write).
    @discardableResult
    func save(_ scan: NewScan, beforeCommit: (@Sendable (Database) throws -> Void)?) throws -> IndexedScan {
        precondition(!scan.layers.isEmpty, "a scan has at least one layer")
        try ScanCounts.checkTiling(scan.extents, virtualSize: scan.layers[0].virtualSize)
        return try reportingFullDisk {
            try writer.write { db in
                var imageIDs: [Int64] = Array(repeating: 0, count: scan.layers.count)
                for depth in stride(from: scan.layers.count - 1, through: 0, by: -1) {
                    let below = depth + 1 < scan.layers.count ? imageIDs[depth + 1] : nil
                    imageIDs[depth] = try upsertImage(scan.layers[depth], backingImageID: below, db)
                }
                // Encode the chunks first: their totals add up to the scan's.
                let chunks = Self.packChunks(scan.extents)
                let totals = chunks.reduce(into: ExtentTotals()) { $0.merge($1.totals) }
                var record = try scan.scanRecord(imageID: imageIDs[0], totals: totals)
                record.id = try Int64.fetchOne(db, sql: Self.nextIDSQL(table: "scans"))
                try Stored(record).insert(db)
                guard let scanID = record.id else { throw StoreError.notFound("inserted scan id") }
                for layer in scan.layerRecords(scanID: scanID) { try Stored(layer).insert(db) }
                if let owner = try Self.chunkOwnerWithSameExtents(as: chunks, imageID: imageIDs[0], excluding: scanID, db) {
                    // An unchanged rescan: the scan is recorded, its extents are the earlier scan's chunks.
                    try db.execute(sql: "UPDATE scans SET extents_scan_id = ? WHERE id = ?", arguments: [owner, scanID])
                } else {
                    try insertChunks(chunks, scanID: scanID, db)
                }
                try Self.insertBitmaps(scan.bitmaps, scanID: scanID, db)
                try Self.clearFailure(path: scan.layers[0].path, db)
                try db.execute(
                    sql: "UPDATE images SET latest_scan_id = ?, allows_outside_backing = ? WHERE id = ?",
                    arguments: [scanID, scan.allowsOutsideBacking, imageIDs[0]])
                try beforeCommit?(db)
                if let keep = scan.keepScans {
                    try Self.pruneHistory(imageID: imageIDs[0], keep: keep, olderThanNanoseconds: nil, db)
                }
                guard let stored = try Self.indexedScan(scanID: scanID, db) else { throw StoreError.notFound("scan \(scanID)") }
                return stored
            }
        }
    }

    /// Runs a write, turning SQLite's "database or disk is full" into ``StoreError/full(path:detail:)``.
    func reportingFullDisk<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
            throw StoreError.full(path: writer.path, detail: "\(error)")
        }
    }

    /// The id for a new row of `table` (`images` or `scans`): past the largest it ever held, so that an id a
    /// client kept never comes to name another image or scan after a `forget` or `gc` (migration 0004, whose
    /// triggers keep `id_high_water` at or above every id inserted).
    static func nextIDSQL(table: String) -> String {
        "SELECT last + 1 FROM id_high_water WHERE name = '\(table)'"
    }

    private func upsertImage(_ layer: NewLayer, backingImageID: Int64?, _ db: Database) throws -> Int64 {
        let sql = """
            INSERT INTO images (id, path, format, virtual_size, cluster_size, backing_path, backing_image_id, metadata_json)
            VALUES ((\(Self.nextIDSQL(table: "images"))), ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(path) DO UPDATE SET
                format = excluded.format, virtual_size = excluded.virtual_size, cluster_size = excluded.cluster_size,
                backing_path = excluded.backing_path, backing_image_id = excluded.backing_image_id,
                metadata_json = excluded.metadata_json
            RETURNING id
            """
        let arguments: StatementArguments = [
            layer.path, layer.format.rawValue, Int64(layer.virtualSize), layer.clusterSize.map { Int64($0) }, layer.backingPath,
            backingImageID, layer.metadataJSON,
        ]
        guard let id = try Int64.fetchOne(db, sql: sql, arguments: arguments) else {
            throw StoreError.notFound("image row for \(layer.path)")
        }
        return id
    }

    /// A packed chunk of consecutive extents with its totals: one `extent_chunks` row in either store.
    public struct PackedChunk: Sendable {
        public var start: UInt64
        public var length: UInt64
        public var count: Int
        public var totals: ExtentTotals
        public var runs: Data
    }

    /// Cuts the map into chunks of ``extentsPerChunk`` extents, packing each and summing its bytes.
    public static func packChunks(_ extents: [Extent]) -> [PackedChunk] {
        stride(from: 0, to: extents.count, by: extentsPerChunk).map { index in
            let slice = extents[index..<min(index + extentsPerChunk, extents.count)]
            var totals = ExtentTotals()
            for extent in slice { totals.add(extent) }
            let start = slice[slice.startIndex].start
            return PackedChunk(
                start: start, length: slice[slice.endIndex - 1].end - start, count: slice.count, totals: totals,
                runs: ExtentRunCodec.encode(slice))
        }
    }

    private func insertChunks(_ chunks: [PackedChunk], scanID: Int64, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO extent_chunks (scan_id, start, length, extent_count, data_bytes, own_data_bytes, zero_bytes,
                                           compressed_bytes, runs)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for chunk in chunks {
            try statement.execute(arguments: [
                scanID, Int64(chunk.start), Int64(chunk.length), chunk.count, Int64(chunk.totals.data),
                Int64(chunk.totals.ownData), Int64(chunk.totals.zero), Int64(chunk.totals.compressed), chunk.runs,
            ])
        }
    }
}
