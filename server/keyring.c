/* keyring.c - the keys file (see keyring.h): one line per key, `name role added hash`, where
 * hash is BLAKE2b-256 of the 32 key bytes in hex. A key is 256 random bits, so a fast hash is
 * enough: nobody can search that space, and AUTH stays cheap. */
#include "keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"

#define KEYRING_HEADER "# coupond keys: name role added hash (BLAKE2b-256 of the key)\n"
/* The largest file read: every key's line and the header. */
#define KEYRING_FILE_MAX (KEYRING_MAX * (KEYRING_LINE_MAX + 1) + sizeof KEYRING_HEADER)

struct keyring {
    size_t n;
    struct keyring_entry e[KEYRING_MAX];
};

static const char *const role_names[KEYRING_NROLES] = {
    [KEYRING_MONITOR] = "monitor", [KEYRING_SERVICE] = "service", [KEYRING_ADMIN] = "admin"};

const char *
keyring_role_name(enum keyring_role role)
{
    return role < KEYRING_NROLES ? role_names[role] : "?";
}

bool
keyring_role_parse(const char *s, enum keyring_role *out)
{
    for (int i = 0; i < KEYRING_NROLES; i++)
        if (strcmp(s, role_names[i]) == 0) {
            *out = (enum keyring_role)i;
            return true;
        }
    return false;
}

bool
keyring_name_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > KEYRING_NAME_MAX || strcmp(s, "admin") == 0 || strcmp(s, "default") == 0)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

struct keyring *
keyring_new(void)
{
    return calloc(1, sizeof(struct keyring));
}

void
keyring_free(struct keyring *kr)
{
    free(kr);
}

struct keyring *
keyring_dup(const struct keyring *kr)
{
    struct keyring *c = malloc(sizeof *c);

    if (c != NULL)
        *c = *kr;
    return c;
}

size_t
keyring_count(const struct keyring *kr)
{
    return kr->n;
}

const struct keyring_entry *
keyring_at(const struct keyring *kr, size_t i)
{
    return i < kr->n ? &kr->e[i] : NULL;
}

static void
set_id(struct keyring_entry *e)
{
    sodium_bin2hex(e->id, sizeof e->id, e->hash, KEYRING_ID_HEX / 2);
}

/* ---- reading ---- */

/* One line (NUL-terminated, no newline) into *e; false when it is malformed. */
static bool
parse_line(char *line, struct keyring_entry *e)
{
    char *save = NULL, *w[4];
    size_t n = 0;

    for (char *t = strtok_r(line, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        if (n == 4)
            return false;
        w[n++] = t;
    }
    if (n != 4 || !keyring_name_ok(w[0]) || !keyring_role_parse(w[1], &e->role))
        return false;
    char *end;
    errno = 0;
    long long added = strtoll(w[2], &end, 10);
    size_t bin_len = 0;
    if (errno != 0 || *end != '\0' || added < 0 || strlen(w[3]) != KEYRING_HASH_BYTES * 2 ||
        sodium_hex2bin(e->hash, sizeof e->hash, w[3], strlen(w[3]), NULL, &bin_len, NULL) != 0 ||
        bin_len != KEYRING_HASH_BYTES)
        return false;
    snprintf(e->name, sizeof e->name, "%s", w[0]);
    e->added = added;
    set_id(e);
    return true;
}

/* The file's text, split into lines, into kr; false with the failing line's number in *bad. */
static bool
parse_text(char *text, struct keyring *kr, size_t *bad)
{
    size_t lineno = 0;
    char *save = NULL;

    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (l[0] == '#')
            continue;
        if (kr->n == KEYRING_MAX || strlen(l) > KEYRING_LINE_MAX || !parse_line(l, &kr->e[kr->n])) {
            *bad = lineno;
            return false;
        }
        kr->n++;
    }
    return true;
}

static bool
fail(char *errbuf, size_t errlen, const char *path, const char *what)
{
    snprintf(errbuf, errlen, "%s: %s", path, what);
    return false;
}

/* Reads the open file fd (checked first) into text[KEYRING_FILE_MAX + 1], NUL-terminated. */
static const char *
read_checked(int fd, char *text)
{
    struct stat sb;
    size_t len = 0;

    if (fstat(fd, &sb) != 0)
        return "cannot stat the keys file";
    if (!S_ISREG(sb.st_mode))
        return "the keys file is not a regular file";
    if (sb.st_uid != geteuid())
        return "the keys file is owned by another user";
    if (sb.st_mode & (S_IRWXG | S_IRWXO))
        return "the keys file is accessible by group or others; chmod 600 it";
    for (;;) {
        ssize_t n = read(fd, text + len, KEYRING_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return "cannot read the keys file";
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > KEYRING_FILE_MAX)
            return "the keys file is too large";
    }
    if (memchr(text, '\0', len) != NULL)
        return "the keys file holds a NUL byte";
    text[len] = '\0';
    return NULL;
}

bool
keyring_load(const char *dir, const char *file, struct keyring **out, char *errbuf, size_t errlen)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path)
        return fail(errbuf, errlen, dir, "path too long");
    struct keyring *kr = keyring_new();
    char *text = malloc(KEYRING_FILE_MAX + 1);
    if (kr == NULL || text == NULL) {
        free(text);
        keyring_free(kr);
        return fail(errbuf, errlen, path, "out of memory");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    const char *why = NULL;
    size_t bad = 0;
    if (fd < 0 && errno != ENOENT)
        why = strerror(errno);
    else if (fd >= 0 && (why = read_checked(fd, text)) == NULL && !parse_text(text, kr, &bad))
        why = "malformed";
    if (fd >= 0)
        close(fd);
    free(text);
    if (why != NULL) {
        if (bad > 0)
            snprintf(errbuf, errlen, "%s: line %zu is not `name role added hash`", path, bad);
        else
            fail(errbuf, errlen, path, why);
        keyring_free(kr);
        return false;
    }
    *out = kr;
    return true;
}

/* ---- writing ---- */

static bool
write_entries(FILE *fp, const struct keyring *kr)
{
    if (fputs(KEYRING_HEADER, fp) == EOF)
        return false;
    for (size_t i = 0; i < kr->n; i++) {
        char hex[KEYRING_HASH_BYTES * 2 + 1];
        const struct keyring_entry *e = &kr->e[i];
        sodium_bin2hex(hex, sizeof hex, e->hash, sizeof e->hash);
        if (fprintf(fp, "%s %s %" PRId64 " %s\n", e->name, role_names[e->role], e->added, hex) < 0)
            return false;
    }
    return fflush(fp) == 0 && fsync(fileno(fp)) == 0;
}

bool
keyring_save(const struct keyring *kr, const char *dir, const char *file, char *errbuf,
             size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, file) >= sizeof tmp)
        return fail(errbuf, errlen, dir, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fp == NULL) {
        snprintf(errbuf, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    /* The umask may be 0, or the file a leftover: set the mode explicitly. */
    bool ok = fchmod(fd, 0600) == 0 && write_entries(fp, kr);
    if (fclose(fp) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        snprintf(errbuf, errlen, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    if (!keys_sync_dir(dir)) {
        snprintf(errbuf, errlen, "%s: cannot sync: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

/* ---- changing and checking ---- */

static void
hash_key(const unsigned char key[KEYRING_KEY_BYTES], unsigned char hash[KEYRING_HASH_BYTES])
{
    crypto_generichash(hash, KEYRING_HASH_BYTES, key, KEYRING_KEY_BYTES, NULL, 0);
}

/* The keys `name` has, and the role of the first (*role untouched when it has none). */
static size_t
count_name(const struct keyring *kr, const char *name, enum keyring_role *role)
{
    size_t n = 0;

    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->e[i].name, name) == 0) {
            *role = kr->e[i].role;
            n++;
        }
    return n;
}

/* True when another key of `name` has the same short id as e (1 in 4 billion). */
static bool
id_taken(const struct keyring *kr, const struct keyring_entry *e)
{
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->e[i].name, e->name) == 0 && strcmp(kr->e[i].id, e->id) == 0)
            return true;
    return false;
}

bool
keyring_add(struct keyring *kr, const char *name, enum keyring_role role, int64_t now,
            char key_hex[KEYRING_KEY_HEX + 1], const struct keyring_entry **out, char *errbuf,
            size_t errlen)
{
    enum keyring_role had = role;
    size_t n = count_name(kr, name, &had);

    if (!keyring_name_ok(name)) {
        snprintf(errbuf, errlen,
                 "bad key name '%s': 1 to %d of A-Z a-z 0-9 _ - ., not admin or default", name,
                 KEYRING_NAME_MAX);
        return false;
    }
    if (n > 0 && had != role) {
        snprintf(errbuf, errlen, "%s has the role %s: a name has one role", name, role_names[had]);
        return false;
    }
    if (n >= KEYRING_PER_NAME || kr->n >= KEYRING_MAX) {
        snprintf(errbuf, errlen,
                 n >= KEYRING_PER_NAME ? "%s has %d keys already: revoke one first"
                                       : "%s: the keys file is full (%d keys)",
                 name, n >= KEYRING_PER_NAME ? KEYRING_PER_NAME : KEYRING_MAX);
        return false;
    }
    struct keyring_entry *e = &kr->e[kr->n];
    unsigned char key[KEYRING_KEY_BYTES];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->role = role;
    e->added = now;
    do {
        randombytes_buf(key, sizeof key);
        hash_key(key, e->hash);
        set_id(e);
    } while (id_taken(kr, e));
    sodium_bin2hex(key_hex, KEYRING_KEY_HEX + 1, key, sizeof key);
    sodium_memzero(key, sizeof key);
    kr->n++;
    *out = e;
    return true;
}

size_t
keyring_revoke(struct keyring *kr, const char *name, const char *id)
{
    size_t kept = 0, n = kr->n;

    for (size_t i = 0; i < n; i++) {
        const struct keyring_entry *e = &kr->e[i];
        if (strcmp(e->name, name) == 0 && (id == NULL || strcmp(e->id, id) == 0))
            continue;
        kr->e[kept++] = *e;
    }
    kr->n = kept;
    return n - kept;
}

const struct keyring_entry *
keyring_check(const struct keyring *kr, const char *name, const char *key_hex, size_t len)
{
    unsigned char key[KEYRING_KEY_BYTES], hash[KEYRING_HASH_BYTES];
    size_t bin_len = 0;
    bool ok = len == KEYRING_KEY_HEX &&
              sodium_hex2bin(key, sizeof key, key_hex, len, NULL, &bin_len, NULL) == 0 &&
              bin_len == KEYRING_KEY_BYTES;

    if (!ok)
        randombytes_buf(key, sizeof key); /* hash anyway: the same work for every guess */
    hash_key(key, hash);
    sodium_memzero(key, sizeof key);
    const struct keyring_entry *found = keyring_find(kr, name, hash);
    return ok ? found : NULL;
}

const struct keyring_entry *
keyring_find(const struct keyring *kr, const char *name,
             const unsigned char hash[KEYRING_HASH_BYTES])
{
    const struct keyring_entry *found = NULL;

    /* Every key of the name is compared, in constant time each. */
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->e[i].name, name) == 0 &&
            sodium_memcmp(kr->e[i].hash, hash, KEYRING_HASH_BYTES) == 0)
            found = &kr->e[i];
    return found;
}
