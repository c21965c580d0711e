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
#include "stat.h"

/* How long one admin reply may take: a STATS waits for the group commit it follows, and the
 * server may be in the middle of a large upload. */
#define ADMIN_TIMEOUT_MS 60000

struct admin {
    struct bconn conn;
};

/* Connects (over TLS when tls is not NULL) and authenticates with `key`. False with a reason in
 * why. */
bool admin_open(struct admin *a, const struct sockaddr *addr, socklen_t addrlen,
                const struct bconn_tls *tls, const char *key, char *why, size_t why_len);

/* Sends STATS and reads the reply into *out (protocol/'s table; names it does not know are
 * skipped). False with a reason in why: an ERR reply, a lost connection, or a reply without
 * one of the counters the bench reads (connections, megadeal.granted, and created, assigned,
 * redeemed, available and purged of every type). *out is untouched on failure; on success a
 * stat the reply did not carry is UINT64_MAX. A stat that is not per type is at
 * [stat][PROTO_TYPE_NONE]. */
bool admin_stats(struct admin *a, struct proto_stats *out, char *why, size_t why_len);

/* Coupons held in the store: every type's created minus purged. */
uint64_t admin_store_size(const struct proto_stats *s);

/* Sends QUIT and closes; safe to call twice. */
void admin_close(struct admin *a);

#endif
