/* compat.h - the commands Redis clients send besides coupond's own (PROTOCOL.md "The Redis wire
 * form"; coupond-protocol(7), "Redis clients"): HELLO, INFO, CLIENT, COMMAND, CONFIG, SELECT and
 * ECHO. In RESP each answers in the shape Redis gives it (a map, a bulk string, an integer), so
 * that a client library's connection set-up works unchanged; in the line form, in lines. cmd.c
 * starts them (HELLO's AUTH, INFO's counters) and calls here for the rest, handing over what a
 * request needs as a struct compat_call: this module knows no command table and no request. */
#ifndef COUPOND_COMPAT_H
#define COUPOND_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#include "opts.h"
#include "proto.h"
#include "reply.h"

/* The Redis whose commands and wire form coupond follows: INFO's redis_version and HELLO's
 * version. Clients that look at it see a Redis with RESP3 and HELLO (6.0 and later), which is
 * what coupond speaks; coupond's own version is INFO's coupond_version. */
#define COMPAT_REDIS_VERSION "7.0.0"
/* Bytes of ECHO's message: a client's liveness check sends a few; a longer one is refused. */
#define COMPAT_ECHO_MAX 512
/* Bytes of INFO's text: every section with every STATS counter is under 4 KiB. */
#define COMPAT_INFO_MAX 8192
/* Bytes kept of a name a client gives (CLIENT SETNAME, SETINFO LIB-NAME and LIB-VER): Redis
 * clients send a few dozen. */
#define COMPAT_NAME_MAX 128

/* A connection as these commands show and change it (cmd.h's struct cmd_client holds one). */
struct compat_client {
    uint64_t conn;    /* its number: CLIENT ID, HELLO's id */
    const char *peer; /* its address, or NULL */
    double since;     /* when it connected (CLIENT INFO's age) */
    /* The RESP version of the replies to its RESP requests: PROTO_FORM_RESP2 until HELLO 3. */
    enum proto_form resp;
    /* CLIENT SETNAME and SETINFO: as given, each byte outside printable ASCII without blanks
     * shown as '?'; "" when unset. */
    char name[COMPAT_NAME_MAX + 1];
    char lib_name[COMPAT_NAME_MAX + 1];
    char lib_ver[COMPAT_NAME_MAX + 1];
};

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

/* One request of these commands: what its start and its reply read and change. */
struct compat_call {
    const struct proto_request *preq;
    enum proto_form *form;           /* the reply's form: HELLO 3 over RESP changes it */
    struct compat_req *st;           /* what the start keeps for the reply */
    struct compat_client *client;    /* the connection */
    const struct opts *opts;         /* CONFIG GET's values, INFO's port and limits */
    double now;                      /* CLIENT INFO's age */
    const struct proto_stats *stats; /* INFO's counters (its reply only) */
};

/* HELLO, once its AUTH (if any) passed: sets the connection's RESP version (so that this reply
 * is already in it) and its name. */
void compat_hello(const struct compat_call *c);

/* Starts CLIENT, COMMAND, CONFIG, SELECT, ECHO and INFO: keeps what their replies need, makes
 * CLIENT SETNAME's and SETINFO's changes. PROTO_OK, or the error with a message in msg. */
enum proto_err compat_start(const struct compat_call *c, char *msg, size_t cap);

/* A command's reply, for an OK outcome: the replies of HELLO, INFO, CLIENT, COMMAND, CONFIG and
 * ECHO; NULL for another command (SELECT answers a plain OK). */
typedef void compat_reply_fn(const struct compat_call *c, struct proto_out *o);
compat_reply_fn *compat_reply_of(enum proto_cmd cmd);

#endif
