@testable import ImageFormats

/// Builds QCOW2 header bytes field by field (big-endian), so tests can flip any field.
struct QCOW2HeaderBytes {
    var version: UInt32 = 3
    var backingFileOffset: UInt64 = 0
    var backingFileSize: UInt32 = 0
    var clusterBits: UInt32 = 16
    var size: UInt64 = 1 << 30
    var cryptMethod: UInt32 = 0
    var l1Size: UInt32 = 2
    var l1TableOffset: UInt64 = 0x30000
    var refcountTableOffset: UInt64 = 0x10000
    var refcountTableClusters: UInt32 = 1
    var nbSnapshots: UInt32 = 0
    var snapshotsOffset: UInt64 = 0
    var incompatible: UInt64 = 0
    var compatible: UInt64 = 0
    var autoclear: UInt64 = 0
    var refcountOrder: UInt32 = 4
    var headerLength: UInt32 = 112
    var compressionType: UInt8 = 0
    var extensions: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]

    static func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }

    var bytes: [UInt8] {
        var out: [UInt8] = [0x51, 0x46, 0x49, 0xFB]
        out += Self.be(version) + Self.be(backingFileOffset) + Self.be(backingFileSize) + Self.be(clusterBits)
        out += Self.be(size) + Self.be(cryptMethod) + Self.be(l1Size) + Self.be(l1TableOffset)
        out += Self.be(refcountTableOffset) + Self.be(refcountTableClusters) + Self.be(nbSnapshots) + Self.be(snapshotsOffset)
        if version >= 3 {
            out += Self.be(incompatible) + Self.be(compatible) + Self.be(autoclear) + Self.be(refcountOrder) + Self.be(headerLength)
            if headerLength > 104 {
                out.append(compressionType)
                out += [UInt8](repeating: 0, count: Int(headerLength) - 105)
            }
        }
        return out + extensions
    }

    /// A file size large enough for the tables the header points at.
    static let fileSize: UInt64 = 0x100000

    func parse(fileSize: UInt64 = Self.fileSize) throws(FormatError) -> QCOW2Header {
        var reader = ByteReader(bytes)
        return try QCOW2Header(parsing: &reader, fileSize: fileSize)
    }
}

extension FormatError {
    var field: String {
        switch self {
        case .truncated(let field, _, _, _), .badMagic(let field, _, _), .badChecksum(let field, _, _, _),
            .outOfBounds(let field, _, _, _), .invalid(let field, _, _), .unsupported(let field, _, _):
            return field
        }
    }

    var isTruncation: Bool {
        if case .truncated = self { return true }
        return false
    }
}
