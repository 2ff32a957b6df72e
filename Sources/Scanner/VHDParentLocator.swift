import ImageIO

/// Turns a differencing VHD's parent locators into candidate paths, in the order they are tried.
///
/// W2ru (relative) first, then MacX (a `file://` URL, absolute or relative), then W2ku (absolute Windows
/// path), then the header's parent unicode name; relative paths resolve against the child's directory.
/// Windows separators become `/`; a drive-letter path cannot exist here, so only its file name is tried
/// next to the child.
enum VHDParentLocator {
    struct Candidate {
        var source: String
        var name: String
        var resolved: String
    }

    static let order = ["W2ru", "MacX", "W2ku"]

    static func candidates(locators: [(code: String, path: String)], parentName: String, directory: String) -> [Candidate] {
        var result: [Candidate] = []
        for code in order {
            for locator in locators where locator.code == code {
                result.append(Candidate(source: code, name: locator.path, resolved: resolve(locator.path, directory: directory)))
            }
        }
        if !parentName.isEmpty {
            result.append(Candidate(source: "parent name", name: parentName, resolved: resolve(parentName, directory: directory)))
        }
        return result
    }

    static func resolve(_ path: String, directory: String) -> String {
        var unix = path.replacingOccurrences(of: "\\", with: "/")
        if unix.count >= 2, unix.dropFirst().first == ":", let drive = unix.first, drive.isLetter {
            unix = String(unix.split(separator: "/").last ?? "")
        }
        return PathResolver.absolute(unix, relativeTo: directory)
    }
}
