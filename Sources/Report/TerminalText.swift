/// Text for a terminal: control characters made visible, so that a file name or a header field chosen by
/// an image's author (a backing name, a snapshot name, a VHD parent locator) cannot move the cursor,
/// erase a warning, set the window title or write the clipboard (OSC 52).
///
/// C0 controls (U+0000–U+001F, except newline and tab when kept), DEL (U+007F) and C1 controls
/// (U+0080–U+009F, where CSI and OSC also live) become `\xHH` / `\u{HHHH}`; a backslash stays as it is.
/// JSON output needs none of this: its encoder already escapes control characters.
public enum TerminalText {
    public static func escaped(_ text: String, keepingNewlines: Bool = true) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0, keepingNewlines: keepingNewlines) }) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if isControl(scalar, keepingNewlines: keepingNewlines) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                result += scalar.value < 0x80 ? "\\x" + (hex.count < 2 ? "0" : "") + hex : "\\u{" + hex + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// A name on one line: like ``escaped(_:keepingNewlines:)`` with newlines and tabs escaped too.
    public static func name(_ text: String) -> String { escaped(text, keepingNewlines: false) }

    static func isControl(_ scalar: Unicode.Scalar, keepingNewlines: Bool) -> Bool {
        switch scalar.value {
        case 0x0A, 0x09: return !keepingNewlines
        case 0x00...0x1F, 0x7F...0x9F: return true
        default: return false
        }
    }
}
