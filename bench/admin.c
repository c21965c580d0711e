/* admin.c - blocking admin session of coupond-bench: AUTH and STATS (see admin.h). */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
admin_open(struct admin *a, const struct sockaddr *addr, socklen_t addrlen, const char *key,
           char *why, size_t why_len)
{
    if (!bconn_connect(&a->conn, addr, addrlen)) {
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

static bool
name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* Stores one STAT line's value when it is a counter the bench uses. */
static void
take_stat(const char *line, size_t len, void *arg)
{
    struct admin_stats *s = arg;
    const char *name;
    size_t nl;
    uint64_t v;
    if (!proto_reply_stat(line, len, &name, &nl, &v))
        return;
    if (name_is(name, nl, "connections")) {
        s->connections = v;
        s->seen++;
        return;
    }
    if (name_is(name, nl, "megadeal.granted")) {
        s->mega_granted = v;
        s->seen++;
        return;
    }
    static const char *const prefix[] = {"created.", "assigned.", "redeemed.", "available.",
                                         "purged."};
    uint64_t *const dst[] = {s->created, s->assigned, s->redeemed, s->available, s->purged};
    for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++) {
        size_t pl = strlen(prefix[i]);
        if (nl <= pl || memcmp(name, prefix[i], pl) != 0)
            continue;
        for (int t = 0; t < PROTO_NTYPES; t++) {
            if (name_is(name + pl, nl - pl, proto_type_name((enum proto_type)t))) {
                dst[i][t] = v;
                s->seen++;
            }
        }
    }
}

bool
admin_stats(struct admin *a, struct admin_stats *out, char *why, size_t why_len)
{
    struct admin_stats s;
    memset(&s, 0, sizeof s);
    if (!send_line(a, "STATS\n", why, why_len) || !read_reply(a, take_stat, &s, why, why_len))
        return false;
    if (s.seen != ADMIN_STATS_NAMES) {
        snprintf(why, why_len, "STATS reply has %u of the %d counters the bench reads", s.seen,
                 ADMIN_STATS_NAMES);
        return false;
    }
    *out = s;
    return true;
}

uint64_t
admin_store_size(const struct admin_stats *s)
{
    uint64_t n = 0;
    for (int t = 0; t < PROTO_NTYPES; t++)
        n += s->created[t] - s->purged[t];
    return n;
}

void
admin_close(struct admin *a)
{
    if (a->conn.fd >= 0 && bconn_append(&a->conn, "QUIT\n", 5))
        (void)bconn_flush(&a->conn);
    bconn_close(&a->conn);
}
