import ImageFormats
import ImageIO

/// Opens one file of a chain: identity, format, header metadata and (optionally) its own layer map.
enum LayerOpener {
    struct Opened {
        var layer: ScannedLayer
    }

    /// Reads one already-opened file of a chain: its format (probed from the descriptor, or as declared),
    /// header metadata and, with `withMap`, its own layer map.
    ///
    /// - Parameters:
    ///   - source: the opened file; every read goes through it (``ChainBoundary`` vetted it).
    ///   - givenPath: the path it was opened by; relative names inside it resolve against its directory.
    ///   - declaredFormat: the format the caller pinned or the overlay declared, or nil to probe.
    static func open(
        source: FileBlockSource, givenPath: String, declaredFormat: ImageFormat?, withMap: Bool, options: ScanOptions = ScanOptions(),
        boundary: ChainBoundary? = nil, directory: ChainDirectory? = nil
    ) throws -> Opened {
        let canonical = source.openedPath
        let probe = try attributing(to: canonical) { try LayerOpener.probe(source) }
        let detected = probe.format
        if declaredFormat != .raw, let foreign = probe.foreign {
            throw ImageError.chain(
                canonical,
                "\(foreign) is not supported (extentdb reads raw, qcow2 and vhd)", remedy: .readAsRaw)
        }
        let format = declaredFormat ?? detected
        // Every format but raw must find its own magic where it was declared.
        if let declaredFormat, declaredFormat != .raw, detected != declaredFormat {
            throw ImageError.chain(canonical, "declared as \(declaredFormat.rawValue) but has no \(declaredFormat.rawValue) header")
        }
        let request = LayerOpenRequest(
            source: source, givenPath: givenPath, withMap: withMap, options: options, boundary: boundary ?? ChainBoundary(options: options),
            directory: directory ?? .named(givenPath))
        return Opened(layer: try FormatRegistry.driver(for: format).open(request))
    }

    /// Whether `path`'s header bytes (the qcow2 header cluster, the VHD footer and dynamic header, or a raw
    /// file's first 4 KiB) still give the checksum a scan recorded. Nothing else is read.
    static func headerMatches(path: String, format: ImageFormat, recorded: String) throws -> Bool {
        let source = try attributing(to: path) { try FileBlockSource(path: path) }
        defer { source.close() }
        return HeaderChecksum.matches(recorded, bytes: try FormatRegistry.driver(for: format).headerBytes(source))
    }

    /// What a file's content says it is: one of our formats, and the name of a foreign container whose
    /// magic it carries (a raw probe of a VHDX, VMDK, ... file).
    static func probe(_ source: FileBlockSource) throws -> (format: ImageFormat, foreign: String?) {
        let head = try source.read(at: 0, count: 512)
        let tailStart = source.size >= 512 ? source.size - 512 : 0
        let tail = try source.read(at: tailStart, count: Int(source.size - tailStart))
        return (FormatRegistry.detect(head: head[...], tail: tail[...]), ForeignFormat.name(head: head[...]))
    }
}
