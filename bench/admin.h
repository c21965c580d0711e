/* admin.h - coupond-bench's blocking admin session: AUTH and STATS snapshots, used around a
 * measured run to check that the server's counters moved exactly as the replies said. */
#ifndef COUPOND_BENCH_ADMIN_H
#define COUPOND_BENCH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bconn.h"
#include "proto.h"

/* How long one admin reply may take: a STATS waits for the group commit it follows, and the
 * server may be in the middle of a large upload. */
#define ADMIN_TIMEOUT_MS 60000

/* The counters of one STATS reply that the bench uses. `seen_*` say which names were in it. */
struct admin_stats {
    uint64_t created[PROTO_NTYPES];
    uint64_t assigned[PROTO_NTYPES];
    uint64_t redeemed[PROTO_NTYPES];
    uint64_t available[PROTO_NTYPES];
    uint64_t purged[PROTO_NTYPES];
    uint64_t connections;
    uint64_t mega_granted; /* megadeal.granted */
    unsigned seen;         /* how many of the names above were found */
};

/* Names found in a complete STATS reply: 5 per type, connections and megadeal.granted. */
#define ADMIN_STATS_NAMES (5 * PROTO_NTYPES + 2)

struct admin {
    struct bconn conn;
};

/* Connects and authenticates with `key`. False with a reason in why. */
bool admin_open(struct admin *a, const struct sockaddr *addr, socklen_t addrlen, const char *key,
                char *why, size_t why_len);

/* Sends STATS and reads the reply into *out. False with a reason in why (an ERR reply, a
 * missing counter, a lost connection). */
bool admin_stats(struct admin *a, struct admin_stats *out, char *why, size_t why_len);

/* Coupons held in the store: every type's created minus purged. */
uint64_t admin_store_size(const struct admin_stats *s);

/* Sends QUIT and closes; safe to call twice. */
void admin_close(struct admin *a);

#endif
