/* opts.c - coupond's command line: getopt_long, one table of flags, strict number parsing. */
#include "opts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mega.h"
#include "proto.h"
#include "store.h"

enum {
    OPT_MAX_UPLOAD = 256,
    OPT_PURGE_INTERVAL,
    OPT_LOG,
    OPT_MAX_CLIENTS,
    OPT_IDLE_TIMEOUT,
    OPT_MAP_SIZE,
    OPT_CHECK,
    OPT_MEGADEAL_RATE,
    OPT_MEGADEAL_CONCURRENCY,
    OPT_MEGADEAL_WAIT,
    OPT_MIN_VALIDITY,
    OPT_LOG_READS,
    OPT_ID_RETENTION,
    OPT_COMMIT_DELAY,
    OPT_STORE,
    OPT_NODE_NAME,
    OPT_VERIFY_AUDIT,
    OPT_AUDIT_HEAD,
    OPT_METRICS_LISTEN,
    OPT_TLS_PORT,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_ONLY,
    OPT_REQUIRE_AUTH,
    OPT_NO_REQUIRE_AUTH
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"port", required_argument, NULL, 'p'},
    {"data-dir", required_argument, NULL, 'd'},
    {"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
    {"purge-interval", required_argument, NULL, OPT_PURGE_INTERVAL},
    {"log", required_argument, NULL, OPT_LOG},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"map-size", required_argument, NULL, OPT_MAP_SIZE},
    {"check", no_argument, NULL, OPT_CHECK},
    {"megadeal-rate", required_argument, NULL, OPT_MEGADEAL_RATE},
    {"megadeal-concurrency", required_argument, NULL, OPT_MEGADEAL_CONCURRENCY},
    {"megadeal-wait", required_argument, NULL, OPT_MEGADEAL_WAIT},
    {"min-validity", required_argument, NULL, OPT_MIN_VALIDITY},
    {"log-reads", no_argument, NULL, OPT_LOG_READS},
    {"commit-delay", required_argument, NULL, OPT_COMMIT_DELAY},
    {"id-retention", required_argument, NULL, OPT_ID_RETENTION},
    {"store", required_argument, NULL, OPT_STORE},
    {"node-name", required_argument, NULL, OPT_NODE_NAME},
    {"verify-audit", no_argument, NULL, OPT_VERIFY_AUDIT},
    {"audit-head", required_argument, NULL, OPT_AUDIT_HEAD},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-only", no_argument, NULL, OPT_TLS_ONLY},
    {"require-auth", no_argument, NULL, OPT_REQUIRE_AUTH},
    {"no-require-auth", no_argument, NULL, OPT_NO_REQUIRE_AUTH},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: coupond [options]\n"
    "       coupond [-d DIR] key add NAME monitor|service|admin | key list |\n"
    "                        key revoke NAME [ID]\n"
    "  -l, --listen HOST          address or host name to listen on (default " OPTS_LISTEN_DEFAULT
    ")\n"
    "  -p, --port PORT            TCP port (default 7070; 0 picks a free one)\n"
    "  -d, --data-dir DIR         data directory (default " OPTS_DATA_DIR_DEFAULT ")\n"
    "      --store URI            keep the coupons in PostgreSQL (postgresql://...) instead of\n"
    "                             LMDB in DIR; DIR keeps the keys and the lock\n"
    "      --node-name NAME       this node's name in a shared store (default: the host name)\n"
    "      --max-upload N         largest UPLOAD count, 1..50000 (default 50000)\n"
    "      --purge-interval SECS  purge expired coupons every SECS, 0 = off (default 3600)\n"
    "      --log FILE             operation log file (default stderr); SIGHUP reopens it\n"
    "      --log-reads            log STATS polls too (default: writes and lookups only)\n"
    "      --max-clients N        most connections at once (default 10000)\n"
    "      --idle-timeout SECS    close connections idle this long, 0 = off (default 300)\n"
    "      --map-size SIZE        LMDB map size, suffix K/M/G/T allowed (default 16G)\n"
    "      --commit-delay USECS   hold a batch up to USECS for the clients just answered,\n"
    "                             0..100000 (default: 0 on LMDB, 500 on PostgreSQL)\n"
    "      --megadeal-rate N      MEGADEAL grants in any second, 1..1000 (default 10)\n"
    "      --megadeal-concurrency N MEGADEAL grants in flight at once, 1..1000 (default 5)\n"
    "      --megadeal-wait SECS   MEGADEAL task deadline, 1..3600 (default 10)\n"
    "      --min-validity SECS    REQUEST never assigns a coupon expiring sooner (default 0)\n"
    "      --id-retention SECS    keep request ids' outcomes this long, 1..31536000\n"
    "                             (default 86400)\n"
    "      --metrics-listen ADDR:PORT serve GET /metrics (Prometheus) there; [ADDR]:PORT for\n"
    "                             IPv6, port 0 picks a free one (default: off)\n"
    "      --tls-port PORT        also listen for TLS 1.2/1.3 on PORT (0 picks a free one);\n"
    "                             needs --tls-cert and --tls-key (default: off)\n"
    "      --tls-cert FILE        PEM certificate (and chain) of the TLS listener\n"
    "      --tls-key FILE         PEM private key of --tls-cert; SIGHUP reloads both\n"
    "      --tls-ca FILE          require client certificates signed by this PEM CA\n"
    "      --tls-only             no plain listener: --tls-port is the only one\n"
    "      --require-auth         service commands need AUTH (default: on when listening\n"
    "                             on an address other than loopback)\n"
    "      --no-require-auth      service commands are open without AUTH\n"
    "      --check                check the store (DIR's, or --store's) and exit\n"
    "      --verify-audit         recompute the audit chain in DIR, check its head's\n"
    "                             signature by DIR/audit.key, and exit\n"
    "      --audit-head 'seq=N hash=H sig=S'\n"
    "                             with --verify-audit: an AUDIT reply the chain must hold\n"
    "  -V, --version              print the version and exit\n"
    "  -h, --help                 print this help and exit\n";

/* Parses a whole decimal number in [min, max]; false on anything else. */
static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* A byte size with an optional K, M, G or T suffix (powers of 1024). */
static bool
parse_size(const char *s, uint64_t *out)
{
    static const char suffixes[] = "KMGT";
    char num[32];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof num)
        return false;
    memcpy(num, s, len + 1);
    unsigned shift = 0;
    char last = (char)(num[len - 1] & ~0x20); /* upper case */
    const char *suf = last ? strchr(suffixes, last) : NULL;
    if (suf) {
        shift = 10 * (unsigned)(suf - suffixes + 1);
        num[len - 1] = '\0';
    }
    uint64_t v;
    if (!parse_u64(num, 1, UINT64_MAX >> shift, &v))
        return false;
    *out = v << shift;
    return true;
}

/* An IPv6 literal, with an optional %zone (fe80::1%eth0). */
static bool
ipv6_literal(const char *s)
{
    char addr[OPTS_HOST_MAX + 1];
    size_t n = strcspn(s, "%");
    if (n >= sizeof addr)
        return false;
    memcpy(addr, s, n);
    addr[n] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return false;
    if (s[n] == '\0')
        return true;
    const char *zone = s + n + 1;
    if (*zone == '\0')
        return false;
    for (; *zone; zone++)
        if (!isalnum((unsigned char)*zone) && !strchr("_.-", *zone))
            return false;
    return true;
}

/* A host name as RFC 1123 has it: dot-separated labels of 1 to 63 letters, digits, hyphens (and
 * underscores, which /etc/hosts may hold), not starting or ending with a hyphen, an optional
 * final dot, and a last label that is not all digits, so that 999.1.1.1 is a bad address, not
 * a name to look up. */
static bool
host_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > OPTS_HOST_MAX || s[0] == '.')
        return false;
    if (s[len - 1] == '.')
        len--;
    bool all_digits = true;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? s[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            label = 0;
            if (i < len)
                all_digits = true;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_')
            return false;
        if (label == 0 && ch == '-')
            return false;
        all_digits = all_digits && isdigit((unsigned char)ch);
        label++;
    }
    return !all_digits;
}

/* What --listen accepts: an IPv4 or IPv6 literal, or a well-formed host name. Whether a name
 * resolves is the listener's to find out, at start. */
static bool
listen_host_ok(const char *s)
{
    struct in_addr a4;
    return inet_pton(AF_INET, s, &a4) == 1 || ipv6_literal(s) || host_name(s);
}

/* --metrics-listen's ADDR:PORT, or [ADDR]:PORT for an IPv6 literal: the address as --listen
 * takes it, and a port 0..65535. False, and *o untouched, on anything else. */
static bool
parse_metrics_listen(struct opts *o, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    char host[OPTS_HOST_MAX + 1];
    uint64_t port;
    size_t n;

    if (colon == NULL || !parse_u64(colon + 1, 0, 65535, &port))
        return false;
    n = (size_t)(colon - arg);
    if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') {
        arg++;
        n -= 2;
        if (n >= sizeof host)
            return false;
        memcpy(host, arg, n);
        host[n] = '\0';
        if (!ipv6_literal(host))
            return false;
    } else {
        if (n == 0 || n >= sizeof host)
            return false;
        memcpy(host, arg, n);
        host[n] = '\0';
        if (strchr(host, ':') != NULL || !listen_host_ok(host))
            return false;
    }
    memcpy(o->metrics_host, host, n + 1);
    o->metrics_port = (unsigned)port;
    return true;
}

void
opts_defaults(struct opts *o)
{
    *o = (struct opts){
        .mode = OPTS_MODE_SERVE,
        .listen = OPTS_LISTEN_DEFAULT,
        .port = OPTS_PORT_DEFAULT,
        .data_dir = OPTS_DATA_DIR_DEFAULT,
        .max_upload = PROTO_UPLOAD_MAX,
        .purge_interval = OPTS_PURGE_INTERVAL_DEFAULT,
        .max_clients = OPTS_MAX_CLIENTS_DEFAULT,
        .idle_timeout = OPTS_IDLE_TIMEOUT_DEFAULT,
        .map_size = STORE_MAP_SIZE_DEFAULT,
        .megadeal_rate = MEGA_RATE_DEFAULT,
        .megadeal_concurrency = MEGA_CONCURRENCY_DEFAULT,
        .megadeal_wait = MEGA_WAIT_DEFAULT,
        .id_retention = OPTS_ID_RETENTION_DEFAULT,
        .commit_delay = OPTS_COMMIT_DELAY_STORE,
        .auth_delay = OPTS_AUTH_DELAY,
    };
}

/* Applies one --megadeal-* flag; false when its value is out of range. */
static bool
set_megadeal(struct opts *o, int opt, const char *arg)
{
    uint64_t v;
    switch (opt) {
    case OPT_MEGADEAL_RATE:
        if (!parse_u64(arg, 1, MEGA_RATE_MAX, &v))
            return false;
        o->megadeal_rate = (uint32_t)v;
        return true;
    case OPT_MEGADEAL_CONCURRENCY:
        if (!parse_u64(arg, 1, MEGA_CONCURRENCY_MAX, &v))
            return false;
        o->megadeal_concurrency = (uint32_t)v;
        return true;
    default:
        if (!parse_u64(arg, 1, MEGA_WAIT_MAX, &v))
            return false;
        o->megadeal_wait = (uint32_t)v;
        return true;
    }
}

/* Applies one numeric flag; false when its value is out of range. */
static bool
set_number(struct opts *o, int opt, const char *arg)
{
    uint64_t v;
    switch (opt) {
    case 'p':
    case OPT_TLS_PORT:
        if (!parse_u64(arg, 0, 65535, &v))
            return false;
        *(opt == 'p' ? &o->port : &o->tls_port) = (unsigned)v;
        o->tls = o->tls || opt == OPT_TLS_PORT;
        o->port_given = o->port_given || opt == 'p';
        return true;
    case OPT_MAX_UPLOAD:
        if (!parse_u64(arg, 1, PROTO_UPLOAD_MAX, &v))
            return false;
        o->max_upload = (uint32_t)v;
        return true;
    case OPT_PURGE_INTERVAL:
    case OPT_IDLE_TIMEOUT:
        if (!parse_u64(arg, 0, OPTS_SECONDS_MAX, &v))
            return false;
        *(opt == OPT_PURGE_INTERVAL ? &o->purge_interval : &o->idle_timeout) = (uint32_t)v;
        return true;
    case OPT_MIN_VALIDITY:
        if (!parse_u64(arg, 0, OPTS_SECONDS_MAX, &v))
            return false;
        o->min_validity = (uint32_t)v;
        return true;
    case OPT_ID_RETENTION:
        if (!parse_u64(arg, 1, OPTS_SECONDS_MAX, &v))
            return false;
        o->id_retention = (uint32_t)v;
        return true;
    case OPT_COMMIT_DELAY:
        if (!parse_u64(arg, 0, OPTS_COMMIT_DELAY_MAX, &v))
            return false;
        o->commit_delay = (int32_t)v;
        return true;
    case OPT_MAX_CLIENTS:
        if (!parse_u64(arg, 1, OPTS_MAX_CLIENTS_MAX, &v))
            return false;
        o->max_clients = (uint32_t)v;
        return true;
    case OPT_MAP_SIZE:
        if (!parse_size(arg, &v) || v < STORE_MAP_SIZE_MIN)
            return false;
        o->map_size = v;
        return true;
    case OPT_MEGADEAL_RATE:
    case OPT_MEGADEAL_CONCURRENCY:
    case OPT_MEGADEAL_WAIT:
        return set_megadeal(o, opt, arg);
    default:
        return false;
    }
}

/* The URI schemes --store takes: libpq's two spellings (store.h). */
static bool
pg_uri(const char *s)
{
    return strncmp(s, "postgresql:", strlen("postgresql:")) == 0 ||
           strncmp(s, "postgres:", strlen("postgres:")) == 0;
}

bool
opts_node_name_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > STORE_NODE_MAX)
        return false;
    for (; *s != '\0'; s++)
        if (*s <= ' ' || *s > '~')
            return false;
    return true;
}

bool
opts_default_node_name(struct opts *o, char *buf, size_t len, char *errbuf, size_t errlen)
{
    if (o->node_name != NULL)
        return true;
    if (len == 0 || gethostname(buf, len) != 0)
        snprintf(buf, len, "%s", "");
    buf[len - 1] = '\0';
    if (!opts_node_name_ok(buf)) {
        snprintf(errbuf, errlen,
                 "the host name \"%.*s\" is no node name (1 to %d printable characters, no "
                 "spaces): give one with --node-name",
                 STORE_NODE_MAX, buf, STORE_NODE_MAX);
        return false;
    }
    o->node_name = buf;
    return true;
}

const char *
opts_store_uri(const struct opts *o)
{
    return o->store_uri != NULL ? o->store_uri : o->data_dir;
}

unsigned
opts_commit_delay_us(const struct opts *o, unsigned store_default)
{
    return o->commit_delay == OPTS_COMMIT_DELAY_STORE ? store_default : (unsigned)o->commit_delay;
}

/* Applies --store or --node-name; false with a reason in errbuf when the value is bad. */
static bool
set_store(struct opts *o, int opt, const char *arg, char *errbuf, size_t errlen)
{
    if (opt == OPT_STORE && !pg_uri(arg)) {
        snprintf(errbuf, errlen,
                 "bad value for --store: not a postgresql:// or postgres:// URI (LMDB, the "
                 "default, lives in --data-dir)");
        return false;
    }
    if (opt == OPT_NODE_NAME && !opts_node_name_ok(arg)) {
        snprintf(errbuf, errlen,
                 "bad value '%s' for --node-name: 1 to %d printable characters, no spaces", arg,
                 STORE_NODE_MAX);
        return false;
    }
    *(opt == OPT_STORE ? &o->store_uri : &o->node_name) = arg;
    return true;
}

/* --tls-cert, --tls-key, --tls-ca: a path, checked when the server starts. */
static bool
set_tls_file(struct opts *o, int opt, const char *arg)
{
    if (opt != OPT_TLS_CERT && opt != OPT_TLS_KEY && opt != OPT_TLS_CA)
        return false;
    *(opt == OPT_TLS_CERT ? &o->tls_cert : opt == OPT_TLS_KEY ? &o->tls_key : &o->tls_ca) = arg;
    return true;
}

/* The TLS flags go together: a port needs a certificate and a key, and those need a port;
 * --tls-only needs a TLS port and no plain one. */
static bool
tls_flags_ok(const struct opts *o, char *errbuf, size_t errlen)
{
    bool files = o->tls_cert != NULL || o->tls_key != NULL || o->tls_ca != NULL;

    if (!o->tls && files)
        snprintf(errbuf, errlen, "--tls-cert, --tls-key and --tls-ca go with --tls-port");
    else if (o->tls && (o->tls_cert == NULL || o->tls_key == NULL))
        snprintf(errbuf, errlen, "--tls-port needs --tls-cert FILE and --tls-key FILE");
    else if (o->tls_only && !o->tls)
        snprintf(errbuf, errlen, "--tls-only needs --tls-port and its files");
    else if (o->tls_only && o->port_given)
        snprintf(errbuf, errlen,
                 "--port and --tls-only do not go together: --tls-only opens "
                 "no plain listener");
    else if (o->tls && !o->tls_only && o->tls_port == o->port && o->port != 0)
        snprintf(errbuf, errlen, "--tls-port must differ from --port");
    else
        return true;
    return false;
}

static const char *
flag_name(int opt)
{
    for (const struct option *lo = long_options; lo->name; lo++)
        if (lo->val == opt)
            return lo->name;
    return "?";
}

/* After the flags: `key ...` (the keys file's subcommands) or no operand, and the flags that go
 * together. */
static enum opts_result
finish(struct opts *o, int argc, char **argv, char *errbuf, size_t errlen)
{
    if (optind < argc && strcmp(argv[optind], "key") == 0 && o->mode == OPTS_MODE_SERVE) {
        o->mode = OPTS_MODE_KEY;
        o->key_argc = argc - optind - 1;
        o->key_argv = argv + optind + 1;
        optind = argc;
    }
    if (optind < argc) {
        snprintf(errbuf, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return OPTS_USAGE;
    }
    if (*o->data_dir == '\0') {
        snprintf(errbuf, errlen, "--data-dir must not be empty");
        return OPTS_USAGE;
    }
    if (!tls_flags_ok(o, errbuf, errlen))
        return OPTS_USAGE;
    if (o->audit_head != NULL && o->mode != OPTS_MODE_VERIFY_AUDIT) {
        snprintf(errbuf, errlen, "--audit-head goes with --verify-audit (see --help)");
        return OPTS_USAGE;
    }
    return OPTS_RUN;
}

enum opts_result
opts_parse(struct opts *o, int argc, char **argv, void *out, char *errbuf, size_t errlen)
{
    FILE *fp = out;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":l:p:d:Vh", long_options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (!listen_host_ok(optarg)) {
                snprintf(errbuf, errlen,
                         "bad value '%s' for --listen: not an IPv4 or IPv6 address or a host name "
                         "(see --help)",
                         optarg);
                return OPTS_USAGE;
            }
            o->listen = optarg;
            break;
        case 'd':
            o->data_dir = optarg;
            break;
        case OPT_LOG:
            o->log_path = optarg;
            break;
        case OPT_CHECK:
            o->mode = OPTS_MODE_CHECK;
            break;
        case OPT_VERIFY_AUDIT:
            o->mode = OPTS_MODE_VERIFY_AUDIT;
            break;
        case OPT_AUDIT_HEAD:
            o->audit_head = optarg;
            break;
        case OPT_LOG_READS:
            o->log_reads = true;
            break;
        case OPT_TLS_ONLY:
            o->tls_only = true;
            break;
        case OPT_REQUIRE_AUTH:
        case OPT_NO_REQUIRE_AUTH:
            o->require_auth =
                opt == OPT_REQUIRE_AUTH ? OPTS_REQUIRE_AUTH_ON : OPTS_REQUIRE_AUTH_OFF;
            break;
        case OPT_STORE:
        case OPT_NODE_NAME:
            if (!set_store(o, opt, optarg, errbuf, errlen))
                return OPTS_USAGE;
            break;
        case OPT_METRICS_LISTEN:
            if (!parse_metrics_listen(o, optarg)) {
                snprintf(errbuf, errlen,
                         "bad value '%s' for --metrics-listen: not ADDR:PORT or [IPv6]:PORT "
                         "(see --help)",
                         optarg);
                return OPTS_USAGE;
            }
            break;
        case 'V':
            fprintf(fp, "coupond %s\n", COUPOND_VERSION);
            return OPTS_EXIT_OK;
        case 'h':
            fputs(usage_text, fp);
            return OPTS_EXIT_OK;
        case ':':
            snprintf(errbuf, errlen, "option %s needs a value", argv[optind - 1]);
            return OPTS_USAGE;
        case '?':
            snprintf(errbuf, errlen, "unknown option %s (see --help)", argv[optind - 1]);
            return OPTS_USAGE;
        default:
            if (set_tls_file(o, opt, optarg))
                break;
            if (!set_number(o, opt, optarg)) {
                snprintf(errbuf, errlen, "bad value '%s' for --%s (see --help)", optarg,
                         flag_name(opt));
                return OPTS_USAGE;
            }
        }
    }
    return finish(o, argc, argv, errbuf, errlen);
}
