/* bb.h - black-box test harness: runs the real coupond binary and talks raw TCP to it.
 * Tests are written from the man pages (coupond-protocol(7), coupond(8)), never from server/.
 *
 * Two stores. By default each server keeps its coupons in LMDB in its data dir. With
 * BB_STORE=postgresql in the environment (CTest's blackbox_pg/ and crash_pg/ tests, run inside
 * tests/pg/cluster.sh, which exports COUPOND_TEST_PG_URI), each server gets `--store URI` too:
 * a schema of its own in the throwaway cluster's database, made when the server is made and
 * named after its data dir (CREATE SCHEMA costs milliseconds where CREATE DATABASE costs a
 * tenth of a second or more, and the schemas share nothing but advisory locks). The data dir
 * still holds the keys, the lock and the logs. A test that cannot hold on PostgreSQL by nature
 * calls bb_lmdb_only() first. */
#ifndef COUPOND_BB_H
#define COUPOND_BB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Limits and timeouts of the harness. Timeouts are generous because the suite also runs
 * against an ASan + UBSan build of the server on a 2-core CI machine. */
#define BB_START_TIMEOUT_MS 10000 /* server start until a connect succeeds */
#define BB_STOP_TIMEOUT_MS  30000 /* SIGTERM to exit: 5 s grace, 2 s linger, TSan, busy */
#define BB_RUN_TIMEOUT_MS   5000  /* a one-shot run (-V, a bad flag) must exit within this */
#define BB_IO_TIMEOUT_MS    5000  /* SO_RCVTIMEO/SO_SNDTIMEO of a client: a hung server fails */
#define BB_POLL_MS          20    /* sleep between polls of a condition */
#define BB_LOG_WAIT_MS                                                                             \
    10000                              /* the log thread writes a line within this, even under a   \
                                          sanitizer on a loaded machine */
#define BB_START_ATTEMPTS 3            /* fresh ports tried when the server dies at start */
#define BB_KEY_HEX        64           /* admin.key: 32 random bytes in hex */
#define BB_PATH_MAX       512          /* data dir and file paths of the harness */
#define BB_MAX_ARGS       16           /* extra server arguments */
#define BB_LINE_MAX       8192         /* longest reply line a client accepts */
#define BB_REPLY_MAX      65536        /* buffer for one whole reply (HELP, STATS, 100 REJECTs) */
#define BB_RBUF           16384        /* per-client receive buffer */
#define BB_STDERR_TAIL    8192         /* bytes of the server's stderr.log printed on a failure */
#define BB_RUN_OUT_MAX    16384        /* captured stdout or stderr of a one-shot run */
#define BB_FAR_EXPIRY     "2099-12-31" /* an expiry no test run will reach */
#define BB_STORE_URI_MAX  1024 /* a --store URI: the cluster's (a socket path) and a schema */

/* A coupond process with its own temporary data dir. The fields are read-only for tests. */
struct bb_server {
    pid_t pid;                    /* the running server, or -1 */
    uint16_t port;                /* listen port on 127.0.0.1 */
    char dir[BB_PATH_MAX];        /* data dir; also holds ops.log and stderr.log */
    char key[BB_KEY_HEX + 1];     /* contents of DIR/admin.key without the newline */
    char *args[BB_MAX_ARGS + 1];  /* copies of the extra arguments, NULL-terminated */
    char store[BB_STORE_URI_MAX]; /* BB_STORE=postgresql: its --store URI; "" on LMDB */
    struct bb_client *clients;    /* open clients, closed by bb_server_free */
};

/* A blocking client connection with a line-reading buffer. */
struct bb_client {
    int fd;                        /* the socket */
    struct bb_server *srv;         /* the server it belongs to */
    struct bb_client *prev, *next; /* in srv->clients */
    size_t len;                    /* bytes buffered in buf */
    char buf[BB_RBUF];
};

/* Result of reading one line. */
enum bb_read {
    BB_READ_LINE = 0, /* a full line was read */
    BB_READ_CLOSED,   /* the peer closed the connection (EOF or reset) */
    BB_READ_TIMEOUT,  /* nothing within the client's timeout */
    BB_READ_ERROR     /* any other error, or a line longer than BB_LINE_MAX */
};

/* ---- Server ---- */

/* Starts `$COUPOND_BIN -p PORT -d DIR --log DIR/ops.log ARGS...` on a free port with a fresh
 * mkdtemp data dir (and `--store URI` with a fresh schema, BB_STORE=postgresql); `args` is a
 * NULL-terminated list of extra arguments (copied) or NULL. The server's stdout and stderr go to
 * DIR/stderr.log. Waits until a TCP connect succeeds (at most BB_START_TIMEOUT_MS) and reads
 * DIR/admin.key. Returns a server the caller frees with bb_server_free, or NULL after printing why
 * (and the server's stderr). */
struct bb_server *bb_server_start(const char *const *args);

/* BB_STORE=postgresql: starts another node of the store of `first` (its --store URI) with a
 * fresh data dir, as bb_server_start does otherwise; with share_keys, the dir gets copies of the
 * key files of first's (admin.key, task.key, audit.key) first, as nodes sharing a store must
 * have. NULL after printing why. */
struct bb_server *bb_server_start_peer(const struct bb_server *first, const char *const *args,
                                       bool share_keys);

/* Sends SIGTERM and waits (at most BB_STOP_TIMEOUT_MS) for the exit. Returns the exit status,
 * 128 + signal number when it died of a signal, or -1 when it had to be killed or was not
 * running. Prints the server's stderr when the status is not 0. */
int bb_server_stop(struct bb_server *s);

/* Sends `sig` to the server without waiting. */
void bb_server_signal(const struct bb_server *s, int sig);

/* Waits up to `ms` for the server to exit by itself (after bb_server_signal, say). Returns the
 * exit status as bb_server_stop does; on a timeout kills it and returns -1. */
int bb_server_wait(struct bb_server *s, int ms);

/* Kills the server with SIGKILL and reaps it. */
void bb_server_kill(struct bb_server *s);

/* Starts the server again on the same data dir, port and arguments (after a stop or kill), and
 * re-reads the key. Returns false after printing why. */
bool bb_server_restart(struct bb_server *s);

/* As bb_server_restart, but when the server exits during start-up (typically: another process
 * took its port while it was down, as an outgoing connection's local port), tries again on
 * fresh free ports, BB_START_ATTEMPTS tries in all; s->port then changes. A failure that is not
 * about the port (the store does not open) fails every try and is reported as before. */
bool bb_server_restart_any_port(struct bb_server *s);

/* Closes the clients still open on it (a failed test leaves some), kills the server if it still
 * runs, removes its data dir and frees it. NULL is a no-op. */
void bb_server_free(struct bb_server *s);

/* Prints the last BB_STDERR_TAIL bytes of DIR/stderr.log to stderr (nothing when it is empty). */
void bb_server_dump_stderr(const struct bb_server *s);

/* cmocka fixtures: *state is a struct bb_server * on success. bb_setup starts a server with the
 * extra args given as the test's initial state (a NULL-terminated const char *[] or NULL, see
 * cmocka_unit_test_prestate_setup_teardown). bb_teardown closes the clients a failed test left
 * open, stops the server and fails when its exit status is not 0 (a crash or a sanitizer
 * report). */
int bb_setup(void **state);
int bb_teardown(void **state);

/* ---- The store ---- */

/* True when the servers keep their coupons in PostgreSQL (BB_STORE=postgresql). */
bool bb_on_pg(void);

/* At the top of a test that cannot hold on PostgreSQL by nature (it is about LMDB's files or
 * map): on PostgreSQL, prints "skipped on PostgreSQL: <why>" and skips the test. Every call is
 * one entry of the short list of such tests; grep for it. */
void bb_lmdb_only(const char *why);

/* The other way round, for a test of PostgreSQL's own behaviour (an outage): on LMDB, prints
 * "skipped on LMDB: <why>" and skips the test. */
void bb_pg_only(const char *why);

/* PostgreSQL only: stops ("stop": at once, as a crash would) or starts ("start") the test
 * cluster, through tests/pg/cluster.sh; false on failure or on LMDB. */
bool bb_pg_cluster(const char *action);

/* BB_STORE=postgresql: the first column of the first row of `sql` run on the store of server s
 * (its schema), as text, into out; false on failure. */
bool bb_pg_value(const struct bb_server *s, const char *sql, char *out, size_t cap);

/* ---- One-shot runs ---- */

/* Runs `$COUPOND_BIN ARGS...` (argv[0] is "coupond") with stdin from /dev/null, capturing stdout
 * and stderr (NUL-terminated, truncated to their sizes). Returns the exit status, 128 + signal,
 * or -1 when it had not exited within BB_RUN_TIMEOUT_MS (it is then killed). */
int bb_run(const char *const *args, char *out, size_t out_size, char *err, size_t err_size);

/* Makes a fresh temporary directory into buf; false on failure. */
bool bb_tmpdir_make(char buf[BB_PATH_MAX]);

/* Removes a directory tree (nftw, depth first, no symlinks followed). */
void bb_tmpdir_remove(const char *dir);

/* ---- Clients ---- */

/* Connects to the server on 127.0.0.1 with BB_IO_TIMEOUT_MS socket timeouts. Fails the test
 * when the connect fails. The caller closes it with bb_close. */
#define bb_connect(s) bb_connect_at(__FILE__, __LINE__, (s))
struct bb_client *bb_connect_at(const char *file, int line, struct bb_server *s);

/* As bb_connect_at but returns NULL instead of failing the test; `rcvbuf` > 0 sets SO_RCVBUF
 * before the connect (to keep the kernel from buffering much for a client that never reads). */
struct bb_client *bb_connect_opt(struct bb_server *s, int rcvbuf);

/* Closes the connection and frees the client (also unlinking it from its server). NULL is a
 * no-op. */
void bb_close(struct bb_client *c);

/* Sets the client's receive and send timeouts. */
void bb_set_timeout(struct bb_client *c, int ms);

/* Sends all `len` bytes (MSG_NOSIGNAL). Fails the test on an error or a send timeout. */
#define bb_send(c, data, len) bb_send_at(__FILE__, __LINE__, (c), (data), (len))
void bb_send_at(const char *file, int line, struct bb_client *c, const void *data, size_t len);

/* Sends a NUL-terminated string. */
#define bb_send_str(c, str) bb_send_at(__FILE__, __LINE__, (c), (str), strlen(str))

/* Sends all bytes; returns 0, or the errno of the failure (EPIPE, ECONNRESET, EAGAIN ...). */
int bb_try_send(struct bb_client *c, const void *data, size_t len);

/* Reads one line into `line` (LF removed, nothing else stripped, NUL-terminated; `cap` must
 * exceed the longest line expected). */
enum bb_read bb_read_line(struct bb_client *c, char *line, size_t cap);

/* Reads one whole reply: lines until one starting with "OK" or "ERR". The lines are stored
 * joined by '\n' (no trailing newline) in reply[BB_REPLY_MAX]. Returns the number of lines, or
 * -1 when the connection closed, timed out or overflowed first (reply then holds what came). */
int bb_read_reply(struct bb_client *c, char *reply);

/* Reads one reply and returns its status line (a pointer into reply). Fails the test with the
 * partial reply printed when no whole reply arrives. */
#define bb_get_reply(c, reply) bb_get_reply_at(__FILE__, __LINE__, (c), (reply))
const char *bb_get_reply_at(const char *file, int line, struct bb_client *c, char *reply);

/* Sends `cmd` plus "\n", reads the reply into reply[BB_REPLY_MAX] and returns its status line.
 * Fails the test when no whole reply arrives. */
#define bb_cmd(c, cmd, reply) bb_cmd_at(__FILE__, __LINE__, (c), (cmd), (reply))
const char *bb_cmd_at(const char *file, int line, struct bb_client *c, const char *cmd,
                      char *reply);

/* Sends `cmd` and fails the test, printing the whole reply, unless the reply is exactly the one
 * line `want`. */
#define bb_expect(c, cmd, want) bb_expect_at(__FILE__, __LINE__, (c), (cmd), (want))
void bb_expect_at(const char *file, int line, struct bb_client *c, const char *cmd,
                  const char *want);

/* Sends `cmd` and fails the test, printing the whole reply, unless its status line starts with
 * `prefix` as bb_has_prefix tells. Returns the status line (a pointer into static storage,
 * valid until the next call). */
#define bb_expect_prefix(c, cmd, prefix)                                                           \
    bb_expect_prefix_at(__FILE__, __LINE__, (c), (cmd), (prefix))
const char *bb_expect_prefix_at(const char *file, int line, struct bb_client *c, const char *cmd,
                                const char *prefix);

/* Reads one reply (no send) and checks its status line as bb_expect_prefix does. */
#define bb_expect_reply_prefix(c, prefix)                                                          \
    bb_expect_reply_prefix_at(__FILE__, __LINE__, (c), (prefix))
const char *bb_expect_reply_prefix_at(const char *file, int line, struct bb_client *c,
                                      const char *prefix);

/* True when `line` starts with `prefix`. When `prefix` ends in a word character (letter, digit,
 * `_ - .`), the line must also end or have a space right after it, so that "ERR INVALID" does not
 * match "ERR INVALIDX" nor "OK code=A-1" match "OK code=A-12"; "OK task=" matches any task. */
bool bb_has_prefix(const char *line, const char *prefix);

/* Sends "AUTH <key>" and expects "OK". */
#define bb_auth(c) bb_auth_at(__FILE__, __LINE__, (c))
void bb_auth_at(const char *file, int line, struct bb_client *c);

/* Connects and AUTHs with the server's admin key (bb_connect, then bb_auth). */
#define bb_connect_admin(s) bb_connect_admin_at(__FILE__, __LINE__, (s))
struct bb_client *bb_connect_admin_at(const char *file, int line, struct bb_server *s);

/* The server a cmocka setup (bb_setup) left in *state. */
static inline struct bb_server *
bb_server_of(void **state)
{
    return *state;
}

/* Uploads `n` generated records "<prefix><i>,<type>,10,FLAT,<expires>,<max_uses>" for i in
 * 0..n-1 (the index zero-padded to 6 digits so codes sort like the upload order) in one write,
 * and expects "OK uploaded=n". `type` may be "" (untyped); `expires` NULL means BB_FAR_EXPIRY. */
#define bb_upload_gen(c, prefix, type, n, expires, max_uses)                                       \
    bb_upload_gen_at(__FILE__, __LINE__, (c), (prefix), (type), (n), (expires), (max_uses))
void bb_upload_gen_at(const char *file, int line, struct bb_client *c, const char *prefix,
                      const char *type, size_t n, const char *expires, unsigned max_uses);

/* Uploads the `n` given record lines in one write and expects "OK uploaded=n". */
#define bb_upload(c, records, n) bb_upload_at(__FILE__, __LINE__, (c), (records), (n))
void bb_upload_at(const char *file, int line, struct bb_client *c, const char *const *records,
                  size_t n);

/* Waits up to `ms` for the server to close the connection, discarding data that arrives.
 * True when it closed (recv returned 0 or the connection was reset). */
bool bb_wait_closed(struct bb_client *c, int ms);

/* True when no byte arrives within `ms` and the connection is still open. */
bool bb_quiet(struct bb_client *c, int ms);

/* ---- STATS ---- */

/* Finds "STAT name value" in a STATS reply; true and *value set when present and numeric. */
bool bb_stat_find(const char *reply, const char *name, uint64_t *value);

/* Finds "STAT name word" in a STATS reply (a text value: node, store); true with the word
 * copied into buf (cut to cap - 1 bytes) when present. */
bool bb_stat_text(const char *reply, const char *name, char *buf, size_t cap);

/* Sends STATS on an authenticated client and returns the value of `name`; fails the test when
 * the reply is not OK or lacks the name. */
#define bb_stat(c, name) bb_stat_at(__FILE__, __LINE__, (c), (name))
uint64_t bb_stat_at(const char *file, int line, struct bb_client *c, const char *name);

/* ---- The server process, seen from /proc ---- */

/* The value in kB of a field of /proc/PID/status ("VmRSS", "VmHWM", ...), or -1. */
long bb_proc_kb(const struct bb_server *s, const char *field);

/* CPU time (user + system, every thread) the server has used so far, in ms, or -1. */
long bb_proc_cpu_ms(const struct bb_server *s);

/* Number of lines of the file at `path` that contain `needle`; -1 when it cannot be read. */
int bb_file_count(const char *path, const char *needle);

/* ---- Misc ---- */

/* Raises the soft RLIMIT_NOFILE to at least `n` (up to the hard limit); true on success. */
bool bb_raise_nofile(unsigned long n);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t bb_now_ms(void);

/* Sleeps `ms` milliseconds. */
void bb_sleep_ms(int ms);

/* Formats Unix time `t` as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void bb_fmt_time(char *buf, size_t size, int64_t t);

/* snprintf that fails the test on truncation. */
#define bb_fmt(buf, size, ...) bb_fmt_at(__FILE__, __LINE__, (buf), (size), __VA_ARGS__)
void bb_fmt_at(const char *file, int line, char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Fails the test at file:line with a printf message, after printing the server's stderr tail
 * when `s` is not NULL. */
void bb_fail_at(const char *file, int line, const struct bb_server *s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* ---- Servers started by hand, and their operation log ---- */

/* Starts `$COUPOND_BIN ARGS...` (argv[0] is "coupond") in the background with stdin from
 * /dev/null and stdout and stderr appended to `out_path` (inherited when NULL); the
 * environment is the test's own. Returns the pid for bb_reap, or -1. Nothing is waited for:
 * the caller watches the log or a notify socket for it to be up. */
pid_t bb_spawn(const char *const *args, const char *out_path);

/* Waits up to `ms` for `pid` to exit and returns its status as bb_server_wait does; on a timeout
 * kills it and returns -1. */
int bb_reap(pid_t pid, int ms);

/* Waits up to `ms` for a line of the file at `path` that contains `needle` and copies the first
 * such line (without its LF, cut to cap - 1 bytes) into `line`. False on a timeout. */
bool bb_file_wait_line(const char *path, const char *needle, int ms, char *line, size_t cap);

/* Waits up to `ms` until at least `n` lines of the file at `path` contain `needle` (the
 * operation log is written by its own thread, a moment after the reply); returns the count last
 * seen, -1 when the file cannot be read. */
int bb_file_wait_count(const char *path, const char *needle, int n, int ms);

/* Checks that `line` (no LF) is well-formed logfmt as coupond(8) describes it: key=value fields
 * separated by one space, each value bare (no space, control character, `"`, `=` or `\`) or
 * double-quoted with `\"`, `\\` and `\xHH` escapes. Returns -1 when it is not; else 1 when the
 * line has the field `key`, with its value unescaped into val (cut to cap - 1 bytes), and 0
 * when it does not. */
int bb_logfmt_field(const char *line, const char *key, char *val, size_t cap);

#endif
