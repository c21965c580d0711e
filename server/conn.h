/* conn.h - one client connection: input framing, bounded output, blocking and resuming, the
 * per-connection part of the group commit. */
#ifndef COUPOND_CONN_H
#define COUPOND_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct server;
struct upload;

/* Input is read into a buffer made when data arrives and freed when all of it is consumed,
 * so idle connections hold none. It fits a maximal line with its CR LF, and then some, so
 * one read usually brings many pipelined commands. */
#define CONN_IN_BUF (16 * 1024)
/* A client that lets this much of its replies pile up unsent is cut off: it does not read,
 * and its replies must not grow the server's memory without end. The largest single reply
 * (100 REJECT lines, or STATS) is a few KiB. */
#define CONN_OUT_MAX    (256 * 1024)
#define CONN_OUT_MIN    4096 /* first output buffer size */
#define CONN_PEER_MAX   64   /* "[ipv6]:port" */
#define CONN_AUTH_DELAY 1.0  /* seconds before a wrong AUTH is answered */
#define CONN_AUTH_TRIES 3    /* wrong keys before the connection is closed */
/* A closing connection first shuts down its sending side and discards what the peer still
 * sends, for at most this long: closing with unread input makes the kernel send a reset, and
 * a reset destroys replies the peer has not read yet. */
#define CONN_LINGER_TIMEOUT 2.0
#define CONN_LINGER_BUF     4096
/* A request line must be complete this many seconds after its first byte arrived, or within
 * --idle-timeout when that is shorter (and never, when it is off). Every read resets the idle
 * timer, so a client that dribbles a never-ending line a byte at a time (slowloris) would
 * otherwise hold its slot and its input buffer forever; no real client takes seconds to send
 * one line. */
#define CONN_LINE_TIMEOUT 30.0

struct conn {
    struct server *srv;
    uint64_t id;
    int fd;
    char peer[CONN_PEER_MAX];
    ev_io read_w, write_w;
    ev_timer idle_w;  /* --idle-timeout */
    ev_timer delay_w; /* a delayed reply (wrong AUTH) */
    double last_active;
    double line_started; /* when the unfinished line in `in` began to arrive, or 0 */

    /* input */
    char *in; /* CONN_IN_BUF bytes, or NULL */
    size_t in_len;
    bool skipping;         /* inside a line longer than PROTO_MAX_LINE: drop up to its LF */
    struct upload *upload; /* reading UPLOAD records, or NULL */
    uint64_t drop_lines;   /* record lines left to drop (UPLOAD refused) */
    enum proto_err drop_err;

    /* output: bytes [out_off, out_sendable) may be sent; the rest wait for the commit */
    char *out;
    size_t out_off, out_len, out_cap, out_sendable;

    /* the group commit */
    size_t group_mark;   /* out_len when the connection joined the group */
    unsigned group_cmds; /* commands answered inside the group */
    bool in_group;

    /* state */
    bool spoke; /* a first command line was seen (the HTTP check is done) */
    bool authed;
    uint8_t auth_failures;
    bool blocked;   /* waiting on a delayed reply or a purge: input waits in `in` */
    bool closing;   /* close once the output is written */
    bool eof;       /* the peer closed its side: answer what it sent, then close */
    bool lingering; /* replies all written; draining the peer's input before the close */
    bool dead;      /* closed; freed at the iteration's end */
    bool in_flush, in_resume;

    /* lists */
    struct conn *prev, *next; /* server's conns */
    struct conn *group_next, *flush_next, *resume_next, *dead_next;
};

/* Accepted socket `fd` (non-blocking) from `peer`: makes the connection and starts reading. */
struct conn *conn_new(struct server *srv, int fd, const char *peer);

/* Closes at once: stops its watchers, closes the socket, and leaves it to be freed at the end
 * of the iteration (pending work may still point at it; it checks `dead`). */
void conn_close(struct conn *c);

/* Frees a dead connection. Only the server's iteration end calls it. */
void conn_free(struct conn *c);

/* Appends reply bytes. When the connection is in the group, they wait for the commit. */
void conn_write(struct conn *c, const char *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "ERR CODE message\n" */
void conn_error(struct conn *c, enum proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks the end of one command's reply: counts it for the group when in one, else makes the
 * output so far sendable. */
void conn_reply_done(struct conn *c);

/* Puts the connection in the current group: its later replies wait for the commit. */
void conn_join_group(struct conn *c);

/* Called by the server after the group's commit: on success the held replies become
 * sendable; on failure each command of the group is answered ERR INTERNAL instead. */
void conn_group_done(struct conn *c, bool committed, const char *why);

/* Writes what is sendable; arms the write watcher when the socket is full. */
void conn_flush(struct conn *c);

/* Blocks the connection: no more input is processed until conn_unblock. */
void conn_block(struct conn *c);
/* Unblocks it; its buffered input is processed at the next iteration. */
void conn_unblock(struct conn *c);
/* Processes buffered input (the server's deferred work calls it for unblocked connections). */
void conn_resume(struct conn *c);

/* Closes after the pending output is written (QUIT, 3rd wrong key). */
void conn_close_after_flush(struct conn *c);

#endif
