/* cli.c - couponctl's command line: getopt_long over one table of flags, strict numbers. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define PORT_MAX 65535

enum { OPT_STATS = 256, OPT_UPLOAD, OPT_PURGE, OPT_JSON };

static const struct option long_options[] = {
    {"address", required_argument, NULL, 'a'},
    {"port", required_argument, NULL, 'p'},
    {"key-file", required_argument, NULL, 'k'},
    {"interval", required_argument, NULL, 'i'},
    {"batch", required_argument, NULL, 'b'},
    {"stats", no_argument, NULL, OPT_STATS},
    {"upload", required_argument, NULL, OPT_UPLOAD},
    {"purge", no_argument, NULL, OPT_PURGE},
    {"json", no_argument, NULL, OPT_JSON},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char short_options[] = "+a:p:k:i:b:Vh";

static const char usage_text[] =
    "usage: couponctl [options]                 the dashboard\n"
    "       couponctl [options] --stats         print the server's STAT lines\n"
    "       couponctl [options] --stats --json  print them as one JSON object\n"
    "       couponctl [options] --upload FILE   upload a CSV file of coupons\n"
    "       couponctl [options] --purge         purge expired coupons, print the count\n"
    "  -a, --address HOST     coupond's address (default " CLI_ADDRESS_DEFAULT ")\n"
    "  -p, --port PORT        coupond's port (default 7070)\n"
    "  -k, --key-file FILE    admin key file (default " CLI_KEY_FILE_DEFAULT ")\n"
    "  -i, --interval MS      dashboard refresh period, 100..60000 (default 500)\n"
    "  -b, --batch N          records per UPLOAD, 1..50000 (default 50000)\n"
    "  -V, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "Exit status: 0 done, 1 records bad or not stored or an ERR reply, 2 usage error,\n"
    "3 connection error, 4 key missing or refused.\n";

void
cli_usage(FILE *out)
{
    fputs(usage_text, out);
}

void
cli_defaults(struct cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = CLI_MODE_DASHBOARD;
    o->address = CLI_ADDRESS_DEFAULT;
    o->port = CLI_PORT_DEFAULT;
    o->key_file = CLI_KEY_FILE_DEFAULT;
    o->interval_ms = CLI_INTERVAL_DEFAULT;
    o->batch_size = PROTO_UPLOAD_MAX;
}

/* Parses a decimal number in [min, max]; digits only. Leaves *out untouched on failure. */
static bool
parse_number(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

static enum cli_result
bad(char *errbuf, size_t errlen, const char *what, const char *arg)
{
    snprintf(errbuf, errlen, "%s: '%s'", what, arg);
    return CLI_BAD_USAGE;
}

static enum cli_result
set_mode(struct cli_opts *o, enum cli_mode mode, char *errbuf, size_t errlen)
{
    if (o->mode != CLI_MODE_DASHBOARD && o->mode != mode) {
        snprintf(errbuf, errlen, "--stats, --upload and --purge exclude each other");
        return CLI_BAD_USAGE;
    }
    o->mode = mode;
    return CLI_RUN;
}

/* Applies one parsed option. */
static enum cli_result
apply(struct cli_opts *o, int c, const char *arg, FILE *out, char *errbuf, size_t errlen)
{
    switch (c) {
    case 'a':
        if (arg[0] == '\0')
            return bad(errbuf, errlen, "empty address", arg);
        o->address = arg;
        return CLI_RUN;
    case 'p':
        return parse_number(arg, 1, PORT_MAX, &o->port) ? CLI_RUN
                                                        : bad(errbuf, errlen, "bad port", arg);
    case 'k':
        o->key_file = arg;
        return CLI_RUN;
    case 'i':
        return parse_number(arg, CLI_INTERVAL_MIN, CLI_INTERVAL_MAX, &o->interval_ms)
                   ? CLI_RUN
                   : bad(errbuf, errlen, "interval must be 100..60000 ms", arg);
    case 'b':
        return parse_number(arg, 1, PROTO_UPLOAD_MAX, &o->batch_size)
                   ? CLI_RUN
                   : bad(errbuf, errlen, "batch must be 1..50000 records", arg);
    case OPT_STATS:
        return set_mode(o, CLI_MODE_STATS, errbuf, errlen);
    case OPT_UPLOAD:
        o->upload_path = arg;
        return set_mode(o, CLI_MODE_UPLOAD, errbuf, errlen);
    case OPT_PURGE:
        return set_mode(o, CLI_MODE_PURGE, errbuf, errlen);
    case OPT_JSON:
        o->json = true;
        return CLI_RUN;
    case 'V':
        fprintf(out, "couponctl %s\n", COUPOND_VERSION);
        return CLI_DONE;
    case 'h':
        cli_usage(out);
        return CLI_DONE;
    default:
        return bad(errbuf, errlen, "unknown option", arg != NULL ? arg : "?");
    }
}

enum cli_result
cli_parse(struct cli_opts *o, int argc, char **argv, FILE *out, char *errbuf, size_t errlen)
{
    int c;

    opterr = 0; /* the caller prints one message of ours instead of getopt's */
    optind = 1;
    while ((c = getopt_long(argc, argv, short_options, long_options, NULL)) != -1) {
        if (c == '?' || c == ':')
            return bad(errbuf, errlen, "unknown option or missing argument", argv[optind - 1]);
        enum cli_result r = apply(o, c, optarg, out, errbuf, errlen);
        if (r != CLI_RUN)
            return r;
    }
    if (optind < argc)
        return bad(errbuf, errlen, "unexpected argument", argv[optind]);
    if (o->json && o->mode != CLI_MODE_STATS) {
        snprintf(errbuf, errlen, "--json goes with --stats");
        return CLI_BAD_USAGE;
    }
    return CLI_RUN;
}
