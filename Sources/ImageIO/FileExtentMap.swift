import CExtentShims
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Which byte ranges of a file hold data, asked of the file system so the answer does not depend on the
/// page cache.
///
/// `lseek(2)` `SEEK_DATA` reports an unwritten (fallocated) extent as data when some of its pages are in
/// the page cache (ext4, xfs: "the file system may report the cached pages as data"), so the same file maps
/// differently before and after something reads it. `FS_IOC_FIEMAP` (Documentation/filesystems/fiemap.rst)
/// lists the extents themselves, with `FIEMAP_EXTENT_UNWRITTEN` on allocated ranges that read as zeros;
/// those are reported as holes here. `FIEMAP_FLAG_SYNC` writes dirty pages back first, so an unwritten
/// extent that has just been written through the cache is already converted to data when it is listed.
/// Where FIEMAP is not supported (tmpfs, NFS, block devices) the answer comes from `SEEK_DATA`/`SEEK_HOLE`.
public enum FileExtentMap {
    /// How a map was made.
    public enum Method: Sendable, Equatable {
        case fiemap
        case seek
    }

    /// Extents asked for per FIEMAP call: the buffer is ~28 KiB whatever the file, and a file with millions
    /// of extents takes one call per `batch` of them (each continues from where the last one ended).
    static let batch: UInt32 = 512

    /// The data segments of `descriptor` as sorted, merged `[start, end)` ranges inside `[0, size)`.
    ///
    /// - Parameter method: force one method (tests); nil tries FIEMAP, then falls back to `SEEK_DATA`.
    /// - Returns: the segments and the method that produced them.
    public static func dataSegments(
        descriptor: FileDescriptor, size: UInt64, path: String, method: Method? = nil
    ) throws(IOError) -> (segments: [Range<UInt64>], method: Method) {
        if method != .seek, let segments = try fiemapSegments(descriptor: descriptor, size: size, path: path) {
            return (segments, .fiemap)
        }
        if method == .fiemap {
            throw IOError(path: path, operation: "ioctl(FS_IOC_FIEMAP)", detail: "not supported by this file system")
        }
        return (try seekSegments(descriptor: descriptor, size: size, path: path), .seek)
    }

    /// Data segments from FIEMAP, or nil when the file system does not support it.
    static func fiemapSegments(descriptor: FileDescriptor, size: UInt64, path: String) throws(IOError) -> [Range<UInt64>]? {
        guard size > 0 else { return [] }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: extentdb_fiemap_buffer_size(batch), alignment: 8)
        defer { buffer.deallocate() }
        var segments: [Range<UInt64>] = []
        var position: UInt64 = 0
        while position < size {
            let mapped = extentdb_fiemap(descriptor.rawValue, position, size - position, buffer, batch)
            if mapped < 0 {
                let code = extentdb_errno()
                if position == 0 && [EOPNOTSUPP, ENOTTY, EINVAL, ENOSYS].contains(code) { return nil }
                throw IOError(path: path, operation: "ioctl(FS_IOC_FIEMAP) at \(position)", errno: Errno(rawValue: code))
            }
            guard mapped > 0 else { break }
            var last = false
            var next = position
            for index in 0..<UInt32(mapped) {
                var logical: UInt64 = 0
                var length: UInt64 = 0
                var flags: UInt32 = 0
                extentdb_fiemap_extent(buffer, index, &logical, &length, &flags)
                last = last || flags & UInt32(EXTENTDB_FIEMAP_EXTENT_LAST) != 0
                let end = logical.addingReportingOverflow(length)
                let stop = end.overflow ? UInt64.max : end.partialValue
                next = max(next, stop)
                // Unwritten extents read as zeros: holes as far as data goes. Extents past the end of the
                // file (fallocate --keep-size) are clipped away.
                guard flags & UInt32(EXTENTDB_FIEMAP_EXTENT_UNWRITTEN) == 0 else { continue }
                let lower = max(logical, position)
                let upper = min(stop, size)
                guard lower < upper else { continue }
                if let previous = segments.last, previous.upperBound >= lower {
                    segments[segments.count - 1] = previous.lowerBound..<max(previous.upperBound, upper)
                } else {
                    segments.append(lower..<upper)
                }
            }
            // The kernel returns at most `batch` extents; ask again from the end of the last one.
            if last || next <= position { break }
            position = next
        }
        return segments
    }

    /// Data segments from `lseek` `SEEK_DATA`/`SEEK_HOLE`; on file systems without hole support the whole
    /// file is one segment.
    static func seekSegments(descriptor: FileDescriptor, size: UInt64, path: String) throws(IOError) -> [Range<UInt64>] {
        var segments: [Range<UInt64>] = []
        var position: Int64 = 0
        let fd = descriptor.rawValue
        let end = Int64(size)
        while position < end {
            let dataStart = extentdb_seek_data(fd, position)
            if dataStart < 0 {
                let code = extentdb_errno()
                if code == ENXIO { break }
                if code == EINVAL && position == 0 { return size > 0 ? [0..<size] : [] }
                throw IOError(path: path, operation: "lseek(SEEK_DATA) at \(position)", errno: Errno(rawValue: code))
            }
            if dataStart >= end { break }
            var holeStart = extentdb_seek_hole(fd, dataStart)
            if holeStart < 0 {
                throw IOError(path: path, operation: "lseek(SEEK_HOLE) at \(dataStart)", errno: Errno(rawValue: extentdb_errno()))
            }
            holeStart = min(holeStart, end)
            segments.append(UInt64(dataStart)..<UInt64(holeStart))
            position = holeStart
        }
        return segments
    }
}
