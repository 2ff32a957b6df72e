/// The container formats extentdb reads, detected by content, never by file name.
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    case raw
    case qcow2
    case vhd

    /// The VHD footer cookie (VHD spec, "Hard Disk Footer Format", bytes 0-7).
    public static let vhdCookie: [UInt8] = Array("conectix".utf8)

    /// Detects the format from the file's first bytes and its last 512 bytes.
    ///
    /// - Parameters:
    ///   - head: at least the first 8 bytes of the file when it has them.
    ///   - tail: the file's last 512 bytes (or fewer for a shorter file).
    public static func detect(head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>) -> ImageFormat {
        if head.count >= 4, head.prefix(4).elementsEqual([0x51, 0x46, 0x49, 0xFB]) { return .qcow2 }
        if head.count >= 8, head.prefix(8).elementsEqual(vhdCookie) { return .vhd }
        if tail.count == 512, tail.prefix(8).elementsEqual(vhdCookie) { return .vhd }
        return .raw
    }
}
