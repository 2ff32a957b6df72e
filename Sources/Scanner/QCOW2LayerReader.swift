import ImageFormats
import ImageIO

/// Reads one QCOW2 file's header, extensions and snapshot table, and walks its active L1/L2 tables.
///
/// Tables may lie anywhere in the file; every pointer is checked against the file size before it is read,
/// and the L1 table is read in bounded chunks so memory follows what the file holds.
struct QCOW2LayerReader {
    let source: FileBlockSource
    let header: QCOW2Header
    let extensions: QCOW2HeaderExtensions
    let backingName: String?
    /// The first cluster of the file (or the whole file when shorter): header, extensions, backing name.
    let headerBytes: [UInt8]

    /// L1 entries read per pread: 64 Ki entries (512 KiB).
    static let l1ChunkEntries = Limits.QCOW2.l1EntriesPerRead

    init(source: FileBlockSource) throws {
        self.source = source
        let path = source.path
        let parsed = try attributing(to: path) { () throws -> (QCOW2Header, [UInt8], QCOW2HeaderExtensions, String?) in
            // The header, its extensions and the backing name all live in the first cluster (<= 2 MiB). The
            // fixed header is read first and then the rest of that cluster, not 2 MiB every time: every
            // freshness check of an image reads this (an NBD connection, an HTTP lookup).
            let probe = Int(min(source.size, 4096))
            let head = try source.read(at: 0, count: probe)
            var reader = ByteReader(head)
            let header = try QCOW2Header(parsing: &reader, fileSize: source.size)
            let clusterBytes = Int(min(source.size, header.clusterSize))
            let headerBytes = clusterBytes <= head.count ? Array(head.prefix(clusterBytes)) : try source.read(at: 0, count: clusterBytes)
            let extensions = try QCOW2HeaderExtensions(parsing: headerBytes[...], header: header)
            var backingName: String?
            if header.backingFileOffset != 0 && header.backingFileSize > 0 {
                let start = Int(header.backingFileOffset)
                let bytes = headerBytes[start..<start + Int(header.backingFileSize)]
                backingName = String(decoding: bytes, as: UTF8.self)
            }
            return (header, headerBytes, extensions, backingName)
        }
        (header, headerBytes, extensions, backingName) = parsed
    }

    /// The internal snapshot table, parsed entry by entry with each entry bounded by the file.
    func snapshots() throws -> [QCOW2Snapshot] {
        var result: [QCOW2Snapshot] = []
        var offset = header.snapshotsOffset
        for _ in 0..<header.nbSnapshots {
            try attributing(to: source.path) {
                let fixed = try source.readExactly(at: offset, count: 40, field: "snapshot table entry")
                var peek = ByteReader(fixed, baseOffset: offset)
                try peek.seek(to: 12, field: "snapshot id_str_size")
                let idSize = UInt64(try peek.read(UInt16.self, field: "snapshot id_str_size"))
                let nameSize = UInt64(try peek.read(UInt16.self, field: "snapshot name_size"))
                try peek.seek(to: 36, field: "snapshot extra_data_size")
                let extraSize = UInt64(try peek.read(UInt32.self, field: "snapshot extra_data_size"))
                let maxExtra = UInt64(Limits.QCOW2.maxSnapshotExtraData)
                guard extraSize <= maxExtra else {
                    throw FormatError.outOfBounds(field: "snapshot extra_data_size", offset: offset + 36, value: extraSize, limit: maxExtra)
                }
                let unpadded = 40 + extraSize + idSize + nameSize
                let total = (unpadded + 7) & ~7
                guard offset + unpadded <= source.size else {
                    throw FormatError.truncated(
                        field: "snapshot table entry", offset: offset, needed: unpadded, available: source.size - min(offset, source.size))
                }
                let entry = try source.read(at: offset, count: Int(min(total, source.size - offset)))
                var reader = ByteReader(entry, baseOffset: offset)
                result.append(try QCOW2Snapshot(parsing: &reader))
                offset += total
            }
        }
        return result
    }

    /// Walks the active L1 table and every allocated L2 table into this layer's runs.
    ///
    /// - Parameter dataFileSize: size of the file data clusters live in (external data file or this file).
    /// - Parameter progress: told the L1 entries to walk, then each chunk of them walked.
    func layerMap(dataFileSize: UInt64, hasExternalData: Bool, progress: ScanProgress? = nil) throws -> LayerMap {
        let decoder = QCOW2L2Decoder(
            header: header, imageFileSize: source.size, dataFileSize: dataFileSize, hasExternalData: hasExternalData)
        var runs = ExtentListBuilder()
        let virtualSize = header.size
        let bytesPerTable = header.bytesPerL2Table
        let tableCount = Int(header.requiredL1Entries)
        let clusterSize = Int(header.clusterSize)
        let l2Buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: clusterSize, alignment: 16)
        defer { l2Buffer.deallocate() }
        // In a valid image every L2 table belongs to one L1 entry and every allocated cluster of the active
        // table has its own host cluster; a hostile image that shares them could map far more than it holds.
        var tablesSeen: [UInt64: Int] = [:]
        var hostClusters: UInt64 = 0
        let clusterCapacity = dataFileSize / header.clusterSize + (dataFileSize % header.clusterSize == 0 ? 0 : 1)
        var chunkStart = 0
        progress?.expect(tableCount)
        try attributing(to: source.path) {
            while chunkStart < tableCount {
                let chunkCount = min(Self.l1ChunkEntries, tableCount - chunkStart)
                let l1Offset = header.l1TableOffset + UInt64(chunkStart) * 8
                let l1 = try source.readExactly(at: l1Offset, count: chunkCount * 8, field: "L1 table")
                try l1.withUnsafeBytes { entries in
                    for index in 0..<chunkCount {
                        let entryOffset = l1Offset + UInt64(index) * 8
                        let guestStart = UInt64(chunkStart + index) * bytesPerTable
                        let guestEnd = min(guestStart + bytesPerTable, virtualSize)
                        let entry = UInt64.loadBigEndian(from: entries, at: index * 8)
                        guard let tableOffset = try decoder.l2TableOffset(l1Entry: entry, entryOffset: entryOffset) else {
                            runs.append(
                                Extent(start: guestStart, length: guestEnd - guestStart, depth: 0, present: false, zero: false, data: false)
                            )
                            continue
                        }
                        if let first = tablesSeen.updateValue(chunkStart + index, forKey: tableOffset) {
                            throw FormatError.invalid(
                                field: "L1 entry \(chunkStart + index)", offset: entryOffset,
                                reason: "L2 table at \(tableOffset) is already used by L1 entry \(first)")
                        }
                        // A table lying wholly in a hole of the file reads as zeros: every entry
                        // unallocated. It is not read, so a hostile L1 pointing at thousands of tables
                        // in a sparse file's hole costs nothing, and the reads of a scan are bounded by
                        // what the file really holds.
                        if tableOffset + UInt64(clusterSize) <= source.size,
                            !source.mayHoldData(in: tableOffset..<tableOffset + UInt64(clusterSize))
                        {
                            runs.append(
                                Extent(start: guestStart, length: guestEnd - guestStart, depth: 0, present: false, zero: false, data: false)
                            )
                            continue
                        }
                        let got = try source.read(at: tableOffset, into: l2Buffer)
                        guard got == clusterSize else {
                            throw FormatError.truncated(
                                field: "L2 table", offset: tableOffset, needed: UInt64(clusterSize), available: UInt64(got))
                        }
                        try decoder.decode(
                            table: UnsafeRawBufferPointer(l2Buffer), tableOffset: tableOffset, guestStart: guestStart, into: &runs,
                            hostClusters: &hostClusters)
                        try progress?.check(extents: runs.extents.count)
                        guard hostClusters <= clusterCapacity else {
                            throw FormatError.invalid(
                                field: "L2 table", offset: tableOffset,
                                reason:
                                    "the active tables map more than the \(clusterCapacity) clusters the \(hasExternalData ? "data file" : "file") "
                                    + "can hold (\(dataFileSize) bytes): host clusters are shared")
                        }
                    }
                }
                chunkStart += chunkCount
                try progress?.advance(chunkCount, extents: runs.extents.count)
            }
        }
        return LayerMap(virtualSize: virtualSize, runs: runs.extents)
    }
}
