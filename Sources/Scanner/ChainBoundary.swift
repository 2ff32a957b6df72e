import AllocationIndex
import ImageIO

#if canImport(Glibc)
    import Glibc
#endif

/// The directory a chain layer was opened from: names inside the layer resolve against it.
///
/// It is held open (``DirectoryAnchor``) once a name needs it, so the next layer is found beneath the very
/// directory this one was found in, not beneath whatever its path names by then.
final class ChainDirectory {
    /// The directory as a path, for resolving names the way qemu does (against the image's name).
    let lexicalPath: String
    private let open: () throws(IOError) -> DirectoryAnchor
    private var opened: DirectoryAnchor?

    init(lexicalPath: String, open: @escaping () throws(IOError) -> DirectoryAnchor) {
        self.lexicalPath = lexicalPath
        self.open = open
    }

    /// The directory of an image the caller named, opened by path when first needed.
    static func named(_ givenPath: String) -> ChainDirectory {
        let directory = PathResolver.directory(of: givenPath)
        return ChainDirectory(lexicalPath: directory) { () throws(IOError) in try DirectoryAnchor(path: directory) }
    }

    func anchor() throws(IOError) -> DirectoryAnchor {
        if let opened { return opened }
        let anchor = try open()
        opened = anchor
        return anchor
    }
}

/// Where an image's chain may reach, and the one way the files it names are opened.
///
/// The trust model (README, "Security"):
/// - The image the caller names is opened as named: symbolic links are followed and a block device is
///   accepted, because the caller chose it. (The service names images by their canonical path under a root
///   and opens them with no symbolic link at all: ``ScanOptions/confinementRoots``.)
/// - A file that an image names (a qcow2 backing file or external data file, a VHD parent) is chosen by
///   whoever wrote the image's bytes. It is opened by the kernel *beneath* the directory the naming image was
///   found in, or beneath a trusted root (`--trust-root`), with openat2's `RESOLVE_BENEATH |
///   RESOLVE_NO_MAGICLINKS` (``ConfinedOpen``): `..` and symbolic links that climb out, absolute links, and
///   /proc's `fd` links (another process's memfd, a deleted file) all fail in the kernel, before anything
///   is opened. What it names is opened `O_PATH` first and only a regular file is opened for reading, so a
///   FIFO or a device has no chance to act. Anything else gets the same refusal whether it exists or not,
///   so an image cannot probe the host. Trusting every file (`--allow-outside-backing`) opens it as named.
/// - The checked descriptor is the one every later read uses, so a file swapped after the check is not read.
/// - What the chain needed beyond its own directories is noted in ``trust`` and recorded with the scan.
final class ChainBoundary {
    let options: ScanOptions
    /// The trusted roots and outside files this chain needed so far.
    private(set) var trust = ScanTrust()
    private var trustedAnchors: [String: DirectoryAnchor] = [:]

    init(options: ScanOptions) {
        self.options = options
    }

    /// A file an image names, opened, with the directory the names inside it resolve against.
    struct Opened {
        var source: FileBlockSource
        /// The path it was opened by (beneath its anchor), for the next layer's relative names.
        var givenPath: String
        var directory: ChainDirectory
    }

    /// Opens a file that an image names, never leaving the allowed directories.
    ///
    /// - Parameters:
    ///   - resolvedPath: the name made absolute against `directory.lexicalPath`, `.` and `..` removed.
    ///   - name: the name exactly as the image stores it, for messages.
    ///   - role: "backing file", "parent", "external data file".
    ///   - referrer: the canonical path of the image that names it.
    ///   - directory: the directory the naming image was found in.
    /// - Throws: ``ImageError`` "not found" for a missing file inside an allowed directory, and one refusal,
    ///   identical whatever the reason, for everything else.
    func openNamed(_ resolvedPath: String, name: String, role: String, referrer: String, directory: ChainDirectory) throws -> Opened {
        if options.allowsOutsideBacking {
            return try openAnywhere(resolvedPath, name: name, role: role, referrer: referrer, directory: directory)
        }
        let anchor: DirectoryAnchor
        do { anchor = try directory.anchor() } catch { throw refusal(role: role, name: name, referrer: referrer) }
        // Where the name may lie, in order: beneath the image's own directory (as written, then through the
        // symbolic links it passes), then beneath each trusted root. `realpath` only reads links; it opens
        // nothing, and whatever it answers is reopened beneath an anchor, so it cannot widen the boundary.
        let real = PathResolver.canonical(resolvedPath)
        var attempts: [(anchor: DirectoryAnchor, relative: String, root: String?)] = []
        for (base, path) in [(directory.lexicalPath, resolvedPath), (anchor.canonicalPath, resolvedPath), (anchor.canonicalPath, real)] {
            if let path, let relative = PathResolver.beneath(path, directory: base) { attempts.append((anchor, relative, nil)) }
        }
        for root in options.trustedRoots {
            for path in [resolvedPath, real] {
                guard let path, let relative = PathResolver.beneath(path, directory: root), let rootAnchor = trustedAnchor(root) else {
                    continue
                }
                attempts.append((rootAnchor, relative, root))
            }
        }
        var missing = false
        for attempt in attempts {
            let source: FileBlockSource
            do {
                source = try ConfinedOpen.open(attempt.relative, beneath: attempt.anchor)
            } catch {
                if error.errno == .noSuchFileOrDirectory { missing = true }
                continue
            }
            guard PathResolver.isInside(source.openedPath, directory: attempt.anchor.canonicalPath) else {
                source.close()
                continue
            }
            trust.note(root: attempt.root, outside: false)
            let parent = PathResolver.directory(of: attempt.relative)
            let base = attempt.anchor
            let next = ChainDirectory(lexicalPath: PathResolver.directory(of: source.path)) { () throws(IOError) in
                try base.directory(parent)
            }
            return Opened(source: source, givenPath: source.path, directory: next)
        }
        if missing { throw ImageError.chain(referrer, "\(role) '\(name)' (resolved to \(resolvedPath)) not found") }
        throw refusal(role: role, name: name, referrer: referrer)
    }

    /// The one answer for a name the boundary does not allow: the same whether the file exists, what kind it
    /// is, or where a link leads, so an image cannot learn about the host through it.
    private func refusal(role: String, name: String, referrer: String) -> ImageError {
        ImageError(
            path: referrer,
            .refused(
                "\(role) '\(name)' is not a regular file beneath the image's directory or a trusted root; refusing to open it"),
            remedy: .trustDirectory)
    }

    /// With every file trusted: opened as named (links followed, block devices accepted), but only where the
    /// kernel can say what was opened; the trust it needed is noted.
    private func openAnywhere(_ resolvedPath: String, name: String, role: String, referrer: String, directory: ChainDirectory) throws
        -> Opened
    {
        let rules = FileBlockSource.Rules(allowsBlockDevice: true, requiresKnownLocation: true)
        let source: FileBlockSource
        do {
            source = try FileBlockSource(path: resolvedPath, rules: rules)
        } catch {
            if error.errno == .noSuchFileOrDirectory {
                throw ImageError.chain(referrer, "\(role) '\(name)' (resolved to \(resolvedPath)) not found")
            }
            throw ImageError.chain(referrer, "\(role) '\(name)' (resolved to \(resolvedPath)): \(error.shortDescription)")
        }
        let own = (try? directory.anchor().canonicalPath) ?? PathResolver.canonical(directory.lexicalPath)
        let opened = source.openedPath
        if let own, PathResolver.isInside(opened, directory: own) {
            trust.note(root: nil, outside: false)
        } else if let root = options.trustedRoots.first(where: { PathResolver.isInside(opened, directory: $0) }) {
            trust.note(root: root, outside: false)
        } else {
            trust.note(root: nil, outside: true)
        }
        return Opened(source: source, givenPath: resolvedPath, directory: .named(resolvedPath))
    }

    private func trustedAnchor(_ root: String) -> DirectoryAnchor? {
        if let anchor = trustedAnchors[root] { return anchor }
        guard let anchor = try? DirectoryAnchor(path: root) else { return nil }
        trustedAnchors[root] = anchor
        return anchor
    }
}
