/* main.c - coupond-bench: drives coupond over N connections with pipeline depth P, reports
 * throughput and latency percentiles from a histogram, and checks the server's counters. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "connrate.h"
#include "engine.h"
#include "hist.h"
#include "procstat.h"
#include "proto.h"
#include "workload.h"

#define DEFAULT_HOST  "127.0.0.1"
#define DEFAULT_PORT  "7070"
#define DEFAULT_CONNS 10
#define DEFAULT_FLOWS 100000 /* flows when neither -n nor -t is given */
/* Coupons loaded for a timed REQUEST or checkout run without -n: the run stops when they are
 * used up, even before -t. */
#define DEFAULT_TIMED_CAP 200000
/* A burst the MEGADEAL rules can serve in full: 10 grants a second, a 10 s timeout and at most
 * 100 queued tasks let about 100 through; 50 leaves room for a slow start. */
#define DEFAULT_MEGADEAL_FLOWS 50
#define DEFAULT_COUPONS        10000 /* VALIDATE/REDEEM: distinct assigned coupons cycled through */
#define DEFAULT_IDLE_S         10.0  /* idle: how long the connections stay open */
#define DEFAULT_CONNECT_S      5.0   /* connect: how long to make connections without -n or -t */
/* Bulk loads use two connections: one sends its next batch while the server stores the
 * other's. */
#define PRELOAD_CONNS    2
#define ASSIGN_CONNS_MAX 100 /* connections that assign the VALIDATE/REDEEM coupons */
#define ASSIGN_PIPELINE  16
/* Expiry of this run's workload coupons: 2090-01-01 minus the seconds since RUN_EPOCH, so a
 * later run's coupons expire earlier than an earlier run's leftovers and REQUEST picks them
 * first. Filler expires later than any of them, so it never changes what REQUEST picks. */
#define WORK_EXPIRY_BASE 3786912000LL /* 2090-01-01T00:00:00Z */
#define RUN_EPOCH        1700000000LL
#define FILLER_EXPIRY    4102444799LL /* 2099-12-31T23:59:59Z */
/* Pool coupons (--pool) expire after every run's own coupons, which that run's REQUESTs must
 * get first, and before filler. */
#define POOL_EXPIRY  (FILLER_EXPIRY - 1)
#define FD_SPARE     64 /* descriptors beyond the connections: admin, stdio */
#define RUN_ID_CHARS 6
#define NS_PER_US    1000.0
#define KB_PER_MB    1024.0
/* idle: how long to wait for the server to accept every connection (100 x 100 ms). */
#define IDLE_ACCEPT_POLLS   100
#define IDLE_ACCEPT_POLL_NS 100000000L
/* --pool NAME: at most 7 characters, so that "NAME-" is never how a run's own codes (a 7
 * character run id, then W-, F- or U-) begin. */
#define POOL_NAME_MAX 7
/* --wait-start: how long to wait for SIGUSR1 before giving up on the run. */
#define WAIT_START_MAX_S 900

enum exit_code { EXIT_OK = 0, EXIT_VERIFY_FAIL = 1, EXIT_SETUP = 2, EXIT_ERRORS = 3 };

struct options {
    const char *host;
    const char *port;
    const char *keyfile;
    unsigned conns;
    unsigned pipeline;
    bool idle;
    bool connect;       /* -w connect: connections/s (connrate.h) */
    const char *tls_ca; /* --tls CAFILE: TLS to a --tls-port, verified against CAFILE */
    enum workload_kind kind;
    uint64_t flows; /* -n; for upload: records */
    bool flows_set;
    double seconds; /* -t */
    uint64_t preload;
    uint64_t coupons;
    unsigned batch;
    pid_t server_pid; /* --server-pid: 0 when not given */
    const char *pool; /* --pool NAME: NULL when not given */
    bool wait_start;  /* --wait-start */
    bool ids;         /* --ids */
    bool alongside_set;
    enum workload_kind alongside; /* --alongside WORKLOAD */
};

struct bench {
    struct options o;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char key[PROTO_KEY_MAX + 1];
    char run_id[RUN_ID_CHARS + 2];
    struct admin admin;
    bool have_admin;
    struct bconn_tls *tls; /* --tls; NULL: plain TCP */
    struct workload_ctx wctx;
    struct engine_result res; /* the measured run */
    struct engine_result aux; /* preload and assign phases */
    struct procstat srv0;     /* the server at the start and end of the measured run */
    struct procstat srv1;
    bool have_srv;   /* both samples were read */
    bool peak_reset; /* VmHWM was reset at the start: srv1.hwm_kb is the run's own peak */
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: coupond-bench [-h host] [-p port] [-k keyfile] [-c conns] [-P pipeline]\n"
            "                     [-w workload] [-n ops] [-t seconds] [--preload N]\n"
            "                     [--coupons K] [--batch B] [--server-pid PID]\n"
            "                     [--pool NAME] [--wait-start] [--alongside WORKLOAD] [--ids]\n"
            "                     [--tls CAFILE]\n"
            "workloads: ping request validate redeem checkout upload megadeal idle connect\n"
            "           coupons hold\n"
            "  --tls CAFILE TLS to coupond's --tls-port, its certificate checked against CAFILE\n"
            "  connect      new connections one after another, each a PING (full handshakes)\n"
            "  -n ops       flows to run (upload: records); with -t, an upper bound\n"
            "  -t seconds   run this long (idle: hold the connections this long)\n"
            "  --preload N  bulk-load filler coupons until the store holds N coupons\n"
            "  --coupons K  validate/redeem: assigned coupons cycled through (%d)\n"
            "  --batch B    records per UPLOAD (%d)\n"
            "  --server-pid PID  report that local server's CPU use and peak RSS during the run\n"
            "  --pool NAME  upload: load coupons NAME-... for later runs; request, checkout:\n"
            "               load none, take those (NAME: 1 to %d of A-Z 0-9)\n"
            "  --wait-start  connect, print READY, start the measured run on SIGUSR1\n"
            "  --ids        request: each REQUEST carries a request id of its own (id=)\n"
            "  --alongside W  another bench runs workload W on the server meanwhile: VERIFY\n"
            "               leaves the counters W changes to that run\n"
            "exit: 0 ok, 1 VERIFY FAIL, 2 usage or setup error, 3 error replies\n",
            DEFAULT_COUPONS, PROTO_UPLOAD_MAX, POOL_NAME_MAX);
}

static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* A pool name: 1 to POOL_NAME_MAX upper-case letters and digits (codes are stored upper case). */
static bool
pool_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= POOL_NAME_MAX && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

static bool
parse_options(int argc, char **argv, struct options *o)
{
    enum {
        OPT_PRELOAD = 256,
        OPT_COUPONS,
        OPT_BATCH,
        OPT_SERVER_PID,
        OPT_POOL,
        OPT_WAIT_START,
        OPT_ALONGSIDE,
        OPT_IDS,
        OPT_TLS,
        OPT_HELP
    };
    static const struct option longs[] = {{"preload", required_argument, NULL, OPT_PRELOAD},
                                          {"coupons", required_argument, NULL, OPT_COUPONS},
                                          {"batch", required_argument, NULL, OPT_BATCH},
                                          {"server-pid", required_argument, NULL, OPT_SERVER_PID},
                                          {"pool", required_argument, NULL, OPT_POOL},
                                          {"wait-start", no_argument, NULL, OPT_WAIT_START},
                                          {"alongside", required_argument, NULL, OPT_ALONGSIDE},
                                          {"ids", no_argument, NULL, OPT_IDS},
                                          {"tls", required_argument, NULL, OPT_TLS},
                                          {"help", no_argument, NULL, OPT_HELP},
                                          {NULL, 0, NULL, 0}};
    *o = (struct options){.host = DEFAULT_HOST,
                          .port = DEFAULT_PORT,
                          .conns = DEFAULT_CONNS,
                          .pipeline = 1,
                          .kind = WORKLOAD_PING,
                          .coupons = DEFAULT_COUPONS,
                          .batch = PROTO_UPLOAD_MAX};
    uint64_t v;
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:k:c:P:w:n:t:", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->port = optarg;
            break;
        case 'k':
            o->keyfile = optarg;
            break;
        case 'c':
            if (!parse_u64(optarg, 1, 1000000, &v))
                return false;
            o->conns = (unsigned)v;
            break;
        case 'P':
            if (!parse_u64(optarg, 1, ENGINE_PIPELINE_MAX, &v))
                return false;
            o->pipeline = (unsigned)v;
            break;
        case 'w':
            o->idle = strcmp(optarg, "idle") == 0;
            o->connect = strcmp(optarg, "connect") == 0;
            if (!o->idle && !o->connect &&
                (!workload_from_name(optarg, &o->kind) || o->kind == WORKLOAD_ASSIGN))
                return false;
            break;
        case 'n':
            if (!parse_u64(optarg, 1, UINT32_MAX * 16ull, &o->flows))
                return false;
            o->flows_set = true;
            break;
        case 't': {
            char *end;
            o->seconds = strtod(optarg, &end);
            if (end == optarg || *end || !(o->seconds > 0))
                return false;
            break;
        }
        case OPT_PRELOAD:
            if (!parse_u64(optarg, 0, UINT32_MAX * 16ull, &o->preload))
                return false;
            break;
        case OPT_COUPONS:
            if (!parse_u64(optarg, 1, UINT32_MAX, &o->coupons))
                return false;
            break;
        case OPT_BATCH:
            if (!parse_u64(optarg, 1, PROTO_UPLOAD_MAX, &v))
                return false;
            o->batch = (unsigned)v;
            break;
        case OPT_SERVER_PID:
            if (!parse_u64(optarg, 1, INT32_MAX, &v))
                return false;
            o->server_pid = (pid_t)v;
            break;
        case OPT_POOL:
            if (!pool_name_ok(optarg))
                return false;
            o->pool = optarg;
            break;
        case OPT_IDS:
            o->ids = true;
            break;
        case OPT_WAIT_START:
            o->wait_start = true;
            break;
        case OPT_ALONGSIDE:
            if (!workload_from_name(optarg, &o->alongside) || o->alongside == WORKLOAD_ASSIGN)
                return false;
            o->alongside_set = true;
            break;
        case OPT_TLS:
            o->tls_ca = optarg;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(EXIT_OK);
        default:
            return false;
        }
    }
    /* A pool is loaded by upload runs and drawn from by request and checkout runs. */
    bool pool_ok =
        !o->pool || (!o->idle && (o->kind == WORKLOAD_UPLOAD || o->kind == WORKLOAD_REQUEST ||
                                  o->kind == WORKLOAD_CHECKOUT));
    return optind == argc && pool_ok;
}

static bool
resolve(struct bench *b)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(b->o.host, b->o.port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "coupond-bench: %s:%s: %s\n", b->o.host, b->o.port, gai_strerror(rc));
        return false;
    }
    memcpy(&b->addr, ai->ai_addr, ai->ai_addrlen);
    b->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return true;
}

/* Each connection is a descriptor: raise the soft limit, and the hard one when allowed. */
static bool
raise_nofile(unsigned conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conns + FD_SPARE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return true;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* works as root, fails otherwise */
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "coupond-bench: cannot raise RLIMIT_NOFILE to %llu: %s\n",
                (unsigned long long)need, strerror(errno));
        return false;
    }
    return true;
}

static bool
read_key(struct bench *b)
{
    FILE *f = fopen(b->o.keyfile, "r");
    if (!f) {
        fprintf(stderr, "coupond-bench: %s: %s\n", b->o.keyfile, strerror(errno));
        return false;
    }
    char buf[PROTO_KEY_MAX + 2];
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    size_t n = ok ? strcspn(buf, " \t\r\n") : 0;
    if (n == 0 || n > PROTO_KEY_MAX) {
        fprintf(stderr, "coupond-bench: %s: no key in it\n", b->o.keyfile);
        return false;
    }
    memcpy(b->key, buf, n);
    b->key[n] = '\0';
    return true;
}

/* A run id tells this run's codes and users from every other's: "B" and 6 base-36 digits. */
static void
make_run_id(struct bench *b)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20);
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    b->run_id[0] = 'B';
    for (int i = 1; i <= RUN_ID_CHARS; i++, x /= 36)
        b->run_id[i] = digits[x % 36];
    b->run_id[RUN_ID_CHARS + 1] = '\0';
}

static int64_t
work_expiry(void)
{
    return WORK_EXPIRY_BASE - ((int64_t)time(NULL) - RUN_EPOCH);
}

static struct engine_params
params(const struct bench *b, unsigned conns, unsigned pipeline, uint64_t flows, double seconds)
{
    return (struct engine_params){.addr = (const struct sockaddr *)&b->addr,
                                  .addrlen = b->addrlen,
                                  .tls = b->tls,
                                  .conns = conns,
                                  .pipeline = pipeline,
                                  .flows = flows,
                                  .seconds = seconds,
                                  .key = b->have_admin ? b->key : NULL};
}

static void
print_errors(const struct engine_result *r, FILE *f)
{
    for (unsigned i = 0; i < ENGINE_ERR_CLASSES; i++)
        if (r->err[i])
            fprintf(f, "  error %-12s %10llu  first: %s\n", engine_err_name(i),
                    (unsigned long long)r->err[i], r->sample[i]);
}

/* A setup phase (preload, assign) must succeed completely. */
static bool
setup_ok(const struct bench *b, const struct engine_result *r, bool ran, const char *what)
{
    if (!ran) {
        fprintf(stderr, "coupond-bench: %s: %s\n", what, r->why);
        return false;
    }
    if (engine_errors(r) > 0 || r->ok != r->started) {
        fprintf(stderr, "coupond-bench: %s failed (run %s):\n", what, b->run_id);
        print_errors(r, stderr);
        return false;
    }
    return true;
}

/* Uploads `total` records of `type` coded prefix + number, expiring `expires`. */
static bool
bulk_load(struct bench *b, const char *what, const char *suffix, enum proto_type type,
          int64_t expires, uint32_t max_uses, uint64_t total)
{
    if (total == 0)
        return true;
    struct workload_ctx x = {.kind = WORKLOAD_UPLOAD};
    struct workload_upload *u = &x.upload;
    snprintf(u->prefix, sizeof u->prefix, "%s%s", b->run_id, suffix);
    u->type = type;
    u->expires = expires;
    u->max_uses = max_uses;
    u->total = total;
    u->batch = b->o.batch;
    struct engine_workload w;
    workload_bind(&x, &w);
    struct engine_params p = params(b, PRELOAD_CONNS, 1, workload_upload_batches(u), 0);
    bool ran = engine_run(&p, &w, &b->aux);
    if (!setup_ok(b, &b->aux, ran, what))
        return false;
    printf("PRELOAD what=%s records=%llu seconds=%.2f records_per_s=%.0f\n", what,
           (unsigned long long)total, b->aux.seconds, (double)total / b->aux.seconds);
    fflush(stdout);
    /* A big preload leaves gigabytes for the kernel to write back; the measured run's fsyncs
     * would queue behind that and measure the disk's backlog, not the store's size. */
    sync();
    return true;
}

/* Coupons the measured workload itself needs, and how many uses each. */
static uint64_t
work_coupons(const struct bench *b, uint32_t *max_uses)
{
    *max_uses = 1;
    switch (b->o.kind) {
    case WORKLOAD_REQUEST:
    case WORKLOAD_CHECKOUT:
        return b->o.pool ? 0 : b->o.flows; /* a pool was loaded by earlier runs */
    case WORKLOAD_MEGADEAL:
        return b->o.flows;
    case WORKLOAD_VALIDATE:
    case WORKLOAD_REDEEM:
    case WORKLOAD_COUPONS:
    case WORKLOAD_HOLD:
        *max_uses = PROTO_USES_MAX;
        return b->wctx.n_codes;
    default:
        return 0;
    }
}

/* VALIDATE, REDEEM, COUPONS and HOLD need coupons that are assigned: REQUEST them, keeping the
 * codes. */
static bool
assign_coupons(struct bench *b)
{
    struct workload_ctx *x = &b->wctx;
    x->codes = calloc(x->n_codes, sizeof x->codes[0]);
    if (!x->codes) {
        fprintf(stderr, "coupond-bench: out of memory\n");
        return false;
    }
    x->kind = WORKLOAD_ASSIGN;
    struct engine_workload w;
    workload_bind(x, &w);
    unsigned conns = b->o.conns < ASSIGN_CONNS_MAX ? b->o.conns : ASSIGN_CONNS_MAX;
    struct engine_params p = params(b, conns, ASSIGN_PIPELINE, x->n_codes, 0);
    bool ran = engine_run(&p, &w, &b->aux);
    x->kind = b->o.kind;
    if (!setup_ok(b, &b->aux, ran, "assigning coupons"))
        return false;
    printf("PRELOAD what=assign coupons=%llu seconds=%.2f\n", (unsigned long long)x->n_codes,
           b->aux.seconds);
    return true;
}

/* Loads what the workload needs, then filler up to --preload coupons in the store. */
static bool
prepare(struct bench *b, const struct proto_stats *s0)
{
    uint32_t max_uses;
    uint64_t need = work_coupons(b, &max_uses);
    enum proto_type type =
        b->o.kind == WORKLOAD_MEGADEAL ? PROTO_TYPE_MEGADEAL : PROTO_TYPE_STANDARD;
    if (need > 0 && !b->have_admin) {
        fprintf(stderr, "coupond-bench: workload %s needs the admin key (-k)\n",
                workload_name(b->o.kind));
        return false;
    }
    if (!bulk_load(b, "coupons", "W-", type, work_expiry(), max_uses, need))
        return false;
    uint64_t have = admin_store_size(s0) + need;
    if (b->o.preload > have &&
        !bulk_load(b, "filler", "F-", PROTO_TYPE_STANDARD, FILLER_EXPIRY, 1, b->o.preload - have))
        return false;
    if (b->o.kind == WORKLOAD_VALIDATE || b->o.kind == WORKLOAD_REDEEM ||
        b->o.kind == WORKLOAD_COUPONS || b->o.kind == WORKLOAD_HOLD)
        return assign_coupons(b);
    return true;
}

static double
us(uint64_t ns)
{
    return (double)ns / NS_PER_US;
}

/* Compares the counters' deltas with what the OK replies said; writes the VERIFY line. With
 * --alongside, the counters the other run changes are shown but left to its own VERIFY. */
static bool
verify(const struct bench *b, const struct proto_stats *a, const struct proto_stats *z, char *line,
       size_t line_len)
{
    static const enum proto_stat checked[] = {PROTO_STAT_CREATED, PROTO_STAT_ASSIGNED,
                                              PROTO_STAT_REDEEMED};
    const struct engine_tally *t = &b->res.tally;
    struct engine_tally other = {0};
    if (b->o.alongside_set)
        workload_changes(b->o.alongside, PROTO_TYPE_STANDARD, &other);
    const uint64_t *const want[] = {t->created, t->assigned, t->redeemed};
    const uint64_t *const skip[] = {other.created, other.assigned, other.redeemed};
    bool ok = true;
    char detail[512] = "";
    size_t dl = 0;
    for (int k = 0; k < 3; k++) {
        enum proto_stat st = checked[k];
        for (int ty = 0; ty < PROTO_NTYPES; ty++) {
            uint64_t d = z->v[st][ty] - a->v[st][ty];
            if (d == 0 && want[k][ty] == 0)
                continue;
            bool same = d == want[k][ty];
            if (!skip[k][ty])
                ok = ok && same;
            int n =
                snprintf(detail + dl, sizeof detail - dl, " %s.%s=+%llu", proto_stat_defs[st].name,
                         proto_type_name((enum proto_type)ty), (unsigned long long)d);
            if (n > 0 && (size_t)n < sizeof detail - dl)
                dl += (size_t)n;
            if (skip[k][ty])
                n = snprintf(detail + dl, sizeof detail - dl, "(with the run alongside)");
            else
                n = snprintf(detail + dl, sizeof detail - dl, "%s%llu",
                             same ? "=" : "!=", (unsigned long long)want[k][ty]);
            if (n > 0 && (size_t)n < sizeof detail - dl)
                dl += (size_t)n;
        }
    }
    const uint64_t *ga = a->v[PROTO_STAT_MEGA_GRANTED], *gz = z->v[PROTO_STAT_MEGA_GRANTED];
    uint64_t granted = gz[PROTO_TYPE_NONE] - ga[PROTO_TYPE_NONE];
    if (granted != t->assigned[PROTO_TYPE_MEGADEAL] && !other.assigned[PROTO_TYPE_MEGADEAL]) {
        ok = false;
        snprintf(detail + dl, sizeof detail - dl, " %s=+%llu!=%llu",
                 proto_stat_defs[PROTO_STAT_MEGA_GRANTED].name, (unsigned long long)granted,
                 (unsigned long long)t->assigned[PROTO_TYPE_MEGADEAL]);
    }
    snprintf(line, line_len, "VERIFY %s (counter deltas vs OK replies:%s)", ok ? "ok" : "FAIL",
             dl ? detail : " none changed, none expected");
    return ok;
}

static void
report(const struct bench *b, uint64_t store, const char *verdict, const char *verify_line)
{
    const struct engine_result *r = &b->res;
    const struct hist *h = &r->hist;
    const char *name = b->o.idle ? "idle" : workload_name(b->o.kind);
    double secs = r->seconds > 0 ? r->seconds : 1e-9;
    double ops_s = (double)r->ok / secs;
    uint64_t errs = engine_errors(r);
    printf("%-9s %6s %5s %10s %8s %11s %9s %9s %9s %9s %7s %5s\n", "workload", "conns", "pipe",
           "ops", "seconds", "ops/s", "p50_us", "p99_us", "p99.9_us", "max_us", "errors", "cpu");
    printf("%-9s %6u %5u %10llu %8.2f %11.1f %9.1f %9.1f %9.1f %9.1f %7llu %4.0f%%\n", name,
           b->o.conns, b->o.pipeline, (unsigned long long)r->ok, r->seconds, ops_s,
           us(hist_percentile(h, 50)), us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)),
           us(hist_max(h)), (unsigned long long)errs, 100.0 * r->cpu_seconds / secs);
    if (b->have_srv)
        printf("  server: cpu %.0f%%, peak RSS %.1f MB%s, RSS at end %.1f MB (anon %.1f MB, "
               "file %.1f MB)\n",
               100.0 * (b->srv1.cpu_s - b->srv0.cpu_s) / secs, (double)b->srv1.hwm_kb / KB_PER_MB,
               b->peak_reset ? "" : " (since start)", (double)b->srv1.rss_kb / KB_PER_MB,
               (double)b->srv1.anon_kb / KB_PER_MB, (double)b->srv1.file_kb / KB_PER_MB);
    print_errors(r, stdout);
    if (r->data_lines)
        printf("  data lines before status lines: %llu\n", (unsigned long long)r->data_lines);
    printf("%s\n", verify_line);
    printf("RESULT workload=%s conns=%u pipeline=%u store=%llu ops=%llu seconds=%.3f "
           "ops_per_s=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu",
           name, b->o.conns, b->o.pipeline, (unsigned long long)store, (unsigned long long)r->ok,
           r->seconds, ops_s, us(hist_percentile(h, 50)), us(hist_percentile(h, 99)),
           us(hist_percentile(h, 99.9)), us(hist_max(h)), (unsigned long long)errs);
    for (unsigned i = 0; i < ENGINE_ERR_CLASSES; i++)
        if (r->err[i])
            printf(" err_%s=%llu", engine_err_name(i), (unsigned long long)r->err[i]);
    if (!b->o.idle && b->o.kind == WORKLOAD_UPLOAD) {
        uint64_t recs = r->tally.created[PROTO_TYPE_STANDARD];
        printf(" records=%llu records_per_s=%.0f", (unsigned long long)recs, (double)recs / secs);
    }
    if (!b->o.idle && b->o.kind == WORKLOAD_CHECKOUT)
        printf(" cmds_per_s=%.1f", 3.0 * ops_s);
    if (b->o.idle)
        printf(" open=%u", r->conns_open);
    if (b->have_srv)
        printf(" srv_cpu=%.0f srv_%s_kb=%llu srv_rss_kb=%llu srv_anon_kb=%llu",
               100.0 * (b->srv1.cpu_s - b->srv0.cpu_s) / secs,
               b->peak_reset ? "peak" : "peak_since_start", (unsigned long long)b->srv1.hwm_kb,
               (unsigned long long)b->srv1.rss_kb, (unsigned long long)b->srv1.anon_kb);
    printf(" client_cpu=%.0f verify=%s\n", 100.0 * r->cpu_seconds / secs, verdict);
}

/* --wait-start: says READY, then waits for SIGUSR1, which main has blocked since the start so
 * that it stays pending until taken here. */
static bool
wait_start(const struct bench *b, char *why, size_t why_len)
{
    printf("READY run=%s conns=%u\n", b->run_id, b->o.conns);
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    struct timespec limit = {.tv_sec = WAIT_START_MAX_S};
    while (sigtimedwait(&set, NULL, &limit) < 0) {
        if (errno != EINTR) {
            snprintf(why, why_len, "no SIGUSR1 within %d s of READY", WAIT_START_MAX_S);
            return false;
        }
    }
    return true;
}

/* Every connection is up: wait for the start signal when asked to, then sample the server as
 * the clock starts. An idle run says so here, with the server's connection count and memory,
 * then holds its connections. */
static bool
on_ready(void *arg, char *why_out, size_t why_len)
{
    struct bench *b = arg;
    if (b->o.wait_start && !wait_start(b, why_out, why_len))
        return false;
    if (b->o.server_pid > 0) {
        b->peak_reset = procstat_reset_peak(b->o.server_pid);
        b->have_srv = procstat_read(b->o.server_pid, &b->srv0);
    }
    if (!b->o.idle)
        return true;
    /* A connect returns once the kernel queued the connection; wait until the server has
     * accepted them all (its count includes the admin session) before memory is sampled. */
    char why[256];
    struct proto_stats s = {0};
    uint64_t *conns = &s.v[PROTO_STAT_CONNECTIONS][PROTO_TYPE_NONE];
    for (int i = 0; b->have_admin && i < IDLE_ACCEPT_POLLS; i++) {
        if (!admin_stats(&b->admin, &s, why, sizeof why) || *conns > b->o.conns)
            break;
        struct timespec pause = {.tv_nsec = IDLE_ACCEPT_POLL_NS};
        nanosleep(&pause, NULL);
    }
    if (b->o.server_pid > 0)
        b->have_srv = procstat_read(b->o.server_pid, &b->srv0);
    printf("IDLE ready conns=%u\n", b->o.conns);
    if (b->have_admin)
        printf("IDLE server_connections=%llu\n", (unsigned long long)*conns);
    if (b->have_srv)
        printf("IDLE server_rss_kb=%llu server_anon_kb=%llu\n", (unsigned long long)b->srv0.rss_kb,
               (unsigned long long)b->srv0.anon_kb);
    fflush(stdout);
    return true;
}

/* Fills in the defaults that depend on the workload. */
static void
settle_options(struct options *o)
{
    if (o->connect) {
        if (!o->flows_set && o->seconds <= 0)
            o->seconds = DEFAULT_CONNECT_S;
        return;
    }
    if (o->idle) {
        if (o->seconds <= 0)
            o->seconds = DEFAULT_IDLE_S;
        return;
    }
    if (!o->flows_set) {
        bool timed = o->seconds > 0;
        switch (o->kind) {
        case WORKLOAD_MEGADEAL:
            o->flows = DEFAULT_MEGADEAL_FLOWS;
            break;
        case WORKLOAD_UPLOAD:
            o->flows = PROTO_UPLOAD_MAX;
            break;
        case WORKLOAD_REQUEST:
        case WORKLOAD_CHECKOUT:
            /* A timed run from a pool takes what the time allows; the pool must hold enough. */
            o->flows = timed ? (o->pool ? 0 : DEFAULT_TIMED_CAP) : DEFAULT_FLOWS;
            break;
        default:
            o->flows = timed ? 0 : DEFAULT_FLOWS;
        }
    }
}

static int
run(struct bench *b)
{
    char why[256];
    struct proto_stats s0, s1, s2;
    if (b->have_admin && (!admin_open(&b->admin, (const struct sockaddr *)&b->addr, b->addrlen,
                                      b->tls, b->key, why, sizeof why) ||
                          !admin_stats(&b->admin, &s0, why, sizeof why))) {
        fprintf(stderr, "coupond-bench: admin session: %s\n", why);
        return EXIT_SETUP;
    }
    struct workload_ctx *x = &b->wctx;
    x->kind = b->o.kind;
    x->type = PROTO_TYPE_STANDARD;
    snprintf(x->user_prefix, sizeof x->user_prefix, "u%s-", b->run_id);
    x->ids = b->o.ids;
    if (b->o.pool)
        snprintf(x->code_prefix, sizeof x->code_prefix, "%s-", b->o.pool);
    else
        snprintf(x->code_prefix, sizeof x->code_prefix, "%sW-", b->run_id);
    x->n_codes = b->o.flows > 0 && b->o.flows < b->o.coupons ? b->o.flows : b->o.coupons;
    if (!b->o.idle && !prepare(b, &s0))
        return EXIT_SETUP;
    if (b->have_admin && !admin_stats(&b->admin, &s1, why, sizeof why)) {
        fprintf(stderr, "coupond-bench: STATS before the run: %s\n", why);
        return EXIT_SETUP;
    }
    uint64_t flows = b->o.flows;
    if (!b->o.idle && b->o.kind == WORKLOAD_UPLOAD) {
        struct workload_upload *u = &x->upload;
        if (b->o.pool)
            snprintf(u->prefix, sizeof u->prefix, "%s-%s-", b->o.pool, b->run_id);
        else
            snprintf(u->prefix, sizeof u->prefix, "%sU-", b->run_id);
        u->type = PROTO_TYPE_STANDARD;
        u->expires = b->o.pool ? POOL_EXPIRY : FILLER_EXPIRY;
        u->max_uses = 1;
        u->total = b->o.flows;
        u->batch = b->o.batch;
        flows = workload_upload_batches(u);
    }
    struct engine_workload w;
    workload_bind(x, &w);
    struct engine_params p =
        params(b, b->o.conns, b->o.pipeline, b->o.idle ? 0 : flows, b->o.idle ? 0 : b->o.seconds);
    p.ready = on_ready;
    p.ready_arg = b;
    if (b->o.idle) {
        p.key = NULL; /* idle connections send nothing at all */
        p.hold_seconds = b->o.seconds;
    } else if (b->o.kind != WORKLOAD_UPLOAD) {
        p.key = NULL; /* only UPLOAD is an admin command */
    }
    if (!engine_run(&p, &w, &b->res)) {
        fprintf(stderr, "coupond-bench: %s\n", b->res.why);
        return EXIT_SETUP;
    }
    b->have_srv = b->have_srv && procstat_read(b->o.server_pid, &b->srv1);
    if (b->o.seconds > 0 && flows > 0 && b->res.started >= flows && !b->o.idle)
        printf("note: stopped after -n %llu flows, before -t %.1f s\n", (unsigned long long)flows,
               b->o.seconds);
    const char *verdict = "skipped";
    char verify_line[640] = "VERIFY skipped (no admin key: -k)";
    bool verified = true;
    if (b->have_admin) {
        if (admin_stats(&b->admin, &s2, why, sizeof why)) {
            verified = verify(b, &s1, &s2, verify_line, sizeof verify_line);
        } else {
            verified = false;
            snprintf(verify_line, sizeof verify_line, "VERIFY FAIL (no STATS after the run: %s)",
                     why);
        }
        verdict = verified ? "ok" : "FAIL";
    }
    report(b, b->have_admin ? admin_store_size(&s1) : 0, verdict, verify_line);
    if (!verified)
        return EXIT_VERIFY_FAIL;
    return engine_errors(&b->res) > 0 ? EXIT_ERRORS : EXIT_OK;
}

/* -w connect: connections per second, each a full connect (and TLS handshake) and one PING. */
static int
run_connect(struct bench *b)
{
    struct connrate_result r;
    const char *name = b->tls != NULL ? "connect-tls" : "connect";

    connrate_run((const struct sockaddr *)&b->addr, b->addrlen, b->tls,
                 b->o.flows_set ? b->o.flows : 0, b->o.seconds, &r);
    double secs = r.seconds > 0 ? r.seconds : 1;
    printf("%s: %llu connections in %.2f s, %.1f/s, connect-to-PONG p50 %.1f us, p99 %.1f us, "
           "%llu failed%s%s\n",
           name, (unsigned long long)r.ok, r.seconds, (double)r.ok / secs,
           us(hist_percentile(&r.hist, 50)), us(hist_percentile(&r.hist, 99)),
           (unsigned long long)r.failed, r.failed ? ": " : "", r.why);
    printf("RESULT workload=%s conns=1 ops=%llu seconds=%.3f conns_per_s=%.1f p50_us=%.1f "
           "p99_us=%.1f errors=%llu\n",
           name, (unsigned long long)r.ok, r.seconds, (double)r.ok / secs,
           us(hist_percentile(&r.hist, 50)), us(hist_percentile(&r.hist, 99)),
           (unsigned long long)r.failed);
    return r.failed > 0 ? EXIT_ERRORS : EXIT_OK;
}

int
main(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof *b);
    if (!b) {
        fprintf(stderr, "coupond-bench: out of memory\n");
        return EXIT_SETUP;
    }
    b->admin.conn.fd = -1;
    if (!parse_options(argc, argv, &b->o)) {
        usage(stderr);
        free(b);
        return EXIT_SETUP;
    }
    settle_options(&b->o);
    /* OpenSSL writes with write(), not send(MSG_NOSIGNAL): a server that closed must be an
     * error to report, not a signal that kills the bench. */
    signal(SIGPIPE, SIG_IGN);
    if (b->o.wait_start) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, NULL);
    }
    make_run_id(b);
    int rc = EXIT_SETUP;
    b->have_admin = b->o.keyfile != NULL;
    char why[256];
    if (b->o.tls_ca != NULL && (b->tls = bconn_tls_new(b->o.tls_ca, why, sizeof why)) == NULL)
        fprintf(stderr, "coupond-bench: %s\n", why);
    else if (resolve(b) && b->o.connect)
        rc = run_connect(b);
    else if (!b->o.connect && raise_nofile(b->o.conns) && (!b->have_admin || read_key(b)))
        rc = run(b);
    fflush(stdout);
    if (b->have_admin)
        admin_close(&b->admin);
    bconn_tls_free(b->tls);
    free(b->wctx.codes);
    free(b);
    return rc;
}
