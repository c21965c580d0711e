/* upload.h - one UPLOAD in progress: its record lines are parsed as they arrive, then the
 * batch is stored whole or rejected with a reason per record. */
#ifndef COUPOND_UPLOAD_H
#define COUPOND_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct upload;
struct conn;
struct store;

/* Room for the records is grown as they arrive, not taken from the announced count, so a
 * client cannot reserve memory it never sends. */
#define UPLOAD_INITIAL_RECORDS 1024

/* Starts an upload of `count` (1..PROTO_UPLOAD_MAX) records; NULL when out of memory. */
struct upload *upload_new(uint64_t count);

void upload_free(struct upload *u);

/* Feeds one record line (CR LF removed); NULL for a line over PROTO_MAX_LINE. Returns true
 * when this was the last record of the batch. */
bool upload_line(struct upload *u, const char *line, size_t len);

/* Stores the complete batch (inside the store's group) or rejects it, and writes the whole
 * reply to `c`: "OK uploaded=n", or REJECT lines and "ERR BAD_BATCH ...", or ERR INTERNAL.
 * Returns the reply's code for the log; *stored gets the number of records stored. */
enum proto_err upload_finish(struct upload *u, struct store *st, struct conn *c, uint64_t *stored);

#endif
