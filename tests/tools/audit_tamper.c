/* audit_tamper.c - a test tool: alters one byte of one stored audit record of a stopped LMDB
 * store, behind coupond's back, as an attacker or a bad disk would, so that a test can show
 * that coupond --verify-audit names that record.
 *
 *   audit_tamper DIR SEQ [OFFSET]
 *
 * Flips the lowest bit of byte OFFSET (default 20) of record SEQ's encoded record: the bytes
 * after its stored 32-byte hash in the `audit` database (lmdb_codec.h: audit value = hash |
 * record). Byte 20 falls in the record's actor or verb, so it still decodes and only its hash
 * tells. Exits 0 when it altered the byte, 1 otherwise (no such record, OFFSET past its end). */
#include <inttypes.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_BYTES     32   /* the stored hash in front of each record */
#define DEFAULT_OFFSET 20   /* in the actor or verb of any record */
#define VALUE_MAX      4096 /* larger than any audit value (hash and a 2 KiB record) */
#define MAXDBS         32   /* more than the store's databases */

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "audit_tamper: %s: %s\n", what, rc != 0 ? mdb_strerror(rc) : "no");
    return 1;
}

/* Flips the byte in record seq (key: 8 bytes big-endian) in an open write transaction. */
static int
flip(MDB_txn *txn, MDB_dbi dbi, uint64_t seq, size_t off)
{
    uint8_t kb[8], buf[VALUE_MAX];
    MDB_val k = {sizeof kb, kb}, v;
    int rc;

    for (int i = 0; i < 8; i++)
        kb[i] = (uint8_t)(seq >> (56 - 8 * i));
    if ((rc = mdb_get(txn, dbi, &k, &v)) != 0)
        return fail("record", rc);
    if (v.mv_size > sizeof buf || HASH_BYTES + off >= v.mv_size)
        return fail("offset past the record's end", 0);
    memcpy(buf, v.mv_data, v.mv_size);
    buf[HASH_BYTES + off] ^= 0x01;
    v.mv_data = buf;
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
        return fail("put", rc);
    printf("audit_tamper: record %" PRIu64 ": byte %zu flipped\n", seq, off);
    return 0;
}

int
main(int argc, char **argv)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc, status;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: audit_tamper DIR SEQ [OFFSET]\n");
        return 2;
    }
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, MAXDBS)) != 0 ||
        (rc = mdb_env_open(env, argv[1], 0, 0600)) != 0)
        return fail(argv[1], rc);
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "audit", 0, &dbi)) != 0)
        return fail("audit database", rc);
    status = flip(txn, dbi, strtoull(argv[2], NULL, 10),
                  argc == 4 ? strtoull(argv[3], NULL, 10) : DEFAULT_OFFSET);
    if (status == 0 && (rc = mdb_txn_commit(txn)) != 0)
        return fail("commit", rc);
    if (status != 0)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return status;
}
