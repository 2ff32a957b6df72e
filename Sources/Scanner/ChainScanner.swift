import AllocationIndex
import ImageFormats
import ImageIO

/// One file of a chain, opened, identified and mapped on its own.
public struct ScannedLayer: Sendable {
    /// Canonical absolute path (symbolic links resolved).
    public var path: String
    public var format: ImageFormat
    public var identity: FileIdentity
    public var headerChecksum: String
    public var metadata: ImageMetadata
    public var map: LayerMap
    /// The file holding the layer's data when it is not the image itself (qcow2 external data file).
    public var dataPath: String?
    /// The `fstat` identity of that data file, checked for freshness like the layer's own.
    public var dataIdentity: FileIdentity?
    /// qcow2 persistent dirty bitmaps (read when the layer is mapped).
    public var bitmaps: [DirtyBitmap] = []
}

/// An image and its whole backing chain, composed into one allocation map.
public struct ChainScan: Sendable {
    /// Layer 0 is the image itself, then its backing file, and so on down.
    public var layers: [ScannedLayer]
    /// The composed map: sorted, merged, tiling `[0, virtual size)` exactly.
    public var extents: [Extent]
    public var durationNanoseconds: UInt64
    /// What the chain needed beyond each image's own directory (recorded with the scan).
    public var trust = ScanTrust()

    public var top: ScannedLayer { layers[0] }
}

/// Options a caller may set for a scan.
public struct ScanOptions: Sendable {
    /// Follow backing files, VHD parents and qcow2 data files wherever they are (``ChainBoundary``).
    public var allowsOutsideBacking = false
    /// Keep the trust an image was indexed with (`--allow-outside-backing` given to an earlier scan of it)
    /// for its later rescans: the CLI's policy. The service keeps only its own (false).
    public var keepsRecordedTrust = true
    /// Canonical directories whose files any image may name as its backing file, parent or data file.
    public var trustedRoots: [String] = []
    /// Read the image as this format instead of probing it (`--image-format`).
    public var pinnedFormat: ImageFormat?
    /// Longest chain accepted, to bound work on hostile images (``Limits/chainLength``).
    public var maximumChainLength = Limits.chainLength
    /// Counts the tables read, for a caller reporting progress.
    public var progress: ScanProgress?
    /// When set, the image itself must be a canonical path beneath one of these directories and is opened
    /// beneath it with no symbolic link at all (the service: a link where the indexed file was means it was
    /// replaced by a pointer to another file, ``ImageError/Reason/replaced``).
    public var confinementRoots: [String]?
    /// Seconds a scan may run (the service's `--scan-time-limit`); nil: no limit.
    public var timeLimit: Double?
    /// Extents one layer may map (the service's `--max-scan-extents`); nil: no limit.
    public var maximumExtents: Int?

    public init(allowsOutsideBacking: Bool = false, trustedRoots: [String] = [], pinnedFormat: ImageFormat? = nil) {
        self.allowsOutsideBacking = allowsOutsideBacking
        self.trustedRoots = trustedRoots
        self.pinnedFormat = pinnedFormat
    }
}

/// Scans an image and its chain: headers, tables, host holes, then the composed map.
public enum ChainScanner {
    /// Scans the image at `path` (a file or block device) and every layer below it.
    ///
    /// Each file is opened once and read only through that descriptor; files the image names are opened
    /// through ``ChainBoundary``.
    ///
    /// - Throws: ``ImageError`` naming the file, the field and the offset.
    public static func scan(path: String, options: ScanOptions = ScanOptions()) throws -> ChainScan {
        let clock = ContinuousClock()
        let started = clock.now
        var options = options
        if options.progress == nil, options.timeLimit != nil || options.maximumExtents != nil {
            options.progress = ScanProgress(timeLimit: options.timeLimit, extentLimit: options.maximumExtents ?? Int.max)
        }
        let boundary = ChainBoundary(options: options)
        var layers: [ScannedLayer] = []
        var seen: Set<[UInt64]> = []
        var givenPath = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
        var directory = ChainDirectory.named(givenPath)
        var source: FileBlockSource?
        if let roots = options.confinementRoots {
            (source, directory) = try openConfined(givenPath, roots: roots)
        } else {
            source = try openImage(givenPath)
        }
        var declared = options.pinnedFormat
        while let current = source {
            defer { current.close() }
            guard layers.count < options.maximumChainLength else {
                throw ImageError.chain(path, "backing chain is longer than \(options.maximumChainLength) layers")
            }
            let opened = try LayerOpener.open(
                source: current, givenPath: givenPath, declaredFormat: declared, withMap: true, options: options,
                boundary: boundary, directory: directory)
            // A raw file is a disk of whole sectors (RawDisk): what qemu and hypervisors present.
            let layer = RawDisk.padded(opened.layer)
            let key = [layer.identity.device, layer.identity.inode]
            guard seen.insert(key).inserted else {
                throw ImageError.chain(layers.last?.path ?? path, "backing chain loops back to \(layer.path)")
            }
            if let expected = layers.last?.metadata.backing?.expectedUniqueID {
                let found = layer.metadata.vhd?.uniqueID
                guard found == expected else {
                    throw ImageError.chain(
                        layers.last?.path ?? path,
                        "parent \(layer.path) has unique id \(found ?? "none"), but the differencing disk expects \(expected)")
                }
            }
            layers.append(layer)
            source = nil
            if let backing = layer.metadata.backing {
                declared = try backingFormat(backing, of: layer.path)
                let next = try boundary.openNamed(
                    backing.resolvedPath, name: backing.name, role: layer.format == .vhd ? "parent" : "backing file",
                    referrer: layer.path, directory: directory)
                source = next.source
                givenPath = next.givenPath
                directory = next.directory
            }
        }
        let extents = ChainComposer.compose(layers.map(\.map))
        let elapsed = clock.now - started
        let nanoseconds = UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000)
        return ChainScan(layers: layers, extents: extents, durationNanoseconds: nanoseconds, trust: boundary.trust)
    }

    /// Opens the image a caller named (symbolic links followed, block devices allowed, FIFOs refused).
    static func openImage(_ path: String) throws -> FileBlockSource {
        try attributing(to: path) { try FileBlockSource(path: path) }
    }

    /// Opens an image the service names by its canonical path beneath one of `roots`, with no symbolic link
    /// anywhere on the way (openat2 `RESOLVE_NO_SYMLINKS`), and its directory the same way.
    ///
    /// - Throws: ``ImageError`` ``ImageError/Reason/replaced`` when a link now stands on the path.
    static func openConfined(_ path: String, roots: [String]) throws -> (FileBlockSource, ChainDirectory) {
        guard let root = roots.first(where: { PathResolver.beneath(path, directory: $0) != nil }),
            let relative = PathResolver.beneath(path, directory: root)
        else {
            throw ImageError.chain(path, "not beneath the directories this index serves")
        }
        let anchor = try attributing(to: path) { try DirectoryAnchor(path: root) }
        let source: FileBlockSource
        do {
            source = try ConfinedOpen.open(relative, beneath: anchor, resolution: .beneathWithoutSymbolicLinks)
        } catch {
            if error.errno == .tooManySymbolicLinkLevels || error.errno == .improperLink {
                throw ImageError(path: path, .replaced("a symbolic link now stands on its path, so it would read another file"))
            }
            throw error.asImageError
        }
        let parent = PathResolver.directory(of: relative)
        let directory = ChainDirectory(lexicalPath: PathResolver.directory(of: path)) { () throws(IOError) in
            try anchor.directory(parent, resolution: .beneathWithoutSymbolicLinks)
        }
        return (source, directory)
    }

    /// Reads only the header metadata of one file (no tables, no chain): what `info` shows when the chain
    /// cannot be scanned.
    public static func inspect(path: String, format: ImageFormat? = nil) throws -> ScannedLayer {
        let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
        let source = try openImage(absolute)
        defer { source.close() }
        return RawDisk.padded(try LayerOpener.open(source: source, givenPath: absolute, declaredFormat: format, withMap: false).layer)
    }

    /// The format of a file by content, and the name of a foreign container (VHDX, VMDK, ...) it is.
    public static func probe(path: String) throws -> (format: ImageFormat, foreign: String?) {
        let source = try openImage(path)
        defer { source.close() }
        return try attributing(to: path) { try LayerOpener.probe(source) }
    }

    /// The external data files that the qcow2 images among `paths` name, canonical, each with the image
    /// naming it. Discovery (`scan DIR`, the service's watcher) does not index these as raw disks of their
    /// own: their bytes are the qcow2 image's data, scanned as part of it, and would be counted twice.
    /// Files that are not qcow2, cannot be read, or name a data file that does not exist are passed over
    /// (their own scan reports them).
    public static func externalDataFiles(among paths: [String]) -> [String: String] {
        var files: [String: String] = [:]
        for path in paths {
            guard (try? probe(path: path))?.format == .qcow2,
                let layer = try? inspect(path: path, format: .qcow2),
                let resolved = layer.metadata.qcow2?.externalDataFileResolved,
                let canonical = PathResolver.canonical(resolved)
            else { continue }
            files[canonical] = layer.path
        }
        return files
    }

    /// Whether one file's header still gives the checksum a scan `recorded`, reading only the header (no tables).
    public static func headerMatches(path: String, format: ImageFormat, recorded: String) throws -> Bool {
        try LayerOpener.headerMatches(path: path, format: format, recorded: recorded)
    }

    /// The format a backing reference declares, or nil to detect it by content.
    static func backingFormat(_ backing: BackingReference, of path: String) throws -> ImageFormat? {
        guard let declared = backing.declaredFormat else { return nil }
        switch declared {
        case "raw": return .raw
        case "qcow2": return .qcow2
        case "vpc", "vhd": return .vhd
        default:
            throw ImageError.chain(path, "backing file '\(backing.name)' has format '\(declared)', which extentdb does not read")
        }
    }
}
