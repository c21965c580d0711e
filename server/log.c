/* log.c - buffered logfmt operation log with a writer thread.
 *
 * The loop thread formats lines into `front` (no locking), and hands them over in blocks to
 * `back` under a mutex. The writer thread swaps `back` out and write()s it, so a slow or full
 * log disk delays only the writer. A failing write is reported once on stderr, not per line. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct buf {
    char *data;
    size_t len, cap;
};

struct log {
    /* loop thread only */
    struct buf front;
    uint64_t front_lines;
    int64_t cached_sec; /* the second `cached_time` was formatted for */
    char cached_time[24];

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
};

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
    char note[96];
    int err = 0;
    bool ok = write_all(lg->fd, lg->out.data, lg->out.len, &err);
    if (ok && dropped) {
        int n =
            snprintf(note, sizeof note, "op=LOG_DROPPED lines=%llu\n", (unsigned long long)dropped);
        ok = write_all(lg->fd, note, (size_t)n, &err);
    }
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
    lg->cached_sec = -1;
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

/* Appending to a line without printf: the log formats a line per operation, and the printf
 * machinery was a fifth of the server's instructions. Each append stops at `end`. */
static char *
put_mem(char *p, const char *end, const char *s, size_t n)
{
    size_t room = (size_t)(end - p);
    if (n > room)
        n = room;
    memcpy(p, s, n);
    return p + n;
}

static char *
put_str(char *p, const char *end, const char *s)
{
    return put_mem(p, end, s, strlen(s));
}

static char *
put_u64(char *p, const char *end, uint64_t v, int min_digits)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 || n < min_digits);
    while (n > 0 && p < end)
        *p++ = digits[--n];
    return p;
}

/* "2026-11-24T02:28:01.123456Z"; the date part is formatted once per second. */
static char *
put_time(struct log *lg, double now, char *p, const char *end)
{
    int64_t sec = (int64_t)now;
    int64_t usec = (int64_t)((now - (double)sec) * 1e6);
    if (usec < 0 || usec > 999999)
        usec = 0;
    if (sec != lg->cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(lg->cached_time, sizeof lg->cached_time, "%Y-%m-%dT%H:%M:%S", &tm);
        lg->cached_sec = sec;
    }
    p = put_str(p, end, lg->cached_time);
    p = put_str(p, end, ".");
    p = put_u64(p, end, (uint64_t)usec, 6);
    return put_str(p, end, "Z");
}

/* The length of v when it can be written bare, or SIZE_MAX when logfmt needs it quoted. */
static size_t
bare_len(const char *v)
{
    const unsigned char *s = (const unsigned char *)v;
    for (; *s; s++)
        if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || *s >= 0x7f)
            return SIZE_MAX;
    return s == (const unsigned char *)v ? SIZE_MAX : (size_t)(s - (const unsigned char *)v);
}

/* Appends `key` (" name=") and a value known to need no quotes: the server's own words, and
 * codes, which protocol/ allows only A-Z 0-9 _ - . in. */
static char *
put_bare(char *p, const char *end, const char *key, const char *v)
{
    if (!v)
        return p;
    p = put_str(p, end, key);
    return put_str(p, end, v);
}

/* Appends `key` (" name=") and the value, quoting and escaping it when logfmt needs it. */
static char *
put_field(char *p, const char *end, const char *key, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    if (!v)
        return p;
    p = put_str(p, end, key);
    size_t n = bare_len(v);
    if (n != SIZE_MAX)
        return put_mem(p, end, v, n);
    p = put_str(p, end, "\"");
    for (const unsigned char *s = (const unsigned char *)v; *s && p + 5 < end; s++) {
        if (*s == '"' || *s == '\\') {
            *p++ = '\\';
            *p++ = (char)*s;
        } else if (*s < ' ' || *s >= 0x7f) {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 15];
        } else {
            *p++ = (char)*s;
        }
    }
    return put_str(p, end, "\"");
}

/* Reserves room for one line in `front`; NULL when memory is short (the line is dropped). */
static char *
line_begin(struct log *lg)
{
    if (lg->front.len + LOG_LINE_MAX > LOG_HANDOFF_BYTES)
        log_flush(lg);
    return buf_reserve(&lg->front, LOG_LINE_MAX) ? lg->front.data + lg->front.len : NULL;
}

static void
line_end(struct log *lg, char *p)
{
    char *start = lg->front.data + lg->front.len;
    if (p > start + LOG_LINE_MAX - 1)
        p = start + LOG_LINE_MAX - 1;
    *p++ = '\n';
    lg->front.len = (size_t)(p - lg->front.data);
    lg->front_lines++;
}

/* Starts a line with its time field; returns where it goes on, with its end in *end, or NULL
 * when memory is short (the line is dropped). */
static char *
line_open(struct log *lg, double now, const char **end)
{
    char *start = line_begin(lg);
    if (!start)
        return NULL;
    *end = start + LOG_LINE_MAX - 1;
    return put_time(lg, now, put_str(start, *end, "time="), *end);
}

void
log_op(struct log *lg, double now, const struct log_op *op)
{
    const char *end;
    char *p = line_open(lg, now, &end);
    if (!p)
        return;
    p = put_str(p, end, " conn=");
    p = put_u64(p, end, op->conn, 1);
    p = put_bare(p, end, " peer=", op->peer);
    p = put_bare(p, end, " op=", op->op);
    p = put_field(p, end, " user=", op->user && *op->user ? op->user : NULL);
    p = put_bare(p, end, " code=", op->code && *op->code ? op->code : NULL);
    p = put_bare(p, end, " type=", op->type);
    p = put_bare(p, end, " result=", op->result);
    if (op->us >= 0) {
        p = put_str(p, end, " us=");
        p = put_u64(p, end, (uint64_t)op->us, 1);
    }
    if (op->extra && *op->extra) {
        p = put_str(p, end, " ");
        p = put_str(p, end, op->extra);
    }
    line_end(lg, p);
}

void
log_event(struct log *lg, double now, const char *event, const char *fmt, ...)
{
    const char *end;
    char *p = line_open(lg, now, &end);
    if (!p)
        return;
    p = put_bare(p, end, " op=", event);
    if (fmt && *fmt && p + 1 < end) {
        *p++ = ' ';
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p, (size_t)(end - p), fmt, ap);
        va_end(ap);
        if (n > 0)
            p += n;
    }
    line_end(lg, p);
}
