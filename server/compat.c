/* compat.c - HELLO, INFO, CLIENT, COMMAND, CONFIG, SELECT and ECHO for Redis clients (see
 * compat.h). */
#include "compat.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "stat.h"

/* ---- small helpers ---- */

static bool
word_is(const struct proto_word *w, const char *s)
{
    return w->len == strlen(s) && strncasecmp(w->p, s, w->len) == 0;
}

/* Keeps a client-given word as `out` shows it: at most COMPAT_NAME_MAX bytes, each byte
 * outside printable ASCII without blanks shown as '?', so that CLIENT INFO stays one line of
 * key=value words whatever a client sent. */
static void
keep_name(char out[COMPAT_NAME_MAX + 1], const struct proto_word *w)
{
    size_t n = w->len < COMPAT_NAME_MAX ? w->len : COMPAT_NAME_MAX;

    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)w->p[i];
        out[i] = b >= 0x21 && b <= 0x7e ? (char)b : '?';
    }
    out[n] = '\0';
}

static enum proto_err refuse(char *msg, size_t cap, enum proto_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum proto_err
refuse(char *msg, size_t cap, enum proto_err err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return err;
}

static int
resp_version(const struct compat_client *cl)
{
    return cl->resp == PROTO_FORM_RESP3 ? 3 : 2;
}

/* ---- HELLO ---- */

void
compat_hello(const struct compat_call *r)
{
    struct compat_client *cl = r->client;

    if (r->preq->protover != 0) {
        cl->resp = r->preq->protover == 3 ? PROTO_FORM_RESP3 : PROTO_FORM_RESP2;
        if (*r->form != PROTO_FORM_LINE) /* Redis answers HELLO 3 in RESP3 already */
            *r->form = cl->resp;
    }
    if (r->preq->setname)
        keep_name(cl->name, &r->preq->words[0]);
}

static void
reply_hello(const struct compat_call *r, struct proto_out *o)
{
    const struct compat_client *cl = r->client;

    if (!proto_out_is_resp(o)) {
        proto_out_begin(o, "OK");
        proto_out_field(o, "server", "coupond");
        proto_out_field(o, "version", COMPAT_REDIS_VERSION);
        proto_out_field_u64(o, "proto", (uint64_t)resp_version(cl));
        proto_out_field_u64(o, "id", cl->conn);
        proto_out_field(o, "mode", "standalone");
        proto_out_field(o, "role", "master");
        proto_out_end(o);
        return;
    }
    /* Redis's map, in its order. */
    static const char *const keys[] = {"server", "version", "proto",  "id",
                                       "mode",   "role",    "modules"};
    proto_out_resp_map(o, sizeof keys / sizeof keys[0]);
    proto_out_resp_bulk(o, keys[0], strlen(keys[0]));
    proto_out_resp_bulk(o, "coupond", strlen("coupond"));
    proto_out_resp_bulk(o, keys[1], strlen(keys[1]));
    proto_out_resp_bulk(o, COMPAT_REDIS_VERSION, strlen(COMPAT_REDIS_VERSION));
    proto_out_resp_bulk(o, keys[2], strlen(keys[2]));
    proto_out_resp_int(o, resp_version(cl));
    proto_out_resp_bulk(o, keys[3], strlen(keys[3]));
    proto_out_resp_int(o, (int64_t)cl->conn);
    proto_out_resp_bulk(o, keys[4], strlen(keys[4]));
    proto_out_resp_bulk(o, "standalone", strlen("standalone"));
    proto_out_resp_bulk(o, keys[5], strlen(keys[5]));
    proto_out_resp_bulk(o, "master", strlen("master"));
    proto_out_resp_bulk(o, keys[6], strlen(keys[6]));
    proto_out_resp_array(o, 0);
}

/* ---- INFO ---- */

/* INFO's sections, in the order they are written. */
enum info_section {
    INFO_SERVER = 0,
    INFO_CLIENTS,
    INFO_PERSISTENCE,
    INFO_STATS,
    INFO_REPLICATION,
    INFO_COUPOND,
    INFO_KEYSPACE,
    INFO_NSECTIONS
};

static const char *const info_names[INFO_NSECTIONS] = {
    "Server", "Clients", "Persistence", "Stats", "Replication", "Coupond", "Keyspace"};

#define INFO_ALL ((1u << INFO_NSECTIONS) - 1)

/* INFO's argument: a section by name (any case), or all of them; a name that is none gives an
 * empty text, as in Redis. */
static unsigned
info_sections(const struct proto_request *req)
{
    if (req->nwords == 0)
        return INFO_ALL;
    const struct proto_word *w = &req->words[0];
    if (word_is(w, "all") || word_is(w, "everything") || word_is(w, "default"))
        return INFO_ALL;
    for (int i = 0; i < INFO_NSECTIONS; i++)
        if (word_is(w, info_names[i]))
            return 1u << i;
    return 0;
}

/* A growing text of at most COMPAT_INFO_MAX bytes; what does not fit is left out. */
struct text {
    char buf[COMPAT_INFO_MAX];
    size_t len;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct text *t, const char *fmt, ...)
{
    va_list ap;

    if (t->len >= sizeof t->buf)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
}

/* Every STATS counter, under its STATS name. */
static void
info_counters(struct text *t, const struct proto_stats *s)
{
    for (int i = 0; i < PROTO_NSTATS; i++) {
        const struct proto_stat_def *d = &proto_stat_defs[i];
        if (!d->per_type) {
            put(t, "%s:%" PRIu64 "\r\n", d->name, s->v[i][0]);
            continue;
        }
        for (int k = 0; k < PROTO_NTYPES; k++)
            put(t, "%s.%s:%" PRIu64 "\r\n", d->name, proto_type_name((enum proto_type)k),
                s->v[i][k]);
    }
}

/* One section's fields, Redis's names where Redis has the field, so that clients read them. */
static void
info_section(struct text *t, enum info_section sec, const struct compat_call *r)
{
    const struct opts *op = r->opts;
    const struct proto_stats *s = r->stats;
    uint64_t up = s->v[PROTO_STAT_UPTIME][0];

    put(t, "# %s\r\n", info_names[sec]);
    switch (sec) {
    case INFO_SERVER:
        put(t, "redis_version:%s\r\nredis_mode:standalone\r\ncoupond_version:%s\r\n",
            COMPAT_REDIS_VERSION, COUPOND_VERSION);
        put(t, "arch_bits:%zu\r\nprocess_id:%ld\r\ntcp_port:%u\r\n", sizeof(void *) * 8,
            (long)getpid(), op->port);
        put(t, "uptime_in_seconds:%" PRIu64 "\r\nuptime_in_days:%" PRIu64 "\r\n", up, up / 86400);
        break;
    case INFO_CLIENTS:
        put(t, "connected_clients:%" PRIu64 "\r\nmaxclients:%" PRIu32 "\r\n",
            s->v[PROTO_STAT_CONNECTIONS][0], op->max_clients);
        break;
    case INFO_PERSISTENCE: /* every write is on disk before its reply, like appendfsync always */
        put(t, "loading:0\r\naof_enabled:1\r\n");
        break;
    case INFO_STATS:
        put(t, "total_connections_received:%" PRIu64 "\r\n", s->v[PROTO_STAT_CONNECTIONS_TOTAL][0]);
        put(t, "total_commands_processed:%" PRIu64 "\r\n", s->v[PROTO_STAT_COMMANDS][0]);
        put(t, "rejected_connections:%" PRIu64 "\r\n", s->v[PROTO_STAT_CLIENTS_REJECTED][0]);
        break;
    case INFO_REPLICATION:
        put(t, "role:master\r\nconnected_slaves:0\r\n");
        break;
    case INFO_COUPOND:
        info_counters(t, s);
        break;
    case INFO_KEYSPACE: /* coupond keeps no Redis keys */
    case INFO_NSECTIONS:
        break;
    }
}

static void
reply_info(const struct compat_call *r, struct proto_out *o)
{
    struct text t = {.len = 0};
    bool first = true;

    for (int i = 0; i < INFO_NSECTIONS; i++) {
        if (!(r->st->sections & (1u << i)))
            continue;
        if (!first)
            put(&t, "\r\n");
        first = false;
        info_section(&t, (enum info_section)i, r);
    }
    if (proto_out_is_resp(o)) {
        proto_out_resp_bulk(o, t.buf, t.len);
        return;
    }
    /* The line form: one INFO line per line of the text, blank ones left out. */
    for (size_t at = 0; at < t.len;) {
        const char *eol = memchr(t.buf + at, '\r', t.len - at);
        size_t n = eol != NULL ? (size_t)(eol - (t.buf + at)) : t.len - at;
        if (n > 0) {
            char line[256];
            snprintf(line, sizeof line, "%.*s", (int)n, t.buf + at);
            proto_out_begin(o, "INFO");
            proto_out_text(o, line);
            proto_out_end(o);
        }
        at += n + 2;
    }
    proto_out_ok(o);
}

/* ---- CLIENT ---- */

/* One client's line for CLIENT INFO and CLIENT LIST, as Redis writes it (less what coupond has
 * not), newline included. */
static size_t
client_line(const struct compat_call *r, char *buf, size_t cap)
{
    const struct compat_client *cl = r->client;
    double age = r->now - cl->since;
    int n = snprintf(buf, cap,
                     "id=%" PRIu64 " addr=%s name=%s age=%.0f db=0 resp=%d lib-name=%s "
                     "lib-ver=%s\n",
                     cl->conn, cl->peer != NULL ? cl->peer : "?", cl->name, age < 0 ? 0. : age,
                     resp_version(cl), cl->lib_name, cl->lib_ver);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* The CLIENT subcommands and the words each takes after it. */
static const struct {
    const char *name;
    size_t min, max;
} client_subs[] = {
    {"SETNAME", 1, 1}, {"GETNAME", 0, 0}, {"SETINFO", 2, 2},  {"ID", 0, 0},
    {"INFO", 0, 0},    {"LIST", 0, 2},    {"NO-EVICT", 1, 1}, {"NO-TOUCH", 1, 1},
};

static enum proto_err
start_client(const struct compat_call *r, char *msg, size_t cap)
{
    const struct proto_request *q = r->preq;
    struct compat_client *cl = r->client;
    size_t i = 0, n = sizeof client_subs / sizeof client_subs[0];

    while (i < n && strcmp(q->sub, client_subs[i].name) != 0)
        i++;
    if (i == n) /* KILL, PAUSE, REPLY, TRACKING ...: nothing coupond does */
        return refuse(msg, cap, PROTO_ERR_UNKNOWN_COMMAND, "CLIENT %s is not supported", q->sub);
    if (q->nwords < client_subs[i].min || q->nwords > client_subs[i].max)
        return refuse(msg, cap, PROTO_ERR_BAD_REQUEST, "wrong number of arguments for CLIENT %s",
                      q->sub);
    if (strcmp(q->sub, "SETNAME") == 0)
        keep_name(cl->name, &q->words[0]);
    if (strcmp(q->sub, "SETINFO") != 0)
        return PROTO_OK;
    if (word_is(&q->words[0], "lib-name"))
        keep_name(cl->lib_name, &q->words[1]);
    else if (word_is(&q->words[0], "lib-ver"))
        keep_name(cl->lib_ver, &q->words[1]);
    else
        return refuse(msg, cap, PROTO_ERR_BAD_REQUEST, "CLIENT SETINFO takes LIB-NAME or LIB-VER");
    return PROTO_OK;
}

static void
reply_client(const struct compat_call *r, struct proto_out *o)
{
    const struct compat_client *cl = r->client;
    const char *sub = r->preq->sub;
    char line[512];

    if (strcmp(sub, "ID") == 0) {
        if (!proto_out_is_resp(o)) {
            proto_out_begin(o, "OK");
            proto_out_field_u64(o, "id", cl->conn);
            proto_out_end(o);
        }
        proto_out_resp_int(o, (int64_t)cl->conn);
    } else if (strcmp(sub, "GETNAME") == 0) {
        if (!proto_out_is_resp(o)) {
            proto_out_begin(o, "OK");
            if (cl->name[0] != '\0')
                proto_out_field(o, "name", cl->name);
            proto_out_end(o);
        } else if (cl->name[0] != '\0') {
            proto_out_resp_bulk(o, cl->name, strlen(cl->name));
        } else {
            proto_out_resp_null(o);
        }
    } else if (strcmp(sub, "INFO") == 0 || strcmp(sub, "LIST") == 0) {
        /* LIST shows this connection only: a client is not told of the others. */
        size_t n = client_line(r, line, sizeof line);
        if (proto_out_is_resp(o)) {
            proto_out_resp_bulk(o, line, n);
            return;
        }
        line[n > 0 ? n - 1 : 0] = '\0';
        proto_out_begin(o, "INFO");
        proto_out_text(o, line);
        proto_out_end(o);
        proto_out_ok(o);
    } else {
        proto_out_ok(o);
    }
}

/* ---- COMMAND ---- */

/* A verb's name as Redis lists commands: lower case. */
static size_t
verb_lower(enum proto_cmd c, char *buf, size_t cap)
{
    const char *name = proto_verbs[c].name;
    size_t n = 0;

    for (; name[n] != '\0' && n + 1 < cap; n++)
        buf[n] = name[n] >= 'A' && name[n] <= 'Z' ? (char)(name[n] - 'A' + 'a') : name[n];
    buf[n] = '\0';
    return n;
}

/* Redis's arity: the verb and its arguments, negative when that is a minimum. */
static int64_t
verb_arity(enum proto_cmd c)
{
    const struct proto_verb *v = &proto_verbs[c];
    bool fixed = v->min_args == v->max_args && c != PROTO_CMD_UPLOAD && c != PROTO_CMD_REQUEST &&
                 c != PROTO_CMD_REDEEM && c != PROTO_CMD_HOLD && c != PROTO_CMD_RELEASE &&
                 c != PROTO_CMD_UNREDEEM && c != PROTO_CMD_GENERATE && c != PROTO_CMD_EXPORT;

    return fixed ? v->min_args + 1 : -(int64_t)(v->min_args + 1);
}

/* One verb as COMMAND and COMMAND INFO give it: the six fields of Redis's older replies (name,
 * arity, flags, first key, last key, key step), which every client reads; coupond has no keys. */
static void
command_entry(struct proto_out *o, enum proto_cmd c)
{
    char name[32];
    size_t n = verb_lower(c, name, sizeof name);

    proto_out_resp_array(o, 6);
    proto_out_resp_bulk(o, name, n);
    proto_out_resp_int(o, verb_arity(c));
    proto_out_resp_array(o, 0);
    proto_out_resp_int(o, 0);
    proto_out_resp_int(o, 0);
    proto_out_resp_int(o, 0);
}

static enum proto_err
start_command(const struct compat_call *r, char *msg, size_t cap)
{
    const struct proto_request *q = r->preq;
    static const char *const subs[] = {"", "COUNT", "LIST", "INFO", "DOCS"};
    bool known = false;

    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        known = known || strcmp(q->sub, subs[i]) == 0;
    if (!known) /* GETKEYS, GETKEYSANDFLAGS: coupond has no keys */
        return refuse(msg, cap, PROTO_ERR_UNKNOWN_COMMAND, "COMMAND %s is not supported", q->sub);
    r->st->nverbs = q->nwords;
    for (size_t i = 0; i < q->nwords; i++) {
        r->st->verbs[i] = -1;
        for (int c = 0; c < PROTO_NCMDS; c++)
            if (word_is(&q->words[i], proto_verbs[c].name))
                r->st->verbs[i] = (int8_t)c;
    }
    return PROTO_OK;
}

/* The line form: one "INFO name arity" line per verb, as COMMAND and COMMAND INFO list them. */
static void
command_lines(struct proto_out *o, const struct compat_req *cr)
{
    size_t n = cr->nverbs > 0 ? cr->nverbs : PROTO_NCMDS;

    for (size_t i = 0; i < n; i++) {
        int c = cr->nverbs > 0 ? cr->verbs[i] : (int)i;
        if (c < 0)
            continue;
        char text[64];
        snprintf(text, sizeof text, "%s %lld", proto_verbs[c].name,
                 (long long)verb_arity((enum proto_cmd)c));
        proto_out_begin(o, "INFO");
        proto_out_text(o, text);
        proto_out_end(o);
    }
    proto_out_ok(o);
}

static void
reply_command(const struct compat_call *r, struct proto_out *o)
{
    const struct compat_req *cr = r->st;
    const char *sub = r->preq->sub;
    char name[32];

    if (strcmp(sub, "COUNT") == 0) {
        if (!proto_out_is_resp(o)) {
            proto_out_begin(o, "OK");
            proto_out_field_u64(o, "count", PROTO_NCMDS);
            proto_out_end(o);
        }
        proto_out_resp_int(o, PROTO_NCMDS);
        return;
    }
    if (!proto_out_is_resp(o)) {
        if (strcmp(sub, "DOCS") == 0)
            proto_out_ok(o); /* HELP describes the verbs */
        else
            command_lines(o, cr);
        return;
    }
    if (strcmp(sub, "DOCS") == 0) { /* no documents: HELP describes the verbs */
        proto_out_resp_map(o, 0);
        return;
    }
    if (strcmp(sub, "LIST") == 0) {
        proto_out_resp_array(o, PROTO_NCMDS);
        for (int c = 0; c < PROTO_NCMDS; c++)
            proto_out_resp_bulk(o, name, verb_lower((enum proto_cmd)c, name, sizeof name));
        return;
    }
    /* COMMAND, and COMMAND INFO (of every verb, or of those named: a null for an unknown one) */
    size_t n = cr->nverbs > 0 ? cr->nverbs : PROTO_NCMDS;
    proto_out_resp_array(o, n);
    for (size_t i = 0; i < n; i++) {
        int c = cr->nverbs > 0 ? cr->verbs[i] : (int)i;
        if (c < 0)
            proto_out_resp_null(o);
        else
            command_entry(o, (enum proto_cmd)c);
    }
}

/* ---- CONFIG GET ---- */

/* The parameters CONFIG GET shows: Redis's names for what coupond has (so that tools such as
 * redis-benchmark, which ask for save and appendonly, read what they expect), then coupond's own
 * flags by their names. */
enum config_param {
    CONF_SAVE = 0,
    CONF_APPENDONLY,
    CONF_APPENDFSYNC,
    CONF_DATABASES,
    CONF_PORT,
    CONF_BIND,
    CONF_MAXCLIENTS,
    CONF_TIMEOUT,
    CONF_MAX_UPLOAD,
    CONF_PURGE_INTERVAL,
    CONF_MEGADEAL_RATE,
    CONF_MEGADEAL_CONCURRENCY,
    CONF_MEGADEAL_WAIT,
    CONF_MIN_VALIDITY,
    CONF_ID_RETENTION,
    CONF_NPARAMS
};

static const char *const config_names[CONF_NPARAMS] = {
    "save",          "appendonly",           "appendfsync",   "databases",    "port",
    "bind",          "maxclients",           "timeout",       "max-upload",   "purge-interval",
    "megadeal-rate", "megadeal-concurrency", "megadeal-wait", "min-validity", "id-retention"};

_Static_assert(CONF_NPARAMS <= 32, "the parameters matched fit a bit each");

/* A parameter's value, as text. */
static void
config_value(const struct opts *op, enum config_param p, char *buf, size_t cap)
{
    const uint32_t nums[CONF_NPARAMS] = {
        [CONF_DATABASES] = 1,
        [CONF_PORT] = op->port,
        [CONF_MAXCLIENTS] = op->max_clients,
        [CONF_TIMEOUT] = op->idle_timeout,
        [CONF_MAX_UPLOAD] = op->max_upload,
        [CONF_PURGE_INTERVAL] = op->purge_interval,
        [CONF_MEGADEAL_RATE] = op->megadeal_rate,
        [CONF_MEGADEAL_CONCURRENCY] = op->megadeal_concurrency,
        [CONF_MEGADEAL_WAIT] = op->megadeal_wait,
        [CONF_MIN_VALIDITY] = op->min_validity,
        [CONF_ID_RETENTION] = op->id_retention,
    };

    switch (p) {
    case CONF_SAVE: /* no snapshots: every write is committed before its reply */
        snprintf(buf, cap, "%s", "");
        break;
    case CONF_APPENDONLY:
        snprintf(buf, cap, "%s", "yes");
        break;
    case CONF_APPENDFSYNC:
        snprintf(buf, cap, "%s", "always");
        break;
    case CONF_BIND:
        snprintf(buf, cap, "%s", op->listen != NULL ? op->listen : "");
        break;
    default:
        snprintf(buf, cap, "%" PRIu32, nums[p]);
    }
}

static enum proto_err
start_config(const struct compat_call *r, char *msg, size_t cap)
{
    const struct proto_request *q = r->preq;

    if (strcmp(q->sub, "GET") != 0) /* SET, RESETSTAT, REWRITE */
        return refuse(msg, cap, PROTO_ERR_UNKNOWN_COMMAND,
                      "CONFIG %s is not supported: coupond is configured by its command line",
                      q->sub);
    r->st->params = 0;
    for (size_t i = 0; i < q->nwords; i++) {
        char pat[PROTO_MAX_LINE + 1];
        snprintf(pat, sizeof pat, "%.*s", (int)q->words[i].len, q->words[i].p);
        for (int p = 0; p < CONF_NPARAMS; p++)
            if (fnmatch(pat, config_names[p], FNM_CASEFOLD) == 0)
                r->st->params |= 1u << p;
    }
    return PROTO_OK;
}

static void
reply_config(const struct compat_call *r, struct proto_out *o)
{
    const uint32_t m = r->st->params;
    size_t n = 0;
    char val[OPTS_HOST_MAX + 1];

    for (int p = 0; p < CONF_NPARAMS; p++)
        n += (m >> p) & 1u;
    /* A map of the parameters matched (RESP2: a flat array); in lines, their fields. */
    if (proto_out_is_resp(o))
        proto_out_resp_map(o, n);
    else
        proto_out_begin(o, "OK");
    for (int p = 0; p < CONF_NPARAMS; p++) {
        if (!((m >> p) & 1u))
            continue;
        config_value(r->opts, (enum config_param)p, val, sizeof val);
        proto_out_resp_bulk(o, config_names[p], strlen(config_names[p]));
        proto_out_resp_bulk(o, val, strlen(val));
        if (!proto_out_is_resp(o))
            proto_out_field(o, config_names[p], val);
    }
    if (!proto_out_is_resp(o))
        proto_out_end(o);
}

/* ---- SELECT, ECHO ---- */

static enum proto_err
start_select(const struct compat_call *r, char *msg, size_t cap)
{
    const struct proto_word *w = &r->preq->words[0];
    bool digits = w->len > 0;

    for (size_t i = 0; i < w->len; i++)
        digits = digits && w->p[i] >= '0' && w->p[i] <= '9';
    if (!digits)
        return refuse(msg, cap, PROTO_ERR_BAD_REQUEST, "value is not an integer or out of range");
    for (size_t i = 0; i < w->len; i++)
        if (w->p[i] != '0')
            return refuse(msg, cap, PROTO_ERR_BAD_REQUEST,
                          "DB index is out of range: coupond has database 0 only");
    return PROTO_OK;
}

static enum proto_err
start_echo(const struct compat_call *r, char *msg, size_t cap)
{
    const struct proto_word *w = &r->preq->words[0];

    if (w->len > COMPAT_ECHO_MAX)
        return refuse(msg, cap, PROTO_ERR_BAD_REQUEST, "ECHO takes at most %d bytes",
                      COMPAT_ECHO_MAX);
    memcpy(r->st->echo, w->p, w->len);
    r->st->echo_len = w->len;
    return PROTO_OK;
}

static void
reply_echo(const struct compat_call *r, struct proto_out *o)
{
    const struct compat_req *cr = r->st;

    if (proto_out_is_resp(o)) {
        proto_out_resp_bulk(o, cr->echo, cr->echo_len);
        return;
    }
    /* A line's message is a word; a field, so that no message reads as a status (OK BYE). */
    char word[COMPAT_ECHO_MAX + 1];
    snprintf(word, sizeof word, "%.*s", (int)cr->echo_len, cr->echo);
    proto_out_begin(o, "OK");
    proto_out_field(o, "echo", word);
    proto_out_end(o);
}

/* ---- dispatch ---- */

static enum proto_err
start_info(const struct compat_call *r, char *msg, size_t cap)
{
    (void)msg;
    (void)cap;
    r->st->sections = info_sections(r->preq);
    return PROTO_OK;
}

typedef enum proto_err compat_start_fn(const struct compat_call *r, char *msg, size_t cap);

static compat_start_fn *const starts[PROTO_NCMDS] = {
    [PROTO_CMD_INFO] = start_info,       [PROTO_CMD_CLIENT] = start_client,
    [PROTO_CMD_COMMAND] = start_command, [PROTO_CMD_CONFIG] = start_config,
    [PROTO_CMD_SELECT] = start_select,   [PROTO_CMD_ECHO] = start_echo,
};

enum proto_err
compat_start(const struct compat_call *r, char *msg, size_t cap)
{
    compat_start_fn *f = starts[r->preq->cmd];

    return f != NULL ? f(r, msg, cap) : PROTO_OK;
}

static compat_reply_fn *const replies[PROTO_NCMDS] = {
    [PROTO_CMD_HELLO] = reply_hello,   [PROTO_CMD_INFO] = reply_info,
    [PROTO_CMD_CLIENT] = reply_client, [PROTO_CMD_COMMAND] = reply_command,
    [PROTO_CMD_CONFIG] = reply_config, [PROTO_CMD_ECHO] = reply_echo,
};

compat_reply_fn *
compat_reply_of(enum proto_cmd cmd)
{
    return (unsigned)cmd < PROTO_NCMDS ? replies[cmd] : NULL;
}
