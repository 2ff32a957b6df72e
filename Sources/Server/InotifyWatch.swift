import CExtentShims
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The inotify side of the watcher: one watch per directory under the roots, read without blocking.
///
/// inotify is not recursive, so every directory is watched, and new ones are added as they appear. When
/// inotify is unavailable or its queue overflows, the stat sweep still catches every change, later.
final class InotifyWatch {
    /// A file under the roots that changed, appeared or went away.
    struct Change {
        var path: String
        var removed: Bool
        var isDirectory: Bool
    }

    private let descriptor: Int32
    private var directories: [Int32: String] = [:]
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    /// Watches at most this many directories (each costs kernel memory).
    static let maximumDirectories = 10_000
    static let mask: UInt32 = [
        EXTENTDB_IN_CLOSE_WRITE, EXTENTDB_IN_MODIFY, EXTENTDB_IN_ATTRIB, EXTENTDB_IN_CREATE, EXTENTDB_IN_DELETE, EXTENTDB_IN_MOVED_FROM,
        EXTENTDB_IN_MOVED_TO, EXTENTDB_IN_DELETE_SELF,
    ].reduce(0) { $0 | UInt32($1) }

    /// - Returns: nil when inotify cannot be opened (the sweep alone then keeps the index fresh).
    init?(roots: [String]) {
        descriptor = extentdb_inotify_open()
        guard descriptor >= 0 else { return nil }
        for root in roots { watchTree(root) }
    }

    deinit {
        close(descriptor)
    }

    /// True when the kernel dropped events: the caller should sweep now.
    private(set) var overflowed = false

    /// Adds watches for `directory` and every directory below it.
    func watchTree(_ directory: String) {
        var pending = [directory]
        while let next = pending.popLast(), directories.count < Self.maximumDirectories {
            let watch = extentdb_inotify_watch_directory(descriptor, next, Self.mask)
            guard watch >= 0 else { continue }
            directories[watch] = next
            let children = (try? FileManager.default.contentsOfDirectory(atPath: next)) ?? []
            for child in children {
                let path = next + "/" + child
                var info = stat()
                if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { pending.append(path) }
            }
        }
    }

    /// The changes since the last call (none when nothing happened; never blocks).
    func drain() -> [Change] {
        var changes: [Change] = []
        overflowed = false
        while true {
            let count = buffer.withUnsafeMutableBytes { extentdb_inotify_read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            var offset = 0
            var watch: Int32 = 0
            var mask: UInt32 = 0
            var name = [CChar](repeating: 0, count: 4096)
            while buffer.withUnsafeBytes({ extentdb_inotify_next($0.baseAddress, Int(count), &offset, &watch, &mask, &name, name.count) })
                == 0
            {
                if mask & UInt32(EXTENTDB_IN_Q_OVERFLOW) != 0 { overflowed = true }
                if mask & UInt32(EXTENTDB_IN_IGNORED) != 0 {
                    directories.removeValue(forKey: watch)
                    continue
                }
                guard let directory = directories[watch] else { continue }
                let leaf = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard !leaf.isEmpty else { continue }
                let isDirectory = mask & UInt32(EXTENTDB_IN_ISDIR) != 0
                let removed = mask & (UInt32(EXTENTDB_IN_DELETE) | UInt32(EXTENTDB_IN_MOVED_FROM)) != 0
                let path = directory + "/" + leaf
                if isDirectory && !removed { watchTree(path) }
                changes.append(Change(path: path, removed: removed, isDirectory: isDirectory))
            }
        }
        return changes
    }
}
