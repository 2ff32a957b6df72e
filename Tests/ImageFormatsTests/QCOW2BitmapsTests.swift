import Testing

@testable import ImageFormats

/// The bitmaps extension, directory and table parsers on hostile bytes: every prefix of a valid structure
/// throws (never traps), bit flips never trap, and each limit is refused by field and offset.
@Suite struct QCOW2BitmapsTests {
    static let clusterSize: UInt64 = 65536
    static let virtualSize: UInt64 = 64 << 20
    static let fileSize: UInt64 = 1 << 30

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    /// One directory entry: table at 3 clusters in, one table entry (64 MiB at 64 KiB granularity is 128
    /// bytes of bitmap, one cluster), auto, name "b0".
    static func entry(name: String = "b0", flags: UInt32 = 2, granularityBits: UInt8 = 16, tableSize: UInt32 = 1) -> [UInt8] {
        var bytes = bigEndian(UInt64(3 * clusterSize)) + bigEndian(tableSize) + bigEndian(flags)
        bytes += [1, granularityBits] + bigEndian(UInt16(name.utf8.count)) + bigEndian(UInt32(0)) + Array(name.utf8)
        while bytes.count % 8 != 0 { bytes.append(0) }
        return bytes
    }

    static func directory(_ bytes: [UInt8], count: UInt32 = 1) throws(FormatError) -> [QCOW2BitmapEntry] {
        try QCOW2BitmapEntry.directory(
            parsing: bytes[...], count: count, offset: 2 * clusterSize, clusterSize: clusterSize, virtualSize: virtualSize,
            fileSize: fileSize)
    }

    @Test("a valid entry parses: name, granularity, flags, table")
    func parses() throws {
        let entries = try Self.directory(Self.entry())
        #expect(entries.count == 1)
        #expect(entries[0].name == "b0")
        #expect(entries[0].granularity == 65536)
        #expect(entries[0].auto && !entries[0].inUse)
        #expect(entries[0].dataSize(virtualSize: Self.virtualSize) == 128)
    }

    @Test("every prefix of a directory entry throws a FormatError")
    func prefixes() {
        let bytes = Self.entry()
        for length in 0..<20 {
            #expect(throws: FormatError.self) { try Self.directory(Array(bytes.prefix(length))) }
        }
    }

    @Test("hostile fields are refused by name and offset")
    func hostile() {
        func message(_ bytes: [UInt8], count: UInt32 = 1) -> String {
            do {
                _ = try Self.directory(bytes, count: count)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(message(Self.entry(granularityBits: 8)).contains("granularity_bits"))
        #expect(message(Self.entry(granularityBits: 63)).contains("granularity_bits"))
        #expect(message(Self.entry(flags: 1 << 5)).contains("flags"))
        #expect(message(Self.entry(tableSize: 0x7FFF_FFFF)).contains("bitmap_table_size"))
        #expect(message(Self.entry() + Self.entry(), count: 2).contains("duplicate name"))
        var wrongType = Self.entry()
        wrongType[16] = 2
        #expect(message(wrongType).contains("type"))
        #expect(message(Self.entry(), count: 2).contains("truncated"))
    }

    @Test("the extension refuses zero bitmaps, a directory too small, unaligned or past the file")
    func extensionLimits() {
        func parse(count: UInt32, size: UInt64, offset: UInt64) -> Bool {
            let bytes = Self.bigEndian(count) + Self.bigEndian(UInt32(0)) + Self.bigEndian(size) + Self.bigEndian(offset)
            return (try? QCOW2BitmapsExtension(parsing: bytes[...], offset: 100, clusterSize: Self.clusterSize, fileSize: Self.fileSize))
                != nil
        }
        #expect(parse(count: 1, size: 32, offset: Self.clusterSize))
        #expect(!parse(count: 0, size: 32, offset: Self.clusterSize))
        #expect(!parse(count: 2, size: 32, offset: Self.clusterSize))
        #expect(!parse(count: 1, size: 32, offset: 100))
        #expect(!parse(count: 1, size: 32, offset: Self.fileSize))
        #expect(!parse(count: 1, size: UInt64.max, offset: Self.clusterSize))
    }

    @Test("bitmap table entries: all zeros, all ones, a cluster; reserved bits and offsets past the file refused")
    func table() throws {
        let entries = try QCOW2BitmapTable.decode(
            (Self.bigEndian(UInt64(0)) + Self.bigEndian(UInt64(1)) + Self.bigEndian(UInt64(4 * Self.clusterSize)))[...], offset: 0,
            clusterSize: Self.clusterSize, fileSize: Self.fileSize)
        #expect(entries == [.zeros, .ones, .cluster(4 * Self.clusterSize)])
        #expect(throws: FormatError.self) {
            try QCOW2BitmapTable.decode(Self.bigEndian(UInt64(2))[...], offset: 0, clusterSize: Self.clusterSize, fileSize: Self.fileSize)
        }
        #expect(throws: FormatError.self) {
            try QCOW2BitmapTable.decode(
                Self.bigEndian(Self.fileSize)[...], offset: 0, clusterSize: Self.clusterSize, fileSize: Self.fileSize)
        }
    }

    @Test("dirty ranges: least significant bit first, merged, clipped to the disk")
    func ranges() {
        var ranges: [Range<UInt64>] = []
        QCOW2BitmapTable.appendDirtyRanges(
            [0b0000_0110, 0b1000_0000][...], firstBit: 0, granularity: 512, virtualSize: 8192, into: &ranges)
        #expect(ranges == [512..<1536, 7680..<8192])
        var clipped: [Range<UInt64>] = []
        QCOW2BitmapTable.appendDirtyRanges([0xFF][...], firstBit: 0, granularity: 512, virtualSize: 1000, into: &clipped)
        #expect(clipped == [0..<1000])
    }

    @Test("bit flips of a directory never trap")
    func bitFlips() {
        let bytes = Self.entry() + Self.entry(name: "second")
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= UInt8(1 << (bit % 8))
            _ = try? Self.directory(flipped, count: 2)
        }
    }
}
