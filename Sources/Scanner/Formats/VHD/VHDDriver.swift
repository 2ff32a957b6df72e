import ImageFormats
import ImageIO

/// Microsoft's Virtual Hard Disk (fixed, dynamic, differencing), registered in ``FormatRegistry``.
///
/// Probe: the footer cookie `conectix` at the end of the file (VHD spec, "Hard Disk Footer Format", bytes
/// 0-7), or at offset 0 (the footer copy of a dynamic disk). Header checksum: the footer and dynamic header.
struct VHDDriver: FormatDriver {
    let format = ImageFormat.vhd

    func probe(head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>) -> Bool {
        (head.count >= 8 && head.prefix(8).elementsEqual(VHDFooter.cookie))
            || (tail.count == 512 && tail.prefix(8).elementsEqual(VHDFooter.cookie))
    }

    func headerBytes(_ source: FileBlockSource) throws -> [UInt8] {
        try VHDLayerReader(source: source).headerBytes
    }

    func open(_ request: LayerOpenRequest) throws -> ScannedLayer {
        let (source, givenPath, canonical, identity) = (request.source, request.givenPath, request.canonical, request.identity)
        let (withMap, options) = (request.withMap, request.options)
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
        var map = withMap ? try reader.layerMap(progress: options.progress) : LayerMap(virtualSize: footer.currentSize, runs: [])
        if withMap, footer.diskType != .fixed {
            // Sectors of a block that the file system holds as a hole or unwritten extent read as zeros;
            // qemu's vpc driver does not ask the file, so they are host zeros, not shown by `map`.
            let segments = try attributing(to: source.path) { try source.dataSegments() }
            map.markHostHoles(segments: segments, fileSize: source.size, visibleToQemu: false)
        }
        return ScannedLayer(
            path: canonical, format: .vhd, identity: identity, headerChecksum: HeaderChecksum.of(reader.headerBytes),
            metadata: metadata, map: map)
    }
}
