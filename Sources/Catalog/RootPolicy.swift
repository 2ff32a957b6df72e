import Foundation
import ImageIO

/// Confines client-named paths to the service's roots.
///
/// A path is made absolute-only, then checked twice: as written with `.` and `..` removed, and as the
/// file system resolves it (every symbolic link followed). Both must lie under a root; otherwise the
/// answer is `forbidden` whether or not the file exists, so a client cannot probe the rest of the host.
/// HTTP answers it as 403 and the NBD server as "no export"; both front ends confine through this one.
public struct RootPolicy: Sendable {
    /// Canonical root directories.
    public let roots: [String]

    public init(roots: [String]) {
        self.roots = roots
    }

    /// True when `path` (canonical) is a root or lies under one (compared as bytes).
    public func contains(_ path: String) -> Bool {
        roots.contains { root in PathResolver.isInside(path, directory: root) }
    }

    /// `path` (canonical) relative to the first root it lies below, or nil when it lies below none.
    public func relativePath(of path: String) -> String? {
        for root in roots {
            if let relative = PathResolver.beneath(path, directory: root) { return relative }
        }
        return nil
    }

    /// The canonical path of an image a client named.
    ///
    /// A symbolic link as the last component is followed only to a file in the directory that holds the
    /// link: `vmA/disk.qcow2 -> ../vmB/disk.qcow2` would otherwise give tenant A's name to tenant B's disk.
    ///
    /// - Throws: ``CatalogError`` `invalidArgument` for a relative or empty path, `refused` outside the roots
    ///   (including through `..` or a symbolic link, and a last-component link into another directory),
    ///   `notFound` when it does not exist under a root.
    public func resolve(_ path: String) throws(CatalogError) -> String {
        guard path.hasPrefix("/"), !path.contains("\0") else { throw CatalogError(.invalidArgument, "path must be absolute: \(path)") }
        let lexical = Self.normalised(path)
        guard contains(lexical) else { throw CatalogError(.refused, "\(path) is outside the service's roots") }
        guard let canonical = PathResolver.canonical(lexical) else { throw CatalogError(.notFound, "\(path): no such file") }
        guard contains(canonical) else { throw CatalogError(.refused, "\(path) resolves outside the service's roots") }
        let holder = PathResolver.canonical(PathResolver.directory(of: lexical))
        let sameDirectory = holder.map { PathResolver.directory(of: canonical).utf8.elementsEqual($0.utf8) } ?? false
        guard sameDirectory || holder.map({ canonical.utf8.elementsEqual($0.utf8) }) == true else {
            throw CatalogError(.refused, "\(path) is a symbolic link into another directory, which is not followed")
        }
        return canonical
    }

    /// `path` with empty, `.` and `..` components removed (`..` at the top stays at `/`).
    public static func normalised(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
