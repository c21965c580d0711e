/* cli.c - couponctl's command line: getopt_long over one table of flags, strict numbers. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PORT_MAX 65535
/* "prefix=" or "length=" and a value as long as an argument may be for the request parser */
#define OPTION_WORD_MAX (PROTO_MAX_LINE + 8)

enum {
    OPT_STATS = 256,
    OPT_UPLOAD,
    OPT_PURGE,
    OPT_EXPORT,
    OPT_GENERATE,
    OPT_PREFIX,
    OPT_LENGTH,
    OPT_JSON,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY
};

/* What the options say beyond struct cli_opts, until the words after them are read. */
struct parse {
    const char *gen_count; /* --generate N */
    const char *prefix;    /* --prefix P */
    const char *length;    /* --length L */
    const char *positional[CLI_POSITIONAL_MAX];
    size_t npositional; /* words seen, also beyond CLI_POSITIONAL_MAX */
};

static const struct option long_options[] = {
    {"address", required_argument, NULL, 'a'},
    {"port", required_argument, NULL, 'p'},
    {"key-file", required_argument, NULL, 'k'},
    {"interval", required_argument, NULL, 'i'},
    {"batch", required_argument, NULL, 'b'},
    {"stats", no_argument, NULL, OPT_STATS},
    {"upload", required_argument, NULL, OPT_UPLOAD},
    {"purge", no_argument, NULL, OPT_PURGE},
    {"export", required_argument, NULL, OPT_EXPORT},
    {"generate", required_argument, NULL, OPT_GENERATE},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"length", required_argument, NULL, OPT_LENGTH},
    {"json", no_argument, NULL, OPT_JSON},
    {"tls", no_argument, NULL, OPT_TLS},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
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
    "       couponctl [options] --export coupons|history FILE\n"
    "                                           write the coupons or the redemptions as CSV\n"
    "       couponctl [options] --generate N TYPE DISCOUNT KIND EXPIRES MAX_USES\n"
    "                 [--prefix P] [--length L] FILE\n"
    "                                           generate N coupons, write them to FILE\n"
    "  -a, --address HOST     coupond's address (default " CLI_ADDRESS_DEFAULT ")\n"
    "  -p, --port PORT        coupond's port (default 7070)\n"
    "  -k, --key-file FILE    admin key file (default " CLI_KEY_FILE_DEFAULT ")\n"
    "  -i, --interval MS      dashboard refresh period, 100..60000 (default 500)\n"
    "  -b, --batch N          records per UPLOAD, 1..50000 (default 50000)\n"
    "      --tls              speak TLS to coupond's --tls-port; its certificate must name\n"
    "                         HOST and chain to --tls-ca (default: the system's CAs)\n"
    "      --tls-ca FILE      --tls: the PEM CA that signed coupond's certificate\n"
    "      --tls-cert FILE    --tls: a PEM client certificate (for coupond --tls-ca)\n"
    "      --tls-key FILE     --tls: its private key (default: in --tls-cert's file)\n"
    "      --prefix P         --generate: codes start with P, up to 16 code characters\n"
    "      --length L         --generate: random characters after the prefix, 6..32\n"
    "                         (default 12)\n"
    "  -V, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "FILE '-' is standard input for --upload and standard output for --export.\n"
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
        snprintf(errbuf, errlen,
                 "--stats, --upload, --purge, --export and --generate exclude "
                 "each other");
        return CLI_BAD_USAGE;
    }
    o->mode = mode;
    return CLI_RUN;
}

static enum cli_result
set_export(struct cli_opts *o, const char *arg, char *errbuf, size_t errlen)
{
    if (strcasecmp(arg, "coupons") == 0)
        o->export_what = CLI_EXPORT_COUPONS;
    else if (strcasecmp(arg, "history") == 0)
        o->export_what = CLI_EXPORT_HISTORY;
    else
        return bad(errbuf, errlen, "--export takes coupons or history", arg);
    return set_mode(o, CLI_MODE_EXPORT, errbuf, errlen);
}

/* --tls and the files that go with it (checked together in finish_parse). */
static void
set_tls(struct cli_opts *o, int c, const char *arg)
{
    if (c == OPT_TLS)
        o->tls = true;
    else
        *(c == OPT_TLS_CA ? &o->tls_ca : c == OPT_TLS_CERT ? &o->tls_cert : &o->tls_key) = arg;
}

/* Applies one parsed option. */
static enum cli_result
apply(struct cli_opts *o, struct parse *p, int c, const char *arg, FILE *out, char *errbuf,
      size_t errlen)
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
    case OPT_EXPORT:
        return set_export(o, arg, errbuf, errlen);
    case OPT_GENERATE:
        p->gen_count = arg;
        return set_mode(o, CLI_MODE_GENERATE, errbuf, errlen);
    case OPT_PREFIX:
        p->prefix = arg;
        return CLI_RUN;
    case OPT_LENGTH:
        p->length = arg;
        return CLI_RUN;
    case OPT_JSON:
        o->json = true;
        return CLI_RUN;
    case OPT_TLS:
    case OPT_TLS_CA:
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
        set_tls(o, c, arg);
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

static void
add_positional(struct parse *p, const char *word)
{
    if (p->npositional < CLI_POSITIONAL_MAX)
        p->positional[p->npositional] = word;
    p->npositional++;
}

/* Reads the options and, between and after them, the words that are not options (FILE, and
 * --generate's values, which come before --prefix and --length in the synopsis). After "--"
 * every word is one of those. */
static enum cli_result
read_argv(struct cli_opts *o, struct parse *p, int argc, char **argv, FILE *out, char *errbuf,
          size_t errlen)
{
    opterr = 0; /* the caller prints one message of ours instead of getopt's */
    optind = 1;
    while (optind < argc) {
        int c = getopt_long(argc, argv, short_options, long_options, NULL);
        if (c == -1) {
            bool dashdash = strcmp(argv[optind - 1], "--") == 0 && optind > 1;
            if (optind >= argc)
                break;
            add_positional(p, argv[optind++]);
            while (dashdash && optind < argc)
                add_positional(p, argv[optind++]);
            continue;
        }
        if (c == '?' || c == ':')
            return bad(errbuf, errlen, "unknown option or missing argument", argv[optind - 1]);
        enum cli_result r = apply(o, p, c, optarg, out, errbuf, errlen);
        if (r != CLI_RUN)
            return r;
    }
    return CLI_RUN;
}

/* The words after the options that the mode takes: `want` of them. */
static enum cli_result
check_positional(const struct parse *p, size_t want, const char *what, char *errbuf, size_t errlen)
{
    if (p->npositional > want)
        return bad(errbuf, errlen, "unexpected argument", p->positional[want]);
    if (p->npositional < want) {
        snprintf(errbuf, errlen, "%s", what);
        return CLI_BAD_USAGE;
    }
    return CLI_RUN;
}

/* Checks --generate's values as coupond will: the words of the GENERATE request go through
 * protocol/'s parser, so an error names the value that is wrong. */
static enum cli_result
parse_generate(struct cli_opts *o, const struct parse *p, char *errbuf, size_t errlen)
{
    char prefix[OPTION_WORD_MAX], length[OPTION_WORD_MAX];
    struct proto_arg args[PROTO_MAX_WORDS];
    struct proto_error err;
    size_t n = 0;

    args[n++] = (struct proto_arg){"GENERATE", strlen("GENERATE"), PROTO_ARG_STRING};
    args[n++] = (struct proto_arg){p->gen_count, strlen(p->gen_count), PROTO_ARG_STRING};
    for (size_t i = 0; i < CLI_GEN_VALUES; i++)
        args[n++] =
            (struct proto_arg){p->positional[i], strlen(p->positional[i]), PROTO_ARG_STRING};
    if (p->prefix != NULL) {
        snprintf(prefix, sizeof prefix, "prefix=%s", p->prefix);
        args[n++] = (struct proto_arg){prefix, strlen(prefix), PROTO_ARG_STRING};
    }
    if (p->length != NULL) {
        snprintf(length, sizeof length, "length=%s", p->length);
        args[n++] = (struct proto_arg){length, strlen(length), PROTO_ARG_STRING};
    }
    if (!proto_parse_args(args, n, n, &o->gen, &err)) {
        snprintf(errbuf, errlen, "--generate: %s", err.msg);
        return CLI_BAD_USAGE;
    }
    if (o->gen.count > PROTO_UPLOAD_MAX)
        return bad(errbuf, errlen, "--generate: N must be 1..50000", p->gen_count);
    return CLI_RUN;
}

/* The words after the options, by mode. */
static enum cli_result
finish_parse(struct cli_opts *o, const struct parse *p, char *errbuf, size_t errlen)
{
    enum cli_result r;

    if ((p->prefix != NULL || p->length != NULL) && o->mode != CLI_MODE_GENERATE) {
        snprintf(errbuf, errlen, "--prefix and --length go with --generate");
        return CLI_BAD_USAGE;
    }
    if (o->json && o->mode != CLI_MODE_STATS) {
        snprintf(errbuf, errlen, "--json goes with --stats");
        return CLI_BAD_USAGE;
    }
    if (!o->tls && (o->tls_ca != NULL || o->tls_cert != NULL || o->tls_key != NULL)) {
        snprintf(errbuf, errlen, "--tls-ca, --tls-cert and --tls-key go with --tls");
        return CLI_BAD_USAGE;
    }
    if (o->tls_key != NULL && o->tls_cert == NULL) {
        snprintf(errbuf, errlen, "--tls-key goes with --tls-cert");
        return CLI_BAD_USAGE;
    }
    switch (o->mode) {
    case CLI_MODE_EXPORT:
        r = check_positional(p, 1, "--export needs a FILE ('-' for standard output)", errbuf,
                             errlen);
        if (r == CLI_RUN)
            o->out_path = p->positional[0];
        return r;
    case CLI_MODE_GENERATE:
        r = check_positional(p, CLI_GEN_VALUES + 1,
                             "--generate N needs TYPE DISCOUNT KIND EXPIRES MAX_USES and a FILE",
                             errbuf, errlen);
        if (r != CLI_RUN)
            return r;
        o->out_path = p->positional[CLI_GEN_VALUES];
        if (strcmp(o->out_path, CLI_STDOUT) == 0) {
            snprintf(errbuf, errlen,
                     "--generate needs a FILE, not standard output: the file "
                     "names the batch (see REQUEST IDS in couponctl(1))");
            return CLI_BAD_USAGE;
        }
        return parse_generate(o, p, errbuf, errlen);
    default:
        return check_positional(p, 0, "", errbuf, errlen);
    }
}

enum cli_result
cli_parse(struct cli_opts *o, int argc, char **argv, FILE *out, char *errbuf, size_t errlen)
{
    struct parse p;
    enum cli_result r;

    memset(&p, 0, sizeof p);
    r = read_argv(o, &p, argc, argv, out, errbuf, errlen);
    if (r != CLI_RUN)
        return r;
    return finish_parse(o, &p, errbuf, errlen);
}
