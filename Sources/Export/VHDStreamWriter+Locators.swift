import Foundation

/// Parent locators of a differencing VHD (spec "Dynamic Disk Header Format", "Parent Locator Entries").
///
/// ```
/// entry (24 bytes, header @576 + 24 n)       platform data (at data offset, 512-byte aligned)
/// 0  platform code   "W2ru" "MacX" "W2ku"    W2ru  .\..\base\parent.vhd        UTF-16LE, relative
/// 4  data space      (sectors)               MacX  file://../base/parent.vhd   UTF-8 file URL, relative
/// 8  data length     (bytes)                 W2ku  \srv\base\parent.vhd        UTF-16LE, absolute
/// 16 data offset
/// ```
/// The relative locators come first, as Windows and XenServer write them, so a chain copied to another
/// host finds its parent next to the child before an absolute path that only held on the source host.
/// Readers resolve relative ones against the child's directory: blktap's `vhd-util` joins them to it
/// (after turning `\` into `/`), and so does extentdb's `VHDParentLocator`.
extension VHDStreamWriter {
    /// The locators written for `parent`, in order: W2ru and MacX hold `parent.relativePath`, W2ku
    /// `parent.absolutePath`.
    static func locators(for parent: Parent) -> [(code: String, data: [UInt8])] {
        [
            ("W2ru", utf16LE(windowsRelativePath(parent.relativePath))),
            ("MacX", Array(fileURL(parent.relativePath).utf8)),
            ("W2ku", utf16LE(windowsPath(parent.absolutePath))),
        ]
    }

    /// A path in the Windows form a W2ru locator holds: `\` separators, and a relative path starts with
    /// `.\` (`../base/p.vhd` becomes `.\..\base\p.vhd`). An absolute path keeps its root (`\srv\p.vhd`).
    static func windowsRelativePath(_ path: String) -> String {
        let windows = windowsPath(path)
        if windows.hasPrefix("\\") || windows.hasPrefix(".\\") { return windows }
        return ".\\" + windows
    }

    /// `path` with `\` separators (W2ku; no drive letter, which a Linux path does not have).
    static func windowsPath(_ path: String) -> String {
        path.replacingOccurrences(of: "/", with: "\\")
    }

    /// A MacX file URL: `file://` and the path, percent-encoded except letters, digits and `/-._~`.
    /// A relative path starts with `./` or `../` (`file://./p.vhd`, `file://../base/p.vhd`), as blktap's
    /// `vhd-util` writes it; an absolute one gives `file:///srv/p.vhd`.
    static func fileURL(_ path: String) -> String {
        let anchored = path.hasPrefix("/") || path.hasPrefix("./") || path.hasPrefix("../") ? path : "./" + path
        let encoded = anchored.utf8.map { byte in
            isUnreserved(byte) ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return "file://" + encoded.joined()
    }

    /// Letters, digits and `/-._~`: the bytes a file URL path carries unescaped.
    static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || "/-._~".utf8.contains(byte)
    }

    static func utf16LE(_ text: String) -> [UInt8] {
        text.utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }
}
