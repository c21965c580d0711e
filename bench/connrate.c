/* connrate.c - coupond-bench -w connect (see connrate.h): connect, PING, close, in a loop. */
#include "connrate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

#define NS_PER_S 1e9

/* One connection's life; false with the reason in r->why when it is the first to fail. */
static bool
one(const struct sockaddr *addr, socklen_t addrlen, const struct bconn_tls *tls,
    struct connrate_result *r)
{
    struct bconn c;
    const char *line = NULL, *why = NULL;
    size_t len = 0;

    if (!bconn_connect(&c, addr, addrlen, tls))
        why = errno == EPROTO ? "TLS handshake failed" : strerror(errno);
    else if (!bconn_append(&c, "PING\n", 5) ||
             bconn_wait_flush(&c, CONNRATE_REPLY_TIMEOUT_MS) != BCONN_IO_OK)
        why = "cannot send PING";
    else if (bconn_wait_line(&c, CONNRATE_REPLY_TIMEOUT_MS, &line, &len) != BCONN_IO_OK ||
             len != strlen("OK PONG") || memcmp(line, "OK PONG", len) != 0)
        why = "no PONG";
    bconn_close(&c);
    if (why != NULL && r->failed == 0)
        snprintf(r->why, sizeof r->why, "%s", why);
    return why == NULL;
}

void
connrate_run(const struct sockaddr *addr, socklen_t addrlen, const struct bconn_tls *tls,
             uint64_t max, double seconds, struct connrate_result *r)
{
    uint64_t start = engine_now_ns(), now = start;
    uint64_t until = seconds > 0 ? start + (uint64_t)(seconds * NS_PER_S) : UINT64_MAX;

    memset(r, 0, sizeof *r);
    hist_init(&r->hist);
    while (now < until && (max == 0 || r->ok + r->failed < max)) {
        bool ok = one(addr, addrlen, tls, r);
        uint64_t then = engine_now_ns();
        if (ok) {
            r->ok++;
            hist_record(&r->hist, then - now);
        } else {
            r->failed++;
        }
        now = then;
    }
    r->seconds = (double)(now - start) / NS_PER_S;
}
