/// The VHD "hard disk footer" (Virtual Hard Disk Image Format Specification, "Hard Disk Footer Format"),
/// 512 bytes, all fields big-endian. Every VHD ends with one; dynamic and differencing disks also keep a
/// copy at offset 0.
///
/// ```
///  0 cookie "conectix"      8 features         12 file format version   16 data offset (u64)
/// 24 time stamp            28 creator app      32 creator version       36 creator host OS
/// 40 original size (u64)   48 current size (u64)  56 geometry (C u16, H u8, S u8)
/// 60 disk type             64 checksum         68 unique id (16)        84 saved state   85 reserved
/// ```
public struct VHDFooter: Sendable, Equatable {
    public static let size = 512
    public static let cookie: [UInt8] = Array("conectix".utf8)
    /// Data offset of a fixed disk: no dynamic header.
    public static let noDataOffset: UInt64 = 0xFFFF_FFFF_FFFF_FFFF

    public enum DiskType: UInt32, Sendable, Equatable, Codable {
        case fixed = 2
        case dynamic = 3
        case differencing = 4
    }

    public var features: UInt32
    public var formatVersion: UInt32
    public var dataOffset: UInt64
    public var timestamp: UInt32
    public var creatorApplication: String
    public var creatorVersion: UInt32
    public var creatorHostOS: String
    public var originalSize: UInt64
    public var currentSize: UInt64
    public var cylinders: UInt16
    public var heads: UInt8
    public var sectorsPerTrack: UInt8
    public var diskType: DiskType
    public var checksum: UInt32
    public var uniqueID: [UInt8]
    public var savedState: Bool

    /// Parses a footer and checks its cookie and checksum.
    ///
    /// - Parameter fileOffset: where these 512 bytes were read (for errors).
    public init(parsing bytes: ArraySlice<UInt8>, fileOffset: UInt64) throws(FormatError) {
        var r = ByteReader(bytes, baseOffset: fileOffset)
        let cookie = try r.readBytes(8, field: "VHD footer cookie")
        guard cookie.elementsEqual(Self.cookie) else {
            throw .badMagic(field: "VHD footer cookie", found: Self.integer(cookie), offset: fileOffset)
        }
        features = try r.read(UInt32.self, field: "VHD footer features")
        formatVersion = try r.read(UInt32.self, field: "VHD footer file format version")
        dataOffset = try r.read(UInt64.self, field: "VHD footer data offset")
        timestamp = try r.read(UInt32.self, field: "VHD footer time stamp")
        creatorApplication = Self.fourCC(try r.readBytes(4, field: "VHD footer creator application"))
        creatorVersion = try r.read(UInt32.self, field: "VHD footer creator version")
        creatorHostOS = Self.fourCC(try r.readBytes(4, field: "VHD footer creator host OS"))
        originalSize = try r.read(UInt64.self, field: "VHD footer original size")
        currentSize = try r.read(UInt64.self, field: "VHD footer current size")
        cylinders = try r.read(UInt16.self, field: "VHD footer disk geometry")
        heads = try r.read(UInt8.self, field: "VHD footer disk geometry")
        sectorsPerTrack = try r.read(UInt8.self, field: "VHD footer disk geometry")
        let typeOffset = r.offset
        let rawType = try r.read(UInt32.self, field: "VHD footer disk type")
        checksum = try r.read(UInt32.self, field: "VHD footer checksum")
        uniqueID = Array(try r.readBytes(16, field: "VHD footer unique id"))
        savedState = try r.read(UInt8.self, field: "VHD footer saved state") != 0
        try r.skip(427, field: "VHD footer reserved")
        let computed = VHDChecksum.compute(bytes.prefix(Self.size), checksumAt: 64)
        guard computed == checksum else {
            throw .badChecksum(field: "VHD footer checksum", offset: fileOffset + 64, expected: checksum, computed: computed)
        }
        guard let type = DiskType(rawValue: rawType) else {
            throw .unsupported(field: "VHD footer disk type", offset: typeOffset, feature: "disk type \(rawType)")
        }
        diskType = type
        guard formatVersion >> 16 == 1 else {
            throw .unsupported(
                field: "VHD footer file format version", offset: fileOffset + 12, feature: "version 0x\(String(formatVersion, radix: 16))")
        }
    }

    /// A four-character code as text: NUL padding at the end dropped (blktap writes `tap\0`), any other
    /// unprintable byte shown as `?`.
    static func fourCC(_ bytes: ArraySlice<UInt8>) -> String {
        var bytes = bytes
        while bytes.last == 0 { bytes = bytes.dropLast() }
        return String(decoding: bytes.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    static func integer(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The unique id as the usual 8-4-4-4-12 hex string.
    public static func uuidString(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { byte -> String in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }
        guard hex.count == 16 else { return hex.joined() }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }
}

/// The VHD checksum: the ones' complement of the sum of all bytes, with the checksum field taken as zero.
public enum VHDChecksum {
    public static func compute(_ bytes: ArraySlice<UInt8>, checksumAt fieldOffset: Int) -> UInt32 {
        var sum: UInt32 = 0
        for (index, byte) in bytes.enumerated() where index < fieldOffset || index >= fieldOffset + 4 {
            sum &+= UInt32(byte)
        }
        return ~sum
    }
}
