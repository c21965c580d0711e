/* pg_reader.h - the reads of a PostgreSQL store (store_read): a connection of their own, so a
 * read never waits behind a batch, pipelined, each read its own statement and sync point (its
 * own snapshot of the last commit), completed through op->done when its result arrives, in
 * submission order. While the connection is down, a read completes at once with
 * STORE_UNAVAILABLE; reads in flight when it breaks complete with it too. While it is coming
 * back because the writer's connection is (pg_conn_coming), a read waits for it instead and is
 * handed back to the store's dispatch (`again`) once it is ready, or fails if the attempt does. */
#ifndef COUPOND_PG_READER_H
#define COUPOND_PG_READER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "pg_conn.h"
#include "pg_sql.h"
#include "store.h"

/* Runs a read that waited for the connection, as the store's read call does. */
typedef void pg_reader_again_fn(void *arg, struct store_op *op);

struct pg_reader {
    struct pg_conn conn;
    struct ev_loop *loop;
    struct store_op *head, **tail;      /* reads sent, oldest first, linked through op->next */
    struct store_op *held, **held_tail; /* reads waiting for the connection, oldest first */
    pg_reader_again_fn *again;
    void *arg;
};

/* Opens the connection (blocking, for open); false with why on failure. */
bool pg_reader_open(struct pg_reader *r, struct ev_loop *loop, const char *const *keys,
                    const char *const *vals, pg_reader_again_fn *again, void *arg, char *why,
                    size_t len);

/* Runs read op (see the top of this file). */
void pg_reader_read(struct pg_reader *r, struct store_op *op);

/* Runs read op as prepared statement `stmt` with n text parameters that the store gives, not
 * op (AUDIT_HEAD: the node's name); its result is read as pg_ops_result reads op's kind. */
void pg_reader_read_stmt(struct pg_reader *r, struct store_op *op, enum pg_stmt stmt, int n,
                         const char *const *params);

/* Closes; reads in flight are dropped without their callbacks. */
void pg_reader_close(struct pg_reader *r);

#endif
