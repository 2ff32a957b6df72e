import CExtentShims
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A directory opened `O_PATH`: the anchor that names are resolved beneath.
///
/// Its ``canonicalPath`` is what the kernel reports for the descriptor; a directory whose location cannot
/// be established that way (deleted, a name that is not UTF-8, longer than `PATH_MAX`) cannot be opened
/// as an anchor, because containment would then rest on a guess.
public final class DirectoryAnchor: @unchecked Sendable {
    public let descriptor: Int32
    public let canonicalPath: String

    init(adopting descriptor: Int32, path: String) throws(IOError) {
        guard let canonical = FileIdentity.pathOfDescriptor(descriptor) else {
            Glibc.close(descriptor)
            throw IOError(
                path: path, operation: "open directory", detail: "its location cannot be established (deleted, or a name that is not UTF-8)"
            )
        }
        self.descriptor = descriptor
        canonicalPath = canonical
    }

    /// Opens the directory at `path`, following symbolic links (a directory the caller named).
    public convenience init(path: String) throws(IOError) {
        let fd = Glibc.open(path, ConfinedOpen.pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(path: path, operation: "open directory", errno: Errno(rawValue: errno)) }
        try self.init(adopting: fd, path: path)
    }

    /// Opens the directory `relative` beneath this one (``ConfinedOpen/Resolution``).
    public func directory(_ relative: String, resolution: ConfinedOpen.Resolution = .beneath) throws(IOError) -> DirectoryAnchor {
        if relative.isEmpty || relative == "." {
            let fd = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
            guard fd >= 0 else { throw IOError(path: canonicalPath, operation: "dup", errno: Errno(rawValue: errno)) }
            return try DirectoryAnchor(adopting: fd, path: canonicalPath)
        }
        let named = (canonicalPath == "/" ? "" : canonicalPath) + "/" + relative
        let fd = extentdb_openat2(descriptor, relative, ConfinedOpen.pathOnly | O_DIRECTORY | O_CLOEXEC, resolution.bits)
        guard fd >= 0 else { throw IOError(path: named, operation: "open directory", errno: Errno(rawValue: errno)) }
        return try DirectoryAnchor(adopting: fd, path: named)
    }

    deinit { Glibc.close(descriptor) }
}

/// Opening a name so that it cannot lead anywhere it may not (openat2(2), Linux 5.6).
///
/// A name is resolved by the kernel beneath an anchor directory (`RESOLVE_BENEATH`: `..` above it, absolute
/// names and absolute symbolic links fail with `EXDEV`) with /proc's magic links refused
/// (`RESOLVE_NO_MAGICLINKS`: `/proc/PID/fd/N`, which would reach another process's memfd or a deleted file,
/// fails with `ELOOP`). What it names is first opened `O_PATH` (no read, so opening a FIFO or a device has
/// none of its side effects), checked with `fstat`, and only a regular file (or a block device where the
/// rules allow one) is reopened for reading through its own descriptor. A kernel without openat2 (`ENOSYS`)
/// is refused: there is no safe fallback.
public enum ConfinedOpen {
    /// `O_PATH` (bits/fcntl-linux.h, the same value on x86-64 and arm64); the Glibc overlay hides it.
    static let pathOnly: Int32 = 0o10000000

    /// How much of the path the kernel may follow.
    public enum Resolution: Sendable {
        /// Symbolic links that stay beneath the anchor are followed; magic links never.
        case beneath
        /// No symbolic link at all: for a canonical path recorded earlier, where a link now means the file
        /// was replaced by a pointer to another one.
        case beneathWithoutSymbolicLinks

        var bits: UInt64 {
            var bits = UInt64(EXTENTDB_RESOLVE_BENEATH) | UInt64(EXTENTDB_RESOLVE_NO_MAGICLINKS)
            if self == .beneathWithoutSymbolicLinks { bits |= UInt64(EXTENTDB_RESOLVE_NO_SYMLINKS) }
            return bits
        }
    }

    /// Opens `relative` beneath `anchor` for reading.
    ///
    /// - Throws: ``IOError`` with `errno` `EXDEV` (the name leaves the anchor), `ELOOP` (a magic link, or any
    ///   symbolic link with ``Resolution/beneathWithoutSymbolicLinks``), `ENOENT`, or a detail saying the file
    ///   is not a regular file or its location cannot be established.
    public static func open(
        _ relative: String, beneath anchor: DirectoryAnchor, resolution: Resolution = .beneath,
        rules: FileBlockSource.Rules = FileBlockSource.Rules(allowsBlockDevice: false)
    ) throws(IOError) -> FileBlockSource {
        let displayPath = anchor.canonicalPath == "/" ? "/" + relative : anchor.canonicalPath + "/" + relative
        guard !relative.isEmpty, !relative.utf8.contains(0) else {
            throw IOError(path: displayPath, operation: "open", errno: .noSuchFileOrDirectory)
        }
        let handle = extentdb_openat2(anchor.descriptor, relative, pathOnly | O_CLOEXEC, resolution.bits)
        guard handle >= 0 else { throw IOError(path: displayPath, operation: "open", errno: Errno(rawValue: errno)) }
        defer { Glibc.close(handle) }
        var vetted = stat()
        guard fstat(handle, &vetted) == 0 else { throw IOError(path: displayPath, operation: "fstat", errno: Errno(rawValue: errno)) }
        let kind = FileIdentity(status: vetted).kind
        guard kind == .regular || (kind == .blockDevice && rules.allowsBlockDevice) else {
            throw IOError(
                path: displayPath, operation: "open", detail: "not a regular file (\(FileIdentity.describe(mode: vetted.st_mode)))")
        }
        // Reopened through the vetted descriptor's own /proc entry: the same inode, now readable.
        let fd = Glibc.open("/proc/self/fd/\(handle)", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(path: displayPath, operation: "reopen for reading", errno: Errno(rawValue: errno)) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, opened.st_dev == vetted.st_dev, opened.st_ino == vetted.st_ino else {
            Glibc.close(fd)
            throw IOError(path: displayPath, operation: "reopen for reading", detail: "reached another file")
        }
        var strict = rules
        strict.requiresKnownLocation = true
        return try FileBlockSource(adopting: fd, path: displayPath, rules: strict)
    }
}
