/* pg_audit.c - the audit chain's table, head and records in PostgreSQL (see pg_audit.h). */
#include "pg_audit.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "backend.h"
#include "pg_arr.h"
#include "pg_sql.h"
#include "pg_val.h"

#define LINE_MAX_MSG 200 /* bytes of the server's message in a reason */
#define LOCK_SQL_MAX 64  /* "SELECT pg_advisory_xact_lock(<int64>)" */

static const char create_sql[] =
    "CREATE TABLE IF NOT EXISTS coupond_audit (node text NOT NULL, seq int8 NOT NULL, "
    "hash bytea NOT NULL, rec bytea NOT NULL, PRIMARY KEY (node, seq))";

/* --- the table --- */

/* Runs sql on pc; true when it succeeded, else msg says why. */
static bool
exec_ok(PGconn *pc, const char *sql, const char *where, char *msg, size_t len)
{
    PGresult *r = PQexec(pc, sql);
    ExecStatusType st = PQresultStatus(r);
    char line[LINE_MAX_MSG];

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return true;
    }
    snprintf(msg, len, "store %s: audit table: %s", where,
             pg_conn_result_error(r, line, sizeof line));
    PQclear(r);
    return false;
}

/* A library keeps quiet: no notice on stderr (CREATE ... IF NOT EXISTS gives one). */
static void
ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

enum store_err
pg_audit_schema(const char *const *keys, const char *const *vals, enum store_open_mode mode,
                const char *where, char *msg, size_t len)
{
    char lock[LOCK_SQL_MAX];
    PGconn *pc;
    bool ok;

    if (mode == STORE_OPEN_EXISTING)
        return STORE_OK;
    pc = PQconnectdbParams(keys, vals, 1);
    if (pc == NULL || PQstatus(pc) != CONNECTION_OK) {
        snprintf(msg, len, "store %s: audit table: cannot connect", where);
        PQfinish(pc);
        return STORE_UNAVAILABLE;
    }
    PQsetNoticeProcessor(pc, ignore_notice, NULL);
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%" PRId64 ")", PG_SQL_LOCK_SCHEMA);
    ok = exec_ok(pc, "BEGIN", where, msg, len) && exec_ok(pc, lock, where, msg, len) &&
         exec_ok(pc, create_sql, where, msg, len) && exec_ok(pc, "COMMIT", where, msg, len);
    PQfinish(pc);
    return ok ? STORE_OK : STORE_IO;
}

/* --- a batch --- */

void
pg_audit_init(struct pg_audit *a, const char *node)
{
    memset(a, 0, sizeof *a);
    a->node = node;
}

bool
pg_audit_plan_op(struct store_op *op)
{
    if (op->kind == STORE_OP_AUDIT_NOTE)
        audit_note_check(op);
    return op->kind == STORE_OP_AUDIT_NOTE || op->kind == STORE_OP_AUDIT_HEAD;
}

bool
pg_audit_begin(struct pg_audit *a, struct store_op *const *ops, size_t n)
{
    a->wanted = a->have_head = false;
    a->last_seq = 0;
    memset(&a->head, 0, sizeof a->head);
    for (size_t i = 0; i < n && !a->wanted; i++)
        a->wanted = store_op_writes(ops[i]->kind) || ops[i]->kind == STORE_OP_AUDIT_HEAD;
    return a->wanted;
}

bool
pg_audit_send_head(struct pg_audit *a, struct pg_conn *c, pg_conn_result_fn *fn, void *arg)
{
    const char *v[1] = {a->node};

    return pg_conn_query(c, PG_STMT_AUDIT_HEAD, 1, v, fn, arg);
}

/* A head from a result of PG_STMT_AUDIT_HEAD's columns: none (an empty chain), or one row. */
static bool
head_of(const PGresult *r, struct store_audit_head *h)
{
    memset(h, 0, sizeof *h);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 2 || PQntuples(r) > 1)
        return false;
    if (PQntuples(r) == 0)
        return true;
    h->seq = pg_val_u64(r, 0, 0);
    return audit_unhex(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), h->hash);
}

bool
pg_audit_head_result(struct pg_audit *a, const PGresult *r)
{
    a->have_head = head_of(r, &a->head);
    return a->have_head;
}

/* The batch's records, in three arrays. */
struct records {
    struct pg_arr seq, hash, rec;
    size_t n;
};

static void
records_free(struct records *rs)
{
    pg_arr_free(&rs->seq);
    pg_arr_free(&rs->hash);
    pg_arr_free(&rs->rec);
}

/* Adds op's record to rs, chained onto *h. */
static bool
record_add(struct records *rs, struct store_audit_head *h, const struct store_op *op)
{
    uint8_t rec[STORE_AUDIT_REC_MAX];
    size_t n = audit_of_op(op, h->seq + 1, rec, sizeof rec);

    if (n == 0)
        return false;
    audit_link(h, rec, n);
    pg_arr_i64(&rs->seq, (int64_t)h->seq);
    pg_arr_bytea(&rs->hash, h->hash, sizeof h->hash);
    pg_arr_bytea(&rs->rec, rec, n);
    rs->n++;
    return true;
}

/* Walks the batch: each AUDIT_HEAD gets the head so far, each write that succeeded a record. */
static bool
records_of(struct pg_audit *a, struct records *rs, struct store_op *const *ops,
           const struct pg_upload *ups, size_t n, char *why, size_t len)
{
    struct store_audit_head h = a->head;

    for (size_t i = 0; i < n; i++) {
        struct store_op *op = ops[i];

        if (op->kind == STORE_OP_AUDIT_HEAD && op->err == STORE_OK)
            op->out.audit = h;
        if (!store_op_writes(op->kind) || op->err != STORE_OK || op->out.replayed ||
            !audit_wanted(op))
            continue;
        if (ups[i].op != NULL && !pg_upload_stores(&ups[i])) /* its outcome comes at the end */
            continue;
        if (!record_add(rs, &h, op)) {
            snprintf(why, len, "commit: audit: no record can be made of operation %zu", i + 1);
            return false;
        }
    }
    return true;
}

bool
pg_audit_send_records(struct pg_audit *a, struct pg_conn *c, struct store_op *const *ops,
                      const struct pg_upload *ups, size_t n, pg_conn_result_fn *fn, void *arg,
                      char *why, size_t len)
{
    struct records rs;
    const char *v[4];
    bool ok;

    why[0] = '\0';
    memset(&rs, 0, sizeof rs);
    if (!records_of(a, &rs, ops, ups, n, why, len)) {
        records_free(&rs);
        return false;
    }
    if (rs.n == 0) {
        records_free(&rs);
        return true;
    }
    a->last_seq = a->head.seq + rs.n;
    v[0] = a->node;
    v[1] = pg_arr_text_of(&rs.seq);
    v[2] = pg_arr_text_of(&rs.hash);
    v[3] = pg_arr_text_of(&rs.rec);
    ok = v[1] != NULL && v[2] != NULL && v[3] != NULL;
    if (!ok)
        pg_conn_break(c, "out of memory");
    else
        ok = pg_conn_query(c, PG_STMT_AUDIT_INSERT, 4, v, fn, arg);
    records_free(&rs);
    return ok;
}

/* --- reads --- */

void
pg_audit_head_read_result(struct store_op *op, const PGresult *r)
{
    if (!head_of(r, &op->out.audit))
        pg_val_fail(op, "audit head", r);
}

void
pg_audit_export_sql(char *buf, size_t len, const char *node, int64_t after)
{
    char hex[2 * STORE_NODE_MAX + 1];
    size_t n = strnlen(node, STORE_NODE_MAX);

    /* The node as a bytea literal of hex digits: nothing of it can end the string. */
    sodium_bin2hex(hex, sizeof hex, (const unsigned char *)node, n);
    snprintf(buf, len,
             "SELECT a.seq, encode(a.hash, 'hex'), encode(a.rec, 'hex'), "
             "coalesce(encode(p.hash, 'hex'), '') FROM coupond_audit a "
             "LEFT JOIN coupond_audit p ON p.node = a.node AND p.seq = a.seq - 1 "
             "WHERE a.node = convert_from('\\x%s'::bytea, 'UTF8') AND a.seq > %" PRId64
             " ORDER BY a.seq",
             hex, after);
}

/* Hex text of row, col into out (at most cap bytes); its length, or SIZE_MAX when it is not
 * hex or too long. */
static size_t
unhex_col(const PGresult *r, int row, int col, uint8_t *out, size_t cap)
{
    size_t n = 0;

    if (sodium_hex2bin(out, cap, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col), NULL,
                       &n, NULL) != 0)
        return SIZE_MAX;
    return n;
}

bool
pg_audit_export_row(const PGresult *r, int row, struct store_audit_row *a)
{
    if (PQnfields(r) != 4)
        return false;
    memset(a->prev, 0, sizeof a->prev);
    a->seq = pg_val_u64(r, row, 0);
    if (unhex_col(r, row, 1, a->hash, sizeof a->hash) != sizeof a->hash)
        return false;
    a->len = unhex_col(r, row, 2, a->rec, sizeof a->rec);
    if (a->len == SIZE_MAX)
        return false;
    return PQgetlength(r, row, 3) == 0 ||
           unhex_col(r, row, 3, a->prev, sizeof a->prev) == sizeof a->prev;
}
