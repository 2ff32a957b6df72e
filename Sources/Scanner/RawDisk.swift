import ImageFormats

/// How plain bytes of a host file are presented as a guest disk: a raw image, or the data area of a
/// fixed VHD.
enum RawDisk {
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
