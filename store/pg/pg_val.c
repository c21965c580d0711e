/* pg_val.c - values in text results and parameters (see pg_val.h). */
#include "pg_val.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

int64_t
pg_val_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

uint64_t
pg_val_u64(const PGresult *r, int row, int col)
{
    int64_t v = pg_val_i64(r, row, col);

    return v < 0 ? 0 : (uint64_t)v;
}

void
pg_val_text(const PGresult *r, int row, int col, char *out, size_t len)
{
    snprintf(out, len, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

void
pg_val_coupon(const PGresult *r, int row, int first, struct store_coupon *c)
{
    memset(c, 0, sizeof *c);
    pg_val_text(r, row, first + PG_COL_CODE, c->code, sizeof c->code);
    c->type = (uint8_t)pg_val_i64(r, row, first + PG_COL_TYPE);
    c->kind = (uint8_t)pg_val_i64(r, row, first + PG_COL_KIND);
    c->discount = pg_val_i64(r, row, first + PG_COL_DISCOUNT);
    c->expires = pg_val_i64(r, row, first + PG_COL_EXPIRES);
    c->uses = (uint32_t)pg_val_u64(r, row, first + PG_COL_USES);
    c->max_uses = (uint32_t)pg_val_u64(r, row, first + PG_COL_MAX_USES);
    c->held = (uint32_t)pg_val_u64(r, row, first + PG_COL_HELD);
    c->seq = pg_val_u64(r, row, first + PG_COL_SEQ);
    pg_val_text(r, row, first + PG_COL_OWNER, c->user, sizeof c->user);
    c->assigned_at = pg_val_i64(r, row, first + PG_COL_ASSIGNED_AT);
}

void
pg_val_fail(struct store_op *op, const char *what, const PGresult *r)
{
    char msg[STORE_ERR_MAX];
    const char *m = r != NULL ? PQresultErrorMessage(r) : "no result";

    snprintf(msg, sizeof msg, "%s", m[0] != '\0' ? m : "unexpected result");
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
    store_op_fail(op, STORE_IO, "%s: %s", what, msg);
}

/* Bytes in the UTF-8 sequence starting with lead byte b, 0 when it cannot start one. */
static int
utf8_len(unsigned char b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef)
        return 3;
    if (b >= 0xf0 && b <= 0xf4)
        return 4;
    return 0;
}

bool
pg_val_text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        int n = utf8_len(*p);

        if (n == 0)
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}
