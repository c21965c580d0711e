/* connrate.h - coupond-bench -w connect: connections made one after another, each connected
 * (with --tls, a full TLS handshake: no session is resumed), sent one PING, answered and closed,
 * to measure what setting up a connection costs. */
#ifndef COUPOND_BENCH_CONNRATE_H
#define COUPOND_BENCH_CONNRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bconn.h"
#include "hist.h"

/* How long one PING reply may take on a new connection before the run counts it failed. */
#define CONNRATE_REPLY_TIMEOUT_MS 5000

struct connrate_result {
    uint64_t ok;      /* connections that got their PONG */
    uint64_t failed;  /* connect, handshake or reply failed */
    double seconds;   /* first connect to last close */
    struct hist hist; /* connect to PONG of each that succeeded, ns */
    char why[256];    /* the first failure's reason */
};

/* Runs connections until `max` were made (0: no bound) or `seconds` passed (0: no bound; one of
 * the two must be set), over TLS when tls is not NULL. */
void connrate_run(const struct sockaddr *addr, socklen_t addrlen, const struct bconn_tls *tls,
                  uint64_t max, double seconds, struct connrate_result *r);

#endif
