/* pg_arr.h - growing text for libpq: COPY data, and PostgreSQL array literals ("{1,2}",
 * '{"a b","c\"d"}', '{"\\x00ff"}') that pass a batch's many values as one text parameter. */
#ifndef COUPOND_PG_ARR_H
#define COUPOND_PG_ARR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growing text; NUL-terminated whenever not empty. */
struct pg_buf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed: the text is incomplete */
};

/* Appends n bytes of s (on failure sets oom and keeps what it had). */
void pg_buf_put(struct pg_buf *b, const char *s, size_t n);

void pg_buf_free(struct pg_buf *b);

/* An array literal being built: always closed ("{}" when empty), so usable at any time. */
struct pg_arr {
    struct pg_buf b;
    size_t n; /* elements */
};

void pg_arr_i64(struct pg_arr *a, int64_t v);

/* A text element, quoted, with " and \ escaped. */
void pg_arr_text(struct pg_arr *a, const char *s);

/* A bytea element in hex ("\\x..."). */
void pg_arr_bytea(struct pg_arr *a, const uint8_t *p, size_t n);

/* The literal ("{}" when empty); NULL when out of memory. Valid until the next change. */
const char *pg_arr_text_of(struct pg_arr *a);

void pg_arr_free(struct pg_arr *a);

#endif
