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

        public init(allowsBlockDevice: Bool = true, followsSymbolicLinks: Bool = true) {
            self.allowsBlockDevice = allowsBlockDevice
            self.followsSymbolicLinks = followsSymbolicLinks
        }
    }

    public init(path: String, rules: Rules = Rules()) throws(IOError) {
        self.path = path
        let flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | (rules.followsSymbolicLinks ? 0 : O_NOFOLLOW)
        let fd = Glibc.open(path, flags)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP && !rules.followsSymbolicLinks {
                throw IOError(path: path, operation: "open", detail: "is a symbolic link, which is not followed here")
            }
            throw IOError(path: path, operation: "open", errno: Errno(rawValue: code))
        }
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
            throw IOError(path: path, operation: "open", detail: "not a regular file (\(FileIdentity.describe(mode: info.st_mode))); refusing to read it")
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
        openedPath = FileIdentity.pathOfDescriptor(fd) ?? path
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

    /// The data segments of the file as sorted `[start, end)` byte ranges inside `[0, size)`.
    ///
    /// Asked of the file system with FIEMAP where it has it (unwritten, fallocated extents read as zeros
    /// and are not data), else with `SEEK_DATA`/`SEEK_HOLE`; see ``FileExtentMap``. On file systems without
    /// hole support the whole file is one segment.
    public func dataSegments() throws(IOError) -> [Range<UInt64>] {
        try FileExtentMap.dataSegments(descriptor: descriptor, size: size, path: path).segments
    }
}
