#ifndef CEXTENTSHIMS_H
#define CEXTENTSHIMS_H
#include <stdint.h>
#include <sys/types.h>

/// lseek(fd, offset, SEEK_DATA); returns -1 and sets errno (ENXIO past the last data).
int64_t extentdb_seek_data(int fd, int64_t offset);
/// lseek(fd, offset, SEEK_HOLE); returns -1 and sets errno.
int64_t extentdb_seek_hole(int fd, int64_t offset);
/// copy_file_range(2) with explicit offsets; returns bytes copied or -1.
int64_t extentdb_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, uint64_t len);
/// errno of the calling thread.
int extentdb_errno(void);
/// openat2(2) (Linux 5.6): opens `path` relative to `dirfd` with `flags` and the RESOLVE_* bits in
/// `resolve`; returns the descriptor or -1 with errno (ENOSYS on older kernels, EXDEV when resolution
/// would leave `dirfd` under RESOLVE_BENEATH, ELOOP for a refused symbolic or magic link).
int extentdb_openat2(int dirfd, const char *path, int flags, uint64_t resolve);
/// Asks, without taking it, whether another open file description holds a lock on byte `offset` of `fd`
/// (fcntl F_OFD_GETLK with an exclusive lock as the probe, as qemu's qemu_lock_fd_test does). Returns 1
/// when held, 0 when free, -1 with errno (EINVAL where the kernel has no OFD locks).
int extentdb_lock_byte_test(int fd, int64_t offset);
/// RESOLVE_* bits of openat2(2) (linux/openat2.h).
enum {
    EXTENTDB_RESOLVE_NO_XDEV = 0x01,
    EXTENTDB_RESOLVE_NO_MAGICLINKS = 0x02,
    EXTENTDB_RESOLVE_NO_SYMLINKS = 0x04,
    EXTENTDB_RESOLVE_BENEATH = 0x08,
};

#endif

#ifndef CEXTENTSHIMS_DECOMPRESS_H
#define CEXTENTSHIMS_DECOMPRESS_H
#include <stddef.h>
/// Inflates a raw deflate stream (qcow2's zlib clusters: window bits -12) until `out_len` bytes are
/// produced. Returns 0 on success, -1 if the input ended first or is not valid deflate data.
int extentdb_inflate_raw(const void *in, size_t in_len, void *out, size_t out_len);
/// Decompresses zstd data (qcow2's zstd clusters) until `out_len` bytes are produced; trailing input is
/// ignored. Returns 0 on success, -1 on error or short output.
int extentdb_zstd_decompress(const void *in, size_t in_len, void *out, size_t out_len);
#endif

#ifndef CEXTENTSHIMS_SENDFILE_H
#define CEXTENTSHIMS_SENDFILE_H
/// sendfile(2): copies `count` bytes from `in_fd` at `*offset` to `out_fd` (a pipe, socket or file) in the
/// kernel; returns bytes sent or -1.
int64_t extentdb_sendfile(int out_fd, int in_fd, int64_t *offset, uint64_t count);
#endif

#ifndef CEXTENTSHIMS_PIPE_H
#define CEXTENTSHIMS_PIPE_H
/// Grows a pipe's buffer (fcntl F_SETPIPE_SZ); returns the new size or -1 (not a pipe, or over the limit).
int extentdb_set_pipe_size(int fd, int size);
#endif

#ifndef CEXTENTSHIMS_STATFS_H
#define CEXTENTSHIMS_STATFS_H
/// The file system type (statfs f_type magic) of an open file, or 0 if unknown.
int64_t extentdb_filesystem_type(int fd);
#endif

#ifndef CEXTENTSHIMS_FIEMAP_H
#define CEXTENTSHIMS_FIEMAP_H
#include <stddef.h>
/// FIEMAP extent flags (linux/fiemap.h; Documentation/filesystems/fiemap.rst): the last extent of the
/// file, and allocated space that has not been written and reads as zeros (fallocate).
enum { EXTENTDB_FIEMAP_EXTENT_LAST = 0x1, EXTENTDB_FIEMAP_EXTENT_UNWRITTEN = 0x800 };
/// Bytes a buffer for `capacity` extents needs (struct fiemap plus its fm_extents[]).
size_t extentdb_fiemap_buffer_size(uint32_t capacity);
/// ioctl(FS_IOC_FIEMAP) with FIEMAP_FLAG_SYNC over [start, start + length) into `buffer` (sized by
/// extentdb_fiemap_buffer_size(capacity)); returns the number of extents mapped, or -1 with errno
/// (EOPNOTSUPP/ENOTTY where the file system has no FIEMAP).
int64_t extentdb_fiemap(int fd, uint64_t start, uint64_t length, void *buffer, uint32_t capacity);
/// Extent `index` of a buffer filled by extentdb_fiemap.
void extentdb_fiemap_extent(const void *buffer, uint32_t index, uint64_t *logical, uint64_t *length, uint32_t *flags);
#endif

#include "output_shims.h"
#include "inotify_shims.h"
