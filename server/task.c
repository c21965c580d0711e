/* task.c - MEGADEAL task ids: signed ids (sigid.h) with the key in task.key. */
#include "task.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigid.h"

_Static_assert(TASK_MAC_BYTES == SIGID_MAC_BYTES, "the MAC is sigid's");
_Static_assert(TASK_TAG_BYTES >= crypto_generichash_BYTES_MIN, "BLAKE2b output size");
_Static_assert(TASK_PAYLOAD_BYTES == SIGID_HEAD_BYTES + TASK_BODY_BYTES, "version, key id, body");
_Static_assert(TASK_BODY_BYTES <= SIGID_BODY_MAX, "a task body is a signed id's body");

/* The signed id's key: task.key itself, as it always was, so ids keep their form. */
struct task_key {
    struct sigid_key *sig;
};

static struct task_key *
wrap(struct sigid_key *sig)
{
    struct task_key *k;

    if (sig == NULL || (k = malloc(sizeof *k)) == NULL) {
        sigid_key_free(sig);
        return NULL;
    }
    k->sig = sig;
    return k;
}

struct task_key *
task_key_load(const char *dir, char *errbuf, size_t errlen)
{
    struct sigid_key *sig = sigid_key_load(dir, TASK_KEY_FILE, errbuf, errlen);
    struct task_key *k = sig != NULL ? wrap(sig) : NULL;

    if (sig != NULL && k == NULL)
        snprintf(errbuf, errlen, "out of memory for the task key");
    return k;
}

struct task_key *
task_key_from_bytes(const unsigned char bytes[KEYS_BYTES])
{
    return wrap(sigid_key_from_bytes(bytes));
}

void
task_key_fingerprint(const struct task_key *k, char out[TASK_FP_BUF])
{
    static const char what[] = "coupond task key fingerprint";
    unsigned char h[crypto_generichash_BYTES_MIN];

    sigid_hash(k->sig, what, sizeof what - 1, h, sizeof h);
    sodium_bin2hex(out, TASK_FP_BUF, h, TASK_FP_BYTES);
}

void
task_key_free(struct task_key *k)
{
    if (k == NULL)
        return;
    sigid_key_free(k->sig);
    free(k);
}

void
task_user_tag(const struct task_key *k, const char *user, unsigned char tag[TASK_TAG_BYTES])
{
    sigid_hash(k->sig, user, strlen(user), tag, TASK_TAG_BYTES);
}

void
task_payload_make(const struct task_key *k, uint64_t seq, int64_t issued_ms, int64_t deadline_ms,
                  const char *user, struct task_payload *p)
{
    p->seq = seq;
    p->issued_ms = issued_ms;
    p->deadline_ms = deadline_ms;
    task_user_tag(k, user, p->user_tag);
}

void
task_encode(const struct task_key *k, const struct task_payload *p, char out[TASK_ID_BUF])
{
    unsigned char body[TASK_BODY_BYTES];

    sigid_put_be64(body, p->seq);
    sigid_put_be64(body + 8, (uint64_t)p->issued_ms);
    sigid_put_be64(body + 16, (uint64_t)p->deadline_ms);
    memcpy(body + 24, p->user_tag, TASK_TAG_BYTES);
    sigid_encode(k->sig, TASK_VERSION, body, sizeof body, out, TASK_ID_BUF);
}

bool
task_decode(const struct task_key *k, const char *id, size_t len, struct task_payload *out)
{
    unsigned char body[TASK_BODY_BYTES];

    if (!sigid_decode(k->sig, TASK_VERSION, id, len, body, sizeof body))
        return false;
    out->seq = sigid_get_be64(body);
    out->issued_ms = (int64_t)sigid_get_be64(body + 8);
    out->deadline_ms = (int64_t)sigid_get_be64(body + 16);
    memcpy(out->user_tag, body + 24, TASK_TAG_BYTES);
    return true;
}

bool
task_payload_equal(const struct task_payload *a, const struct task_payload *b)
{
    return a->seq == b->seq && a->issued_ms == b->issued_ms && a->deadline_ms == b->deadline_ms &&
           sodium_memcmp(a->user_tag, b->user_tag, TASK_TAG_BYTES) == 0;
}
