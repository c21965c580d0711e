/* guess.c - the code-guessing defence's counts (see guess.h): per connection, and per address
 * in a bounded open-addressing table keyed by SipHash with a random key, so that nobody can
 * pick addresses that collide. */
#include "guess.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct guess_addr {
    char addr[GUESS_ADDR_MAX + 1]; /* "" for a free slot */
    double start;
    uint32_t failures;
    double next_answer;
    bool logged;
};

struct guess {
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct guess_addr slot[GUESS_ADDRS];
};

struct guess *
guess_new(void)
{
    struct guess *g = calloc(1, sizeof *g);

    if (g != NULL)
        crypto_shorthash_keygen(g->hash_key);
    return g;
}

void
guess_free(struct guess *g)
{
    free(g);
}

void
guess_addr_of(const char *peer, char out[GUESS_ADDR_MAX + 1])
{
    const char *end = strrchr(peer, ':');
    size_t len;

    if (peer[0] == '[') {
        peer++;
        end = strchr(peer, ']');
    }
    len = end != NULL ? (size_t)(end - peer) : strlen(peer);
    if (len > GUESS_ADDR_MAX)
        len = GUESS_ADDR_MAX;
    memcpy(out, peer, len);
    out[len] = '\0';
}

/* The address's slot: its own, a free one, or the one among GUESS_PROBE whose window began
 * longest ago (forgotten for it). */
static struct guess_addr *
lookup(struct guess *g, const char *addr)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t i0;
    struct guess_addr *oldest = NULL;

    crypto_shorthash(h, (const unsigned char *)addr, strlen(addr), g->hash_key);
    memcpy(&i0, h, sizeof i0);
    for (unsigned p = 0; p < GUESS_PROBE; p++) {
        struct guess_addr *a = &g->slot[(i0 + p) % GUESS_ADDRS];
        if (strcmp(a->addr, addr) == 0)
            return a;
        if (a->addr[0] == '\0' || oldest == NULL || a->start < oldest->start) {
            oldest = a;
            if (a->addr[0] == '\0')
                break;
        }
    }
    memset(oldest, 0, sizeof *oldest);
    strcpy(oldest->addr, addr);
    return oldest;
}

/* Counts one failure in a window (a new window when the last one is over); true when it is the
 * window's first. */
static bool
count(double *start, uint32_t *failures, double now)
{
    if (*failures == 0 || now - *start >= GUESS_WINDOW) {
        *start = now;
        *failures = 1;
        return true;
    }
    (*failures)++;
    return false;
}

/* The wait of a delayed answer: at least `delay`, and after the last one by `spacing`. */
static double
hold_back(double *next_answer, double now, double delay, double spacing)
{
    double at = now + delay;

    if (*next_answer + spacing > at)
        at = *next_answer + spacing;
    *next_answer = at;
    return at - now;
}

void
guess_failed(struct guess *g, struct guess_conn *c, const char *peer, double now,
             struct guess_verdict *v)
{
    char addr[GUESS_ADDR_MAX + 1];
    struct guess_addr *a;

    guess_addr_of(peer != NULL ? peer : "?", addr);
    a = lookup(g, addr);
    memset(v, 0, sizeof *v);
    if (count(&c->start, &c->failures, now))
        c->logged = false;
    if (count(&a->start, &a->failures, now))
        a->logged = false;
    v->failures = c->failures;
    v->addr_failures = a->failures;
    if (c->failures > GUESS_FREE)
        v->delay = hold_back(&c->next_answer, now, GUESS_DELAY, GUESS_DELAY);
    if (a->failures > GUESS_ADDR_FREE) {
        double d = hold_back(&a->next_answer, now, GUESS_DELAY, GUESS_ADDR_SPACING);
        v->delay = d > v->delay ? d : v->delay;
    }
    v->close = c->failures >= GUESS_CUT || a->failures >= GUESS_ADDR_CUT;
    v->log_conn = c->failures > GUESS_FREE && !c->logged;
    v->log_addr = a->failures > GUESS_ADDR_FREE && !a->logged;
    v->log_cut = c->failures >= GUESS_CUT && !c->cut;
    c->cut = c->cut || v->log_cut;
    c->logged = c->logged || v->log_conn;
    a->logged = a->logged || v->log_addr;
}
