#ifndef CEXTENTSHIMS_INOTIFY_H
#define CEXTENTSHIMS_INOTIFY_H
#include <stddef.h>
#include <stdint.h>

/// What the service's watcher asks inotify(7) for: writes finished or seen, files created, deleted or
/// moved in or out, and the watched directory itself going away.
enum {
    EXTENTDB_IN_MODIFY = 0x00000002,
    EXTENTDB_IN_ATTRIB = 0x00000004,
    EXTENTDB_IN_CLOSE_WRITE = 0x00000008,
    EXTENTDB_IN_MOVED_FROM = 0x00000040,
    EXTENTDB_IN_MOVED_TO = 0x00000080,
    EXTENTDB_IN_CREATE = 0x00000100,
    EXTENTDB_IN_DELETE = 0x00000200,
    EXTENTDB_IN_DELETE_SELF = 0x00000400,
    EXTENTDB_IN_Q_OVERFLOW = 0x00004000,
    EXTENTDB_IN_IGNORED = 0x00008000,
    EXTENTDB_IN_ISDIR = 0x40000000,
};

/// inotify_init1(IN_NONBLOCK | IN_CLOEXEC); returns the descriptor or -1 with errno.
int extentdb_inotify_open(void);
/// inotify_add_watch(fd, path, mask) with IN_ONLYDIR; returns the watch descriptor or -1 with errno.
int extentdb_inotify_watch_directory(int fd, const char *path, uint32_t mask);
/// Reads pending events into `buffer` without blocking; returns bytes read, 0 when none are pending, or -1.
int64_t extentdb_inotify_read(int fd, void *buffer, size_t capacity);
/// Decodes the event at `*offset` in a buffer filled by extentdb_inotify_read: its watch descriptor, mask
/// and name (NUL-terminated, empty for the directory itself, copied into `name` of `name_capacity` bytes),
/// and moves `*offset` past it. Returns 0, or -1 when no whole event is left.
int extentdb_inotify_next(const void *buffer, size_t length, size_t *offset, int *watch, uint32_t *mask, char *name,
                          size_t name_capacity);
#endif
