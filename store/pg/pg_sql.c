/* pg_sql.c - the schema, session set-up and prepared statements of the PostgreSQL backend (see
 * pg_sql.h). */
#include "pg_sql.h"

#include <inttypes.h>
#include <stdio.h>

#include "store.h"

/* The SQL below spells the coupon types as 0 to 3 and the kinds as 0 to 1. */
_Static_assert(STORE_NTYPES == 4 && STORE_TYPE_MEGADEAL == 3 && STORE_KIND_PERCENT == 1,
               "pg_sql.c's statements name the types and kinds by number");

/* The coupon columns of enum pg_coupon_col for a coupons row `c`, with `held` counted at the
 * statement's $1 (now): the holds of the coupon that have not ended. */
#define COUPON_COLS                                                                                \
    "c.code, c.type, c.kind, c.discount, c.expires, c.uses, c.max_uses, "                          \
    "(SELECT count(*) FROM holds h WHERE h.code = c.code AND h.expires >= $1), c.seq, "            \
    "coalesce(c.owner, ''), c.assigned_at"

/* A stored request id's columns, in enum pg_rid_col's order. */
#define RID_COLS                                                                                   \
    "scope, id, encode(fp, 'hex'), kind, done_at, code, hold_seq, hold_expires, redemption, "      \
    "task_seq, task_stamp, count, coalesce(coupon, ''), coalesce(codes, '')"

static const char *const schema[] = {
    "CREATE TABLE coupond_schema (version int4 NOT NULL)",
    "CREATE SEQUENCE coupon_seq",
    "CREATE SEQUENCE redemption_seq",
    "CREATE SEQUENCE hold_seq",
    "CREATE TABLE coupons (code text PRIMARY KEY, type int2 NOT NULL, kind int2 NOT NULL, "
    "discount int8 NOT NULL, expires int8 NOT NULL, uses int4 NOT NULL DEFAULT 0, "
    "max_uses int4 NOT NULL, seq int8 NOT NULL, owner text, assigned_at int8 NOT NULL DEFAULT 0, "
    "redeemed bool NOT NULL DEFAULT false)",
    /* PURGE walks the never-redeemed coupons by expiry. */
    "CREATE INDEX coupons_purge ON coupons (expires, seq) WHERE NOT redeemed",
    /* COUPONS user: newest first. */
    "CREATE INDEX coupons_owner ON coupons (owner, assigned_at, seq) WHERE owner IS NOT NULL",
    "CREATE TABLE avail (type int2 NOT NULL, expires int8 NOT NULL, seq int8 NOT NULL, "
    "code text NOT NULL, PRIMARY KEY (type, expires, seq))",
    "CREATE TABLE history (seq int8 PRIMARY KEY, time int8 NOT NULL, code text NOT NULL, "
    "type int2 NOT NULL, owner text NOT NULL, undone int8 NOT NULL DEFAULT 0)",
    "CREATE INDEX history_code ON history (code, seq)",
    "CREATE TABLE counters (node text NOT NULL, type int2 NOT NULL, "
    "created int8 NOT NULL DEFAULT 0, assigned int8 NOT NULL DEFAULT 0, "
    "redeemed int8 NOT NULL DEFAULT 0, purged int8 NOT NULL DEFAULT 0, "
    "purged_assigned int8 NOT NULL DEFAULT 0, unassigned int8 NOT NULL DEFAULT 0, "
    "unredeemed int8 NOT NULL DEFAULT 0, PRIMARY KEY (node, type))",
    "CREATE TABLE holds (seq int8 PRIMARY KEY, code text NOT NULL, owner text NOT NULL, "
    "type int2 NOT NULL, expires int8 NOT NULL)",
    "CREATE INDEX holds_code ON holds (code, expires)",
    "CREATE INDEX holds_expires ON holds (expires, seq)",
    "CREATE INDEX holds_type ON holds (type, expires)",
    "CREATE TABLE rids (scope text NOT NULL, id text NOT NULL, fp bytea NOT NULL, "
    "kind int2 NOT NULL, done_at int8 NOT NULL, code text NOT NULL DEFAULT '', "
    "hold_seq int8 NOT NULL DEFAULT 0, hold_expires int8 NOT NULL DEFAULT 0, "
    "redemption int8 NOT NULL DEFAULT 0, task_seq int8 NOT NULL DEFAULT 0, "
    "task_stamp int8 NOT NULL DEFAULT 0, count int8 NOT NULL DEFAULT 0, coupon text, "
    "codes text, PRIMARY KEY (scope, id))",
    "CREATE INDEX rids_done ON rids (done_at)",
};

/* Version 2: limits shared by nodes, the task key's fingerprint. */
static const char *const upgrade_2[] = {
    "CREATE TABLE megadeal_grants (id bigserial PRIMARY KEY, node text NOT NULL, "
    "task int8 NOT NULL, code text NOT NULL, at_ms int8 NOT NULL, done_ms int8)",
    "CREATE INDEX megadeal_grants_at ON megadeal_grants (at_ms)",
    "CREATE INDEX megadeal_grants_open ON megadeal_grants (at_ms) WHERE done_ms IS NULL",
    "CREATE TABLE coupond_keys (name text PRIMARY KEY, fp text NOT NULL)",
};

static const char *const session[] = {
    /* An upload's records, staged by COPY in a transaction of their own before the batch's
     * (see pg_writer.h); kept across transactions until the next staging truncates them. */
    "CREATE TEMP TABLE coupond_upload (op int4 NOT NULL, idx int8 NOT NULL, code text NOT NULL, "
    "type int2 NOT NULL, kind int2 NOT NULL, discount int8 NOT NULL, expires int8 NOT NULL, "
    "max_uses int4 NOT NULL)",
    /* The counter deltas of the operations of the batch in progress; gone at its end. */
    "CREATE TEMP TABLE coupond_delta (type int2 NOT NULL, created int8 NOT NULL DEFAULT 0, "
    "assigned int8 NOT NULL DEFAULT 0, redeemed int8 NOT NULL DEFAULT 0, "
    "purged int8 NOT NULL DEFAULT 0, purged_assigned int8 NOT NULL DEFAULT 0, "
    "unassigned int8 NOT NULL DEFAULT 0, unredeemed int8 NOT NULL DEFAULT 0) "
    "ON COMMIT DELETE ROWS",
};

/* The counters summed over every node, plus the deltas of this connection's transaction. */
#define COUNTER_SUMS                                                                               \
    "SELECT type, sum(created) AS created, sum(assigned) AS assigned, sum(redeemed) AS redeemed, " \
    "sum(purged) AS purged, sum(purged_assigned) AS purged_assigned, "                             \
    "sum(unassigned) AS unassigned, sum(unredeemed) AS unredeemed FROM ("                          \
    "SELECT type, created, assigned, redeemed, purged, purged_assigned, unassigned, unredeemed "   \
    "FROM counters UNION ALL SELECT type, created, assigned, redeemed, purged, purged_assigned, "  \
    "unassigned, unredeemed FROM coupond_delta) AS all_deltas GROUP BY type"

/* GRANT spells the lease and the time kept as numbers. */
_Static_assert(PG_SQL_GRANT_LEASE_MS == 10000 && PG_SQL_GRANT_KEEP_MS == 60000,
               "pg_sql.c's GRANT spells PG_SQL_GRANT_LEASE_MS and PG_SQL_GRANT_KEEP_MS");

/* The database's clock in milliseconds: one clock for every node. */
#define CLOCK_MS "(extract(epoch FROM clock_timestamp()) * 1000)::int8"

static const struct {
    const char *name;
    const char *sql;
} stmts[PG_NSTMTS] = {
    [PG_STMT_XID] = {"xid", "SELECT pg_current_xact_id()::text"},
    [PG_STMT_LOCKS] = {"locks", "SELECT count(pg_advisory_xact_lock(k)) FROM "
                                "(SELECT k FROM unnest($1::int8[]) AS k ORDER BY k OFFSET 0) AS s"},
    [PG_STMT_ROWLOCK] = {"rowlock",
                         "SELECT count(*) FROM (SELECT 1 FROM coupons WHERE code = ANY($1::text[]) "
                         "OR code IN (SELECT code FROM holds WHERE seq = ANY($2::int8[])) "
                         "OR code IN (SELECT code FROM history WHERE seq = ANY($3::int8[])) "
                         "ORDER BY code FOR UPDATE) AS s"},
    [PG_STMT_COUNTERS_PUT] =
        {"counters_put",
         "INSERT INTO counters AS t (node, type, created, assigned, redeemed, purged, "
         "purged_assigned, unassigned, unredeemed) SELECT $1, type, sum(created), sum(assigned), "
         "sum(redeemed), sum(purged), sum(purged_assigned), sum(unassigned), sum(unredeemed) "
         "FROM coupond_delta GROUP BY type ON CONFLICT (node, type) DO UPDATE SET "
         "created = t.created + excluded.created, assigned = t.assigned + excluded.assigned, "
         "redeemed = t.redeemed + excluded.redeemed, purged = t.purged + excluded.purged, "
         "purged_assigned = t.purged_assigned + excluded.purged_assigned, "
         "unassigned = t.unassigned + excluded.unassigned, "
         "unredeemed = t.unredeemed + excluded.unredeemed"},
    /* A run of assignments: per type, one claim of the k earliest unlocked queue entries at or
     * after the run's bound for that type (one bound per type in a run), matched in order with
     * the run's requests of that type. Result: (i, coupon) of each request served.
     * The claim looks past the node's floor for the type first ($6 expires, $7 seq per request,
     * the same for a type: pg_ops.h's struct pg_floor), and below it only when that comes up
     * short: the queue's head is a run of entries deleted by earlier claims until VACUUM
     * removes them, and walking it cost each claim a millisecond (400 index pages after 80,000
     * claims). LIMIT over UNION ALL never starts the second branch when the first fills it. */
    [PG_STMT_ASSIGN] =
        {"assign",
         "WITH req AS (SELECT r.i, r.type, r.bound, r.owner, r.at, r.fe, r.fs, "
         "row_number() OVER (PARTITION BY r.type ORDER BY r.i) AS n "
         "FROM unnest($1::int4[], $2::int2[], $3::int8[], $4::text[], $5::int8[], $6::int8[], "
         "$7::int8[]) AS r(i, type, bound, owner, at, fe, fs)), "
         "want AS (SELECT type, min(bound) AS bound, count(*) AS k, min(fe) AS fe, min(fs) AS fs "
         "FROM req GROUP BY type), "
         "claim AS (SELECT q.type, q.expires, q.seq, q.code, "
         "row_number() OVER (PARTITION BY q.type ORDER BY q.expires, q.seq) AS n "
         "FROM want w CROSS JOIN LATERAL (SELECT * FROM ("
         "SELECT * FROM (SELECT a.type, a.expires, a.seq, a.code FROM avail a "
         "WHERE a.type = w.type AND a.expires >= w.bound AND (a.expires, a.seq) > (w.fe, w.fs) "
         "ORDER BY a.expires, a.seq LIMIT w.k FOR UPDATE SKIP LOCKED) AS above UNION ALL "
         "SELECT * FROM (SELECT a.type, a.expires, a.seq, a.code FROM avail a "
         "WHERE a.type = w.type AND a.expires >= w.bound AND (a.expires, a.seq) <= (w.fe, w.fs) "
         "ORDER BY a.expires, a.seq LIMIT w.k FOR UPDATE SKIP LOCKED) AS below) AS u "
         "LIMIT w.k) AS q), "
         "pick AS (SELECT req.i, req.owner, req.at, claim.type, claim.expires, claim.seq, "
         "claim.code FROM req JOIN claim USING (type, n)), "
         "gone AS (DELETE FROM avail a USING pick WHERE a.type = pick.type "
         "AND a.expires = pick.expires AND a.seq = pick.seq), "
         "upd AS (UPDATE coupons c SET owner = pick.owner, assigned_at = pick.at FROM pick "
         "WHERE c.code = pick.code AND c.owner IS NULL RETURNING pick.i, c.code, c.type, c.kind, "
         "c.discount, c.expires, c.uses, c.max_uses, c.seq, c.owner, c.assigned_at), "
         "d AS (INSERT INTO coupond_delta (type, assigned, unassigned) "
         "SELECT type, count(*), -count(*) FROM upd GROUP BY type) "
         "SELECT i, code, type, kind, discount, expires, uses, max_uses, 0, seq, owner, "
         "assigned_at FROM upd ORDER BY i"},
    /* One use, when the coupon is the user's, has not expired, and either has a use no live
     * hold reserves ($4 = 0) or comes with live hold $4 of this coupon and user, which it
     * ends. Result: (redemption seq, hold found, coupon after) when redeemed, else (NULL, hold
     * found, coupon as found) for pg_ops.c to tell why; no row: no such coupon. The batch
     * locked the row first, so what this statement reads is the latest. `held` counts at the
     * statement's start: with a hold, one more than after. */
    [PG_STMT_REDEEM] =
        {"redeem",
         "WITH h0 AS (SELECT 1 FROM holds WHERE $4::int8 <> 0 AND seq = $4 AND code = $2 "
         "AND owner = $3 AND expires >= $1), "
         "u AS (UPDATE coupons c SET uses = c.uses + 1, redeemed = true "
         "WHERE c.code = $2 AND c.owner = $3 AND c.expires >= $1 AND CASE WHEN $4::int8 = 0 "
         "THEN c.uses + (SELECT count(*) FROM holds h WHERE h.code = $2 AND h.expires >= $1) "
         "< c.max_uses ELSE EXISTS (SELECT 1 FROM h0) END RETURNING c.*), "
         "dh AS (DELETE FROM holds WHERE $4::int8 <> 0 AND seq = $4 AND EXISTS (SELECT 1 FROM u)), "
         "r AS (INSERT INTO history (seq, time, code, type, owner) "
         "SELECT nextval('redemption_seq'), $1, u.code, u.type, u.owner FROM u RETURNING seq), "
         "d AS (INSERT INTO coupond_delta (type, redeemed) SELECT u.type, 1 FROM u) "
         "SELECT (SELECT seq FROM r), EXISTS (SELECT 1 FROM h0), " COUPON_COLS " FROM u AS c "
         "UNION ALL SELECT NULL, EXISTS (SELECT 1 FROM h0), " COUPON_COLS " FROM coupons c "
         "WHERE c.code = $2 AND NOT EXISTS (SELECT 1 FROM u)"},
    /* Deletes up to $2 never-redeemed coupons expired at $1, oldest expiry first, with their
     * queue entries and their holds (as LMDB's purge does: a hold names a stored coupon).
     * Result: (deleted, more left). */
    [PG_STMT_PURGE] =
        {"purge", "WITH v AS (SELECT c.code, c.expires, c.seq FROM coupons c WHERE NOT c.redeemed "
                  "AND c.expires < $1 ORDER BY c.expires, c.seq LIMIT $2::int8 + 1 FOR UPDATE), "
                  "k AS (SELECT code FROM v ORDER BY expires, seq LIMIT $2), "
                  "dc AS (DELETE FROM coupons c USING k WHERE c.code = k.code "
                  "RETURNING c.code, c.type, c.expires, c.seq, c.owner IS NOT NULL AS assigned), "
                  "dh AS (DELETE FROM holds h USING dc WHERE h.code = dc.code), "
                  "da AS (DELETE FROM avail a USING dc WHERE NOT dc.assigned AND a.type = dc.type "
                  "AND a.expires = dc.expires AND a.seq = dc.seq), "
                  "d AS (INSERT INTO coupond_delta (type, purged, purged_assigned, unassigned) "
                  "SELECT type, count(*), count(*) FILTER (WHERE assigned), "
                  "-count(*) FILTER (WHERE NOT assigned) FROM dc GROUP BY type) "
                  "SELECT (SELECT count(*) FROM dc), (SELECT count(*) FROM v) > $2::int8"},
    /* Publishes staged upload $1: its records whose codes are stored already are the result
     * (idx); when there is none and $2, every record is inserted, in idx order (seq order),
     * with its queue entry. */
    [PG_STMT_UPLOAD] =
        {"upload",
         "WITH x AS (SELECT u.idx, EXISTS (SELECT 1 FROM coupons c WHERE c.code = u.code) AS ex "
         "FROM coupond_upload u WHERE u.op = $1), "
         "go AS (SELECT $2::bool AND NOT EXISTS (SELECT 1 FROM x WHERE ex) AS ok), "
         "ins AS (INSERT INTO coupons (code, type, kind, discount, expires, max_uses, seq) "
         "SELECT s.code, s.type, s.kind, s.discount, s.expires, s.max_uses, "
         "nextval('coupon_seq') FROM (SELECT * FROM coupond_upload WHERE op = $1 "
         "AND (SELECT ok FROM go) ORDER BY idx) AS s RETURNING type, expires, seq, code), "
         "av AS (INSERT INTO avail (type, expires, seq, code) "
         "SELECT type, expires, seq, code FROM ins), "
         "d AS (INSERT INTO coupond_delta (type, created, unassigned) "
         "SELECT type, count(*), count(*) FROM ins GROUP BY type) "
         "SELECT idx FROM x WHERE ex ORDER BY idx"},
    [PG_STMT_GET] = {"get", "SELECT " COUPON_COLS " FROM coupons c WHERE c.code = $2"},
    /* Per type: the counters, `available` = unassigned less the queue entries expired at $1
     * (a short index range: PURGE keeps it short), and the live holds. */
    [PG_STMT_COUNTERS] =
        {"counters",
         "SELECT t.type, coalesce(s.created, 0), coalesce(s.assigned, 0), "
         "coalesce(s.redeemed, 0), coalesce(s.purged, 0), "
         "coalesce(s.unassigned, 0) - (SELECT count(*) FROM avail a WHERE a.type = t.type "
         "AND a.expires < $1), "
         "(SELECT count(*) FROM holds h WHERE h.type = t.type AND h.expires >= $1), "
         "coalesce(s.unredeemed, 0) FROM generate_series(0, 3) AS t(type) "
         "LEFT JOIN (" COUNTER_SUMS ") AS s ON s.type = t.type ORDER BY t.type"},
    [PG_STMT_HISTORY] = {"history", "SELECT seq, time, code, type, owner, undone FROM history "
                                    "WHERE seq > $1 ORDER BY seq LIMIT $2"},
    [PG_STMT_CHECK] = {"check_store", NULL}, /* set below: long */
    [PG_STMT_XACT_STATUS] = {"xact_status",
                             "SELECT pg_xact_status($1::xid8), EXISTS (SELECT 1 FROM "
                             "coupond_audit WHERE node = $2 AND seq = $3::int8)"},
    /* A hold of one use until $4, when the coupon passes VALIDATE's checks at $1. Result:
     * (hold seq, hold end, coupon) when held, else (NULL, NULL, coupon as found); no row: no
     * such coupon. `held` counts at the statement's start. */
    [PG_STMT_HOLD] =
        {"hold",
         "WITH ok AS (SELECT c.code, c.owner, c.type FROM coupons c WHERE c.code = $2 "
         "AND c.owner = $3 AND c.expires >= $1 AND c.uses + (SELECT count(*) FROM holds h "
         "WHERE h.code = $2 AND h.expires >= $1) < c.max_uses), "
         "ins AS (INSERT INTO holds (seq, code, owner, type, expires) "
         "SELECT nextval('hold_seq'), code, owner, type, $4 FROM ok RETURNING seq, expires) "
         "SELECT (SELECT seq FROM ins), (SELECT expires FROM ins), " COUPON_COLS
         " FROM coupons c WHERE c.code = $2"},
    /* Ends live hold $2. Result: the coupon (`held` counted before); no row: no such hold. */
    [PG_STMT_RELEASE] = {"release", "WITH d AS (DELETE FROM holds WHERE seq = $2 "
                                    "AND expires >= $1 RETURNING code) SELECT " COUPON_COLS
                                    " FROM coupons c JOIN d ON d.code = c.code"},
    /* Undoes redemption $2 of user $3 at $1 (a use given back). Result: the coupon after; no
     * row: no such standing redemption. */
    [PG_STMT_UNREDEEM] =
        {"unredeem", "WITH h AS (UPDATE history SET undone = greatest($1::int8, 1) WHERE seq = $2 "
                     "AND owner = $3 AND undone = 0 RETURNING code), "
                     "u AS (UPDATE coupons c SET uses = c.uses - 1 FROM h WHERE c.code = h.code "
                     "RETURNING c.*), "
                     "d AS (INSERT INTO coupond_delta (type, unredeemed) SELECT type, 1 FROM u) "
                     "SELECT " COUPON_COLS " FROM u AS c"},
    /* Publishes the first $2 staged candidates of op $1 whose codes are not stored, all or
     * none. Result: (usable, idx): the candidates usable (at most $2), then the idx of each one
     * stored, in order; one row with idx NULL when fewer than $2 are usable. */
    [PG_STMT_GENERATE] =
        {"generate",
         "WITH c AS (SELECT u.* FROM coupond_upload u WHERE u.op = $1 AND NOT EXISTS "
         "(SELECT 1 FROM coupons x WHERE x.code = u.code) ORDER BY u.idx LIMIT $2), "
         "go AS (SELECT count(*) = $2::int8 AS ok FROM c), "
         "ins AS (INSERT INTO coupons (code, type, kind, discount, expires, max_uses, seq) "
         "SELECT s.code, s.type, s.kind, s.discount, s.expires, s.max_uses, "
         "nextval('coupon_seq') FROM (SELECT * FROM c WHERE (SELECT ok FROM go) ORDER BY idx) "
         "AS s RETURNING type, expires, seq, code), "
         "av AS (INSERT INTO avail (type, expires, seq, code) "
         "SELECT type, expires, seq, code FROM ins), "
         "d AS (INSERT INTO coupond_delta (type, created, unassigned) "
         "SELECT type, count(*), count(*) FROM ins GROUP BY type) "
         "SELECT n.usable, c.idx FROM (SELECT count(*) AS usable FROM c) AS n "
         "LEFT JOIN c ON (SELECT ok FROM go) ORDER BY c.idx"},
    [PG_STMT_EXPIRE_HOLDS] =
        {"expire_holds",
         "WITH v AS (SELECT seq, expires FROM holds WHERE expires < $1 ORDER BY expires, seq "
         "LIMIT $2::int8 + 1 FOR UPDATE SKIP LOCKED), "
         "d AS (DELETE FROM holds h USING (SELECT seq FROM v ORDER BY expires, seq LIMIT $2) "
         "AS k WHERE h.seq = k.seq RETURNING 1) "
         "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM v) > $2::int8"},
    [PG_STMT_EXPIRE_IDS] =
        {"expire_ids",
         "WITH v AS (SELECT scope, id, done_at FROM rids WHERE done_at < $1 ORDER BY done_at "
         "LIMIT $2::int8 + 1 FOR UPDATE SKIP LOCKED), "
         "d AS (DELETE FROM rids r USING (SELECT scope, id FROM v ORDER BY done_at LIMIT $2) "
         "AS k WHERE r.scope = k.scope AND r.id = k.id RETURNING 1) "
         "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM v) > $2::int8"},
    [PG_STMT_RID_GET] = {"rid_get", "SELECT " RID_COLS " FROM rids WHERE scope = $1 AND id = $2"},
    [PG_STMT_RID_LOOKUP] = {"rid_lookup", "SELECT " RID_COLS " FROM rids WHERE (scope, id) IN "
                                          "(SELECT * FROM unnest($1::text[], $2::text[]))"},
    [PG_STMT_RID_PUT] = {"rid_put",
                         "INSERT INTO rids (scope, id, fp, kind, done_at, code, hold_seq, "
                         "hold_expires, redemption, task_seq, task_stamp, count, coupon, codes) "
                         "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int2[], "
                         "$5::int8[], $6::text[], $7::int8[], $8::int8[], $9::int8[], "
                         "$10::int8[], $11::int8[], $12::int8[], $13::text[], $14::text[])"},
    /* A user's coupons, newest first, $3 of them at most (at least one row is asked for, so
     * that the count of all comes back), with that count last. */
    [PG_STMT_COUPONS] = {"coupons", "SELECT " COUPON_COLS ", count(*) OVER () FROM coupons c "
                                    "WHERE c.owner = $2 ORDER BY c.assigned_at DESC, c.seq DESC "
                                    "LIMIT greatest($3::int8, 1)"},
    /* A MEGADEAL grant within the limits shared by nodes (the batch holds PG_SQL_LOCK_GRANT, so
     * the grants of every node are decided one at a time, each seeing those before it): when
     * fewer than $7 grants were made in the window ($9 ms) ending now and fewer than $8 slots
     * are open (not done and within the lease), the assignment of a run of one, and the grant's
     * row; grants past PG_SQL_GRANT_KEEP_MS go. Result, one row: (allowed, grant id, coupon);
     * allowed and no grant: no coupon. */
    [PG_STMT_GRANT] =
        {"grant",
         "WITH clock AS (SELECT " CLOCK_MS " AS ms), "
         "lim AS (SELECT (SELECT count(*) FROM megadeal_grants g WHERE g.at_ms > c.ms - $9::int8) "
         "AS recent, (SELECT count(*) FROM megadeal_grants g WHERE g.done_ms IS NULL "
         "AND g.at_ms > c.ms - 10000) AS open, c.ms FROM clock c), "
         "ok AS (SELECT recent < $7::int8 AND open < $8::int8 AS go, ms FROM lim), "
         "claim AS (SELECT a.type, a.expires, a.seq, a.code FROM avail a WHERE (SELECT go FROM ok) "
         "AND a.type = $2::int2 AND a.expires >= $3::int8 ORDER BY a.expires, a.seq LIMIT 1 "
         "FOR UPDATE SKIP LOCKED), "
         "gone AS (DELETE FROM avail a USING claim WHERE a.type = claim.type "
         "AND a.expires = claim.expires AND a.seq = claim.seq), "
         "upd AS (UPDATE coupons c SET owner = $4, assigned_at = $1 FROM claim "
         "WHERE c.code = claim.code AND c.owner IS NULL RETURNING c.code, c.type, c.kind, "
         "c.discount, c.expires, c.uses, c.max_uses, c.seq, c.owner, c.assigned_at), "
         "d AS (INSERT INTO coupond_delta (type, assigned, unassigned) SELECT type, 1, -1 FROM "
         "upd), "
         "g AS (INSERT INTO megadeal_grants (node, task, code, at_ms) SELECT $5, $6::int8, "
         "upd.code, "
         "ok.ms FROM upd, ok RETURNING id), "
         "old AS (DELETE FROM megadeal_grants x WHERE x.at_ms < (SELECT ms FROM ok) - 60000) "
         "SELECT (SELECT go FROM ok), (SELECT id FROM g), u.code, u.type, u.kind, u.discount, "
         "u.expires, u.uses, u.max_uses, 0, u.seq, u.owner, u.assigned_at "
         "FROM (SELECT 1) AS one LEFT JOIN upd u ON true"},
    [PG_STMT_GRANT_DONE] = {"grant_done", "UPDATE megadeal_grants SET done_ms = " CLOCK_MS
                                          " WHERE id = $1::int8 AND done_ms IS NULL"},
    /* Every batch that writes reads its node's head and inserts its records: prepared, they are
     * parsed and planned once a connection instead of at every batch. */
    [PG_STMT_AUDIT_HEAD] = {"audit_head", "SELECT seq, encode(hash, 'hex') FROM coupond_audit "
                                          "WHERE node = $1 ORDER BY seq DESC LIMIT 1"},
    [PG_STMT_AUDIT_INSERT] = {"audit_insert",
                              "INSERT INTO coupond_audit (node, seq, hash, rec) SELECT $1, s, h, r "
                              "FROM unnest($2::int8[], $3::bytea[], $4::bytea[]) AS t(s, h, r)"},
};

/* CHECK, in one statement (one snapshot): rows (what, type, v1..v7, message). "cnt": the
 * counters of a type (created assigned redeemed purged purged_assigned unassigned unredeemed);
 * "rec": recounts of its coupons (records assigned unassigned uses available-now); "avl": its
 * queue entries (all, expired at now); "his": its redemptions (all, undone); "bad": the first
 * breach of an invariant that a single row shows. */
static const char check_sql[] =
    "SELECT 'cnt', type, created, assigned, redeemed, purged, purged_assigned, unassigned, "
    "unredeemed, NULL FROM (" COUNTER_SUMS ") AS s "
    "UNION ALL SELECT 'rec', type, count(*), count(owner), count(*) - count(owner), sum(uses), "
    "count(*) FILTER (WHERE owner IS NULL AND expires >= $1), 0, 0, NULL FROM coupons "
    "GROUP BY type "
    "UNION ALL SELECT 'avl', type, count(*), count(*) FILTER (WHERE expires < $1), 0, 0, 0, 0, 0, "
    "NULL FROM avail GROUP BY type "
    "UNION ALL SELECT 'his', type, count(*), count(*) FILTER (WHERE undone <> 0), 0, 0, 0, 0, 0, "
    "NULL FROM history GROUP BY type "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, CASE "
    "WHEN c.type NOT BETWEEN 0 AND 3 OR c.kind NOT BETWEEN 0 AND 1 "
    "THEN format('coupon %s has type %s, kind %s', c.code, c.type, c.kind) "
    "WHEN c.uses > c.max_uses THEN format('coupon %s has %s uses of max %s', c.code, c.uses, "
    "c.max_uses) "
    "ELSE format('coupon %s is redeemed but has no user', c.code) END FROM coupons c "
    "WHERE c.type NOT BETWEEN 0 AND 3 OR c.kind NOT BETWEEN 0 AND 1 OR c.uses > c.max_uses "
    "OR (c.uses > 0 AND c.owner IS NULL) LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, format('coupon %s has no avail index "
    "entry %s/%s/%s', c.code, c.type, c.expires, c.seq) FROM coupons c WHERE c.owner IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM avail a WHERE a.type = c.type AND a.expires = c.expires "
    "AND a.seq = c.seq AND a.code = c.code) LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, CASE WHEN c.code IS NULL "
    "THEN format('avail index entry %s/%s/%s points at missing coupon %s', a.type, a.expires, "
    "a.seq, a.code) WHEN c.owner IS NOT NULL THEN format('avail index entry %s/%s/%s points at "
    "assigned coupon %s', a.type, a.expires, a.seq, a.code) ELSE format('avail index entry "
    "%s/%s/%s does not match coupon %s', a.type, a.expires, a.seq, a.code) END "
    "FROM avail a LEFT JOIN coupons c ON c.code = a.code WHERE c.code IS NULL "
    "OR c.owner IS NOT NULL OR c.type <> a.type OR c.expires <> a.expires OR c.seq <> a.seq "
    "LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, CASE WHEN c.code IS NULL "
    "THEN format('history record %s names missing coupon %s', h.seq, h.code) "
    "ELSE format('history record %s (%s %s) does not match coupon %s', h.seq, h.type, h.owner, "
    "c.code) END FROM history h LEFT JOIN coupons c ON c.code = h.code WHERE c.code IS NULL "
    "OR c.type <> h.type OR c.owner IS DISTINCT FROM h.owner OR NOT c.redeemed LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, format('coupon %s has %s uses and %s "
    "redemptions standing (%s in all)', c.code, c.uses, coalesce(h.standing, 0), "
    "coalesce(h.total, 0)) FROM coupons c LEFT JOIN (SELECT code, count(*) AS total, "
    "count(*) FILTER (WHERE undone = 0) AS standing FROM history GROUP BY code) AS h "
    "ON h.code = c.code WHERE c.uses <> coalesce(h.standing, 0) "
    "OR c.redeemed <> (coalesce(h.total, 0) > 0) LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, CASE WHEN c.code IS NULL "
    "THEN format('hold %s names missing coupon %s', h.seq, h.code) ELSE format('hold %s (%s) "
    "does not match coupon %s', h.seq, h.owner, c.code) END FROM holds h LEFT JOIN coupons c "
    "ON c.code = h.code WHERE c.code IS NULL OR c.owner IS DISTINCT FROM h.owner "
    "OR c.type <> h.type LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, format('coupon %s has %s uses and %s live "
    "holds of max %s', c.code, c.uses, h.n, c.max_uses) FROM coupons c JOIN (SELECT code, "
    "count(*) AS n FROM holds WHERE expires >= $1 GROUP BY code) AS h ON h.code = c.code "
    "WHERE c.uses + h.n > c.max_uses LIMIT 1) "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, format('seq %s is shared by %s coupons', "
    "seq, count(*)) FROM coupons GROUP BY seq HAVING count(*) > 1 LIMIT 1) "
    "UNION ALL SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, format('a %s seq is %s, its sequence is at "
    "%s', what, top, last) FROM (SELECT 'coupon' AS what, (SELECT max(seq) FROM coupons) AS top, "
    "(SELECT last_value FROM coupon_seq) AS last UNION ALL SELECT 'redemption', "
    "(SELECT max(seq) FROM history), (SELECT last_value FROM redemption_seq) UNION ALL "
    "SELECT 'hold', (SELECT max(seq) FROM holds), (SELECT last_value FROM hold_seq)) AS q "
    "WHERE top > last "
    "UNION ALL (SELECT 'bad', 0, 0, 0, 0, 0, 0, 0, 0, format('counters of node %s have type %s', "
    "node, type) FROM counters WHERE type NOT BETWEEN 0 AND 3 LIMIT 1)";

const char *
pg_sql_name(enum pg_stmt s)
{
    return stmts[s].name;
}

const char *
pg_sql_text(enum pg_stmt s)
{
    return s == PG_STMT_CHECK ? check_sql : stmts[s].sql;
}

const char *const *
pg_sql_schema(size_t *n)
{
    *n = sizeof schema / sizeof schema[0];
    return schema;
}

const char *const *
pg_sql_upgrade(int64_t from, size_t *n)
{
    if (from == 1) {
        *n = sizeof upgrade_2 / sizeof upgrade_2[0];
        return upgrade_2;
    }
    *n = 0;
    return upgrade_2;
}

const char *const *
pg_sql_session(size_t *n)
{
    *n = sizeof session / sizeof session[0];
    return session;
}

void
pg_sql_export(char *buf, size_t len, int what, bool any_type, int type, int64_t after,
              const char *code, int64_t now)
{
    static const char history[] = "SELECT seq, time, code, type, owner, undone FROM history ";

    switch (what) {
    case STORE_EXPORT_COUPONS: {
        char where[32] = "";

        if (!any_type)
            snprintf(where, sizeof where, "WHERE c.type = %d ", type);
        snprintf(buf, len,
                 "SELECT c.code, c.type, c.kind, c.discount, c.expires, c.uses, c.max_uses, "
                 "(SELECT count(*) FROM holds h WHERE h.code = c.code AND h.expires >= %" PRId64
                 "), c.seq, coalesce(c.owner, ''), c.assigned_at FROM coupons c %sORDER BY c.code",
                 now, where);
        break;
    }
    case STORE_EXPORT_HISTORY:
        snprintf(buf, len, "%sWHERE seq > %" PRId64 " ORDER BY seq", history, after);
        break;
    default:
        snprintf(buf, len, "%sWHERE code = '%s' ORDER BY seq", history, code);
        break;
    }
}
