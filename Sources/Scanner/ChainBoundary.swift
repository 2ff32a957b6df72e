import ImageIO

/// Where an image's chain may reach, and the one way the files it names are opened.
///
/// The trust model (README, "Security"):
/// - The image the caller names is opened as named: symbolic links are followed and a block device is
///   accepted, because the caller chose it.
/// - A file that an image names (a qcow2 backing file or external data file, a VHD parent) is chosen by
///   whoever wrote the image's bytes, so it is opened once, and what was actually opened (the canonical
///   path of the descriptor, every symbolic link resolved) must lie inside the directory of the image that
///   names it, or under a trusted root (`--trust-root`). Anything else is refused unless the caller trusts
///   every file (`--allow-outside-backing`).
/// - Only regular files are followed; a block device only with `--allow-outside-backing`; FIFOs, sockets
///   and character devices never (the descriptor is opened non-blocking and checked with `fstat` first).
/// - The checked descriptor is the one every later read uses, so a file swapped after the check is not read.
struct ChainBoundary {
    let options: ScanOptions

    /// Opens a file that an image names and checks it against the boundary.
    ///
    /// - Parameters:
    ///   - resolvedPath: the name resolved against the referring image's directory.
    ///   - name: the name exactly as the image stores it, for messages.
    ///   - role: "backing file", "parent", "external data file".
    ///   - referrer: the canonical path of the image that names it.
    ///   - referrerDirectory: the directory the name was resolved against.
    func openNamed(_ resolvedPath: String, name: String, role: String, referrer: String, referrerDirectory: String) throws -> FileBlockSource {
        let rules = FileBlockSource.Rules(allowsBlockDevice: options.allowsOutsideBacking)
        let source: FileBlockSource
        do {
            source = try FileBlockSource(path: resolvedPath, rules: rules)
        } catch {
            if error.errno == .noSuchFileOrDirectory {
                throw ImageError.chain(referrer, "\(role) '\(name)' (resolved to \(resolvedPath)) not found")
            }
            throw ImageError.chain(referrer, "\(role) '\(name)' (resolved to \(resolvedPath)): \(error.shortDescription)")
        }
        guard !options.allowsOutsideBacking else { return source }
        let opened = source.openedPath
        let directory = PathResolver.canonical(referrerDirectory) ?? referrerDirectory
        let trusted = PathResolver.isInside(opened, directory: directory)
            || options.trustedRoots.contains { PathResolver.isInside(opened, directory: $0) }
        guard trusted else {
            source.close()
            let via = opened == resolvedPath ? "" : " (through a symbolic link)"
            throw ImageError.chain(
                referrer,
                "\(role) '\(name)' resolves to \(opened)\(via), outside the image's directory \(directory); "
                    + "refusing to open it (pass --allow-outside-backing, or --trust-root DIR for a directory of trusted images)")
        }
        return source
    }
}
