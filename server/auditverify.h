/* auditverify.h - coupond --verify-audit: reads a store's audit chain from its first record
 * through store.h alone (so it serves every backend), recomputes every hash (audit.h's
 * verifier), checks the stored head against the chain, and signs the head with the key in
 * DATADIR/audit.key and checks that signature with the public key derived from it; with a head
 * saved from an earlier AUDIT reply (--audit-head), also that the chain still holds that head
 * and that its signature is audit.key's.
 *
 * The store is opened read-only, and audit.key must exist: nothing is created. The chain may be
 * read while a server writes to the store: the head is read before the records and again after
 * them, and records past the first head are allowed only when the head moved meanwhile.
 *
 * Output. Success: one line on `out`,
 *   coupond: DIR: audit chain verified: N records, head seq=N hash=H sig=S key=PK
 * S being the signature AUDIT gives for that head (Ed25519 is deterministic) and PK the public
 * key in hex. Failure: on `err`, `coupond: audit chain: record N ...: what differs`, then the
 * record's line as EXPORT AUDIT shows it (auditline.h) when the store gave one. */
#ifndef COUPOND_AUDITVERIFY_H
#define COUPOND_AUDITVERIFY_H

#include <ev.h>
#include <stdint.h>
#include <stdio.h>

#define AUDITVERIFY_OK       0 /* the chain and the head verify */
#define AUDITVERIFY_MISMATCH 1 /* a record or the head does not match, or it could not be read */
/* Records read per EXPORT call: as EXPORT AUDIT reads them (cmd.h's CMD_AUDIT_CHUNK). */
#define AUDITVERIFY_CHUNK 100

struct auditverify_config {
    const char *uri;       /* the store (an LMDB directory or a PostgreSQL URI) */
    const char *data_dir;  /* where audit.key is; named in the report */
    const char *node_name; /* PostgreSQL: whose chain (NULL: the host name) */
    uint64_t map_size;     /* LMDB's, as the server opens it */
    const char *head;      /* "seq=N hash=H sig=S" saved from AUDIT, or NULL */
};

/* Verifies (see the top of this file); returns AUDITVERIFY_OK or AUDITVERIFY_MISMATCH.
 * sodium_init() must have run; `loop` runs the store's completions. */
int auditverify_run(struct ev_loop *loop, const struct auditverify_config *c, FILE *out, FILE *err);

#endif
