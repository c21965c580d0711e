/* auditverify.c - coupond --verify-audit (see auditverify.h). */
#include "auditverify.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auditkey.h"
#include "auditline.h"
#include "proto.h"
#include "reply.h"
#include "store.h"

#define ERRBUF_MAX  512 /* a store's one-line reason and what was being done */
#define SEQ_DIGITS  20  /* a uint64 in decimal */
#define SIG_HEX_LEN (2 * AUDITKEY_SIG_BYTES)

/* A head saved from an AUDIT reply, and what the chain holds at its record. */
struct saved {
    bool given;
    struct store_audit_head head;
    unsigned char sig[AUDITKEY_SIG_BYTES];
    bool reached;                         /* the chain has its record */
    uint8_t hash[STORE_AUDIT_HASH_BYTES]; /* the hash computed for that record */
};

/* One run: the store, the key, where reports go. */
struct run {
    struct ev_loop *loop;
    struct store *st;
    struct auditkey *key;
    const struct auditverify_config *c;
    FILE *out, *err;
    struct audit_verify v;
    struct saved saved;
    struct store_audit_row *rows; /* AUDITVERIFY_CHUNK of them */
    struct proto_out line;        /* writes a record's line to err */
};

__attribute__((format(printf, 2, 3))) static int
report(struct run *r, const char *fmt, ...)
{
    va_list ap;

    fputs("coupond: audit chain: ", r->err);
    va_start(ap, fmt);
    vfprintf(r->err, fmt, ap);
    va_end(ap);
    fputc('\n', r->err);
    return AUDITVERIFY_MISMATCH;
}

static void
to_file(void *arg, const char *data, size_t len)
{
    fwrite(data, 1, len, arg);
}

/* The record's line as EXPORT AUDIT shows it, on err. */
static void
show(struct run *r, const struct store_audit_row *row)
{
    proto_out_init(&r->line, to_file, r->err);
    auditline_write(&r->line, row);
}

static void
read_done(struct store_op *op)
{
    *(bool *)op->arg = true;
}

/* Runs one read to its end on the loop. */
static enum store_err
read_now(struct run *r, struct store_op *op)
{
    bool done = false;

    op->done = read_done;
    op->arg = &done;
    store_read(r->st, op);
    while (!done)
        ev_run(r->loop, EVRUN_ONCE);
    return op->err;
}

static bool
read_head(struct run *r, struct store_audit_head *h)
{
    struct store_op op;

    memset(&op, 0, sizeof op);
    op.kind = STORE_OP_AUDIT_HEAD;
    op.now = (int64_t)time(NULL);
    if (read_now(r, &op) != STORE_OK) {
        report(r, "cannot read the head: %s", op.out.msg);
        return false;
    }
    *h = op.out.audit;
    return true;
}

/* "seq=N hash=H sig=S", with or without the "OK" in front. */
static bool
parse_saved(const char *s, struct saved *sv)
{
    const char *seq, *hash, *sig;
    size_t n = strlen(s), seq_len, hash_len, sig_len, bin = 0;
    char digits[SEQ_DIGITS + 1], *end;

    if (!proto_reply_field(s, n, "seq", &seq, &seq_len) ||
        !proto_reply_field(s, n, "hash", &hash, &hash_len) ||
        !proto_reply_field(s, n, "sig", &sig, &sig_len) || seq_len == 0 || seq_len > SEQ_DIGITS)
        return false;
    memcpy(digits, seq, seq_len);
    digits[seq_len] = '\0';
    if (strspn(digits, "0123456789") != seq_len)
        return false;
    sv->head.seq = strtoull(digits, &end, 10);
    return audit_unhex(hash, hash_len, sv->head.hash) && sig_len == SIG_HEX_LEN &&
           sodium_hex2bin(sv->sig, sizeof sv->sig, sig, sig_len, NULL, &bin, NULL) == 0 &&
           bin == sizeof sv->sig;
}

/* Feeds one record; notes the saved head's record. */
static bool
take_row(struct run *r, const struct store_audit_row *row)
{
    if (!audit_verify_row(&r->v, row))
        return false;
    if (r->saved.given && row->seq == r->saved.head.seq) {
        r->saved.reached = true;
        memcpy(r->saved.hash, r->v.hash, sizeof r->saved.hash);
    }
    return true;
}

/* Reads every record, in chunks through an export's cursor, and checks each. */
static int
walk(struct run *r)
{
    struct store_op op;
    void *cursor = NULL;

    do {
        memset(&op, 0, sizeof op);
        op.kind = STORE_OP_EXPORT;
        op.now = (int64_t)time(NULL);
        op.in.export_kind = STORE_EXPORT_AUDIT;
        op.in.cursor = cursor;
        op.in.audit = r->rows;
        op.in.cap = AUDITVERIFY_CHUNK;
        if (read_now(r, &op) != STORE_OK)
            return report(r, "cannot read the records after %" PRIu64 ": %s", r->v.seq, op.out.msg);
        for (size_t i = 0; i < op.out.count; i++)
            if (!take_row(r, &r->rows[i])) {
                report(r, "%s", r->v.why);
                show(r, &r->rows[i]);
                return AUDITVERIFY_MISMATCH; /* store_close releases the cursor */
            }
        cursor = op.out.cursor;
    } while (op.out.more);
    return AUDITVERIFY_OK;
}

/* A head saved from AUDIT: signed by this key, and still a record of the chain. */
static int
check_saved(struct run *r, const unsigned char pk[AUDITKEY_PK_BYTES])
{
    const struct saved *sv = &r->saved;
    char want[AUDIT_HEX_BUF], got[AUDIT_HEX_BUF];

    if (!auditkey_verify(pk, &sv->head, sv->sig))
        return report(r, "the saved head seq=%" PRIu64 " is not signed by %s/%s", sv->head.seq,
                      r->c->data_dir, AUDITKEY_FILE);
    if (sv->head.seq == 0 || (!sv->reached && sv->head.seq > r->v.seq))
        return sv->head.seq == 0 ? AUDITVERIFY_OK
                                 : report(r,
                                          "record %" PRIu64 " is missing: the saved head is "
                                          "record %" PRIu64 ", the chain ends at %" PRIu64,
                                          r->v.seq + 1, sv->head.seq, r->v.seq);
    if (sodium_memcmp(sv->hash, sv->head.hash, STORE_AUDIT_HASH_BYTES) != 0) {
        audit_hex(sv->head.hash, want);
        audit_hex(sv->hash, got);
        return report(r,
                      "record %" PRIu64 " is not the one of the saved head (hash %s, now %s): "
                      "the chain was rewritten at or before it",
                      sv->head.seq, want, got);
    }
    return AUDITVERIFY_OK;
}

/* The head signed and checked, and the summary. */
static int
sign_head(struct run *r, const struct store_audit_head *h)
{
    unsigned char pk[AUDITKEY_PK_BYTES], sig[AUDITKEY_SIG_BYTES];
    char hash[AUDIT_HEX_BUF], sig_hex[AUDITKEY_SIG_HEX], pk_hex[AUDITKEY_PK_HEX];
    int status;

    auditkey_public(r->key, pk);
    auditkey_sign(r->key, h, sig);
    if (!auditkey_verify(pk, h, sig))
        return report(r, "the head's signature does not verify under %s/%s's public key",
                      r->c->data_dir, AUDITKEY_FILE);
    if (r->saved.given && (status = check_saved(r, pk)) != AUDITVERIFY_OK)
        return status;
    audit_hex(h->hash, hash);
    sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
    sodium_bin2hex(pk_hex, sizeof pk_hex, pk, sizeof pk);
    fprintf(r->out,
            "coupond: %s: audit chain verified: %" PRIu64 " records, head seq=%" PRIu64
            " hash=%s sig=%s key=%s\n",
            r->c->data_dir, r->v.seq, h->seq, hash, sig_hex, pk_hex);
    return AUDITVERIFY_OK;
}

static int
verify(struct run *r)
{
    struct store_audit_head before, after;
    int status;

    if (!read_head(r, &before))
        return AUDITVERIFY_MISMATCH;
    audit_verify_init(&r->v, &before);
    if ((status = walk(r)) != AUDITVERIFY_OK)
        return status;
    if (!read_head(r, &after))
        return AUDITVERIFY_MISMATCH;
    if (!audit_verify_end(&r->v, &after))
        return report(r, "%s", r->v.why);
    return sign_head(r, &before);
}

/* Opens what verify needs: the saved head, the key, the store, the rows' buffer. */
static int
open_all(struct run *r)
{
    struct store_config cfg = {.loop = r->loop,
                               .mode = STORE_OPEN_EXISTING,
                               .map_size = r->c->map_size,
                               .node_name = r->c->node_name};
    char why[ERRBUF_MAX];

    if (r->c->head != NULL && !(r->saved.given = parse_saved(r->c->head, &r->saved)))
        return report(r, "--audit-head takes an AUDIT reply: seq=N hash=H sig=S");
    if ((r->key = auditkey_load(r->c->data_dir, false, why, sizeof why)) == NULL)
        return report(r, "%s", why);
    if (store_open(r->c->uri, &cfg, &r->st, why, sizeof why) != STORE_OK)
        return report(r, "%s", why);
    if ((r->rows = calloc(AUDITVERIFY_CHUNK, sizeof *r->rows)) == NULL)
        return report(r, "out of memory");
    return AUDITVERIFY_OK;
}

int
auditverify_run(struct ev_loop *loop, const struct auditverify_config *c, FILE *out, FILE *err)
{
    struct run *r = calloc(1, sizeof *r);
    int status;

    if (r == NULL) {
        fputs("coupond: audit chain: out of memory\n", err);
        return AUDITVERIFY_MISMATCH;
    }
    *r = (struct run){.loop = loop, .c = c, .out = out, .err = err};
    status = open_all(r);
    if (status == AUDITVERIFY_OK)
        status = verify(r);
    store_close(r->st);
    auditkey_free(r->key);
    free(r->rows);
    free(r);
    return status;
}
