/* pg_check.c - CHECK's recounts against the counters (see pg_check.h). */
#include "pg_check.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* The values of one "what" row of CHECK's result. */
#define CHECK_VALUES 7

enum check_row { ROW_CNT, ROW_REC, ROW_AVL, ROW_HIS, NROWS };

static const char *const row_names[NROWS] = {"cnt", "rec", "avl", "his"};
static const char *const type_names[STORE_NTYPES] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};

struct check {
    int64_t v[NROWS][STORE_NTYPES][CHECK_VALUES]; /* absent rows count 0 */
};

/* counters: created assigned redeemed purged purged_assigned unassigned unredeemed */
enum { C_CREATED, C_ASSIGNED, C_REDEEMED, C_PURGED, C_PURGED_ASSIGNED, C_UNASSIGNED, C_UNREDEEMED };
/* recounts: records assigned unassigned uses available */
enum { R_RECORDS, R_ASSIGNED, R_UNASSIGNED, R_USES, R_AVAILABLE };
/* queue: entries, expired; history: records, undone */
enum { A_ENTRIES, A_EXPIRED };
enum { H_RECORDS, H_UNDONE };

static int64_t
value(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The first inconsistency of type t, or STORE_OK. */
static enum store_err
check_type(struct store_op *op, const struct check *ck, int t)
{
    const int64_t *c = ck->v[ROW_CNT][t], *r = ck->v[ROW_REC][t];
    const int64_t *a = ck->v[ROW_AVL][t], *h = ck->v[ROW_HIS][t];
    const char *n = type_names[t];

    if (c[C_REDEEMED] != h[H_RECORDS] || c[C_REDEEMED] - c[C_UNREDEEMED] != r[R_USES])
        return store_op_fail(op, STORE_CORRUPT,
                             "redeemed.%s is %" PRId64 " (%" PRId64 " unredeemed): %" PRId64
                             " history records, %" PRId64 " uses",
                             n, c[C_REDEEMED], c[C_UNREDEEMED], h[H_RECORDS], r[R_USES]);
    if (c[C_UNREDEEMED] != h[H_UNDONE])
        return store_op_fail(op, STORE_CORRUPT,
                             "unredeemed.%s is %" PRId64 ": %" PRId64 " undone redemptions", n,
                             c[C_UNREDEEMED], h[H_UNDONE]);
    if (c[C_CREATED] != r[R_RECORDS] + c[C_PURGED])
        return store_op_fail(op, STORE_CORRUPT,
                             "created.%s is %" PRId64 ": %" PRId64 " records + %" PRId64 " purged",
                             n, c[C_CREATED], r[R_RECORDS], c[C_PURGED]);
    if (c[C_ASSIGNED] != r[R_ASSIGNED] + c[C_PURGED_ASSIGNED])
        return store_op_fail(op, STORE_CORRUPT,
                             "assigned.%s is %" PRId64 ": %" PRId64 " records + %" PRId64 " purged",
                             n, c[C_ASSIGNED], r[R_ASSIGNED], c[C_PURGED_ASSIGNED]);
    if (c[C_UNASSIGNED] != a[A_ENTRIES] || c[C_UNASSIGNED] != r[R_UNASSIGNED])
        return store_op_fail(op, STORE_CORRUPT,
                             "unassigned.%s is %" PRId64 ": %" PRId64 " avail entries, %" PRId64
                             " records",
                             n, c[C_UNASSIGNED], a[A_ENTRIES], r[R_UNASSIGNED]);
    if (c[C_UNASSIGNED] - a[A_EXPIRED] != r[R_AVAILABLE])
        return store_op_fail(op, STORE_CORRUPT, "available.%s is %" PRId64 ", recount %" PRId64, n,
                             c[C_UNASSIGNED] - a[A_EXPIRED], r[R_AVAILABLE]);
    return STORE_OK;
}

void
pg_check_result(struct store_op *op, const PGresult *r)
{
    struct check ck;
    int rows = PQntuples(r);

    memset(&ck, 0, sizeof ck);
    for (int i = 0; i < rows; i++) {
        const char *what = PQgetvalue(r, i, 0);
        int64_t t = value(r, i, 1);

        if (strcmp(what, "bad") == 0) {
            store_op_fail(op, STORE_CORRUPT, "%s", PQgetvalue(r, i, 9));
            return;
        }
        if (t < 0 || t >= STORE_NTYPES) {
            store_op_fail(op, STORE_CORRUPT, "%s rows of type %" PRId64, what, t);
            return;
        }
        for (int k = 0; k < NROWS; k++)
            if (strcmp(what, row_names[k]) == 0)
                for (int j = 0; j < CHECK_VALUES; j++)
                    ck.v[k][t][j] = value(r, i, 2 + j);
    }
    for (int t = 0; t < STORE_NTYPES; t++)
        if (check_type(op, &ck, t) != STORE_OK)
            return;
}
