/* keys.h - secret key files in the data directory: made on first start, mode 0600. */
#ifndef COUPOND_KEYS_H
#define COUPOND_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define KEYS_BYTES      32 /* 256-bit keys: crypto_auth's key size, and plenty for AUTH */
#define KEYS_HEX_CHARS  (KEYS_BYTES * 2)
#define KEYS_ADMIN_FILE "admin.key"

enum keys_format {
    KEYS_HEX = 0, /* 64 lower-case hex characters and a newline: an operator pastes it */
    KEYS_RAW      /* 32 raw bytes: only the server reads it */
};

/* Reads the key file `dir`/`name` into key[KEYS_BYTES], or, when there is none, makes one from
 * libsodium's random bytes, atomically (written to a temporary file, synced, then linked into
 * place) with mode 0600 whatever the umask. Refuses a file that is not a regular file owned
 * by this user, is readable or writable by group or others, or is malformed.
 * Returns true, or false with a one-line reason in errbuf. sodium_init() must have run. */
bool keys_load_or_create(const char *dir, const char *name, enum keys_format fmt,
                         unsigned char key[KEYS_BYTES], char *errbuf, size_t errlen);

/* True when `hex` (len bytes, not NUL-terminated) is the hex form of key, in either case.
 * Takes the same time for every wrong key of the right length (sodium_memcmp). */
bool keys_match(const unsigned char key[KEYS_BYTES], const char *hex, size_t len);

struct stat;

/* What keeps a secret file from being trusted, its stat taken: KEYS_PRIVATE when it is a
 * regular file owned by this user and nobody else has any access to it. With root_may_share,
 * a file owned by root is accepted too, and its group may read it (Debian's ssl-cert group
 * reads TLS keys so); PostgreSQL asks the same of its ssl_key_file. */
enum keys_exposure {
    KEYS_PRIVATE,
    KEYS_NOT_REGULAR, /* a directory, a device, ... */
    KEYS_OTHER_OWNER, /* owned by another user (or, without root_may_share, by root) */
    KEYS_EXPOSED      /* group or others have access beyond what is allowed */
};
enum keys_exposure keys_exposure(const struct stat *sb, bool root_may_share);

/* fsyncs directory `dir`, so that a file just renamed or linked into it survives a crash.
 * Returns false with errno set. */
bool keys_sync_dir(const char *dir);

#endif
