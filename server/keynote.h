/* keynote.h - key changes in the audit chain. The server compares the keys file with the keys
 * the chain last recorded (DATADIR/keys.noted, in the keys file's form) at start and on each
 * reload, and appends one note per difference: KEY_ADD or KEY_REVOKE with the key's name, role
 * and short id. Once every note of a comparison is durable, keys.noted becomes a copy of what
 * was compared; a failed note leaves it, so the next reload appends the notes again. So a change
 * made while the server is down is recorded at its next start, and each change is recorded at
 * least once (twice only if the server dies between a note's commit and keys.noted's rename). */
#ifndef COUPOND_KEYNOTE_H
#define COUPOND_KEYNOTE_H

#include <ev.h>
#include <stddef.h>

#define KEYNOTE_FILE "keys.noted"

struct group;
struct keynote;
struct keyring;
struct log;

/* Reads DIR/keys.noted (none: no key recorded yet). NULL with a reason in errbuf. */
struct keynote *keynote_new(struct ev_loop *loop, struct group *g, struct log *lg, const char *dir,
                            char *errbuf, size_t errlen);

/* Appends the notes of the differences between what the chain recorded and `now` (copied: the
 * caller may free it at once). While an earlier comparison's notes are in flight, this one
 * waits for them; only the newest waiting comparison is kept. */
void keynote_sync(struct keynote *kn, const struct keyring *now);

/* Frees it; no note may be in flight (the store is closed). */
void keynote_free(struct keynote *kn);

#endif
