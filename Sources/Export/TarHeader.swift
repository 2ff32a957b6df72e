/// POSIX ustar headers (IEEE Std 1003.1, "pax" / ustar interchange format) for the XVA chunk stream.
///
/// ```
///   0 name[100]   100 mode[8]   108 uid[8]   116 gid[8]   124 size[12]   136 mtime[12]   148 chksum[8]
/// 156 typeflag    157 linkname[100]   257 magic "ustar\0"   263 version "00"   265 uname[32] ...
/// 345 prefix[155]
/// ```
/// Numbers are octal text; the checksum is the byte sum of the header with the checksum field as spaces.
enum TarHeader {
    static let blockSize = 512

    static func file(name: String, size: UInt64, mode: UInt32 = 0o400, mtime: UInt64 = 0) throws -> [UInt8] {
        var header = [UInt8](repeating: 0, count: blockSize)
        let nameBytes = Array(name.utf8)
        guard nameBytes.count <= 100 else { throw ExportError.plan("tar member name '\(name)' is longer than 100 bytes") }
        header.replaceSubrange(0..<nameBytes.count, with: nameBytes)
        octal(&header, at: 100, width: 8, UInt64(mode))
        octal(&header, at: 108, width: 8, 0)
        octal(&header, at: 116, width: 8, 0)
        octal(&header, at: 124, width: 12, size)
        octal(&header, at: 136, width: 12, mtime)
        header[156] = UInt8(ascii: "0")
        header.replaceSubrange(257..<263, with: Array("ustar".utf8) + [0])
        header.replaceSubrange(263..<265, with: Array("00".utf8))
        for index in 148..<156 { header[index] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + UInt64($1) }
        octal(&header, at: 148, width: 7, sum)
        header[155] = UInt8(ascii: " ")
        return header
    }

    /// Zero-padded octal digits followed by a NUL, filling `width` bytes.
    static func octal(_ header: inout [UInt8], at offset: Int, width: Int, _ value: UInt64) {
        let digits = Array(String(value, radix: 8).utf8)
        let padded = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - 1 - digits.count)) + digits
        header.replaceSubrange(offset..<(offset + width - 1), with: padded.suffix(width - 1))
        header[offset + width - 1] = 0
    }

    /// Bytes of padding after `size` bytes of member data.
    static func padding(after size: UInt64) -> Int { Int((UInt64(blockSize) - size % UInt64(blockSize)) % UInt64(blockSize)) }
}
