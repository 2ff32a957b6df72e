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
        let identity = source.identity
        let probe = try attributing(to: canonical) { try LayerOpener.probe(source) }
        let detected = probe.format
        if declaredFormat != .raw, let foreign = probe.foreign {
            throw ImageError.chain(
                canonical,
                "\(foreign) is not supported (extentdb reads raw, qcow2 and vhd); pass --image-format raw to read its bytes as a raw disk")
        }
        let format = declaredFormat ?? detected
        if declaredFormat == .qcow2 && detected != .qcow2 {
            throw ImageError.chain(canonical, "declared as qcow2 but has no qcow2 header")
        }
        if declaredFormat == .vhd && detected != .vhd {
            throw ImageError.chain(canonical, "declared as vhd but has no VHD footer")
        }
        switch format {
        case .qcow2:
            return Opened(
                layer: try openQCOW2(
                    source: source, givenPath: givenPath, canonical: canonical, identity: identity, withMap: withMap, options: options,
                    boundary: boundary ?? ChainBoundary(options: options), directory: directory ?? .named(givenPath)))
        case .raw:
            return Opened(layer: try openRaw(source: source, canonical: canonical, identity: identity, withMap: withMap))
        case .vhd:
            return Opened(
                layer: try openVHD(
                    source: source, givenPath: givenPath, canonical: canonical, identity: identity, withMap: withMap, options: options))
        }
    }

    /// The checksum a scan records for `path`: the qcow2 header cluster, the VHD footer and dynamic header,
    /// or a raw file's first 4 KiB. Nothing else is read.
    static func headerChecksum(path: String, format: ImageFormat) throws -> String {
        let source = try attributing(to: path) { try FileBlockSource(path: path) }
        defer { source.close() }
        switch format {
        case .qcow2:
            return HeaderChecksum.fnv1a64(try QCOW2LayerReader(source: source).headerBytes)
        case .vhd:
            return HeaderChecksum.fnv1a64(try VHDLayerReader(source: source).headerBytes)
        case .raw:
            return HeaderChecksum.fnv1a64(try attributing(to: path) { try source.read(at: 0, count: 4096) })
        }
    }

    /// What a file's content says it is: one of our formats, and the name of a foreign container whose
    /// magic it carries (a raw probe of a VHDX, VMDK, ... file).
    static func probe(_ source: FileBlockSource) throws -> (format: ImageFormat, foreign: String?) {
        let head = try source.read(at: 0, count: 512)
        let tailStart = source.size >= 512 ? source.size - 512 : 0
        let tail = try source.read(at: tailStart, count: Int(source.size - tailStart))
        return (ImageFormat.detect(head: head[...], tail: tail[...]), ForeignFormat.name(head: head[...]))
    }

    private static func openVHD(
        source: FileBlockSource, givenPath: String, canonical: String, identity: FileIdentity, withMap: Bool, options: ScanOptions
    ) throws -> ScannedLayer {
        let reader = try VHDLayerReader(source: source)
        let footer = reader.footer
        let header = reader.header
        let directory = PathResolver.directory(of: givenPath)
        var metadata = ImageMetadata(
            format: .vhd, virtualSize: footer.currentSize, clusterSize: header.map { UInt64($0.blockSize) }, fileSize: source.size)
        var locators: [LocatorSummary]?
        if footer.diskType == .differencing, let header {
            let paths = try reader.locatorPaths()
            let candidates = VHDParentLocator.candidates(locators: paths, parentName: header.parentName, directory: directory)
            locators = paths.map { locator in
                LocatorSummary(
                    code: locator.code, path: locator.path, resolvedPath: VHDParentLocator.resolve(locator.path, directory: directory))
            }
            // Only candidates the boundary may open are probed for existence: whether a path outside exists
            // is nobody's business, so an outside candidate goes to the boundary, which refuses it with the
            // same words whether it exists or not.
            let reachable = { (path: String) -> Bool in
                options.allowsOutsideBacking || PathResolver.isInside(path, directory: directory)
                    || options.trustedRoots.contains { PathResolver.isInside(path, directory: $0) }
            }
            let existing = candidates.first(where: { reachable($0.resolved) && PathResolver.canonical($0.resolved) != nil })
            // `info` (no map) shows the disk's own header even when its parent is missing.
            guard let chosen = existing ?? candidates.first(where: { !reachable($0.resolved) }) ?? (withMap ? nil : candidates.first) else {
                let tried = candidates.map { "\($0.source) \($0.resolved)" }.joined(separator: ", ")
                throw ImageError.chain(
                    canonical, "parent of differencing VHD not found (tried: \(tried.isEmpty ? "no usable parent locator" : tried))")
            }
            metadata.backing = BackingReference(
                name: chosen.name, resolvedPath: chosen.resolved, declaredFormat: "vpc",
                escapesImageDirectory: !PathResolver.isInside(chosen.resolved, directory: directory),
                expectedUniqueID: VHDFooter.uuidString(header.parentUniqueID))
        }
        metadata.vhd = VHDDetails(
            diskType: "\(footer.diskType)", creatorApplication: footer.creatorApplication,
            creatorVersion: "\(footer.creatorVersion >> 16).\(footer.creatorVersion & 0xFFFF)", creatorHostOS: footer.creatorHostOS,
            uniqueID: VHDFooter.uuidString(footer.uniqueID), timestamp: footer.timestamp, originalSize: footer.originalSize,
            geometry: "\(footer.cylinders)/\(footer.heads)/\(footer.sectorsPerTrack)", savedState: footer.savedState,
            usedFooterCopy: reader.usedFooterCopy, footerChecksumOK: !reader.usedFooterCopy, headerChecksumOK: header.map { _ in true },
            blockSize: header.map { UInt64($0.blockSize) }, batEntries: header?.maxTableEntries, batOffset: header?.tableOffset,
            parentUniqueID: footer.diskType == .differencing ? header.map { VHDFooter.uuidString($0.parentUniqueID) } : nil,
            parentName: footer.diskType == .differencing ? header?.parentName : nil, parentLocators: locators)
        if reader.usedFooterCopy {
            metadata.warnings.append("the footer at the end of the file is damaged; used the copy at offset 0")
        }
        if footer.savedState { metadata.warnings.append("the disk has a saved state (the VM was suspended)") }
        let map = withMap ? try reader.layerMap(progress: options.progress) : LayerMap(virtualSize: footer.currentSize, runs: [])
        return ScannedLayer(
            path: canonical, format: .vhd, identity: identity, headerChecksum: HeaderChecksum.fnv1a64(reader.headerBytes),
            metadata: metadata, map: map)
    }

    private static func openRaw(source: FileBlockSource, canonical: String, identity: FileIdentity, withMap: Bool) throws -> ScannedLayer {
        let head = try attributing(to: canonical) { try source.read(at: 0, count: 4096) }
        let metadata = ImageMetadata(format: .raw, virtualSize: source.size, clusterSize: nil, fileSize: source.size)
        var map = LayerMap(virtualSize: source.size, runs: [])
        if withMap {
            let segments = try attributing(to: canonical) { try source.dataSegments() }
            map = RawLayerMapper.map(size: source.size, dataSegments: segments)
        }
        return ScannedLayer(
            path: canonical, format: .raw, identity: identity, headerChecksum: HeaderChecksum.fnv1a64(head),
            metadata: metadata, map: map)
    }

    private static func openQCOW2(
        source: FileBlockSource, givenPath: String, canonical: String, identity: FileIdentity, withMap: Bool,
        options: ScanOptions, boundary: ChainBoundary, directory chainDirectory: ChainDirectory
    ) throws -> ScannedLayer {
        let reader = try QCOW2LayerReader(source: source)
        let header = reader.header
        let directory = PathResolver.directory(of: givenPath)
        var metadata = ImageMetadata(format: .qcow2, virtualSize: header.size, clusterSize: header.clusterSize, fileSize: source.size)
        if let name = reader.backingName {
            guard !name.hasPrefix("json:"), !name.contains("://") || name.hasPrefix("file://") else {
                throw ImageError.chain(canonical, "backing file '\(name)' is a protocol URL, which extentdb does not follow")
            }
            let plain = name.hasPrefix("file:") ? String(name.dropFirst(name.hasPrefix("file://") ? 7 : 5)) : name
            let resolved = PathResolver.absolute(plain, relativeTo: directory)
            metadata.backing = BackingReference(
                name: name, resolvedPath: resolved, declaredFormat: reader.extensions.backingFormat,
                escapesImageDirectory: !PathResolver.isInside(resolved, directory: directory))
        }
        let snapshots = try reader.snapshots()
        let hasExternalData = header.incompatibleFeatures.contains(.externalDataFile)
        if hasExternalData && reader.extensions.externalDataFile == nil {
            throw ImageError.format(
                canonical,
                .invalid(field: "incompatible_features", offset: 72, reason: "external data file bit set but no data file name extension"))
        }
        metadata.qcow2 = QCOW2Details(
            version: header.version, clusterBits: header.clusterBits, refcountBits: 1 << UInt64(header.refcountOrder),
            l1Size: header.l1Size, l1TableOffset: header.l1TableOffset, extendedL2: header.hasExtendedL2,
            compressionType: header.compressionType == .zstd ? "zstd" : "zlib", encrypted: header.cryptMethod != 0,
            encryption: header.cryptMethod == 0
                ? nil : (header.cryptMethod == 1 ? "aes" : header.cryptMethod == 2 ? "luks" : "method \(header.cryptMethod)"),
            dirty: header.incompatibleFeatures.contains(.dirty), lazyRefcounts: header.compatibleFeatures & 1 != 0,
            externalDataFile: reader.extensions.externalDataFile,
            externalDataFileRaw: header.autoclearFeatures.contains(.rawExternalData),
            hasBitmaps: reader.extensions.hasBitmaps,
            snapshots: snapshots.map {
                SnapshotSummary(
                    id: $0.id, name: $0.name, dateSeconds: $0.dateSeconds, vmStateSize: $0.vmStateSize, diskSize: $0.diskSize,
                    l1Size: $0.l1Size)
            })
        if header.incompatibleFeatures.contains(.dirty) {
            metadata.warnings.append("image is marked dirty (incompatible feature bit 0): refcounts may be stale; mapped anyway")
        }
        if !reader.extensions.unknownTypes.isEmpty {
            metadata.warnings.append(
                "ignored unknown header extensions: "
                    + reader.extensions.unknownTypes.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))
        }
        var dataSource: FileBlockSource?
        if hasExternalData, let name = reader.extensions.externalDataFile {
            let resolved = PathResolver.absolute(name, relativeTo: directory)
            metadata.qcow2?.externalDataFileResolved = resolved
            metadata.qcow2?.externalDataFileEscapes = !PathResolver.isInside(resolved, directory: directory)
            // A data file is raw bytes whatever it is: it is opened once, on the same boundary as backing
            // files (a link to `/etc/shadow` or a block device would otherwise be exported).
            if withMap {
                dataSource = try boundary.openNamed(
                    resolved, name: name, role: "external data file", referrer: canonical, directory: chainDirectory
                ).source
            }
        }
        defer { dataSource?.close() }
        var map = LayerMap(virtualSize: header.size, runs: [])
        if withMap {
            map = try mapQCOW2(
                reader: reader, identity: identity, dataSource: dataSource ?? source, canonical: canonical,
                hasExternalData: hasExternalData, progress: options.progress)
        }
        return ScannedLayer(
            path: canonical, format: .qcow2, identity: identity, headerChecksum: HeaderChecksum.fnv1a64(reader.headerBytes),
            metadata: metadata, map: map, dataPath: dataSource?.openedPath, dataIdentity: dataSource?.identity)
    }

    /// Maps a QCOW2 layer; when qemu would consider it metadata-preallocated, parts of data clusters that
    /// are holes in the data file are marked as reading zero, as qemu-img map reports them.
    private static func mapQCOW2(
        reader: QCOW2LayerReader, identity: FileIdentity, dataSource: FileBlockSource, canonical: String, hasExternalData: Bool,
        progress: ScanProgress?
    ) throws -> LayerMap {
        var map = try reader.layerMap(dataFileSize: dataSource.size, hasExternalData: hasExternalData, progress: progress)
        if reader.header.cryptMethod == 0,
            try QCOW2PreallocationProbe.looksPreallocated(reader: reader, allocatedBytes: identity.allocatedBytes)
        {
            let segments = try attributing(to: dataSource.path) { try dataSource.dataSegments() }
            map.markHostHoles(segments: segments, fileSize: dataSource.size)
        }
        return map
    }
}

/// Maps a raw file: data segments are data, holes read as zero; both at host offset = guest offset.
enum RawLayerMapper {
    static func map(size: UInt64, dataSegments: [Range<UInt64>]) -> LayerMap {
        var builder = ExtentListBuilder()
        var position: UInt64 = 0
        for segment in dataSegments where segment.upperBound > position {
            guard segment.lowerBound < size else { break }  // past the disk (a fixed VHD's footer)
            let start = max(segment.lowerBound, position)
            if start > position {
                builder.append(
                    Extent(start: position, length: start - position, depth: 0, present: true, zero: true, data: false, offset: position))
            }
            let end = min(segment.upperBound, size)
            guard end > start else { continue }
            builder.append(Extent(start: start, length: end - start, depth: 0, present: true, zero: false, data: true, offset: start))
            position = end
        }
        if position < size {
            builder.append(
                Extent(start: position, length: size - position, depth: 0, present: true, zero: true, data: false, offset: position))
        }
        return LayerMap(virtualSize: size, runs: builder.extents)
    }
}
