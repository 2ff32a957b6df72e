import CExtentShims

#if canImport(Glibc)
    import Glibc
#endif

/// qemu's image locks, read without taking them.
///
/// qemu shows who uses an image file with open-file-description locks on single bytes of it
/// (`block/file-posix.c`, `raw_apply_lock_bytes`): a shared lock on byte 100 + *bit* for each permission
/// it holds, and on byte 200 + *bit* for each permission it does not share with others. The permission bits
/// are `BLK_PERM_CONSISTENT_READ` (bit 0), `BLK_PERM_WRITE` (bit 1), `BLK_PERM_WRITE_UNCHANGED` (bit 2) and
/// `BLK_PERM_RESIZE` (bit 3). A writer (a running VM, `qemu-io`, `qemu-nbd` without `--read-only`)
/// therefore holds byte 101, and `qemu-img info` refuses the image ("Failed to get shared "write" lock").
///
/// ```
/// byte  100 101 102 103 ...  200 201 202 203
///       read write ...       (permissions not shared)
///            ^ held by every writer
/// ```
public enum QemuImageLock {
    /// First byte of the permission locks (`RAW_LOCK_PERM_BASE`).
    public static let permissionBase: Int64 = 100
    /// The bit of `BLK_PERM_WRITE` in qemu's permission mask.
    public static let writeBit: Int64 = 1

    /// Whether another process holds qemu's write-permission lock on the file at `path`: true when a writer
    /// has the image open, false when none has, nil when it cannot be told (the file cannot be opened, or
    /// the file system has no OFD locks, it is not a regular file). Nothing is locked, and nothing blocks:
    /// a FIFO or a device named as an image is opened non-blocking and left alone.
    public static func hasWriter(path: String) -> Bool? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        switch extentdb_lock_byte_test(fd, permissionBase + writeBit) {
        case 1: return true
        case 0: return false
        default: return nil
        }
    }
}
