import Foundation
import ImageFormats

/// Writes a QCOW2 v3 image front to back, so it can go to a pipe: header, refcount table, refcount
/// blocks, L1 table, L2 tables, then the data clusters in guest order (the layout qemu's
/// `scripts/qcow2-to-stdout.py` uses). Everything is laid out from the plan before the first byte.
///
/// ```
/// cluster 0            header (+ backing file format extension and name for --base)
/// 1 ..                 refcount table          (16-bit refcounts, every written cluster has refcount 1)
/// ..                   refcount blocks
/// ..                   L1 table
/// ..                   L2 tables, for L1 entries that map anything
/// ..                   data clusters, in guest order
/// ```
/// Clusters with data become data clusters (holding the whole guest view of the cluster); clusters that
/// only read as zeros become zero clusters (L2 bit 0, no host cluster); unallocated ones stay unallocated
/// (the base shows through when there is one).
public struct QCOW2StreamWriter {
    public let plan: ExportPlan
    public let reader: GuestReader
    public let clusterSize: UInt64
    /// The backing file name to record, with its format (`--base`).
    public let backing: (name: String, format: String)?

    public init(plan: ExportPlan, reader: GuestReader, clusterSize: UInt64 = 65536, backing: (name: String, format: String)?) throws {
        guard clusterSize >= 512, clusterSize <= 2 << 20, clusterSize & (clusterSize - 1) == 0 else {
            throw ExportError.plan("cluster size \(clusterSize) is not a power of two from 512 bytes to 2 MiB")
        }
        let l1Bytes = Self.l1Entries(virtualSize: plan.virtualSize, clusterSize: clusterSize) * 8
        guard l1Bytes <= QCOW2Header.maxL1Bytes else {
            throw ExportError.plan(
                "a \(plan.virtualSize)-byte disk needs an L1 table of \(l1Bytes) bytes with \(clusterSize)-byte clusters, "
                    + "over qemu's limit of \(QCOW2Header.maxL1Bytes) bytes",
                remedy: Self.smallestClusterSize(virtualSize: plan.virtualSize).map(Remedy.clusterSize))
        }
        if let backing {
            let name = backing.name.utf8.count
            let needed = 112 + 8 + (backing.format.utf8.count + 7) / 8 * 8 + 8 + name
            guard name <= Int(QCOW2Header.maxBackingNameLength), UInt64(needed) <= clusterSize else {
                throw ExportError.plan("backing file name '\(backing.name)' does not fit in a \(clusterSize)-byte header cluster")
            }
        }
        self.plan = plan
        self.reader = reader
        self.clusterSize = clusterSize
        self.backing = backing
    }

    /// L1 entries needed to map `virtualSize` bytes with `clusterSize`-byte clusters (8-byte L2 entries).
    static func l1Entries(virtualSize: UInt64, clusterSize: UInt64) -> UInt64 {
        let bytesPerL2 = clusterSize * (clusterSize / 8)
        return virtualSize / bytesPerL2 + (virtualSize % bytesPerL2 == 0 ? 0 : 1)
    }

    /// The smallest cluster size from `preferred` (64 KiB, qemu's default) up to 2 MiB whose L1 table stays
    /// within qemu's 32 MiB limit for this disk, or nil when none does (over 2 EiB).
    public static func smallestClusterSize(virtualSize: UInt64, preferred: UInt64 = 65536) -> UInt64? {
        var size = preferred
        while size <= 2 << 20 {
            if l1Entries(virtualSize: virtualSize, clusterSize: size) * 8 <= QCOW2Header.maxL1Bytes { return size }
            size <<= 1
        }
        return nil
    }

    enum ClusterKind { case unallocated, zero, data }

    /// What a cluster becomes, given the roles of the bytes in it.
    func kind(_ roles: UnitRoles) -> ClusterKind {
        let incremental = plan.baseDepth != nil
        if roles.contains(.data) || (incremental && roles.contains(.zero) && roles.contains(.unchanged)) { return .data }
        if roles.contains(.zero) { return .zero }
        return .unallocated
    }

    struct Layout {
        var l1Entries: UInt64
        var l2Tables: [UInt64]  // L1 indices that get an L2 table, ascending
        var dataClusters: UInt64
        var refcountTableClusters: UInt64
        var refcountBlocks: UInt64
        var l1Clusters: UInt64
        var totalClusters: UInt64

        var refcountTableOffset: UInt64 { 1 }
        var refcountBlocksStart: UInt64 { 1 + refcountTableClusters }
        var l1Start: UInt64 { refcountBlocksStart + refcountBlocks }
        var l2Start: UInt64 { l1Start + l1Clusters }
        var dataStart: UInt64 { l2Start + UInt64(l2Tables.count) }
    }

    func layout() throws -> Layout {
        let entriesPerL2 = clusterSize / 8
        let virtualSize = plan.virtualSize
        let l1Entries = Self.l1Entries(virtualSize: virtualSize, clusterSize: clusterSize)
        var tables: [UInt64] = []
        var dataClusters: UInt64 = 0
        try plan.forEachUnitRun(unitSize: clusterSize) { first, count, roles in
            let kind = kind(roles)
            guard kind != .unallocated else { return }
            if kind == .data { dataClusters += count }
            let firstTable = first / entriesPerL2
            let lastTable = (first + count - 1) / entriesPerL2
            for table in firstTable...lastTable where tables.last != table { tables.append(table) }
        }
        let l1Clusters = (l1Entries * 8 + clusterSize - 1) / clusterSize
        let refcountsPerBlock = clusterSize / 2
        var refcountBlocks: UInt64 = 1
        var tableClusters: UInt64 = 1
        var total: UInt64 = 0
        for _ in 0..<16 {
            total = 1 + tableClusters + refcountBlocks + l1Clusters + UInt64(tables.count) + dataClusters
            let neededBlocks = (total + refcountsPerBlock - 1) / refcountsPerBlock
            let neededTable = max(1, (neededBlocks * 8 + clusterSize - 1) / clusterSize)
            if neededBlocks == refcountBlocks && neededTable == tableClusters { break }
            refcountBlocks = neededBlocks
            tableClusters = neededTable
        }
        return Layout(
            l1Entries: l1Entries, l2Tables: tables, dataClusters: dataClusters, refcountTableClusters: tableClusters,
            refcountBlocks: refcountBlocks, l1Clusters: l1Clusters, totalClusters: total)
    }

    public func export(to output: ExportOutput) throws {
        let layout = try layout()
        // Every cluster of the layout is written whole, header to the last data cluster.
        output.announce(total: layout.totalClusters * clusterSize)
        let entriesPerL2 = clusterSize / 8
        try output.write(header(layout))
        // Refcount table and blocks: clusters [0, total) have refcount 1.
        var table = [UInt8](repeating: 0, count: Int(layout.refcountTableClusters * clusterSize))
        for block in 0..<layout.refcountBlocks {
            put(&table, at: Int(block) * 8, (layout.refcountBlocksStart + block) * clusterSize)
        }
        try output.write(table)
        let refcountsPerBlock = clusterSize / 2
        var block = [UInt8](repeating: 0, count: Int(clusterSize))
        for index in 0..<layout.refcountBlocks {
            for byte in block.indices { block[byte] = 0 }
            let first = index * refcountsPerBlock
            let count = min(refcountsPerBlock, layout.totalClusters > first ? layout.totalClusters - first : 0)
            for entry in 0..<Int(count) { block[entry * 2 + 1] = 1 }
            try output.write(block)
        }
        // L1, one cluster at a time: each table gets the next L2 cluster.
        var l1 = [UInt8](repeating: 0, count: Int(clusterSize))
        let entriesPerL1Cluster = clusterSize / 8
        var nextTable = 0
        for l1Cluster in 0..<layout.l1Clusters {
            for byte in l1.indices { l1[byte] = 0 }
            let firstEntry = l1Cluster * entriesPerL1Cluster
            while nextTable < layout.l2Tables.count, layout.l2Tables[nextTable] < firstEntry + entriesPerL1Cluster {
                let entry = (layout.l2Start + UInt64(nextTable)) * clusterSize | QCOW2L2Decoder.copiedFlag
                put(&l1, at: Int(layout.l2Tables[nextTable] - firstEntry) * 8, entry)
                nextTable += 1
            }
            try output.write(l1)
        }
        // L2 tables, built from a second walk of the plan.
        var nextData = layout.dataStart
        var l2 = [UInt8](repeating: 0, count: Int(clusterSize))
        var currentTable: UInt64?
        func flushTable() throws {
            if currentTable != nil { try output.write(l2) }
            for byte in l2.indices { l2[byte] = 0 }
        }
        try plan.forEachUnitRun(unitSize: clusterSize) { first, count, roles in
            let kind = kind(roles)
            guard kind != .unallocated else { return }
            for cluster in first..<(first + count) {
                let tableIndex = cluster / entriesPerL2
                if currentTable != tableIndex {
                    try flushTable()
                    currentTable = tableIndex
                }
                let entry: UInt64
                if kind == .data {
                    entry = nextData * clusterSize | QCOW2L2Decoder.copiedFlag
                    nextData += 1
                } else {
                    entry = QCOW2L2Decoder.zeroFlag
                }
                put(&l2, at: Int(cluster % entriesPerL2) * 8, entry)
            }
        }
        try flushTable()
        // Data clusters, in guest order, each the guest view of its cluster; runs of them are read and
        // written in pieces of 256 KiB (small enough to stay in cache between the read and the write).
        let stream = GuestStream(plan: plan, reader: reader)
        let clustersPerPiece = max(1, (256 << 10) / clusterSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(clustersPerPiece * clusterSize), alignment: 4096)
        defer { buffer.deallocate() }
        try plan.forEachUnitRun(unitSize: clusterSize) { first, count, roles in
            guard kind(roles) == .data else { return }
            var cluster = first
            while cluster < first + count {
                let clusters = min(clustersPerPiece, first + count - cluster)
                let start = cluster * clusterSize
                let bytes = Int(clusters * clusterSize)
                let guestBytes = Int(min(UInt64(bytes), plan.virtualSize - start))
                if guestBytes == bytes, let plain = try stream.plainSource(from: start, count: UInt64(bytes)),
                    try output.send(from: plain.descriptor, offset: plain.offset, count: UInt64(bytes))
                {
                    cluster += clusters
                    continue
                }
                if guestBytes < bytes {
                    UnsafeMutableRawBufferPointer(rebasing: buffer[guestBytes..<bytes]).initializeMemory(as: UInt8.self, repeating: 0)
                }
                try stream.fill(from: start, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<guestBytes]))
                try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<bytes]))
                cluster += clusters
            }
        }
    }

    /// Cluster 0: the v3 header, the backing format extension, the end marker, the backing name.
    func header(_ layout: Layout) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
        put32(&bytes, at: 0, QCOW2Header.magic)
        put32(&bytes, at: 4, 3)
        put32(&bytes, at: 20, UInt32(clusterSize.trailingZeroBitCount))
        put(&bytes, at: 24, plan.virtualSize)
        put32(&bytes, at: 36, UInt32(layout.l1Entries))
        put(&bytes, at: 40, layout.l1Start * clusterSize)
        put(&bytes, at: 48, layout.refcountTableOffset * clusterSize)
        put32(&bytes, at: 56, UInt32(layout.refcountTableClusters))
        put32(&bytes, at: 96, 4)  // refcount_order: 16-bit refcounts
        put32(&bytes, at: 100, 112)  // header_length; byte 104 compression_type = zlib
        var position = 112
        if let backing {
            let format = Array(backing.format.utf8)
            put32(&bytes, at: position, QCOW2HeaderExtensions.backingFormat)
            put32(&bytes, at: position + 4, UInt32(format.count))
            bytes.replaceSubrange((position + 8)..<(position + 8 + format.count), with: format)
            position += 8 + (format.count + 7) / 8 * 8
        }
        position += 8  // end-of-extensions marker (type 0, length 0)
        if let backing {
            let name = Array(backing.name.utf8)
            put(&bytes, at: 8, UInt64(position))
            put32(&bytes, at: 16, UInt32(name.count))
            bytes.replaceSubrange(position..<(position + name.count), with: name)
        }
        return bytes
    }
}

@inline(__always)
func put(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
    for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (56 - 8 * index)) }
}

@inline(__always)
func put32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
    for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index)) }
}

@inline(__always)
func put16(_ bytes: inout [UInt8], at offset: Int, _ value: UInt16) {
    bytes[offset] = UInt8(truncatingIfNeeded: value >> 8)
    bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
}
