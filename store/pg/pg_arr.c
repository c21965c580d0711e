/* pg_arr.c - growing text and array literals (see pg_arr.h). */
#include "pg_arr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room text starts with; it doubles as needed. */
#define BUF_FIRST 256
#define NUM_MAX   24 /* an int64 in decimal, its sign and NUL */

void
pg_buf_put(struct pg_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? BUF_FIRST : b->cap;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
pg_buf_free(struct pg_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Opens the next element: "{" first, else replaces the closing "}" by ",". */
static void
next(struct pg_arr *a)
{
    if (a->n++ == 0) {
        a->b.len = 0; /* drops a "{}" handed out while empty */
        pg_buf_put(&a->b, "{", 1);
    } else if (!a->b.oom)
        a->b.p[a->b.len - 1] = ','; /* over the closing brace */
}

static void
close_arr(struct pg_arr *a)
{
    pg_buf_put(&a->b, "}", 1);
}

void
pg_arr_i64(struct pg_arr *a, int64_t v)
{
    char num[NUM_MAX];
    int n = snprintf(num, sizeof num, "%" PRId64, v);

    next(a);
    pg_buf_put(&a->b, num, (size_t)n);
    close_arr(a);
}

void
pg_arr_text(struct pg_arr *a, const char *s)
{
    next(a);
    pg_buf_put(&a->b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            pg_buf_put(&a->b, "\\", 1);
        pg_buf_put(&a->b, p, 1);
    }
    pg_buf_put(&a->b, "\"", 1);
    close_arr(a);
}

void
pg_arr_bytea(struct pg_arr *a, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    next(a);
    pg_buf_put(&a->b, "\"\\\\x", 4); /* "\\x: the array's escape, then bytea's */
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};

        pg_buf_put(&a->b, two, 2);
    }
    pg_buf_put(&a->b, "\"", 1);
    close_arr(a);
}

const char *
pg_arr_text_of(struct pg_arr *a)
{
    if (a->n == 0 && a->b.len == 0)
        pg_buf_put(&a->b, "{}", 2);
    return a->b.oom ? NULL : a->b.p;
}

void
pg_arr_free(struct pg_arr *a)
{
    pg_buf_free(&a->b);
    a->n = 0;
}
