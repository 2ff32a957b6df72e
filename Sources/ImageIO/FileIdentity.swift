#if canImport(Glibc)
    import Glibc
#endif

/// What identifies a file's state cheaply: if any of these change, an index of it is stale.
public struct FileIdentity: Sendable, Equatable, Codable {
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    public var modificationTimeNanoseconds: Int64
    /// The inode's change time (`st_ctim`): set by the kernel on every write, rename and metadata change,
    /// and unlike mtime not settable by the file's owner (`touch -d` restores mtime, never ctime).
    public var changeTimeNanoseconds: Int64 = 0
    /// Bytes the file really occupies on disk (`st_blocks * 512`).
    public var allocatedBytes: UInt64
    /// Regular file, block device, directory or something else.
    public var kind: Kind = .regular

    public enum Kind: String, Sendable, Codable {
        case regular, blockDevice, directory, other
    }

    public init(
        device: UInt64, inode: UInt64, size: UInt64, modificationTimeNanoseconds: Int64, allocatedBytes: UInt64,
        changeTimeNanoseconds: Int64 = 0
    ) {
        self.changeTimeNanoseconds = changeTimeNanoseconds
        self.device = device
        self.inode = inode
        self.size = size
        self.modificationTimeNanoseconds = modificationTimeNanoseconds
        self.allocatedBytes = allocatedBytes
    }

    /// `stat(2)` of `path`, following symbolic links.
    public init(path: String) throws(IOError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw IOError(path: path, operation: "stat", errno: .init(rawValue: errno))
        }
        self.init(status: info)
    }

    /// The identity in a `stat` result (from `stat` or `fstat`).
    public init(status info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = UInt64(max(info.st_size, 0))
        modificationTimeNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        changeTimeNanoseconds = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        allocatedBytes = UInt64(max(info.st_blocks, 0)) * 512
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFBLK: kind = .blockDevice
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
    }

    /// A file type in words, for errors ("a FIFO", "a character device", ...).
    public static func describe(mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFBLK: return "a block device"
        case S_IFCHR: return "a character device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        default: return "a special file"
        }
    }

    /// The path the kernel records for an open descriptor (`/proc/self/fd/N`): what was really opened,
    /// with every symbolic link resolved. Nil when /proc is not mounted, the file was deleted (a memfd
    /// reads as deleted too), or the name is not UTF-8 or longer than 4,096 bytes: such a location cannot be
    /// established, and callers that judge files by where they lie refuse them.
    public static func pathOfDescriptor(_ descriptor: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let count = readlink("/proc/self/fd/\(descriptor)", &buffer, 4096)
        guard count > 0, count < 4096 else { return nil }
        buffer[count] = 0
        let text = buffer.withUnsafeBufferPointer { pointer in pointer.baseAddress.flatMap { String(validatingCString: $0) } }
        guard let text, text.hasPrefix("/"), !text.hasSuffix(" (deleted)") else { return nil }
        return text
    }

    /// True when both describe the same file in the same state (allocation on disk aside): device, inode,
    /// size, mtime and ctime.
    public func matches(_ other: FileIdentity) -> Bool {
        device == other.device && inode == other.inode && size == other.size
            && modificationTimeNanoseconds == other.modificationTimeNanoseconds && changeTimeNanoseconds == other.changeTimeNanoseconds
    }
}

/// Small path helpers for resolving backing file names.
public enum PathResolver {
    /// `path` made absolute against `directory` and normalised (`.` and `..` removed), without touching the disk.
    public static func absolute(_ path: String, relativeTo directory: String) -> String {
        let joined = path.hasPrefix("/") ? path : directory + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The canonical path (symbolic links resolved) via `realpath(3)`, or nil if it does not exist.
    public static func canonical(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(validatingCString: resolved)
    }

    /// True when `path` is `directory` itself or lies below it (both canonical, absolute).
    ///
    /// Compared as bytes: Swift's `String` comparison treats canonically equivalent text as equal (`é` and
    /// `e` + U+0301), but Linux names are bytes, and those are two different directories.
    public static func isInside(_ path: String, directory: String) -> Bool {
        if directory == "/" { return path.utf8.first == UInt8(ascii: "/") }
        // As `beneath`, without making its answer: listings ask this of every row.
        let (bytes, prefix) = (path.utf8, directory.utf8)
        guard bytes.starts(with: prefix) else { return false }
        let (length, prefixLength) = (bytes.count, prefix.count)
        if length == prefixLength { return true }
        if prefix.last == UInt8(ascii: "/") { return length > prefixLength }
        return length > prefixLength + 1 && bytes[bytes.index(bytes.startIndex, offsetBy: prefixLength)] == UInt8(ascii: "/")
    }

    /// `path` relative to `directory` when it lies strictly below it (both absolute, normalised), compared
    /// as bytes; nil otherwise.
    public static func beneath(_ path: String, directory: String) -> String? {
        var prefix = Array(directory.utf8)
        if prefix.last != UInt8(ascii: "/") { prefix.append(UInt8(ascii: "/")) }
        let bytes = Array(path.utf8)
        guard bytes.count > prefix.count, bytes.starts(with: prefix) else { return nil }
        return String(decoding: bytes[prefix.count...], as: UTF8.self)
    }

    /// The directory part of an absolute path.
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    /// The current working directory.
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return buffer.withUnsafeBufferPointer { pointer in pointer.baseAddress.flatMap { String(validatingCString: $0) } } ?? "/"
    }
}
