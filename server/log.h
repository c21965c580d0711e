/* log.h - the operation log: one logfmt line per operation, written by a writer thread so a
 * slow disk never stalls the event loop. */
#ifndef COUPOND_LOG_H
#define COUPOND_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The loop hands lines to the writer once this much is buffered, or at log_flush. */
#define LOG_HANDOFF_BYTES (64 * 1024)
/* Lines queued for the writer beyond this are dropped and counted: a log disk that cannot keep
 * up must cost log lines, never the server's memory or latency. */
#define LOG_QUEUE_MAX (16 * 1024 * 1024)
#define LOG_LINE_MAX  1024 /* longer lines are cut; users and codes are bounded well below */

struct log;

/* One operation. NULL or empty string fields are left out of the line; `us` < 0 too. */
struct log_op {
    uint64_t conn;
    const char *peer;
    const char *op;
    const char *user;
    const char *code;
    const char *type;
    const char *result; /* "OK" or an error code name */
    int64_t us;         /* microseconds the operation took */
    const char *extra;  /* pre-formatted "key=value ..." fields, or NULL */
};

/* Starts the log: appends to `path`, or writes to stderr when path is NULL.
 * NULL with a one-line reason in errbuf on failure. */
struct log *log_open(const char *path, char *errbuf, size_t errlen);

/* Writes out everything queued, stops the writer and frees the log. */
void log_close(struct log *lg);

/* Asks the writer to reopen the file (for SIGHUP after log rotation). No-op for stderr. */
void log_reopen(struct log *lg);

/* Queues one operation line; `now` is the wall-clock time in seconds. */
void log_op(struct log *lg, double now, const struct log_op *op);

/* Queues a server event line: time, op=`event`, then the printf-formatted logfmt fields. */
void log_event(struct log *lg, double now, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Hands the lines queued so far to the writer. The server calls it once per loop iteration. */
void log_flush(struct log *lg);

#endif
