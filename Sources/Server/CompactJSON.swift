/// JSON text without the whitespace between its tokens: every body the API sends is compact, whoever
/// rendered it (the report's renderer indents it for people).
enum CompactJSON {
    /// `text` with spaces, tabs and line breaks outside strings removed; strings, numbers and key order are
    /// kept byte for byte. A trailing newline is kept when `text` had one.
    static func compacted(_ text: String) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        var inString = false
        var escaped = false
        for byte in text.utf8 {
            if inString {
                output.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "\""):
                inString = true
                output.append(byte)
            default:
                output.append(byte)
            }
        }
        if text.hasSuffix("\n") { output.append(UInt8(ascii: "\n")) }
        return String(decoding: output, as: UTF8.self)
    }
}
