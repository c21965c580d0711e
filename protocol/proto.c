/* proto.c - the coupond line protocol: requests and records in, reply text out.
 * Pure code: no I/O, no allocation, no state but const tables; PROTOCOL.md is the contract. */
#include "proto.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The reasons below spell these limits out; keep them in step. */
_Static_assert(PROTO_MAX_LINE == 4096, "update the TOO_LONG message");
_Static_assert(PROTO_USER_MAX == 128, "update the user reasons");
_Static_assert(PROTO_CODE_MAX == 64, "update the code reasons");
_Static_assert(PROTO_TASK_MAX == 128, "update the task reasons");
_Static_assert(PROTO_KEY_MAX == 128, "update the key reason");
_Static_assert(PROTO_USES_MAX == 1000000, "update the max_uses reason");
_Static_assert(PROTO_PERCENT_MAX_CENTS == 10000, "update the percentage reason");
_Static_assert(PROTO_FLAT_MAX_CENTS == 100000000000LL, "update the FLAT reason");
_Static_assert(PROTO_RID_MAX == 64, "update the request id reason");
_Static_assert(PROTO_HOLD_SECONDS_MAX == 86400, "update the seconds reason");
_Static_assert(PROTO_PREFIX_MAX == 16, "update the prefix reason");
_Static_assert(PROTO_PATH_MAX == 512, "update the path reason");
_Static_assert(PROTO_PATH_MAX + 16 < PROTO_REQUEST_BUF, "BACKUP's canonical line fits");
_Static_assert(PROTO_GEN_LENGTH_MIN == 6 && PROTO_GEN_LENGTH_MAX == 32, "update the length reason");
_Static_assert(PROTO_PREFIX_MAX + PROTO_GEN_LENGTH_MAX <= PROTO_CODE_MAX,
               "a generated code is a code");
_Static_assert(sizeof PROTO_GEN_ALPHABET - 1 == PROTO_GEN_ALPHABET_LEN, "the alphabet's size");

/* The most positional arguments of any verb (GENERATE's six values). */
#define ARGS_MAX 6
_Static_assert(PROTO_MAX_WORDS >= 1 + ARGS_MAX + 3, "GENERATE: verb, six values, three options");

const struct proto_verb proto_verbs[PROTO_NCMDS] = {
    [PROTO_CMD_PING] = {"PING", PROTO_CMD_PING, 0, 0, false, "PING"},
    [PROTO_CMD_HELP] = {"HELP", PROTO_CMD_HELP, 0, 0, false, "HELP"},
    [PROTO_CMD_AUTH] = {"AUTH", PROTO_CMD_AUTH, 1, 2, false, "AUTH [name] key"},
    [PROTO_CMD_REQUEST] = {"REQUEST", PROTO_CMD_REQUEST, 1, 2, false,
                           "REQUEST user [type] [id=RID]"},
    [PROTO_CMD_STATUS] = {"STATUS", PROTO_CMD_STATUS, 1, 1, false, "STATUS task"},
    [PROTO_CMD_WAIT] = {"WAIT", PROTO_CMD_WAIT, 1, 1, false, "WAIT task"},
    [PROTO_CMD_VALIDATE] = {"VALIDATE", PROTO_CMD_VALIDATE, 2, 2, false, "VALIDATE user code"},
    [PROTO_CMD_REDEEM] = {"REDEEM", PROTO_CMD_REDEEM, 2, 2, false,
                          "REDEEM user code [hold=HID] [id=RID]"},
    [PROTO_CMD_QUIT] = {"QUIT", PROTO_CMD_QUIT, 0, 0, false, "QUIT"},
    [PROTO_CMD_UPLOAD] = {"UPLOAD", PROTO_CMD_UPLOAD, 1, 1, true, "UPLOAD n [id=RID]"},
    [PROTO_CMD_PURGE] = {"PURGE", PROTO_CMD_PURGE, 0, 0, true, "PURGE"},
    [PROTO_CMD_STATS] = {"STATS", PROTO_CMD_STATS, 0, 0, true, "STATS"},
    [PROTO_CMD_HOLD] = {"HOLD", PROTO_CMD_HOLD, 2, 3, false, "HOLD user code [seconds] [id=RID]"},
    [PROTO_CMD_RELEASE] = {"RELEASE", PROTO_CMD_RELEASE, 1, 1, false, "RELEASE HID [id=RID]"},
    [PROTO_CMD_UNREDEEM] = {"UNREDEEM", PROTO_CMD_UNREDEEM, 2, 2, false,
                            "UNREDEEM user SEQ [id=RID]"},
    [PROTO_CMD_COUPONS] = {"COUPONS", PROTO_CMD_COUPONS, 1, 1, false, "COUPONS user"},
    [PROTO_CMD_COUPON] = {"COUPON", PROTO_CMD_COUPON, 1, 1, true, "COUPON code"},
    [PROTO_CMD_GENERATE] = {"GENERATE", PROTO_CMD_GENERATE, 6, 6, true,
                            "GENERATE n type discount kind expires max_uses [prefix=P] "
                            "[length=L] [id=RID]"},
    [PROTO_CMD_EXPORT] = {"EXPORT", PROTO_CMD_EXPORT, 1, 2, true,
                          "EXPORT COUPONS [type] | EXPORT HISTORY [after=SEQ] | "
                          "EXPORT AUDIT [after=SEQ]"},
    [PROTO_CMD_HELLO] = {"HELLO", PROTO_CMD_HELLO, 0, 6, false,
                         "HELLO [2|3] [AUTH name key] [SETNAME name]"},
    [PROTO_CMD_INFO] = {"INFO", PROTO_CMD_INFO, 0, 1, false, "INFO [section]"},
    [PROTO_CMD_CLIENT] = {"CLIENT", PROTO_CMD_CLIENT, 1, 3, false,
                          "CLIENT SETINFO|SETNAME|GETNAME|ID|INFO|LIST|NO-EVICT|NO-TOUCH [args]"},
    [PROTO_CMD_COMMAND] = {"COMMAND", PROTO_CMD_COMMAND, 0, 6, false,
                           "COMMAND [COUNT|LIST|DOCS|INFO [verb...]]"},
    [PROTO_CMD_CONFIG] = {"CONFIG", PROTO_CMD_CONFIG, 2, 6, false, "CONFIG GET parameter..."},
    [PROTO_CMD_SELECT] = {"SELECT", PROTO_CMD_SELECT, 1, 1, false, "SELECT 0"},
    [PROTO_CMD_ECHO] = {"ECHO", PROTO_CMD_ECHO, 1, 1, false, "ECHO message"},
    [PROTO_CMD_AUDIT] = {"AUDIT", PROTO_CMD_AUDIT, 0, 0, true, "AUDIT"},
    [PROTO_CMD_BACKUP] = {"BACKUP", PROTO_CMD_BACKUP, 1, 1, true, "BACKUP dir"},
    [PROTO_CMD_VERSION] = {"VERSION", PROTO_CMD_VERSION, 0, 0, false, "VERSION"},
};

/* What each argument position of a verb holds; the parser applies the matching value rule. */
enum arg_rule {
    ARG_NONE = 0,
    ARG_USER,
    ARG_CODE,
    ARG_TYPE,
    ARG_TASK,
    ARG_KEY,
    ARG_COUNT,
    ARG_HOLD,
    ARG_SECONDS,
    ARG_SEQ,
    ARG_DISCOUNT,
    ARG_KIND,
    ARG_EXPIRES,
    ARG_MAX_USES,
    ARG_EXPORT,
    ARG_EXPORT_TYPE, /* EXPORT COUPONS's type; EXPORT HISTORY and AUDIT take none */
    ARG_NAME,        /* a key's name (AUTH name key) */
    ARG_PROTOVER,    /* HELLO's protocol version */
    ARG_SUB,         /* a subcommand: kept in upper case */
    ARG_WORD,        /* kept as given, in req->words */
    ARG_PATH         /* BACKUP's directory */
};

static const enum arg_rule verb_args[PROTO_NCMDS][ARGS_MAX] = {
    [PROTO_CMD_AUTH] = {ARG_KEY},
    [PROTO_CMD_REQUEST] = {ARG_USER, ARG_TYPE},
    [PROTO_CMD_STATUS] = {ARG_TASK},
    [PROTO_CMD_WAIT] = {ARG_TASK},
    [PROTO_CMD_VALIDATE] = {ARG_USER, ARG_CODE},
    [PROTO_CMD_REDEEM] = {ARG_USER, ARG_CODE},
    [PROTO_CMD_UPLOAD] = {ARG_COUNT},
    [PROTO_CMD_HOLD] = {ARG_USER, ARG_CODE, ARG_SECONDS},
    [PROTO_CMD_RELEASE] = {ARG_HOLD},
    [PROTO_CMD_UNREDEEM] = {ARG_USER, ARG_SEQ},
    [PROTO_CMD_COUPONS] = {ARG_USER},
    [PROTO_CMD_COUPON] = {ARG_CODE},
    [PROTO_CMD_GENERATE] = {ARG_COUNT, ARG_TYPE, ARG_DISCOUNT, ARG_KIND, ARG_EXPIRES, ARG_MAX_USES},
    [PROTO_CMD_EXPORT] = {ARG_EXPORT, ARG_EXPORT_TYPE},
    [PROTO_CMD_HELLO] = {ARG_PROTOVER, ARG_WORD, ARG_WORD, ARG_WORD, ARG_WORD, ARG_WORD},
    [PROTO_CMD_INFO] = {ARG_WORD},
    [PROTO_CMD_CLIENT] = {ARG_SUB, ARG_WORD, ARG_WORD},
    [PROTO_CMD_COMMAND] = {ARG_SUB, ARG_WORD, ARG_WORD, ARG_WORD, ARG_WORD, ARG_WORD},
    [PROTO_CMD_CONFIG] = {ARG_SUB, ARG_WORD, ARG_WORD, ARG_WORD, ARG_WORD, ARG_WORD},
    [PROTO_CMD_SELECT] = {ARG_WORD},
    [PROTO_CMD_ECHO] = {ARG_WORD},
    [PROTO_CMD_BACKUP] = {ARG_PATH},
};
/* AUTH with two arguments: a key's name, then the key. */
static const enum arg_rule auth_named_args[ARGS_MAX] = {ARG_NAME, ARG_KEY};
_Static_assert(PROTO_WORDS_KEPT + 1 == ARGS_MAX, "a subcommand and the words after it fit");

/* Options: `name=value` words after the positional arguments. */
enum opt {
    OPT_ID = 1 << 0,
    OPT_HOLD = 1 << 1,
    OPT_PREFIX = 1 << 2,
    OPT_LENGTH = 1 << 3,
    OPT_AFTER = 1 << 4,
};

static const struct {
    const char *name;
    enum opt opt;
} opt_names[] = {{"id", OPT_ID},
                 {"hold", OPT_HOLD},
                 {"prefix", OPT_PREFIX},
                 {"length", OPT_LENGTH},
                 {"after", OPT_AFTER}};

/* The options each verb takes. */
static const unsigned verb_opts[PROTO_NCMDS] = {
    [PROTO_CMD_REQUEST] = OPT_ID,
    [PROTO_CMD_REDEEM] = OPT_HOLD | OPT_ID,
    [PROTO_CMD_UPLOAD] = OPT_ID,
    [PROTO_CMD_HOLD] = OPT_ID,
    [PROTO_CMD_RELEASE] = OPT_ID,
    [PROTO_CMD_UNREDEEM] = OPT_ID,
    [PROTO_CMD_GENERATE] = OPT_PREFIX | OPT_LENGTH | OPT_ID,
    [PROTO_CMD_EXPORT] = OPT_AFTER,
};

static const char *const err_names[PROTO_NERRS] = {
    [PROTO_OK] = "OK",
    [PROTO_ERR_BAD_REQUEST] = "BAD_REQUEST",
    [PROTO_ERR_UNKNOWN_COMMAND] = "UNKNOWN_COMMAND",
    [PROTO_ERR_TOO_LONG] = "TOO_LONG",
    [PROTO_ERR_TOO_LARGE] = "TOO_LARGE",
    [PROTO_ERR_DENIED] = "DENIED",
    [PROTO_ERR_NO_COUPONS] = "NO_COUPONS",
    [PROTO_ERR_INVALID] = "INVALID",
    [PROTO_ERR_EXPIRED] = "EXPIRED",
    [PROTO_ERR_EXHAUSTED] = "EXHAUSTED",
    [PROTO_ERR_BUSY] = "BUSY",
    [PROTO_ERR_TIMEOUT] = "TIMEOUT",
    [PROTO_ERR_BAD_TASK] = "BAD_TASK",
    [PROTO_ERR_UNKNOWN_TASK] = "UNKNOWN_TASK",
    [PROTO_ERR_BAD_BATCH] = "BAD_BATCH",
    [PROTO_ERR_INTERNAL] = "INTERNAL",
    [PROTO_ERR_ID_CONFLICT] = "ID_CONFLICT",
    [PROTO_ERR_UNKNOWN_HOLD] = "UNKNOWN_HOLD",
    [PROTO_ERR_BAD_HOLD] = "BAD_HOLD",
    [PROTO_ERR_UNKNOWN_REDEMPTION] = "UNKNOWN_REDEMPTION",
    [PROTO_ERR_UNAVAILABLE] = "UNAVAILABLE",
};

static const char *const type_names[PROTO_NTYPES] = {"NONE", "FREE", "STANDARD", "MEGADEAL"};
static const char *const kind_names[PROTO_NKINDS] = {"FLAT", "PERCENT"};

/* Bytes of an unknown verb echoed back in UNKNOWN_COMMAND's message. */
#define VERB_SHOWN 32

#define SECS_PER_DAY 86400LL

static size_t fmt_len(int n, size_t size);

/* A piece of a line: not NUL-terminated. */
struct span {
    const char *p;
    size_t len;
};

/* Character classes, ASCII only: <ctype.h> would make the wire depend on the locale. */
static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Printable ASCII without space: what a word may hold. */
static bool
is_graph(char c)
{
    unsigned char u = (unsigned char)c;
    return u >= 0x21 && u <= 0x7e;
}

static char
ascii_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* True when s[0..len) equals the NUL-terminated word, ignoring ASCII case. */
static bool
eq_nocase(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (ascii_upper(s[i]) != ascii_upper(word[i]))
            return false;
    return true;
}

static bool
eq_exact(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

/* Every parser reports its failure this way, so `why` may be NULL everywhere. */
static bool
fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return false;
}

static void
set_err(struct proto_error *err, enum proto_err code, const char *msg)
{
    err->code = code;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

/* Drops one trailing CR: telnet ends lines with CRLF and the caller has removed the LF. */
static size_t
strip_cr(const char *s, size_t len)
{
    return len > 0 && s[len - 1] == '\r' ? len - 1 : len;
}

/* Index of the first byte that is neither printable ASCII nor a blank, or len if none. */
static size_t
find_bad_byte(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_graph(s[i]) && !is_blank(s[i]))
            return i;
    return len;
}

static struct span
trim(const char *s, size_t len)
{
    while (len > 0 && is_blank(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_blank(s[len - 1]))
        len--;
    return (struct span){s, len};
}

/* Splits on runs of blanks, keeps the first `max` words in w[], returns how many there are. */
static size_t
split_words(const char *s, size_t len, struct span *w, size_t max)
{
    size_t n = 0;
    size_t i = 0;

    for (;;) {
        while (i < len && is_blank(s[i]))
            i++;
        if (i == len)
            return n;
        size_t start = i;
        while (i < len && !is_blank(s[i]))
            i++;
        if (n < max)
            w[n] = (struct span){s + start, i - start};
        n++;
    }
}

/* Reads a whole decimal number of digits only; false when empty, not all digits, or > limit.
 * Long inputs never overflow: accumulation stops once the next digit would pass the limit. */
static bool
read_uint(const char *s, size_t len, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    bool over = false;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (over || d > limit || v > (limit - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (over)
        return false;
    *out = v;
    return true;
}

const char *
proto_err_name(enum proto_err e)
{
    /* An unknown code is a caller bug; INTERNAL is the one honest word for it on the wire. */
    if ((unsigned)e >= PROTO_NERRS)
        return err_names[PROTO_ERR_INTERNAL];
    return err_names[e];
}

const char *
proto_type_name(enum proto_type t)
{
    /* "?" fails every parser, so a bad value surfaces instead of passing as a real type. */
    if ((unsigned)t >= PROTO_NTYPES)
        return "?";
    return type_names[t];
}

const char *
proto_kind_name(enum proto_kind k)
{
    if ((unsigned)k >= PROTO_NKINDS)
        return "?";
    return kind_names[k];
}

/* ---- Value rules ---- */

bool
proto_parse_user(const char *s, size_t len, char out[PROTO_USER_MAX + 1], const char **why)
{
    if (len == 0)
        return fail(why, "bad user: empty");
    if (len > PROTO_USER_MAX)
        return fail(why, "bad user: longer than 128 characters");
    for (size_t i = 0; i < len; i++)
        if (!is_graph(s[i]))
            return fail(why, "bad user: only printable ASCII without spaces is allowed");
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static bool
is_code_char(char c)
{
    return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

bool
proto_parse_code(const char *s, size_t len, char out[PROTO_CODE_MAX + 1], const char **why)
{
    if (len == 0)
        return fail(why, "bad code: empty");
    if (len > PROTO_CODE_MAX)
        return fail(why, "bad code: longer than 64 characters");
    for (size_t i = 0; i < len; i++)
        if (!is_code_char(s[i]))
            return fail(why, "bad code: only A-Z a-z 0-9 _ - . are allowed");
    /* Codes are case-insensitive: the upper-case spelling is the one stored and shown. */
    for (size_t i = 0; i < len; i++)
        out[i] = ascii_upper(s[i]);
    out[len] = '\0';
    return true;
}

bool
proto_parse_type(const char *s, size_t len, enum proto_type *out, const char **why)
{
    /* Empty (a record's empty field) and "-" both name the untyped kind. */
    if (len == 0 || eq_exact(s, len, "-")) {
        *out = PROTO_TYPE_NONE;
        return true;
    }
    for (int t = 0; t < PROTO_NTYPES; t++) {
        if (eq_nocase(s, len, type_names[t])) {
            *out = (enum proto_type)t;
            return true;
        }
    }
    return fail(why, "bad type: not one of NONE FREE STANDARD MEGADEAL");
}

bool
proto_parse_kind(const char *s, size_t len, enum proto_kind *out, const char **why)
{
    for (int k = 0; k < PROTO_NKINDS; k++) {
        if (eq_nocase(s, len, kind_names[k])) {
            *out = (enum proto_kind)k;
            return true;
        }
    }
    return fail(why, "bad kind: not FLAT or PERCENT");
}

/* Largest whole part whose value in hundredths, plus .99, still fits an int64_t. */
#define DISCOUNT_WHOLE_MAX ((INT64_MAX - 99) / 100)

static const char discount_syntax[] =
    "bad discount: not a decimal number (digits and one optional point)";

/* The part after the point, s[0..len) without the point: one or two digits, in hundredths. */
static bool
parse_fraction(const char *s, size_t len, int64_t *frac, const char **why)
{
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return fail(why, discount_syntax);
    if (len == 0)
        return fail(why, "bad discount: needs a digit after the decimal point");
    if (len > 2)
        return fail(why, "bad discount: more than 2 decimal places");
    *frac = (s[0] - '0') * 10 + (len == 2 ? s[1] - '0' : 0);
    return true;
}

bool
proto_parse_discount(const char *s, size_t len, int64_t *cents, const char **why)
{
    int64_t whole = 0;
    int64_t frac = 0;
    size_t i = 0;

    if (len == 0)
        return fail(why, "bad discount: empty");
    /* Integer arithmetic in hundredths: a float would not hold 0.1 exactly. */
    for (; i < len && is_digit(s[i]); i++) {
        int d = s[i] - '0';
        if (whole > (DISCOUNT_WHOLE_MAX - d) / 10)
            return fail(why, "bad discount: too large");
        whole = whole * 10 + d;
    }
    if (i == 0)
        return fail(why, s[0] == '.' ? "bad discount: needs a digit before the decimal point"
                                     : discount_syntax);
    if (i < len && s[i] != '.')
        return fail(why, discount_syntax);
    if (i < len && !parse_fraction(s + i + 1, len - i - 1, &frac, why))
        return false;

    int64_t v = whole * 100 + frac;
    if (v == 0)
        return fail(why, "bad discount: must be greater than 0");
    *cents = v;
    return true;
}

bool
proto_check_discount(int64_t cents, enum proto_kind kind, const char **why)
{
    if ((unsigned)kind >= PROTO_NKINDS)
        return fail(why, "bad kind: not FLAT or PERCENT");
    if (cents <= 0)
        return fail(why, "bad discount: must be greater than 0");
    if (kind == PROTO_KIND_PERCENT && cents > PROTO_PERCENT_MAX_CENTS)
        return fail(why, "bad discount: a PERCENT discount is at most 100");
    if (kind == PROTO_KIND_FLAT && cents > PROTO_FLAT_MAX_CENTS)
        return fail(why, "bad discount: a FLAT discount is at most 1000000000.00");
    return true;
}

/* ---- Time ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
 * Our own arithmetic: timegm() and mktime() depend on TZ and are not in C11. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* A cursor over the time text; each take_* advances it only on success. */
struct cursor {
    const char *s;
    size_t len;
    size_t i;
};

static bool
take_num(struct cursor *c, size_t ndigits, int *out)
{
    int v = 0;

    if (c->len - c->i < ndigits)
        return false;
    for (size_t k = 0; k < ndigits; k++) {
        char ch = c->s[c->i + k];
        if (!is_digit(ch))
            return false;
        v = v * 10 + (ch - '0');
    }
    c->i += ndigits;
    *out = v;
    return true;
}

static bool
take_char(struct cursor *c, char a, char b)
{
    if (c->i >= c->len || (c->s[c->i] != a && c->s[c->i] != b))
        return false;
    c->i++;
    return true;
}

/* The fields of a time as written; the offset is off_sign * (off_h:off_m) east of UTC. */
struct civil_time {
    int year, month, day, hour, min, sec;
    int off_h, off_m, off_sign;
};

static bool
take_offset(struct cursor *c, struct civil_time *t)
{
    if (take_char(c, 'Z', 'z'))
        return true;
    if (c->i >= c->len || (c->s[c->i] != '+' && c->s[c->i] != '-'))
        return false;
    t->off_sign = c->s[c->i] == '-' ? -1 : 1;
    c->i++;
    return take_num(c, 2, &t->off_h) && take_char(c, ':', ':') && take_num(c, 2, &t->off_m);
}

/* Reads the syntax only: "YYYY-MM-DD" or RFC 3339's date-time; ranges are checked later. */
static bool
scan_time(const char *s, size_t len, struct civil_time *t)
{
    struct cursor c = {s, len, 0};

    *t = (struct civil_time){.hour = 23, .min = 59, .sec = 59, .off_sign = 1};
    if (!take_num(&c, 4, &t->year) || !take_char(&c, '-', '-') || !take_num(&c, 2, &t->month) ||
        !take_char(&c, '-', '-') || !take_num(&c, 2, &t->day))
        return false;
    if (c.i == len)
        return true; /* a bare date: 23:59:59Z, set above */
    if (!take_char(&c, 'T', 't') || !take_num(&c, 2, &t->hour) || !take_char(&c, ':', ':') ||
        !take_num(&c, 2, &t->min) || !take_char(&c, ':', ':') || !take_num(&c, 2, &t->sec))
        return false;
    /* Fractional seconds: at least one digit after the point; dropped (truncated). */
    if (take_char(&c, '.', '.')) {
        size_t start = c.i;
        while (c.i < len && is_digit(s[c.i]))
            c.i++;
        if (c.i == start)
            return false;
    }
    return take_offset(&c, t) && c.i == len;
}

static bool
check_time_ranges(const struct civil_time *t, const char **why)
{
    if (t->month < 1 || t->month > 12)
        return fail(why, "bad expires: month out of range");
    if (t->day < 1 || t->day > days_in_month(t->year, t->month))
        return fail(why, "bad expires: day out of range for the month");
    if (t->hour > 23)
        return fail(why, "bad expires: hour out of range");
    if (t->min > 59)
        return fail(why, "bad expires: minute out of range");
    if (t->sec == 60)
        return fail(why, "bad expires: leap seconds are not accepted");
    if (t->sec > 59)
        return fail(why, "bad expires: second out of range");
    if (t->off_h > 23 || t->off_m > 59)
        return fail(why, "bad expires: UTC offset out of range");
    return true;
}

bool
proto_parse_time(const char *s, size_t len, int64_t *out, const char **why)
{
    struct civil_time t;

    if (!scan_time(s, len, &t))
        return fail(why, "bad expires: not RFC 3339 (2026-12-31T23:59:59Z) or a date YYYY-MM-DD");
    if (!check_time_ranges(&t, why))
        return false;
    int64_t v = days_from_civil(t.year, t.month, t.day) * SECS_PER_DAY + t.hour * 3600LL +
                t.min * 60LL + t.sec;
    /* The written time is local to the offset: UTC is that time minus the offset. */
    v -= t.off_sign * (t.off_h * 3600LL + t.off_m * 60LL);
    if (v < PROTO_TIME_MIN)
        return fail(why, "bad expires: before 1970-01-01T00:00:00Z");
    if (v > PROTO_TIME_MAX)
        return fail(why, "bad expires: after 9999-12-31T23:59:59Z");
    *out = v;
    return true;
}

bool
proto_parse_max_uses(const char *s, size_t len, uint32_t *out, const char **why)
{
    uint64_t v;

    if (len == 0)
        return fail(why, "bad max_uses: empty");
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return fail(why, "bad max_uses: not a whole number (digits only)");
    if (!read_uint(s, len, PROTO_USES_MAX, &v) || v == 0)
        return fail(why, "bad max_uses: must be from 1 to 1000000");
    *out = (uint32_t)v;
    return true;
}

static bool
is_task_char(char c)
{
    return is_alnum(c) || c == '_' || c == '-';
}

bool
proto_parse_task(const char *s, size_t len, char out[PROTO_TASK_MAX + 1], const char **why)
{
    if (len == 0)
        return fail(why, "bad task: empty");
    if (len > PROTO_TASK_MAX)
        return fail(why, "bad task: longer than 128 characters");
    for (size_t i = 0; i < len; i++)
        if (!is_task_char(s[i]))
            return fail(why, "bad task: only A-Z a-z 0-9 _ - are allowed");
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* ---- Requests ---- */

bool
proto_line_is_blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_blank(line[i]))
            return false;
    return true;
}

bool
proto_looks_like_http(const char *line, size_t len)
{
    static const char *const methods[] = {"GET",     "POST",  "PUT",     "HEAD", "DELETE",
                                          "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        size_t m = strlen(methods[i]);
        if (len >= m && memcmp(line, methods[i], m) == 0 && (len == m || is_blank(line[m])))
            return true;
    }
    return false;
}

/* Fills err for the first byte a request may not hold; false when there is one. */
static bool
check_request_bytes(const char *line, size_t len, struct proto_error *err)
{
    size_t i = find_bad_byte(line, len);
    if (i == len)
        return true;

    /* Name the byte by its class and hex value, never echo it: it is not printable. */
    unsigned char b = (unsigned char)line[i];
    err->code = PROTO_ERR_BAD_REQUEST;
    if (b == 0)
        snprintf(err->msg, sizeof err->msg, "NUL byte in request at position %zu", i + 1);
    else if (b < 0x80)
        snprintf(err->msg, sizeof err->msg, "control byte 0x%02X in request at position %zu",
                 (unsigned)b, i + 1);
    else
        snprintf(err->msg, sizeof err->msg, "non-ASCII byte 0x%02X in request at position %zu",
                 (unsigned)b, i + 1);
    return false;
}

static const struct proto_verb *
find_verb(struct span w)
{
    for (int c = 0; c < PROTO_NCMDS; c++)
        if (eq_nocase(w.p, w.len, proto_verbs[c].name))
            return &proto_verbs[c];
    return NULL;
}

/* UPLOAD's and GENERATE's count: digits only and > 0; too many digits saturate, the caller
 * says TOO_LARGE. */
static bool
parse_count(struct span w, uint64_t *out)
{
    uint64_t v = 0;

    for (size_t i = 0; i < w.len; i++) {
        if (!is_digit(w.p[i]))
            return false;
        uint64_t d = (uint64_t)(w.p[i] - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    if (v == 0)
        return false;
    *out = v;
    return true;
}

static bool
is_rid_char(char c)
{
    return is_alnum(c) || c == '_' || c == '-' || c == '.' || c == ':';
}

bool
proto_parse_rid(const char *s, size_t len, char out[PROTO_RID_MAX + 1], const char **why)
{
    if (len == 0)
        return fail(why, "bad request id: empty");
    if (len > PROTO_RID_MAX)
        return fail(why, "bad request id: longer than 64 characters");
    for (size_t i = 0; i < len; i++)
        if (!is_rid_char(s[i]))
            return fail(why, "bad request id: only A-Z a-z 0-9 _ - . : are allowed");
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* HOLD's seconds: 1..PROTO_HOLD_SECONDS_MAX, digits only. */
static bool
parse_seconds(struct span w, uint32_t *out, const char **why)
{
    uint64_t v;

    if (!read_uint(w.p, w.len, PROTO_HOLD_SECONDS_MAX, &v) || v == 0)
        return fail(why, "bad seconds: must be from 1 to 86400");
    *out = (uint32_t)v;
    return true;
}

/* A redemption's sequence number: digits only, at least `min`, fitting 64 bits. */
static bool
parse_seq(struct span w, uint64_t min, uint64_t *out, const char **why)
{
    uint64_t v;

    if (!read_uint(w.p, w.len, UINT64_MAX, &v) || v < min)
        return fail(why, min > 0 ? "bad SEQ: must be a redemption number (1 or more)"
                                 : "bad after: must be a sequence number (0 or more)");
    *out = v;
    return true;
}

static bool
parse_export(struct span w, enum proto_export *out, const char **why)
{
    if (eq_nocase(w.p, w.len, "COUPONS"))
        *out = PROTO_EXPORT_COUPONS;
    else if (eq_nocase(w.p, w.len, "HISTORY"))
        *out = PROTO_EXPORT_HISTORY;
    else if (eq_nocase(w.p, w.len, "AUDIT"))
        *out = PROTO_EXPORT_AUDIT;
    else
        return fail(why, "EXPORT takes COUPONS, HISTORY or AUDIT");
    return true;
}

/* HELLO's protocol version: 2 or 3. Redis answers another with NOPROTO, which clients look for
 * in the message to fall back to RESP2, so the message says it too. */
static bool
parse_protover(struct span w, uint32_t *out, const char **why)
{
    uint64_t v;

    if (!read_uint(w.p, w.len, 3, &v) || v < 2)
        return fail(why, "NOPROTO unsupported protocol version: 2 or 3");
    *out = (uint32_t)v;
    return true;
}

/* A subcommand: a word of at most PROTO_SUB_MAX characters, kept in upper case. */
static bool
parse_sub(struct span w, char out[PROTO_SUB_MAX + 1], const char **why)
{
    if (w.len == 0 || w.len > PROTO_SUB_MAX)
        return fail(why, "bad subcommand: 1 to 16 characters");
    for (size_t i = 0; i < w.len; i++)
        out[i] = ascii_upper(w.p[i]);
    out[w.len] = '\0';
    return true;
}

/* The value rules that take a word and give a number or an enum. */
static bool
parse_value(enum arg_rule rule, struct span w, struct proto_request *req, const char **why)
{
    switch (rule) {
    case ARG_SECONDS:
        return parse_seconds(w, &req->seconds, why);
    case ARG_SEQ:
        return parse_seq(w, 1, &req->seq, why);
    case ARG_DISCOUNT:
        return proto_parse_discount(w.p, w.len, &req->gen.discount, why);
    case ARG_KIND:
        return proto_parse_kind(w.p, w.len, &req->gen.kind, why);
    case ARG_EXPIRES:
        return proto_parse_time(w.p, w.len, &req->gen.expires, why);
    case ARG_MAX_USES:
        return proto_parse_max_uses(w.p, w.len, &req->gen.max_uses, why);
    case ARG_EXPORT:
        return parse_export(w, &req->export_what, why);
    case ARG_PROTOVER:
        return parse_protover(w, &req->protover, why);
    case ARG_COUNT:
        *why = req->cmd == PROTO_CMD_UPLOAD ? "UPLOAD needs a positive record count"
                                            : "GENERATE needs a positive count";
        return parse_count(w, &req->count);
    default:
        return fail(why, "internal error: unexpected argument");
    }
}

/* BACKUP's directory: an absolute path (the server's working directory is nobody's business)
 * of at most PROTO_PATH_MAX bytes; the word is printable ASCII already. Kept as a pointer into
 * the line, like AUTH's key. */
static bool
parse_path(struct span w, struct proto_request *req, const char **why)
{
    if (w.p[0] != '/')
        return fail(why, "bad dir: must be an absolute path");
    if (w.len > PROTO_PATH_MAX)
        return fail(why, "bad dir: longer than 512 characters");
    req->path = w.p;
    req->path_len = w.len;
    return true;
}

static void
usage(const struct proto_verb *v, struct proto_error *err)
{
    err->code = PROTO_ERR_BAD_REQUEST;
    snprintf(err->msg, sizeof err->msg, "usage: %s", v->synopsis);
}

/* Applies one argument's value rule; the words are printable ASCII already. */
static bool
parse_arg(enum arg_rule rule, struct span w, struct proto_request *req, struct proto_error *err)
{
    const char *why = NULL;
    bool ok = false;

    switch (rule) {
    case ARG_USER:
        ok = proto_parse_user(w.p, w.len, req->user, &why);
        break;
    case ARG_CODE:
        ok = proto_parse_code(w.p, w.len, req->code, &why);
        break;
    case ARG_EXPORT_TYPE: /* EXPORT COUPONS's type; EXPORT HISTORY and AUDIT take none */
        if (req->export_what != PROTO_EXPORT_COUPONS) {
            usage(&proto_verbs[req->cmd], err);
            return false;
        }
        ok = req->has_type = proto_parse_type(w.p, w.len, &req->type, &why);
        break;
    case ARG_TYPE:
        ok = req->has_type = proto_parse_type(w.p, w.len, &req->type, &why);
        break;
    case ARG_TASK:
        ok = proto_parse_task(w.p, w.len, req->task, &why);
        break;
    case ARG_HOLD:
        ok = proto_parse_task(w.p, w.len, req->hold, &why);
        break;
    case ARG_KEY:
        ok = w.len <= PROTO_KEY_MAX;
        why = "bad key: longer than 128 characters";
        req->key = w.p;
        req->key_len = w.len;
        break;
    case ARG_NAME:
        ok = proto_parse_user(w.p, w.len, req->name, NULL);
        why = "bad key name: 1 to 128 printable characters";
        break;
    case ARG_SUB:
        ok = parse_sub(w, req->sub, &why);
        break;
    case ARG_WORD:
        ok = req->nwords < PROTO_WORDS_KEPT;
        why = "internal error: too many words";
        if (ok)
            req->words[req->nwords++] = (struct proto_word){w.p, w.len};
        break;
    case ARG_PATH:
        ok = parse_path(w, req, &why);
        break;
    default:
        ok = parse_value(rule, w, req, &why);
        break;
    }
    /* A task or hold id that fails its value rule is a bad id like any other: BAD_TASK or
     * BAD_HOLD, with the one message that says nothing about why. */
    if (!ok && rule == ARG_TASK)
        set_err(err, PROTO_ERR_BAD_TASK, PROTO_BAD_TASK_MSG);
    else if (!ok && rule == ARG_HOLD)
        set_err(err, PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
    else if (!ok)
        set_err(err, PROTO_ERR_BAD_REQUEST, why);
    return ok;
}

static void
unknown_verb(struct span w, struct proto_error *err)
{
    /* Echo only a bounded prefix; the bytes are printable, checked before. */
    int shown = w.len > VERB_SHOWN ? VERB_SHOWN : (int)w.len;
    err->code = PROTO_ERR_UNKNOWN_COMMAND;
    snprintf(err->msg, sizeof err->msg, "unknown command %.*s%s", shown, w.p,
             w.len > VERB_SHOWN ? "..." : "");
}

/* The option a word names ("id=..."), among those the verb takes; 0 when none. The value
 * starts after the '='. */
static enum opt
option_of(struct span w, unsigned allowed)
{
    for (size_t i = 0; i < sizeof opt_names / sizeof opt_names[0]; i++) {
        size_t n = strlen(opt_names[i].name);
        if ((allowed & opt_names[i].opt) && w.len > n && w.p[n] == '=' &&
            memcmp(w.p, opt_names[i].name, n) == 0)
            return opt_names[i].opt;
    }
    return 0;
}

/* GENERATE's length=: PROTO_GEN_LENGTH_MIN..MAX. */
static bool
parse_length(struct span w, uint32_t *out, const char **why)
{
    uint64_t v;

    if (!read_uint(w.p, w.len, PROTO_GEN_LENGTH_MAX, &v) || v < PROTO_GEN_LENGTH_MIN)
        return fail(why, "bad length: must be from 6 to 32");
    *out = (uint32_t)v;
    return true;
}

/* GENERATE's prefix=: up to PROTO_PREFIX_MAX code characters, kept in upper case. */
static bool
parse_prefix(struct span w, char out[PROTO_PREFIX_MAX + 1], const char **why)
{
    char code[PROTO_CODE_MAX + 1];

    if (w.len == 0) {
        out[0] = '\0';
        return true;
    }
    if (w.len > PROTO_PREFIX_MAX)
        return fail(why, "bad prefix: longer than 16 characters");
    if (!proto_parse_code(w.p, w.len, code, NULL))
        return fail(why, "bad prefix: only A-Z a-z 0-9 _ - . are allowed");
    memcpy(out, code, w.len + 1);
    return true;
}

/* Applies one option's value rule to the part after its '='. */
static bool
parse_option(enum opt o, struct span val, struct proto_request *req, struct proto_error *err)
{
    const char *why = NULL;
    bool ok = false;

    switch (o) {
    case OPT_ID:
        ok = proto_parse_rid(val.p, val.len, req->rid, &why);
        break;
    case OPT_HOLD:
        if (proto_parse_task(val.p, val.len, req->hold, NULL))
            return true;
        set_err(err, PROTO_ERR_BAD_HOLD, PROTO_BAD_HOLD_MSG);
        return false;
    case OPT_PREFIX:
        ok = parse_prefix(val, req->prefix, &why);
        break;
    case OPT_LENGTH:
        ok = parse_length(val, &req->length, &why);
        break;
    case OPT_AFTER:
        ok = parse_seq(val, 0, &req->seq, &why);
        break;
    }
    if (!ok)
        set_err(err, PROTO_ERR_BAD_REQUEST, why);
    return ok;
}

/* Parses the option words w[0..n): each of the verb's options at most once, id= last. */
static bool
parse_options(const struct span *w, size_t n, struct proto_request *req, struct proto_error *err)
{
    unsigned seen = 0;

    for (size_t i = 0; i < n; i++) {
        enum opt o = option_of(w[i], verb_opts[req->cmd]);
        size_t name_len = (size_t)((const char *)memchr(w[i].p, '=', w[i].len) - w[i].p);
        if (seen & o) {
            err->code = PROTO_ERR_BAD_REQUEST;
            snprintf(err->msg, sizeof err->msg, "%.*s= given twice", (int)name_len, w[i].p);
            return false;
        }
        if (o == OPT_ID && i + 1 < n) {
            set_err(err, PROTO_ERR_BAD_REQUEST, "id= must be the last word");
            return false;
        }
        seen |= o;
        struct span val = {w[i].p + name_len + 1, w[i].len - name_len - 1};
        if (!parse_option(o, val, req, err))
            return false;
    }
    return true;
}

/* HELLO's words after its version: `AUTH name key` and `SETNAME name`, each at most once, in
 * any order. The name to set is kept as words[0]. */
static bool
check_hello(const struct proto_verb *v, struct proto_request *req, struct proto_error *err)
{
    struct proto_word w[PROTO_WORDS_KEPT];
    size_t n = req->nwords;
    bool auth = false;

    memcpy(w, req->words, sizeof w);
    req->nwords = 0;
    for (size_t i = 0; i < n;) {
        struct span a = {w[i].p, w[i].len};
        if (!auth && eq_nocase(a.p, a.len, "AUTH") && i + 2 < n) {
            auth = true;
            if (!parse_arg(ARG_NAME, (struct span){w[i + 1].p, w[i + 1].len}, req, err) ||
                !parse_arg(ARG_KEY, (struct span){w[i + 2].p, w[i + 2].len}, req, err))
                return false;
            i += 3;
        } else if (!req->setname && eq_nocase(a.p, a.len, "SETNAME") && i + 1 < n) {
            req->setname = true;
            req->words[req->nwords++] = w[i + 1];
            i += 2;
        } else {
            usage(v, err);
            return false;
        }
    }
    return true;
}

/* Rules that tie arguments together, once each is valid on its own. EXPORT COUPONS takes a
 * type and no after=; EXPORT HISTORY and AUDIT the other way round (ARG_EXPORT_TYPE checks that
 * half). */
static bool
check_request(const struct proto_verb *v, struct proto_request *req, size_t nopt,
              struct proto_error *err)
{
    const char *why = NULL;

    if (req->cmd == PROTO_CMD_HELLO)
        return check_hello(v, req, err);
    if (req->cmd == PROTO_CMD_GENERATE) {
        req->gen.type = req->type;
        if (!proto_check_discount(req->gen.discount, req->gen.kind, &why)) {
            set_err(err, PROTO_ERR_BAD_REQUEST, why);
            return false;
        }
    }
    if (req->cmd == PROTO_CMD_EXPORT && req->export_what == PROTO_EXPORT_COUPONS && nopt > 0) {
        usage(v, err);
        return false;
    }
    return true;
}

/* The number of trailing words, beyond the verb's required arguments, that are options. */
static size_t
count_options(const struct proto_verb *v, const struct span *args, size_t nargs)
{
    size_t k = 0;

    while (nargs - k > v->min_args && option_of(args[nargs - k - 1], verb_opts[v->cmd]) != 0)
        k++;
    return k;
}

static void
request_defaults(struct proto_request *req, enum proto_cmd cmd)
{
    memset(req, 0, sizeof *req);
    req->cmd = cmd;
    req->type = PROTO_TYPE_NONE;
    req->key = NULL;
    req->seconds = PROTO_HOLD_SECONDS_DEFAULT;
    req->length = PROTO_GEN_LENGTH_DEFAULT;
}

/* What a request is, whichever form brought it: the verb, its positional arguments and their
 * value rules, then its options. w[0, kept) are its first words, n how many it has in all; the
 * caller checked that the kept ones are words (printable ASCII without blanks). */
static bool
parse_words(const struct span *w, size_t kept, size_t n, struct proto_request *req,
            struct proto_error *err)
{
    if (n == 0 || kept == 0) {
        set_err(err, PROTO_ERR_BAD_REQUEST, "empty request");
        return false;
    }
    const struct proto_verb *v = find_verb(w[0]);
    if (v == NULL) {
        unknown_verb(w[0], err);
        return false;
    }
    if (n > PROTO_MAX_WORDS) {
        usage(v, err);
        return false;
    }
    /* Only RESP gets here with words not handed over: one was longer than a line allows. */
    if (n > kept) {
        set_err(err, PROTO_ERR_TOO_LONG, "request longer than 4096 bytes");
        return false;
    }
    size_t nopt = count_options(v, w + 1, n - 1);
    size_t npos = n - 1 - nopt;
    if (npos < v->min_args || npos > v->max_args) {
        usage(v, err);
        return false;
    }

    request_defaults(req, v->cmd);
    const enum arg_rule *rules =
        v->cmd == PROTO_CMD_AUTH && npos == 2 ? auth_named_args : verb_args[v->cmd];
    for (size_t a = 0; a < npos; a++)
        if (!parse_arg(rules[a], w[a + 1], req, err))
            return false;
    if (!parse_options(w + 1 + npos, nopt, req, err))
        return false;
    return check_request(v, req, nopt, err);
}

bool
proto_parse_request(const char *line, size_t len, struct proto_request *req,
                    struct proto_error *err)
{
    struct span w[PROTO_MAX_WORDS];

    /* The framer (frame.h) removed the LF and one CR before it; the limit counts every byte
     * before the LF, that CR included, so a line handed in here is at most the limit. */
    if (len > PROTO_MAX_LINE) {
        set_err(err, PROTO_ERR_TOO_LONG, "line longer than 4096 bytes");
        return false;
    }
    if (!check_request_bytes(line, len, err))
        return false;
    size_t n = split_words(line, len, w, PROTO_MAX_WORDS);
    return parse_words(w, n < PROTO_MAX_WORDS ? n : PROTO_MAX_WORDS, n, req, err);
}

static const char *
byte_class(unsigned char b)
{
    if (b == 0)
        return "NUL byte";
    return b < 0x80 ? "control byte" : "non-ASCII byte";
}

/* A RESP argument of a command must be what a line's word can be: 1 or more bytes of printable
 * ASCII without blanks. Then every request RESP accepts is the line of its arguments. Errors
 * name the argument by its position after the verb, and a bad byte by its value. */
static bool
check_word_arg(const struct proto_arg *a, size_t i, struct proto_error *err)
{
    char where[32];
    size_t k = 0;

    if (a->kind == PROTO_ARG_TOO_LONG) {
        set_err(err, PROTO_ERR_TOO_LONG, "request longer than 4096 bytes");
        return false;
    }
    while (a->kind == PROTO_ARG_STRING && k < a->len && is_graph(a->p[k]))
        k++;
    if (a->kind == PROTO_ARG_STRING && a->len > 0 && k == a->len)
        return true;

    if (i == 0)
        snprintf(where, sizeof where, "the verb");
    else
        snprintf(where, sizeof where, "argument %zu", i);
    err->code = PROTO_ERR_BAD_REQUEST;
    unsigned char b = a->kind == PROTO_ARG_STRING && k < a->len ? (unsigned char)a->p[k] : 0;
    if (a->kind == PROTO_ARG_NULL)
        snprintf(err->msg, sizeof err->msg, "null string as %s", where);
    else if (a->len == 0)
        snprintf(err->msg, sizeof err->msg, "empty string as %s", where);
    else if (b == ' ' || b == '\t')
        snprintf(err->msg, sizeof err->msg, "blank in %s", where);
    else
        snprintf(err->msg, sizeof err->msg, "%s 0x%02X in %s", byte_class(b), (unsigned)b, where);
    return false;
}

/* Whether argument i of a RESP request of verb v may hold any bytes (proto_parse_args). */
static bool
any_bytes(const struct proto_verb *v, size_t i)
{
    return v != NULL && ((v->cmd == PROTO_CMD_CLIENT && i >= 2) || v->cmd == PROTO_CMD_ECHO);
}

/* Such an argument: any string, a null one taken as empty; one too long is still TOO_LONG. */
static bool
check_any_arg(const struct proto_arg *a, struct span *w, struct proto_error *err)
{
    if (a->kind == PROTO_ARG_TOO_LONG) {
        set_err(err, PROTO_ERR_TOO_LONG, "request longer than 4096 bytes");
        return false;
    }
    *w = a->kind == PROTO_ARG_NULL ? (struct span){"", 0} : (struct span){a->p, a->len};
    return true;
}

/* RESP's UPLOAD: the records are the arguments after the verb, so their count is the request's
 * size; the caller hands the records to the upload as they arrive. A request id comes first,
 * right after the verb (`UPLOAD id=RID rec...`): a record never holds '=', and the id is known
 * before the records stream in. */
static bool
parse_resp_upload(const struct proto_arg *args, size_t nargs, size_t argc,
                  struct proto_request *req, struct proto_error *err)
{
    bool has_id = nargs >= 2 && args[1].kind == PROTO_ARG_STRING && args[1].len > 3 &&
                  memcmp(args[1].p, "id=", 3) == 0;
    const char *why = NULL;

    if (argc < (has_id ? 3u : 2u)) {
        set_err(err, PROTO_ERR_BAD_REQUEST,
                "usage: UPLOAD [id=RID] record... (in RESP, one argument per record)");
        return false;
    }
    request_defaults(req, PROTO_CMD_UPLOAD);
    if (has_id && !proto_parse_rid(args[1].p + 3, args[1].len - 3, req->rid, &why)) {
        set_err(err, PROTO_ERR_BAD_REQUEST, why);
        return false;
    }
    req->count = argc - (has_id ? 2 : 1);
    return true;
}

bool
proto_parse_args(const struct proto_arg *args, size_t nargs, size_t argc, struct proto_request *req,
                 struct proto_error *err)
{
    struct span w[PROTO_MAX_WORDS];

    if (argc == 0) {
        set_err(err, PROTO_ERR_BAD_REQUEST, "empty request");
        return false;
    }
    if (nargs > argc) /* a caller bug: there are no more arguments than the request has */
        nargs = argc;
    if (nargs == 0) { /* the verb itself was too long to be handed over */
        set_err(err, PROTO_ERR_TOO_LONG, "request longer than 4096 bytes");
        return false;
    }
    if (!check_word_arg(&args[0], 0, err))
        return false;
    w[0] = (struct span){args[0].p, args[0].len};
    const struct proto_verb *v = find_verb(w[0]);
    if (v != NULL && v->cmd == PROTO_CMD_UPLOAD)
        return parse_resp_upload(args, nargs, argc, req, err);
    /* Words past what a line keeps are never read: the argument count refuses them. */
    size_t kept = nargs < PROTO_MAX_WORDS ? nargs : PROTO_MAX_WORDS;
    for (size_t i = 1; i < kept; i++) {
        if (any_bytes(v, i)) {
            if (!check_any_arg(&args[i], &w[i], err))
                return false;
            continue;
        }
        if (!check_word_arg(&args[i], i, err))
            return false;
        w[i] = (struct span){args[i].p, args[i].len};
    }
    return parse_words(w, kept, argc, req, err);
}

/* ---- Canonical requests ---- */

/* Appends " word" to buf at *len, within PROTO_REQUEST_BUF. */
static void put_word(char *buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
put_word(char *buf, size_t *len, const char *fmt, ...)
{
    va_list ap;

    if (*len >= PROTO_REQUEST_BUF - 1)
        return;
    buf[(*len)++] = ' ';
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, PROTO_REQUEST_BUF - *len, fmt, ap);
    va_end(ap);
    *len += fmt_len(n, PROTO_REQUEST_BUF - *len);
}

/* GENERATE's values, as put_word writes them. */
static void
put_generate(char *buf, size_t *len, const struct proto_request *r)
{
    char disc[PROTO_DISCOUNT_BUF], exp[PROTO_TIME_BUF];

    proto_fmt_discount(disc, r->gen.discount);
    proto_fmt_time(exp, r->gen.expires);
    put_word(buf, len, "%" PRIu64 " %s %s %s %s %" PRIu32, r->count, proto_type_name(r->gen.type),
             disc, proto_kind_name(r->gen.kind), exp, r->gen.max_uses);
    if (r->prefix[0] != '\0')
        put_word(buf, len, "prefix=%s", r->prefix);
    put_word(buf, len, "length=%" PRIu32, r->length);
}

/* HELLO's version and words, as put_word writes them. */
static void
put_hello(char *buf, size_t *len, const struct proto_request *r)
{
    if (r->protover != 0)
        put_word(buf, len, "%" PRIu32, r->protover);
    if (r->name[0] != '\0')
        put_word(buf, len, "AUTH %s %.*s", r->name, (int)r->key_len, r->key);
    if (r->setname)
        put_word(buf, len, "SETNAME %.*s", (int)r->words[0].len, r->words[0].p);
}

/* The arguments of every verb but GENERATE, as put_word writes them. */
static void
put_args(char *buf, size_t *len, const struct proto_request *r)
{
    switch (r->cmd) {
    case PROTO_CMD_AUTH:
        if (r->name[0] != '\0')
            put_word(buf, len, "%s", r->name);
        put_word(buf, len, "%.*s", (int)r->key_len, r->key);
        break;
    case PROTO_CMD_HELLO:
        put_hello(buf, len, r);
        break;
    case PROTO_CMD_CLIENT:
    case PROTO_CMD_COMMAND:
    case PROTO_CMD_CONFIG:
    case PROTO_CMD_INFO:
    case PROTO_CMD_SELECT:
    case PROTO_CMD_ECHO:
        if (r->sub[0] != '\0')
            put_word(buf, len, "%s", r->sub);
        for (size_t i = 0; i < r->nwords; i++)
            put_word(buf, len, "%.*s", (int)r->words[i].len, r->words[i].p);
        break;
    case PROTO_CMD_REQUEST:
        put_word(buf, len, "%s %s", r->user, proto_type_name(r->type));
        break;
    case PROTO_CMD_STATUS:
    case PROTO_CMD_WAIT:
        put_word(buf, len, "%s", r->task);
        break;
    case PROTO_CMD_VALIDATE:
    case PROTO_CMD_REDEEM:
        put_word(buf, len, "%s %s", r->user, r->code);
        if (r->hold[0] != '\0')
            put_word(buf, len, "hold=%s", r->hold);
        break;
    case PROTO_CMD_UPLOAD:
        put_word(buf, len, "%" PRIu64, r->count);
        break;
    case PROTO_CMD_HOLD:
        put_word(buf, len, "%s %s %" PRIu32, r->user, r->code, r->seconds);
        break;
    case PROTO_CMD_RELEASE:
        put_word(buf, len, "%s", r->hold);
        break;
    case PROTO_CMD_UNREDEEM:
        put_word(buf, len, "%s %" PRIu64, r->user, r->seq);
        break;
    case PROTO_CMD_COUPONS:
        put_word(buf, len, "%s", r->user);
        break;
    case PROTO_CMD_COUPON:
        put_word(buf, len, "%s", r->code);
        break;
    case PROTO_CMD_BACKUP:
        put_word(buf, len, "%.*s", (int)r->path_len, r->path);
        break;
    case PROTO_CMD_EXPORT:
        if (r->export_what == PROTO_EXPORT_HISTORY)
            put_word(buf, len, "HISTORY after=%" PRIu64, r->seq);
        else if (r->export_what == PROTO_EXPORT_AUDIT)
            put_word(buf, len, "AUDIT after=%" PRIu64, r->seq);
        else if (r->has_type)
            put_word(buf, len, "COUPONS %s", proto_type_name(r->type));
        else
            put_word(buf, len, "COUPONS");
        break;
    default:
        break;
    }
}

size_t
proto_fmt_request(char buf[PROTO_REQUEST_BUF], const struct proto_request *r, bool with_id)
{
    size_t len = 0;
    const char *verb = (unsigned)r->cmd < PROTO_NCMDS ? proto_verbs[r->cmd].name : "?";

    len = fmt_len(snprintf(buf, PROTO_REQUEST_BUF, "%s", verb), PROTO_REQUEST_BUF);
    if (r->cmd == PROTO_CMD_GENERATE)
        put_generate(buf, &len, r);
    else
        put_args(buf, &len, r);
    if (with_id && r->rid[0] != '\0')
        put_word(buf, &len, "id=%s", r->rid);
    buf[len] = '\0';
    return len;
}

/* ---- Upload records ---- */

static const char *
record_byte_reason(const char *line, size_t len)
{
    size_t i = find_bad_byte(line, len);
    if (i == len)
        return NULL;
    unsigned char b = (unsigned char)line[i];
    if (b == 0)
        return "NUL byte in record";
    if (b < 0x80)
        return "control byte in record";
    return "non-ASCII byte in record";
}

/* Splits on commas into exactly six trimmed fields; false on any other count. */
static bool
split_record(const char *line, size_t len, struct span f[6])
{
    size_t n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != ',')
            continue;
        if (n == 6)
            return false;
        f[n++] = trim(line + start, i - start);
        start = i + 1;
    }
    return n == 6;
}

bool
proto_parse_record(const char *line, size_t len, struct proto_coupon *out, const char **why)
{
    struct span f[6];
    struct proto_coupon c;

    const char *bad = record_byte_reason(line, len);
    if (bad != NULL)
        return fail(why, bad);
    if (!split_record(line, len, f))
        return fail(why, "expected 6 fields: code,type,discount,kind,expires,max_uses");

    memset(&c, 0, sizeof c);
    if (!proto_parse_code(f[0].p, f[0].len, c.code, why) ||
        !proto_parse_type(f[1].p, f[1].len, &c.type, why) ||
        !proto_parse_discount(f[2].p, f[2].len, &c.discount, why) ||
        !proto_parse_kind(f[3].p, f[3].len, &c.kind, why) ||
        !proto_check_discount(c.discount, c.kind, why) ||
        !proto_parse_time(f[4].p, f[4].len, &c.expires, why) ||
        !proto_parse_max_uses(f[5].p, f[5].len, &c.max_uses, why))
        return false;
    c.uses = 0;
    *out = c;
    return true;
}

/* ---- Formatting ---- */

/* Writes v as exactly `width` zero-padded digits; callers pass values that fit. */
static char *
put_digits(char *p, int64_t v, int width)
{
    for (int k = width - 1; k >= 0; k--) {
        p[k] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

size_t
proto_fmt_time(char buf[PROTO_TIME_BUF], int64_t t)
{
    int64_t y;
    int m, d;

    /* Out-of-range times are a caller bug; clamping keeps the 4-digit year and the buffer. */
    if (t < PROTO_TIME_MIN)
        t = PROTO_TIME_MIN;
    if (t > PROTO_TIME_MAX)
        t = PROTO_TIME_MAX;
    int64_t secs = t % SECS_PER_DAY;
    civil_from_days(t / SECS_PER_DAY, &y, &m, &d);

    char *p = put_digits(buf, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, secs / 3600, 2);
    *p++ = ':';
    p = put_digits(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, secs % 60, 2);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - buf);
}

/* Appends the decimal digits of v. */
static char *
put_u64(char *p, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

static char *
put_text(char *p, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    memcpy(p, s, n);
    return p + n;
}

size_t
proto_fmt_discount(char buf[PROTO_DISCOUNT_BUF], int64_t cents)
{
    /* Work on the magnitude as unsigned, so INT64_MIN has no overflow. */
    uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char *p = buf;
    if (cents < 0)
        *p++ = '-';
    p = put_u64(p, mag / 100);
    *p++ = '.';
    p = put_digits(p, (int64_t)(mag % 100), 2);
    *p = '\0';
    return (size_t)(p - buf);
}

/* snprintf's result as a length: never more than what the buffer holds. */
static size_t
fmt_len(int n, size_t size)
{
    if (n < 0)
        return 0;
    return (size_t)n < size ? (size_t)n : size - 1;
}

size_t
proto_fmt_coupon(char buf[PROTO_COUPON_BUF], const struct proto_coupon *c)
{
    /* By hand, not snprintf: a reply per REQUEST, VALIDATE and REDEEM goes through here. The
     * longest output (64-char code, 21-char discount, 10-digit counts) fits PROTO_COUPON_BUF. */
    char *p = buf;
    p = put_text(p, "code=", 5);
    p = put_text(p, c->code, PROTO_CODE_MAX);
    p = put_text(p, " type=", 6);
    p = put_text(p, proto_type_name(c->type), 8);
    p = put_text(p, " discount=", 10);
    p += proto_fmt_discount(p, c->discount);
    p = put_text(p, " kind=", 6);
    p = put_text(p, proto_kind_name(c->kind), 7);
    p = put_text(p, " expires=", 9);
    p += proto_fmt_time(p, c->expires);
    p = put_text(p, " uses=", 6);
    p = put_u64(p, c->uses);
    p = put_text(p, " max_uses=", 10);
    p = put_u64(p, c->max_uses);
    *p = '\0';
    return (size_t)(p - buf);
}

size_t
proto_fmt_record(char buf[PROTO_RECORD_BUF], const struct proto_coupon *c)
{
    char disc[PROTO_DISCOUNT_BUF];
    char exp[PROTO_TIME_BUF];

    proto_fmt_discount(disc, c->discount);
    proto_fmt_time(exp, c->expires);
    const char *type = c->type == PROTO_TYPE_NONE ? "" : proto_type_name(c->type);
    int n = snprintf(buf, PROTO_RECORD_BUF, "%.*s,%s,%s,%s,%s,%" PRIu32,
                     (int)strnlen(c->code, PROTO_CODE_MAX), c->code, type, disc,
                     proto_kind_name(c->kind), exp, c->max_uses);
    return fmt_len(n, PROTO_RECORD_BUF);
}

/* ---- Replies (client side) ----
 * These accept a trailing CR too, so a client behind a CRLF-speaking relay still works. */

static bool
starts_word(const char *line, size_t len, const char *word)
{
    size_t wl = strlen(word);
    if (len < wl || memcmp(line, word, wl) != 0)
        return false;
    return len == wl || line[wl] == ' ';
}

enum proto_reply_kind
proto_reply_kind(const char *line, size_t len)
{
    len = strip_cr(line, len);
    if (starts_word(line, len, "OK"))
        return PROTO_REPLY_OK;
    if (starts_word(line, len, "ERR"))
        return PROTO_REPLY_ERR;
    return PROTO_REPLY_DATA;
}

enum proto_err
proto_reply_err(const char *line, size_t len)
{
    struct span w[2];

    enum proto_reply_kind k = proto_reply_kind(line, len);
    len = strip_cr(line, len);
    if (k == PROTO_REPLY_OK)
        return PROTO_OK;
    if (k != PROTO_REPLY_ERR || split_words(line, len, w, 2) < 2)
        return PROTO_ERR_INTERNAL;
    for (int e = PROTO_ERR_BAD_REQUEST; e < PROTO_NERRS; e++)
        if (eq_exact(w[1].p, w[1].len, err_names[e]))
            return (enum proto_err)e;
    return PROTO_ERR_INTERNAL;
}

bool
proto_reply_field(const char *line, size_t len, const char *key, const char **val, size_t *val_len)
{
    size_t kl = strlen(key);
    size_t i = 0;

    if (kl == 0)
        return false;
    len = strip_cr(line, len);
    while (i < len) {
        while (i < len && is_blank(line[i]))
            i++;
        size_t start = i;
        while (i < len && !is_blank(line[i]))
            i++;
        /* Whole words only: "key=" must start the word, so "xkey=" is not a match. */
        size_t wl = i - start;
        if (wl > kl && memcmp(line + start, key, kl) == 0 && line[start + kl] == '=') {
            *val = line + start + kl + 1;
            *val_len = wl - kl - 1;
            return true;
        }
    }
    return false;
}

/* Digits only, fitting in 32 bits. */
static bool
parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;
    if (!read_uint(s, len, UINT32_MAX, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

bool
proto_reply_coupon(const char *line, size_t len, struct proto_coupon *out)
{
    static const char *const keys[7] = {"code",    "type", "discount", "kind",
                                        "expires", "uses", "max_uses"};
    struct span f[7];
    struct proto_coupon c;

    for (int k = 0; k < 7; k++)
        if (!proto_reply_field(line, len, keys[k], &f[k].p, &f[k].len))
            return false;
    memset(&c, 0, sizeof c);
    if (!proto_parse_code(f[0].p, f[0].len, c.code, NULL) ||
        !proto_parse_type(f[1].p, f[1].len, &c.type, NULL) ||
        !proto_parse_discount(f[2].p, f[2].len, &c.discount, NULL) ||
        !proto_parse_kind(f[3].p, f[3].len, &c.kind, NULL) ||
        !proto_check_discount(c.discount, c.kind, NULL) ||
        !proto_parse_time(f[4].p, f[4].len, &c.expires, NULL) ||
        !parse_u32(f[5].p, f[5].len, &c.uses) ||
        !proto_parse_max_uses(f[6].p, f[6].len, &c.max_uses, NULL))
        return false;
    /* The server never counts more uses than allowed; more means a garbled line. */
    if (c.uses > c.max_uses)
        return false;
    *out = c;
    return true;
}

bool
proto_reply_stat_word(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len)
{
    struct span w[4];

    len = strip_cr(line, len);
    if (split_words(line, len, w, 4) != 3 || !eq_exact(w[0].p, w[0].len, "STAT"))
        return false;
    *name = w[1].p;
    *name_len = w[1].len;
    *value = w[2].p;
    *value_len = w[2].len;
    return true;
}

bool
proto_reply_stat(const char *line, size_t len, const char **name, size_t *name_len, uint64_t *value)
{
    const char *n, *val;
    size_t nl, vl;
    uint64_t v;

    if (!proto_reply_stat_word(line, len, &n, &nl, &val, &vl) ||
        !read_uint(val, vl, UINT64_MAX, &v))
        return false;
    *name = n;
    *name_len = nl;
    *value = v;
    return true;
}
