import CExtentShims
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Random-access reads of an image file with `pread`, looped until full (pread may return short counts).
///
/// The file is opened once, read-only and non-blocking (a FIFO planted where an image is expected cannot
/// hang the open), and the opened descriptor is checked with `fstat` before anything is read: only a regular
/// file, or a block device where the caller allows one, is accepted. Everything after that (format probing,
/// headers, tables, data) reads through this one descriptor, so a file swapped after the check is never read.
/// `close()` (or deinit) releases the descriptor.
public final class FileBlockSource: @unchecked Sendable {
    public let path: String
    public let descriptor: FileDescriptor
    /// Length of the file when it was opened.
    public let size: UInt64
    /// The `fstat` identity of what was actually opened.
    public let identity: FileIdentity
    /// The canonical path of what was actually opened (from `/proc/self/fd`), symbolic links resolved.
    public let openedPath: String
    private var isClosed = false

    /// What may be opened where a disk image is expected.
    public struct Rules: Sendable {
        /// Accept a block device (an image named by the user, or a trusted backing device).
        public var allowsBlockDevice: Bool
        /// Refuse a symbolic link as the last component (`O_NOFOLLOW`).
        public var followsSymbolicLinks: Bool
        /// Refuse a descriptor whose path the kernel cannot report (a deleted file, a memfd, a name that is
        /// not UTF-8 or longer than 4,096 bytes) instead of falling back to the name it was opened by: a file
        /// an image names is only ever judged by where it really is.
        public var requiresKnownLocation: Bool

        public init(allowsBlockDevice: Bool = true, followsSymbolicLinks: Bool = true, requiresKnownLocation: Bool = false) {
            self.allowsBlockDevice = allowsBlockDevice
            self.followsSymbolicLinks = followsSymbolicLinks
            self.requiresKnownLocation = requiresKnownLocation
        }
    }

    /// Opens `path` (read-only, non-blocking) and checks what was opened against `rules`.
    ///
    /// The name is opened `O_PATH` first (no read access, so a FIFO, tape or watchdog device it may name
    /// sees no open), checked with `fstat`, and only an accepted file is reopened for reading, through the
    /// vetted descriptor's own /proc entry so that the same inode is read.
    public convenience init(path: String, rules: Rules = Rules()) throws(IOError) {
        let handle = Glibc.open(path, ConfinedOpen.pathOnly | O_CLOEXEC | (rules.followsSymbolicLinks ? 0 : O_NOFOLLOW))
        guard handle >= 0 else { throw IOError(path: path, operation: "open", errno: Errno(rawValue: errno)) }
        defer { Glibc.close(handle) }
        var vetted = stat()
        guard fstat(handle, &vetted) == 0 else { throw IOError(path: path, operation: "fstat", errno: Errno(rawValue: errno)) }
        let kind = FileIdentity(status: vetted).kind
        if kind == .other && vetted.st_mode & S_IFMT == S_IFLNK {
            throw IOError(path: path, operation: "open", detail: "is a symbolic link, which is not followed here")
        }
        guard kind == .regular || (kind == .blockDevice && rules.allowsBlockDevice) else {
            throw IOError(
                path: path, operation: "open",
                detail: "not a regular file (\(FileIdentity.describe(mode: vetted.st_mode))); refusing to read it")
        }
        var fd = Glibc.open("/proc/self/fd/\(handle)", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 && errno == ENOENT {
            // No /proc: open by name again; the identity check below still refuses a swapped file.
            fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (rules.followsSymbolicLinks ? 0 : O_NOFOLLOW))
        }
        guard fd >= 0 else { throw IOError(path: path, operation: "open", errno: Errno(rawValue: errno)) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, opened.st_dev == vetted.st_dev, opened.st_ino == vetted.st_ino else {
            Glibc.close(fd)
            throw IOError(path: path, operation: "open", detail: "the file was replaced while it was being opened")
        }
        try self.init(adopting: fd, path: path, rules: rules)
    }

    /// Takes ownership of an open descriptor (closed here on failure) and checks it against `rules`.
    public init(adopting fd: Int32, path: String, rules: Rules) throws(IOError) {
        self.path = path
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw IOError(path: path, operation: "fstat", errno: Errno(rawValue: code))
        }
        let identity = FileIdentity(status: info)
        let accepted = identity.kind == .regular || (identity.kind == .blockDevice && rules.allowsBlockDevice)
        guard accepted else {
            Glibc.close(fd)
            throw IOError(
                path: path, operation: "open",
                detail: "not a regular file (\(FileIdentity.describe(mode: info.st_mode))); refusing to read it")
        }
        let located = FileIdentity.pathOfDescriptor(fd)
        if located == nil && rules.requiresKnownLocation {
            Glibc.close(fd)
            throw IOError(
                path: path, operation: "open",
                detail: "where the opened file lies cannot be established (deleted, a memory file, or a name that is not UTF-8)")
        }
        descriptor = FileDescriptor(rawValue: fd)
        if identity.kind == .blockDevice {
            let end = lseek(fd, 0, SEEK_END)
            guard end >= 0 else {
                let code = errno
                Glibc.close(fd)
                throw IOError(path: path, operation: "seek to end", errno: Errno(rawValue: code))
            }
            size = UInt64(end)
        } else {
            size = identity.size
        }
        self.identity = identity
        openedPath = located ?? path
    }

    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        try? descriptor.close()
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or fewer only at end of file; returns the count read.
    @discardableResult
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
        var done = 0
        while done < buffer.count {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let count: Int
            do {
                count = try descriptor.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: chunk, retryOnInterrupt: true)
            } catch {
                throw IOError(path: path, operation: "read \(buffer.count) bytes at offset \(offset)", errno: error as? Errno)
            }
            if count == 0 { break }
            done += count
        }
        Self.bytesRead.wrappingAdd(UInt64(done), ordering: .relaxed)
        return done
    }

    /// Bytes read through every source of this process so far (a scan reads only metadata), for progress.
    public static let bytesRead = Atomic<UInt64>(0)

    /// Reads up to `count` bytes at `offset` (fewer at end of file) into a new array.
    public func read(at offset: UInt64, count: Int) throws(IOError) -> [UInt8] {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        var failure: IOError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(IOError) { got = try read(at: offset, into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        if got < count { bytes.removeLast(count - got) }
        return bytes
    }

    /// Reads exactly `count` bytes at `offset`, failing with a message naming `field` if the file is shorter.
    public func readExactly(at offset: UInt64, count: Int, field: String) throws(IOError) -> [UInt8] {
        let bytes = try read(at: offset, count: count)
        guard bytes.count == count else {
            throw IOError(
                path: path, operation: "read \(field)",
                detail: "truncated at offset \(offset): needs \(count) bytes, file has \(bytes.count) there")
        }
        return bytes
    }

    /// False only when the file system says `range` lies wholly in a hole (`SEEK_DATA` finds no data
    /// before its end), so reading it would give zeros; true when it may hold data or the file system
    /// cannot say. Pages written but not yet on disk count as data (`SEEK_DATA` sees the page cache), and
    /// nothing is flushed.
    public func mayHoldData(in range: Range<UInt64>) -> Bool {
        guard !range.isEmpty, range.lowerBound <= UInt64(Int64.max) else { return true }
        let next = extentdb_seek_data(descriptor.rawValue, Int64(range.lowerBound))
        if next < 0 { return extentdb_errno() != ENXIO }
        return UInt64(next) < range.upperBound
    }

    /// The data segments of the file as sorted `[start, end)` byte ranges inside `[0, size)`.
    ///
    /// Asked of the file system with FIEMAP where it has it (unwritten, fallocated extents read as zeros
    /// and are not data), else with `SEEK_DATA`/`SEEK_HOLE`; see ``FileExtentMap``. On file systems without
    /// hole support the whole file is one segment.
    public func dataSegments() throws(IOError) -> [Range<UInt64>] {
        try FileExtentMap.dataSegments(descriptor: descriptor, size: size, path: path).segments
    }
}
