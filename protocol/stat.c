/* stat.c - the STATS names (see stat.h). */
#include "stat.h"

#include <string.h>

const struct proto_stat_def proto_stat_defs[PROTO_NSTATS] = {
    [PROTO_STAT_UPTIME] = {"uptime_s", false, PROTO_STAT_GAUGE, "seconds since the server started"},
    [PROTO_STAT_CONNECTIONS] = {"connections", false, PROTO_STAT_GAUGE,
                                "client connections open now"},
    [PROTO_STAT_COMMANDS] = {"commands", false, PROTO_STAT_COUNTER,
                             "request lines executed since start"},
    [PROTO_STAT_CONNECTIONS_TOTAL] = {"connections_total", false, PROTO_STAT_COUNTER,
                                      "client connections accepted since start"},
    [PROTO_STAT_CLIENTS_REJECTED] = {"clients_rejected", false, PROTO_STAT_COUNTER,
                                     "connections turned away at --max-clients since start"},
    [PROTO_STAT_COMMITS] = {"commits", false, PROTO_STAT_COUNTER,
                            "group commits made durable since start"},
    [PROTO_STAT_COMMIT_FAILURES] =
        {"commit_failures", false, PROTO_STAT_COUNTER,
         "group commits that failed since start (nothing of them was stored)"},
    [PROTO_STAT_CREATED] = {"created", true, PROTO_STAT_COUNTER, "coupons uploaded"},
    [PROTO_STAT_ASSIGNED] = {"assigned", true, PROTO_STAT_COUNTER, "assignments made"},
    [PROTO_STAT_REDEEMED] = {"redeemed", true, PROTO_STAT_COUNTER, "single uses counted"},
    [PROTO_STAT_AVAILABLE] = {"available", true, PROTO_STAT_GAUGE,
                              "coupons unassigned and unexpired now"},
    [PROTO_STAT_PURGED] = {"purged", true, PROTO_STAT_COUNTER, "coupons deleted by purges"},
    [PROTO_STAT_HELD] = {"held", true, PROTO_STAT_GAUGE, "uses reserved by live holds now"},
    [PROTO_STAT_UNREDEEMED] = {"unredeemed", true, PROTO_STAT_COUNTER,
                               "uses given back by UNREDEEM (redeemed keeps counting them)"},
    [PROTO_STAT_MEGA_QUEUED] = {"megadeal.queued", false, PROTO_STAT_GAUGE,
                                "MEGADEAL tasks waiting in the queue now (in-flight grants apart)"},
    [PROTO_STAT_MEGA_IN_FLIGHT] = {"megadeal.in_flight", false, PROTO_STAT_GAUGE,
                                   "MEGADEAL grants allocated and not yet committed"},
    [PROTO_STAT_MEGA_GRANTED] = {"megadeal.granted", false, PROTO_STAT_COUNTER,
                                 "MEGADEAL tasks granted since start"},
    [PROTO_STAT_MEGA_REJECTED] = {"megadeal.rejected", false, PROTO_STAT_COUNTER,
                                  "MEGADEAL requests refused (BUSY, NO_COUPONS) since start"},
    [PROTO_STAT_MEGA_TIMED_OUT] = {"megadeal.timed_out", false, PROTO_STAT_COUNTER,
                                   "MEGADEAL tasks that timed out since start"},
    [PROTO_STAT_NODE] = {"node", false, PROTO_STAT_TEXT,
                         "this node's name (--node-name, default the host name)"},
    [PROTO_STAT_STORE] = {"store", false, PROTO_STAT_TEXT,
                          "where the coupons are kept: lmdb or postgresql"},
};

/* True when s[0..len) is a text value: 1 to PROTO_STAT_TEXT_MAX bytes of printable ASCII
 * without spaces, so that a STAT line stays three words. */
static bool
text_ok(const char *s, size_t len)
{
    if (len == 0 || len > PROTO_STAT_TEXT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

static bool
is_text(enum proto_stat stat)
{
    return (unsigned)stat < PROTO_NSTATS && proto_stat_defs[stat].kind == PROTO_STAT_TEXT;
}

const char *
proto_stats_text(const struct proto_stats *s, enum proto_stat stat)
{
    return is_text(stat) ? s->text[stat - PROTO_STAT_FIRST_TEXT] : NULL;
}

bool
proto_stats_set_text(struct proto_stats *s, enum proto_stat stat, const char *text)
{
    char *out;
    size_t len = text != NULL ? strlen(text) : 0;

    if (!is_text(stat))
        return false;
    out = s->text[stat - PROTO_STAT_FIRST_TEXT];
    if (!text_ok(text, len)) {
        text = "-";
        len = 1;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return true;
}

/* The type a ".TYPE" suffix names. */
static bool
type_of(const char *s, size_t len, enum proto_type *type)
{
    for (int t = 0; t < PROTO_NTYPES; t++) {
        const char *n = proto_type_name((enum proto_type)t);
        if (strlen(n) == len && memcmp(s, n, len) == 0) {
            *type = (enum proto_type)t;
            return true;
        }
    }
    return false;
}

bool
proto_stat_lookup(const char *name, size_t len, enum proto_stat *stat, enum proto_type *type)
{
    for (int s = 0; s < PROTO_NSTATS; s++) {
        const struct proto_stat_def *d = &proto_stat_defs[s];
        size_t n = strlen(d->name);
        if (len < n || memcmp(name, d->name, n) != 0)
            continue;
        if (!d->per_type && len == n) {
            *stat = (enum proto_stat)s;
            *type = PROTO_TYPE_NONE;
            return true;
        }
        if (d->per_type && len > n + 1 && name[n] == '.' &&
            type_of(name + n + 1, len - n - 1, type)) {
            *stat = (enum proto_stat)s;
            return true;
        }
    }
    return false;
}

bool
proto_stat_parse_line(const char *line, size_t len, struct proto_stats *out)
{
    const char *name, *word;
    size_t name_len, word_len;
    uint64_t value;
    enum proto_stat s;
    enum proto_type t;

    if (!proto_reply_stat_word(line, len, &name, &name_len, &word, &word_len) ||
        !proto_stat_lookup(name, name_len, &s, &t))
        return false;
    if (is_text(s)) {
        if (!text_ok(word, word_len))
            return false;
        memcpy(out->text[s - PROTO_STAT_FIRST_TEXT], word, word_len);
        out->text[s - PROTO_STAT_FIRST_TEXT][word_len] = '\0';
        return true;
    }
    if (!proto_reply_stat(line, len, &name, &name_len, &value))
        return false;
    out->v[s][t] = value;
    return true;
}
