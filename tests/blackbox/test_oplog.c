/* test_oplog.c - the operation log's form, as coupond(8) describes it: every line is logfmt
 * with the time first, a value with spaces, `=` or quotes is quoted and escaped wherever it
 * comes from (the data dir of the START line too), a line over 1,024 bytes is cut cleanly and
 * says so, and the line that counts dropped lines has its time like every other. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

#define LOG_LINE_MAX  1024      /* coupond(8): longer lines are cut */
#define DEEP_LEVELS   4         /* directories of DEEP_NAME_LEN bytes: a data dir of ~1,000 bytes */
#define DEEP_NAME_LEN 245       /* below NAME_MAX (255) */
#define PATH_BUF      2048      /* the deep data dir and a file name in it */
#define VALUE_MAX     2048      /* one unescaped log value */
#define LOG_BUF       (1 << 20) /* a whole small log file */
#define UP_TIMEOUT_MS 10000     /* spawn until the LISTEN line is in the log */
#define DRAIN_MS      20000     /* reading the log pipe until the LOG_DROPPED line */
#define PING_BATCH    8192      /* PINGs sent before their replies are read: below the output cap */
/* PING lines are about 85 bytes: 320k of them are 26 MiB, well over the 16 MiB the log may
 * queue behind a writer that cannot write, so some must be dropped. */
#define PING_TOTAL (40 * PING_BATCH)

/* ---- helpers ---- */

static char *
read_file(const char *path, size_t *len)
{
    static char buf[LOG_BUF];
    FILE *f = fopen(path, "re");
    if (f == NULL)
        fail_msg("open %s: %s", path, strerror(errno));
    *len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

/* Every line of the log is at most LOG_LINE_MAX bytes with its LF, holds no NUL, is logfmt and
 * starts with time=. Returns the number of lines. */
static int
check_every_line(const char *path)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (memchr(buf, '\0', len) != NULL)
        fail_msg("%s holds a NUL byte at offset %zu", path,
                 (size_t)((char *)memchr(buf, '\0', len) - buf));
    int lines = 0;
    for (char *p = buf; p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        if (nl == NULL)
            fail_msg("%s ends without a newline: \"%s\"", path, p);
        *nl = '\0';
        if (nl + 1 - p > LOG_LINE_MAX)
            fail_msg("a line of %zu bytes: \"%.80s...\"", (size_t)(nl + 1 - p), p);
        static char val[VALUE_MAX];
        if (strncmp(p, "time=", 5) != 0 || bb_logfmt_field(p, "time", val, sizeof val) != 1)
            fail_msg("not a logfmt line starting with time=: \"%s\"", p);
        *nl = '\n';
        p = nl + 1;
        lines++;
    }
    return lines;
}

/* Runs coupond on data dir `dir`, logging to `log`, until it has logged LISTEN, then stops it
 * with SIGTERM and expects exit status 0. */
static void
run_briefly(const char *dir, const char *log, const char *out)
{
    const char *const args[] = {"-p", "0", "-d", dir, "--log", log, NULL};
    pid_t pid = bb_spawn(args, out);
    assert_true(pid > 0);
    char line[BB_LINE_MAX];
    bool up = bb_file_wait_line(log, "op=LISTEN", UP_TIMEOUT_MS, line, sizeof line);
    kill(pid, SIGTERM);
    int st = bb_reap(pid, BB_STOP_TIMEOUT_MS);
    if (!up || st != 0) {
        size_t len;
        fail_msg("coupond -d %.60s...: up %d, exit status %d; its output:\n%s", dir, up, st,
                 read_file(out, &len));
    }
}

/* Copies the START line of the log into line. */
static void
start_line(const char *log, char *line, size_t cap)
{
    if (!bb_file_wait_line(log, "op=START", 0, line, cap))
        fail_msg("no op=START line in %s", log);
}

static int
tmpdir_setup(void **state)
{
    char *dir = malloc(BB_PATH_MAX);
    if (dir == NULL || !bb_tmpdir_make(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int
tmpdir_teardown(void **state)
{
    bb_tmpdir_remove(*state);
    free(*state);
    return 0;
}

/* ---- tests ---- */

/* issue 15.2: the START line wrote data_dir unquoted. */
static void
test_start_line_quotes_data_dir(void **state)
{
    const char *tmp = *state;
    char dir[PATH_BUF], log[PATH_BUF], out[PATH_BUF];
    static char line[BB_LINE_MAX], val[VALUE_MAX];
    bb_fmt(dir, sizeof dir, "%s/coupon data=\"x\" \\ end", tmp);
    bb_fmt(log, sizeof log, "%s/ops.log", tmp);
    bb_fmt(out, sizeof out, "%s/stderr.log", tmp);
    run_briefly(dir, log, out);
    check_every_line(log);
    start_line(log, line, sizeof line);
    if (bb_logfmt_field(line, "data_dir", val, sizeof val) != 1 || strcmp(val, dir) != 0)
        fail_msg("START line does not carry data_dir \"%s\" quoted: %s", dir, line);
    assert_int_equal(bb_logfmt_field(line, "op", val, sizeof val), 1);
    assert_string_equal(val, "START");
    assert_int_equal(bb_logfmt_field(line, "cut", val, sizeof val), 0);
}

/* issue 15.3: a line cut at the limit ended in NUL before its newline. */
static void
test_long_line_cut_cleanly(void **state)
{
    const char *tmp = *state;
    char dir[PATH_BUF], log[PATH_BUF], out[PATH_BUF], name[DEEP_NAME_LEN + 1];
    static char line[BB_LINE_MAX], val[VALUE_MAX];
    memset(name, 'd', DEEP_NAME_LEN);
    name[DEEP_NAME_LEN] = '\0';
    bb_fmt(dir, sizeof dir, "%s", tmp);
    for (int i = 0; i < DEEP_LEVELS; i++)
        bb_fmt(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", name);
    bb_fmt(log, sizeof log, "%s/ops.log", tmp);
    bb_fmt(out, sizeof out, "%s/stderr.log", tmp);
    run_briefly(dir, log, out);
    check_every_line(log); /* no NUL, no line over the limit, all logfmt */
    start_line(log, line, sizeof line);
    size_t len = strlen(line);
    if (len + 1 > LOG_LINE_MAX || len < 6 || strcmp(line + len - 6, " cut=1") != 0)
        fail_msg("START line of %zu bytes does not end in \" cut=1\": ...%s", len + 1,
                 line + (len > 60 ? len - 60 : 0));
    assert_int_equal(bb_logfmt_field(line, "data_dir", val, sizeof val), 1);
    if (strlen(val) == 0 || strncmp(dir, val, strlen(val)) != 0 || strlen(val) >= strlen(dir))
        fail_msg("the cut data_dir is not a shorter prefix of the real one: %s", val);
    assert_int_equal(bb_logfmt_field(line, "cut", val, sizeof val), 1);
    /* The lines that fit are not marked. */
    assert_true(bb_file_wait_line(log, "op=STOP", 0, line, sizeof line));
    assert_int_equal(bb_logfmt_field(line, "cut", val, sizeof val), 0);
}

/* Sends PING_TOTAL PINGs in batches and reads every reply. */
static void
ping_flood(struct bb_client *c)
{
    static char batch[PING_BATCH * 5];
    for (size_t i = 0; i < PING_BATCH; i++)
        memcpy(batch + i * 5, "PING\n", 5);
    char line[BB_LINE_MAX];
    for (int sent = 0; sent < PING_TOTAL; sent += PING_BATCH) {
        bb_send(c, batch, sizeof batch);
        for (int i = 0; i < PING_BATCH; i++)
            if (bb_read_line(c, line, sizeof line) != BB_READ_LINE || strcmp(line, "OK PONG") != 0)
                fail_msg("PING %d: no OK PONG", sent + i);
    }
}

/* Reads the pipe until a whole line containing `needle` has come; copies it into line. */
static bool
drain_until(int fd, const char *needle, char *line, size_t cap)
{
    static char buf[4 * BB_LINE_MAX];
    size_t have = 0;
    int64_t deadline = bb_now_ms() + DRAIN_MS;
    while (bb_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, BB_POLL_MS * 10) <= 0)
            continue;
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return false;
        have += (size_t)n;
        buf[have] = '\0';
        char *nl, *start = buf;
        while ((nl = strchr(start, '\n')) != NULL) {
            *nl = '\0';
            if (strstr(start, needle) != NULL) {
                snprintf(line, cap, "%.*s", (int)(cap - 1), start);
                return true;
            }
            start = nl + 1;
        }
        have = (size_t)(buf + have - start);
        memmove(buf, start, have);
    }
    return false;
}

/* issue 15.4: op=LOG_DROPPED had no time= field. The log goes to a pipe the test does not read
 * until the server has queued more than it may, then the test reads it all. */
static void
test_dropped_line_has_time(void **state)
{
    const char *tmp = *state;
    char fifo[PATH_BUF];
    static char line[BB_LINE_MAX], val[VALUE_MAX];
    bb_fmt(fifo, sizeof fifo, "%s/log.fifo", tmp);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    assert_true(rd >= 0);
    const char *const args[] = {"--log", fifo, NULL}; /* the last --log wins */
    struct bb_server *s = bb_server_start(args);
    assert_non_null(s);
    struct bb_client *c = bb_connect(s);
    ping_flood(c);
    bb_close(c);
    bool found = drain_until(rd, "op=LOG_DROPPED", line, sizeof line);
    close(rd); /* the server's last lines fail with EPIPE, which it survives */
    bb_server_stop(s);
    bb_server_free(s);
    if (!found)
        fail_msg("no op=LOG_DROPPED line after %d PINGs with the log not read", PING_TOTAL);
    print_message("%s\n", line);
    if (strncmp(line, "time=", 5) != 0 || bb_logfmt_field(line, "time", val, sizeof val) != 1)
        fail_msg("the LOG_DROPPED line does not start with time=: %s", line);
    assert_int_equal(bb_logfmt_field(line, "lines", val, sizeof val), 1);
    assert_true(strtoull(val, NULL, 10) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_line_quotes_data_dir, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_long_line_cut_cleanly, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_dropped_line_has_time, tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
