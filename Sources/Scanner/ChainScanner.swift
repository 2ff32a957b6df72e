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
}

/// An image and its whole backing chain, composed into one allocation map.
public struct ChainScan: Sendable {
    /// Layer 0 is the image itself, then its backing file, and so on down.
    public var layers: [ScannedLayer]
    /// The composed map: sorted, merged, tiling `[0, virtual size)` exactly.
    public var extents: [Extent]
    public var durationNanoseconds: UInt64

    public var top: ScannedLayer { layers[0] }
}

/// Options a caller may set for a scan.
public struct ScanOptions: Sendable {
    /// Open backing files that resolve outside the image's directory even when they are not disk images.
    public var allowOutsideRawBacking = false
    /// Longest chain accepted, to bound work on hostile images.
    public var maximumChainLength = 256

    public init(allowOutsideRawBacking: Bool = false) {
        self.allowOutsideRawBacking = allowOutsideRawBacking
    }
}

/// Scans an image and its chain: headers, tables, host holes, then the composed map.
public enum ChainScanner {
    /// Scans the image at `path` (a file or block device) and every layer below it.
    ///
    /// - Throws: ``ImageError`` naming the file, the field and the offset.
    public static func scan(path: String, options: ScanOptions = ScanOptions()) throws -> ChainScan {
        let clock = ContinuousClock()
        let started = clock.now
        var layers: [ScannedLayer] = []
        var seen: Set<[UInt64]> = []
        var next: (path: String, displayPath: String, format: ImageFormat?)? = (path, path, nil)
        while let current = next {
            guard layers.count < options.maximumChainLength else {
                throw ImageError.chain(path, "backing chain is longer than \(options.maximumChainLength) layers")
            }
            let opened = try LayerOpener.open(path: current.path, declaredFormat: current.format, withMap: true, options: options)
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
            next = nil
            if let backing = layer.metadata.backing {
                guard PathResolver.canonical(backing.resolvedPath) != nil else {
                    throw ImageError.chain(
                        layer.path, "backing file '\(backing.name)' (resolved to \(backing.resolvedPath)) not found")
                }
                let format = try backingFormat(backing, of: layer.path)
                try checkBackingIsSafe(backing, declaredFormat: format, of: layer.path, options: options)
                next = (backing.resolvedPath, backing.name, format)
            }
        }
        let extents = ChainComposer.compose(layers.map(\.map))
        let elapsed = clock.now - started
        let nanoseconds = UInt64(elapsed.components.seconds) * 1_000_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000)
        return ChainScan(layers: layers, extents: extents, durationNanoseconds: nanoseconds)
    }

    /// Reads only the header metadata of one file (no tables, no chain): what `info` shows when the chain
    /// cannot be scanned.
    public static func inspect(path: String) throws -> ScannedLayer {
        RawDisk.padded(try LayerOpener.open(path: path, declaredFormat: nil, withMap: false).layer)
    }

    /// The format of a file by content (qcow2 magic, VHD cookie at either end, else raw).
    public static func detectFormat(path: String) throws -> ImageFormat {
        let source = try attributing(to: path) { try FileBlockSource(path: path) }
        defer { source.close() }
        return try attributing(to: path) { try LayerOpener.detect(source) }
    }

    /// The header checksum of one file, as a scan records it, reading only the header (no tables).
    public static func headerChecksum(path: String, format: ImageFormat) throws -> String {
        try LayerOpener.headerChecksum(path: path, format: format)
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

    /// Refuses a backing file outside the image's directory that is not a disk image (e.g. `../../etc/passwd`).
    static func checkBackingIsSafe(_ backing: BackingReference, declaredFormat: ImageFormat?, of path: String, options: ScanOptions) throws {
        guard backing.escapesImageDirectory, !options.allowOutsideRawBacking else { return }
        let detected = try LayerOpener.detectFormat(path: backing.resolvedPath, referencedBy: path, name: backing.name)
        if detected == .raw {
            throw ImageError.chain(
                path,
                "backing file '\(backing.name)' resolves to \(backing.resolvedPath), outside the image's directory, "
                    + "and is not a disk image; refusing to read it (pass --allow-outside-backing to trust it)")
        }
    }
}
