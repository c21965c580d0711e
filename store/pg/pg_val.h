/* pg_val.h - values as the PostgreSQL backend's statements take and give them (text): numbers,
 * coupons in result columns, an operation failed with the server's message, and the check
 * that a string is text PostgreSQL accepts. */
#ifndef COUPOND_PG_VAL_H
#define COUPOND_PG_VAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_sql.h"
#include "store.h"

#define PG_VAL_NUM_LEN 24 /* an int64 in decimal, its sign and NUL */

/* The integer in row, col of r: 0 when NULL; pg_val_u64 takes a negative one as 0. */
int64_t pg_val_i64(const PGresult *r, int row, int col);
uint64_t pg_val_u64(const PGresult *r, int row, int col);

/* The text in row, col of r into out (len bytes, cut to fit; "" when NULL). */
void pg_val_text(const PGresult *r, int row, int col, char *out, size_t len);

/* The coupon in columns first .. first + PG_SQL_COUPON_NCOLS - 1 of row. */
void pg_val_coupon(const PGresult *r, int row, int first, struct store_coupon *c);

/* Fails op with STORE_IO and "what: the server's message". */
void pg_val_fail(struct store_op *op, const char *what, const PGresult *r);

/* True when s is valid UTF-8: text PostgreSQL takes as it is (anything else would be an error
 * that aborts the batch's transaction). */
bool pg_val_text_ok(const char *s);

#endif
