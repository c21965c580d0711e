/* test_backup.c - BACKUP dir from outside (coupond-protocol(7), coupond(8)): the new directory
 * holds the store and every key file, with their modes; `coupond --check -d dir` passes on it
 * and `coupond -d dir` serves it, with the counters and coupons of the original; the server
 * keeps serving while a backup runs (the disk held still under it by tests/fault's shim); one
 * backup at a time; a backup that fails leaves no directory; and the refusals (no AUTH, a
 * relative path, a directory that exists, a missing parent). On PostgreSQL, BACKUP is an error
 * naming pg_basebackup. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

#define PATH_BUF   (BB_PATH_MAX + 64)
#define LINE_BUF   (PATH_BUF + 64)
#define OUT_MAX    BB_RUN_OUT_MAX
#define BIG_KEY    (100 * 1024) /* over the 64 KiB a key file may have */
#define QUIET_MS   300          /* a held backup must stay unanswered this long */
#define BACKUP_MS  10000        /* a small backup's reply, even under a sanitizer */
#define EXTRA_KEY  "extra.key"  /* another feature's key file: copied all the same */
#define EXTRA_TEXT "not a key, kept out\n"

static unsigned
mode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return (unsigned)(st.st_mode & 07777);
}

static bool
exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void
write_file(const char *path, const char *text, size_t len, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* The whole contents of a small file into buf; its length. */
static size_t
read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, cap);
    close(fd);
    assert_true(n >= 0);
    return (size_t)n;
}

static void
same_file(const char *a, const char *b)
{
    char x[256], y[256];
    size_t n = read_file(a, x, sizeof x), m = read_file(b, y, sizeof y);
    if (n != m || memcmp(x, y, n) != 0)
        fail_msg("%s and %s differ", a, b);
}

/* Removes a flat directory and what it holds. */
static void
remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* A place for backups beside the server's data dir (same filesystem: it is renamed into place
 * to be served). */
static void
backup_path(const struct bb_server *s, const char *name, char out[PATH_BUF])
{
    bb_fmt(out, PATH_BUF, "%s.%s", s->dir, name);
}

/* Sends BACKUP dir and expects OK bytes=B seconds=S; returns B. */
static uint64_t
backup_ok(struct bb_client *c, const char *dir)
{
    char cmd[LINE_BUF], tail;
    unsigned long long bytes;
    double seconds;
    bb_fmt(cmd, sizeof cmd, "BACKUP %s", dir);
    const char *st = bb_expect_prefix(c, cmd, "OK bytes=");
    if (sscanf(st, "OK bytes=%llu seconds=%lf%c", &bytes, &seconds, &tail) != 2 || seconds < 0)
        fail_msg("BACKUP's reply is not OK bytes=B seconds=S: %s", st);
    return bytes;
}

/* STATS' counters of coupons, without the server's own values (uptime, connections, ...). */
static void
coupon_stats(struct bb_client *c, char *out, size_t cap)
{
    static char reply[BB_REPLY_MAX];
    size_t n = 0;
    const char *st = bb_cmd(c, "STATS", reply);
    assert_true(bb_has_prefix(st, "OK"));
    for (char *line = strtok(reply, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        static const char *const kept[] = {"STAT created.", "STAT assigned.", "STAT redeemed.",
                                           "STAT available.", "STAT held."};
        for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
            if (strncmp(line, kept[i], strlen(kept[i])) == 0)
                n += (size_t)snprintf(out + n, cap - n, "%s\n", line);
    }
    assert_true(n > 0 && n < cap);
}

/* ---- the copy ---- */

/* The directory: 0700; the store and every key file, 0600, the keys as they are; nothing else
 * of the data dir (log, lock, other files). It checks, and it serves the original's coupons. */
static void
test_backup_copy_serves(void **state)
{
    struct bb_server *s = *state;
    bb_lmdb_only(
        "BACKUP copies an LMDB store; on PostgreSQL it names pg_basebackup (test_backup_on_pg)");
    static char before[BB_REPLY_MAX], after[BB_REPLY_MAX];
    char dir[PATH_BUF], orig[PATH_BUF], path[PATH_BUF], src[PATH_BUF], reply[BB_REPLY_MAX];
    static char out[OUT_MAX], err[OUT_MAX];

    bb_fmt(path, sizeof path, "%s/%s", s->dir, EXTRA_KEY);
    write_file(path, "0123456789abcdef\n", 17, 0600);
    bb_fmt(path, sizeof path, "%s/notes.txt", s->dir);
    write_file(path, EXTRA_TEXT, strlen(EXTRA_TEXT), 0600);
    struct bb_client *c = bb_connect_admin(s);
    bb_upload_gen(c, "BK-", "FREE", 200, NULL, 2);
    bb_upload_gen(c, "BN-", "", 10, NULL, 1);
    bb_expect_prefix(c, "REQUEST alice FREE", "OK code=BK-000000");
    bb_expect_prefix(c, "REQUEST alice FREE", "OK code=BK-000001");
    bb_expect_prefix(c, "REDEEM alice BK-000000", "OK code=BK-000000");
    coupon_stats(c, before, sizeof before);
    backup_path(s, "bk", dir);
    assert_true(backup_ok(c, dir) > 0);
    bb_close(c);

    assert_int_equal(mode_of(dir), 0700);
    static const char *const keys[] = {"admin.key", "task.key", EXTRA_KEY};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        bb_fmt(path, sizeof path, "%s/%s", dir, keys[i]);
        bb_fmt(src, sizeof src, "%s/%s", s->dir, keys[i]);
        assert_int_equal(mode_of(path), 0600);
        same_file(path, src);
    }
    bb_fmt(path, sizeof path, "%s/data.mdb", dir);
    assert_int_equal(mode_of(path), 0600);
    static const char *const left_out[] = {"notes.txt", "ops.log", "stderr.log", "coupond.lock",
                                           "lock.mdb"};
    for (size_t i = 0; i < sizeof left_out / sizeof left_out[0]; i++) {
        bb_fmt(path, sizeof path, "%s/%s", dir, left_out[i]);
        if (exists(path))
            fail_msg("the backup holds %s", left_out[i]);
    }

    /* coupond --check passes on it, and creates nothing but LMDB's lock file. */
    const char *const check[] = {"--check", "-d", dir, NULL};
    int st = bb_run(check, out, sizeof out, err, sizeof err);
    if (st != 0 || strstr(out, "consistent") == NULL)
        fail_msg("coupond --check -d %s: status %d, %s%s", dir, st, out, err);

    /* coupond -d dir serves it: the server's data dir is swapped for the backup. */
    assert_int_equal(bb_server_stop(s), 0);
    backup_path(s, "orig", orig);
    assert_int_equal(rename(s->dir, orig), 0);
    assert_int_equal(rename(dir, s->dir), 0);
    if (!bb_server_restart_any_port(s))
        fail_msg("coupond did not serve the backup");
    c = bb_connect_admin(s);
    coupon_stats(c, after, sizeof after);
    assert_string_equal(after, before);
    const char *line = bb_cmd(c, "COUPONS alice", reply);
    assert_true(bb_has_prefix(line, "OK count=2"));
    bb_expect_prefix(c, "VALIDATE alice BK-000001", "OK code=BK-000001");
    bb_expect_prefix(c, "REQUEST bob FREE", "OK code=BK-000002");
    bb_expect_prefix(c, "REQUEST carol", "OK code=BN-000000");
    bb_close(c);
    remove_flat(orig);
}

/* ---- refusals ---- */

static void
test_backup_refusals(void **state)
{
    struct bb_server *s = *state;
    char dir[PATH_BUF], cmd[LINE_BUF], path[PATH_BUF], reply[BB_REPLY_MAX];
    bb_lmdb_only(
        "BACKUP copies an LMDB store; on PostgreSQL it names pg_basebackup (test_backup_on_pg)");
    static char big[BIG_KEY];

    backup_path(s, "refused", dir);
    bb_fmt(cmd, sizeof cmd, "BACKUP %s", dir);
    struct bb_client *c = bb_connect(s);
    bb_expect_prefix(c, cmd, "ERR DENIED");
    assert_false(exists(dir));
    bb_auth(c);
    bb_expect_prefix(c, "BACKUP backups/today", "ERR BAD_REQUEST");
    bb_expect_prefix(c, "BACKUP", "ERR BAD_REQUEST");

    /* A directory that exists is left as it is. */
    assert_int_equal(mkdir(dir, 0755), 0);
    bb_fmt(path, sizeof path, "%s/mine", dir);
    write_file(path, "x", 1, 0644);
    const char *st = bb_cmd(c, cmd, reply);
    if (!bb_has_prefix(st, "ERR INTERNAL") || strstr(st, "exists") == NULL)
        fail_msg("BACKUP into an existing directory: %s", st);
    assert_true(exists(path));
    assert_int_equal(mode_of(dir), 0755);
    remove_flat(dir);

    /* A missing parent: nothing is made. */
    bb_fmt(path, sizeof path, "%s/deeper", dir);
    bb_fmt(cmd, sizeof cmd, "BACKUP %s", path);
    bb_expect_prefix(c, cmd, "ERR INTERNAL");
    assert_false(exists(dir));

    /* A key file that cannot be copied fails the backup, and its directory goes. */
    bb_fmt(path, sizeof path, "%s/big.key", s->dir);
    memset(big, 'k', sizeof big);
    write_file(path, big, sizeof big, 0600);
    bb_fmt(cmd, sizeof cmd, "BACKUP %s", dir);
    st = bb_cmd(c, cmd, reply);
    if (!bb_has_prefix(st, "ERR INTERNAL") || strstr(st, "big.key") == NULL)
        fail_msg("BACKUP with a 100 KiB key file: %s", st);
    assert_false(exists(dir));
    assert_int_equal(unlink(path), 0);
    backup_ok(c, dir);
    remove_flat(dir);
    bb_close(c);
}

/* ---- while serving ---- */

/* Servers started from now on run with tests/fault's shim on files named data.mdb, driven by
 * the trigger file `trigger`. */
static void
use_failsys(const char *trigger)
{
    const char *preload = getenv("FAILSYS_PRELOAD");
    if (preload == NULL || *preload == '\0')
        fail_msg("FAILSYS_PRELOAD is not set; it names tests/fault's libfailsys.so (CTest sets "
                 "it)");
    setenv("LD_PRELOAD", preload, 1);
    setenv("FAILSYS_TRIGGER", trigger, 1);
    setenv("FAILSYS_MATCH", "data.mdb", 1);
}

static void
no_failsys(void)
{
    unsetenv("LD_PRELOAD");
    unsetenv("FAILSYS_TRIGGER");
    unsetenv("FAILSYS_MATCH");
}

/* While the backup's writes are held (a stalled disk), other clients are served, a second
 * BACKUP is BUSY, and the first answers once the disk moves again. A backup whose writes fail
 * answers ERR INTERNAL and leaves no directory; the server goes on. */
static void
test_backup_while_serving(void **state)
{
    char aux[BB_PATH_MAX], trigger[PATH_BUF], dir[PATH_BUF], cmd[LINE_BUF], reply[BB_REPLY_MAX];
    bb_lmdb_only(
        "BACKUP copies an LMDB store; on PostgreSQL it names pg_basebackup (test_backup_on_pg)");

    (void)state;
    assert_true(bb_tmpdir_make(aux));
    bb_fmt(trigger, sizeof trigger, "%s/failsys.trigger", aux);
    use_failsys(trigger);
    struct bb_server *s = bb_server_start(NULL);
    no_failsys();
    if (s == NULL)
        fail_msg("coupond did not start with the shim");
    struct bb_client *a = bb_connect_admin(s), *b = bb_connect_admin(s);
    bb_upload_gen(a, "SV-", "FREE", 1000, NULL, 1);
    bb_expect_prefix(a, "REQUEST alice FREE", "OK code=SV-000000");

    backup_path(s, "held", dir);
    write_file(trigger, "HOLD", 4, 0600);
    bb_fmt(cmd, sizeof cmd, "BACKUP %s\n", dir);
    bb_send_str(a, cmd);
    assert_true(bb_quiet(a, QUIET_MS));
    bb_expect(b, "PING", "OK PONG");
    bb_expect_prefix(b, "VALIDATE alice SV-000000", "OK code=SV-000000");
    assert_int_equal(bb_stat(b, "assigned.FREE"), 1);
    bb_expect_prefix(b, "BACKUP /nowhere/at/all", "ERR BUSY");
    assert_true(bb_quiet(a, 1));
    assert_int_equal(unlink(trigger), 0);
    bb_set_timeout(a, BACKUP_MS);
    const char *st = bb_get_reply(a, reply);
    if (!bb_has_prefix(st, "OK bytes="))
        fail_msg("the held BACKUP answered %s", st);
    remove_flat(dir);

    /* The disk fails under the copy: the partial directory goes. */
    write_file(trigger, "EIO", 3, 0600);
    bb_fmt(cmd, sizeof cmd, "BACKUP %s", dir);
    st = bb_cmd(a, cmd, reply);
    if (!bb_has_prefix(st, "ERR INTERNAL") || strstr(st, "backup failed") == NULL)
        fail_msg("BACKUP on a failing disk: %s", st);
    assert_false(exists(dir));
    assert_int_equal(unlink(trigger), 0);
    bb_expect_prefix(b, "REQUEST bob FREE", "OK code=SV-000001");
    backup_ok(b, dir);
    remove_flat(dir);
    bb_close(a);
    bb_close(b);
    assert_int_equal(bb_server_stop(s), 0);
    bb_server_free(s);
    bb_tmpdir_remove(aux);
}

/* VERSION answers the version coupond -V prints. */
static void
test_version(void **state)
{
    struct bb_server *s = *state;
    static char out[OUT_MAX], err[OUT_MAX];
    char want[128];
    const char *const args[] = {"-V", NULL};

    assert_int_equal(bb_run(args, out, sizeof out, err, sizeof err), 0);
    assert_true(strncmp(out, "coupond ", 8) == 0);
    out[strcspn(out, "\n")] = '\0';
    bb_fmt(want, sizeof want, "OK version=%s", out + 8);
    struct bb_client *c = bb_connect(s);
    bb_expect(c, "VERSION", want);
    bb_close(c);
}

/* On PostgreSQL the database is backed up by PostgreSQL's tools: BACKUP answers an error that
 * names pg_basebackup, and makes no directory. */
static void
test_backup_on_pg(void **state)
{
    struct bb_server *s = *state;
    char dir[PATH_BUF], cmd[LINE_BUF];
    struct stat st;
    bb_pg_only("the error that sends a PostgreSQL store's backup to pg_basebackup");
    struct bb_client *c = bb_connect_admin(s);
    backup_path(s, "pg", dir);
    bb_fmt(cmd, sizeof cmd, "BACKUP %s", dir);
    const char *line = bb_expect_prefix(c, cmd, "ERR");
    if (strstr(line, "pg_basebackup") == NULL)
        fail_msg("BACKUP on PostgreSQL does not name pg_basebackup: %s", line);
    if (stat(dir, &st) == 0)
        fail_msg("BACKUP on PostgreSQL made %s", dir);
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backup_copy_serves, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_backup_refusals, bb_setup, bb_teardown),
        cmocka_unit_test(test_backup_while_serving),
        cmocka_unit_test_setup_teardown(test_version, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_backup_on_pg, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
