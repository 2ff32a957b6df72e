#if canImport(Glibc)
    import Glibc
#endif

/// What identifies a file's state cheaply: if any of these change, an index of it is stale.
public struct FileIdentity: Sendable, Equatable, Codable {
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    public var modificationTimeNanoseconds: Int64
    /// Bytes the file really occupies on disk (`st_blocks * 512`).
    public var allocatedBytes: UInt64
    /// Regular file, block device, directory or something else.
    public var kind: Kind = .regular

    public enum Kind: String, Sendable, Codable {
        case regular, blockDevice, directory, other
    }

    public init(device: UInt64, inode: UInt64, size: UInt64, modificationTimeNanoseconds: Int64, allocatedBytes: UInt64) {
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
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = UInt64(max(info.st_size, 0))
        modificationTimeNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        allocatedBytes = UInt64(max(info.st_blocks, 0)) * 512
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFBLK: kind = .blockDevice
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
    }

    /// True when both describe the same file in the same state (allocation on disk aside).
    public func matches(_ other: FileIdentity) -> Bool {
        device == other.device && inode == other.inode && size == other.size
            && modificationTimeNanoseconds == other.modificationTimeNanoseconds
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
