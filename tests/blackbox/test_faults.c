/* test_faults.c - the disk and the descriptor table failing under a running coupond: a full LMDB
 * map, a full data filesystem, commits failing with EIO or ENOSPC (the LD_PRELOAD shim of
 * tests/fault/failsys.c), a log that cannot be written or reopened, and accept() out of
 * descriptors. A write that cannot be made durable is answered ERR INTERNAL and leaves nothing
 * behind; reads go on; the log reports its trouble once; nothing spins.
 *
 * Root is needed to mount the small tmpfs filesystems; without it the same cases run with the
 * failsys shim injecting ENOSPC instead, and say so. The shim is preloaded after the ASan
 * runtime in the sanitizer build (tests/CMakeLists.txt puts it in FAILSYS_PRELOAD). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

#define BATCH            200  /* records per upload while filling the store */
#define FILL_MAX_BATCHES 2000 /* 400,000 records: a store that is still not full never will be */
#define MAX_USES         5    /* of every uploaded coupon, so REDEEM has uses left */
#define SMALL_MAP        "1M" /* --map-size of the map-full case: the smallest allowed */
#define DATA_TMPFS       "size=2m,mode=0700"   /* the data filesystem of the ENOSPC case */
#define LOG_TMPFS        "size=256k,mode=0700" /* the log filesystem of the log-full case */
#define FILLER_BYTES     (256 * 1024) /* kept on the data tmpfs, freed to let writes work again */
#define FILL_CHUNK       4096         /* bytes per write while filling a filesystem */
#define LOG_COMMANDS     1000         /* commands served while the log fails */
#define LOG_WAIT_MS      5000         /* the log thread reports or writes within this */
#define NOFILE_LIMIT     64           /* RLIMIT_NOFILE (soft and hard) of the EMFILE case */
#define EMFILE_CLIENTS   "200"        /* --max-clients there: far above what the fds allow */
#define EMFILE_EXTRA     24           /* connections opened beyond NOFILE_LIMIT */
#define EMFILE_MIN_WAIT  10           /* connections that must be left waiting in the backlog */
#define EMFILE_FREED     10           /* served connections closed to make room */
#define SETTLE_MS        1000         /* no new connection served for this long: settled */
#define SETTLE_MAX_MS    10000        /* ... and settling takes at most this */
#define CPU_WINDOW_MS    2000         /* CPU time measured over this while accepting fails */
#define CPU_MAX_PERCENT  20           /* of one core, at most, meanwhile */
#define REPLY_WAIT_MS    5000         /* a waiting connection is served within this */
#define CODE_BUF         80           /* a coupon code (at most 64 characters) */
#define OUT_MAX          BB_RUN_OUT_MAX

/* One test's surroundings; cleaned up by fault_teardown whatever happened. */
struct fault_env {
    struct bb_server *s;
    char aux[BB_PATH_MAX];          /* scratch: the trigger file, an external log, mounts */
    char trigger[BB_PATH_MAX + 16]; /* the failsys trigger file */
    char mounted[BB_PATH_MAX + 16]; /* a tmpfs this test mounted, or "" */
};

static int
fault_setup(void **state)
{
    struct fault_env *e = calloc(1, sizeof *e);
    if (e == NULL || !bb_tmpdir_make(e->aux)) {
        free(e);
        return -1;
    }
    snprintf(e->trigger, sizeof e->trigger, "%s/failsys.trigger", e->aux);
    *state = e;
    return 0;
}

static int
fault_teardown(void **state)
{
    struct fault_env *e = *state;
    int rc = 0;
    if (e->s != NULL) {
        while (e->s->clients != NULL)
            bb_close(e->s->clients);
        if (e->s->pid > 0 && bb_server_stop(e->s) != 0)
            rc = -1; /* a crash or a sanitizer report */
    }
    if (e->mounted[0] != '\0' && umount2(e->mounted, MNT_DETACH) != 0)
        fprintf(stderr, "fault: umount %s: %s\n", e->mounted, strerror(errno));
    bb_server_free(e->s);
    bb_tmpdir_remove(e->aux);
    unsetenv("LD_PRELOAD");
    unsetenv("FAILSYS_TRIGGER");
    unsetenv("FAILSYS_MATCH");
    free(e);
    return rc;
}

static struct bb_server *
start(struct fault_env *e, const char *const *args)
{
    e->s = bb_server_start(args);
    if (e->s == NULL)
        fail_msg("coupond did not start");
    return e->s;
}

static void
restart(struct fault_env *e)
{
    if (!bb_server_restart(e->s))
        fail_msg("coupond did not start again");
}

static void
stop_ok(struct fault_env *e)
{
    assert_int_equal(bb_server_stop(e->s), 0);
}

/* ---- The failsys shim ---- */

/* Makes the servers started from now on run with the shim, breaking files named `match`. */
static void
use_failsys(struct fault_env *e, const char *match)
{
    const char *preload = getenv("FAILSYS_PRELOAD");
    if (preload == NULL || *preload == '\0')
        fail_msg("FAILSYS_PRELOAD is not set; it names tests/fault's libfailsys.so (CTest sets "
                 "it)");
    setenv("LD_PRELOAD", preload, 1);
    setenv("FAILSYS_TRIGGER", e->trigger, 1);
    setenv("FAILSYS_MATCH", match, 1);
}

/* Breaks the matched file: `how` is "EIO", "ENOSPC", or either followed by " sync". */
static void
trigger_on(const struct fault_env *e, const char *how)
{
    int fd = open(e->trigger, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, how, strlen(how)), (ssize_t)strlen(how));
    close(fd);
}

static void
trigger_off(const struct fault_env *e)
{
    assert_int_equal(unlink(e->trigger), 0);
}

/* ---- Filesystems ---- */

/* Mounts a tmpfs with `opts` on `dir`; false (errno set) when that is not permitted here. */
static bool
mount_tmpfs(struct fault_env *e, const char *dir, const char *opts)
{
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
        return false;
    snprintf(e->mounted, sizeof e->mounted, "%s", dir);
    return true;
}

/* Writes `path` until it holds `bytes` bytes or the filesystem is full; returns the size. */
static size_t
fill_file(const char *path, size_t bytes)
{
    static const char chunk[FILL_CHUNK];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    size_t done = 0;
    while (done < bytes) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    return done;
}

/* ---- Protocol helpers ---- */

/* Uploads records <prefix><first..first+n-1>; returns the status line (in reply). */
static const char *
upload_range(struct bb_client *c, const char *prefix, int first, int n, char *reply)
{
    size_t cap = 32 + (size_t)n * 96;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %d\n", n);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%06d,,10,FLAT,%s,%d\n", prefix, first + i,
                                BB_FAR_EXPIRY, MAX_USES);
    bb_send(c, buf, len);
    free(buf);
    return bb_get_reply(c, reply);
}

/* Uploads batches until one is answered ERR INTERNAL; returns the number of records that were
 * acknowledged before. Fails on any other answer, or when the store never fills. */
static int
upload_until_internal(struct bb_client *c, const char *prefix, int first)
{
    static char reply[BB_REPLY_MAX];
    char ok[32];
    snprintf(ok, sizeof ok, "OK uploaded=%d", BATCH);
    for (int b = 0; b < FILL_MAX_BATCHES; b++) {
        const char *status = upload_range(c, prefix, first + b * BATCH, BATCH, reply);
        if (bb_has_prefix(status, "ERR INTERNAL")) {
            print_message("store full after %d records: %s\n", b * BATCH, status);
            return b * BATCH;
        }
        if (strcmp(status, ok) != 0)
            fail_msg("upload batch %d: expected \"%s\" or ERR INTERNAL, got \"%s\"", b, ok, reply);
    }
    fail_msg("%d records stored and no ERR INTERNAL yet", FILL_MAX_BATCHES * BATCH);
    return -1;
}

/* REQUEST for `user`, expected to succeed; copies the coupon code into code[CODE_BUF]. */
static void
request_ok(struct bb_client *c, const char *user, char *code)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "REQUEST %s", user);
    const char *status = bb_expect_prefix(c, cmd, "OK code=");
    size_t n = strcspn(status + 8, " ");
    assert_true(n < CODE_BUF);
    memcpy(code, status + 8, n);
    code[n] = '\0';
}

static void
validate_ok(struct bb_client *c, const char *user, const char *code, unsigned uses)
{
    char cmd[256], want[128];
    snprintf(cmd, sizeof cmd, "VALIDATE %s %s", user, code);
    snprintf(want, sizeof want, "OK code=%s ", code);
    const char *status = bb_expect_prefix(c, cmd, want);
    snprintf(want, sizeof want, " uses=%u ", uses);
    if (strstr(status, want) == NULL)
        fail_msg("%s: expected%s, got \"%s\"", cmd, want, status);
}

/* `coupond --check -d DIR` must pass. */
static void
check_passes(const char *dir)
{
    static char out[OUT_MAX], err[OUT_MAX];
    const char *const args[] = {"--check", "-d", dir, NULL};
    int st = bb_run(args, out, OUT_MAX, err, OUT_MAX);
    if (st != 0 || strstr(out, "consistent") == NULL)
        fail_msg("coupond --check -d %s: status %d\nstdout: %s\nstderr: %s", dir, st, out, err);
}

/* ---- A full map ---- */

static void
test_map_full(void **state)
{
    struct fault_env *e = *state;
    bb_lmdb_only("--map-size bounds LMDB's map; PostgreSQL has none");
    static const char *const args[] = {"--map-size", SMALL_MAP, NULL};
    struct bb_server *s = start(e, args);
    struct bb_client *c = bb_connect_admin(s);
    char code[CODE_BUF];
    static char reply[BB_REPLY_MAX];
    assert_string_equal(upload_range(c, "MF-", 0, BATCH, reply), "OK uploaded=200");
    request_ok(c, "alice", code);
    int acked = BATCH + upload_until_internal(c, "MF-", BATCH);
    print_message("map full: VmHWM %ld kB\n", bb_proc_kb(s, "VmHWM"));

    /* Reads go on, and the counters tell of the acknowledged records only. */
    validate_ok(c, "alice", code, 0);
    assert_int_equal(bb_stat(c, "created.NONE"), acked);
    assert_int_equal(bb_stat(c, "assigned.NONE"), 1);
    bb_expect(c, "PING", "OK PONG");
    struct bb_client *other = bb_connect(s);
    validate_ok(other, "alice", code, 0);
    bb_close(other);
    bb_close(c);

    stop_ok(e);
    check_passes(s->dir);
    restart(e);
    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), acked);
    validate_ok(c, "alice", code, 0);
    bb_close(c);
}

/* ---- A full data filesystem ---- */

static void
test_data_disk_full(void **state)
{
    struct fault_env *e = *state;
    bb_lmdb_only("it fills the data dir's filesystem, where PostgreSQL keeps no coupons");
    char ext_log[BB_PATH_MAX + 16], filler[BB_PATH_MAX + 16];
    snprintf(ext_log, sizeof ext_log, "%s/ops.log", e->aux); /* the log is not the case here */
    const char *const args[] = {"--log", ext_log, NULL};
    struct bb_server *s = start(e, args);
    stop_ok(e);
    /* The same data dir, now on a 2 MiB filesystem (the harness's first start made the dir). */
    bool mounted = mount_tmpfs(e, s->dir, DATA_TMPFS);
    if (!mounted) {
        print_message("NOTE: mount -t tmpfs not permitted here (%s): ENOSPC is injected with the "
                      "failsys shim instead\n",
                      strerror(errno));
        use_failsys(e, "data.mdb");
    }
    restart(e);
    snprintf(filler, sizeof filler, "%s/filler", s->dir);
    if (mounted)
        assert_int_equal(fill_file(filler, FILLER_BYTES), FILLER_BYTES);

    struct bb_client *c = bb_connect_admin(s);
    char code[CODE_BUF], later[CODE_BUF];
    static char reply[BB_REPLY_MAX];
    assert_string_equal(upload_range(c, "DF-", 0, BATCH, reply), "OK uploaded=200");
    request_ok(c, "alice", code);
    if (!mounted)
        trigger_on(e, "ENOSPC");
    int acked = BATCH + upload_until_internal(c, "DF-", BATCH);
    print_message("data disk full: VmHWM %ld kB\n", bb_proc_kb(s, "VmHWM"));

    /* The batch that did not fit fails again, whole; reads go on. (A small write may still
     * succeed meanwhile, in pages LMDB frees and reuses: no assertion about those.) */
    if (!bb_has_prefix(upload_range(c, "DF-", acked, BATCH, reply), "ERR INTERNAL"))
        fail_msg("the batch that did not fit: got \"%s\"", reply);
    validate_ok(c, "alice", code, 0);
    assert_int_equal(bb_stat(c, "created.NONE"), acked);
    assert_int_equal(bb_stat(c, "redeemed.NONE"), 0);

    /* Room again: writes work again, without a restart, and the codes of the failed batch are
     * free: nothing of it was stored. */
    if (mounted)
        assert_int_equal(unlink(filler), 0);
    else
        trigger_off(e);
    bb_expect_prefix(c, "REDEEM alice DF-000000", "OK code=DF-000000");
    request_ok(c, "bob", later);
    assert_string_equal(upload_range(c, "DF-", acked, BATCH, reply), "OK uploaded=200");
    acked += BATCH;
    bb_close(c);

    stop_ok(e);
    check_passes(s->dir);
    restart(e);
    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), acked);
    assert_int_equal(bb_stat(c, "assigned.NONE"), 2);
    assert_int_equal(bb_stat(c, "redeemed.NONE"), 1);
    validate_ok(c, "alice", code, 1);
    validate_ok(c, "bob", later, 0);
    bb_close(c);
}

/* ---- Commits failing: EIO and ENOSPC from write, pwrite, fdatasync ---- */

/* While the data file fails, every kind of write is ERR INTERNAL, reads work, nothing moves. */
static void
writes_fail(struct bb_client *c, const char *how, const char *held_code)
{
    static char reply[BB_REPLY_MAX];
    char user[64];
    snprintf(user, sizeof user, "failing-%.20s", how);
    for (char *p = user; *p != '\0'; p++)
        if (*p == ' ')
            *p = '-';
    char cmd[256];
    snprintf(cmd, sizeof cmd, "REQUEST %s", user);
    bb_expect_prefix(c, cmd, "ERR INTERNAL");
    snprintf(cmd, sizeof cmd, "REDEEM alice %s", held_code);
    bb_expect_prefix(c, cmd, "ERR INTERNAL");
    const char *status = upload_range(c, "LOST-", 0, 5, reply);
    if (!bb_has_prefix(status, "ERR INTERNAL"))
        fail_msg("UPLOAD while the disk fails (%s): got \"%s\"", how, reply);
    /* Three writes pipelined into one group: all three fail. */
    bb_send_str(c, "REQUEST p1\nREQUEST p2\nREQUEST p3\n");
    for (int i = 0; i < 3; i++)
        bb_expect_reply_prefix(c, "ERR INTERNAL");
    validate_ok(c, "alice", held_code, 0);
    bb_expect(c, "PING", "OK PONG");
}

static void
test_commit_fails(void **state)
{
    struct fault_env *e = *state;
    bb_lmdb_only("failsys breaks writes of LMDB's data.mdb (test_unavailable stops PostgreSQL)");
    use_failsys(e, "data.mdb");
    struct bb_server *s = start(e, NULL);
    struct bb_client *c = bb_connect_admin(s);
    static char reply[BB_REPLY_MAX];
    char held[CODE_BUF], next[CODE_BUF];
    assert_string_equal(upload_range(c, "CF-", 0, 20, reply), "OK uploaded=20");
    request_ok(c, "alice", held);
    assert_string_equal(held, "CF-000000");

    static const char *const modes[] = {"EIO", "ENOSPC", "EIO sync", "ENOSPC sync"};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        trigger_on(e, modes[i]);
        writes_fail(c, modes[i], held);
        assert_int_equal(bb_stat(c, "created.NONE"), 20);
        assert_int_equal(bb_stat(c, "assigned.NONE"), 1);
        assert_int_equal(bb_stat(c, "redeemed.NONE"), 0);
    }
    print_message("commit failures: VmHWM %ld kB, commit_failures %llu\n", bb_proc_kb(s, "VmHWM"),
                  (unsigned long long)bb_stat(c, "commit_failures"));

    /* Mended: the next assignment is the next coupon, as if the failed ones never happened, and
     * the codes of the failed upload are free. */
    trigger_off(e);
    request_ok(c, "bob", next);
    assert_string_equal(next, "CF-000001");
    assert_string_equal(upload_range(c, "LOST-", 0, 5, reply), "OK uploaded=5");
    bb_close(c);

    stop_ok(e);
    check_passes(s->dir);
    restart(e);
    c = bb_connect_admin(s);
    assert_int_equal(bb_stat(c, "created.NONE"), 25);
    assert_int_equal(bb_stat(c, "assigned.NONE"), 2);
    assert_int_equal(bb_stat(c, "redeemed.NONE"), 0);
    validate_ok(c, "alice", held, 0);
    bb_expect_prefix(c, "VALIDATE failing-EIO CF-000001", "ERR INVALID"); /* bob's */
    bb_close(c);
}

/* ---- The log ---- */

static void
stderr_path(const struct bb_server *s, char *buf, size_t size)
{
    snprintf(buf, (size_t)size, "%s/stderr.log", s->dir);
}

/* Sends `n` PINGs in one write and reads the n replies. */
static void
serve_pings(struct bb_client *c, int n)
{
    char *buf = malloc((size_t)n * 5);
    assert_non_null(buf);
    for (int i = 0; i < n; i++)
        memcpy(buf + (size_t)i * 5, "PING\n", 5);
    bb_send(c, buf, (size_t)n * 5);
    free(buf);
    char line[BB_LINE_MAX];
    for (int i = 0; i < n; i++) {
        enum bb_read r = bb_read_line(c, line, sizeof line);
        if (r != BB_READ_LINE || strcmp(line, "OK PONG") != 0)
            fail_msg("PING %d of %d: no OK PONG (%d, \"%s\")", i + 1, n, (int)r,
                     r == BB_READ_LINE ? line : "");
    }
}

static void
test_log_dev_full(void **state)
{
    struct fault_env *e = *state;
    static const char *const args[] = {"--log", "/dev/full", NULL};
    struct bb_server *s = start(e, args);
    char errlog[BB_PATH_MAX + 16];
    stderr_path(s, errlog, sizeof errlog);
    struct bb_client *c = bb_connect(s);
    serve_pings(c, LOG_COMMANDS);
    assert_int_equal(bb_file_wait_count(errlog, "coupond: log:", 1, LOG_WAIT_MS), 1);
    serve_pings(c, LOG_COMMANDS);
    bb_close(c);
    stop_ok(e); /* writes out (or fails to) every line left */
    assert_int_equal(bb_file_count(errlog, "coupond: log:"), 1);
    assert_int_equal(bb_file_count(errlog, "No space left on device"), 1);
}

static void
test_log_reopen_fails(void **state)
{
    struct fault_env *e = *state;
    struct bb_server *s = start(e, NULL);
    char log[BB_PATH_MAX + 16], rotated[BB_PATH_MAX + 16], errlog[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    snprintf(rotated, sizeof rotated, "%s/ops.log.1", s->dir);
    stderr_path(s, errlog, sizeof errlog);
    struct bb_client *c = bb_connect(s);
    bb_expect_prefix(c, "REQUEST before-rotation", "ERR NO_COUPONS");

    /* Rotated away, and in its place something no one, root included, can open for writing. */
    assert_int_equal(rename(log, rotated), 0);
    assert_int_equal(mkdir(log, 0700), 0);
    bb_server_signal(s, SIGHUP);
    assert_int_equal(bb_file_wait_count(errlog, "cannot reopen log file", 1, LOG_WAIT_MS), 1);

    /* Serving goes on, and the lines go to the old file. */
    bb_expect_prefix(c, "REQUEST after-failed-reopen", "ERR NO_COUPONS");
    serve_pings(c, LOG_COMMANDS);
    assert_int_equal(bb_file_wait_count(rotated, "user=after-failed-reopen", 1, LOG_WAIT_MS), 1);
    bb_close(c);
    stop_ok(e);
    assert_int_equal(bb_file_count(errlog, "coupond: log:"), 1);
}

static void
test_log_disk_full(void **state)
{
    struct fault_env *e = *state;
    char dir[BB_PATH_MAX + 16], log[BB_PATH_MAX + 32], filler[BB_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/logfs", e->aux);
    snprintf(log, sizeof log, "%s/ops.log", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    bool mounted = mount_tmpfs(e, dir, LOG_TMPFS);
    if (!mounted) {
        print_message("NOTE: mount -t tmpfs not permitted here (%s): the full log disk is "
                      "injected with the failsys shim (ENOSPC on ops.log) instead\n",
                      strerror(errno));
        use_failsys(e, "ops.log");
    }
    const char *const args[] = {"--log", log, NULL};
    struct bb_server *s = start(e, args);
    char errlog[BB_PATH_MAX + 16];
    stderr_path(s, errlog, sizeof errlog);
    struct bb_client *c = bb_connect(s);
    bb_expect(c, "PING", "OK PONG");
    if (mounted)
        fill_file(filler, SIZE_MAX); /* until ENOSPC */
    else
        trigger_on(e, "ENOSPC");

    serve_pings(c, LOG_COMMANDS);
    assert_int_equal(bb_file_wait_count(errlog, "cannot write the log", 1, LOG_WAIT_MS), 1);
    serve_pings(c, LOG_COMMANDS);

    if (mounted)
        assert_int_equal(unlink(filler), 0);
    else
        trigger_off(e);
    bb_expect_prefix(c, "REQUEST after-recovery", "ERR NO_COUPONS");
    assert_int_equal(bb_file_wait_count(log, "user=after-recovery", 1, LOG_WAIT_MS), 1);
    assert_int_equal(bb_file_wait_count(errlog, "writing the log works again", 1, LOG_WAIT_MS), 1);
    bb_close(c);
    stop_ok(e);
    assert_int_equal(bb_file_count(errlog, "cannot write the log"), 1);
    assert_int_equal(bb_file_count(errlog, "coupond: log:"), 2);
}

/* ---- accept() out of descriptors ---- */

/* Reads what has arrived on each waiting client without blocking; a client that got its
 * OK PONG is marked served. Returns how many were served. */
static int
collect_pongs(struct bb_client **cl, bool *served, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (cl[i] != NULL && !served[i]) {
            struct pollfd p = {.fd = cl[i]->fd, .events = POLLIN};
            if (poll(&p, 1, 0) == 1) {
                char line[BB_LINE_MAX];
                enum bb_read r = bb_read_line(cl[i], line, sizeof line);
                if (r != BB_READ_LINE || strcmp(line, "OK PONG") != 0)
                    fail_msg("client %d: expected OK PONG, got %s", i,
                             r == BB_READ_LINE ? line : "no line");
                served[i] = true;
            }
        }
        count += cl[i] != NULL && served[i];
    }
    return count;
}

static void
test_emfile_does_not_spin(void **state)
{
    struct fault_env *e = *state;
    static const char *const args[] = {"--max-clients", EMFILE_CLIENTS, NULL};
    struct bb_server *s = start(e, args);
    /* As `prlimit --nofile=64:64` would at start; coupond cannot raise it again. */
    struct rlimit lim = {NOFILE_LIMIT, NOFILE_LIMIT};
    if (prlimit(s->pid, RLIMIT_NOFILE, &lim, NULL) != 0)
        fail_msg("prlimit(RLIMIT_NOFILE) of coupond: %s", strerror(errno));

    enum { N = NOFILE_LIMIT + EMFILE_EXTRA };
    struct bb_client *cl[N];
    bool served[N] = {false};
    for (int i = 0; i < N; i++) {
        cl[i] = bb_connect(s); /* the kernel completes it in the backlog */
        bb_send_str(cl[i], "PING\n");
    }
    int count = 0, last = -1;
    int64_t changed = bb_now_ms(), deadline = changed + SETTLE_MAX_MS;
    while (bb_now_ms() - changed < SETTLE_MS && bb_now_ms() < deadline) {
        bb_sleep_ms(BB_POLL_MS);
        count = collect_pongs(cl, served, N);
        if (count != last) {
            last = count;
            changed = bb_now_ms();
        }
    }
    print_message("EMFILE: %d of %d connections served, the rest wait in the backlog\n", count, N);
    if (count < 1 || N - count < EMFILE_MIN_WAIT)
        fail_msg("expected some connections served and >= %d waiting, got %d served of %d",
                 EMFILE_MIN_WAIT, count, N);
    char log[BB_PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    if (bb_file_wait_count(log, "op=ACCEPT_PAUSED", 1, LOG_WAIT_MS) < 1)
        fail_msg("no ACCEPT_PAUSED in the log: accept() never ran out of descriptors");

    long cpu0 = bb_proc_cpu_ms(s);
    bb_sleep_ms(CPU_WINDOW_MS);
    long cpu1 = bb_proc_cpu_ms(s);
    assert_true(cpu0 >= 0 && cpu1 >= cpu0);
    long pct = (cpu1 - cpu0) * 100 / CPU_WINDOW_MS;
    print_message("EMFILE: coupond used %ld ms of CPU in %d ms (%ld%% of a core), VmHWM %ld kB\n",
                  cpu1 - cpu0, CPU_WINDOW_MS, pct, bb_proc_kb(s, "VmHWM"));
    if (pct >= CPU_MAX_PERCENT)
        fail_msg("coupond spins while accept() fails: %ld%% of a core", pct);

    /* Room again: the waiting connections are accepted and served. */
    int freed = 0;
    for (int i = 0; i < N && freed < EMFILE_FREED; i++) {
        if (served[i]) {
            bb_close(cl[i]);
            cl[i] = NULL;
            freed++;
        }
    }
    int want = count - freed + EMFILE_FREED;
    deadline = bb_now_ms() + REPLY_WAIT_MS;
    while ((count = collect_pongs(cl, served, N)) < want && bb_now_ms() < deadline)
        bb_sleep_ms(BB_POLL_MS);
    if (count < want)
        fail_msg("after closing %d connections, %d are served, expected %d", freed, count, want);
    for (int i = 0; i < N; i++)
        bb_close(cl[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_full, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_data_disk_full, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_commit_fails, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_log_dev_full, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_log_reopen_fails, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_log_disk_full, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_emfile_does_not_spin, fault_setup, fault_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
