/* backup.h - the backup service: BACKUP dir makes a new directory (mode 0700) holding a copy of
 * every key file of the data dir (mode 0600) and a compacted, consistent copy of the store
 * (STORE_OP_BACKUP, store.h), while the server keeps serving. One backup at a time; one that
 * fails removes its directory. A BACKUP command gives it a ticket and is answered through the
 * ticket's callback.
 *
 * The loop thread's part is small and bounded: creating the directory and copying the key files
 * (each at most BACKUP_KEY_MAX bytes, written without a sync); the store copies itself on a
 * thread of its own and then syncs the whole directory, key files included. */
#ifndef COUPOND_BACKUP_H
#define COUPOND_BACKUP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backup;
struct log;
struct store;

/* The key files copied: every regular `*.key` file of the data dir (admin.key, task.key, and
 * whichever keys other features keep there), and the named keys' files (keyring.h's `keys`,
 * keynote.h's `keys.noted`). Each is at most this big: coupond's keys are tens of bytes, and the
 * bound keeps a stray large file from stalling the loop while it is copied. The named keys'
 * files hold up to KEYRING_MAX lines of about 180 bytes: under 200 KiB. */
#define BACKUP_KEY_SUFFIX  ".key"
#define BACKUP_KEY_MAX     (64 * 1024)
#define BACKUP_KEYRING_MAX (256 * 1024)
#define BACKUP_DIR_MODE    0700 /* the copy holds the keys and user names: owner only */
#define BACKUP_KEY_MODE    0600
#define BACKUP_WHY_MAX     256 /* a failure's one-line reason */

enum backup_result {
    BACKUP_OK = 0,
    BACKUP_BUSY,  /* another backup is running: nothing was done */
    BACKUP_FAILED /* `why` says what; the directory, if this backup made it, is removed */
};

/* A BACKUP waiting for its outcome. The service fills it and calls `done`, once. */
struct backup_ticket {
    void (*done)(struct backup_ticket *t);
    void *arg;
    /* outcome */
    enum backup_result result;
    uint64_t bytes; /* BACKUP_OK: bytes written, the store's files and the keys */
    double seconds; /* from the start to the end, the directory's sync included */
    char why[BACKUP_WHY_MAX];
};

/* The service for the store `st`, whose key files are in `data_dir`. With `root` (not NULL), a
 * backup's directory must be below it, with no ".." in its path. Both strings are kept, not
 * copied. */
struct backup *backup_new(struct ev_loop *loop, struct store *st, const char *data_dir,
                          const char *root, struct log *lg);

/* Frees the service; the store must be closed first when a backup may be running (store_close
 * waits for it). NULL is a no-op. */
void backup_free(struct backup *b);

/* Starts a backup into the directory `dir` (len bytes, not NUL-terminated; an absolute path),
 * which must not exist: true when it started, and t->done runs when it ends, never inside this
 * call; false when it could not start (BACKUP_BUSY, or BACKUP_FAILED: the directory exists, a
 * key file cannot be copied, ...), with the outcome in *t and done not called. */
bool backup_start(struct backup *b, const char *dir, size_t len, struct backup_ticket *t);

/* Drops a ticket (its client went away): the backup goes on and is logged, its callback never
 * runs. */
void backup_cancel(struct backup *b, struct backup_ticket *t);

/* True while a backup runs. */
bool backup_busy(const struct backup *b);

#endif
