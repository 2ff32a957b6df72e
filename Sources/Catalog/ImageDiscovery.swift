import Foundation
import ImageFormats
import ImageIO
import Scanner

#if canImport(Glibc)
    import Glibc
#endif

/// Which files under a directory are images: the one rule `scan DIR` and the service's watcher share.
///
/// - By content, never by name: each format's driver probes the file (``ChainScanner/probe(path:)``).
/// - Regular files only; a special file (FIFO, socket, device) is named and skipped.
/// - A symbolic link counts only when it resolves inside the directory walked; one leading outside is
///   named and skipped.
/// - A foreign container (VHDX, VMDK, ...) is named and skipped, unless a format is pinned.
/// - A raw file is an image only when `includeRaw` (or a pinned format) says so: any file is a valid raw
///   disk, so indexing every one would fill the index with documents and logs. Others are counted.
/// - The external data file of a qcow2 image is that image's data, not a raw disk of its own: it is never
///   an image, even with `includeRaw`, nor counted as another file.
public struct ImageDiscovery: Sendable {
    /// Index raw files found in directories as raw disks.
    public var includeRaw: Bool
    /// The format every file is read as (`--image-format`): every regular file is then an image.
    public var pinnedFormat: ImageFormat?

    public init(includeRaw: Bool = false, pinnedFormat: ImageFormat? = nil) {
        self.includeRaw = includeRaw
        self.pinnedFormat = pinnedFormat
    }

    /// What a file found in a directory is.
    public enum Verdict: Sendable, Equatable {
        /// An image to index; `raw` when it probes as raw (a data-file candidate).
        case image(raw: Bool)
        /// Not indexed, for this reason (named to the user).
        case skipped(String)
        /// A file that is not an image (a raw file without `includeRaw`): counted, not named.
        case other
        /// A directory, or gone: nothing to say.
        case none
    }

    /// What `path`, found under `root` (canonical), is.
    public func classify(_ path: String, under root: String) -> Verdict {
        var link = stat()
        guard lstat(path, &link) == 0 else { return .none }
        if link.st_mode & S_IFMT == S_IFDIR { return .none }
        let isLink = link.st_mode & S_IFMT == S_IFLNK
        if isLink {
            guard let target = PathResolver.canonical(path) else { return .none }
            guard PathResolver.isInside(target, directory: root) else { return .skipped("symbolic link to \(target), outside \(root)") }
        }
        // What a link leads to is stat'ed; anything else is what lstat saw.
        guard let identity = isLink ? try? FileIdentity(path: path) : FileIdentity(status: link) else { return .none }
        if identity.kind == .directory { return .none }
        guard identity.kind == .regular else {
            var info = stat()
            let kind = stat(path, &info) == 0 ? FileIdentity.describe(mode: info.st_mode) : "a special file"
            return .skipped("\(kind), not an image file")
        }
        // Unreadable: an image candidate, so that its scan names the error.
        guard let probe = try? ChainScanner.probe(path: path) else { return .image(raw: false) }
        if let foreign = probe.foreign, pinnedFormat == nil { return .skipped("\(foreign) is not supported") }
        if probe.format != .raw || includeRaw || pinnedFormat != nil { return .image(raw: probe.format == .raw) }
        return .other
    }

    /// `paths` without the images named more than once (a symbolic link found beside its target, a file
    /// given twice or also inside a directory given), each with its canonical path (what the index keys):
    /// the first naming of each image is kept, in order. A path that does not resolve is kept as it is
    /// (canonical nil), so that its scan names the error.
    public static func distinctImages(_ paths: [String]) -> [(path: String, canonical: String?)] {
        var seen = Set<String>()
        var distinct: [(path: String, canonical: String?)] = []
        for path in paths {
            let canonical = try? ImageIndexer.canonicalPath(path)
            if let canonical, !seen.insert(canonical).inserted { continue }
            distinct.append((path, canonical))
        }
        return distinct
    }

    /// What a walk of a directory found.
    public struct Found: Sendable {
        /// Images to index, sorted.
        public var images: [String] = []
        /// Files not indexed, with the reason, sorted by path.
        public var skipped: [(path: String, reason: String)] = []
        /// Files that are not images (counted, not named).
        public var otherFiles: [String] = []
    }

    /// Every image under `directory`, recursively, by ``classify(_:under:)``; external data files of the
    /// qcow2 images found (and `knownDataFiles`, canonical) are left out.
    ///
    /// - Parameter skip: paths the caller already knows (indexed, queued): not probed again.
    public func walk(_ directory: String, knownDataFiles: Set<String> = [], skip: (String) -> Bool = { _ in false }) -> Found {
        var found = Found()
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return found }
        let root = PathResolver.canonical(directory) ?? directory
        var raw: [String] = []
        while let relative = walker.nextObject() as? String {
            let path = directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
            if skip(path) { continue }
            switch classify(path, under: root) {
            case .image(let isRaw):
                found.images.append(path)
                if isRaw { raw.append(path) }
            case .skipped(let reason): found.skipped.append((path, reason))
            case .other: found.otherFiles.append(path)
            case .none: break
            }
        }
        let owners = raw.isEmpty && found.otherFiles.isEmpty ? [:] : ChainScanner.externalDataFiles(among: found.images)
        func owner(_ path: String) -> String? {
            guard let canonical = PathResolver.canonical(path) else { return nil }
            return owners[canonical] ?? (knownDataFiles.contains(canonical) ? "an indexed image" : nil)
        }
        var excluded = Set<String>()
        for path in raw {
            guard let owner = owner(path) else { continue }
            excluded.insert(path)
            found.skipped.append((path, "the external data file of \(owner), scanned with it"))
        }
        found.images = found.images.filter { !excluded.contains($0) }.sorted()
        found.otherFiles = found.otherFiles.filter { owner($0) == nil }
        found.skipped.sort { $0.path < $1.path }
        return found
    }
}
