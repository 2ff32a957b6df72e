import Foundation

/// The trust a scan was made under: what its chain needed beyond each image's own directory.
///
/// A file an image names (backing file, parent, data file) is accepted when it lies beneath the directory
/// of the image naming it; otherwise only under a trusted root (`--trust-root`), or anywhere when the caller
/// trusts every file (`--allow-outside-backing`). A scan records which of those it relied on, and a front end
/// reuses the scan only when its own trust covers them (``ScanTrust/uncovered(byTrustedRoots:allowsOutside:)``):
/// a chain that a generous caller indexed is not served by a stricter one (schema version 5).
public struct ScanTrust: Sendable, Equatable, Codable {
    /// A file was followed outside every allowed directory.
    public var outside: Bool
    /// Trusted roots (canonical) the chain reached files under, sorted, without repeats.
    public var roots: [String]

    public init(outside: Bool = false, roots: [String] = []) {
        self.outside = outside
        self.roots = Array(Set(roots)).sorted()
    }

    /// Decodes the recorded JSON; nil when it is not a trust record.
    public init?(json: String) {
        // Most scans needed no trust: their record is known without parsing it (every lookup asks).
        if json == Self.noTrustJSON {
            self.init()
            return
        }
        guard let decoded = try? JSONDecoder().decode(ScanTrust.self, from: Data(json.utf8)) else { return nil }
        self = decoded
    }

    /// What a scan that needed no trust records.
    static let noTrustJSON = ScanTrust().json

    /// The JSON recorded in `scans.trust_json`.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? #"{"outside":true,"roots":[]}"#
    }

    /// Adds what one more accepted file needed.
    public mutating func note(root: String?, outside: Bool) {
        if outside { self.outside = true }
        if let root, !roots.contains(root) { roots = (roots + [root]).sorted() }
    }

    /// Why a caller with this trust may not reuse the scan, or nil when its trust covers the scan's.
    ///
    /// - Parameters:
    ///   - trustedRoots: the caller's trusted roots (canonical).
    ///   - allowsOutside: the caller follows files anywhere.
    public func uncovered(byTrustedRoots trustedRoots: [String], allowsOutside: Bool) -> String? {
        if allowsOutside { return nil }
        if outside { return "its chain follows a file outside every allowed directory, a trust given to another caller" }
        for root in roots where !trustedRoots.contains(where: { Self.isWithin(root, $0) }) {
            return "it relied on the trusted root \(root), which is not trusted here"
        }
        return nil
    }

    private static func isWithin(_ path: String, _ directory: String) -> Bool {
        directory == "/" || path == directory || path.hasPrefix(directory + "/")
    }
}
