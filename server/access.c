/* access.c - AUTH's checks and the connection's class (see access.h). */
#include "access.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"

static void
clear(struct access_who *w)
{
    sodium_memzero(w, sizeof *w);
}

static bool
names_admin_key(const char *name)
{
    return name[0] == '\0' || strcmp(name, "admin") == 0 || strcmp(name, "default") == 0;
}

bool
access_auth(struct access_who *w, const struct access_keys *k, const char *name, const char *key,
            size_t key_len)
{
    clear(w);
    if (names_admin_key(name)) {
        if (!keys_match(k->admin_key, key, key_len))
            return false;
        w->authed = true;
        w->role = KEYRING_ADMIN; /* by no name: the scope and actor "", as in version 1 */
        return true;
    }
    const struct keyring_entry *e = keyring_check(k->ring, name, key, key_len);
    if (e == NULL)
        return false;
    w->authed = w->named = true;
    w->role = e->role;
    w->gen = k->gen;
    memcpy(w->hash, e->hash, sizeof w->hash);
    snprintf(w->name, sizeof w->name, "%s", e->name);
    return true;
}

bool
access_refresh(struct access_who *w, const struct access_keys *k)
{
    if (!w->named || w->gen == k->gen)
        return false;
    const struct keyring_entry *e = keyring_find(k->ring, w->name, w->hash);
    if (e == NULL) {
        clear(w);
        return true;
    }
    w->role = e->role;
    w->gen = k->gen;
    return false;
}

enum access_class
access_class_of(const struct access_who *w, const struct access_keys *k)
{
    static const enum access_class by_role[KEYRING_NROLES] = {[KEYRING_MONITOR] = ACCESS_MONITOR,
                                                              [KEYRING_SERVICE] = ACCESS_SERVICE,
                                                              [KEYRING_ADMIN] = ACCESS_ADMIN};

    if (!w->authed)
        return k->require_auth ? ACCESS_LOCKED : ACCESS_OPEN;
    return by_role[w->role];
}
