/* failsys.c - an LD_PRELOAD shim for the fault tests: makes writes and syncs of one file fail
 * while a trigger file exists, so a test can break the disk under a running coupond and mend
 * it again, with LMDB and everything else real.
 *
 * Environment (read at each call, so a test needs no restart to change anything):
 *   FAILSYS_TRIGGER  path of the trigger file; unset: the shim does nothing
 *   FAILSYS_MATCH    base name of the file to break (default "data.mdb")
 * The trigger file holds the errno to fail with, "EIO" (the default, also for an empty file) or
 * "ENOSPC", optionally followed by "sync": then only fsync and fdatasync fail and the writes
 * themselves succeed, as when the disk accepts data into the page cache but cannot flush it.
 * Or it holds "HOLD": then the calls wait, as on a disk that stalls, until the trigger file no
 * longer says so, and pass.
 *
 * Intercepted: write, pwrite, pwrite64, writev, pwritev, fsync, fdatasync. Everything else, and
 * every call on another file (the log, sockets, stderr), goes straight to libc.
 *
 * The one piece of static state is the table of libc's definitions that the wrappers forward
 * to: a preloaded library is entered through libc's own signatures, so there is no context
 * pointer to carry it. It is filled once (pthread_once) and never changes afterwards. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define FAILSYS_DEFAULT_MATCH "data.mdb"
#define FAILSYS_TRIGGER_MAX   64    /* bytes of the trigger file read: "ENOSPC sync" and change */
#define FAILSYS_HOLD_POLL_US  10000 /* a held call looks at the trigger file this often */

typedef ssize_t write_fn(int, const void *, size_t);
typedef ssize_t pwrite_fn(int, const void *, size_t, off_t);
typedef ssize_t pwrite64_fn(int, const void *, size_t, off64_t);
typedef ssize_t writev_fn(int, const struct iovec *, int);
typedef ssize_t pwritev_fn(int, const struct iovec *, int, off_t);
typedef int sync_fn(int);

struct real_calls {
    write_fn *write;
    pwrite_fn *pwrite;
    pwrite64_fn *pwrite64;
    writev_fn *writev;
    pwritev_fn *pwritev;
    sync_fn *fsync, *fdatasync;
};

static struct real_calls real;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void
resolve(void)
{
    real.write = (write_fn *)dlsym(RTLD_NEXT, "write");
    real.pwrite = (pwrite_fn *)dlsym(RTLD_NEXT, "pwrite");
    real.pwrite64 = (pwrite64_fn *)dlsym(RTLD_NEXT, "pwrite64");
    real.writev = (writev_fn *)dlsym(RTLD_NEXT, "writev");
    real.pwritev = (pwritev_fn *)dlsym(RTLD_NEXT, "pwritev");
    real.fsync = (sync_fn *)dlsym(RTLD_NEXT, "fsync");
    real.fdatasync = (sync_fn *)dlsym(RTLD_NEXT, "fdatasync");
}

static const struct real_calls *
calls(void)
{
    pthread_once(&real_once, resolve);
    return &real;
}

/* What an intercepted call does: pass it through, or fail with `err`. */
enum verdict { PASS, FAIL };

/* True when `fd` is open on a file whose base name is FAILSYS_MATCH. */
static bool
is_target(int fd)
{
    const char *match = getenv("FAILSYS_MATCH");
    if (match == NULL || *match == '\0')
        match = FAILSYS_DEFAULT_MATCH;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    const char *base = strrchr(path, '/');
    return strcmp(base != NULL ? base + 1 : path, match) == 0;
}

/* The trigger file's contents into buf[FAILSYS_TRIGGER_MAX + 1]; false when there is none. */
static bool
read_trigger(const char *trigger, char *buf)
{
    int tfd = open(trigger, O_RDONLY | O_CLOEXEC);
    if (tfd < 0)
        return false;
    ssize_t n = read(tfd, buf, FAILSYS_TRIGGER_MAX);
    close(tfd);
    buf[n > 0 ? n : 0] = '\0';
    return true;
}

/* Decides the fate of a call on `fd`; is_sync tells fsync/fdatasync from a write. A held call
 * returns only once the trigger lets it go. Leaves errno as it found it when the call passes. */
static enum verdict
judge(int fd, bool is_sync, int *err)
{
    const char *trigger = getenv("FAILSYS_TRIGGER");
    if (trigger == NULL || *trigger == '\0')
        return PASS;
    int saved = errno;
    enum verdict v = PASS;
    char buf[FAILSYS_TRIGGER_MAX + 1];
    if (read_trigger(trigger, buf) && strstr(buf, "HOLD") != NULL && is_target(fd)) {
        while (read_trigger(trigger, buf) && strstr(buf, "HOLD") != NULL)
            usleep(FAILSYS_HOLD_POLL_US);
    } else if (read_trigger(trigger, buf)) {
        bool sync_only = strstr(buf, "sync") != NULL;
        *err = strstr(buf, "ENOSPC") != NULL ? ENOSPC : EIO;
        if ((is_sync || !sync_only) && is_target(fd))
            v = FAIL;
    }
    errno = saved;
    return v;
}

ssize_t
write(int fd, const void *buf, size_t len)
{
    int err;
    if (judge(fd, false, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->write(fd, buf, len);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
    int err;
    if (judge(fd, false, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->pwrite(fd, buf, len, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
    int err;
    if (judge(fd, false, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->pwrite64(fd, buf, len, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
    int err;
    if (judge(fd, false, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->writev(fd, iov, n);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    int err;
    if (judge(fd, false, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->pwritev(fd, iov, n, off);
}

int
fsync(int fd)
{
    int err;
    if (judge(fd, true, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->fsync(fd);
}

int
fdatasync(int fd)
{
    int err;
    if (judge(fd, true, &err) == FAIL) {
        errno = err;
        return -1;
    }
    return calls()->fdatasync(fd);
}
