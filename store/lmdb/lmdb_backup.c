/* lmdb_backup.c - BACKUP: a compacting copy on a thread of its own, then every file of the
 * directory synced (see lmdb_backup.h). */
#include "lmdb_backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

#define DATA_FILE "data.mdb" /* what mdb_env_copy2 writes in a directory */
#define COPY_MODE 0600       /* as the store's own files (lmdb_env.c): it holds user names */

/* ---- the backup thread ---- */

/* Syncs the regular file `name` of the open directory dfd. */
static int
sync_file(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int err = 0;

    if (fd < 0)
        return errno;
    if (fsync(fd) != 0)
        err = errno;
    close(fd);
    return err;
}

/* Makes the directory durable: every regular file in it, then the directory itself. The
 * messages leave the path out: the caller knows it. */
static enum store_err
sync_dir(const char *path, char *msg, size_t len)
{
    DIR *d = opendir(path);
    int err = 0;

    if (d == NULL) {
        snprintf(msg, len, "backup: open the directory: %s", strerror(errno));
        return STORE_IO;
    }
    for (struct dirent *e; err == 0 && (e = readdir(d)) != NULL;) {
        struct stat sb;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if ((err = sync_file(dirfd(d), e->d_name)) != 0)
            snprintf(msg, len, "backup: sync %.64s: %s", e->d_name, strerror(err));
    }
    if (err == 0 && fsync(dirfd(d)) != 0) {
        err = errno;
        snprintf(msg, len, "backup: sync the directory: %s", strerror(err));
    }
    closedir(d);
    return err == 0 ? STORE_OK : STORE_IO;
}

/* The compacting copy into path/data.mdb; its size in *bytes. */
static enum store_err
copy_store(const struct lmdb_env *env, const char *path, uint64_t *bytes, char *msg, size_t len)
{
    char file[PATH_MAX];
    struct stat sb;
    int rc = mdb_env_copy2(env->env, path, MDB_CP_COMPACT);

    if (rc != 0) {
        snprintf(msg, len, "backup: mdb_env_copy2: %s", mdb_strerror(rc));
        return lmdb_env_err(rc);
    }
    snprintf(file, sizeof file, "%s/%s", path, DATA_FILE);
    if (chmod(file, COPY_MODE) != 0 || stat(file, &sb) != 0) {
        snprintf(msg, len, "backup: %s: %s", DATA_FILE, strerror(errno));
        return STORE_IO;
    }
    *bytes = (uint64_t)sb.st_size;
    return STORE_OK;
}

static void *
backup_main(void *arg)
{
    struct lmdb_backup *b = arg;
    char msg[STORE_ERR_MAX] = "";
    uint64_t bytes = 0;
    enum store_err err = copy_store(b->env, b->path, &bytes, msg, sizeof msg);

    if (err == STORE_OK)
        err = sync_dir(b->path, msg, sizeof msg);
    pthread_mutex_lock(&b->mu);
    b->finished = true;
    b->err = err;
    b->bytes = bytes;
    memcpy(b->msg, msg, sizeof msg);
    pthread_mutex_unlock(&b->mu);
    ev_async_send(b->loop, &b->async);
    return NULL;
}

/* ---- the loop thread ---- */

/* The async watcher keeps the loop running only while a backup runs (as the writer's does). */
static void
owe(struct lmdb_backup *b, bool owed)
{
    if (owed)
        ev_ref(b->loop);
    else
        ev_unref(b->loop);
}

static void
on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    struct lmdb_backup *b = a->data;
    struct store_op *op = b->op;
    bool finished;

    (void)loop;
    (void)revents;
    if (!b->running)
        return;
    pthread_mutex_lock(&b->mu);
    finished = b->finished;
    if (finished) {
        op->err = b->err;
        op->out.count = b->bytes;
        memcpy(op->out.msg, b->msg, sizeof op->out.msg);
    }
    pthread_mutex_unlock(&b->mu);
    if (!finished)
        return;
    pthread_join(b->thread, NULL);
    b->running = false;
    b->op = NULL;
    owe(b, false);
    store_op_complete(op); /* last: its callback may start the next backup */
}

/* Starts the thread with every signal blocked, so that signals go to the loop thread (see
 * lmdb_writer.c). */
static int
thread_start(struct lmdb_backup *b)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&b->thread, NULL, backup_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

enum store_err
lmdb_backup_init(struct lmdb_backup *b, const struct lmdb_env *env, struct ev_loop *loop, char *msg,
                 size_t len)
{
    int rc;

    memset(b, 0, sizeof *b);
    b->env = env;
    b->loop = loop;
    if ((rc = pthread_mutex_init(&b->mu, NULL)) != 0) {
        snprintf(msg, len, "backup lock: %s", strerror(rc));
        return STORE_IO;
    }
    ev_async_init(&b->async, on_async);
    b->async.data = b;
    ev_async_start(loop, &b->async);
    ev_unref(loop); /* see owe() */
    b->ready = true;
    return STORE_OK;
}

void
lmdb_backup_run(struct lmdb_backup *b, struct store_op *op)
{
    int rc;

    if (b->running) {
        store_op_fail(op, STORE_IO, "backup: another backup is running");
    } else if (op->in.path == NULL || snprintf(b->path, sizeof b->path, "%s/%s", op->in.path,
                                               DATA_FILE) >= (int)sizeof b->path) {
        store_op_fail(op, STORE_IO, "backup: no path, or a path too long");
    } else {
        snprintf(b->path, sizeof b->path, "%s", op->in.path);
        pthread_mutex_lock(&b->mu);
        b->finished = false;
        pthread_mutex_unlock(&b->mu);
        b->op = op;
        if ((rc = thread_start(b)) == 0) {
            b->running = true;
            owe(b, true);
            return;
        }
        b->op = NULL;
        store_op_fail(op, STORE_IO, "backup: thread: %s", strerror(rc));
    }
    store_op_complete(op);
}

void
lmdb_backup_stop(struct lmdb_backup *b)
{
    if (!b->ready)
        return;
    if (b->running) {
        pthread_join(b->thread, NULL);
        b->running = false;
    } else {
        ev_ref(b->loop); /* libev wants the reference back before the watcher stops */
    }
    ev_async_stop(b->loop, &b->async);
    pthread_mutex_destroy(&b->mu);
    b->ready = false;
}
