import AllocationIndex
import ImageFormats
import ImageIO

/// qemu's QCOW2 (versions 2 and 3), registered in ``FormatRegistry``.
///
/// Probe: the magic `QFI\xfb` at offset 0 (qcow2.txt, "Header", bytes 0-3). Header checksum: the header
/// cluster with its extensions and backing file name.
struct QCOW2Driver: FormatDriver {
    let format = ImageFormat.qcow2

    func probe(head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>) -> Bool {
        head.count >= 4 && head.prefix(4).elementsEqual([0x51, 0x46, 0x49, 0xFB])
    }

    func headerBytes(_ source: FileBlockSource) throws -> [UInt8] {
        try QCOW2LayerReader(source: source).headerBytes
    }

    func open(_ request: LayerOpenRequest) throws -> ScannedLayer {
        let (source, givenPath, canonical, identity) = (request.source, request.givenPath, request.canonical, request.identity)
        let (withMap, options, boundary, chainDirectory) = (request.withMap, request.options, request.boundary, request.directory)
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
            map = try Self.mapQCOW2(
                reader: reader, identity: identity, dataSource: dataSource ?? source, canonical: canonical,
                hasExternalData: hasExternalData, progress: options.progress)
        }
        // Persistent dirty bitmaps: a damaged bitmap is named in a warning, not a failed scan (the map stands).
        var bitmaps: [DirtyBitmap] = []
        if withMap, reader.extensions.hasBitmaps {
            if !header.autoclearFeatures.contains(.bitmaps) {
                metadata.warnings.append("bitmaps extension ignored: its autoclear bit is clear (the image was changed without them)")
            }
            do {
                bitmaps = try reader.bitmaps(maximumRanges: options.maximumExtents ?? Limits.QCOW2.maxBitmapRanges)
                metadata.qcow2?.bitmaps = bitmaps.map {
                    BitmapSummary(name: $0.name, granularity: $0.granularity, inUse: $0.inUse, auto: $0.auto, dirtyBytes: $0.dirtyBytes)
                }
            } catch {
                metadata.warnings.append("bitmaps not read: \(error)")
            }
        }
        var layer = ScannedLayer(
            path: canonical, format: .qcow2, identity: identity, headerChecksum: HeaderChecksum.of(reader.headerBytes),
            metadata: metadata, map: map, dataPath: dataSource?.openedPath, dataIdentity: dataSource?.identity)
        layer.bitmaps = bitmaps
        return layer
    }

    /// Maps a QCOW2 layer. Parts of data clusters that are holes or unwritten extents in the data file read
    /// as zeros: marked `zero` when qemu would consider the image metadata-preallocated (qemu-img map then
    /// reports them so), ``Extent/storedZero`` otherwise.
    static func mapQCOW2(
        reader: QCOW2LayerReader, identity: FileIdentity, dataSource: FileBlockSource, canonical: String, hasExternalData: Bool,
        progress: ScanProgress?
    ) throws -> LayerMap {
        var map = try reader.layerMap(dataFileSize: dataSource.size, hasExternalData: hasExternalData, progress: progress)
        // Encrypted clusters over a hole read as ciphertext of zeros, not zeros: never marked.
        guard reader.header.cryptMethod == 0 else { return map }
        let segments = try attributing(to: dataSource.path) { try dataSource.dataSegments() }
        let visible = try QCOW2PreallocationProbe.looksPreallocated(reader: reader, allocatedBytes: identity.allocatedBytes)
        map.markHostHoles(segments: segments, fileSize: dataSource.size, visibleToQemu: visible)
        return map
    }
}
