/* mega_timeline.c - the MEGADEAL queue's timeline as clients see it: N connections each send
 * REQUEST userN MEGADEAL at once, and WAIT on their task as soon as its id comes back. Prints the
 * most grants in any one-second window, the grants in flight as STATS reports them, the wait from
 * REQUEST to WAIT reply, and how many were granted, BUSY or timed out.
 *
 * usage: mega-timeline HOST PORT ADMIN_KEY_FILE [CONNECTIONS]
 * It uploads CONNECTIONS MEGADEAL coupons first (AUTH with the key in ADMIN_KEY_FILE).
 *
 * Grants per window are measured two ways. Over the WAIT reply times (sliding): this overstates
 * when a WAIT reaches the server after its task was granted, as the first ones can while the
 * server still reads the burst of REQUESTs; that reply then goes out at WAIT time, not at grant
 * time. And from STATS megadeal.granted, sampled every millisecond: for two samples a and b with
 * b received less than a second after a was sent, every grant counted between them was
 * committed within that second, so the largest difference is a sound count. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define MT_CONNS_DEFAULT 200
#define MT_CONNS_MAX     10000
#define MT_LINE          4096  /* a reply line: a task id and a coupon fit easily */
#define MT_TIMEOUT_MS    60000 /* no reply for this long: the server is stuck, give up */
#define MT_UPLOAD_CHUNK  1000  /* coupons per UPLOAD */
#define MT_WINDOW_NS     1000000000LL
#define MT_SAMPLE_NS     1000000LL /* one STATS sample a millisecond */

struct client {
    int fd;
    char buf[MT_LINE];
    size_t len;
    char task[PROTO_TASK_MAX + 1];
    int64_t sent_ns, reply_ns; /* REQUEST sent, WAIT answered */
    enum { C_REQUESTED, C_WAITING, C_DONE } state;
    enum proto_err result; /* of the WAIT, or of the REQUEST when refused */
};

/* One STATS reply: when it was asked and answered, and megadeal.granted in it. */
struct sample {
    int64_t sent_ns, recv_ns;
    uint64_t granted;
};

struct totals {
    unsigned granted, busy, timeout, no_coupons, other;
    uint64_t inflight_max, inflight_nonzero;
    int64_t next_sample_ns; /* when to send the next STATS; 0 while one is outstanding */
    int64_t sample_sent_ns;
    uint64_t sample_granted;
    struct sample *samples;
    size_t n_samples, cap_samples;
};

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
die(const char *what)
{
    fprintf(stderr, "mega-timeline: %s\n", what);
    exit(1);
}

static void
die_errno(const char *what)
{
    fprintf(stderr, "mega-timeline: %s: %s\n", what, errno ? strerror(errno) : "closed");
    exit(1);
}

static int
connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("cannot resolve the host");
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die_errno("cannot connect");
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void
send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die_errno("send failed");
        data += n;
        len -= (size_t)n;
    }
}

/* Takes one complete line out of c's buffer into line; false when there is none yet. */
static bool
take_line(struct client *c, char line[MT_LINE])
{
    char *lf = memchr(c->buf, '\n', c->len);
    if (!lf)
        return false;
    size_t n = (size_t)(lf - c->buf);
    memcpy(line, c->buf, n);
    line[n] = '\0';
    c->len -= n + 1;
    memmove(c->buf, lf + 1, c->len);
    return true;
}

/* Reads what is there (after poll said so). */
static void
fill(struct client *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0);
    if (n == 0)
        errno = 0;
    if (n <= 0)
        die_errno("the server closed a connection");
    c->len += (size_t)n;
}

/* Blocks until a whole line arrives. */
static void
read_line(struct client *c, char line[MT_LINE])
{
    while (!take_line(c, line)) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        if (poll(&pf, 1, MT_TIMEOUT_MS) != 1)
            die("no reply from the server");
        fill(c);
    }
}

/* Reads a reply's lines up to its status line, which is left in line. */
static void
read_reply(struct client *c, char line[MT_LINE])
{
    do
        read_line(c, line);
    while (proto_reply_kind(line, strlen(line)) == PROTO_REPLY_DATA);
}

static void
read_key(const char *path, char key[PROTO_KEY_MAX + 1])
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(key, PROTO_KEY_MAX + 1, f))
        die_errno("cannot read the admin key file");
    fclose(f);
    key[strcspn(key, "\r\n")] = '\0';
}

/* AUTH, then n MEGADEAL coupons with codes unique to this run, in chunks. */
static void
preload(struct client *admin, const char *key, unsigned n, const char *run)
{
    char line[MT_LINE];
    char *buf = malloc((size_t)MT_UPLOAD_CHUNK * 96 + 64);
    if (!buf)
        die("out of memory");
    int len = snprintf(buf, 256, "AUTH %s\n", key);
    send_all(admin->fd, buf, (size_t)len);
    read_reply(admin, line);
    if (strcmp(line, "OK") != 0)
        die("AUTH refused: wrong key file?");
    for (unsigned done = 0; done < n;) {
        unsigned k = n - done < MT_UPLOAD_CHUNK ? n - done : MT_UPLOAD_CHUNK;
        size_t off = (size_t)sprintf(buf, "UPLOAD %u\n", k);
        for (unsigned i = 0; i < k; i++)
            off += (size_t)sprintf(buf + off, "MT-%s-%06u,MEGADEAL,10,PERCENT,2099-12-31,1\n", run,
                                   done + i);
        send_all(admin->fd, buf, off);
        read_reply(admin, line);
        if (strncmp(line, "OK uploaded=", 12) != 0) {
            fprintf(stderr, "mega-timeline: UPLOAD failed: %s\n", line);
            exit(1);
        }
        done += k;
    }
    free(buf);
}

/* Sends every REQUEST back to back. */
static void
request_all(struct client *cs, unsigned n, const char *run)
{
    char line[MT_LINE];
    for (unsigned i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "REQUEST mt-%s-%u MEGADEAL\n", run, i);
        cs[i].sent_ns = now_ns();
        send_all(cs[i].fd, line, (size_t)len);
    }
}

/* The REQUEST's reply: a queued task WAITs at once; a refusal is counted. */
static void
on_request_reply(struct client *c, const char *line, struct totals *t)
{
    const char *v;
    size_t vl;
    size_t len = strlen(line);
    if (proto_reply_kind(line, len) == PROTO_REPLY_OK &&
        proto_reply_field(line, len, "task", &v, &vl) && vl <= PROTO_TASK_MAX) {
        char cmd[MT_LINE];
        memcpy(c->task, v, vl);
        c->task[vl] = '\0';
        int n = snprintf(cmd, sizeof cmd, "WAIT %s\n", c->task);
        send_all(c->fd, cmd, (size_t)n);
        c->state = C_WAITING;
        return;
    }
    c->state = C_DONE;
    c->result = proto_reply_err(line, len);
    t->busy += c->result == PROTO_ERR_BUSY;
    t->no_coupons += c->result == PROTO_ERR_NO_COUPONS;
    t->other += c->result != PROTO_ERR_BUSY && c->result != PROTO_ERR_NO_COUPONS;
}

static void
on_wait_reply(struct client *c, const char *line, int64_t at, struct totals *t)
{
    c->reply_ns = at;
    c->state = C_DONE;
    size_t len = strlen(line);
    bool ok = proto_reply_kind(line, len) == PROTO_REPLY_OK;
    c->result = ok ? PROTO_OK : proto_reply_err(line, len);
    if (ok && strstr(line, " status=granted "))
        t->granted++;
    else if (c->result == PROTO_ERR_TIMEOUT)
        t->timeout++;
    else if (c->result == PROTO_ERR_NO_COUPONS)
        t->no_coupons++;
    else
        t->other++;
}

static void
add_sample(struct totals *t, int64_t recv_ns)
{
    if (t->n_samples == t->cap_samples) {
        size_t cap = t->cap_samples ? t->cap_samples * 2 : 4096;
        struct sample *v = realloc(t->samples, cap * sizeof *v);
        if (!v)
            die("out of memory");
        t->samples = v;
        t->cap_samples = cap;
    }
    t->samples[t->n_samples++] = (struct sample){t->sample_sent_ns, recv_ns, t->sample_granted};
}

/* STATS reply lines on the admin connection: megadeal.in_flight and megadeal.granted. */
static void
on_stats(struct client *admin, struct totals *t)
{
    char line[MT_LINE];
    while (take_line(admin, line)) {
        const char *name;
        size_t nl;
        uint64_t v;
        size_t len = strlen(line);
        if (proto_reply_stat(line, len, &name, &nl, &v)) {
            if (nl == 18 && memcmp(name, "megadeal.in_flight", 18) == 0) {
                t->inflight_nonzero += v > 0;
                if (v > t->inflight_max)
                    t->inflight_max = v;
            } else if (nl == 16 && memcmp(name, "megadeal.granted", 16) == 0) {
                t->sample_granted = v;
            }
        }
        if (proto_reply_kind(line, len) != PROTO_REPLY_DATA) {
            int64_t now = now_ns();
            add_sample(t, now);
            t->next_sample_ns = now + MT_SAMPLE_NS;
        }
    }
}

/* Sends the next STATS when its time has come; returns the poll timeout until then. */
static int
sample_stats(struct client *admin, struct totals *t)
{
    if (t->next_sample_ns == 0)
        return MT_TIMEOUT_MS;
    int64_t left = t->next_sample_ns - now_ns();
    if (left > 0)
        return (int)(left / 1000000) + 1;
    t->sample_sent_ns = now_ns();
    send_all(admin->fd, "STATS\n", 6);
    t->next_sample_ns = 0;
    return MT_TIMEOUT_MS;
}

static unsigned
set_polls(const struct client *cs, unsigned n, struct pollfd *pf)
{
    unsigned open = 0;
    for (unsigned i = 0; i < n; i++) {
        bool w = cs[i].state != C_DONE;
        pf[i] = (struct pollfd){.fd = w ? cs[i].fd : -1, .events = POLLIN};
        open += w;
    }
    return open;
}

/* One loop over every connection: REQUEST replies turn into WAITs, WAIT replies are timed as
 * they arrive, and the admin connection samples STATS meanwhile. */
static void
run_loop(struct client *cs, unsigned n, struct client *admin, struct totals *t)
{
    struct pollfd *pf = calloc(n + 1, sizeof *pf);
    if (!pf)
        die("out of memory");
    t->next_sample_ns = now_ns();
    while (set_polls(cs, n, pf) > 0) {
        int timeout = sample_stats(admin, t);
        pf[n] = (struct pollfd){.fd = admin->fd, .events = POLLIN};
        int ready = poll(pf, n + 1, timeout);
        int64_t at = now_ns();
        if (ready < 0 && errno != EINTR)
            die_errno("poll");
        if (ready == 0 && timeout == MT_TIMEOUT_MS)
            die("no reply from the server");
        char line[MT_LINE];
        for (unsigned i = 0; ready > 0 && i < n; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            fill(&cs[i]);
            while (cs[i].state != C_DONE && take_line(&cs[i], line)) {
                if (cs[i].state == C_REQUESTED)
                    on_request_reply(&cs[i], line, t);
                else
                    on_wait_reply(&cs[i], line, at, t);
            }
        }
        if (pf[n].revents & POLLIN) {
            fill(admin);
            on_stats(admin, t);
        }
    }
    free(pf);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The most values of the sorted v in any window (t - 1 s, t]. */
static unsigned
max_in_window(const int64_t *v, unsigned n)
{
    unsigned best = 0, lo = 0;
    for (unsigned hi = 0; hi < n; hi++) {
        while (v[hi] - v[lo] >= MT_WINDOW_NS)
            lo++;
        if (hi - lo + 1 > best)
            best = hi - lo + 1;
    }
    return best;
}

/* The most grants STATS proves were committed within one second: the largest granted(b) -
 * granted(a) over samples with b received less than a second after a was sent. */
static uint64_t
max_in_window_stats(const struct sample *v, size_t n)
{
    uint64_t best = 0;
    size_t a = 0;
    for (size_t b = 0; b < n; b++) {
        while (a < b && v[b].recv_ns - v[a].sent_ns >= MT_WINDOW_NS)
            a++;
        if (a < b && v[b].granted - v[a].granted > best)
            best = v[b].granted - v[a].granted;
    }
    return best;
}

static double
percentile(const int64_t *sorted, unsigned n, double p)
{
    if (n == 0)
        return 0;
    unsigned i = (unsigned)(p / 100.0 * n + 0.999999);
    return (double)sorted[(i ? i : 1) - 1] / 1e9;
}

static void
report(const struct client *cs, unsigned n, const struct totals *t, int64_t t0)
{
    int64_t *grants = calloc(n + 1, sizeof *grants), *waits = calloc(n + 1, sizeof *waits);
    if (!grants || !waits)
        die("out of memory");
    unsigned g = 0, w = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct client *c = &cs[i];
        if (c->reply_ns == 0)
            continue;
        waits[w++] = c->reply_ns - c->sent_ns;
        if (c->result == PROTO_OK)
            grants[g++] = c->reply_ns;
    }
    qsort(grants, g, sizeof *grants, cmp_i64);
    qsort(waits, w, sizeof *waits, cmp_i64);
    printf("requests            %u at once; each WAITs as soon as its task id comes back\n", n);
    printf("granted             %u\n", t->granted);
    printf("busy                %u\n", t->busy);
    printf("timeout             %u\n", t->timeout);
    printf("no_coupons          %u\n", t->no_coupons);
    printf("other               %u\n", t->other);
    printf("max grants in 1 s   %llu   (STATS megadeal.granted, %zu samples 1 ms apart: grants "
           "committed within one second)\n",
           (unsigned long long)max_in_window_stats(t->samples, t->n_samples), t->n_samples);
    printf("                    %u   (sliding window over the %u WAIT reply times; overstates "
           "when a WAIT arrives after its grant)\n",
           max_in_window(grants, g), g);
    printf("max in flight       %llu   (STATS megadeal.in_flight in the same samples, %llu "
           "non-zero)\n",
           (unsigned long long)t->inflight_max, (unsigned long long)t->inflight_nonzero);
    printf("wait p50            %.3f s   (REQUEST sent to WAIT reply, %u tasks)\n",
           percentile(waits, w, 50), w);
    printf("wait p99            %.3f s\n", percentile(waits, w, 99));
    if (g > 0)
        printf("grant replies       from %.3f s to %.3f s after the first REQUEST\n",
               (double)(grants[0] - t0) / 1e9, (double)(grants[g - 1] - t0) / 1e9);
    free(grants);
    free(waits);
}

static void
raise_nofile(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int
main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: mega-timeline HOST PORT ADMIN_KEY_FILE [CONNECTIONS]\n");
        return 2;
    }
    unsigned n = argc == 5 ? (unsigned)strtoul(argv[4], NULL, 10) : MT_CONNS_DEFAULT;
    if (n < 1 || n > MT_CONNS_MAX) {
        fprintf(stderr, "mega-timeline: CONNECTIONS must be 1..%d\n", MT_CONNS_MAX);
        return 2;
    }
    char key[PROTO_KEY_MAX + 1], run[32];
    read_key(argv[3], key);
    snprintf(run, sizeof run, "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
    raise_nofile(n + 16);
    struct client *admin = calloc(1, sizeof *admin), *cs = calloc(n, sizeof *cs);
    if (!admin || !cs)
        die("out of memory");
    admin->fd = connect_to(argv[1], argv[2]);
    preload(admin, key, n, run);
    for (unsigned i = 0; i < n; i++)
        cs[i].fd = connect_to(argv[1], argv[2]);
    struct totals t = {0};
    int64_t t0 = now_ns();
    request_all(cs, n, run);
    run_loop(cs, n, admin, &t);
    report(cs, n, &t, t0);
    free(t.samples);
    for (unsigned i = 0; i < n; i++)
        close(cs[i].fd);
    close(admin->fd);
    free(cs);
    free(admin);
    return 0;
}
