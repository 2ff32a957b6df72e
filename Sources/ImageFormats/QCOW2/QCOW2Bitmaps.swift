/// qcow2 persistent dirty bitmaps (qcow2.txt, "Bitmaps extension" and "Bitmaps"; qemu's
/// `docs/interop/bitmaps.rst`): how KVM, oVirt and Proxmox track what changed since a backup.
///
/// ```
/// extension (type 0x23852875):  0 nb_bitmaps u32   4 reserved u32   8 directory size u64   16 directory offset u64
/// directory entry:               0 table offset u64   8 table size u32   12 flags u32   16 type u8
///                                17 granularity bits u8   18 name size u16   20 extra data size u32
///                                24 extra data, then the name, padded to a multiple of 8
/// table entry (u64):             bits 9-55 data cluster offset; offset 0: bit 0 says all zeros (0) or all ones (1)
/// data:                          bit k of the bitmap is bit k % 8 of byte k / 8 (least significant first)
/// ```
/// Bit k covers guest bytes `[k * granularity, (k + 1) * granularity)`. Everything is checked against the
/// file's size and qemu's limits before use.
public struct QCOW2BitmapsExtension: Sendable, Equatable {
    /// qemu's limits (block/qcow2.h `QCOW2_MAX_BITMAPS`, `QCOW2_MAX_BITMAP_DIRECTORY_SIZE`).
    public static let maxBitmaps: UInt32 = 65535
    public static let maxDirectorySize: UInt64 = 1024 * 65535

    public var count: UInt32
    public var directorySize: UInt64
    public var directoryOffset: UInt64

    /// Parses the extension's 24 bytes.
    ///
    /// - Parameter offset: the file offset of the extension data, for errors.
    public init(parsing data: ArraySlice<UInt8>, offset: UInt64, clusterSize: UInt64, fileSize: UInt64) throws(FormatError) {
        var reader = ByteReader(data, baseOffset: offset)
        count = try reader.read(UInt32.self, field: "bitmaps extension nb_bitmaps")
        _ = try reader.read(UInt32.self, field: "bitmaps extension reserved")
        directorySize = try reader.read(UInt64.self, field: "bitmaps extension bitmap_directory_size")
        directoryOffset = try reader.read(UInt64.self, field: "bitmaps extension bitmap_directory_offset")
        guard count >= 1, count <= Self.maxBitmaps else {
            throw .outOfBounds(field: "bitmaps extension nb_bitmaps", offset: offset, value: UInt64(count), limit: UInt64(Self.maxBitmaps))
        }
        guard directorySize >= 24 * UInt64(count), directorySize <= Self.maxDirectorySize else {
            throw .outOfBounds(
                field: "bitmaps extension bitmap_directory_size", offset: offset + 8, value: directorySize, limit: Self.maxDirectorySize)
        }
        guard directoryOffset % clusterSize == 0 else {
            throw .invalid(field: "bitmaps extension bitmap_directory_offset", offset: offset + 16, reason: "not cluster aligned")
        }
        let (end, overflow) = directoryOffset.addingReportingOverflow(directorySize)
        guard !overflow, end <= fileSize else {
            throw .outOfBounds(field: "bitmap directory", offset: offset + 16, value: directoryOffset, limit: fileSize)
        }
    }
}

/// One bitmap directory entry.
public struct QCOW2BitmapEntry: Sendable, Equatable {
    /// Bits 0-2 of `flags`.
    public static let inUseFlag: UInt32 = 1 << 0
    public static let autoFlag: UInt32 = 1 << 1
    public static let extraDataCompatibleFlag: UInt32 = 1 << 2
    /// qemu's limits (block/qcow2-bitmap.c `BME_*`).
    public static let maxTableSize: UInt32 = 0x800_0000
    public static let granularityBits: ClosedRange<UInt8> = 9...31
    public static let maxNameSize: UInt16 = 1023

    public var name: String
    public var tableOffset: UInt64
    public var tableSize: UInt32
    public var flags: UInt32
    public var granularityBits: UInt8
    /// The file offset of the entry, for errors.
    public var entryOffset: UInt64

    public var granularity: UInt64 { 1 << UInt64(granularityBits) }
    /// The bitmap was not saved correctly (its writer died): its content may be stale.
    public var inUse: Bool { flags & Self.inUseFlag != 0 }
    /// The bitmap tracks every write (qemu's "enabled").
    public var auto: Bool { flags & Self.autoFlag != 0 }

    /// Bytes of bitmap data for a disk of `virtualSize`: one bit per granule, rounded up.
    public func dataSize(virtualSize: UInt64) -> UInt64 {
        let bits = (virtualSize + granularity - 1) / granularity
        return (bits + 7) / 8
    }

    /// Parses `count` entries that exactly fill `directory` (at file offset `offset`).
    public static func directory(
        parsing directory: ArraySlice<UInt8>, count: UInt32, offset: UInt64, clusterSize: UInt64, virtualSize: UInt64, fileSize: UInt64
    ) throws(FormatError) -> [QCOW2BitmapEntry] {
        var reader = ByteReader(directory, baseOffset: offset)
        var entries: [QCOW2BitmapEntry] = []
        var names = Set<String>()
        for _ in 0..<count {
            let start = reader.offset
            let tableOffset = try reader.read(UInt64.self, field: "bitmap directory entry bitmap_table_offset")
            let tableSize = try reader.read(UInt32.self, field: "bitmap directory entry bitmap_table_size")
            let flags = try reader.read(UInt32.self, field: "bitmap directory entry flags")
            let type = try reader.read(UInt8.self, field: "bitmap directory entry type")
            let granularityBits = try reader.read(UInt8.self, field: "bitmap directory entry granularity_bits")
            let nameSize = try reader.read(UInt16.self, field: "bitmap directory entry name_size")
            let extraSize = try reader.read(UInt32.self, field: "bitmap directory entry extra_data_size")
            guard type == 1 else {
                throw .unsupported(field: "bitmap directory entry type", offset: start + 16, feature: "bitmap type \(type)")
            }
            guard flags & ~UInt32(7) == 0 else {
                throw .invalid(
                    field: "bitmap directory entry flags", offset: start + 12, reason: "reserved bits set (0x\(String(flags, radix: 16)))")
            }
            guard Self.granularityBits.contains(granularityBits) else {
                throw .outOfBounds(
                    field: "bitmap directory entry granularity_bits", offset: start + 17, value: UInt64(granularityBits),
                    limit: UInt64(Self.granularityBits.upperBound))
            }
            guard nameSize >= 1, nameSize <= Self.maxNameSize else {
                throw .outOfBounds(
                    field: "bitmap directory entry name_size", offset: start + 18, value: UInt64(nameSize), limit: UInt64(Self.maxNameSize))
            }
            guard UInt64(extraSize) <= UInt64(reader.remaining) else {
                throw .truncated(
                    field: "bitmap directory entry extra_data", offset: reader.offset, needed: UInt64(extraSize),
                    available: UInt64(reader.remaining))
            }
            if extraSize > 0 && flags & Self.extraDataCompatibleFlag == 0 {
                throw .unsupported(field: "bitmap directory entry extra_data_size", offset: start + 20, feature: "bitmap extra data")
            }
            try reader.skip(Int(extraSize), field: "bitmap directory entry extra_data")
            let name = String(decoding: try reader.readBytes(Int(nameSize), field: "bitmap directory entry name"), as: UTF8.self)
            let length = 24 + UInt64(extraSize) + UInt64(nameSize)
            let padding = Int((length + 7) / 8 * 8 - length)
            try reader.skip(min(padding, reader.remaining), field: "bitmap directory entry padding")
            guard names.insert(name).inserted else {
                throw .invalid(
                    field: "bitmap directory entry name", offset: start + 24 + UInt64(extraSize), reason: "duplicate name '\(name)'")
            }
            var entry = QCOW2BitmapEntry(
                name: name, tableOffset: tableOffset, tableSize: tableSize, flags: flags, granularityBits: granularityBits,
                entryOffset: start)
            // The table: cluster aligned, inside the file, exactly as long as the bitmap's data needs.
            let needed = (entry.dataSize(virtualSize: virtualSize) + clusterSize - 1) / clusterSize
            guard tableSize <= Self.maxTableSize, UInt64(tableSize) == needed else {
                throw .invalid(
                    field: "bitmap directory entry bitmap_table_size", offset: start + 8,
                    reason: "\(tableSize) entries where a \(virtualSize)-byte disk needs \(needed)")
            }
            guard tableOffset % clusterSize == 0 else {
                throw .invalid(field: "bitmap directory entry bitmap_table_offset", offset: start, reason: "not cluster aligned")
            }
            let (end, overflow) = tableOffset.addingReportingOverflow(UInt64(tableSize) * 8)
            guard !overflow, end <= fileSize else {
                throw .outOfBounds(field: "bitmap directory entry bitmap_table_offset", offset: start, value: tableOffset, limit: fileSize)
            }
            entry.tableOffset = tableOffset
            entries.append(entry)
        }
        return entries
    }
}

/// A bitmap table (one level: one entry per cluster of bitmap data).
public enum QCOW2BitmapTable {
    public enum Entry: Sendable, Equatable {
        /// No cluster: every bit reads 0.
        case zeros
        /// No cluster: every bit reads 1.
        case ones
        /// The cluster at this file offset.
        case cluster(UInt64)
    }

    /// Decodes a table's bytes (at file offset `offset`), checking each cluster offset.
    public static func decode(_ bytes: ArraySlice<UInt8>, offset: UInt64, clusterSize: UInt64, fileSize: UInt64) throws(FormatError)
        -> [Entry]
    {
        var reader = ByteReader(bytes, baseOffset: offset)
        var entries: [Entry] = []
        entries.reserveCapacity(bytes.count / 8)
        while reader.remaining >= 8 {
            let at = reader.offset
            let raw = try reader.read(UInt64.self, field: "bitmap table entry")
            let host = raw & 0x00FF_FFFF_FFFF_FE00
            guard raw & 0xFF00_0000_0000_01FE == 0 else {
                throw .invalid(field: "bitmap table entry", offset: at, reason: "reserved bits set (0x\(String(raw, radix: 16)))")
            }
            if host == 0 {
                entries.append(raw & 1 == 1 ? .ones : .zeros)
                continue
            }
            guard raw & 1 == 0 else { throw .invalid(field: "bitmap table entry", offset: at, reason: "bit 0 set with a cluster offset") }
            guard host % clusterSize == 0, host <= fileSize, clusterSize <= fileSize - host else {
                throw .outOfBounds(field: "bitmap table entry", offset: at, value: host, limit: fileSize)
            }
            entries.append(.cluster(host))
        }
        return entries
    }

    /// Appends the guest ranges whose bits are set in `bits`, bit 0 of which is bitmap bit `firstBit`,
    /// merging with the last range when they touch; clipped to `virtualSize`.
    public static func appendDirtyRanges(
        _ bits: ArraySlice<UInt8>, firstBit: UInt64, granularity: UInt64, virtualSize: UInt64, into ranges: inout [Range<UInt64>]
    ) {
        var bit = firstBit
        for byte in bits {
            defer { bit += 8 }
            if byte == 0 { continue }
            for k in 0..<UInt64(8) where byte & (1 << UInt8(k)) != 0 {
                let start = (bit + k) * granularity
                guard start < virtualSize else { return }
                append(start..<min(start + granularity, virtualSize), into: &ranges)
            }
        }
    }

    /// Appends a range, merged with the last one when they touch.
    public static func append(_ range: Range<UInt64>, into ranges: inout [Range<UInt64>]) {
        if let last = ranges.last, last.upperBound >= range.lowerBound {
            ranges[ranges.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
        } else {
            ranges.append(range)
        }
    }
}
