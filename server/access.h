/* access.h - who a connection is and what it may run (PROTOCOL.md "Keys and roles"): AUTH's
 * check of admin.key and of the named keys, the access classes the command table's role column
 * names, --require-auth, and the end of a connection's rights when its key is revoked. */
#ifndef COUPOND_ACCESS_H
#define COUPOND_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyring.h"

/* What a connection is when a command starts: one bit each in a verb's role mask. */
enum access_class {
    ACCESS_OPEN = 0, /* no AUTH, --no-require-auth (version 1's open commands) */
    ACCESS_LOCKED,   /* no AUTH, --require-auth */
    ACCESS_MONITOR,  /* AUTH with a monitor key */
    ACCESS_SERVICE,  /* AUTH with a service key */
    ACCESS_ADMIN,    /* AUTH with admin.key or an admin key */
    ACCESS_NCLASSES
};

#define ACCESS_BIT(c) (1u << (c))
/* The role masks of the command table (cmd.c). */
#define ACCESS_ANYONE ((1u << ACCESS_NCLASSES) - 1) /* the connection's own business */
#define ACCESS_MONITORS                                                                            \
    (ACCESS_BIT(ACCESS_MONITOR) | ACCESS_BIT(ACCESS_SERVICE) | ACCESS_BIT(ACCESS_ADMIN))
#define ACCESS_READERS (ACCESS_MONITORS | ACCESS_BIT(ACCESS_OPEN)) /* INFO, CONFIG */
#define ACCESS_SERVICES                                                                            \
    (ACCESS_BIT(ACCESS_OPEN) | ACCESS_BIT(ACCESS_SERVICE) | ACCESS_BIT(ACCESS_ADMIN))
#define ACCESS_ADMINS ACCESS_BIT(ACCESS_ADMIN)

/* The keys a server checks against; the server owns it and changes it on a reload. */
struct access_keys {
    const unsigned char *admin_key; /* admin.key's KEYS_BYTES */
    const struct keyring *ring;     /* the keys file's keys */
    uint64_t gen;                   /* counts the reloads: a connection's check is of one */
    bool require_auth;
};

/* One connection's identity. All zero: no AUTH. */
struct access_who {
    bool authed;
    bool named; /* by a key of the keys file: checked again after each reload */
    enum keyring_role role;
    uint64_t gen; /* the access_keys.gen it was checked against */
    unsigned char hash[KEYRING_HASH_BYTES];
    /* The key's name, "" without AUTH and for admin.key (which goes by no name, as in version
     * 1): the scope of the connection's request ids and the actor of its writes' records. */
    char name[KEYRING_NAME_MAX + 1];
};

/* AUTH [name] key: `name` "" (AUTH key), "admin" or "default" (what Redis clients send) is
 * admin.key; any other name a key of the keys file. True and *w set when the key is right;
 * false and *w cleared (no rights) when not. */
bool access_auth(struct access_who *w, const struct access_keys *k, const char *name,
                 const char *key, size_t key_len);

/* Brings *w up to date with the keys after a reload: true when its key was revoked, and *w is
 * then cleared (the connection has no rights from now). */
bool access_refresh(struct access_who *w, const struct access_keys *k);

/* The connection's class now (call access_refresh first). */
enum access_class access_class_of(const struct access_who *w, const struct access_keys *k);

/* True when the role mask lets class c run the verb. */
static inline bool
access_allows(unsigned mask, enum access_class c)
{
    return (mask & ACCESS_BIT(c)) != 0;
}

#endif
