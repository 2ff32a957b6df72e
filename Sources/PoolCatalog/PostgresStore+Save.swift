import AllocationIndex
import Foundation
import ImageFormats
import PostgresNIO

extension PostgresStore {
    /// Records a scan in one transaction, as ``IndexStore`` does: every layer's image row upserted, the scan
    /// with the host that made it, its layers, its packed extents (one statement for all chunks), bitmaps,
    /// and retention. A process killed before COMMIT leaves nothing behind.
    public func save(_ scan: NewScan) throws -> IndexedScan {
        precondition(!scan.layers.isEmpty, "a scan has at least one layer")
        try ScanCounts.checkTiling(scan.extents, virtualSize: scan.layers[0].virtualSize)
        let chunks = IndexStore.packChunks(scan.extents)
        let totals = chunks.reduce(into: ExtentTotals()) { $0.merge($1.totals) }
        return try database.transaction { session in
            var imageIDs = [Int64](repeating: 0, count: scan.layers.count)
            for depth in stride(from: scan.layers.count - 1, through: 0, by: -1) {
                let below = depth + 1 < scan.layers.count ? imageIDs[depth + 1] : nil
                imageIDs[depth] = try Self.upsertImage(scan.layers[depth], backingImageID: below, session)
            }
            let row = try scan.scanRecord(imageID: imageIDs[0], totals: totals)
            // The scan's row, and in the same round trip the image's previous scan (the owner of its chunks, and
            // their count) and how many scans it had: the statement's snapshot predates the insert, so neither
            // `previous` nor the count sees the new row.
            let scanRow = try session.rows(
                """
                WITH previous AS (
                    SELECT coalesce(extents_scan_id, id) AS owner FROM scans WHERE image_id = \(imageIDs[0]) ORDER BY id DESC LIMIT 1
                ),
                inserted AS (
                    INSERT INTO scans (image_id, scanned_at_ns, duration_ns, tool_version, virtual_size, chain_depth, extent_count,
                        data_bytes, own_data_bytes, zero_bytes, compressed_bytes, own_zero_bytes, data_extent_count, data_extent_largest,
                        data_extent_median, data_extent_histogram, warnings_json, trust_json, host)
                    VALUES (\(row.imageId), \(row.scannedAtNs), \(row.durationNs), \(row.toolVersion), \(row.virtualSize),
                        \(row.chainDepth), \(row.extentCount), \(row.dataBytes), \(row.ownDataBytes), \(row.zeroBytes),
                        \(row.compressedBytes), \(row.ownZeroBytes), \(row.dataExtentCount), \(row.dataExtentLargest),
                        \(row.dataExtentMedian), \(row.dataExtentHistogram), \(row.warningsJson), \(row.trustJson), \(row.host))
                    RETURNING id
                )
                SELECT inserted.id, previous.owner, (SELECT count(*) FROM extent_chunks WHERE scan_id = previous.owner),
                    (SELECT count(*) FROM scans WHERE image_id = \(imageIDs[0]))
                FROM inserted LEFT JOIN previous ON true
                """)
            guard let (scanID, previousOwner, previousChunks, earlierScans) = try scanRow.first?.decode((Int64, Int64?, Int64?, Int64).self)
            else {
                throw StoreError.notFound("inserted scan id")
            }
            for (depth, layer) in scan.layers.enumerated() {
                try Self.insertLayer(layer, depth: depth, scanID: scanID, session)
            }
            let previous = previousOwner.map { (owner: $0, chunks: previousChunks ?? -1) }
            let owner = try Self.chunkOwnerWithSameExtents(as: chunks, previous: previous, session)
            if let owner {
                try session.execute("UPDATE scans SET extents_scan_id = \(owner) WHERE id = \(scanID)")
            } else {
                try Self.insertChunks(chunks, scanID: scanID, session)
            }
            for bitmap in scan.bitmaps {
                try session.execute(
                    """
                    INSERT INTO scan_bitmaps (scan_id, name, granularity, in_use, auto, range_count, dirty_bytes, ranges)
                    VALUES (\(scanID), \(bitmap.name), \(Int64(bitmap.granularity)), \(bitmap.inUse), \(bitmap.auto),
                        \(Int64(bitmap.ranges.count)), \(Int64(bitmap.dirtyBytes)), \(RangePacking.pack(bitmap.ranges)))
                    """)
            }
            // The failure record goes, the scan becomes the latest, and the change is announced, in one round
            // trip; the notification reaches the listening hosts when this transaction commits, never before.
            let change = CatalogChange(imageID: imageIDs[0], scanID: scanID, host: scan.host, path: scan.layers[0].path)
            try session.execute(
                """
                WITH cleared AS (DELETE FROM scan_failures WHERE path = \(scan.layers[0].path)),
                latest AS (
                    UPDATE images SET latest_scan_id = \(scanID), allows_outside_backing = \(scan.allowsOutsideBacking)
                    WHERE id = \(imageIDs[0])
                )
                SELECT pg_notify(\(Self.changeChannel), \(change.payload))
                """)
            // Retention has work only past `keep` scans (this one included); when it deletes none, the saved
            // rows are what was just written, with no read-back (a round trip and three rows to decode).
            if let keep = scan.keepScans, earlierScans + 1 > Int64(max(keep, 1)),
                try Self.pruneHistory(imageID: imageIDs[0], keep: keep, olderThanNanoseconds: nil, session) > 0
            {
                guard let stored = try Self.indexedScan(scanID: scanID, session) else { throw StoreError.notFound("scan \(scanID)") }
                return stored
            }
            return scan.savedRecords(imageIDs: imageIDs, scan: row, scanID: scanID, extentsScanID: owner)
        }
    }

    /// The channel hosts' services listen on (``PostgresStore/watchChanges(_:)``).
    static let changeChannel = "extentdb_changes"

    static func notify(_ change: CatalogChange, _ session: BlockingPostgres.Session) throws {
        try session.execute("SELECT pg_notify(\(changeChannel), \(change.payload))")
    }

    static func upsertImage(_ layer: NewLayer, backingImageID: Int64?, _ session: BlockingPostgres.Session) throws -> Int64 {
        let rows = try session.rows(
            """
            INSERT INTO images (path, format, virtual_size, cluster_size, backing_path, backing_image_id, metadata_json)
            VALUES (\(layer.path), \(layer.format.rawValue), \(Int64(layer.virtualSize)), \(layer.clusterSize.map { Int64($0) }),
                \(layer.backingPath), \(backingImageID), \(layer.metadataJSON))
            ON CONFLICT (path) DO UPDATE SET
                format = excluded.format, virtual_size = excluded.virtual_size, cluster_size = excluded.cluster_size,
                backing_path = excluded.backing_path, backing_image_id = excluded.backing_image_id,
                metadata_json = excluded.metadata_json
            RETURNING id
            """)
        guard let id = try rows.first?.decode(Int64.self) else { throw StoreError.notFound("image row for \(layer.path)") }
        return id
    }

    static func insertLayer(_ layer: NewLayer, depth: Int, scanID: Int64, _ session: BlockingPostgres.Session) throws {
        let data = layer.dataIdentity
        try session.execute(
            """
            INSERT INTO scan_layers (scan_id, depth, path, format, device, inode, file_size, mtime_ns, ctime_ns, header_checksum,
                cluster_size, data_path, data_device, data_inode, data_file_size, data_mtime_ns, data_ctime_ns)
            VALUES (\(scanID), \(Int64(depth)), \(layer.path), \(layer.format.rawValue), \(Int64(bitPattern: layer.device)),
                \(Int64(bitPattern: layer.inode)), \(Int64(layer.fileSize)), \(layer.mtimeNanoseconds), \(layer.ctimeNanoseconds),
                \(layer.headerChecksum), \(layer.clusterSize.map { Int64($0) }), \(layer.dataPath),
                \(data.map { Int64(bitPattern: $0.device) }), \(data.map { Int64(bitPattern: $0.inode) }), \(data.map { Int64($0.size) }),
                \(data?.mtimeNanoseconds), \(data?.ctimeNanoseconds))
            """)
    }

    /// All chunks of a scan in one statement: one array per column, `unnest`ed.
    static func insertChunks(_ chunks: [IndexStore.PackedChunk], scanID: Int64, _ session: BlockingPostgres.Session) throws {
        guard !chunks.isEmpty else { return }
        try session.execute(
            """
            INSERT INTO extent_chunks (scan_id, start, length, extent_count, data_bytes, own_data_bytes, zero_bytes, compressed_bytes, runs)
            SELECT \(scanID), * FROM unnest(\(chunks.map { Int64($0.start) }), \(chunks.map { Int64($0.length) }),
                \(chunks.map { Int64($0.count) }), \(chunks.map { Int64($0.totals.data) }), \(chunks.map { Int64($0.totals.ownData) }),
                \(chunks.map { Int64($0.totals.zero) }), \(chunks.map { Int64($0.totals.compressed) }), \(chunks.map { ByteBuffer(bytes: $0.runs) }))
            """)
    }

    /// The scan holding chunks equal to `chunks` when it is the image's previous scan (the owner of its
    /// chunks and their count, which the scan's INSERT returned), else nil (an unchanged rescan stores no
    /// second copy).
    static func chunkOwnerWithSameExtents(
        as chunks: [IndexStore.PackedChunk], previous: (owner: Int64, chunks: Int64)?, _ session: BlockingPostgres.Session
    ) throws -> Int64? {
        guard let previous, previous.chunks == chunks.count else { return nil }
        let rows = try session.rows("SELECT start, length, runs FROM extent_chunks WHERE scan_id = \(previous.owner) ORDER BY start")
        for (row, chunk) in zip(rows, chunks) {
            let (start, length, runs) = try row.decode((Int64, Int64, Data).self)
            guard start == Int64(chunk.start), length == Int64(chunk.length), runs == chunk.runs else { return nil }
        }
        return previous.owner
    }
}
