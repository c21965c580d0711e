/* pg_upload.h - an UPLOAD or a GENERATE in the PostgreSQL backend, the part done in C.
 *
 * UPLOAD: which records are rejected without asking (a bad field, a code repeated within the
 * batch), the rows staged for COPY (one per distinct valid code: its first record), and the
 * reject list once PostgreSQL said which staged codes exist, in batch order as store.h wants:
 *   a bad code or field: STORE_REJECT_INVALID;
 *   else a code already stored: STORE_REJECT_EXISTS (every record of that code);
 *   else a later record of a code: STORE_REJECT_DUPLICATE, first = the code's first record.
 *
 * GENERATE: the usable candidates (a valid record, the first of its code) are staged;
 * PostgreSQL stores the first `want` of them whose codes are not stored, or none, and says
 * which: their indexes go to in.chosen. */
#ifndef COUPOND_PG_UPLOAD_H
#define COUPOND_PG_UPLOAD_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "pg_arr.h"
#include "store.h"

struct pg_upload {
    struct store_op *op;
    int tag;          /* the op's tag in the staging table */
    size_t *first;    /* per record: its code's first record; SIZE_MAX for a bad code */
    bool *bad;        /* per record: a bad field */
    bool *exists;     /* per record: (first records) the code is stored */
    size_t staged;    /* distinct valid codes */
    size_t c_rejects; /* rejects found in C */
    bool insert;      /* store the batch when nothing exists: not check_only, no C reject */
    bool generate;    /* a GENERATE */
    size_t chosen;    /* GENERATE: candidates PostgreSQL stored */
    size_t usable;    /* GENERATE: candidates PostgreSQL found usable (at most want) */
};

/* Resets op's outputs and examines its records (op: an UPLOAD or a GENERATE). False when op
 * is complete already: nothing to store, too few candidates, or out of memory (STORE_IO). */
bool pg_upload_begin(struct pg_upload *u, struct store_op *op, int tag);

/* True when PostgreSQL must be asked (some code is valid); else pg_upload_end completes op. */
bool pg_upload_asks(const struct pg_upload *u);

/* Appends u's staged rows to b, in COPY's text format (pg_sql.h's coupond_upload). */
void pg_upload_copy(const struct pg_upload *u, struct pg_buf *b);

/* Reads PG_STMT_UPLOAD's result (the staged records whose code exists), or PG_STMT_GENERATE's
 * (the candidates stored). */
void pg_upload_result(struct pg_upload *u, const PGresult *r);

/* True when the outcome pg_upload_end will set is STORE_OK: the records are stored (after
 * pg_upload_result; the audit chain asks before the batch's COMMIT). */
bool pg_upload_stores(const struct pg_upload *u);

/* Sets op's outcome from what is known: an UPLOAD's rejects, or out.count = in.n; a GENERATE's
 * out.count and in.codes (when set) with the codes stored. Frees u's memory; called again, it
 * changes nothing. */
void pg_upload_end(struct pg_upload *u);

/* Frees u's memory without touching op. */
void pg_upload_free(struct pg_upload *u);

#endif
