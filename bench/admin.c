/* admin.c - blocking admin session of coupond-bench: AUTH and STATS (see admin.h). */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Marks a value no STAT line has set: a counter never reaches it. */
#define STAT_UNSET UINT64_MAX

/* Reads one reply's status line, handing data lines to fn (when not NULL). */
static bool
read_reply(struct admin *a, void (*fn)(const char *, size_t, void *), void *arg, char *why,
           size_t why_len)
{
    for (;;) {
        const char *line;
        size_t len;
        enum bconn_io r = bconn_wait_line(&a->conn, ADMIN_TIMEOUT_MS, &line, &len);
        if (r == BCONN_IO_AGAIN) {
            snprintf(why, why_len, "no reply within %d ms", ADMIN_TIMEOUT_MS);
            return false;
        }
        if (r != BCONN_IO_OK) {
            snprintf(why, why_len, "connection lost: %s",
                     r == BCONN_IO_CLOSED ? "closed by the server" : strerror(errno));
            return false;
        }
        enum proto_reply_kind k = proto_reply_kind(line, len);
        if (k == PROTO_REPLY_OK)
            return true;
        if (k == PROTO_REPLY_ERR) {
            snprintf(why, why_len, "%.*s", (int)len, line);
            return false;
        }
        if (fn)
            fn(line, len, arg);
    }
}

static bool
send_line(struct admin *a, const char *text, char *why, size_t why_len)
{
    if (!bconn_append(&a->conn, text, strlen(text)) ||
        bconn_wait_flush(&a->conn, ADMIN_TIMEOUT_MS) != BCONN_IO_OK) {
        snprintf(why, why_len, "cannot send: %s", strerror(errno));
        return false;
    }
    return true;
}

bool
admin_open(struct admin *a, const struct sockaddr *addr, socklen_t addrlen,
           const struct bconn_tls *tls, const char *key, char *why, size_t why_len)
{
    if (!bconn_connect(&a->conn, addr, addrlen, tls)) {
        snprintf(why, why_len, "cannot connect: %s", strerror(errno));
        return false;
    }
    char line[PROTO_KEY_MAX + 8];
    snprintf(line, sizeof line, "AUTH %s\n", key);
    if (!send_line(a, line, why, why_len) || !read_reply(a, NULL, NULL, why, why_len)) {
        admin_close(a);
        return false;
    }
    return true;
}

/* The stats the bench reads; a reply without any of them is refused. */
static const enum proto_stat needed[] = {
    PROTO_STAT_CONNECTIONS, PROTO_STAT_CREATED, PROTO_STAT_ASSIGNED,    PROTO_STAT_REDEEMED,
    PROTO_STAT_AVAILABLE,   PROTO_STAT_PURGED,  PROTO_STAT_MEGA_GRANTED};

/* Stores one STAT line's value; lines protocol/ does not know are skipped. */
static void
take_stat(const char *line, size_t len, void *arg)
{
    (void)proto_stat_parse_line(line, len, arg);
}

/* The first needed stat the reply lacked, as its STATS name, in name; false when none. */
static bool
missing_stat(const struct proto_stats *s, char *name, size_t name_len)
{
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        const struct proto_stat_def *d = &proto_stat_defs[needed[i]];
        if (!d->per_type) {
            if (s->v[needed[i]][PROTO_TYPE_NONE] != STAT_UNSET)
                continue;
            snprintf(name, name_len, "%s", d->name);
            return true;
        }
        for (int t = 0; t < PROTO_NTYPES; t++) {
            if (s->v[needed[i]][t] != STAT_UNSET)
                continue;
            snprintf(name, name_len, "%s.%s", d->name, proto_type_name((enum proto_type)t));
            return true;
        }
    }
    return false;
}

bool
admin_stats(struct admin *a, struct proto_stats *out, char *why, size_t why_len)
{
    struct proto_stats s;
    memset(&s, 0xff, sizeof s); /* every value STAT_UNSET */
    if (!send_line(a, "STATS\n", why, why_len) || !read_reply(a, take_stat, &s, why, why_len))
        return false;
    char name[64];
    if (missing_stat(&s, name, sizeof name)) {
        snprintf(why, why_len, "STATS reply lacks %s, which the bench reads", name);
        return false;
    }
    *out = s;
    return true;
}

uint64_t
admin_store_size(const struct proto_stats *s)
{
    uint64_t n = 0;
    for (int t = 0; t < PROTO_NTYPES; t++)
        n += s->v[PROTO_STAT_CREATED][t] - s->v[PROTO_STAT_PURGED][t];
    return n;
}

void
admin_close(struct admin *a)
{
    if (a->conn.fd >= 0 && bconn_append(&a->conn, "QUIT\n", 5))
        (void)bconn_flush(&a->conn);
    bconn_close(&a->conn);
}
