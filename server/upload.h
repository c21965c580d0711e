/* upload.h - one UPLOAD in progress: its record lines are parsed as they arrive, then the
 * batch goes to the store as one operation, and the reply says what was stored or why not,
 * with a REJECT line per refused record. */
#ifndef COUPOND_UPLOAD_H
#define COUPOND_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"
#include "store.h"

struct rid_fp;
struct upload;

/* Room for the records is grown as they arrive, not taken from the announced count, so a
 * client cannot reserve memory it never sends. */
#define UPLOAD_INITIAL_RECORDS 1024

/* Starts an upload of `count` (1..PROTO_UPLOAD_MAX) records; NULL when out of memory. */
struct upload *upload_new(uint64_t count);

void upload_free(struct upload *u);

/* Feeds one record line (as framed); NULL for a line over PROTO_MAX_LINE. Returns true when
 * this was the last record of the batch. */
bool upload_line(struct upload *u, const char *line, size_t len);

/* True when some record parsed, so the batch needs the store (else it is refused as is). */
bool upload_has_records(const struct upload *u);

/* Fills the store operation for the complete batch at `now` (the records stay the upload's,
 * so the upload must outlive the operation). */
void upload_op(struct upload *u, int64_t now, struct store_op *op);

/* Adds the parsed records to a request id's fingerprint (rid.h), in batch order. */
void upload_fingerprint(const struct upload *u, struct rid_fp *h);

/* The outcome of the completed operation: PROTO_OK, BAD_BATCH or INTERNAL; *stored gets how
 * many records were stored. */
enum proto_err upload_result(const struct upload *u, const struct store_op *op, uint64_t *stored);

/* Writes the reply to the completed operation: "OK uploaded=n [expired=K] [replayed=1]" (a
 * replay counts K at the first run's time), or REJECT lines and "ERR BAD_BATCH ...", or
 * ERR INTERNAL, or ERR ID_CONFLICT. */
void upload_reply(const struct upload *u, const struct store_op *op, struct proto_out *o);

#endif
