/* keycli.c - the `key` subcommands (see keycli.h): lock, load, change, save atomically. */
#include "keycli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyring.h"
#include "proto.h"

#define KEYCLI_ERR_MAX (PATH_MAX + 256) /* a path and a reason */

/* Takes the `key` commands' own lock (not the server's): two at once would lose a change. */
static int
lock_keys(const char *dir, FILE *err)
{
    char path[PATH_MAX];

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(err, "coupond: cannot create data dir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, KEYCLI_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        fprintf(err, "coupond: cannot lock %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static enum keycli_status
list(const struct keyring *kr, FILE *out)
{
    fprintf(out, "%-24s %-8s %-20s %s\n", "NAME", "ROLE", "ADDED", "ID");
    for (size_t i = 0; i < keyring_count(kr); i++) {
        const struct keyring_entry *e = keyring_at(kr, i);
        char when[PROTO_TIME_BUF];
        proto_fmt_time(when, e->added);
        fprintf(out, "%-24s %-8s %-20s %s\n", e->name, keyring_role_name(e->role), when, e->id);
    }
    return KEYCLI_OK;
}

static enum keycli_status
add(struct keyring *kr, int argc, char *const *argv, FILE *out, FILE *err)
{
    enum keyring_role role;
    char key[KEYRING_KEY_HEX + 1], why[KEYCLI_ERR_MAX];
    const struct keyring_entry *e;

    if (argc != 3 || !keyring_role_parse(argv[2], &role)) {
        fprintf(err, "coupond: usage: key add NAME monitor|service|admin\n");
        return KEYCLI_USAGE;
    }
    if (!keyring_add(kr, argv[1], role, (int64_t)time(NULL), key, &e, why, sizeof why)) {
        fprintf(err, "coupond: %s\n", why);
        return KEYCLI_FAILED;
    }
    fprintf(out, "%s\n", key);
    fprintf(err, "coupond: added key %s of %s (%s); it is shown only now\n", e->id, e->name,
            keyring_role_name(role));
    sodium_memzero(key, sizeof key);
    return KEYCLI_OK;
}

static enum keycli_status
revoke_keys(struct keyring *kr, int argc, char *const *argv, FILE *out, FILE *err)
{
    if (argc < 2 || argc > 3) {
        fprintf(err, "coupond: usage: key revoke NAME [ID]\n");
        return KEYCLI_USAGE;
    }
    size_t n = keyring_revoke(kr, argv[1], argc == 3 ? argv[2] : NULL);
    if (n == 0) {
        fprintf(err, "coupond: no key %s%s%s\n", argv[1], argc == 3 ? " with id " : "",
                argc == 3 ? argv[2] : "");
        return KEYCLI_FAILED;
    }
    fprintf(out, "revoked %zu key%s of %s\n", n, n == 1 ? "" : "s", argv[1]);
    return KEYCLI_OK;
}

/* add or revoke on the loaded keyring, then the atomic save. */
static enum keycli_status
change(struct keyring *kr, const char *dir, int argc, char *const *argv, FILE *out, FILE *err)
{
    char why[KEYCLI_ERR_MAX];
    bool adding = strcmp(argv[0], "add") == 0;
    enum keycli_status st =
        adding ? add(kr, argc, argv, out, err) : revoke_keys(kr, argc, argv, out, err);

    if (st != KEYCLI_OK)
        return st;
    if (!keyring_save(kr, dir, KEYRING_FILE, why, sizeof why)) {
        fprintf(err, "coupond: %s\n", why);
        return KEYCLI_FAILED;
    }
    fprintf(err, "coupond: send SIGHUP to a running coupond to apply it\n");
    return KEYCLI_OK;
}

enum keycli_status
keycli_run(const char *dir, int argc, char *const *argv, FILE *out, FILE *err)
{
    char why[KEYCLI_ERR_MAX];
    struct keyring *kr = NULL;
    bool is_list = argc == 1 && strcmp(argv[0], "list") == 0;

    if (argc < 1 || (!is_list && strcmp(argv[0], "add") != 0 && strcmp(argv[0], "revoke") != 0)) {
        fprintf(err, "coupond: usage: key add NAME ROLE | key list | key revoke NAME [ID]\n");
        return KEYCLI_USAGE;
    }
    int lock = lock_keys(dir, err);
    if (lock < 0)
        return KEYCLI_FAILED;
    enum keycli_status st = KEYCLI_FAILED;
    if (!keyring_load(dir, KEYRING_FILE, &kr, why, sizeof why))
        fprintf(err, "coupond: %s\n", why);
    else if (is_list)
        st = list(kr, out);
    else
        st = change(kr, dir, argc, argv, out, err);
    keyring_free(kr);
    close(lock);
    return st;
}
