/* pg_schema.c - create or check the schema at open (see pg_schema.h). */
#include "pg_schema.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_conn.h"
#include "pg_sql.h"

#define LINE_MAX_MSG 200 /* bytes of the server's message in a reason */

/* Runs sql; true when it succeeded, else msg says why. */
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
    snprintf(msg, len, "store %s: %s", where, pg_conn_result_error(r, line, sizeof line));
    PQclear(r);
    return false;
}

/* The stored schema version, 0 when there is no schema, -1 on failure (msg says why). */
static int64_t
version(PGconn *pc, const char *where, char *msg, size_t len)
{
    PGresult *r = PQexec(pc, "SELECT to_regclass('coupond_schema') IS NOT NULL");
    char line[LINE_MAX_MSG];
    int64_t v = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 'f')
        v = 0;
    else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        r = PQexec(pc, "SELECT max(version) FROM coupond_schema");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }
    if (v < 0)
        snprintf(msg, len, "store %s: read schema version: %s", where,
                 pg_conn_result_error(r, line, sizeof line));
    PQclear(r);
    return v;
}

/* Runs the statements ddl[0..n-1]; false with msg on the first failure. */
static bool
exec_all(PGconn *pc, const char *const *ddl, size_t n, const char *where, char *msg, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (!exec_ok(pc, ddl[i], where, msg, len))
            return false;
    return true;
}

/* Brings a schema of version v (0: none) to the current one. */
static bool
make_current(PGconn *pc, int64_t v, const char *where, char *msg, size_t len)
{
    char sql[64];
    size_t n;
    const char *const *ddl;

    if (v == 0) {
        ddl = pg_sql_schema(&n);
        if (!exec_all(pc, ddl, n, where, msg, len))
            return false;
        snprintf(sql, sizeof sql, "INSERT INTO coupond_schema VALUES (1)");
        if (!exec_ok(pc, sql, where, msg, len))
            return false;
        v = 1;
    }
    ddl = pg_sql_upgrade(v, &n);
    if (!exec_all(pc, ddl, n, where, msg, len))
        return false;
    snprintf(sql, sizeof sql, "UPDATE coupond_schema SET version = %d", PG_SQL_SCHEMA_VERSION);
    return exec_ok(pc, sql, where, msg, len);
}

/* Records the task key's fingerprint `fp` when the store has none, and compares it with the
 * one it has: STORE_KEY_MISMATCH naming both when they differ. In the schema's transaction. */
static enum store_err
check_key(PGconn *pc, const char *fp, const char *where, char *msg, size_t len)
{
    const char *v[1] = {fp};
    char line[LINE_MAX_MSG];
    enum store_err e = STORE_OK;
    PGresult *r;

    if (fp == NULL || fp[0] == '\0')
        return STORE_OK;
    r = PQexecParams(pc,
                     "WITH ins AS (INSERT INTO coupond_keys VALUES ('task', $1) "
                     "ON CONFLICT (name) DO NOTHING RETURNING fp) "
                     "SELECT fp FROM ins UNION ALL SELECT fp FROM coupond_keys WHERE name = 'task'",
                     1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        snprintf(msg, len, "store %s: task key fingerprint: %s", where,
                 pg_conn_result_error(r, line, sizeof line));
        e = STORE_IO;
    } else if (strcmp(PQgetvalue(r, 0, 0), fp) != 0) {
        snprintf(msg, len,
                 "task.key differs from the one store %s recorded: this node's fingerprint is "
                 "%s, the store's is %.*s; nodes sharing a store must share task.key",
                 where, fp, STORE_KEY_FP_MAX, PQgetvalue(r, 0, 0));
        e = STORE_KEY_MISMATCH;
    }
    PQclear(r);
    return e;
}

/* The version after creating or upgrading the schema (mode CREATE), in one transaction under
 * the schema lock, with the task key checked; -1 on failure, with *e the error (STORE_IO or
 * STORE_KEY_MISMATCH). */
static int64_t
settle(PGconn *pc, enum store_open_mode mode, const char *fp, const char *where, char *msg,
       size_t len, enum store_err *e)
{
    char lock[64];
    int64_t v;

    *e = STORE_IO;
    if (mode == STORE_OPEN_EXISTING) {
        v = version(pc, where, msg, len);
        *e = v < 0 ? STORE_IO : STORE_OK;
        return v;
    }
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%" PRId64 ")", PG_SQL_LOCK_SCHEMA);
    if (!exec_ok(pc, "BEGIN", where, msg, len) || !exec_ok(pc, lock, where, msg, len))
        return -1;
    v = version(pc, where, msg, len);
    if (v >= 0 && v < PG_SQL_SCHEMA_VERSION) {
        if (!make_current(pc, v, where, msg, len))
            return -1;
        v = PG_SQL_SCHEMA_VERSION;
    }
    if (v == PG_SQL_SCHEMA_VERSION) {
        enum store_err k = check_key(pc, fp, where, msg, len);

        if (k != STORE_OK) {
            *e = k;
            return -1;
        }
    }
    if (v < 0 || !exec_ok(pc, "COMMIT", where, msg, len))
        return -1;
    *e = STORE_OK;
    return v;
}

/* A library keeps quiet: no notice on stderr (see pg_conn.c). */
static void
ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

enum store_err
pg_schema_open(const char *const *keys, const char *const *vals, enum store_open_mode mode,
               const char *task_key_fp, const char *where, char *msg, size_t len)
{
    PGconn *pc = PQconnectdbParams(keys, vals, 1);
    char line[LINE_MAX_MSG];
    enum store_err e = STORE_OK;
    int64_t v;

    if (pc == NULL || PQstatus(pc) != CONNECTION_OK) {
        size_t n;

        snprintf(line, sizeof line, "%s", pc != NULL ? PQerrorMessage(pc) : "out of memory");
        for (char *p = line; *p != '\0'; p++)
            if (*p == '\n' || *p == '\t' || *p == '\r')
                *p = ' ';
        for (n = strlen(line); n > 0 && line[n - 1] == ' ';)
            line[--n] = '\0';
        snprintf(msg, len, "store %s: cannot connect: %s", where, line);
        PQfinish(pc);
        return STORE_UNAVAILABLE;
    }
    PQsetNoticeProcessor(pc, ignore_notice, NULL);
    v = settle(pc, mode, task_key_fp, where, msg, len, &e);
    if (v < 0) {
        PQfinish(pc);
        return e;
    }
    if (v == 0) {
        snprintf(msg, len, "no store in %s: it has no coupond schema", where);
        e = STORE_NO_STORE;
    } else if (v > PG_SQL_SCHEMA_VERSION) {
        snprintf(msg, len,
                 "store %s: schema version %" PRId64 " is newer than this coupond knows (%d)",
                 where, v, PG_SQL_SCHEMA_VERSION);
        e = STORE_IO;
    } else if (v < PG_SQL_SCHEMA_VERSION) {
        snprintf(msg, len,
                 "store %s: schema version %" PRId64 " is older than this coupond's (%d): "
                 "start coupond on it once to upgrade it",
                 where, v, PG_SQL_SCHEMA_VERSION);
        e = STORE_IO;
    }
    PQfinish(pc);
    return e;
}
