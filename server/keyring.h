/* keyring.h - named keys with roles (PROTOCOL.md "Keys and roles"): the keys file in the data
 * directory, which holds only a hash of each key, its strict loading and atomic rewriting, and
 * the check of a key a client presents. The admin key of `AUTH key` is keys.h's admin.key, not
 * this file's. */
#ifndef COUPOND_KEYRING_H
#define COUPOND_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYRING_FILE "keys"
/* Keys in one file: a few per service that calls coupond is a few dozen; the bound keeps the
 * file's load, and an AUTH's scan of it, small. */
#define KEYRING_MAX 1024
/* Keys one name may have at once: two, so that a key is rotated without a moment when the
 * service holds no valid key (add the new one, deploy it, revoke the old one). */
#define KEYRING_PER_NAME 2
/* Bytes of a key's name: the scope of its request ids (store.h's STORE_SCOPE_MAX) and the actor
 * of its audit records, so it must fit both. */
#define KEYRING_NAME_MAX   64
#define KEYRING_KEY_BYTES  32 /* 256-bit keys, like admin.key's */
#define KEYRING_KEY_HEX    (KEYRING_KEY_BYTES * 2)
#define KEYRING_HASH_BYTES 32 /* BLAKE2b-256 of the key */
/* A key's short id: the first 4 bytes of its hash in hex. It tells a name's two keys apart in
 * `key list` and `key revoke`; 32 bits of a hash of a 256-bit secret reveal nothing usable. */
#define KEYRING_ID_HEX 8
/* A line of the file: name, role, time added, hash in hex, and separators. */
#define KEYRING_LINE_MAX (KEYRING_NAME_MAX + 16 + 24 + KEYRING_HASH_BYTES * 2 + 8)

enum keyring_role {
    KEYRING_MONITOR = 0, /* PING, HELP, STATS, INFO */
    KEYRING_SERVICE,     /* monitor, plus the coupon commands a shop's backend sends */
    KEYRING_ADMIN,       /* everything */
    KEYRING_NROLES
};

struct keyring_entry {
    char name[KEYRING_NAME_MAX + 1];
    enum keyring_role role;
    int64_t added; /* seconds since the epoch */
    unsigned char hash[KEYRING_HASH_BYTES];
    char id[KEYRING_ID_HEX + 1];
};

struct keyring;

/* The role's name ("monitor", "service", "admin"); parses one, false when it is none. */
const char *keyring_role_name(enum keyring_role role);
bool keyring_role_parse(const char *s, enum keyring_role *out);

/* True when s is a name `key add` takes: 1 to KEYRING_NAME_MAX of A-Z a-z 0-9 _ - . and not
 * "admin" or "default", the names AUTH gives admin.key. */
bool keyring_name_ok(const char *s);

/* An empty keyring; NULL when out of memory. Caller frees with keyring_free. */
struct keyring *keyring_new(void);
void keyring_free(struct keyring *kr);
/* A copy of kr; NULL when out of memory. Caller frees. */
struct keyring *keyring_dup(const struct keyring *kr);

/* Reads DIR/file (KEYRING_FILE, or another file of the same form) into a new keyring (*out, caller
 * frees). No file is an empty keyring. Refuses a file that is not a regular file owned by this
 * user, is accessible by group or others, or has a line that is not `name role added hash`, or too
 * many keys. False with a one-line reason in errbuf; *out is then untouched. */
bool keyring_load(const char *dir, const char *file, struct keyring **out, char *errbuf,
                  size_t errlen);

/* Writes the keyring to DIR/file atomically: a temporary file with mode 0600, synced, renamed
 * into place, and the directory synced. False with a reason in errbuf (the old file stays). */
bool keyring_save(const struct keyring *kr, const char *dir, const char *file, char *errbuf,
                  size_t errlen);

/* Adds a new random key for `name` with `role`, added at `now`: its hex form goes to
 * key_hex[KEYRING_KEY_HEX + 1] (shown once, never stored) and *e points at the new entry
 * (valid until the keyring changes). False with a reason in errbuf: a bad name, a name that has
 * another role or KEYRING_PER_NAME keys already, a full keyring. */
bool keyring_add(struct keyring *kr, const char *name, enum keyring_role role, int64_t now,
                 char key_hex[KEYRING_KEY_HEX + 1], const struct keyring_entry **e, char *errbuf,
                 size_t errlen);

/* Removes every key of `name`, or, with an id (not NULL), only that one. Returns how many were
 * removed (0: none matched). */
size_t keyring_revoke(struct keyring *kr, const char *name, const char *id);

/* The entry `name` opens with the key in hex (len bytes, not NUL-terminated), or NULL. Every
 * key of the right length costs the same hash and comparisons (sodium_memcmp). */
const struct keyring_entry *keyring_check(const struct keyring *kr, const char *name,
                                          const char *key_hex, size_t len);

/* The entry of `name` with this hash, or NULL (a revoked key: a connection's rights end). */
const struct keyring_entry *keyring_find(const struct keyring *kr, const char *name,
                                         const unsigned char hash[KEYRING_HASH_BYTES]);

/* The keys, in the file's order: entries 0 to keyring_count - 1, valid until it changes. */
size_t keyring_count(const struct keyring *kr);
const struct keyring_entry *keyring_at(const struct keyring *kr, size_t i);

#endif
