/// The optional header extensions that follow the fixed header (qcow2.txt, "Header extensions").
///
/// ```
/// 0  type (u32)   4  length (u32)   8  data[length], padded to a multiple of 8
/// type 0x00000000 end · 0xe2792aca backing format · 0x6803f857 feature names
///      0x23852875 bitmaps · 0x0537be77 encryption · 0x44415441 external data file name
/// ```
/// Unknown extensions are skipped, as the spec requires.
public struct QCOW2HeaderExtensions: Sendable, Equatable {
    public static let end: UInt32 = 0x0000_0000
    public static let backingFormat: UInt32 = 0xE279_2ACA
    public static let featureNameTable: UInt32 = 0x6803_F857
    public static let bitmaps: UInt32 = 0x2385_2875
    public static let fullDiskEncryption: UInt32 = 0x0537_BE77
    public static let externalDataFile: UInt32 = 0x4441_5441

    public var backingFormat: String?
    public var externalDataFile: String?
    public var hasBitmaps = false
    /// The bitmaps extension's data (qcow2.txt, "Bitmaps extension"); nil without one.
    public var bitmapsData: Payload?

    /// An extension's data and the file offset it starts at.
    public struct Payload: Sendable, Equatable {
        public var bytes: ArraySlice<UInt8>
        public var offset: UInt64
    }
    /// Types of extensions this tool does not interpret.
    public var unknownTypes: [UInt32] = []

    public init() {}

    /// Parses the extension area of `firstCluster` (the file's first cluster, or the whole file if shorter).
    public init(parsing firstCluster: ArraySlice<UInt8>, header: QCOW2Header) throws(FormatError) {
        let start = header.version >= 3 ? Int(header.headerLength) : QCOW2Header.version2Length
        // Extensions end before the backing file name when it shares the first cluster (as in qemu, a name
        // that starts right after the header leaves no room for extensions).
        var limit = min(firstCluster.count, Int(header.clusterSize))
        if header.backingFileOffset != 0, header.backingFileOffset >= UInt64(start) {
            limit = min(limit, Int(header.backingFileOffset))
        }
        guard start <= limit else { return }
        var reader = ByteReader(firstCluster[firstCluster.startIndex..<firstCluster.startIndex + limit])
        try reader.seek(to: start, field: "header extension")
        while reader.remaining >= 8 {
            let type = try reader.read(UInt32.self, field: "header extension type")
            let length = try reader.read(UInt32.self, field: "header extension length")
            if type == Self.end { return }
            let padded = (UInt64(length) + 7) & ~7
            guard padded <= UInt64(reader.remaining) else {
                throw .truncated(
                    field: "header extension 0x\(String(type, radix: 16)) data", offset: reader.offset, needed: padded,
                    available: UInt64(reader.remaining))
            }
            let dataOffset = reader.offset
            let data = try reader.readBytes(Int(length), field: "header extension data")
            try reader.skip(Int(padded) - Int(length), field: "header extension padding")
            switch type {
            case Self.backingFormat: backingFormat = Self.text(data)
            case Self.externalDataFile: externalDataFile = Self.text(data)
            case Self.bitmaps:
                hasBitmaps = true
                bitmapsData = Payload(bytes: data, offset: dataOffset)
            case Self.featureNameTable, Self.fullDiskEncryption: break
            default: unknownTypes.append(type)
            }
        }
    }

    /// Extension strings are not NUL-terminated, but tools pad them; stop at the first NUL.
    static func text(_ bytes: ArraySlice<UInt8>) -> String {
        let content = bytes.prefix { $0 != 0 }
        return String(decoding: content, as: UTF8.self)
    }
}
