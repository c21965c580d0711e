/* backup.c - the backup service (see backup.h): the directory, the key files, the store's copy,
 * and the cleanup of a backup that failed. */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include "keynote.h"
#include "keyring.h"
#include "log.h"
#include "store.h"

struct backup {
    struct ev_loop *loop;
    struct store *store;
    const char *data_dir;
    const char *root; /* NULL, or what every backup's directory must be below */
    struct log *log;
    bool running;
    struct backup_ticket *ticket; /* NULL when the client went away */
    char dir[PATH_MAX];           /* the running backup's directory */
    uint64_t key_bytes;           /* bytes of the key files copied */
    double started;
    bool starting; /* inside store_read: a completion now is a backup that did not start */
    bool early;    /* it completed so */
    struct store_op op;
    char keybuf[BACKUP_KEYRING_MAX]; /* one key file at a time; wiped after each */
};

static void why(struct backup_ticket *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
why(struct backup_ticket *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
    t->result = BACKUP_FAILED;
}

struct backup *
backup_new(struct ev_loop *loop, struct store *st, const char *data_dir, const char *root,
           struct log *lg)
{
    struct backup *b = calloc(1, sizeof *b);

    if (b == NULL)
        return NULL;
    b->loop = loop;
    b->store = st;
    b->data_dir = data_dir;
    b->root = root;
    b->log = lg;
    return b;
}

void
backup_free(struct backup *b)
{
    free(b);
}

bool
backup_busy(const struct backup *b)
{
    return b->running;
}

void
backup_cancel(struct backup *b, struct backup_ticket *t)
{
    if (b->ticket == t)
        b->ticket = NULL;
}

/* ---- the directory and the key files ---- */

/* True when dir is below b->root (or there is no root) and names no ".." on the way. */
static bool
allowed(const struct backup *b, const char *dir)
{
    size_t n = b->root != NULL ? strlen(b->root) : 0;

    if (b->root == NULL)
        return true;
    if (strncmp(dir, b->root, n) != 0 || dir[n] != '/')
        return false;
    for (const char *p = dir + n; (p = strstr(p, "/..")) != NULL; p += 3)
        if (p[3] == '/' || p[3] == '\0')
            return false;
    return true;
}

/* Removes the directory this backup made and the files in it (it holds no directories). */
static void
remove_dir(const char *dir)
{
    DIR *d = opendir(dir);

    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

static bool
is_keyring_file(const char *name)
{
    return strcmp(name, KEYRING_FILE) == 0 || strcmp(name, KEYNOTE_FILE) == 0;
}

static bool
is_key_file(const char *name)
{
    size_t n = strlen(name), s = sizeof BACKUP_KEY_SUFFIX - 1;

    if (is_keyring_file(name))
        return true;
    return name[0] != '.' && n > s && strcmp(name + n - s, BACKUP_KEY_SUFFIX) == 0;
}

/* Reads the regular file `name` of src whole into buf (at most BACKUP_KEY_MAX bytes, or
 * BACKUP_KEYRING_MAX for the named keys' files): its size, or -1 with t failed. A directory named
 * *.key is none of ours: 0 with *skip set. */
static ssize_t
read_key(int src, const char *name, char *buf, bool *skip, struct backup_ticket *t)
{
    struct stat sb;
    ssize_t len = 0, n = 0;
    const ssize_t max = is_keyring_file(name) ? BACKUP_KEYRING_MAX : BACKUP_KEY_MAX;
    int fd = openat(src, name, O_RDONLY | O_CLOEXEC);

    *skip = false;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        why(t, "cannot read %s: %s", name, strerror(errno));
        len = -1;
    } else if (!S_ISREG(sb.st_mode)) {
        *skip = true;
    } else if (sb.st_size > max) {
        why(t, "%s is larger than %zd bytes, too large for a key file", name, max);
        len = -1;
    } else {
        while (len < max && (n = read(fd, buf + len, (size_t)(max - len))) > 0)
            len += n;
        if (n < 0) {
            why(t, "cannot read %s: %s", name, strerror(errno));
            len = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return len;
}

/* Writes a new file `name` in dst, mode BACKUP_KEY_MODE whatever the umask. Not synced here: the
 * store's backup syncs the whole directory. */
static bool
write_key(int dst, const char *name, const char *buf, size_t len, struct backup_ticket *t)
{
    int fd = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, BACKUP_KEY_MODE);
    bool ok = fd >= 0 && fchmod(fd, BACKUP_KEY_MODE) == 0 && write(fd, buf, len) == (ssize_t)len;

    if (!ok)
        why(t, "cannot write %s: %s", name, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && ok) {
        why(t, "cannot write %s: %s", name, strerror(errno));
        ok = false;
    }
    return ok;
}

/* Copies every key file of the data dir into the open directory dst. */
static bool
copy_keys(struct backup *b, int dst, struct backup_ticket *t)
{
    char *buf = b->keybuf;
    DIR *d = opendir(b->data_dir);
    bool ok = d != NULL, skip;

    if (d == NULL)
        why(t, "cannot read the data dir: %s", strerror(errno));
    for (struct dirent *e; ok && (e = readdir(d)) != NULL;) {
        if (!is_key_file(e->d_name))
            continue;
        ssize_t n = read_key(dirfd(d), e->d_name, buf, &skip, t);
        ok = n >= 0 && (skip || write_key(dst, e->d_name, buf, (size_t)n, t));
        if (ok && !skip)
            b->key_bytes += (uint64_t)n;
        sodium_memzero(buf, BACKUP_KEYRING_MAX);
    }
    if (d != NULL)
        closedir(d);
    return ok;
}

/* Makes the new directory, mode BACKUP_DIR_MODE whatever the umask, and copies the keys in. */
static bool
make_dir(struct backup *b, struct backup_ticket *t)
{
    int fd;
    bool ok;

    if (mkdir(b->dir, BACKUP_DIR_MODE) != 0) {
        why(t, "cannot create %s: %s", b->dir, strerror(errno));
        return false;
    }
    fd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = fd >= 0 && fchmod(fd, BACKUP_DIR_MODE) == 0;
    if (!ok)
        why(t, "cannot set up %s: %s", b->dir, strerror(errno));
    ok = ok && copy_keys(b, fd, t);
    if (fd >= 0)
        close(fd);
    if (!ok)
        remove_dir(b->dir);
    return ok;
}

/* ---- the store's copy ---- */

static void
log_outcome(struct backup *b, const struct backup_ticket *t)
{
    const struct log_field f[] = {log_str("result", t->result == BACKUP_OK ? "OK" : "INTERNAL"),
                                  log_str("dir", b->dir), log_uint("bytes", t->bytes),
                                  log_int("us", (int64_t)(t->seconds * 1e6)),
                                  log_str("reason", t->result == BACKUP_OK ? NULL : t->why)};

    log_event(b->log, ev_now(b->loop), "BACKUP", f, LOG_NFIELDS(f));
}

/* Fills t with the outcome of the store's copy; a failed backup's directory goes. */
static void
finish(struct backup *b, struct backup_ticket *t)
{
    const struct store_op *op = &b->op;

    t->result = BACKUP_OK;
    t->why[0] = '\0';
    t->seconds = ev_time() - b->started;
    t->bytes = op->out.count + b->key_bytes;
    if (op->err != STORE_OK) {
        why(t, "%s", op->out.msg[0] != '\0' ? op->out.msg : store_strerror(op->err));
        t->bytes = 0;
        remove_dir(b->dir);
    }
    b->running = false;
    b->ticket = NULL;
    log_outcome(b, t);
}

static void
store_done(struct store_op *op)
{
    struct backup *b = op->arg;
    struct backup_ticket own, *t = b->ticket;

    if (b->starting) { /* it could not start: backup_start answers */
        b->early = true;
        return;
    }
    finish(b, t != NULL ? t : &own);
    if (t != NULL)
        t->done(t); /* last: it may start the next backup */
}

bool
backup_start(struct backup *b, const char *dir, size_t len, struct backup_ticket *t)
{
    t->result = BACKUP_OK;
    t->bytes = 0;
    t->seconds = 0;
    t->why[0] = '\0';
    if (b->running) {
        t->result = BACKUP_BUSY;
        snprintf(t->why, sizeof t->why, "a backup is running; one at a time");
        return false;
    }
    if (len == 0 || len >= sizeof b->dir) {
        why(t, "the directory's path is too long");
        return false;
    }
    memcpy(b->dir, dir, len);
    b->dir[len] = '\0';
    if (!allowed(b, b->dir)) {
        why(t, "backups go below %s", b->root);
        return false;
    }
    b->key_bytes = 0;
    b->started = ev_time();
    if (!make_dir(b, t))
        return false;
    memset(&b->op, 0, sizeof b->op);
    b->op.kind = STORE_OP_BACKUP;
    b->op.now = (int64_t)ev_now(b->loop);
    b->op.in.path = b->dir;
    b->op.done = store_done;
    b->op.arg = b;
    b->running = b->starting = true;
    b->early = false;
    b->ticket = t;
    store_read(b->store, &b->op);
    b->starting = false;
    if (!b->early)
        return true;
    finish(b, t);
    return false;
}
