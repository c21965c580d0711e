/* reqid.h - the request ids couponctl gives its writes (coupond-protocol(7), REQUEST IDS). Each
 * is derived from what the write carries, never drawn at random, so that the same command run
 * again after a failure sends the same ids, and coupond replays what it stored the first time
 * instead of storing it twice. */
#ifndef COUPONCTL_REQID_H
#define COUPONCTL_REQID_H

#include <stddef.h>

#include "proto.h"

/* BLAKE2b (libsodium's crypto_generichash) cut to 192 bits: two different batches get the same
 * id with odds of 2^-96 per pair, and the id's text stays short: 32 characters of base64url,
 * which are all in the request id alphabet. */
#define REQID_HASH_BYTES 24
#define REQID_HASH_CHARS 32
#define REQID_BUF        (PROTO_RID_MAX + 1)

/* The id of UPLOAD batch `batch` (from 1) whose record lines are the `len` bytes at `records`,
 * as sent: "up-<batch>-<hash of the records>". The same records as the same batch get the
 * same id, however the file that held them was laid out (header, quotes, column order, line
 * ends), since the records are the canonical lines of proto_fmt_record(). 43 characters at
 * most for the 5000000 batches a file can have at most. */
void reqid_upload(char out[REQID_BUF], size_t batch, const char *records, size_t len);

/* The id of a GENERATE: "gen-<hash>" of its canonical request line without id= (see
 * proto_fmt_request()), the host name and the absolute path of the file its codes go to. The
 * same command for the same file on the same host gets the same id; another file is another
 * batch. 36 characters. */
void reqid_generate(char out[REQID_BUF], const char *canonical, const char *host, const char *path);

#endif
