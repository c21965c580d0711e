/* guess.h - the code-guessing defence. A client that keeps getting ERR INVALID from VALIDATE,
 * REDEEM or HOLD is trying codes: its failing answers are answered at once for a while, then
 * each waits (on a timer: the loop and other clients never wait), then its connection is
 * closed. Failures count per connection and per source address (a guesser that opens many
 * connections is one address), in windows of GUESS_WINDOW seconds. Successful answers are never
 * delayed, so a client that redeems real codes from the same address keeps its latency. The
 * addresses are kept in a table of GUESS_ADDRS entries; when it is full, the entry whose window
 * began longest ago among a few candidates is forgotten. */
#ifndef COUPOND_GUESS_H
#define COUPOND_GUESS_H

#include <stdbool.h>
#include <stdint.h>

/* Seconds over which failures are counted: long enough to span a guessing burst, short enough
 * that a shop's till with a few typos an hour never meets the defence. */
#define GUESS_WINDOW 60.0
/* Failures per window of one connection answered at once: a person mistyping codes makes a
 * handful; a backend checking stale codes a few dozen an hour. */
#define GUESS_FREE 20
/* Seconds each further failing answer of that connection waits, one after another (pipelined
 * guesses are spaced too): past GUESS_FREE a connection learns at most two codes a second. */
#define GUESS_DELAY 0.5
/* Failures per window after which the connection is closed after its answer: 20 more than
 * GUESS_FREE, 10 seconds of delayed answers. */
#define GUESS_CUT 40
/* The same per source address, over all its connections: a NAT of many honest tills may reach
 * GUESS_FREE together, so the address is allowed more. Past GUESS_ADDR_FREE its failing
 * answers wait GUESS_DELAY and go out no closer together than GUESS_ADDR_SPACING, across all
 * its connections; past GUESS_ADDR_CUT each connection that fails is closed after its answer. */
#define GUESS_ADDR_FREE    100
#define GUESS_ADDR_CUT     200
#define GUESS_ADDR_SPACING 0.1 /* seconds: ten failing answers a second per address at most */
/* Addresses tracked: 4096 entries of about 80 bytes is a third of a MiB; an attacker with more
 * addresses than that has more than a guessing problem. */
#define GUESS_ADDRS    4096
#define GUESS_PROBE    8  /* slots looked at per address: the eviction candidates */
#define GUESS_ADDR_MAX 48 /* bytes of an address as text: the longest IPv6 with a zone */

/* One connection's count; zero it when the connection starts. */
struct guess_conn {
    double start;       /* its window began */
    uint32_t failures;  /* in the window */
    double next_answer; /* the earliest time its next delayed answer may go out */
    bool logged;        /* the episode is logged */
    bool cut;           /* its cut-off is logged: requests started before it fail too */
};

/* What to do with a failing answer. */
struct guess_verdict {
    double delay;      /* seconds to hold the answer back (0: at once) */
    bool close;        /* close the connection after the answer */
    bool log_conn;     /* the connection's episode begins: log it once */
    bool log_addr;     /* the address's episode begins: log it once */
    bool log_cut;      /* the connection is cut off for its own failures: log it once */
    uint32_t failures; /* the connection's failures in its window */
    uint32_t addr_failures;
};

struct guess;

/* The address table; NULL when out of memory. sodium_init() must have run (its hash key). */
struct guess *guess_new(void);
void guess_free(struct guess *g);

/* A VALIDATE, REDEEM or HOLD of connection c, from `peer` ("1.2.3.4:5678" or "[::1]:5678"),
 * was answered ERR INVALID at time `now`: counts it and fills *v. */
void guess_failed(struct guess *g, struct guess_conn *c, const char *peer, double now,
                  struct guess_verdict *v);

/* The address part of a peer ("1.2.3.4", "::1") into out[GUESS_ADDR_MAX + 1]. */
void guess_addr_of(const char *peer, char out[GUESS_ADDR_MAX + 1]);

#endif
