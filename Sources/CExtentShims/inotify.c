#define _GNU_SOURCE
#include "inotify_shims.h"

#include <errno.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

int extentdb_inotify_open(void) { return inotify_init1(IN_NONBLOCK | IN_CLOEXEC); }

int extentdb_inotify_watch_directory(int fd, const char *path, uint32_t mask) {
    return inotify_add_watch(fd, path, mask | IN_ONLYDIR);
}

int64_t extentdb_inotify_read(int fd, void *buffer, size_t capacity) {
    for (;;) {
        ssize_t n = read(fd, buffer, capacity);
        if (n >= 0) return (int64_t)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}

int extentdb_inotify_next(const void *buffer, size_t length, size_t *offset, int *watch, uint32_t *mask, char *name,
                          size_t name_capacity) {
    if (*offset + sizeof(struct inotify_event) > length || name_capacity == 0) return -1;
    struct inotify_event event;
    memcpy(&event, (const char *)buffer + *offset, sizeof event);
    size_t total = sizeof(struct inotify_event) + event.len;
    if (*offset + total > length) return -1;
    *watch = event.wd;
    *mask = event.mask;
    size_t copied = 0;
    if (event.len > 0) {
        const char *source = (const char *)buffer + *offset + sizeof(struct inotify_event);
        copied = strnlen(source, event.len);
        if (copied >= name_capacity) copied = name_capacity - 1;
        memcpy(name, source, copied);
    }
    name[copied] = '\0';
    *offset += total;
    return 0;
}
