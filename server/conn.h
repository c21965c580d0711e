/* conn.h - the transport: one client connection's socket, its input cut into frames, its
 * bounded output, flow control, timeouts and the lingering close. It knows no commands: it hands
 * each frame to the handler it was given and writes the bytes it is given.
 *
 * Connections live in a pool (one per server), which owns what they share: the loop, a
 * scratch read buffer, the list of connections with output to send at the end of the loop
 * iteration, and the closed ones waiting to be freed. */
#ifndef COUPOND_CONN_H
#define COUPOND_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct conn;
struct conn_pool;
struct log;
struct tls_ctx;

/* Input is read into a buffer made when data arrives and freed when all of it is consumed, so
 * idle connections hold none. It fits a maximal line with its CR LF, and then some, so one
 * read usually brings many pipelined requests. */
#define CONN_IN_BUF (16 * 1024)
_Static_assert(CONN_IN_BUF >= PROTO_FRAME_MIN_BUF, "a longest line must fit the input buffer");
/* Flow control: while this much output is unsent, no more frames are handed over and nothing
 * more is read, so a client pipelining faster than it reads is slowed, never dropped. The
 * largest single reply (100 REJECT lines, STATS, HELP) is a few KiB, so a reply started below
 * this mark ends well below the hard cap; longer replies (EXPORT, GENERATE's codes) are written
 * in parts, each while the output is below this mark (conn_out_room, on_drain). */
#define CONN_OUT_SOFT (64 * 1024)
/* A client whose unsent output passes this is cut off: only one that stopped reading while a
 * reply was being written gets here, and its replies must not grow memory without end. */
#define CONN_OUT_MAX (256 * 1024)
/* A client that takes no byte of its backed-up output (over CONN_OUT_SOFT) for this long has
 * stopped reading: it is cut off, so it cannot hold its slot and buffers until the idle
 * timeout. A reader on the slowest mobile link takes a few KiB a second. */
#define CONN_OUT_STALL 5.0
#define CONN_OUT_MIN   4096 /* first output buffer size */
#define CONN_PEER_MAX  64   /* "[ipv6]:port" */
/* A closing connection first shuts down its sending side and discards what the peer still
 * sends, for at most this long: closing with unread input makes the kernel send a reset, and
 * a reset destroys replies the peer has not read yet. */
#define CONN_LINGER_TIMEOUT 2.0
#define CONN_LINGER_BUF     4096
/* A request line must be complete this many seconds after its first byte arrived, or within
 * the idle timeout when that is shorter (and never, when it is off). Reads do not reset this
 * bound, so a client that dribbles a never-ending line a byte at a time (slowloris) cannot
 * hold its slot and its input buffer forever; no real client takes seconds to send a line. */
#define CONN_LINE_TIMEOUT 30.0

/* What a connection calls; `arg` is the handler's. */
struct conn_handler {
    /* A frame arrived. Return false to take no more frames until conn_resume(). */
    bool (*on_frame)(void *arg, const struct proto_frame *f);
    /* The peer closed its sending side; every complete frame before it was handed over.
     * `partial`: an unfinished line or RESP request was left. The handler closes the
     * connection when it is done (conn_close or conn_close_after_flush). */
    void (*on_eof)(void *arg, bool partial);
    /* The connection was closed (any reason), at the end of the iteration it happened in; the
     * handler must not use it any more. Until then its calls on it are harmless no-ops. */
    void (*on_close)(void *arg);
    /* The output, backed up over CONN_OUT_SOFT, fell back below it: a long reply may write its
     * next part. Called at the start of the next loop iteration, never from inside a call of
     * the handler into the connection. May be NULL. */
    void (*on_drain)(void *arg);
};

struct conn_config {
    double idle_timeout; /* seconds without traffic or pending work before closing; 0: off */
};

/* A pool for `loop`; `lg` gets the CONNECT/CLOSE/DROP lines. NULL when out of memory. */
struct conn_pool *conn_pool_new(struct ev_loop *loop, const struct conn_config *cfg,
                                struct log *lg);
/* Closes every connection and frees the pool. */
void conn_pool_free(struct conn_pool *p);
/* The end of a loop iteration: writes pending output and frees closed connections. */
void conn_pool_flush(struct conn_pool *p);
/* Closes every connection at once. */
void conn_pool_close_all(struct conn_pool *p);
/* Open connections. */
size_t conn_pool_count(const struct conn_pool *p);
/* Connections accepted since start. */
uint64_t conn_pool_total(const struct conn_pool *p);

/* Accepted socket `fd` (non-blocking) from `peer`: makes the connection. It reads nothing until
 * conn_start. NULL when out of memory (the caller closes fd). */
struct conn *conn_new(struct conn_pool *p, int fd, const char *peer);
/* Before conn_start: the connection speaks TLS with t's current context (tls.h). The handshake
 * runs first, bounded by TLS_HANDSHAKE_TIMEOUT; frames, flow control and limits are then those
 * of a plain connection. A failed handshake closes the connection with one DROP line
 * (reason=tls_handshake and OpenSSL's reason). False when out of memory. */
bool conn_use_tls(struct conn *c, struct tls_ctx *t);

/* Sets the handler and starts reading. */
void conn_start(struct conn *c, const struct conn_handler *h, void *arg);

uint64_t conn_id(const struct conn *c);
const char *conn_peer(const struct conn *c);

/* Appends output; it is written at the end of the loop iteration. */
void conn_write(struct conn *c, const char *data, size_t len);

/* Bytes that may still be written before the output counts as backed up: 0 when it is (unsent
 * output over CONN_OUT_SOFT, or the connection is closed), else at least 1. Writing this much
 * backs the output up, and on_drain follows once it falls back. */
size_t conn_out_room(const struct conn *c);

/* Whether a request that starts with `*` is framed as RESP (frame.h): on from the start. Off
 * while every line is an UPLOAD's record. Takes effect at the next frame. */
void conn_set_resp(struct conn *c, bool on);

/* Frames are handed over again (those buffered first, at the next iteration). */
void conn_resume(struct conn *c);

/* While true, the connection is waiting for the server (replies owed), not idle. */
void conn_set_waiting(struct conn *c, bool waiting);

/* Closes once the output is written, lingering so no reset destroys it. Reads no more. */
void conn_close_after_flush(struct conn *c);

/* Closes at once; `reason` (or NULL) goes to the log's DROP line. on_close runs at the end of
 * the iteration. */
void conn_close(struct conn *c, const char *reason);

#endif
