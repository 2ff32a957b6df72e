/// The dynamic disk header of dynamic and differencing VHDs (VHD spec, "Dynamic Disk Header Format"),
/// 1024 bytes, big-endian, at the footer's `data offset`.
///
/// ```
///   0 cookie "cxsparse"   8 data offset (unused)   16 table offset (BAT, u64)   24 header version
///  28 max table entries   32 block size            36 checksum                  40 parent unique id (16)
///  56 parent time stamp   60 reserved              64 parent unicode name (512, UTF-16BE)
/// 576 parent locator entries, 8 x 24 bytes         768 reserved (256)
/// ```
public struct VHDDynamicHeader: Sendable, Equatable {
    public static let size = 1024
    public static let cookie: [UInt8] = Array("cxsparse".utf8)
    /// Largest block size accepted: ``Limits/VHD/maxBlockSize``.
    public static let maxBlockSize = Limits.VHD.maxBlockSize

    /// One parent locator entry (24 bytes at 576 + 24 * i).
    ///
    /// ```
    /// 0 platform code   4 platform data space   8 platform data length   12 reserved   16 platform data offset (u64)
    /// ```
    public struct Locator: Sendable, Equatable {
        public var code: String
        public var dataSpace: UInt32
        public var dataLength: UInt32
        public var dataOffset: UInt64
        /// File offset of the entry itself, for errors.
        public var entryOffset: UInt64
    }

    public var tableOffset: UInt64
    public var headerVersion: UInt32
    public var maxTableEntries: UInt32
    public var blockSize: UInt32
    public var checksum: UInt32
    public var parentUniqueID: [UInt8]
    public var parentTimestamp: UInt32
    public var parentName: String
    public var locators: [Locator]

    public var sectorsPerBlock: UInt64 { UInt64(blockSize) / 512 }
    /// Bytes of a block's sector bitmap: one bit per sector, padded to a 512-byte boundary.
    public var bitmapBytes: UInt64 { ((sectorsPerBlock + 7) / 8 + 511) / 512 * 512 }

    public init(parsing bytes: ArraySlice<UInt8>, fileOffset: UInt64) throws(FormatError) {
        var r = ByteReader(bytes, baseOffset: fileOffset)
        let cookie = try r.readBytes(8, field: "VHD dynamic header cookie")
        guard cookie.elementsEqual(Self.cookie) else {
            throw .badMagic(field: "VHD dynamic header cookie", found: VHDFooter.integer(cookie), offset: fileOffset)
        }
        _ = try r.read(UInt64.self, field: "VHD dynamic header data offset")
        tableOffset = try r.read(UInt64.self, field: "VHD dynamic header table offset")
        headerVersion = try r.read(UInt32.self, field: "VHD dynamic header version")
        maxTableEntries = try r.read(UInt32.self, field: "VHD dynamic header max table entries")
        blockSize = try r.read(UInt32.self, field: "VHD dynamic header block size")
        checksum = try r.read(UInt32.self, field: "VHD dynamic header checksum")
        parentUniqueID = Array(try r.readBytes(16, field: "VHD dynamic header parent unique id"))
        parentTimestamp = try r.read(UInt32.self, field: "VHD dynamic header parent time stamp")
        try r.skip(4, field: "VHD dynamic header reserved")
        let nameBytes = try r.readBytes(512, field: "VHD dynamic header parent unicode name")
        parentName = VHDText.utf16(nameBytes, bigEndian: true)
        var locators: [Locator] = []
        for _ in 0..<8 {
            let entryOffset = r.offset
            let code = try r.readBytes(4, field: "VHD parent locator platform code")
            let space = try r.read(UInt32.self, field: "VHD parent locator platform data space")
            let length = try r.read(UInt32.self, field: "VHD parent locator platform data length")
            try r.skip(4, field: "VHD parent locator reserved")
            let offset = try r.read(UInt64.self, field: "VHD parent locator platform data offset")
            if code.contains(where: { $0 != 0 }) {
                locators.append(
                    Locator(
                        code: VHDFooter.fourCC(code), dataSpace: space, dataLength: length, dataOffset: offset, entryOffset: entryOffset))
            }
        }
        self.locators = locators
        try r.skip(256, field: "VHD dynamic header reserved")
        let computed = VHDChecksum.compute(bytes.prefix(Self.size), checksumAt: 36)
        guard computed == checksum else {
            throw .badChecksum(field: "VHD dynamic header checksum", offset: fileOffset + 36, expected: checksum, computed: computed)
        }
        guard headerVersion >> 16 == 1 else {
            throw .unsupported(
                field: "VHD dynamic header version", offset: fileOffset + 24, feature: "version 0x\(String(headerVersion, radix: 16))")
        }
        guard blockSize >= 512, blockSize <= Self.maxBlockSize, blockSize & (blockSize - 1) == 0 else {
            throw .invalid(
                field: "VHD dynamic header block size", offset: fileOffset + 32,
                reason: "\(blockSize) is not a power of two from 512 bytes to 1 GiB")
        }
    }

    /// Checks the table against the disk size and the file: enough entries to map the disk, all inside the file.
    public func validateTable(currentSize: UInt64, fileSize: UInt64, headerOffset: UInt64) throws(FormatError) {
        // current_size comes from the footer: any 64-bit value, so the rounding up must not overflow.
        let blocks = currentSize / UInt64(blockSize) + (currentSize % UInt64(blockSize) == 0 ? 0 : 1)
        guard UInt64(maxTableEntries) >= blocks else {
            throw .invalid(
                field: "VHD dynamic header max table entries", offset: headerOffset + 28,
                reason: "\(maxTableEntries) entries cannot map \(currentSize) bytes in \(blockSize)-byte blocks (needs \(blocks))")
        }
        let end = tableOffset.addingReportingOverflow(UInt64(maxTableEntries) * 4)
        guard !end.overflow, end.partialValue <= fileSize else {
            throw .outOfBounds(
                field: "VHD dynamic header max table entries", offset: headerOffset + 28, value: UInt64(maxTableEntries),
                limit: tableOffset < fileSize ? (fileSize - tableOffset) / 4 : 0)
        }
    }
}

/// Text fields of VHD structures.
public enum VHDText {
    /// Decodes UTF-16 text up to the first NUL code unit.
    public static func utf16(_ bytes: ArraySlice<UInt8>, bigEndian: Bool) -> String {
        var units: [UInt16] = []
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            let first = UInt16(bytes[index])
            let second = UInt16(bytes[index + 1])
            let unit = bigEndian ? first << 8 | second : second << 8 | first
            if unit == 0 { break }
            units.append(unit)
            index += 2
        }
        return String(decoding: units, as: UTF16.self)
    }

    /// The path a parent locator holds: W2ru/W2ku are UTF-16LE Windows paths, MacX a UTF-8 `file://` URL.
    public static func locatorPath(code: String, data: ArraySlice<UInt8>) -> String? {
        switch code {
        case "W2ru", "W2ku":
            return utf16(data, bigEndian: false)
        case "MacX":
            var text = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
            if text.hasPrefix("file://") { text.removeFirst(7) }
            if text.hasPrefix("localhost/") { text.removeFirst(9) }
            return text.removingPercentEncodingForPaths()
        default:
            return nil
        }
    }
}

extension String {
    /// Decodes `%XX` escapes as a file URL path carries them.
    func removingPercentEncodingForPaths() -> String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var iterator = Array(utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
