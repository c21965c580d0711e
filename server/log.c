/* log.c - buffered logfmt operation log with a writer thread.
 *
 * The loop thread formats lines into `front` (no locking), and hands them over in blocks to
 * `back` under a mutex. The writer thread swaps `back` out and write()s it, so a slow or full
 * log disk delays only the writer. A failing write is reported once on stderr, not per line. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct buf {
    char *data;
    size_t len, cap;
};

/* The date part of the time field, formatted once per second. */
struct clock {
    int64_t sec; /* the second `date` was formatted for, or -1 */
    char date[24];
};

struct log {
    /* loop thread only */
    struct buf front;
    uint64_t front_lines;
    struct clock front_clock;

    /* shared, under `mu` */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct buf back;
    uint64_t dropped; /* lines dropped because the queue was full */
    bool reopen, stop;

    /* writer thread only */
    pthread_t thread;
    struct buf out;
    int fd;
    char *path; /* NULL: stderr */
    bool failing;
    struct clock writer_clock;
};

static size_t format_dropped(struct clock *ck, char buf[LOG_LINE_MAX], uint64_t dropped);

static bool
buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : LOG_HANDOFF_BYTES * 2;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

static void
report(const char *what, int err)
{
    /* Straight to stderr with one write: this is the channel of last resort. */
    char msg[256];
    int n = err ? snprintf(msg, sizeof msg, "coupond: log: %s: %s\n", what, strerror(err))
                : snprintf(msg, sizeof msg, "coupond: log: %s\n", what);
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
        return; /* nothing left to tell it to */
}

static int
open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static bool
write_all(int fd, const char *p, size_t len, int *err)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void
writer_reopen(struct log *lg)
{
    if (!lg->path)
        return;
    int fd = open_file(lg->path);
    if (fd < 0) {
        report("cannot reopen log file, keeping the old one", errno);
        return;
    }
    close(lg->fd);
    lg->fd = fd;
}

/* Writes one block; reports the first failure and the recovery, once each. */
static void
writer_output(struct log *lg, uint64_t dropped)
{
    char note[LOG_LINE_MAX];
    int err = 0;
    bool ok = write_all(lg->fd, lg->out.data, lg->out.len, &err);
    if (ok && dropped)
        ok = write_all(lg->fd, note, format_dropped(&lg->writer_clock, note, dropped), &err);
    if (!ok && !lg->failing)
        report("cannot write the log; dropping lines until it works again", err);
    else if (ok && lg->failing)
        report("writing the log works again", 0);
    lg->failing = !ok;
    lg->out.len = 0;
}

static void *
writer_main(void *arg)
{
    struct log *lg = arg;
    pthread_mutex_lock(&lg->mu);
    for (;;) {
        while (lg->back.len == 0 && !lg->reopen && !lg->stop)
            pthread_cond_wait(&lg->cond, &lg->mu);
        struct buf tmp = lg->out;
        lg->out = lg->back;
        lg->back = tmp;
        bool reopen = lg->reopen, stop = lg->stop;
        uint64_t dropped = lg->dropped;
        lg->reopen = false;
        lg->dropped = 0;
        pthread_mutex_unlock(&lg->mu);

        if (reopen)
            writer_reopen(lg);
        if (lg->out.len || dropped)
            writer_output(lg, dropped);

        pthread_mutex_lock(&lg->mu);
        if (stop && lg->back.len == 0)
            break;
    }
    pthread_mutex_unlock(&lg->mu);
    return NULL;
}

struct log *
log_open(const char *path, char *errbuf, size_t errlen)
{
    struct log *lg = calloc(1, sizeof *lg);
    if (!lg) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    lg->front_clock.sec = lg->writer_clock.sec = -1;
    lg->fd = STDERR_FILENO;
    if (path) {
        lg->path = strdup(path);
        lg->fd = lg->path ? open_file(path) : -1;
        if (lg->fd < 0) {
            snprintf(errbuf, errlen, "cannot open log file %s: %s", path, strerror(errno));
            free(lg->path);
            free(lg);
            return NULL;
        }
    }
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->cond, NULL);
    if (pthread_create(&lg->thread, NULL, writer_main, lg) != 0) {
        snprintf(errbuf, errlen, "cannot start the log writer thread");
        if (lg->path)
            close(lg->fd);
        free(lg->path);
        free(lg);
        return NULL;
    }
    return lg;
}

void
log_flush(struct log *lg)
{
    if (lg->front.len == 0)
        return;
    pthread_mutex_lock(&lg->mu);
    if (lg->back.len + lg->front.len > LOG_QUEUE_MAX || !buf_reserve(&lg->back, lg->front.len)) {
        lg->dropped += lg->front_lines;
    } else {
        memcpy(lg->back.data + lg->back.len, lg->front.data, lg->front.len);
        lg->back.len += lg->front.len;
    }
    pthread_cond_signal(&lg->cond);
    pthread_mutex_unlock(&lg->mu);
    lg->front.len = 0;
    lg->front_lines = 0;
}

void
log_close(struct log *lg)
{
    if (!lg)
        return;
    log_flush(lg);
    pthread_mutex_lock(&lg->mu);
    lg->stop = true;
    pthread_cond_signal(&lg->cond);
    pthread_mutex_unlock(&lg->mu);
    pthread_join(lg->thread, NULL);
    if (lg->path)
        close(lg->fd);
    pthread_mutex_destroy(&lg->mu);
    pthread_cond_destroy(&lg->cond);
    free(lg->front.data);
    free(lg->back.data);
    free(lg->out.data);
    free(lg->path);
    free(lg);
}

void
log_reopen(struct log *lg)
{
    pthread_mutex_lock(&lg->mu);
    lg->reopen = true;
    pthread_cond_signal(&lg->cond);
    pthread_mutex_unlock(&lg->mu);
}

/* ---- formatting a line ----
 *
 * Without printf: the log formats a line per operation, and the printf machinery was a fifth of
 * the server's instructions. A line is built in place, in LOG_LINE_MAX bytes; room for the cut
 * marker and the newline is kept back, so a cut line still ends cleanly. */

#define CUT_MARK " cut=1"

struct line {
    char *start, *p;
    const char *end; /* where the fields must stop: the marker and newline go after */
    bool cut;        /* a field did not fit: nothing more is written but the marker */
};

static size_t
room(const struct line *l)
{
    return (size_t)(l->end - l->p);
}

static void
put_mem(struct line *l, const char *s, size_t n)
{
    memcpy(l->p, s, n);
    l->p += n;
}

/* " key=" when it fits with `value_len` more bytes; false (the line is cut) when not. */
static bool
put_key(struct line *l, const char *key, size_t value_len)
{
    size_t klen = strlen(key);
    if (l->cut || room(l) < 1 + klen + 1 + value_len) {
        l->cut = true;
        return false;
    }
    *l->p++ = ' ';
    put_mem(l, key, klen);
    *l->p++ = '=';
    return true;
}

/* Decimal digits of v, right-aligned in digits[20]; returns how many, at least min_digits. */
static size_t
fmt_u64(char digits[20], uint64_t v, size_t min_digits)
{
    size_t n = 0;
    do {
        digits[19 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 || n < min_digits);
    return n;
}

static void
put_uint_field(struct line *l, const char *key, uint64_t v, bool negative)
{
    char digits[20];
    size_t n = fmt_u64(digits, v, 1);
    if (!put_key(l, key, n + negative))
        return;
    if (negative)
        *l->p++ = '-';
    put_mem(l, digits + 20 - n, n);
}

/* The bytes logfmt can write bare, one bit each: printable ASCII but for space, `"`, `=` and
 * `\\` (0x21..0x7e less 0x22, 0x3d, 0x5c). A bitmap, because every value of every line is
 * scanned with it. */
static const uint64_t bare_bits[4] = {UINT64_C(0xdffffffa00000000), UINT64_C(0x7fffffffefffffff), 0,
                                      0};

static inline bool
bare_byte(unsigned char c)
{
    return (bare_bits[c >> 6] >> (c & 63)) & 1;
}

/* The length of v when it can be written bare, or SIZE_MAX when logfmt needs it quoted. */
static size_t
bare_len(const char *v)
{
    const unsigned char *s = (const unsigned char *)v;

    while (bare_byte(*s))
        s++;
    if (*s != '\0' || s == (const unsigned char *)v)
        return SIZE_MAX;
    return (size_t)(s - (const unsigned char *)v);
}

/* Writes v quoted and escaped after its key, as much of it as fits with its closing quote; a
 * value that does not fit whole is cut between two characters, never inside an escape. */
static void
put_quoted(struct line *l, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    *l->p++ = '"';
    const unsigned char *s = (const unsigned char *)v;
    for (; *s; s++) {
        bool plain = *s >= ' ' && *s < 0x7f && *s != '"' && *s != '\\';
        size_t need = plain ? 1 : *s == '"' || *s == '\\' ? 2 : 4;
        if (room(l) < need + 1)
            break;
        if (plain) {
            *l->p++ = (char)*s;
        } else if (need == 2) {
            *l->p++ = '\\';
            *l->p++ = (char)*s;
        } else {
            *l->p++ = '\\';
            *l->p++ = 'x';
            *l->p++ = hex[*s >> 4];
            *l->p++ = hex[*s & 15];
        }
    }
    *l->p++ = '"';
    if (*s)
        l->cut = true;
}

/* Appends " key=value", quoting and escaping the value when logfmt needs it, or when it must be
 * cut; a NULL value is left out. */
static void
put_str_field(struct line *l, const char *key, const char *v)
{
    if (!v)
        return;
    size_t n = bare_len(v);
    if (n != SIZE_MAX && !l->cut && room(l) >= 1 + strlen(key) + 1 + n) {
        put_key(l, key, n);
        put_mem(l, v, n);
        return;
    }
    if (put_key(l, key, 2))
        put_quoted(l, v);
}

static void
put_field(struct line *l, const struct log_field *f)
{
    switch (f->kind) {
    case LOG_STR:
        put_str_field(l, f->key, f->s);
        break;
    case LOG_UINT:
        put_uint_field(l, f->key, f->u, false);
        break;
    case LOG_INT:
        put_uint_field(l, f->key, f->i < 0 ? -(uint64_t)f->i : (uint64_t)f->i, f->i < 0);
        break;
    }
}

/* "time=2026-11-24T02:28:01.123456Z" to start a line in buf[LOG_LINE_MAX]; the date part is
 * formatted once per second. */
static void
line_start(struct line *l, char *buf, struct clock *ck, double now)
{
    l->start = l->p = buf;
    l->end = buf + LOG_LINE_MAX - (sizeof CUT_MARK - 1) - 1;
    l->cut = false;
    int64_t sec = (int64_t)now;
    int64_t usec = (int64_t)((now - (double)sec) * 1e6);
    if (usec < 0 || usec > 999999)
        usec = 0;
    if (sec != ck->sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ck->date, sizeof ck->date, "%Y-%m-%dT%H:%M:%S", &tm);
        ck->sec = sec;
    }
    char digits[20];
    size_t n = fmt_u64(digits, (uint64_t)usec, 6);
    put_mem(l, "time=", 5);
    put_mem(l, ck->date, strlen(ck->date));
    *l->p++ = '.';
    put_mem(l, digits + 20 - n, n);
    *l->p++ = 'Z';
}

/* Ends the line with the cut marker if it was cut, and its newline; returns its length. */
static size_t
line_finish(struct line *l)
{
    if (l->cut) {
        memcpy(l->p, CUT_MARK, sizeof CUT_MARK - 1);
        l->p += sizeof CUT_MARK - 1;
    }
    *l->p++ = '\n';
    return (size_t)(l->p - l->start);
}

static void
put_fields(struct line *l, const struct log_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_field(l, &f[i]);
}

/* The writer's own line saying how many lines it had to drop, in the same form as the others. */
static size_t
format_dropped(struct clock *ck, char buf[LOG_LINE_MAX], uint64_t dropped)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct line l;
    line_start(&l, buf, ck, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    const struct log_field f[] = {log_str("op", "LOG_DROPPED"), log_uint("lines", dropped)};
    put_fields(&l, f, LOG_NFIELDS(f));
    return line_finish(&l);
}

/* Starts a line in `front`, with room for LOG_LINE_MAX bytes; false when memory is short (the
 * line is dropped). */
static bool
line_open(struct log *lg, double now, struct line *l)
{
    if (lg->front.len + LOG_LINE_MAX > LOG_HANDOFF_BYTES)
        log_flush(lg);
    if (!buf_reserve(&lg->front, LOG_LINE_MAX))
        return false;
    line_start(l, lg->front.data + lg->front.len, &lg->front_clock, now);
    return true;
}

static void
line_close(struct log *lg, struct line *l)
{
    lg->front.len += line_finish(l);
    lg->front_lines++;
}

void
log_note_add(struct log_note *note, struct log_field f)
{
    if (note->n < LOG_NOTE_MAX)
        note->f[note->n++] = f;
}

void
log_op(struct log *lg, double now, const struct log_op *op)
{
    struct line l;
    if (!line_open(lg, now, &l))
        return;
    put_uint_field(&l, "conn", op->conn, false);
    put_str_field(&l, "peer", op->peer);
    put_str_field(&l, "op", op->op);
    put_str_field(&l, "user", op->user && *op->user ? op->user : NULL);
    put_str_field(&l, "code", op->code && *op->code ? op->code : NULL);
    put_str_field(&l, "type", op->type);
    put_str_field(&l, "result", op->result);
    if (op->us >= 0)
        put_uint_field(&l, "us", (uint64_t)op->us, false);
    put_fields(&l, op->extra, op->n_extra);
    line_close(lg, &l);
}

void
log_event(struct log *lg, double now, const char *event, const struct log_field *fields, size_t n)
{
    struct line l;
    if (!line_open(lg, now, &l))
        return;
    put_str_field(&l, "op", event);
    put_fields(&l, fields, n);
    line_close(lg, &l);
}
