#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>
#include "CExtentShims.h"

int64_t extentdb_seek_data(int fd, int64_t offset) { return (int64_t)lseek(fd, (off_t)offset, SEEK_DATA); }
int64_t extentdb_seek_hole(int fd, int64_t offset) { return (int64_t)lseek(fd, (off_t)offset, SEEK_HOLE); }

int64_t extentdb_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, uint64_t len) {
    loff_t in = (loff_t)*off_in, out = (loff_t)*off_out;
    ssize_t n = copy_file_range(fd_in, &in, fd_out, &out, (size_t)len, 0);
    *off_in = (int64_t)in;
    *off_out = (int64_t)out;
    return (int64_t)n;
}

int extentdb_errno(void) { return errno; }

#include <sys/sendfile.h>

int64_t extentdb_sendfile(int out_fd, int in_fd, int64_t *offset, uint64_t count) {
    off_t position = (off_t)*offset;
    ssize_t sent = sendfile(out_fd, in_fd, &position, (size_t)count);
    *offset = (int64_t)position;
    return (int64_t)sent;
}

#include <fcntl.h>

int extentdb_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

#include <sys/vfs.h>

int64_t extentdb_filesystem_type(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return 0;
    return (int64_t)info.f_type;
}

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

_Static_assert(EXTENTDB_FIEMAP_EXTENT_LAST == FIEMAP_EXTENT_LAST, "FIEMAP_EXTENT_LAST");
_Static_assert(EXTENTDB_FIEMAP_EXTENT_UNWRITTEN == FIEMAP_EXTENT_UNWRITTEN, "FIEMAP_EXTENT_UNWRITTEN");

size_t extentdb_fiemap_buffer_size(uint32_t capacity) {
    return sizeof(struct fiemap) + (size_t)capacity * sizeof(struct fiemap_extent);
}

int64_t extentdb_fiemap(int fd, uint64_t start, uint64_t length, void *buffer, uint32_t capacity) {
    struct fiemap *map = (struct fiemap *)buffer;
    memset(map, 0, sizeof(struct fiemap));
    map->fm_start = start;
    map->fm_length = length;
    /* Write dirty pages back first: an unwritten extent whose cached pages hold new data is only
       converted to written by writeback, and must not be reported as reading zeros. */
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = capacity;
    if (ioctl(fd, FS_IOC_FIEMAP, map) != 0) return -1;
    return (int64_t)map->fm_mapped_extents;
}

void extentdb_fiemap_extent(const void *buffer, uint32_t index, uint64_t *logical, uint64_t *length, uint32_t *flags) {
    const struct fiemap *map = (const struct fiemap *)buffer;
    const struct fiemap_extent *extent = &map->fm_extents[index];
    *logical = extent->fe_logical;
    *length = extent->fe_length;
    *flags = extent->fe_flags;
}

#include <linux/openat2.h>
#include <sys/syscall.h>

int extentdb_openat2(int dirfd, const char *path, int flags, uint64_t resolve) {
    struct open_how how = {.flags = (uint64_t)flags, .mode = 0, .resolve = resolve};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

#include <fcntl.h>

int extentdb_lock_byte_test(int fd, int64_t offset) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)offset, .l_len = 1, .l_pid = 0};
    if (fcntl(fd, F_OFD_GETLK, &lock) == -1) return -1;
    return lock.l_type == F_UNLCK ? 0 : 1;
}
