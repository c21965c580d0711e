/* fuzz_session.c - libFuzzer harness for a whole coupond session: the input is what one client
 * sends on one connection, served by the real server (libev loop, group commit, purge engine,
 * MEGADEAL queue, store in a temporary directory, log to /dev/null) over a socketpair.
 *
 * Input conventions (tests/fuzz/README.md):
 *   - byte 0x1F splits the input into chunks; each is written once the server has gone quiet
 *     after the previous one, so lines and uploads are split across reads;
 *   - "@KEY@" becomes the admin key, so admin commands are reached; "@TASK@" becomes the last
 *     MEGADEAL task id the server sent (kept as is while there is none);
 *   - "@NOREAD@" is dropped, and from its chunk on the client stops reading replies, until the
 *     end of the input: the server's output backs up, up to its cap.
 * Then the client shuts down its sending side; the server answers what it got and closes. The
 * server's end of the socketpair has a small send buffer, as over a slow network, so its writes
 * come back short and the output buffer is used.
 *
 * Checked: every reply line is printable ASCII, at most PROTO_MAX_LINE bytes, and is a status
 * line (OK, ERR with a known code) or a data line (INFO, STAT, REJECT, and the long replies'
 * COUPON, CODE, REDEMPTION); coupon, task and STAT lines parse with protocol/'s client parsers;
 * nothing follows OK BYE; and store_check() finds the store consistent at the end of its life.
 * Requests in the Redis wire form (RESP, an input's `*...`) are answered in RESP: each such
 * reply must be one well-formed RESP2 or RESP3 value (simple strings printable, errors `-CODE
 * message` with a known code, integers signed digits, bulk strings of their length, aggregates of
 * their count, as deep as a reply goes), and nothing follows +BYE. A violation aborts.
 *
 * By default every input gets a fresh server on an empty store (a restart costs under 1 ms):
 * the outcome depends on the input alone, so a crash replays from its file and minimizes, and a
 * seed's flow is not spoilt by codes an earlier input stored. COUPOND_FUZZ_INPUTS_PER_STORE=N
 * shares one server and store among N inputs, as in production, which reaches what needs
 * accumulated state or time (a full map, the purge timer, MEGADEAL timeouts); a crash may then
 * depend on earlier inputs. COUPOND_FUZZ_ECHO=1 copies the replies to stderr. */
#include <errno.h>
#include <limits.h>
#include <linux/sockios.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "mega.h"
#include "opts.h"
#include "proto.h"
#include "server.h"
#include "stat.h"
#include "store.h"
#include "task.h"

/* The smallest map (some 4000 coupons): a store shared by many inputs fills up, and the
 * map-full paths (ERR INTERNAL, nothing stored) are reached; one input cannot fill it. */
#define FUZZ_MAP_SIZE         STORE_MAP_SIZE_MIN
#define FUZZ_INPUTS_PER_STORE 1 /* default: a fresh server and store for every input */
#define FUZZ_STORE_ENV        "COUPOND_FUZZ_INPUTS_PER_STORE"
#define FUZZ_ECHO_ENV         "COUPOND_FUZZ_ECHO" /* set: the replies are copied to stderr */
#define FUZZ_PURGE_INTERVAL   1    /* seconds: the purge timer fires during a fuzzing run */
#define FUZZ_MEGADEAL_WAIT    1    /* seconds: queued tasks time out within a run */
#define FUZZ_CHUNK_SEP        0x1f /* splits the input into separately written chunks */
#define FUZZ_KEY_TOKEN        "@KEY@"
#define FUZZ_TASK_TOKEN       "@TASK@"
#define FUZZ_NOREAD_TOKEN     "@NOREAD@"
#define FUZZ_SERVER_SNDBUF    4096           /* bytes; the kernel doubles it, and keeps a minimum */
#define FUZZ_TOKEN_MAX        PROTO_TASK_MAX /* longest replacement of a token */
#define FUZZ_QUIET_STEPS      4              /* idle loop iterations that end a chunk's turn */
#define FUZZ_END_QUIET_STEPS  32    /* the same after the last chunk: timers get a chance */
#define FUZZ_MAX_STEPS        20000 /* loop iterations per input, whatever happens */
#define FUZZ_DRAIN_BUF        65536 /* bytes of replies read per recv */
#define FUZZ_ERR_MAX          (PATH_MAX + 256)
#define FUZZ_PEER             "fuzz"
#define FUZZ_LOG_PATH         "/dev/null"
#define FUZZ_SHM_DIR          "/dev/shm" /* tmpfs: fsync is free, so commits are fast */
#define FUZZ_DIR_TEMPLATE     "coupond-fuzz-XXXXXX"
#define FUZZ_STORE_SUBDIR     "store"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed admin key, so that a crash input replays the same way in another process. */
static const unsigned char fuzz_admin_key[KEYS_BYTES] = {
    0x3f, 0x9c, 0x01, 0x7a, 0x52, 0xe1, 0x0b, 0x44, 0x9d, 0x27, 0xc3, 0x68, 0x15, 0xf0, 0x8e, 0x31,
    0x76, 0xaa, 0x2c, 0x5b, 0xd4, 0x09, 0x63, 0xbe, 0x40, 0x1f, 0x97, 0xe5, 0x28, 0x7c, 0xd1, 0x5e};

/* Signals libFuzzer handles (statistics, then exit) and server_init also takes. */
static const int fuzz_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define FUZZ_NSIGNALS (sizeof fuzz_signals / sizeof fuzz_signals[0])

struct fuzz_ctx {
    bool ready;
    char dir[PATH_MAX];       /* the data dir: task.key */
    char store_dir[PATH_MAX]; /* dir/store: the LMDB files */
    char key_hex[KEYS_HEX_CHARS + 1];
    char last_task[PROTO_TASK_MAX + 1]; /* "" until the server has sent a task id */
    struct opts opts;
    struct log *log;
    struct store *store;
    struct ev_loop *loop;
    struct server *srv;
    unsigned long inputs;
    unsigned long inputs_per_store;
    bool echo; /* copy replies to stderr */
};

/* libFuzzer's entry points take no context argument, so this one static context, set up once
 * by LLVMFuzzerInitialize, carries the harness's state from input to input. */
static struct fuzz_ctx fuzz;

/* Aggregates a RESP reply nests at most: a long reply's array, a line's map or array, and
 * HELLO's modules or COMMAND's flags in it. Deeper is a violation. */
#define FUZZ_RESP_DEPTH 4

/* Where the client is in a RESP reply (the server's RESP replies begin with a type byte no line
 * reply begins with). */
struct resp_reader {
    bool active;                        /* inside a RESP value */
    bool in_bulk;                       /* reading a bulk string's payload and CR LF */
    uint64_t bulk_left;                 /* its bytes still to come, the CR LF included */
    size_t depth;                       /* open aggregates */
    uint64_t left[FUZZ_RESP_DEPTH + 1]; /* values each still waits for */
};

/* One input's connection, seen from the client's end. */
struct session {
    struct fuzz_ctx *fx;
    int fd;                        /* the client's end of the socketpair */
    int unread;                    /* client bytes the server had not read at the last step */
    unsigned steps;                /* loop iterations so far */
    char line[PROTO_MAX_LINE + 1]; /* the reply line being received */
    size_t line_len;
    bool bye;                   /* OK BYE (or +BYE) seen: nothing may follow */
    struct resp_reader resp;    /* a RESP reply being read */
    bool deaf;                  /* @NOREAD@ seen: replies are left unread */
    char drain[FUZZ_DRAIN_BUF]; /* scratch for recv */
};

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_session: %s\n", what);
    abort();
}

/* A reply broke the protocol: report it with the offending line, and abort. */
static void
violation(const struct session *s, const char *what)
{
    fprintf(stderr, "fuzz_session: protocol violated: %s\n  reply line: \"%.*s\"\n", what,
            (int)s->line_len, s->line);
    abort();
}

/* ---- server life cycle ---- */

static void
start_server(struct fuzz_ctx *fx)
{
    char err[FUZZ_ERR_MAX];
    struct sigaction saved[FUZZ_NSIGNALS];
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    if (!fx->loop)
        die("cannot make an event loop");
    struct store_config cfg = {
        .loop = fx->loop, .mode = STORE_OPEN_CREATE, .map_size = FUZZ_MAP_SIZE};
    if (store_open(fx->store_dir, &cfg, &fx->store, err, sizeof err) != STORE_OK)
        die(err);
    for (size_t i = 0; i < FUZZ_NSIGNALS; i++)
        sigaction(fuzz_signals[i], NULL, &saved[i]);
    fx->srv = server_new(fx->loop, &fx->opts, fx->store, fx->log, fuzz_admin_key, err, sizeof err);
    if (!fx->srv)
        die(err);
    /* libFuzzer owns SIGINT and SIGTERM (it prints its statistics, then exits): take them back
     * from the server, whose watchers would start a graceful shutdown instead. */
    for (size_t i = 0; i < FUZZ_NSIGNALS; i++)
        sigaction(fuzz_signals[i], &saved[i], NULL);
}

/* server_free leaves the server's own watchers in the loop (coupond exits right after it), so
 * they are stopped here before the loop goes. */
static void
stop_server(struct fuzz_ctx *fx)
{
    struct sigaction saved[FUZZ_NSIGNALS];
    for (size_t i = 0; i < FUZZ_NSIGNALS; i++)
        sigaction(fuzz_signals[i], NULL, &saved[i]);
    while (!server_idle(fx->srv)) /* commits in flight complete first */
        ev_run(fx->loop, EVRUN_ONCE);
    store_close(fx->store);
    fx->store = NULL;
    server_free(fx->srv); /* stopping its signal watchers resets the handlers: put them back */
    fx->srv = NULL;
    for (size_t i = 0; i < FUZZ_NSIGNALS; i++)
        sigaction(fuzz_signals[i], &saved[i], NULL);
    ev_loop_destroy(fx->loop);
    fx->loop = NULL;
}

static void
remove_in(const char *dir, const char *name)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void
wipe_store(struct fuzz_ctx *fx)
{
    remove_in(fx->store_dir, "data.mdb");
    remove_in(fx->store_dir, "lock.mdb");
}

/* The deep invariant: indexes, counters and history agree with the records. */
static void
check_done(struct store_op *op)
{
    *(bool *)op->arg = true;
}

static void
check_store(struct fuzz_ctx *fx)
{
    static struct store_op op;
    bool done = false;
    while (!server_idle(fx->srv)) /* the last commits complete first */
        ev_run(fx->loop, EVRUN_ONCE);
    op = (struct store_op){
        .kind = STORE_OP_CHECK, .now = (int64_t)ev_now(fx->loop), .done = check_done, .arg = &done};
    store_read(fx->store, &op);
    while (!done)
        ev_run(fx->loop, EVRUN_ONCE);
    if (op.err == STORE_CORRUPT) {
        fprintf(stderr, "fuzz_session: store_check after input %lu: %s\n", fx->inputs, op.out.msg);
        abort();
    }
    if (op.err != STORE_OK)
        fprintf(stderr, "fuzz_session: store_check could not run: %s: %s\n", store_strerror(op.err),
                op.out.msg);
}

static void
cleanup(void)
{
    struct fuzz_ctx *fx = &fuzz;
    if (!fx->ready)
        return;
    fx->ready = false;
    stop_server(fx);
    log_close(fx->log);
    wipe_store(fx);
    rmdir(fx->store_dir);
    remove_in(fx->dir, TASK_KEY_FILE);
    rmdir(fx->dir);
}

/* A tmpfs when there is one (commits fsync), else $TMPDIR, else /tmp. */
static const char *
temp_base(void)
{
    if (access(FUZZ_SHM_DIR, W_OK | X_OK) == 0)
        return FUZZ_SHM_DIR;
    const char *t = getenv("TMPDIR");
    return t && t[0] ? t : "/tmp";
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct fuzz_ctx *fx = &fuzz;
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0)
        die("cannot initialise libsodium");
    snprintf(fx->dir, sizeof fx->dir, "%s/%s", temp_base(), FUZZ_DIR_TEMPLATE);
    if (!mkdtemp(fx->dir))
        die("cannot make a temporary directory");
    snprintf(fx->store_dir, sizeof fx->store_dir, "%s/%s", fx->dir, FUZZ_STORE_SUBDIR);
    if (mkdir(fx->store_dir, 0700) != 0)
        die("cannot make the store directory");
    sodium_bin2hex(fx->key_hex, sizeof fx->key_hex, fuzz_admin_key, KEYS_BYTES);

    const char *per_store = getenv(FUZZ_STORE_ENV);
    fx->inputs_per_store = per_store ? strtoul(per_store, NULL, 10) : FUZZ_INPUTS_PER_STORE;
    if (fx->inputs_per_store == 0)
        fx->inputs_per_store = FUZZ_INPUTS_PER_STORE;
    fx->echo = getenv(FUZZ_ECHO_ENV) != NULL;

    opts_defaults(&fx->opts);
    fx->opts.listen = OPTS_LISTEN_DEFAULT;
    fx->opts.port = 0; /* server_init's listener: any free port; nobody connects to it */
    fx->opts.data_dir = fx->dir;
    fx->opts.log_path = FUZZ_LOG_PATH;
    fx->opts.map_size = FUZZ_MAP_SIZE;
    fx->opts.purge_interval = FUZZ_PURGE_INTERVAL;
    fx->opts.megadeal_rate = MEGA_RATE_MAX; /* grants come at once, not a second later */
    fx->opts.megadeal_wait = FUZZ_MEGADEAL_WAIT;
    /* a wrong AUTH is answered at the next iteration, not a second later */
    fx->opts.auth_delay = 0;
    fx->opts.backup_root = fx->dir; /* a fuzzed BACKUP writes nowhere but the scratch dir */

    char err[FUZZ_ERR_MAX];
    fx->log = log_open(FUZZ_LOG_PATH, err, sizeof err);
    if (!fx->log)
        die(err);
    start_server(fx);
    fx->ready = true;
    atexit(cleanup);
    return 0;
}

/* ---- replies ---- */

/* True when the line starts with `word` (which includes its trailing space, if any). */
static bool
starts_with(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(line, word, n) == 0;
}

static void
check_ok_line(struct session *s)
{
    const char *l = s->line, *val;
    size_t n = s->line_len, val_len;
    if (n == strlen("OK BYE") && starts_with(l, n, "OK BYE"))
        s->bye = true;
    if (proto_reply_field(l, n, "code", &val, &val_len)) {
        struct proto_coupon c;
        if (!proto_reply_coupon(l, n, &c))
            violation(s, "an OK line with a coupon that proto_reply_coupon refuses");
    }
    if (!proto_reply_field(l, n, "task", &val, &val_len))
        return;
    char task[PROTO_TASK_MAX + 1];
    if (val_len != TASK_ID_CHARS || !proto_parse_task(val, val_len, task, NULL))
        violation(s, "a task id that is not a task id");
    memcpy(s->fx->last_task, task, sizeof task);
    if (!proto_reply_field(l, n, "status", &val, &val_len))
        violation(s, "a task line without a status");
    if (val_len == strlen("queued") && starts_with(val, val_len, "queued")) {
        uint64_t pos;
        const char *name;
        size_t name_len;
        char stat[PROTO_MAX_LINE + 16];
        if (!proto_reply_field(l, n, "position", &val, &val_len))
            violation(s, "a queued task without a position");
        /* proto_reply_stat reads a number; borrow it for the position. */
        int m = snprintf(stat, sizeof stat, "STAT position %.*s", (int)val_len, val);
        if (!proto_reply_stat(stat, (size_t)m, &name, &name_len, &pos) || pos == 0)
            violation(s, "a queued task's position is not a positive number");
    } else if (!(val_len == strlen("granted") && starts_with(val, val_len, "granted"))) {
        violation(s, "a task status that is neither queued nor granted");
    } else if (!proto_reply_field(l, n, "code", &val, &val_len)) {
        violation(s, "a granted task without its coupon");
    }
}

static void
check_err_line(struct session *s)
{
    const char *l = s->line;
    size_t n = s->line_len;
    enum proto_err e = proto_reply_err(l, n);
    const char *name = proto_err_name(e);
    size_t head = strlen("ERR "), at = head + strlen(name);
    /* proto_reply_err says INTERNAL for a code it does not know: it must really be INTERNAL. */
    if (n <= head || e == PROTO_OK || !starts_with(l + head, n - head, name))
        violation(s, "an ERR line without a known error code");
    if (n <= at + 1 || l[at] != ' ')
        violation(s, "an ERR line without a message");
}

static void
check_data_line(struct session *s)
{
    const char *l = s->line;
    size_t n = s->line_len;
    if (starts_with(l, n, "INFO "))
        return;
    if (starts_with(l, n, "STAT ")) {
        struct proto_stats known; /* a number, or a word for a text stat (node, store) */
        memset(&known, 0, sizeof known);
        if (!proto_stat_parse_line(l, n, &known))
            violation(s, "a STAT line that proto_stat_parse_line refuses");
        return;
    }
    /* The long replies' rows: COUPON and REDEMPTION lines of fields, CODE lines of a code. */
    if (starts_with(l, n, "COUPON ") || starts_with(l, n, "REDEMPTION ") ||
        starts_with(l, n, "CODE "))
        return;
    if (!starts_with(l, n, "REJECT "))
        violation(s, "a data line that is not INFO, STAT, REJECT or a long reply's row");
    size_t i = strlen("REJECT ");
    size_t digits = i;
    while (i < n && l[i] >= '0' && l[i] <= '9')
        i++;
    if (i == digits || l[digits] == '0' || i + 1 >= n || l[i] != ' ')
        violation(s, "a REJECT line without a line number and a reason");
}

static void
check_reply_line(struct session *s)
{
    if (s->bye)
        violation(s, "a reply after OK BYE");
    switch (proto_reply_kind(s->line, s->line_len)) {
    case PROTO_REPLY_OK:
        check_ok_line(s);
        break;
    case PROTO_REPLY_ERR:
        check_err_line(s);
        break;
    case PROTO_REPLY_DATA:
        check_data_line(s);
        break;
    }
}

/* ---- RESP replies ---- */

static bool
is_resp_type(unsigned char b)
{
    return b == '+' || b == '-' || b == ':' || b == '$' || b == '*' || b == '%' || b == '_';
}

/* A value ended: the aggregates it completes end too; the reply ends with the outermost. */
static void
resp_value_done(struct session *s)
{
    struct resp_reader *r = &s->resp;

    while (r->depth > 0) {
        if (--r->left[r->depth] > 0)
            return;
        r->depth--;
    }
    r->active = false;
}

/* A RESP integer as the wire writes one: an optional '-', then digits without a leading zero
 * ("-0" is not one). Integers may be negative (COMMAND gives a variable arity as -N, as Redis
 * does); a count or length is checked for its own range (-1 or more) by the caller. */
static bool
resp_number(const char *p, size_t n, int64_t *out)
{
    bool neg = n > 0 && p[0] == '-';
    uint64_t v = 0;

    if (neg) {
        p++;
        n--;
    }
    if (n == 0 || n > 18 || (n > 1 && p[0] == '0') || (neg && p[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* One RESP header line (its CR LF removed) in s->line. */
static void
check_resp_header(struct session *s)
{
    struct resp_reader *r = &s->resp;
    const char *l = s->line + 1;
    size_t n = s->line_len - 1;
    int64_t v;

    switch (s->line[0]) {
    case '+':
        if (r->depth == 0 && n == 3 && memcmp(l, "BYE", 3) == 0)
            s->bye = true;
        break;
    case '-': { /* -CODE message: ERR's code and message rules */
        char err[PROTO_MAX_LINE + 8];
        int m = snprintf(err, sizeof err, "ERR %.*s", (int)n, l);
        memcpy(s->line, err, (size_t)m < sizeof s->line ? (size_t)m : sizeof s->line - 1);
        s->line_len = (size_t)m < sizeof s->line ? (size_t)m : sizeof s->line - 1;
        check_err_line(s);
        break;
    }
    case ':':
        if (!resp_number(l, n, &v))
            violation(s, "a RESP integer that is not a number");
        break;
    case '_':
        if (n != 0)
            violation(s, "a RESP3 null with a payload");
        break;
    case '$':
        if (!resp_number(l, n, &v) || v < -1)
            violation(s, "a RESP bulk string's length that is not a number");
        if (v >= 0) {
            r->in_bulk = true;
            r->bulk_left = (uint64_t)v + 2;
            return;
        }
        break;
    default: /* '*' or '%' */
        if (!resp_number(l, n, &v) || v < 0)
            violation(s, "a RESP aggregate's count that is not a count");
        if (v > 0) {
            if (r->depth == FUZZ_RESP_DEPTH)
                violation(s, "RESP aggregates nested deeper than any reply");
            r->left[++r->depth] = (uint64_t)v * (s->line[0] == '%' ? 2 : 1);
            return;
        }
    }
    resp_value_done(s);
}

/* One byte of a RESP reply. */
static void
feed_resp(struct session *s, unsigned char b)
{
    struct resp_reader *r = &s->resp;

    if (r->in_bulk) { /* any byte, then CR LF */
        r->bulk_left--;
        if ((r->bulk_left == 1 && b != '\r') || (r->bulk_left == 0 && b != '\n'))
            violation(s, "a RESP bulk string not followed by CR LF");
        if (r->bulk_left == 0) {
            r->in_bulk = false;
            resp_value_done(s);
        }
        return;
    }
    if (s->line_len == 0 && !is_resp_type(b))
        violation(s, "a RESP value of no type a reply has");
    if (b == '\n') {
        if (s->line_len < 2 || s->line[s->line_len - 1] != '\r')
            violation(s, "a RESP header not ended by CR LF");
        s->line_len--;
        check_resp_header(s);
        s->line_len = 0;
        return;
    }
    if (b != '\r' && (b < 0x20 || b > 0x7e))
        violation(s, "a RESP header byte that is not printable ASCII");
    /* An error may be long (a refused upload's REJECT lines are in it): its start is checked. */
    if (s->line_len == PROTO_MAX_LINE && s->line[0] != '-')
        violation(s, "a RESP header longer than PROTO_MAX_LINE");
    if (s->line_len < PROTO_MAX_LINE)
        s->line[s->line_len++] = (char)b;
    else if (b == '\r') /* a long error's end: its CR where the check looks for it */
        s->line[PROTO_MAX_LINE - 1] = '\r';
}

static void
feed_replies(struct session *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)buf[i];
        if (!s->resp.active && s->line_len == 0 && is_resp_type(b)) {
            if (s->bye)
                violation(s, "a reply after +BYE");
            s->resp.active = true;
        }
        if (s->resp.active) {
            feed_resp(s, b);
            continue;
        }
        if (b == '\n') {
            check_reply_line(s);
            s->line_len = 0;
            continue;
        }
        if (b < 0x20 || b > 0x7e)
            violation(s, "a reply byte that is not printable ASCII");
        if (s->line_len == PROTO_MAX_LINE)
            violation(s, "a reply line longer than PROTO_MAX_LINE");
        s->line[s->line_len++] = (char)b;
    }
}

/* Reads and checks every reply byte waiting; returns how many there were. */
static size_t
drain_replies(struct session *s)
{
    size_t total = 0;
    for (;;) {
        ssize_t n = recv(s->fd, s->drain, sizeof s->drain, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return total;
        if (s->fx->echo)
            fwrite(s->drain, 1, (size_t)n, stderr);
        feed_replies(s, s->drain, (size_t)n);
        total += (size_t)n;
    }
}

/* ---- driving the loop ---- */

static bool
conn_alive(const struct session *s)
{
    return server_clients(s->fx->srv) > 0;
}

/* Client bytes still in the socket, not yet read by the server. */
static int
unread_bytes(const struct session *s)
{
    int n = 0;
    if (ioctl(s->fd, SIOCOUTQ, &n) != 0)
        return 0;
    return n;
}

/* One loop iteration; true when it made progress: replies came, the server read input, or it
 * ran a command. While a commit is in flight the iteration waits for it (the store's writer
 * thread answers through the loop), so a write's reply is never mistaken for silence. */
static bool
step(struct session *s)
{
    uint64_t commands = server_commands(s->fx->srv);
    bool busy = !server_idle(s->fx->srv);
    s->steps++;
    ev_run(s->fx->loop, busy ? EVRUN_ONCE : EVRUN_NOWAIT);
    size_t got = s->deaf ? 0 : drain_replies(s);
    int unread = unread_bytes(s);
    bool read = unread < s->unread;
    s->unread = unread;
    return got > 0 || read || busy || commands != server_commands(s->fx->srv);
}

/* Runs the loop until the connection is gone or `quiet` iterations in a row did nothing. */
static void
settle(struct session *s, unsigned quiet)
{
    unsigned idle = 0;
    while (conn_alive(s) && idle < quiet && s->steps < FUZZ_MAX_STEPS) {
        if (step(s))
            idle = 0;
        else
            idle++;
    }
}

/* Writes all of buf, letting the server read while the socket is full. False when the
 * connection is gone or the server stopped reading (it waits on a WAIT, say). */
static bool
write_chunk(struct session *s, const char *buf, size_t len)
{
    size_t off = 0;
    unsigned idle = 0;
    while (off < len) {
        if (!conn_alive(s) || s->steps >= FUZZ_MAX_STEPS)
            return false;
        ssize_t n = send(s->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            s->unread = unread_bytes(s);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return false;
        if (step(s))
            idle = 0;
        else if (++idle >= FUZZ_QUIET_STEPS)
            return false;
    }
    return true;
}

/* The chunk with its tokens replaced; the caller frees it. Sets *deaf at "@NOREAD@". */
static char *
expand_tokens(const struct fuzz_ctx *fx, const char *p, size_t len, size_t *out_len, bool *deaf)
{
    size_t ats = 0;
    for (size_t i = 0; i < len; i++)
        ats += p[i] == '@';
    char *out = malloc(len + ats * FUZZ_TOKEN_MAX + 1); /* a token starts with '@' */
    if (!out)
        die("out of memory");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const char *rep = NULL;
        size_t skip = 0;
        if (starts_with(p + i, len - i, FUZZ_KEY_TOKEN)) {
            rep = fx->key_hex;
            skip = strlen(FUZZ_KEY_TOKEN);
        } else if (fx->last_task[0] && starts_with(p + i, len - i, FUZZ_TASK_TOKEN)) {
            rep = fx->last_task;
            skip = strlen(FUZZ_TASK_TOKEN);
        } else if (starts_with(p + i, len - i, FUZZ_NOREAD_TOKEN)) {
            rep = "";
            skip = strlen(FUZZ_NOREAD_TOKEN);
            *deaf = true;
        }
        if (!rep) {
            out[o++] = p[i++];
            continue;
        }
        memcpy(out + o, rep, strlen(rep));
        o += strlen(rep);
        i += skip;
    }
    *out_len = o;
    return out;
}

static void
run_session(struct fuzz_ctx *fx, const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair failed");
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        die("out of memory");
    s->fx = fx;
    s->fd = sv[1];
    int sndbuf = FUZZ_SERVER_SNDBUF;
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0)
        die("cannot set SO_SNDBUF");
    if (!server_adopt(fx->srv, sv[0], FUZZ_PEER)) {
        close(sv[1]);
        free(s);
        return;
    }
    const char *p = (const char *)data, *end = p + size;
    for (;;) {
        const char *sep = memchr(p, FUZZ_CHUNK_SEP, (size_t)(end - p));
        size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p), xlen;
        char *chunk = expand_tokens(fx, p, len, &xlen, &s->deaf);
        bool written = write_chunk(s, chunk, xlen);
        free(chunk);
        if (!written)
            break;
        settle(s, FUZZ_QUIET_STEPS);
        if (!sep)
            break;
        p = sep + 1;
    }
    shutdown(s->fd, SHUT_WR);
    settle(s, FUZZ_END_QUIET_STEPS);
    if (s->deaf) { /* the client reads at last: what the server still holds comes out */
        s->deaf = false;
        settle(s, FUZZ_END_QUIET_STEPS);
    }
    if (conn_alive(s)) /* still held by a WAIT, or out of steps: cut off, as a client may */
        server_close_clients(fx->srv);
    step(s); /* the iteration's end commits and frees the closed connection */
    close(s->fd);
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_ctx *fx = &fuzz;
    run_session(fx, data, size);
    if (++fx->inputs % fx->inputs_per_store != 0)
        return 0;
    /* The end of this store's life: check it, then a fresh server on an empty store. */
    check_store(fx);
    stop_server(fx);
    wipe_store(fx);
    fx->last_task[0] = '\0';
    start_server(fx);
    return 0;
}
