/* compat.h - the commands Redis clients send besides coupond's own (PROTOCOL.md "The Redis wire
 * form"; coupond-protocol(7), "Redis clients"): HELLO, INFO, CLIENT, COMMAND, CONFIG, SELECT and
 * ECHO. In RESP each answers in the shape Redis gives it (a map, a bulk string, an integer), so
 * that a client library's connection set-up works unchanged; in the line form, in lines. cmd.c
 * starts them (HELLO's AUTH, INFO's counters) and calls here for the rest. */
#ifndef COUPOND_COMPAT_H
#define COUPOND_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"

struct cmd_req;

/* The Redis whose commands and wire form coupond follows: INFO's redis_version and HELLO's
 * version. Clients that look at it see a Redis with RESP3 and HELLO (6.0 and later), which is
 * what coupond speaks; coupond's own version is INFO's coupond_version. */
#define COMPAT_REDIS_VERSION "7.0.0"
/* Bytes of ECHO's message: a client's liveness check sends a few; a longer one is refused. */
#define COMPAT_ECHO_MAX 512
/* Bytes of INFO's text: every section with every STATS counter is under 4 KiB. */
#define COMPAT_INFO_MAX 8192

/* What a request of these commands keeps from its arguments for its reply, which is written
 * after the arguments are gone (cmd.h's struct cmd_req holds one). */
struct compat_req {
    unsigned sections;              /* INFO: the sections asked, one bit each */
    uint32_t params;                /* CONFIG GET: the parameters matched, one bit each */
    int8_t verbs[PROTO_WORDS_KEPT]; /* COMMAND INFO/DOCS: enum proto_cmd of each, -1: none */
    size_t nverbs;                  /* COMMAND INFO/DOCS: names given */
    size_t echo_len;                /* ECHO */
    char echo[COMPAT_ECHO_MAX];
};

/* HELLO, once its AUTH (if any) passed: sets the connection's RESP version (so that this reply
 * is already in it) and its name. */
void compat_hello(struct cmd_req *r);

/* Starts CLIENT, COMMAND, CONFIG, SELECT, ECHO and INFO: keeps what their replies need, makes
 * CLIENT SETNAME's and SETINFO's changes. PROTO_OK, or the error with a message in msg. */
enum proto_err compat_start(struct cmd_req *r, char *msg, size_t cap);

/* The replies (cmd.c's table), for an OK outcome. INFO's reads r->u.stats. */
void compat_reply_hello(struct cmd_req *r, struct proto_out *o);
void compat_reply_info(struct cmd_req *r, struct proto_out *o);
void compat_reply_client(struct cmd_req *r, struct proto_out *o);
void compat_reply_command(struct cmd_req *r, struct proto_out *o);
void compat_reply_config(struct cmd_req *r, struct proto_out *o);
void compat_reply_echo(struct cmd_req *r, struct proto_out *o);

#endif
