/* hold.c - hold ids (see hold.h). */
#include "hold.h"

#include <stdio.h>
#include <stdlib.h>

#include "keys.h"
#include "sigid.h"
#include "task.h"

_Static_assert(HOLD_BODY_BYTES <= SIGID_BODY_MAX, "a hold body is a signed id's body");

struct hold_key {
    struct sigid_key *sig;
};

/* Derives the hold key from the task key `root`, and frees the root. */
static struct hold_key *
derive(struct sigid_key *root)
{
    struct hold_key *k;

    if (root == NULL)
        return NULL;
    struct sigid_key *sig = sigid_key_derive(root, HOLD_KEY_PURPOSE);
    sigid_key_free(root);
    if (sig == NULL || (k = malloc(sizeof *k)) == NULL) {
        sigid_key_free(sig);
        return NULL;
    }
    k->sig = sig;
    return k;
}

struct hold_key *
hold_key_load(const char *dir, char *errbuf, size_t errlen)
{
    struct sigid_key *root = sigid_key_load(dir, TASK_KEY_FILE, errbuf, errlen);
    struct hold_key *k = derive(root);

    if (root != NULL && k == NULL)
        snprintf(errbuf, errlen, "out of memory for the hold key");
    return k;
}

struct hold_key *
hold_key_from_bytes(const unsigned char bytes[KEYS_BYTES])
{
    return derive(sigid_key_from_bytes(bytes));
}

void
hold_key_free(struct hold_key *k)
{
    if (k == NULL)
        return;
    sigid_key_free(k->sig);
    free(k);
}

void
hold_encode(const struct hold_key *k, const struct hold_ref *ref, char out[HOLD_ID_BUF])
{
    unsigned char body[HOLD_BODY_BYTES];

    sigid_put_be64(body, ref->seq);
    sigid_put_be64(body + 8, (uint64_t)ref->expires);
    sigid_encode(k->sig, HOLD_VERSION, body, sizeof body, out, HOLD_ID_BUF);
}

bool
hold_decode(const struct hold_key *k, const char *id, size_t len, struct hold_ref *out)
{
    unsigned char body[HOLD_BODY_BYTES];

    if (!sigid_decode(k->sig, HOLD_VERSION, id, len, body, sizeof body))
        return false;
    out->seq = sigid_get_be64(body);
    out->expires = (int64_t)sigid_get_be64(body + 8);
    return true;
}
