/* opts.h - coupond's command line: defaults, limits, parsing. */
#ifndef COUPOND_OPTS_H
#define COUPOND_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTS_PORT_DEFAULT           7070
#define OPTS_LISTEN_DEFAULT         "127.0.0.1"
#define OPTS_DATA_DIR_DEFAULT       "./coupond-data"
#define OPTS_PURGE_INTERVAL_DEFAULT 3600          /* seconds; expired coupons pile up slowly */
#define OPTS_MAX_CLIENTS_DEFAULT    10000         /* the product's scale target */
#define OPTS_MAX_CLIENTS_MAX        1000000       /* beyond any fd limit a kernel will grant */
#define OPTS_IDLE_TIMEOUT_DEFAULT   300           /* seconds: generous for pooled backend clients */
#define OPTS_SECONDS_MAX            (86400 * 365) /* a year: larger timers are typos */
#define OPTS_HOST_MAX               253           /* the longest DNS name (RFC 1035) */
#define OPTS_AUTH_DELAY             1.0 /* seconds before a wrong AUTH is answered: guessing is slow */
/* Seconds a request id's outcome is kept (PROTOCOL.md: at least 24 hours by default): long
 * enough for any client's retries, short enough that ids do not pile up. */
#define OPTS_ID_RETENTION_DEFAULT 86400
/* --commit-delay: OPTS_COMMIT_DELAY_STORE takes the store's (store_commit_delay). At most a
 * tenth of a second: a hold is worth at most about one commit's time, and no store's commit
 * takes that long when it is healthy. */
#define OPTS_COMMIT_DELAY_STORE (-1)
#define OPTS_COMMIT_DELAY_MAX   100000

enum opts_result {
    OPTS_RUN = 0, /* options parsed: run the server */
    OPTS_EXIT_OK, /* --help or --version printed: exit 0 */
    OPTS_USAGE    /* bad usage, reason in errbuf: exit 2 */
};

enum opts_mode {
    OPTS_MODE_SERVE = 0,    /* run the server */
    OPTS_MODE_CHECK,        /* --check: verify the store and exit */
    OPTS_MODE_VERIFY_AUDIT, /* --verify-audit: verify the audit chain and exit */
    OPTS_MODE_KEY           /* `key add|list|revoke ...`: manage the keys file and exit */
};

/* --require-auth: whether connections without AUTH may run the service commands. */
enum opts_require_auth {
    OPTS_REQUIRE_AUTH_AUTO = 0, /* on when any listen address is not loopback */
    OPTS_REQUIRE_AUTH_ON,       /* --require-auth */
    OPTS_REQUIRE_AUTH_OFF       /* --no-require-auth */
};

struct opts {
    enum opts_mode mode;
    const char *listen;   /* address literal or host name, points into argv or a constant */
    unsigned port;        /* 0: any free port */
    const char *data_dir; /* points into argv or a constant */
    const char *log_path; /* NULL: stderr */
    uint32_t max_upload;
    uint32_t purge_interval; /* seconds, 0 = off */
    uint32_t max_clients;
    uint32_t idle_timeout;         /* seconds, 0 = off */
    uint64_t map_size;             /* bytes */
    uint32_t megadeal_rate;        /* grants in any one-second window */
    uint32_t megadeal_concurrency; /* grants allocated and not yet committed */
    uint32_t megadeal_wait;        /* seconds from REQUEST to ERR TIMEOUT */
    uint32_t min_validity;         /* seconds a REQUEST's coupon must still be valid, 0 = none */
    bool log_reads;                /* log STATS polls too */
    uint32_t id_retention;         /* seconds a request id's outcome is kept, >= 1 */
    int32_t commit_delay;          /* microseconds the group commit may hold a batch (group.h) */
    double auth_delay;     /* seconds before a wrong AUTH is answered; no flag (tests shorten it) */
    const char *store_uri; /* --store: a PostgreSQL URI; NULL: LMDB in data_dir */
    const char *node_name; /* --node-name; NULL until opts_default_node_name sets the host's */
    const char *audit_head; /* --audit-head: an AUDIT reply to check the chain against, or NULL */

    /* --metrics-listen ADDR:PORT: GET /metrics is served there (metrics.h); off when the host
     * is "". The port may be 0: any free one. */
    char metrics_host[OPTS_HOST_MAX + 1];
    unsigned metrics_port;
    /* --tls-port: a second listener on the --listen address speaking TLS 1.2 or 1.3 with
     * --tls-cert and --tls-key (paths into argv), and requiring client certificates signed by
     * --tls-ca when that is given. tls_port may be 0: any free one. */
    bool tls;
    bool tls_only;   /* --tls-only: no plain listener; -p is then refused */
    bool port_given; /* -p was on the command line */
    unsigned tls_port;
    const char *tls_cert, *tls_key, *tls_ca;
    /* BACKUP's directory must be inside this one; NULL: anywhere the server may write. No flag:
     * the session fuzzer keeps the backups it asks for inside its scratch directory. */
    const char *backup_root;
    enum opts_require_auth require_auth;
    /* OPTS_MODE_KEY: the words after `key` (pointing into argv). */
    int key_argc;
    char *const *key_argv;
};

/* True when s is a node name (--node-name): 1 to STORE_NODE_MAX bytes of printable ASCII
 * without spaces, so that it is one word on a STAT line. */
bool opts_node_name_ok(const char *s);

/* Without --node-name, sets o->node_name to the host name, copied into buf (len bytes, which
 * must outlive o). False with a reason in errbuf when the host name is no node name. */
bool opts_default_node_name(struct opts *o, char *buf, size_t len, char *errbuf, size_t errlen);

/* The store_open URI of the store: --store, or the data dir (LMDB). */
const char *opts_store_uri(const struct opts *o);

/* The group commit's hold in microseconds: --commit-delay, or `store_default` without it. */
unsigned opts_commit_delay_us(const struct opts *o, unsigned store_default);

/* Fills *o with the defaults. */
void opts_defaults(struct opts *o);

/* Parses argv into *o (which opts_defaults filled). --help and --version print to `out`.
 * On OPTS_USAGE, errbuf holds a one-line reason. */
enum opts_result opts_parse(struct opts *o, int argc, char **argv, void *out, char *errbuf,
                            size_t errlen);

#endif
