/* haload.c - a test tool for the high-availability tests (tests/ha): a REQUEST load that keeps
 * going through a failure, and the check that no acknowledged write was lost.
 *
 *   haload upload -p PORT -k KEYFILE -t TYPE -n N -x PREFIX
 *   haload load   -p PORT -t TYPE -x PREFIX -c CONNS -s SECONDS -o ACKFILE
 *   haload verify -p PORT[,PORT...] -k KEYFILE -t TYPE -n UPLOADED -a ACKFILE
 *
 * upload: UPLOAD of N coupons PREFIX-000000.. of TYPE, max_uses 1, far expiry.
 *
 * load: CONNS threads, each one connection to 127.0.0.1:PORT sending one
 * `REQUEST PREFIX-C-S TYPE id=PREFIX-C-S` at a time, a new user and request id each. An OK is
 * an acknowledged write: its user and code go to ACKFILE, one line each, "user code ms" (ms:
 * when the OK came, Unix ms). ERR UNAVAILABLE, a lost connection or a refused connect is an
 * error: the same request (same id, so retrying is always safe) is sent again, on a new
 * connection when the old one is gone, until it is answered OK; any other ERR stops the thread.
 * After SECONDS no new request is started; one still unanswered is retried for up to SETTLE_S
 * more. Each thread counts what it saw; a line per thread and a RESULT line give the counts,
 * the times (Unix ms) of the first error and of the first OK after each thread's errors (when
 * it was served again), and the longest any one request took from its first try to its OK (a
 * failover the server rides out without an error shows there). Exit 0, or 1 when a thread
 * stopped on an error or left a request unresolved.
 *
 * verify: every line of ACKFILE is checked with `VALIDATE user code` (the coupon must be that
 * user's), and on every PORT, STATS must show assigned.TYPE equal to the acknowledged writes and
 * available.TYPE to UPLOADED less them. Exit 0 when all hold, 1 otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_       8192  /* longest reply line read */
#define RBUF            65536 /* receive buffer of a connection */
#define WORD_MAX        64    /* a user, code or request id */
#define CONNS_MAX       256   /* load threads */
#define PORTS_MAX       8     /* verify: nodes checked */
#define IO_TIMEOUT_MS   15000 /* a reply slower than this counts as a lost connection */
#define RETRY_SLEEP_MS  20    /* between two tries of one request after an error */
#define SETTLE_S        60    /* after the load's time: how long an unanswered request is retried */
#define ACKS_FIRST      4096  /* acknowledgements a thread keeps room for at first */
#define VERIFY_BATCH    256   /* VALIDATEs pipelined at once */
#define FAILURES_SHOWN  5     /* verify: failed VALIDATEs printed */
#define KEY_HEX         64    /* admin.key: 64 hex digits */
#define FAR_EXPIRY      "2099-12-31"
#define UPLOAD_LINE_MAX 128   /* one record line of an upload */
#define UPLOAD_BATCH    50000 /* records per UPLOAD: coupond's largest (PROTO_UPLOAD_MAX) */
#define MS_PER_S        1000
#define NS_PER_MS       1000000

struct conn {
    int fd;
    size_t len;
    char buf[RBUF];
};

struct ack {
    char user[WORD_MAX];
    char code[WORD_MAX];
    int64_t at; /* when the OK came, Unix ms */
};

/* What one load thread saw. Times are Unix ms, 0 when it did not happen. */
struct tally {
    unsigned long acked, replayed, unavailable, lost, refused, after;
    int64_t first_error, last_error, served_again;
    int64_t max_wait, max_wait_end; /* the longest one request took, retries included; its end */
    bool failed;                    /* stopped on an unexpected reply */
    bool unresolved;                /* a request was still unanswered at the end */
    char why[LINE_MAX_];
    struct ack *acks;
    size_t nacks, cap;
};

struct load {
    uint16_t port;
    const char *type, *prefix;
    int64_t end_ms; /* no new request from then on */
    struct tally *tallies;
};

struct worker {
    struct load *load;
    unsigned index;
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / NS_PER_MS;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / MS_PER_S, (long)(ms % MS_PER_S) * NS_PER_MS};

    nanosleep(&ts, NULL);
}

/* ---- one connection ---- */

/* Connects to 127.0.0.1:port with IO_TIMEOUT_MS timeouts; false with errno set on failure. */
static bool
conn_open(struct conn *c, uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {IO_TIMEOUT_MS / MS_PER_S, (IO_TIMEOUT_MS % MS_PER_S) * MS_PER_S};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return true;
    int e = errno;
    close(c->fd);
    c->fd = -1;
    errno = e;
    return false;
}

static void
conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static bool
conn_send(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads one line (LF and a CR before it removed) into line[cap]; false when the connection
 * closed, timed out or failed first. */
static bool
conn_line(struct conn *c, char *line, size_t cap)
{
    for (;;) {
        char *lf = memchr(c->buf, '\n', c->len);
        if (lf != NULL) {
            size_t n = (size_t)(lf - c->buf);
            size_t keep = n > 0 && c->buf[n - 1] == '\r' ? n - 1 : n;
            if (keep >= cap)
                keep = cap - 1;
            memcpy(line, c->buf, keep);
            line[keep] = '\0';
            memmove(c->buf, lf + 1, c->len - n - 1);
            c->len -= n + 1;
            return true;
        }
        if (c->len == sizeof c->buf)
            return false;
        ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        c->len += (size_t)got;
    }
}

/* Reads one whole reply: data lines, then an OK or ERR line, left in line. */
static bool
conn_reply(struct conn *c, char *line, size_t cap)
{
    while (conn_line(c, line, cap))
        if (strncmp(line, "OK", 2) == 0 || strncmp(line, "ERR", 3) == 0)
            return true;
    return false;
}

static bool
read_key(const char *path, char key[KEY_HEX + 1])
{
    FILE *f = fopen(path, "r");
    bool ok = f != NULL && fread(key, 1, KEY_HEX, f) == KEY_HEX;

    if (f != NULL)
        fclose(f);
    key[KEY_HEX] = '\0';
    if (!ok)
        fprintf(stderr, "haload: cannot read the admin key from %s\n", path);
    return ok;
}

/* Connects and authenticates with the admin key; false after saying why. */
static bool
admin_open(struct conn *c, uint16_t port, const char *key)
{
    char line[LINE_MAX_], cmd[KEY_HEX + 16];

    if (!conn_open(c, port)) {
        fprintf(stderr, "haload: cannot connect to port %u: %s\n", port, strerror(errno));
        return false;
    }
    snprintf(cmd, sizeof cmd, "AUTH %s\n", key);
    if (!conn_send(c, cmd, strlen(cmd)) || !conn_reply(c, line, sizeof line) ||
        strcmp(line, "OK") != 0) {
        fprintf(stderr, "haload: AUTH on port %u failed: %s\n", port, line);
        conn_close(c);
        return false;
    }
    return true;
}

/* The value of "word=" in an OK line into out[WORD_MAX]; false when absent. */
static bool
field(const char *line, const char *word, char out[WORD_MAX])
{
    char pat[WORD_MAX];
    const char *p;

    snprintf(pat, sizeof pat, " %s=", word);
    p = strstr(line, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= WORD_MAX)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* ---- upload ---- */

/* One UPLOAD of records first..first+n-1; false after saying why. */
static bool
upload_batch(struct conn *c, char *buf, const char *type, unsigned long first, unsigned long n,
             const char *prefix)
{
    char line[LINE_MAX_], want[UPLOAD_LINE_MAX];
    size_t len = (size_t)sprintf(buf, "UPLOAD %lu\n", n);

    for (unsigned long i = first; i < first + n; i++)
        len +=
            (size_t)sprintf(buf + len, "%s-%06lu,%s,10,FLAT,%s,1\n", prefix, i, type, FAR_EXPIRY);
    if (!conn_send(c, buf, len) || !conn_reply(c, line, sizeof line)) {
        fprintf(stderr, "haload: the upload got no reply\n");
        return false;
    }
    snprintf(want, sizeof want, "OK uploaded=%lu", n);
    if (strcmp(line, want) != 0) {
        fprintf(stderr, "haload: the upload was answered \"%s\"\n", line);
        return false;
    }
    return true;
}

static int
cmd_upload(uint16_t port, const char *keyfile, const char *type, unsigned long n,
           const char *prefix)
{
    char key[KEY_HEX + 1];
    struct conn *c = malloc(sizeof *c);
    char *buf = malloc((UPLOAD_BATCH + 1) * (size_t)UPLOAD_LINE_MAX);
    int rc = 1;

    if (strlen(prefix) + strlen(type) + sizeof FAR_EXPIRY + WORD_MAX / 2 > UPLOAD_LINE_MAX) {
        fprintf(stderr, "haload: prefix or type too long\n");
        goto out;
    }
    if (c == NULL || buf == NULL || !read_key(keyfile, key) || !admin_open(c, port, key))
        goto out;
    for (unsigned long i = 0; i < n; i += UPLOAD_BATCH)
        if (!upload_batch(c, buf, type, i, n - i < UPLOAD_BATCH ? n - i : UPLOAD_BATCH, prefix))
            goto out;
    printf("uploaded %lu %s coupons\n", n, type);
    rc = 0;
out:
    if (c != NULL)
        conn_close(c);
    free(c);
    free(buf);
    return rc;
}

/* ---- load ---- */

static bool
tally_ack(struct tally *t, const char *user, const char *code)
{
    if (t->nacks == t->cap) {
        size_t cap = t->cap == 0 ? ACKS_FIRST : 2 * t->cap;
        struct ack *a = realloc(t->acks, cap * sizeof *a);
        if (a == NULL)
            return false;
        t->acks = a;
        t->cap = cap;
    }
    snprintf(t->acks[t->nacks].user, WORD_MAX, "%s", user);
    snprintf(t->acks[t->nacks].code, WORD_MAX, "%s", code);
    t->acks[t->nacks].at = now_ms();
    t->nacks++;
    return true;
}

static void
tally_error(struct tally *t, unsigned long *counter)
{
    int64_t now = now_ms();

    (*counter)++;
    if (t->first_error == 0)
        t->first_error = now;
    t->last_error = now;
}

/* One request, tried until it is answered OK; false when the thread must stop. */
static bool
one_request(struct load *ld, struct tally *t, struct conn *c, const char *user, int64_t deadline)
{
    char cmd[4 * WORD_MAX], line[LINE_MAX_], code[WORD_MAX];
    int n = snprintf(cmd, sizeof cmd, "REQUEST %s %s id=%s\n", user, ld->type, user);
    int64_t begin = now_ms();

    for (;;) {
        if (now_ms() >= deadline) {
            t->unresolved = true;
            snprintf(t->why, sizeof t->why, "request %s unanswered at the end", user);
            return false;
        }
        if (c->fd < 0 && !conn_open(c, ld->port)) {
            tally_error(t, &t->refused);
            sleep_ms(RETRY_SLEEP_MS);
            continue;
        }
        if (!conn_send(c, cmd, (size_t)n) || !conn_reply(c, line, sizeof line)) {
            tally_error(t, &t->lost);
            conn_close(c);
            continue;
        }
        if (strncmp(line, "ERR UNAVAILABLE", 15) == 0) {
            tally_error(t, &t->unavailable);
            sleep_ms(RETRY_SLEEP_MS);
            continue;
        }
        if (strncmp(line, "OK", 2) != 0 || !field(line, "code", code)) {
            t->failed = true;
            snprintf(t->why, sizeof t->why, "%.*s answered \"%.200s\"", n - 1, cmd, line);
            return false;
        }
        break;
    }
    if (!tally_ack(t, user, code)) {
        t->failed = true;
        snprintf(t->why, sizeof t->why, "out of memory");
        return false;
    }
    t->acked++;
    int64_t end = now_ms();
    if (end - begin > t->max_wait) {
        t->max_wait = end - begin;
        t->max_wait_end = end;
    }
    if (strstr(line, " replayed=1") != NULL)
        t->replayed++;
    if (t->first_error != 0) {
        t->after++;
        if (t->served_again < t->last_error)
            t->served_again = now_ms();
    }
    return true;
}

static void *
load_thread(void *arg)
{
    struct worker *w = arg;
    struct load *ld = w->load;
    struct tally *t = &ld->tallies[w->index];
    struct conn *c = malloc(sizeof *c);
    char user[WORD_MAX];

    if (c == NULL) {
        t->failed = true;
        snprintf(t->why, sizeof t->why, "out of memory");
        return NULL;
    }
    c->fd = -1;
    for (unsigned long seq = 0; now_ms() < ld->end_ms; seq++) {
        snprintf(user, sizeof user, "%s-%u-%lu", ld->prefix, w->index, seq);
        if (!one_request(ld, t, c, user, ld->end_ms + SETTLE_S * MS_PER_S))
            break;
    }
    conn_close(c);
    free(c);
    return NULL;
}

static int64_t
min_set(int64_t a, int64_t b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

static int
cmd_load(uint16_t port, const char *type, const char *prefix, unsigned conns, unsigned secs,
         const char *ackfile)
{
    struct load ld = {.port = port, .type = type, .prefix = prefix};
    struct worker workers[CONNS_MAX];
    pthread_t threads[CONNS_MAX];
    struct tally sum = {0};
    int64_t start = now_ms(), served_all = 0, served_first = 0;
    int rc = 0;

    ld.tallies = calloc(conns, sizeof *ld.tallies);
    if (ld.tallies == NULL)
        return 1;
    ld.end_ms = start + (int64_t)secs * MS_PER_S;
    for (unsigned i = 0; i < conns; i++) {
        workers[i] = (struct worker){&ld, i};
        if (pthread_create(&threads[i], NULL, load_thread, &workers[i]) != 0) {
            fprintf(stderr, "haload: cannot start thread %u\n", i);
            conns = i; /* the threads started run their time out */
            rc = 1;
            break;
        }
    }
    for (unsigned i = 0; i < conns; i++)
        pthread_join(threads[i], NULL);

    FILE *out = fopen(ackfile, "w");
    if (out == NULL) {
        fprintf(stderr, "haload: cannot write %s: %s\n", ackfile, strerror(errno));
        rc = 1;
    }
    for (unsigned i = 0; i < conns; i++) {
        struct tally *t = &ld.tallies[i];
        for (size_t a = 0; out != NULL && a < t->nacks; a++)
            fprintf(out, "%s %s %lld\n", t->acks[a].user, t->acks[a].code,
                    (long long)t->acks[a].at);
        printf("client %u: acknowledged %lu (%lu after its first error, %lu replayed), errors: "
               "%lu unavailable, %lu connections lost, %lu connects refused",
               i, t->acked, t->after, t->replayed, t->unavailable, t->lost, t->refused);
        printf(", longest request %lld ms", (long long)t->max_wait);
        if (t->first_error != 0 && t->served_again != 0)
            printf(", served again %lld ms after its first error",
                   (long long)(t->served_again - t->first_error));
        printf("%s%s\n", t->why[0] != '\0' ? "; stopped: " : "", t->why);
        sum.acked += t->acked;
        sum.after += t->after;
        sum.replayed += t->replayed;
        sum.unavailable += t->unavailable;
        sum.lost += t->lost;
        sum.refused += t->refused;
        sum.first_error = min_set(sum.first_error, t->first_error);
        served_first = min_set(served_first, t->served_again);
        if (t->served_again > served_all)
            served_all = t->served_again;
        if (t->max_wait > sum.max_wait) {
            sum.max_wait = t->max_wait;
            sum.max_wait_end = t->max_wait_end;
        }
        if (t->failed || t->unresolved)
            rc = 1;
        free(t->acks);
    }
    if (out != NULL && fclose(out) != 0)
        rc = 1;
    printf("RESULT start=%lld acked=%lu after=%lu replayed=%lu unavailable=%lu lost=%lu "
           "refused=%lu first_error=%lld served_first=%lld served_all=%lld max_wait=%lld "
           "max_wait_end=%lld failed=%d\n",
           (long long)start, sum.acked, sum.after, sum.replayed, sum.unavailable, sum.lost,
           sum.refused, (long long)sum.first_error, (long long)served_first, (long long)served_all,
           (long long)sum.max_wait, (long long)sum.max_wait_end, rc);
    free(ld.tallies);
    return rc;
}

/* ---- verify ---- */

/* Checks one batch of acknowledgements with pipelined VALIDATEs; adds the failures. */
static bool
verify_batch(struct conn *c, struct ack *acks, size_t n, unsigned long *bad)
{
    char cmd[VERIFY_BATCH * (3 * WORD_MAX)], line[LINE_MAX_];
    size_t len = 0;

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, "VALIDATE %s %s\n", acks[i].user,
                                acks[i].code);
    if (!conn_send(c, cmd, len))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!conn_reply(c, line, sizeof line))
            return false;
        if (strncmp(line, "OK", 2) != 0) {
            if (*bad < FAILURES_SHOWN)
                fprintf(stderr, "haload: LOST: VALIDATE %s %s: %s\n", acks[i].user, acks[i].code,
                        line);
            (*bad)++;
        }
    }
    return true;
}

/* STATS on an authenticated connection: the value of stat `name`, or -1. */
static long long
stat_of(struct conn *c, const char *name)
{
    char line[LINE_MAX_], want[WORD_MAX + 8];
    long long v = -1;

    snprintf(want, sizeof want, "STAT %s ", name);
    if (!conn_send(c, "STATS\n", 6))
        return -1;
    while (conn_line(c, line, sizeof line)) {
        if (strncmp(line, want, strlen(want)) == 0)
            v = strtoll(line + strlen(want), NULL, 10);
        if (strncmp(line, "OK", 2) == 0 || strncmp(line, "ERR", 3) == 0)
            return v;
    }
    return -1;
}

static int
cmd_verify(const uint16_t *ports, size_t nports, const char *keyfile, const char *type,
           unsigned long uploaded, const char *ackfile)
{
    char key[KEY_HEX + 1], name[WORD_MAX], line[LINE_MAX_];
    struct ack *acks = NULL;
    size_t n = 0, cap = 0;
    unsigned long bad = 0;
    struct conn *c = malloc(sizeof *c);
    int rc = 0;
    FILE *in = fopen(ackfile, "r");

    if (c == NULL || in == NULL || !read_key(keyfile, key)) {
        fprintf(stderr, "haload: cannot read %s\n", ackfile);
        free(c);
        if (in != NULL)
            fclose(in);
        return 1;
    }
    for (;;) {
        if (n == cap) {
            cap = cap == 0 ? ACKS_FIRST : 2 * cap;
            struct ack *a = realloc(acks, cap * sizeof *a);
            if (a == NULL) {
                rc = 1;
                break;
            }
            acks = a;
        }
        if (fgets(line, sizeof line, in) == NULL)
            break;
        if (sscanf(line, "%63s %63s", acks[n].user, acks[n].code) != 2)
            continue;
        n++;
    }
    fclose(in);
    if (rc == 0 && !admin_open(c, ports[0], key))
        rc = 1;
    for (size_t i = 0; rc == 0 && i < n; i += VERIFY_BATCH) {
        size_t k = n - i < VERIFY_BATCH ? n - i : VERIFY_BATCH;
        if (!verify_batch(c, acks + i, k, &bad)) {
            fprintf(stderr, "haload: the connection failed while validating\n");
            rc = 1;
        }
    }
    conn_close(c);
    printf("validated %zu acknowledged writes: %lu not assigned to their user\n", n, bad);
    if (bad > 0)
        rc = 1;
    for (size_t p = 0; p < nports; p++) {
        if (!admin_open(c, ports[p], key)) {
            rc = 1;
            continue;
        }
        snprintf(name, sizeof name, "assigned.%s", type);
        long long assigned = stat_of(c, name);
        snprintf(name, sizeof name, "available.%s", type);
        long long available = stat_of(c, name);
        conn_close(c);
        bool ok = assigned == (long long)n && available == (long long)(uploaded - n);
        printf("port %u: STATS assigned.%s %lld, available.%s %lld: %s\n", ports[p], type, assigned,
               type, available, ok ? "consistent" : "INCONSISTENT");
        if (!ok)
            rc = 1;
    }
    free(c);
    free(acks);
    return rc;
}

/* ---- flags ---- */

static int
usage(void)
{
    fprintf(stderr, "usage: haload upload -p PORT -k KEYFILE -t TYPE -n N -x PREFIX\n"
                    "       haload load -p PORT -t TYPE -x PREFIX -c CONNS -s SECONDS -o ACKFILE\n"
                    "       haload verify -p PORT[,PORT...] -k KEYFILE -t TYPE -n UPLOADED -a "
                    "ACKFILE\n");
    return 2;
}

/* A comma-separated list of ports; false on anything else. */
static bool
parse_ports(const char *s, uint16_t *ports, size_t *n)
{
    *n = 0;
    while (*s != '\0' && *n < PORTS_MAX) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0 || v > UINT16_MAX || (*end != ',' && *end != '\0'))
            return false;
        ports[(*n)++] = (uint16_t)v;
        s = *end == ',' ? end + 1 : end;
    }
    return *n > 0 && *s == '\0';
}

int
main(int argc, char **argv)
{
    const char *keyfile = NULL, *type = NULL, *prefix = NULL, *ackfile = NULL, *ports_s = NULL;
    unsigned long n = 0, conns = 0, secs = 0;
    uint16_t ports[PORTS_MAX];
    size_t nports = 0;

    if (argc < 2)
        return usage();
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (strcmp(f, "-p") == 0)
            ports_s = v;
        else if (strcmp(f, "-k") == 0)
            keyfile = v;
        else if (strcmp(f, "-t") == 0)
            type = v;
        else if (strcmp(f, "-x") == 0)
            prefix = v;
        else if (strcmp(f, "-o") == 0 || strcmp(f, "-a") == 0)
            ackfile = v;
        else if (strcmp(f, "-n") == 0)
            n = strtoul(v, NULL, 10);
        else if (strcmp(f, "-c") == 0)
            conns = strtoul(v, NULL, 10);
        else if (strcmp(f, "-s") == 0)
            secs = strtoul(v, NULL, 10);
        else
            return usage();
    }
    if ((argc % 2) != 0 || ports_s == NULL || !parse_ports(ports_s, ports, &nports) || type == NULL)
        return usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "upload") == 0 && keyfile != NULL && prefix != NULL && n > 0)
        return cmd_upload(ports[0], keyfile, type, n, prefix);
    if (strcmp(argv[1], "load") == 0 && prefix != NULL && ackfile != NULL && conns > 0 &&
        conns <= CONNS_MAX && secs > 0)
        return cmd_load(ports[0], type, prefix, (unsigned)conns, (unsigned)secs, ackfile);
    if (strcmp(argv[1], "verify") == 0 && keyfile != NULL && ackfile != NULL)
        return cmd_verify(ports, nports, keyfile, type, n, ackfile);
    return usage();
}
