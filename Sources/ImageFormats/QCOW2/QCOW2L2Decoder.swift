/// Turns QCOW2 L1/L2 entries into the runs of one layer's allocation map.
///
/// L1 entry (qcow2.txt, "Cluster mapping"): bits 9-55 L2 table offset (cluster aligned; 0 = unallocated).
/// L2 entry, standard: bit 0 reads-as-zero, bits 9-55 host cluster offset, bit 62 compressed, bit 63 copied.
/// Compressed descriptor (x = 62 - (cluster_bits - 8)): bits 0..x-1 host byte offset, x..61 extra sectors.
/// Extended L2 entries add a 64-bit bitmap: bits 0-31 subcluster allocated, 32-63 subcluster reads as zero.
///
/// Runs are ``Extent`` values at depth 0: data (`present`, `data`), zero (`present`, `zero`) or
/// unallocated (`present == false`, to be looked up in the backing file).
public struct QCOW2L2Decoder: Sendable {
    public static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    public static let compressedFlag: UInt64 = 1 << 62
    public static let copiedFlag: UInt64 = 1 << 63
    public static let zeroFlag: UInt64 = 1

    public let header: QCOW2Header
    /// Size of the file data clusters live in (the image itself or its external data file).
    public let dataFileSize: UInt64
    /// Size of the image file itself (compressed clusters always live there).
    public let imageFileSize: UInt64
    public let hasExternalData: Bool
    /// qemu reports no host offsets for encrypted images; neither do we.
    public let reportsOffsets: Bool

    public init(header: QCOW2Header, imageFileSize: UInt64, dataFileSize: UInt64, hasExternalData: Bool) {
        self.header = header
        self.imageFileSize = imageFileSize
        self.dataFileSize = dataFileSize
        self.hasExternalData = hasExternalData
        self.reportsOffsets = header.cryptMethod == 0
    }

    /// Decodes an L1 entry into its L2 table offset, or nil when the L2 table is unallocated.
    ///
    /// - Parameter entryOffset: file offset of the entry, for errors.
    public func l2TableOffset(l1Entry: UInt64, entryOffset: UInt64) throws(FormatError) -> UInt64? {
        let offset = l1Entry & Self.offsetMask
        guard offset != 0 else { return nil }
        guard offset % header.clusterSize == 0 else {
            throw .invalid(field: "L1 entry", offset: entryOffset, reason: "L2 table offset \(offset) is not cluster aligned")
        }
        let (end, overflow) = offset.addingReportingOverflow(header.clusterSize)
        guard !overflow, end <= imageFileSize else {
            throw .outOfBounds(field: "L1 entry", offset: entryOffset, value: offset, limit: imageFileSize)
        }
        return offset
    }

    /// Decodes one L2 table and appends its runs, clipped to the virtual size.
    ///
    /// - Parameters:
    ///   - table: the L2 table's bytes (one cluster).
    ///   - tableOffset: its file offset, for errors.
    ///   - guestStart: guest offset mapped by the table's first entry.
    public func decode(
        table: UnsafeRawBufferPointer, tableOffset: UInt64, guestStart: UInt64, into runs: inout ExtentListBuilder
    ) throws(FormatError) {
        var hostClusters: UInt64 = 0
        try decode(table: table, tableOffset: tableOffset, guestStart: guestStart, into: &runs, hostClusters: &hostClusters)
    }

    /// Like ``decode(table:tableOffset:guestStart:into:)``, also adding to `hostClusters` the number of
    /// entries that occupy a host cluster (allocated, not compressed), so a caller can check that the
    /// active table does not map more clusters than the data file can hold.
    public func decode(
        table: UnsafeRawBufferPointer, tableOffset: UInt64, guestStart: UInt64, into runs: inout ExtentListBuilder,
        hostClusters: inout UInt64
    ) throws(FormatError) {
        let clusterSize = header.clusterSize
        let entrySize = Int(header.l2EntrySize)
        let entryCount = min(Int(header.l2Entries), table.count / entrySize)
        let virtualEnd = header.size
        var index = 0
        while index < entryCount {
            let guest = guestStart + UInt64(index) * clusterSize
            if guest >= virtualEnd { return }
            let entry = UInt64.loadBigEndian(from: table, at: index * entrySize)
            let bitmap = header.hasExtendedL2 ? UInt64.loadBigEndian(from: table, at: index * entrySize + 8) : 0
            if entry == 0 && bitmap == 0 {
                // Fast path: a run of unallocated entries becomes one run.
                var last = index + 1
                while last < entryCount {
                    if UInt64.loadBigEndian(from: table, at: last * entrySize) != 0 { break }
                    if header.hasExtendedL2, UInt64.loadBigEndian(from: table, at: last * entrySize + 8) != 0 { break }
                    last += 1
                }
                let end = min(guestStart + UInt64(last) * clusterSize, virtualEnd)
                runs.append(Extent(start: guest, length: end - guest, depth: 0, present: false, zero: false, data: false))
                index = last
                continue
            }
            let length = min(clusterSize, virtualEnd - guest)
            let entryOffset = tableOffset + UInt64(index * entrySize)
            if entry & Self.compressedFlag == 0 && (entry & Self.offsetMask != 0 || (hasExternalData && entry & Self.copiedFlag != 0)) {
                hostClusters += 1
            }
            try decodeEntry(entry, bitmap: bitmap, guest: guest, length: length, entryOffset: entryOffset, into: &runs)
            index += 1
        }
    }

    private func decodeEntry(
        _ entry: UInt64, bitmap: UInt64, guest: UInt64, length: UInt64, entryOffset: UInt64,
        into runs: inout ExtentListBuilder
    ) throws(FormatError) {
        if entry & Self.compressedFlag != 0 {
            let hostOffset = try compressedHostOffset(entry, entryOffset: entryOffset)
            guard bitmap == 0 else {
                throw .invalid(
                    field: "L2 entry bitmap", offset: entryOffset + 8, reason: "compressed cluster has a non-zero subcluster bitmap")
            }
            // The descriptor's sector count may run past the end of the file for the last cluster.
            let byteCount = min(compressedByteCount(entry), imageFileSize - hostOffset, UInt64(UInt32.max))
            runs.append(
                Extent(
                    start: guest, length: length, depth: 0, present: true, zero: false, data: true, compressed: true,
                    compressedCluster: .init(hostOffset: hostOffset, byteCount: UInt32(byteCount))))
            return
        }
        let hostOffset = entry & Self.offsetMask
        let allocated = hostOffset != 0 || (hasExternalData && entry & Self.copiedFlag != 0)
        if allocated {
            guard hostOffset % header.clusterSize == 0 else {
                throw .invalid(field: "L2 entry", offset: entryOffset, reason: "host cluster offset \(hostOffset) is not cluster aligned")
            }
            guard hostOffset < dataFileSize else {
                throw .outOfBounds(field: "L2 entry", offset: entryOffset, value: hostOffset, limit: dataFileSize)
            }
        }
        let offset: UInt64? = allocated && reportsOffsets ? hostOffset : nil
        guard header.hasExtendedL2 else {
            if entry & Self.zeroFlag != 0 {
                runs.append(Extent(start: guest, length: length, depth: 0, present: true, zero: true, data: false, offset: offset))
            } else if allocated {
                runs.append(Extent(start: guest, length: length, depth: 0, present: true, zero: false, data: true, offset: offset))
            } else {
                runs.append(Extent(start: guest, length: length, depth: 0, present: false, zero: false, data: false))
            }
            return
        }
        let allocatedBits = UInt32(truncatingIfNeeded: bitmap)
        let zeroBits = UInt32(truncatingIfNeeded: bitmap >> 32)
        guard allocatedBits & zeroBits == 0 else {
            throw .invalid(field: "L2 entry bitmap", offset: entryOffset + 8, reason: "a subcluster is marked both allocated and zero")
        }
        guard allocated || allocatedBits == 0 else {
            throw .invalid(
                field: "L2 entry bitmap", offset: entryOffset + 8, reason: "subclusters are allocated but the cluster has no host offset")
        }
        let subclusterSize = header.clusterSize / 32
        for sub in 0..<UInt64(32) {
            let subStart = guest + sub * subclusterSize
            guard subStart < guest + length else { break }
            let subLength = min(subclusterSize, guest + length - subStart)
            let subOffset = offset.map { $0 + sub * subclusterSize }
            let bit = UInt32(1) << UInt32(sub)
            if zeroBits & bit != 0 {
                runs.append(Extent(start: subStart, length: subLength, depth: 0, present: true, zero: true, data: false, offset: subOffset))
            } else if allocatedBits & bit != 0 {
                runs.append(Extent(start: subStart, length: subLength, depth: 0, present: true, zero: false, data: true, offset: subOffset))
            } else {
                runs.append(
                    Extent(start: subStart, length: subLength, depth: 0, present: false, zero: false, data: false, offset: subOffset))
            }
        }
    }

    /// Splits a compressed cluster descriptor and checks it points inside the image file.
    public func compressedHostOffset(_ entry: UInt64, entryOffset: UInt64) throws(FormatError) -> UInt64 {
        let offsetBits = 62 - (UInt64(header.clusterBits) - 8)
        let hostOffset = entry & ((UInt64(1) << offsetBits) - 1)
        guard hostOffset < imageFileSize else {
            throw .outOfBounds(field: "compressed L2 entry", offset: entryOffset, value: hostOffset, limit: imageFileSize)
        }
        return hostOffset
    }

    /// Byte length of a compressed cluster's stored data as the descriptor bounds it.
    public func compressedByteCount(_ entry: UInt64) -> UInt64 {
        let offsetBits = 62 - (UInt64(header.clusterBits) - 8)
        let hostOffset = entry & ((UInt64(1) << offsetBits) - 1)
        let extraSectors = (entry & ~Self.compressedFlag & ~Self.copiedFlag) >> offsetBits
        return (extraSectors + 1) * 512 - (hostOffset & 511)
    }
}
