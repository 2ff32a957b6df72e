#define _GNU_SOURCE
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "output_shims.h"

int extentdb_open_tmpfile(const char *directory) { return open(directory, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666); }

int extentdb_link_tmpfile(int fd, int dirfd, const char *name) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, path, dirfd, name, AT_SYMLINK_FOLLOW);
}

int extentdb_create_exclusive(int dirfd, const char *name) {
    return openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
}

static char cleanup_path[4096];
static volatile sig_atomic_t cleanup_set = 0;
static volatile sig_atomic_t progress_shown = 0;
static volatile sig_atomic_t stops_cleanly = 0;

static void on_signal(int number) {
    int saved = errno;
    if (cleanup_set) unlink(cleanup_path);
    if (progress_shown) {
        ssize_t ignored = write(2, "\n", 1);
        (void)ignored;
    }
    errno = saved;
    // A server asked to stop (SIGTERM, SIGINT) has done its job: 0, as qemu-nbd and systemd expect.
    _exit(stops_cleanly && number != SIGHUP ? 0 : 128 + number);
}

void extentdb_set_signal_stops_cleanly(int on) { stops_cleanly = on ? 1 : 0; }

void extentdb_install_signal_cleanup(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT);
    sigaddset(&action.sa_mask, SIGTERM);
    sigaddset(&action.sa_mask, SIGHUP);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    // A parent may have started us with these blocked (the mask survives exec); threads created later
    // inherit this thread's mask, so unblock them here, before any.
    pthread_sigmask(SIG_UNBLOCK, &action.sa_mask, NULL);
}

int extentdb_set_cleanup_path(const char *path) {
    cleanup_set = 0;
    if (path == NULL) return 1;
    size_t length = strlen(path);
    if (length >= sizeof cleanup_path) return 0;
    memcpy(cleanup_path, path, length + 1);
    cleanup_set = 1;
    return 1;
}

void extentdb_set_progress_shown(int shown) { progress_shown = shown ? 1 : 0; }

int extentdb_clone_file(int dest, int source) { return ioctl(dest, FICLONE, source); }

int extentdb_punch_hole(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}
