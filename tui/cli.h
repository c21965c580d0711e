/* cli.h - couponctl's command line: modes, flags, defaults, limits and exit codes. */
#ifndef COUPONCTL_CLI_H
#define COUPONCTL_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "proto.h"

#define CLI_ADDRESS_DEFAULT  "127.0.0.1"                /* coupond's default listen address */
#define CLI_PORT_DEFAULT     7070                       /* coupond's default port */
#define CLI_KEY_FILE_DEFAULT "./coupond-data/admin.key" /* in coupond's default data dir */
#define CLI_INTERVAL_DEFAULT 500   /* ms between STATS polls: smooth rates, light on the server */
#define CLI_INTERVAL_MIN     100   /* ms; faster adds load and no information a person can read */
#define CLI_INTERVAL_MAX     60000 /* ms; slower than a minute is no longer a live dashboard */
/* Words after the options at most: --generate's five values and its FILE, with room to name
 * one too many in the error. */
#define CLI_POSITIONAL_MAX 8
#define CLI_GEN_VALUES     5 /* --generate N TYPE DISCOUNT KIND EXPIRES MAX_USES: the five after N */
#define CLI_STDOUT         "-" /* FILE of --export: standard output */

/* Exit codes, documented in couponctl(1). */
enum cli_exit {
    CLI_EXIT_OK = 0,      /* everything asked for was done */
    CLI_EXIT_FAILED = 1,  /* records bad or not stored, unreadable file, an ERR reply, or
                           * stopped by a signal before the work was done */
    CLI_EXIT_USAGE = 2,   /* bad flags or arguments, or the dashboard without a usable terminal */
    CLI_EXIT_CONNECT = 3, /* cannot connect, or the connection was lost */
    CLI_EXIT_AUTH = 4     /* key file missing or malformed, or the server refused the key */
};

enum cli_mode {
    CLI_MODE_DASHBOARD = 0, /* the interactive dashboard (default) */
    CLI_MODE_STATS,         /* --stats */
    CLI_MODE_UPLOAD,        /* --upload FILE */
    CLI_MODE_PURGE,         /* --purge */
    CLI_MODE_EXPORT,        /* --export coupons|history FILE */
    CLI_MODE_GENERATE       /* --generate N TYPE DISCOUNT KIND EXPIRES MAX_USES FILE */
};

/* What --export writes. */
enum cli_export { CLI_EXPORT_COUPONS = 0, CLI_EXPORT_HISTORY };

struct cli_opts {
    enum cli_mode mode;
    const char *address;         /* host name or address literal; argv or a constant */
    unsigned port;               /* 1..65535 */
    const char *key_file;        /* argv or a constant */
    unsigned interval_ms;        /* STATS period of the dashboard */
    unsigned batch_size;         /* records per UPLOAD, 1..PROTO_UPLOAD_MAX */
    const char *upload_path;     /* --upload FILE ("-": standard input); argv */
    enum cli_export export_what; /* --export */
    const char *out_path;        /* --export, --generate: FILE (CLI_STDOUT: --export only); argv */
    /* --generate: the GENERATE request, its values checked as coupond checks them, its count
     * 1..PROTO_UPLOAD_MAX, without an id (the batch client derives one). */
    struct proto_request gen;
    bool json; /* --stats --json: one JSON object instead of the STAT lines */
    /* --tls: TLS to coupond's --tls-port, the server's certificate checked against --tls-ca
     * (NULL: the system's CAs) and the host name or address given with -a; --tls-cert and
     * --tls-key: a client certificate, for a server with --tls-ca. Paths into argv. */
    bool tls;
    const char *tls_ca, *tls_cert, *tls_key;
};

enum cli_result {
    CLI_RUN = 0,  /* options parsed: run */
    CLI_DONE,     /* --help or --version printed: exit 0 */
    CLI_BAD_USAGE /* one-line reason in errbuf: exit CLI_EXIT_USAGE */
};

/* Fills *o with the defaults. */
void cli_defaults(struct cli_opts *o);

/* Parses argv into *o (which cli_defaults filled); --help and --version print to `out`.
 * Strings in *o point into argv, which must outlive *o. On CLI_BAD_USAGE errbuf holds a
 * one-line reason without the program name. */
enum cli_result cli_parse(struct cli_opts *o, int argc, char **argv, FILE *out, char *errbuf,
                          size_t errlen);

/* The usage text, for a hint after a usage error. */
void cli_usage(FILE *out);

#endif
