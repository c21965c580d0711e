/* proto.h - the coupond line protocol: parsing and formatting, no I/O.
 * Shared by coupond (server/) and couponctl (tui/); ../shared/PROTOCOL.md is the contract. */
#ifndef COUPOND_PROTO_H
#define COUPOND_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of the wire format, all from PROTOCOL.md. */
#define PROTO_MAX_LINE     4096    /* bytes in a request line, LF excluded */
#define PROTO_USER_MAX     128     /* characters in a user name */
#define PROTO_CODE_MAX     64      /* characters in a coupon code */
#define PROTO_TASK_MAX     128     /* characters in a task id */
#define PROTO_KEY_MAX      128     /* characters accepted as an AUTH key argument */
#define PROTO_USES_MAX     1000000 /* largest max_uses */
#define PROTO_UPLOAD_MAX   50000   /* default and largest --max-upload */
#define PROTO_REJECT_SHOWN 100     /* REJECT lines sent for one batch at most */
/* Words of the longest request, GENERATE: the verb, six values, prefix=, length= and id=.
 * A line with more words is BAD_REQUEST. */
#define PROTO_MAX_WORDS 10
#define PROTO_RID_MAX   64 /* characters in a request id (id=RID) */
/* Characters in a hold id: the same form and bound as a task id (both are signed ids). */
#define PROTO_HOLD_MAX             PROTO_TASK_MAX
#define PROTO_HOLD_SECONDS_DEFAULT 900   /* HOLD without seconds: a checkout's quarter hour */
#define PROTO_HOLD_SECONDS_MAX     86400 /* a hold lasts at most a day */
#define PROTO_PREFIX_MAX           16    /* GENERATE prefix=: code characters at most */
/* GENERATE length=: random characters after the prefix. Fewer than 6 makes codes easy to
 * guess; 32 plus the longest prefix stays well inside PROTO_CODE_MAX. */
#define PROTO_GEN_LENGTH_MIN     6
#define PROTO_GEN_LENGTH_MAX     32
#define PROTO_GEN_LENGTH_DEFAULT 12
/* The characters of generated codes: digits and upper-case letters without the look-alikes
 * 0 O 1 I. 32 characters, so each carries 5 bits. */
#define PROTO_GEN_ALPHABET     "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#define PROTO_GEN_ALPHABET_LEN 32
/* COUPONS user: data lines sent at most (the count in its OK line is of all). */
#define PROTO_COUPONS_SHOWN 1000
/* BACKUP dir: bytes in the directory's path. Far beyond any real path to a backup, and short
 * enough that the path with the store's file names added stays well inside PATH_MAX (4096) and
 * the canonical request inside PROTO_REQUEST_BUF. */
#define PROTO_PATH_MAX 512
/* The message of every ERR BAD_TASK: an id that fails any check, its form or its signature,
 * gets the same reply, so that a reply never tells which check failed. */
#define PROTO_BAD_TASK_MSG "not a valid task id"
/* The same for hold ids: ERR BAD_HOLD never says which check failed. */
#define PROTO_BAD_HOLD_MSG "not a valid hold id"
/* A discount is held in hundredths. 100.00 is the largest PERCENT; FLAT amounts are
 * capped at 1,000,000,000.00 so that every value fits any reasonable ledger. */
#define PROTO_PERCENT_MAX_CENTS 10000
#define PROTO_FLAT_MAX_CENTS    100000000000LL
/* Expiry times are limited to years 1970..9999 so they print as 4-digit RFC 3339 years. */
#define PROTO_TIME_MIN 0LL
#define PROTO_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */
/* Buffer sizes that always suffice for the formatting functions below. */
#define PROTO_TIME_BUF     21  /* "2026-12-31T23:59:59Z" + NUL */
#define PROTO_DISCOUNT_BUF 24  /* "-9223372036854775808.00" + NUL, with room to spare */
#define PROTO_COUPON_BUF   256 /* proto_fmt_coupon output + NUL */
#define PROTO_RECORD_BUF   192 /* proto_fmt_record output + NUL */
/* proto_fmt_request output + NUL: the longest canonical request (REDEEM with a 128-byte user,
 * a 64-byte code, a 128-byte hold id and a 64-byte request id) is under 450 bytes. */
#define PROTO_REQUEST_BUF 1024
/* The commands of Redis clients. A subcommand (CLIENT SETINFO, COMMAND DOCS, CONFIG GET) is a
 * word of at most PROTO_SUB_MAX characters, kept in upper case; the words after it (and INFO's,
 * SELECT's, ECHO's, HELLO's SETNAME) are kept as given, at most PROTO_WORDS_KEPT of them. */
#define PROTO_SUB_MAX    16
#define PROTO_WORDS_KEPT 5

/* Coupon types; values are stable (the store uses the same order). */
enum proto_type {
    PROTO_TYPE_NONE = 0,
    PROTO_TYPE_FREE,
    PROTO_TYPE_STANDARD,
    PROTO_TYPE_MEGADEAL,
    PROTO_NTYPES
};

enum proto_kind { PROTO_KIND_FLAT = 0, PROTO_KIND_PERCENT, PROTO_NKINDS };

/* Error codes of PROTOCOL.md's table, in its order. PROTO_OK is not an error. */
enum proto_err {
    PROTO_OK = 0,
    PROTO_ERR_BAD_REQUEST,
    PROTO_ERR_UNKNOWN_COMMAND,
    PROTO_ERR_TOO_LONG,
    PROTO_ERR_TOO_LARGE,
    PROTO_ERR_DENIED,
    PROTO_ERR_NO_COUPONS,
    PROTO_ERR_INVALID,
    PROTO_ERR_EXPIRED,
    PROTO_ERR_EXHAUSTED,
    PROTO_ERR_BUSY,
    PROTO_ERR_TIMEOUT,
    PROTO_ERR_BAD_TASK,
    PROTO_ERR_UNKNOWN_TASK,
    PROTO_ERR_BAD_BATCH,
    PROTO_ERR_INTERNAL,
    /* version 2 */
    PROTO_ERR_ID_CONFLICT,
    PROTO_ERR_UNKNOWN_HOLD,
    PROTO_ERR_BAD_HOLD,
    PROTO_ERR_UNKNOWN_REDEMPTION,
    PROTO_ERR_UNAVAILABLE, /* reserved for a networked store (PostgreSQL) */
    PROTO_NERRS
};

/* Verbs. */
enum proto_cmd {
    PROTO_CMD_PING = 0,
    PROTO_CMD_HELP,
    PROTO_CMD_AUTH,
    PROTO_CMD_REQUEST,
    PROTO_CMD_STATUS,
    PROTO_CMD_WAIT,
    PROTO_CMD_VALIDATE,
    PROTO_CMD_REDEEM,
    PROTO_CMD_QUIT,
    PROTO_CMD_UPLOAD,
    PROTO_CMD_PURGE,
    PROTO_CMD_STATS,
    /* version 2 */
    PROTO_CMD_HOLD,
    PROTO_CMD_RELEASE,
    PROTO_CMD_UNREDEEM,
    PROTO_CMD_COUPONS,
    PROTO_CMD_COUPON,
    PROTO_CMD_GENERATE,
    PROTO_CMD_EXPORT,
    /* version 2: what Redis clients send besides coupond's commands (PROTOCOL.md "The Redis
     * wire form"), in the line form too */
    PROTO_CMD_HELLO,
    PROTO_CMD_INFO,
    PROTO_CMD_CLIENT,
    PROTO_CMD_COMMAND,
    PROTO_CMD_CONFIG,
    PROTO_CMD_SELECT,
    PROTO_CMD_ECHO,
    PROTO_CMD_AUDIT, /* the audit chain's signed head */
    /* version 2: backup and metrics */
    PROTO_CMD_BACKUP,
    PROTO_CMD_VERSION,
    PROTO_NCMDS
};

/* What EXPORT sends. */
enum proto_export { PROTO_EXPORT_COUPONS = 0, PROTO_EXPORT_HISTORY, PROTO_EXPORT_AUDIT };

/* One row of the verb table: name, argument counts (words after the verb, options such as
 * id=RID not counted), whether the verb needs a prior AUTH, and a one-line synopsis used by
 * HELP and by BAD_REQUEST's usage message. */
struct proto_verb {
    const char *name;
    enum proto_cmd cmd;
    uint8_t min_args;
    uint8_t max_args;
    bool admin;
    const char *synopsis;
};

/* The verb table, PROTO_NCMDS rows indexed by enum proto_cmd. */
extern const struct proto_verb proto_verbs[PROTO_NCMDS];

/* A coupon as it travels on the wire. */
struct proto_coupon {
    char code[PROTO_CODE_MAX + 1]; /* upper case, NUL-terminated */
    enum proto_type type;
    enum proto_kind kind;
    int64_t discount; /* hundredths: 12.50 is 1250 */
    int64_t expires;  /* seconds since the epoch, UTC */
    uint32_t uses;
    uint32_t max_uses;
};

/* A parsed request line. Arguments are validated and copied, so the struct does not point
 * into the line, except `key` and `path`, which point into the line passed to proto_parse_request
 * (or the argument passed to proto_parse_args) and is valid while that line is. */
struct proto_request {
    enum proto_cmd cmd;
    char user[PROTO_USER_MAX + 1]; /* REQUEST, VALIDATE, REDEEM, HOLD, UNREDEEM, COUPONS */
    char code[PROTO_CODE_MAX + 1]; /* VALIDATE, REDEEM, HOLD, COUPON; upper case */
    /* REQUEST, GENERATE, EXPORT COUPONS; PROTO_TYPE_NONE when absent (see has_type) */
    enum proto_type type;
    bool has_type;                 /* a type word was given */
    char task[PROTO_TASK_MAX + 1]; /* STATUS, WAIT */
    char hold[PROTO_HOLD_MAX + 1]; /* RELEASE, REDEEM hold=: the hold id as sent; "" for none */
    char rid[PROTO_RID_MAX + 1];   /* id=RID of a write; "" for none */
    const char *key;               /* AUTH: not NUL-terminated, see key_len */
    size_t key_len;
    /* BACKUP: the directory, an absolute path of at most PROTO_PATH_MAX bytes; not
     * NUL-terminated, and like `key` valid only while the line is */
    const char *path;
    size_t path_len;
    uint64_t count;   /* UPLOAD, GENERATE: the count, saturated at UINT64_MAX */
    uint64_t seq;     /* UNREDEEM: the redemption; EXPORT HISTORY, AUDIT: after= (0: absent) */
    uint32_t seconds; /* HOLD: PROTO_HOLD_SECONDS_DEFAULT when absent */
    enum proto_export export_what; /* EXPORT */
    /* GENERATE: the coupons' fields (the code and uses unused), prefix= ("" when absent, upper
     * case) and length= (PROTO_GEN_LENGTH_DEFAULT when absent). */
    struct proto_coupon gen;
    char prefix[PROTO_PREFIX_MAX + 1];
    uint32_t length;
    /* Version 2, the commands of Redis clients. `name`: the key's name of `AUTH name key` and of
     * HELLO's AUTH ("" for none). `protover`: HELLO's protocol, 2 or 3 (0 when absent). `sub`:
     * the subcommand of CLIENT, COMMAND and CONFIG in upper case ("" for none). `words`: the
     * words after it; INFO's section, SELECT's index, ECHO's message; HELLO's SETNAME name
     * (then `setname` is set): as given, pointing into the line (or the arguments) like `key`.
     * In RESP, the words of CLIENT and ECHO may hold any bytes, none at all included. */
    char name[PROTO_USER_MAX + 1];
    uint32_t protover;
    char sub[PROTO_SUB_MAX + 1];
    struct proto_word {
        const char *p; /* not NUL-terminated */
        size_t len;
    } words[PROTO_WORDS_KEPT];
    size_t nwords;
    bool setname;
};

/* An error result: the code and a human message (no CR/LF, printable ASCII). */
struct proto_error {
    enum proto_err code;
    char msg[160];
};

/* Name of an error code as sent on the wire ("BAD_REQUEST"), or "OK" for PROTO_OK. */
const char *proto_err_name(enum proto_err e);

/* Upper-case name of a type ("NONE", "FREE", ...). */
const char *proto_type_name(enum proto_type t);

/* Upper-case name of a discount kind ("FLAT", "PERCENT"). */
const char *proto_kind_name(enum proto_kind k);

/* Parses one request line as the framer (frame.h) cut it: without its LF and the one CR before
 * it; any CR left is a control byte. Words are separated by
 * runs of spaces and tabs; the verb is case-insensitive.
 * Returns true and fills *req on success. Returns false and fills *err otherwise:
 *   - NUL byte anywhere, or a byte outside printable ASCII other than space/tab: BAD_REQUEST;
 *   - more than PROTO_MAX_LINE bytes: TOO_LONG;
 *   - unknown verb: UNKNOWN_COMMAND;
 *   - wrong argument count or an argument that fails its value rule: BAD_REQUEST;
 *   - except a STATUS or WAIT task id that fails its rule: BAD_TASK with PROTO_BAD_TASK_MSG,
 *     and a RELEASE or hold= hold id that fails it: BAD_HOLD with PROTO_BAD_HOLD_MSG;
 *   - UPLOAD whose count is not a positive decimal number: BAD_REQUEST.
 *     A positive count above any limit is NOT an error here: the caller compares
 *     req->count against its own --max-upload (PROTOCOL.md's TOO_LARGE). GENERATE's n alike.
 * Options. After a verb's positional arguments come its options, `name=value` words with a
 * lower-case name, each at most once: hold= (REDEEM), prefix= and length= (GENERATE), after=
 * (EXPORT HISTORY and AUDIT), and id= (REQUEST, REDEEM, UPLOAD, HOLD, RELEASE, UNREDEEM,
 * GENERATE), which must be the last word. A word is taken as an option only beyond the verb's
 * required arguments, so `REQUEST id=x` names the user "id=x".
 * An empty or all-blank line is an error too (BAD_REQUEST); callers skip those before calling,
 * see proto_line_is_blank. The line is not modified. On failure *req is unspecified. */
bool proto_parse_request(const char *line, size_t len, struct proto_request *req,
                         struct proto_error *err);

/* One argument of a request that arrives as separate strings (RESP, see frame.h) instead of
 * as the words of a line. */
enum proto_arg_kind {
    PROTO_ARG_STRING = 0, /* p and len hold its bytes */
    PROTO_ARG_NULL,       /* RESP's null string `$-1`: p is NULL, len 0 */
    PROTO_ARG_TOO_LONG    /* longer than a line allows: dropped unread, p is NULL, len its size */
};

struct proto_arg {
    const char *p; /* not NUL-terminated; points into the caller's buffer */
    size_t len;
    enum proto_arg_kind kind;
};

/* Parses a request given as arguments (RESP): args[0, nargs) are the first `nargs` of its
 * `argc` arguments, args[0] the verb. The rules are the line's, applied by the same code:
 *   - the verb and every argument of a command must be what a line's word can be, 1 or more
 *     bytes of printable ASCII without blanks (so `REQUEST "al ice"` is refused, not split):
 *     else BAD_REQUEST naming the argument (a null string, an empty one, a blank, a byte);
 *   - no verb handed over (nargs 0, or args[0] too long): TOO_LONG;
 *   - unknown verb: UNKNOWN_COMMAND; wrong argument count (argc - 1): BAD_REQUEST "usage: ...";
 *   - an argument not handed over (nargs < argc, or one too long): TOO_LONG;
 *   - then each argument's value rule, with the line's errors (BAD_TASK for a task id).
 * CLIENT's arguments after its subcommand and ECHO's message are exempt from the word rule: any
 * bytes, an empty or null string (taken as empty) too, as Redis takes them (a CLIENT SETINFO
 * value may hold blanks); an over-long one is still TOO_LONG.
 * UPLOAD is the exception: its arguments after the verb are its records, not words, and are not
 * read here; req->count is argc - 1 (at least 1, else BAD_REQUEST); the caller hands args[1,
 * nargs) and every later argument to the upload, as records, and compares the count with its
 * --max-upload (TOO_LARGE) as for a line.
 * So a request this accepts, other than UPLOAD, is the line of its arguments joined by spaces,
 * and proto_parse_request makes the same struct of that line. req->key (AUTH) points into
 * args[1].p. Returns true and fills *req, or false and fills *err (*req unspecified). */
bool proto_parse_args(const struct proto_arg *args, size_t nargs, size_t argc,
                      struct proto_request *req, struct proto_error *err);

/* True when the line (as the framer cut it) holds only spaces and tabs. */
bool proto_line_is_blank(const char *line, size_t len);

/* True when the line starts like an HTTP request: an HTTP method in upper case ("GET",
 * "POST", ...) as its whole first word. No coupond verb is one, so a server can tell a browser
 * (or anything else speaking HTTP at it) apart on the first line and hang up. */
bool proto_looks_like_http(const char *line, size_t len);

/* Value rules of PROTOCOL.md. Each parses exactly `len` bytes (no surrounding blanks), returns
 * true on success and writes its output; on failure returns false, leaves the output untouched
 * and, when `why` is not NULL, points it at a static reason ("code longer than 64 characters"). */
bool proto_parse_user(const char *s, size_t len, char out[PROTO_USER_MAX + 1], const char **why);
bool proto_parse_code(const char *s, size_t len, char out[PROTO_CODE_MAX + 1], const char **why);
/* Empty, "-", "NONE", "FREE", "STANDARD", "MEGADEAL", any case. */
bool proto_parse_type(const char *s, size_t len, enum proto_type *out, const char **why);
/* "FLAT" or "PERCENT", any case. */
bool proto_parse_kind(const char *s, size_t len, enum proto_kind *out, const char **why);
/* A decimal with at most 2 places, > 0: "20", "12.5", "0.01". No sign, no exponent. The range
 * check against the kind is proto_check_discount's job. */
bool proto_parse_discount(const char *s, size_t len, int64_t *cents, const char **why);
/* > 0, and at most PROTO_PERCENT_MAX_CENTS for PERCENT, PROTO_FLAT_MAX_CENTS for FLAT. */
bool proto_check_discount(int64_t cents, enum proto_kind kind, const char **why);
/* RFC 3339 ("2026-12-31T23:59:59Z", "...+02:00", lower-case t/z, optional fractional seconds,
 * which are dropped) or a bare date "YYYY-MM-DD" meaning 23:59:59Z of that day. Calendar-checked
 * (no Feb 30), result in [PROTO_TIME_MIN, PROTO_TIME_MAX]. */
bool proto_parse_time(const char *s, size_t len, int64_t *out, const char **why);
/* An integer 1..PROTO_USES_MAX, digits only. */
bool proto_parse_max_uses(const char *s, size_t len, uint32_t *out, const char **why);
/* At most PROTO_TASK_MAX characters of A-Z a-z 0-9 _ -, at least 1. */
bool proto_parse_task(const char *s, size_t len, char out[PROTO_TASK_MAX + 1], const char **why);

/* A request id: 1 to PROTO_RID_MAX characters of A-Z a-z 0-9 _ - . : (case kept). */
bool proto_parse_rid(const char *s, size_t len, char out[PROTO_RID_MAX + 1], const char **why);

/* Parses an upload record line "code,type,discount,kind,expires,max_uses" as the framer cut
 * it (LF and the one CR before it removed; any other CR is a control byte); blanks around
 * fields are ignored. Fills *out (uses = 0) and returns
 * true; or returns false with a static reason in *why naming the field, e.g.
 * "bad discount: more than 2 decimal places". */
bool proto_parse_record(const char *line, size_t len, struct proto_coupon *out, const char **why);

/* Formatting. Each writes a NUL-terminated string into buf (which must hold the documented
 * *_BUF size) and returns its length. */
size_t proto_fmt_time(char buf[PROTO_TIME_BUF], int64_t t);             /* "2026-12-31T23:59:59Z" */
size_t proto_fmt_discount(char buf[PROTO_DISCOUNT_BUF], int64_t cents); /* "12.50" */
/* "code=C type=T discount=D kind=K expires=E uses=U max_uses=M" */
size_t proto_fmt_coupon(char buf[PROTO_COUPON_BUF], const struct proto_coupon *c);
/* "CODE,TYPE,12.50,FLAT,2026-12-31T23:59:59Z,3" (type empty for PROTO_TYPE_NONE); the exact
 * inverse of proto_parse_record. */
size_t proto_fmt_record(char buf[PROTO_RECORD_BUF], const struct proto_coupon *c);

/* The canonical line of a parsed request: the verb and its arguments as they were kept (codes
 * and types in upper case, numbers and times normalised, HOLD's seconds and GENERATE's length
 * always written, options in a fixed order), so two requests that mean the same have the same
 * line, and the line parses back to the same request. id= is written only when `with_id`: a
 * request's fingerprint is its canonical line without it. AUTH's key is written as given. */
size_t proto_fmt_request(char buf[PROTO_REQUEST_BUF], const struct proto_request *r, bool with_id);

/* Client side: reading replies. */
enum proto_reply_kind { PROTO_REPLY_DATA = 0, PROTO_REPLY_OK, PROTO_REPLY_ERR };

/* Classifies one reply line (LF excluded): "OK" or "OK ..." is OK, "ERR ..." is ERR, anything
 * else is a data line. */
enum proto_reply_kind proto_reply_kind(const char *line, size_t len);

/* For an ERR line, the error code it names (PROTO_ERR_INTERNAL when it names none we know). */
enum proto_err proto_reply_err(const char *line, size_t len);

/* Finds the value of a `key=value` word in a reply line. On success points *val into the
 * line, sets *val_len, and returns true. */
bool proto_reply_field(const char *line, size_t len, const char *key, const char **val,
                       size_t *val_len);

/* Parses a line that carries coupon fields (`code=...` through `max_uses=...`, anywhere in the
 * line, e.g. after "OK " or "OK task=... status=granted "). Returns false when a field is
 * missing or malformed. */
bool proto_reply_coupon(const char *line, size_t len, struct proto_coupon *out);

/* Parses "STAT name value" with a non-negative integer value. *name points into the line. */
bool proto_reply_stat(const char *line, size_t len, const char **name, size_t *name_len,
                      uint64_t *value);

/* Parses "STAT name value" with any one-word value (a number or a text, see stat.h): *name and
 * *value point into the line. */
bool proto_reply_stat_word(const char *line, size_t len, const char **name, size_t *name_len,
                           const char **value, size_t *value_len);

#endif
