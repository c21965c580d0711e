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
/* Longer lines are cut: the value that does not fit is shortened (and quoted), the fields after
 * it are left out, and the line ends in " cut=1". Users and codes are bounded well below it;
 * only a long data dir or an error message can reach it. The limit counts the newline. */
#define LOG_LINE_MAX 1024

struct log;

/* A field's value is a string or a number. */
enum log_kind { LOG_STR, LOG_UINT, LOG_INT };

/* One key=value field of a line. log.c quotes and escapes every string value the same way
 * (coupond(8)), so callers pass values as they are and never format them. The key is a
 * constant bare word ([a-z0-9_.]); a NULL string value leaves the field out. */
struct log_field {
    const char *key;
    enum log_kind kind;
    union {
        const char *s;
        uint64_t u;
        int64_t i;
    };
};

static inline struct log_field
log_str(const char *key, const char *s)
{
    return (struct log_field){.key = key, .kind = LOG_STR, .s = s};
}

static inline struct log_field
log_uint(const char *key, uint64_t u)
{
    return (struct log_field){.key = key, .kind = LOG_UINT, .u = u};
}

static inline struct log_field
log_int(const char *key, int64_t i)
{
    return (struct log_field){.key = key, .kind = LOG_INT, .i = i};
}

/* The number of fields in an array of them (not a pointer). */
#define LOG_NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* The extra fields one module fills in for a line another module writes (a command's log line
 * gets its MEGADEAL task number from megadeal.c). String values must stay valid until the
 * line is written. */
#define LOG_NOTE_MAX 4 /* the most any line needs: task, position, again, and one to spare */
struct log_note {
    struct log_field f[LOG_NOTE_MAX];
    size_t n;
};

/* Appends a field to the note; a field beyond LOG_NOTE_MAX is left out. */
void log_note_add(struct log_note *note, struct log_field f);

/* One operation. NULL or empty string fields are left out of the line; `us` < 0 too. */
struct log_op {
    uint64_t conn;
    const char *peer;
    const char *op;
    const char *user;
    const char *code;
    const char *type;
    const char *result;            /* "OK" or an error code name */
    int64_t us;                    /* microseconds the operation took */
    const struct log_field *extra; /* n_extra more fields after these, or NULL */
    size_t n_extra;
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

/* Queues a server event line: time, op=`event`, then the `n` fields (`fields` may be NULL when
 * n is 0). */
void log_event(struct log *lg, double now, const char *event, const struct log_field *fields,
               size_t n);

/* Hands the lines queued so far to the writer. The server calls it once per loop iteration. */
void log_flush(struct log *lg);

#endif
