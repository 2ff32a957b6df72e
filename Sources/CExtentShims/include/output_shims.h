#ifndef CEXTENTSHIMS_OUTPUT_H
#define CEXTENTSHIMS_OUTPUT_H

#include <stdint.h>

/// open(directory, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666 & ~umask): an unnamed file in `directory` that
/// disappears if the process dies before it is linked. Returns -1 and sets errno (EOPNOTSUPP, EISDIR when
/// the file system has no O_TMPFILE).
int extentdb_open_tmpfile(const char *directory);
/// Gives the unnamed file `fd` the name `name` in the directory `dirfd` (linkat through /proc/self/fd, which
/// needs no CAP_DAC_READ_SEARCH); fails with EEXIST when the name is taken. Returns 0 or -1.
int extentdb_link_tmpfile(int fd, int dirfd, const char *name);
/// openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666 & ~umask). Returns -1 with
/// errno EEXIST when anything (a planted symbolic link included) is already at `name`.
int extentdb_create_exclusive(int dirfd, const char *name);

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the registered partial file, end a
/// progress line, and exit with 128 + the signal number (130, 143, 129). Only async-signal-safe calls.
void extentdb_install_signal_cleanup(void);
/// Registers (or, with NULL, clears) the file the handlers remove. Paths longer than 4095 bytes are not
/// registered and 0 is returned; 1 otherwise.
int extentdb_set_cleanup_path(const char *path);
/// Tells the handlers whether a progress line is drawn on standard error (to be cleared on a signal).
void extentdb_set_progress_shown(int shown);
/// Makes SIGTERM and SIGINT end the process with status 0 after the cleanup (a server told to stop), instead
/// of 128 + the signal; SIGHUP keeps 129.
void extentdb_set_signal_stops_cleanly(int on);
/// ioctl(dest, FICLONE, source): `dest` shares `source`'s extents (btrfs, XFS with reflink). Returns -1 with
/// errno EOPNOTSUPP, EXDEV or EINVAL where the file system cannot.
int extentdb_clone_file(int dest, int source);
/// fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length): the range reads as zeros and
/// stores nothing. Returns 0, or -1 with errno (EOPNOTSUPP where the file system cannot).
int extentdb_punch_hole(int fd, int64_t offset, int64_t length);
#endif
