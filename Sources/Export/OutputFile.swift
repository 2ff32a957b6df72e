import CExtentShims
import Foundation
import ImageIO

#if canImport(Glibc)
    import Glibc
#endif

/// An export's output file, created so that nobody else's file can be touched and nothing half-written
/// is ever left under the final name.
///
/// - The target must be absent or a regular file: a FIFO, a device node or a symbolic link at the path is
///   refused (`lstat`), never replaced or written through.
/// - The data goes to an unnamed `O_TMPFILE` in the target's directory, which vanishes if the process dies;
///   on file systems without it, to `.NAME.extentdb-PID-RANDOM.partial` created with
///   `O_CREAT | O_EXCL | O_NOFOLLOW`, so a planted symbolic link or file at that name is never opened.
/// - ``commit()`` gives the finished file its name (`linkat`, then `rename` within the directory).
/// - Partial files that a killed export left behind (their PID no longer runs) are removed first.
public final class OutputFile {
    public let descriptor: Int32
    /// The absolute path the file gets on ``commit()``.
    public let finalPath: String
    /// The directory and the final name in it.
    let directory: String
    let name: String
    private let directoryDescriptor: Int32
    /// The partial file's name in the directory while it has one (fallback, or between link and rename).
    public private(set) var partialName: String?
    private var isOpen = true

    /// Produces the random part of partial names (replaceable in tests).
    public typealias NameSource = @Sendable () -> String
    public static let randomName: NameSource = { String(UInt64.random(in: 0...UInt64.max), radix: 36) }

    /// - Parameters:
    ///   - path: the target (absolute, or relative to the working directory).
    ///   - useTemporaryFile: try `O_TMPFILE` first (false forces the named fallback, for tests).
    public init(path: String, useTemporaryFile: Bool = true, names: NameSource = OutputFile.randomName) throws {
        let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
        finalPath = absolute
        directory = PathResolver.directory(of: absolute)
        name = String(absolute.split(separator: "/").last ?? "")
        guard !name.isEmpty else { throw ExportError.output("\(path): not a file name") }
        try Self.checkTarget(absolute, shownAs: path)
        directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryDescriptor >= 0 else {
            throw ExportError.output("\(directory): cannot open the output's directory: \(String(cString: strerror(errno)))")
        }
        Self.removeAbandonedPartials(directory: directory, directoryDescriptor: directoryDescriptor, name: name)
        var fd: Int32 = -1
        if useTemporaryFile {
            fd = extentdb_open_tmpfile(directory)
        }
        if fd < 0 {
            for _ in 0..<64 {
                let candidate = ".\(name).extentdb-\(getpid())-\(names()).partial"
                fd = extentdb_create_exclusive(directoryDescriptor, candidate)
                if fd >= 0 {
                    partialName = candidate
                    extentdb_set_cleanup_path(directory + "/" + candidate)
                    break
                }
                if errno != EEXIST { break }
            }
        }
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            close(directoryDescriptor)
            throw ExportError.output("\(path): cannot create a file in \(directory): \(reason)")
        }
        descriptor = fd
    }

    deinit { abandon() }

    /// Refuses a target that exists and is not a regular file (a symbolic link included, whatever it
    /// points at): replacing a device node or a FIFO, or writing through a link, is never what was meant.
    static func checkTarget(_ absolute: String, shownAs path: String) throws {
        var info = stat()
        guard lstat(absolute, &info) == 0 else {
            if errno == ENOENT { return }
            throw ExportError.output("\(path): cannot check the output path: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ExportError.output(
                "\(path) exists and is \(FileIdentity.describe(mode: info.st_mode)), not a regular file; refusing to replace it "
                    + "(remove it first, or write to standard output and redirect)")
        }
    }

    /// Names the finished file: the unnamed file is linked under a fresh partial name, then renamed over
    /// the target; the target is checked again just before.
    public func commit(sync: Bool = false) throws {
        if sync, fsync(descriptor) != 0 {
            throw ExportError.output("\(finalPath): fsync failed: \(String(cString: strerror(errno)))")
        }
        if partialName == nil {
            for _ in 0..<64 {
                let candidate = ".\(name).extentdb-\(getpid())-\(Self.randomName()).partial"
                extentdb_set_cleanup_path(directory + "/" + candidate)
                if extentdb_link_tmpfile(descriptor, directoryDescriptor, candidate) == 0 {
                    partialName = candidate
                    break
                }
                extentdb_set_cleanup_path(nil)
                if errno != EEXIST {
                    throw ExportError.output("\(finalPath): cannot name the finished file: \(String(cString: strerror(errno)))")
                }
            }
        }
        guard let partialName else { throw ExportError.output("\(finalPath): no free partial file name") }
        guard close(descriptor) == 0 else {
            throw ExportError.output("\(finalPath): close failed: \(String(cString: strerror(errno)))")
        }
        isOpen = false
        try Self.checkTarget(finalPath, shownAs: finalPath)
        // Remove an earlier output first: renaming over an existing file makes ext4 flush the whole new
        // file synchronously (auto_da_alloc), which is what --fsync is for. The old file stays until the
        // export has completed.
        if unlinkat(directoryDescriptor, name, 0) != 0 && errno != ENOENT {
            throw ExportError.output("\(finalPath): cannot replace the existing file: \(String(cString: strerror(errno)))")
        }
        guard renameat(directoryDescriptor, partialName, directoryDescriptor, name) == 0 else {
            throw ExportError.output("\(finalPath): cannot rename \(partialName) into place: \(String(cString: strerror(errno)))")
        }
        extentdb_set_cleanup_path(nil)
        self.partialName = nil
        close(directoryDescriptor)
    }

    /// Drops the partial output (nothing appears under the final name).
    public func abandon() {
        if isOpen {
            close(descriptor)
            isOpen = false
            if let partialName { unlinkat(directoryDescriptor, partialName, 0) }
            extentdb_set_cleanup_path(nil)
            partialName = nil
            close(directoryDescriptor)
        }
    }

    /// Removes `.NAME.extentdb-PID-*.partial` files whose PID no longer runs (left by a killed export).
    static func removeAbandonedPartials(directory: String, directoryDescriptor: Int32, name: String) {
        let prefix = ".\(name).extentdb-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(".partial") {
            let middle = entry.dropFirst(prefix.count).dropLast(".partial".count)
            guard let pid = middle.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                var info = stat()
                // Only regular files are removed; a planted link or directory is left alone.
                if fstatat(directoryDescriptor, entry, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT == S_IFREG {
                    unlinkat(directoryDescriptor, entry, 0)
                }
            }
        }
    }
}
