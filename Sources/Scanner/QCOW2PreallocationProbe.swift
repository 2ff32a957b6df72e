import ImageFormats
import ImageIO

/// Decides whether qemu would treat a QCOW2 image as metadata-preallocated, which is when qemu-img map
/// also asks the data file about holes inside data clusters and reports those parts as `zero: true`.
///
/// qemu's heuristic (block/qcow2-refcount.c, `qcow2_detect_metadata_preallocation`): with
/// `real = st_blocks * 512 / cluster_size`, the image counts as preallocated when at least
/// `max(real * 10 / 9, real + 2)` host clusters of the image file have a non-zero refcount. We mirror it
/// so that our maps equal qemu-img's; either answer describes the guest data truthfully.
enum QCOW2PreallocationProbe {
    static func looksPreallocated(reader: QCOW2LayerReader, allocatedBytes: UInt64) throws -> Bool {
        let header = reader.header
        let source = reader.source
        let clusterSize = header.clusterSize
        let realClusters = allocatedBytes / clusterSize
        let threshold = max(realClusters * 10 / 9, realClusters + 2)
        let endCluster = (source.size + clusterSize - 1) / clusterSize
        let tableBytes = UInt64(header.refcountTableClusters) * clusterSize
        guard tableBytes > 0 else { return false }
        return try attributing(to: source.path) {
            guard tableBytes <= QCOW2Refcount.maxTableBytes else {
                throw FormatError.outOfBounds(
                    field: "refcount_table_clusters", offset: 56, value: UInt64(header.refcountTableClusters),
                    limit: QCOW2Refcount.maxTableBytes / clusterSize)
            }
            try header.checkTable(
                field: "refcount_table_offset", headerOffset: 48, offset: header.refcountTableOffset, bytes: tableBytes,
                fileSize: source.size)
            let refcountBits = 1 << Int(header.refcountOrder)
            let entriesPerBlock = clusterSize * 8 / UInt64(refcountBits)
            let neededBlocks = (endCluster + entriesPerBlock - 1) / entriesPerBlock
            let tableEntries = min(tableBytes / 8, neededBlocks)
            let table = try source.readExactly(at: header.refcountTableOffset, count: Int(tableEntries * 8), field: "refcount table")
            var counted: UInt64 = 0
            var block = [UInt8](repeating: 0, count: Int(clusterSize))
            for tableIndex in 0..<Int(tableEntries) {
                let entryOffset = header.refcountTableOffset + UInt64(tableIndex) * 8
                let blockOffset =
                    table.withUnsafeBytes { UInt64.loadBigEndian(from: $0, at: tableIndex * 8) } & QCOW2Refcount.blockOffsetMask
                guard blockOffset != 0 else { continue }
                let blockEnd = blockOffset.addingReportingOverflow(clusterSize)
                guard blockOffset % clusterSize == 0, !blockEnd.overflow, blockEnd.partialValue <= source.size else {
                    throw FormatError.outOfBounds(
                        field: "refcount table entry", offset: entryOffset, value: blockOffset, limit: source.size)
                }
                let got = try block.withUnsafeMutableBytes { try source.read(at: blockOffset, into: $0) }
                guard got == Int(clusterSize) else {
                    throw FormatError.truncated(field: "refcount block", offset: blockOffset, needed: clusterSize, available: UInt64(got))
                }
                let first = UInt64(tableIndex) * entriesPerBlock
                let count = Int(min(entriesPerBlock, endCluster - first))
                block.withUnsafeBytes { raw in
                    for index in 0..<count where counted < threshold {
                        if QCOW2Refcount.entry(raw, index: index, refcountBits: refcountBits) != 0 { counted += 1 }
                    }
                }
                if counted >= threshold { return true }
            }
            return counted >= threshold
        }
    }
}
