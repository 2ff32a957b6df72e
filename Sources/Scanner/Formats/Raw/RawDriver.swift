import ImageFormats
import ImageIO

/// A raw disk: the file's bytes are the guest's. Registered last in ``FormatRegistry``: it claims every file
/// no other driver does. Header checksum: the first 4 KiB.
struct RawDriver: FormatDriver {
    let format = ImageFormat.raw

    func probe(head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>) -> Bool { true }

    func headerBytes(_ source: FileBlockSource) throws -> [UInt8] {
        try attributing(to: source.path) { try source.read(at: 0, count: 4096) }
    }

    func open(_ request: LayerOpenRequest) throws -> ScannedLayer {
        let (source, canonical, identity, withMap) = (request.source, request.canonical, request.identity, request.withMap)
        let head = try attributing(to: canonical) { try source.read(at: 0, count: 4096) }
        let metadata = ImageMetadata(format: .raw, virtualSize: source.size, clusterSize: nil, fileSize: source.size)
        var map = LayerMap(virtualSize: source.size, runs: [])
        if withMap {
            let segments = try attributing(to: canonical) { try source.dataSegments() }
            map = RawLayerMapper.map(size: source.size, dataSegments: segments)
        }
        return ScannedLayer(
            path: canonical, format: .raw, identity: identity, headerChecksum: HeaderChecksum.of(head),
            metadata: metadata, map: map)
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
