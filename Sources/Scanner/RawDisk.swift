import ImageFormats

/// How plain bytes of a host file are presented as a guest disk: a raw image, or the data area of a
/// fixed VHD.
///
/// A raw file whose length is not a multiple of 512 is a disk of whole sectors: qemu's raw driver and the
/// hypervisors round it up (`qemu-img info` of a 1,000-byte file: "virtual size: 1 KiB (1024 bytes)"), and
/// the padding past the end of the file reads as zeros. `qemu-img map` shows the padding as a zero extent
/// at host offset = guest offset, merged with a hole before it:
///
/// ```
/// file   [0 ............ 1000)
/// disk   [0 ............ 1000)[1000 .. 1024)
///         data (offset 0)      zero (offset 1000)   <- never read: past the end of the file
/// ```
enum RawDisk {
    /// The sector size a raw disk's length is a multiple of.
    static let sectorSize: UInt64 = 512

    /// The virtual size of a raw disk whose file is `fileSize` bytes long: rounded up to whole sectors.
    static func virtualSize(fileSize: UInt64) -> UInt64 {
        let remainder = fileSize % sectorSize
        return remainder == 0 ? fileSize : fileSize + (sectorSize - remainder)
    }

    /// A raw layer as the disk it presents: virtual size rounded up to whole sectors, and the padding past
    /// the end of the file mapped as reading zeros (at host offset = guest offset, as `qemu-img map` shows
    /// it). Layers of other formats, and raw files already a sector multiple, are returned as they are.
    static func padded(_ layer: ScannedLayer) -> ScannedLayer {
        guard layer.format == .raw else { return layer }
        let fileEnd = layer.metadata.virtualSize
        let size = virtualSize(fileSize: fileEnd)
        guard size > fileEnd else { return layer }
        var padded = layer
        padded.metadata.virtualSize = size
        padded.map.virtualSize = size
        // A map that was built (withMap) tiles [0, fileEnd); one that was not has no runs.
        if let last = layer.map.runs.last, last.end == fileEnd {
            var builder = ExtentListBuilder()
            builder.extents = layer.map.runs
            builder.append(
                Extent(start: fileEnd, length: size - fileEnd, depth: 0, present: true, zero: true, data: false, offset: fileEnd))
            padded.map.runs = builder.extents
        }
        return padded
    }

    /// The data segments of a file that lie inside `[0, limit)`, clipped to it.
    ///
    /// A fixed VHD's file ends with its 512-byte footer (VHD specification, "Fixed Hard Disk Image"), which
    /// `SEEK_DATA` reports as data like any other byte: it is not part of the disk and must not reach the
    /// map (it used to be mapped as a second copy of the zeros before it).
    ///
    /// - Parameter segments: sorted, non-overlapping `[start, end)` ranges (``FileBlockSource/dataSegments()``).
    static func segments(_ segments: [Range<UInt64>], clippedTo limit: UInt64) -> [Range<UInt64>] {
        var clipped: [Range<UInt64>] = []
        clipped.reserveCapacity(segments.count)
        for segment in segments {
            guard segment.lowerBound < limit else { break }
            clipped.append(segment.lowerBound..<min(segment.upperBound, limit))
        }
        return clipped
    }
}
