/* test_proto.c - unit tests of protocol/: every value rule at its boundaries, request and record
 * parsing, formatting round trips and reply parsing, against ../shared/PROTOCOL.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* ---- Helpers ---- */

/* A string of n copies of c, NUL-terminated; buf must hold n + 1 bytes. */
static char *
fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static bool
parse(const char *line, struct proto_request *r, struct proto_error *e)
{
    return proto_parse_request(line, strlen(line), r, e);
}

/* An error message must be printable ASCII, NUL-terminated inside msg, with no CR or LF. */
static void
assert_msg_clean(const struct proto_error *e)
{
    size_t n = strnlen(e->msg, sizeof e->msg);
    assert_true(n < sizeof e->msg);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)e->msg[i];
        assert_true(c >= 0x20 && c <= 0x7e);
    }
}

/* Parses line[0..len) expecting failure with `code` and a message containing `part`. */
static void
expect_fail_len(const char *line, size_t len, enum proto_err code, const char *part)
{
    struct proto_request r;
    struct proto_error e;

    memset(&e, 0, sizeof e);
    assert_false(proto_parse_request(line, len, &r, &e));
    assert_int_equal(e.code, code);
    assert_msg_clean(&e);
    if (strstr(e.msg, part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", e.msg, part);
}

static void
expect_fail(const char *line, enum proto_err code, const char *part)
{
    expect_fail_len(line, strlen(line), code, part);
}

static void
expect_ok(const char *line, enum proto_cmd cmd, struct proto_request *r)
{
    struct proto_error e;

    if (!parse(line, r, &e))
        fail_msg("\"%s\" rejected: %s %s", line, proto_err_name(e.code), e.msg);
    assert_int_equal(r->cmd, cmd);
}

static void
assert_why(const char *why, const char *part)
{
    assert_non_null(why);
    if (strstr(why, part) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", why, part);
}

static bool
time_of(const char *s, int64_t *t)
{
    return proto_parse_time(s, strlen(s), t, NULL);
}

static void
expect_time(const char *s, int64_t want)
{
    int64_t t = -12345;
    const char *why = NULL;

    if (!proto_parse_time(s, strlen(s), &t, &why))
        fail_msg("\"%s\" rejected: %s", s, why);
    assert_int_equal(t, want);
}

static void
expect_time_bad(const char *s, const char *part)
{
    int64_t t = 777;
    const char *why = NULL;

    if (proto_parse_time(s, strlen(s), &t, &why))
        fail_msg("\"%s\" accepted as %lld", s, (long long)t);
    assert_int_equal(t, 777); /* untouched */
    assert_why(why, part);
}

static void
expect_discount(const char *s, int64_t want)
{
    int64_t c = -1;
    const char *why = NULL;

    if (!proto_parse_discount(s, strlen(s), &c, &why))
        fail_msg("\"%s\" rejected: %s", s, why);
    assert_int_equal(c, want);
}

static void
expect_discount_bad(const char *s, const char *part)
{
    int64_t c = 4242;
    const char *why = NULL;

    if (proto_parse_discount(s, strlen(s), &c, &why))
        fail_msg("\"%s\" accepted as %lld", s, (long long)c);
    assert_int_equal(c, 4242);
    assert_why(why, part);
}

static void
expect_record_bad(const char *line, const char *part)
{
    struct proto_coupon c;
    const char *why = NULL;

    memset(&c, 0x5a, sizeof c);
    if (proto_parse_record(line, strlen(line), &c, &why))
        fail_msg("record \"%s\" accepted", line);
    assert_why(why, part);
    assert_int_equal((unsigned char)c.code[0], 0x5a); /* untouched */
}

static struct proto_coupon
coupon(const char *code, enum proto_type type, int64_t discount, enum proto_kind kind,
       int64_t expires, uint32_t uses, uint32_t max_uses)
{
    struct proto_coupon c;

    memset(&c, 0, sizeof c);
    snprintf(c.code, sizeof c.code, "%s", code);
    c.type = type;
    c.discount = discount;
    c.kind = kind;
    c.expires = expires;
    c.uses = uses;
    c.max_uses = max_uses;
    return c;
}

static void
assert_coupon_equal(const struct proto_coupon *a, const struct proto_coupon *b)
{
    assert_string_equal(a->code, b->code);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->discount, b->discount);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->expires, b->expires);
    assert_int_equal(a->uses, b->uses);
    assert_int_equal(a->max_uses, b->max_uses);
}

/* ---- Names and the verb table ---- */

static void
test_err_names(void **state)
{
    static const char *const want[PROTO_NERRS] = {
        "OK",         "BAD_REQUEST", "UNKNOWN_COMMAND", "TOO_LONG",     "TOO_LARGE",
        "DENIED",     "NO_COUPONS",  "INVALID",         "EXPIRED",      "EXHAUSTED",
        "BUSY",       "TIMEOUT",     "BAD_TASK",        "UNKNOWN_TASK", "BAD_BATCH",
        "INTERNAL",   "ID_CONFLICT", "UNKNOWN_HOLD",    "BAD_HOLD",     "UNKNOWN_REDEMPTION",
        "UNAVAILABLE"};
    (void)state;
    for (int e = 0; e < PROTO_NERRS; e++)
        assert_string_equal(proto_err_name((enum proto_err)e), want[e]);
}

static void
test_err_name_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(proto_err_name(PROTO_NERRS), "INTERNAL");
    assert_string_equal(proto_err_name((enum proto_err)1000), "INTERNAL");
}

static void
test_type_and_kind_names(void **state)
{
    (void)state;
    assert_string_equal(proto_type_name(PROTO_TYPE_NONE), "NONE");
    assert_string_equal(proto_type_name(PROTO_TYPE_FREE), "FREE");
    assert_string_equal(proto_type_name(PROTO_TYPE_STANDARD), "STANDARD");
    assert_string_equal(proto_type_name(PROTO_TYPE_MEGADEAL), "MEGADEAL");
    assert_string_equal(proto_kind_name(PROTO_KIND_FLAT), "FLAT");
    assert_string_equal(proto_kind_name(PROTO_KIND_PERCENT), "PERCENT");
    assert_string_equal(proto_type_name(PROTO_NTYPES), "?");
    assert_string_equal(proto_kind_name(PROTO_NKINDS), "?");
}

static void
test_verb_table_shape(void **state)
{
    (void)state;
    for (int i = 0; i < PROTO_NCMDS; i++) {
        const struct proto_verb *v = &proto_verbs[i];
        assert_non_null(v->name);
        assert_int_equal(v->cmd, i);
        assert_true(v->min_args <= v->max_args);
        assert_true(v->max_args < PROTO_MAX_WORDS);
        /* The synopsis is the usage line: it starts with the verb itself. */
        assert_int_equal(strncmp(v->synopsis, v->name, strlen(v->name)), 0);
        for (const char *p = v->name; *p; p++)
            assert_true(*p >= 'A' && *p <= 'Z');
    }
}

static void
test_verb_table_args_and_admin(void **state)
{
    static const struct {
        enum proto_cmd cmd;
        const char *name;
        int min, max;
        bool admin;
    } want[] = {
        {PROTO_CMD_PING, "PING", 0, 0, false},         {PROTO_CMD_HELP, "HELP", 0, 0, false},
        {PROTO_CMD_AUTH, "AUTH", 1, 2, false},         {PROTO_CMD_REQUEST, "REQUEST", 1, 2, false},
        {PROTO_CMD_STATUS, "STATUS", 1, 1, false},     {PROTO_CMD_WAIT, "WAIT", 1, 1, false},
        {PROTO_CMD_VALIDATE, "VALIDATE", 2, 2, false}, {PROTO_CMD_REDEEM, "REDEEM", 2, 2, false},
        {PROTO_CMD_QUIT, "QUIT", 0, 0, false},         {PROTO_CMD_UPLOAD, "UPLOAD", 1, 1, true},
        {PROTO_CMD_PURGE, "PURGE", 0, 0, true},        {PROTO_CMD_STATS, "STATS", 0, 0, true},
    };
    (void)state;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct proto_verb *v = &proto_verbs[want[i].cmd];
        assert_string_equal(v->name, want[i].name);
        assert_int_equal(v->min_args, want[i].min);
        assert_int_equal(v->max_args, want[i].max);
        assert_int_equal(v->admin, want[i].admin);
    }
}

/* ---- Requests ---- */

static void
test_req_ping(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("PING", PROTO_CMD_PING, &r);
    assert_null(r.key);
    assert_int_equal(r.key_len, 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.type, PROTO_TYPE_NONE);
    assert_string_equal(r.user, "");
}

/* One valid line per verb, in the case given by `mode`: 0 upper, 1 lower, 2 mixed. */
static void
check_all_verbs(int mode)
{
    static const char *const args[PROTO_NCMDS] = {
        [PROTO_CMD_AUTH] = " secret",
        [PROTO_CMD_REQUEST] = " alice",
        [PROTO_CMD_STATUS] = " task-1",
        [PROTO_CMD_WAIT] = " task-1",
        [PROTO_CMD_VALIDATE] = " alice C1",
        [PROTO_CMD_REDEEM] = " alice C1",
        [PROTO_CMD_UPLOAD] = " 3",
        [PROTO_CMD_HOLD] = " alice C1",
        [PROTO_CMD_RELEASE] = " hold-1",
        [PROTO_CMD_UNREDEEM] = " alice 1",
        [PROTO_CMD_COUPONS] = " alice",
        [PROTO_CMD_COUPON] = " C1",
        [PROTO_CMD_GENERATE] = " 1 - 1 FLAT 2030-01-01 1",
        [PROTO_CMD_EXPORT] = " HISTORY",
        [PROTO_CMD_CLIENT] = " ID",
        [PROTO_CMD_CONFIG] = " GET save",
        [PROTO_CMD_SELECT] = " 0",
        [PROTO_CMD_ECHO] = " hi",
        [PROTO_CMD_BACKUP] = " /var/backups/coupond",
    };
    for (int c = 0; c < PROTO_NCMDS; c++) {
        char line[64];
        struct proto_request r;
        size_t n = strlen(proto_verbs[c].name);
        memcpy(line, proto_verbs[c].name, n + 1);
        for (size_t i = 0; i < n; i++)
            if (mode == 1 || (mode == 2 && i % 2 == 1))
                line[i] = (char)(line[i] - 'A' + 'a');
        strcat(line, args[c] != NULL ? args[c] : "");
        expect_ok(line, (enum proto_cmd)c, &r);
    }
}

static void
test_req_every_verb_upper(void **state)
{
    (void)state;
    check_all_verbs(0);
}

static void
test_req_every_verb_lower(void **state)
{
    (void)state;
    check_all_verbs(1);
}

static void
test_req_every_verb_mixed(void **state)
{
    (void)state;
    check_all_verbs(2);
}

static void
test_req_arg_count_errors(void **state)
{
    (void)state;
    for (int c = 0; c < PROTO_NCMDS; c++) {
        const struct proto_verb *v = &proto_verbs[c];
        char line[128];
        char usage[96];
        snprintf(usage, sizeof usage, "usage: %s", v->synopsis);
        /* One argument too many. */
        snprintf(line, sizeof line, "%s", v->name);
        for (int a = 0; a <= v->max_args; a++)
            strcat(line, " x1");
        expect_fail(line, PROTO_ERR_BAD_REQUEST, usage);
        /* One too few, where there is a minimum. */
        if (v->min_args > 0) {
            snprintf(line, sizeof line, "%s", v->name);
            for (int a = 0; a + 1 < v->min_args; a++)
                strcat(line, " x1");
            expect_fail(line, PROTO_ERR_BAD_REQUEST, usage);
        }
    }
}

static void
test_req_usage_message_exact(void **state)
{
    struct proto_request r;
    struct proto_error e;
    (void)state;
    assert_false(parse("REDEEM alice", &r, &e));
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
    assert_string_equal(e.msg, "usage: REDEEM user code [hold=HID] [id=RID]");
    assert_false(parse("request", &r, &e));
    assert_string_equal(e.msg, "usage: REQUEST user [type] [id=RID]");
}

static void
test_req_too_many_words(void **state)
{
    (void)state;
    expect_fail("PING a b c d e f g h i j k l", PROTO_ERR_BAD_REQUEST, "usage: PING");
    expect_fail("REDEEM a b c d e f g h i j k l", PROTO_ERR_BAD_REQUEST, "usage: REDEEM");
}

static void
test_req_unknown_command(void **state)
{
    struct proto_request r;
    struct proto_error e;
    (void)state;
    assert_false(parse("FOO bar", &r, &e));
    assert_int_equal(e.code, PROTO_ERR_UNKNOWN_COMMAND);
    assert_string_equal(e.msg, "unknown command FOO");
    expect_fail("PINGX", PROTO_ERR_UNKNOWN_COMMAND, "PINGX");
    expect_fail("PIN", PROTO_ERR_UNKNOWN_COMMAND, "PIN");
    expect_fail("STAT", PROTO_ERR_UNKNOWN_COMMAND, "STAT");
    expect_fail("  frob\t1 2", PROTO_ERR_UNKNOWN_COMMAND, "frob");
}

static void
test_req_unknown_long_verb_truncated(void **state)
{
    char line[301];
    struct proto_request r;
    struct proto_error e;
    (void)state;
    fill(line, 'Z', 300);
    assert_false(parse(line, &r, &e));
    assert_int_equal(e.code, PROTO_ERR_UNKNOWN_COMMAND);
    assert_msg_clean(&e);
    assert_non_null(strstr(e.msg, "..."));
    assert_true(strlen(e.msg) < 80);
}

static void
test_req_empty_and_blank(void **state)
{
    (void)state;
    expect_fail("", PROTO_ERR_BAD_REQUEST, "empty");
    expect_fail(" \t  ", PROTO_ERR_BAD_REQUEST, "empty");
    /* The framer removes the one CR before the LF; a CR that reaches the parser is a byte. */
    expect_fail("\r", PROTO_ERR_BAD_REQUEST, "control byte 0x0D");
    expect_fail("\t\t\r", PROTO_ERR_BAD_REQUEST, "control byte 0x0D");
}

static void
test_req_nul_byte(void **state)
{
    (void)state;
    expect_fail_len("PING\0", 5, PROTO_ERR_BAD_REQUEST, "NUL byte");
    expect_fail_len("RE\0DEEM a b", 11, PROTO_ERR_BAD_REQUEST, "NUL byte in request");
    expect_fail_len("\0", 1, PROTO_ERR_BAD_REQUEST, "NUL byte");
    /* The position is named, counting from 1. */
    expect_fail_len("RE\0DEEM a b", 11, PROTO_ERR_BAD_REQUEST, "position 3");
}

static void
test_req_control_bytes(void **state)
{
    (void)state;
    expect_fail("PING\x01", PROTO_ERR_BAD_REQUEST, "control byte 0x01");
    expect_fail("PI\x1bNG", PROTO_ERR_BAD_REQUEST, "control byte 0x1B");
    expect_fail("PING\x7f", PROTO_ERR_BAD_REQUEST, "control byte 0x7F");
    expect_fail("REDEEM a\rb c", PROTO_ERR_BAD_REQUEST, "control byte 0x0D");
    expect_fail("PING\n", PROTO_ERR_BAD_REQUEST, "control byte 0x0A");
    expect_fail("PING\v", PROTO_ERR_BAD_REQUEST, "control byte");
}

static void
test_req_non_ascii(void **state)
{
    (void)state;
    expect_fail("REQUEST j\xc3\xa9r\xc3\xb4me", PROTO_ERR_BAD_REQUEST, "non-ASCII byte 0xC3");
    expect_fail("\xff", PROTO_ERR_BAD_REQUEST, "non-ASCII");
}

/* Every byte value in the middle of a user name: only blanks split, printable is kept, anything
 * else is refused with a clean message. */
static void
test_req_every_byte_in_user(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        char line[] = "VALIDATE al?ce C1";
        struct proto_request r;
        struct proto_error e;
        line[11] = (char)b;
        bool ok = proto_parse_request(line, sizeof line - 1, &r, &e);
        if (b >= 0x21 && b <= 0x7e) {
            assert_true(ok);
            assert_int_equal((unsigned char)r.user[2], b);
        } else {
            assert_false(ok);
            assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
            assert_msg_clean(&e);
            if (b == ' ' || b == '\t')
                assert_non_null(strstr(e.msg, "usage"));
        }
    }
}

static void
test_req_tabs_and_runs_of_blanks(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("\t REDEEM \t alice\t\tcode-1  \t", PROTO_CMD_REDEEM, &r);
    assert_string_equal(r.user, "alice");
    assert_string_equal(r.code, "CODE-1");
    expect_ok("PING\t", PROTO_CMD_PING, &r);
}

/* The framer (frame.h) takes the one CR before the LF away; the parser strips none, so a CR
 * left in a line (a second one, or one inside) is a control byte. */
static void
test_req_trailing_cr(void **state)
{
    (void)state;
    expect_fail("PING\r", PROTO_ERR_BAD_REQUEST, "control byte 0x0D");
    expect_fail("REDEEM alice c1\r", PROTO_ERR_BAD_REQUEST, "control byte 0x0D");
    expect_fail("PING\r\r", PROTO_ERR_BAD_REQUEST, "control byte 0x0D");
}

static void
test_req_line_length_limit(void **state)
{
    static char line[PROTO_MAX_LINE + 2];
    struct proto_request r;
    struct proto_error e;
    (void)state;
    /* Exactly 4096 bytes: PING padded with blanks is still a valid request. */
    fill(line, ' ', PROTO_MAX_LINE);
    memcpy(line, "PING", 4);
    assert_true(proto_parse_request(line, PROTO_MAX_LINE, &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_PING);
    /* 4097 bytes. */
    fill(line, ' ', PROTO_MAX_LINE + 1);
    memcpy(line, "PING", 4);
    expect_fail_len(line, PROTO_MAX_LINE + 1, PROTO_ERR_TOO_LONG, "4096");
    /* (That a CR before the LF counts toward the limit is the framer's: test_frame.c.) */
}

static void
test_req_too_long_wins_over_content(void **state)
{
    static char line[5000];
    (void)state;
    memset(line, '\0', sizeof line);
    expect_fail_len(line, sizeof line, PROTO_ERR_TOO_LONG, "longer");
}

static void
test_req_request_without_type(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("REQUEST alice", PROTO_CMD_REQUEST, &r);
    assert_string_equal(r.user, "alice");
    assert_int_equal(r.type, PROTO_TYPE_NONE);
}

static void
test_req_request_type_spellings(void **state)
{
    static const struct {
        const char *word;
        enum proto_type type;
    } cases[] = {
        {"-", PROTO_TYPE_NONE},
        {"NONE", PROTO_TYPE_NONE},
        {"none", PROTO_TYPE_NONE},
        {"FREE", PROTO_TYPE_FREE},
        {"free", PROTO_TYPE_FREE},
        {"Standard", PROTO_TYPE_STANDARD},
        {"STANDARD", PROTO_TYPE_STANDARD},
        {"megadeal", PROTO_TYPE_MEGADEAL},
        {"MegaDeal", PROTO_TYPE_MEGADEAL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[64];
        struct proto_request r;
        snprintf(line, sizeof line, "REQUEST bob %s", cases[i].word);
        expect_ok(line, PROTO_CMD_REQUEST, &r);
        assert_int_equal(r.type, cases[i].type);
        assert_string_equal(r.user, "bob");
    }
}

static void
test_req_request_bad_type(void **state)
{
    (void)state;
    expect_fail("REQUEST bob GOLD", PROTO_ERR_BAD_REQUEST, "bad type");
    expect_fail("REQUEST bob --", PROTO_ERR_BAD_REQUEST, "bad type");
    expect_fail("REQUEST bob FREEE", PROTO_ERR_BAD_REQUEST, "bad type");
}

static void
test_req_user_length(void **state)
{
    char line[300];
    char user[PROTO_USER_MAX + 2];
    struct proto_request r;
    struct proto_error e;
    (void)state;
    snprintf(line, sizeof line, "REQUEST %s", fill(user, 'u', PROTO_USER_MAX));
    expect_ok(line, PROTO_CMD_REQUEST, &r);
    assert_int_equal(strlen(r.user), PROTO_USER_MAX);
    snprintf(line, sizeof line, "REQUEST %s", fill(user, 'u', PROTO_USER_MAX + 1));
    assert_false(parse(line, &r, &e));
    assert_int_equal(e.code, PROTO_ERR_BAD_REQUEST);
    assert_string_equal(e.msg, "bad user: longer than 128 characters");
}

static void
test_req_code_length(void **state)
{
    char line[300];
    char code[PROTO_CODE_MAX + 2];
    struct proto_request r;
    (void)state;
    snprintf(line, sizeof line, "VALIDATE u %s", fill(code, 'c', PROTO_CODE_MAX));
    expect_ok(line, PROTO_CMD_VALIDATE, &r);
    assert_string_equal(r.code, fill(code, 'C', PROTO_CODE_MAX));
    snprintf(line, sizeof line, "VALIDATE u %s", fill(code, 'c', PROTO_CODE_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_REQUEST, "bad code: longer than 64 characters");
}

static void
test_req_code_normalised(void **state)
{
    struct proto_request r;
    (void)state;
    expect_ok("redeem alice summer-1.x_y", PROTO_CMD_REDEEM, &r);
    assert_string_equal(r.code, "SUMMER-1.X_Y");
    /* User names keep their case. */
    assert_string_equal(r.user, "alice");
    expect_fail("REDEEM alice a/b", PROTO_ERR_BAD_REQUEST, "bad code");
}

static void
test_req_task_length(void **state)
{
    char line[300];
    char task[PROTO_TASK_MAX + 2];
    struct proto_request r;
    (void)state;
    snprintf(line, sizeof line, "STATUS %s", fill(task, 'T', PROTO_TASK_MAX));
    expect_ok(line, PROTO_CMD_STATUS, &r);
    assert_string_equal(r.task, task);
    snprintf(line, sizeof line, "WAIT %s", fill(task, 'T', PROTO_TASK_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_TASK, PROTO_BAD_TASK_MSG);
    expect_fail("WAIT abc.def", PROTO_ERR_BAD_TASK, PROTO_BAD_TASK_MSG);
}

/* A task id that fails its value rule is BAD_TASK, with one message whatever the reason; a
 * wrong number of arguments stays BAD_REQUEST. */
static void
test_req_bad_task_id(void **state)
{
    static const char *const bad[] = {
        "STATUS a!b", "WAIT a.b", "STATUS a=b", "WAIT a+b/c", "status \"x\"",
    };
    struct proto_error e;
    struct proto_request r;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_fail(bad[i], PROTO_ERR_BAD_TASK, PROTO_BAD_TASK_MSG);
        assert_false(parse(bad[i], &r, &e));
        assert_string_equal(e.msg, PROTO_BAD_TASK_MSG);
    }
    expect_fail("STATUS", PROTO_ERR_BAD_REQUEST, "usage");
    expect_fail("WAIT a b", PROTO_ERR_BAD_REQUEST, "usage");
    /* Other arguments keep their own errors. */
    expect_fail("REQUEST alice BOGUS", PROTO_ERR_BAD_REQUEST, "bad type");
}

static void
test_req_auth_key(void **state)
{
    const char *line = "AUTH  3f9c+/=e1";
    struct proto_request r;
    (void)state;
    expect_ok(line, PROTO_CMD_AUTH, &r);
    /* The key points into the line itself. */
    assert_ptr_equal(r.key, line + 6);
    assert_int_equal(r.key_len, 9);
    assert_memory_equal(r.key, "3f9c+/=e1", 9);
}

static void
test_req_auth_key_length(void **state)
{
    char line[300];
    char key[PROTO_KEY_MAX + 2];
    struct proto_request r;
    (void)state;
    snprintf(line, sizeof line, "AUTH %s", fill(key, 'k', PROTO_KEY_MAX));
    expect_ok(line, PROTO_CMD_AUTH, &r);
    assert_int_equal(r.key_len, PROTO_KEY_MAX);
    snprintf(line, sizeof line, "AUTH %s", fill(key, 'k', PROTO_KEY_MAX + 1));
    expect_fail(line, PROTO_ERR_BAD_REQUEST, "bad key");
}

static void
test_req_upload_counts(void **state)
{
    static const struct {
        const char *word;
        uint64_t count;
    } cases[] = {
        {"1", 1},
        {"50000", 50000},
        {"50001", 50001}, /* over the limit is the caller's TOO_LARGE, not ours */
        {"007", 7},
        {"18446744073709551614", UINT64_MAX - 1},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551616", UINT64_MAX},
        {"99999999999999999999999", UINT64_MAX},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[64];
        struct proto_request r;
        snprintf(line, sizeof line, "UPLOAD %s", cases[i].word);
        expect_ok(line, PROTO_CMD_UPLOAD, &r);
        assert_int_equal(r.count, cases[i].count);
    }
}

static void
test_req_upload_bad_counts(void **state)
{
    static const char *const bad[] = {"0", "00", "-1", "+5", "abc", "1.5", "1e3", "0x10", "5k"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "UPLOAD %s", bad[i]);
        expect_fail(line, PROTO_ERR_BAD_REQUEST, "UPLOAD needs a positive record count");
    }
    expect_fail("UPLOAD", PROTO_ERR_BAD_REQUEST, "usage: UPLOAD");
    expect_fail("UPLOAD 1 2", PROTO_ERR_BAD_REQUEST, "usage: UPLOAD");
}

static void
test_req_line_not_modified(void **state)
{
    char line[] = "redeem Alice summer-1";
    char copy[sizeof line];
    struct proto_request r;
    (void)state;
    memcpy(copy, line, sizeof line);
    expect_ok(line, PROTO_CMD_REDEEM, &r);
    assert_memory_equal(line, copy, sizeof line);
}

static void
test_line_is_blank(void **state)
{
    (void)state;
    assert_true(proto_line_is_blank("", 0));
    assert_true(proto_line_is_blank(" ", 1));
    assert_true(proto_line_is_blank("\t \t", 3));
    assert_false(proto_line_is_blank("\r", 1)); /* the framer took the CR before the LF */
    assert_false(proto_line_is_blank("  \r", 3));
    assert_false(proto_line_is_blank("x", 1));
    assert_false(proto_line_is_blank(" PING", 5));
    assert_false(proto_line_is_blank("\r\r", 2));
    assert_false(proto_line_is_blank("\r ", 2));
    assert_false(proto_line_is_blank("\0", 1));
}

static void
test_looks_like_http(void **state)
{
    (void)state;
    static const char *const http[] = {"GET / HTTP/1.1",
                                       "POST /x HTTP/1.0",
                                       "POST",
                                       "HEAD / HTTP/1.1",
                                       "OPTIONS * HTTP/1.1",
                                       "PUT /a HTTP/1.1",
                                       "DELETE /a",
                                       "CONNECT example:443 HTTP/1.1",
                                       "GET\t/"};
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++)
        assert_true(proto_looks_like_http(http[i], strlen(http[i])));
    static const char *const ours[] = {
        "PING", "get / HTTP/1.1", "GETX /", "POSTAL", "REQUEST GET", "", "GE", "STATS"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        assert_false(proto_looks_like_http(ours[i], strlen(ours[i])));
}

/* ---- Value rules: user, code, task ---- */

static void
test_user_boundaries(void **state)
{
    char in[PROTO_USER_MAX + 2];
    char out[PROTO_USER_MAX + 1];
    const char *why = NULL;
    (void)state;
    assert_true(proto_parse_user("a", 1, out, &why));
    assert_string_equal(out, "a");
    assert_true(proto_parse_user(fill(in, 'x', 128), 128, out, &why));
    assert_string_equal(out, in);
    assert_false(proto_parse_user(fill(in, 'x', 129), 129, out, &why));
    assert_why(why, "longer than 128");
    assert_false(proto_parse_user("", 0, out, &why));
    assert_why(why, "bad user: empty");
}

static void
test_user_charset(void **state)
{
    char in[95];
    char out[PROTO_USER_MAX + 1];
    const char *why = NULL;
    (void)state;
    /* Every printable character except space is allowed. */
    for (int c = 0x21; c <= 0x7e; c++)
        in[c - 0x21] = (char)c;
    assert_true(proto_parse_user(in, 94, out, &why));
    assert_memory_equal(out, in, 94);
    assert_false(proto_parse_user("a b", 3, out, &why));
    assert_why(why, "bad user");
    assert_false(proto_parse_user("a\x7f", 2, out, NULL));
    assert_false(proto_parse_user("\xc3\xa9", 2, out, NULL));
    assert_false(proto_parse_user("a\0b", 3, out, NULL));
}

static void
test_user_untouched_on_failure(void **state)
{
    char out[PROTO_USER_MAX + 1] = "sentinel";
    (void)state;
    assert_false(proto_parse_user("a b", 3, out, NULL));
    assert_string_equal(out, "sentinel");
}

static void
test_code_boundaries(void **state)
{
    char in[PROTO_CODE_MAX + 2];
    char out[PROTO_CODE_MAX + 1];
    const char *why = NULL;
    (void)state;
    assert_true(proto_parse_code(fill(in, 'z', 64), 64, out, &why));
    assert_string_equal(out, fill(in, 'Z', 64));
    assert_false(proto_parse_code(fill(in, 'z', 65), 65, out, &why));
    assert_why(why, "bad code: longer than 64 characters");
    assert_false(proto_parse_code("", 0, out, &why));
    assert_why(why, "bad code: empty");
    assert_true(proto_parse_code("q", 1, out, &why));
    assert_string_equal(out, "Q");
}

static void
test_code_charset(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        char in[3] = {'A', (char)b, 'z'};
        char out[PROTO_CODE_MAX + 1];
        bool want = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                    b == '_' || b == '-' || b == '.';
        assert_int_equal(proto_parse_code(in, 3, out, NULL), want);
    }
}

static void
test_code_upper_case(void **state)
{
    char out[PROTO_CODE_MAX + 1];
    (void)state;
    assert_true(proto_parse_code("summer-1.x_y", 12, out, NULL));
    assert_string_equal(out, "SUMMER-1.X_Y");
    assert_true(proto_parse_code("MiXeD09", 7, out, NULL));
    assert_string_equal(out, "MIXED09");
}

static void
test_code_untouched_on_failure(void **state)
{
    char out[PROTO_CODE_MAX + 1] = "SENTINEL";
    const char *why = NULL;
    (void)state;
    assert_false(proto_parse_code("ab,c", 4, out, &why));
    assert_string_equal(out, "SENTINEL");
    assert_why(why, "bad code");
}

static void
test_task_rule(void **state)
{
    char in[PROTO_TASK_MAX + 2];
    char out[PROTO_TASK_MAX + 1] = "keep";
    const char *why = NULL;
    (void)state;
    assert_true(proto_parse_task("AQ_az-09", 8, out, &why));
    assert_string_equal(out, "AQ_az-09");
    assert_true(proto_parse_task(fill(in, 'a', 128), 128, out, &why));
    assert_int_equal(strlen(out), 128);
    strcpy(out, "keep");
    assert_false(proto_parse_task(fill(in, 'a', 129), 129, out, &why));
    assert_why(why, "longer than 128");
    assert_false(proto_parse_task("", 0, out, &why));
    assert_why(why, "empty");
    assert_false(proto_parse_task("a.b", 3, out, &why));
    assert_false(proto_parse_task("a=b", 3, out, &why));
    assert_false(proto_parse_task("a+b", 3, out, &why));
    assert_why(why, "bad task");
    assert_string_equal(out, "keep");
}

/* ---- Value rules: type and kind ---- */

static void
test_type_spellings(void **state)
{
    static const struct {
        const char *s;
        enum proto_type t;
    } cases[] = {
        {"", PROTO_TYPE_NONE},
        {"-", PROTO_TYPE_NONE},
        {"NONE", PROTO_TYPE_NONE},
        {"None", PROTO_TYPE_NONE},
        {"free", PROTO_TYPE_FREE},
        {"FrEe", PROTO_TYPE_FREE},
        {"standard", PROTO_TYPE_STANDARD},
        {"STANDARD", PROTO_TYPE_STANDARD},
        {"megadeal", PROTO_TYPE_MEGADEAL},
        {"MEGADEAL", PROTO_TYPE_MEGADEAL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum proto_type t = PROTO_NTYPES;
        assert_true(proto_parse_type(cases[i].s, strlen(cases[i].s), &t, NULL));
        assert_int_equal(t, cases[i].t);
    }
}

static void
test_type_rejects(void **state)
{
    static const char *const bad[] = {"--", "FREEE", "FRE", "none ", " FREE", "0", "MEGA", "?"};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum proto_type t = PROTO_TYPE_STANDARD;
        const char *why = NULL;
        assert_false(proto_parse_type(bad[i], strlen(bad[i]), &t, &why));
        assert_int_equal(t, PROTO_TYPE_STANDARD);
        assert_why(why, "bad type");
    }
}

static void
test_kind_rule(void **state)
{
    enum proto_kind k = PROTO_NKINDS;
    const char *why = NULL;
    (void)state;
    assert_true(proto_parse_kind("flat", 4, &k, &why));
    assert_int_equal(k, PROTO_KIND_FLAT);
    assert_true(proto_parse_kind("Percent", 7, &k, &why));
    assert_int_equal(k, PROTO_KIND_PERCENT);
    assert_false(proto_parse_kind("", 0, &k, &why));
    assert_false(proto_parse_kind("FLATS", 5, &k, &why));
    assert_false(proto_parse_kind("%", 1, &k, &why));
    assert_false(proto_parse_kind("PERCENTAGE", 10, &k, &why));
    assert_why(why, "bad kind");
    assert_int_equal(k, PROTO_KIND_PERCENT);
}

/* ---- Value rules: discount ---- */

static void
test_discount_values(void **state)
{
    (void)state;
    expect_discount("20", 2000);
    expect_discount("12.5", 1250);
    expect_discount("12.50", 1250);
    expect_discount("0.01", 1);
    expect_discount("0.1", 10);
    expect_discount("0.10", 10);
    expect_discount("1.05", 105);
    expect_discount("100", 10000);
    expect_discount("100.01", 10001); /* syntax only: the kind's range is checked apart */
    expect_discount("007.5", 750);
    expect_discount("0000000000000000000000000000001", 100);
    expect_discount("1000000000", 100000000000LL);
}

static void
test_discount_rejects(void **state)
{
    (void)state;
    expect_discount_bad("", "empty");
    expect_discount_bad("0", "greater than 0");
    expect_discount_bad("0.00", "greater than 0");
    expect_discount_bad("00.0", "greater than 0");
    expect_discount_bad("1.234", "more than 2 decimal places");
    expect_discount_bad("0.001", "more than 2 decimal places");
    expect_discount_bad(".5", "before the decimal point");
    expect_discount_bad("12.", "after the decimal point");
    expect_discount_bad("-1", "not a decimal number");
    expect_discount_bad("+1", "not a decimal number");
    expect_discount_bad("1e3", "not a decimal number");
    expect_discount_bad("1,5", "not a decimal number");
    expect_discount_bad(" 1", "not a decimal number");
    expect_discount_bad("1 ", "not a decimal number");
    expect_discount_bad("1..2", "not a decimal number");
    expect_discount_bad("1.2.3", "not a decimal number");
    expect_discount_bad("0x10", "not a decimal number");
    expect_discount_bad("abc", "not a decimal number");
    expect_discount_bad("1.5%", "not a decimal number");
    expect_discount_bad(".", "before the decimal point");
}

static void
test_discount_overflow(void **state)
{
    (void)state;
    /* The largest whole part that fits with .99 in an int64_t of hundredths. */
    expect_discount("92233720368547757.99", INT64_C(9223372036854775799));
    expect_discount_bad("92233720368547758", "too large");
    expect_discount_bad("92233720368547758.00", "too large");
    expect_discount_bad("99999999999999999999999999999999", "too large");
}

static void
test_check_discount(void **state)
{
    const char *why = NULL;
    (void)state;
    assert_true(proto_check_discount(1, PROTO_KIND_PERCENT, &why));
    assert_true(proto_check_discount(10000, PROTO_KIND_PERCENT, &why));
    assert_false(proto_check_discount(10001, PROTO_KIND_PERCENT, &why));
    assert_why(why, "bad discount");
    assert_true(proto_check_discount(1, PROTO_KIND_FLAT, &why));
    assert_true(proto_check_discount(10001, PROTO_KIND_FLAT, &why));
    assert_true(proto_check_discount(PROTO_FLAT_MAX_CENTS, PROTO_KIND_FLAT, &why));
    assert_false(proto_check_discount(PROTO_FLAT_MAX_CENTS + 1, PROTO_KIND_FLAT, &why));
    assert_why(why, "FLAT");
    assert_false(proto_check_discount(0, PROTO_KIND_FLAT, &why));
    assert_why(why, "greater than 0");
    assert_false(proto_check_discount(-1, PROTO_KIND_PERCENT, &why));
    assert_false(proto_check_discount(INT64_MIN, PROTO_KIND_FLAT, NULL));
    assert_false(proto_check_discount(100, PROTO_NKINDS, &why));
    assert_why(why, "kind");
}

static void
test_percent_100_point_01_rejected(void **state)
{
    int64_t c = 0;
    const char *why = NULL;
    (void)state;
    assert_true(proto_parse_discount("100.01", 6, &c, NULL));
    assert_false(proto_check_discount(c, PROTO_KIND_PERCENT, &why));
    assert_why(why, "at most 100");
    assert_true(proto_parse_discount("100", 3, &c, NULL));
    assert_true(proto_check_discount(c, PROTO_KIND_PERCENT, &why));
}

static void
test_fmt_discount(void **state)
{
    char buf[PROTO_DISCOUNT_BUF];
    (void)state;
    assert_int_equal(proto_fmt_discount(buf, 1250), 5);
    assert_string_equal(buf, "12.50");
    proto_fmt_discount(buf, 1);
    assert_string_equal(buf, "0.01");
    proto_fmt_discount(buf, 10000);
    assert_string_equal(buf, "100.00");
    proto_fmt_discount(buf, 2000);
    assert_string_equal(buf, "20.00");
    proto_fmt_discount(buf, 0);
    assert_string_equal(buf, "0.00");
    proto_fmt_discount(buf, 105);
    assert_string_equal(buf, "1.05");
    proto_fmt_discount(buf, -5);
    assert_string_equal(buf, "-0.05");
    proto_fmt_discount(buf, PROTO_FLAT_MAX_CENTS);
    assert_string_equal(buf, "1000000000.00");
}

static void
test_fmt_discount_extremes(void **state)
{
    char buf[PROTO_DISCOUNT_BUF + 8];
    (void)state;
    memset(buf, '#', sizeof buf);
    size_t n = proto_fmt_discount(buf, INT64_MIN);
    assert_string_equal(buf, "-92233720368547758.08");
    assert_int_equal(n, strlen(buf));
    assert_true(n < PROTO_DISCOUNT_BUF);
    assert_int_equal(buf[PROTO_DISCOUNT_BUF], '#');
    n = proto_fmt_discount(buf, INT64_MAX);
    assert_string_equal(buf, "92233720368547758.07");
    assert_int_equal(n, strlen(buf));
}

static void
test_discount_round_trip(void **state)
{
    char buf[PROTO_DISCOUNT_BUF];
    (void)state;
    for (int64_t c = 1; c <= 250000; c++) {
        int64_t back = 0;
        size_t n = proto_fmt_discount(buf, c);
        assert_true(proto_parse_discount(buf, n, &back, NULL));
        assert_int_equal(back, c);
    }
    /* Large values, spread over the whole range. */
    for (int64_t c = 1; c > 0 && c <= INT64_MAX / 3; c = c * 3 + 7) {
        int64_t back = 0;
        size_t n = proto_fmt_discount(buf, c);
        assert_true(proto_parse_discount(buf, n, &back, NULL));
        assert_int_equal(back, c);
    }
}

/* ---- Value rules: time ---- */

static void
test_time_epoch_and_max(void **state)
{
    (void)state;
    expect_time("1970-01-01T00:00:00Z", 0);
    expect_time("9999-12-31T23:59:59Z", PROTO_TIME_MAX);
    expect_time("9999-12-31", PROTO_TIME_MAX);
    expect_time("1970-01-01", 86399);
}

static void
test_time_known_values(void **state)
{
    (void)state;
    expect_time("2026-12-31T23:59:59Z", 1798761599);
    expect_time("2026-12-31", 1798761599);
    expect_time("2000-02-29T00:00:00Z", 951782400);
    expect_time("1999-12-31T23:59:59Z", 946684799);
    expect_time("2026-01-01T17:30:00Z", 1767288600);
}

static void
test_time_lower_case_t_and_z(void **state)
{
    (void)state;
    expect_time("2026-12-31t23:59:59z", 1798761599);
    expect_time("2026-12-31t23:59:59Z", 1798761599);
    expect_time("2026-12-31T23:59:59z", 1798761599);
}

static void
test_time_offsets(void **state)
{
    (void)state;
    /* 12:00 at +02:00 is 10:00Z. */
    expect_time("2026-12-31T12:00:00+02:00", 1798711200);
    /* 04:30 at -05:30 is 10:00Z. */
    expect_time("2026-12-31T04:30:00-05:30", 1798711200);
    expect_time("2026-12-31T10:00:00+00:00", 1798711200);
    expect_time("2026-12-31T10:00:00-00:00", 1798711200);
    /* Crossing a day and a year boundary. */
    expect_time("2027-01-01T01:59:59+02:00", 1798761599);
    expect_time("2026-12-31T18:59:59-05:00", 1798761599);
    expect_time("2026-12-31T00:00:00+23:59", 1798675200 - 23 * 3600 - 59 * 60);
}

static void
test_time_fraction_dropped(void **state)
{
    (void)state;
    expect_time("2026-12-31T23:59:59.5Z", 1798761599);
    expect_time("2026-12-31T23:59:59.999999999Z", 1798761599);
    expect_time("2026-12-31T23:59:59.0z", 1798761599);
    expect_time("2026-12-31T12:00:00.75+02:00", 1798711200);
    expect_time_bad("2026-12-31T23:59:59.Z", "not RFC 3339");
    expect_time_bad("2026-12-31T23:59:59.5", "not RFC 3339");
    expect_time_bad("2026-12-31T23:59:59,5Z", "not RFC 3339");
}

static void
test_time_leap_years(void **state)
{
    (void)state;
    expect_time("2024-02-29", 1709251199);
    expect_time("2000-02-29T00:00:00Z", 951782400);
    expect_time_bad("2023-02-29", "day out of range");
    expect_time_bad("2100-02-29", "day out of range");
    expect_time_bad("1900-02-29", "day out of range");
    expect_time_bad("2024-02-30", "day out of range");
    int64_t t;
    assert_true(time_of("2400-02-29", &t));
    assert_true(time_of("1972-02-29", &t));
    assert_true(time_of("9996-02-29", &t));
    assert_false(time_of("9999-02-29", &t));
}

static void
test_time_days_per_month(void **state)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    (void)state;
    for (int m = 1; m <= 12; m++) {
        char s[32];
        int64_t t;
        snprintf(s, sizeof s, "2027-%02d-%02d", m, dim[m - 1]);
        assert_true(time_of(s, &t));
        snprintf(s, sizeof s, "2027-%02d-%02d", m, dim[m - 1] + 1);
        expect_time_bad(s, "day out of range");
    }
}

static void
test_time_field_ranges(void **state)
{
    (void)state;
    expect_time_bad("2026-00-10", "month out of range");
    expect_time_bad("2026-13-01", "month out of range");
    expect_time_bad("2026-01-00", "day out of range");
    expect_time_bad("2026-01-32", "day out of range");
    expect_time_bad("2026-04-31", "day out of range");
    expect_time_bad("2026-01-01T24:00:00Z", "hour out of range");
    expect_time_bad("2026-01-01T23:60:00Z", "minute out of range");
    expect_time_bad("2026-12-31T23:59:60Z", "leap seconds are not accepted");
    expect_time_bad("2026-12-31T23:59:61Z", "second out of range");
    expect_time_bad("2026-01-01T00:00:00+24:00", "offset out of range");
    expect_time_bad("2026-01-01T00:00:00-01:60", "offset out of range");
    expect_time("2026-01-01T23:59:59Z", 1767311999);
}

static void
test_time_year_limits(void **state)
{
    (void)state;
    expect_time_bad("10000-01-01T00:00:00Z", "not RFC 3339");
    expect_time_bad("10000-01-01", "not RFC 3339");
    expect_time_bad("1969-12-31T23:59:59Z", "before 1970");
    expect_time_bad("1969-12-31", "before 1970");
    expect_time_bad("0000-01-01", "before 1970");
    expect_time_bad("1970-01-01T00:00:00+00:01", "before 1970");
    expect_time_bad("9999-12-31T23:59:59-00:01", "after 9999");
    /* The limits apply to the UTC instant, not to how it is written. */
    expect_time("1969-12-31T23:00:00-01:00", 0);
    expect_time("9999-12-31T22:59:59-01:00", PROTO_TIME_MAX);
    expect_time("1970-01-01T01:00:00+01:00", 0);
}

static void
test_time_syntax_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "2026-12-31T23:59:59",
        "2026-12-31 23:59:59Z",
        "2026-12-31T23:59Z",
        "2026-1-01",
        "26-12-31",
        "2026/12/31",
        "2026-12-31T23:59:59+0200",
        "2026-12-31T23:59:59+02",
        "2026-12-31T23:59:59+2:00",
        "2026-12-31Z",
        "2026-12-31T",
        "2026-12-31T23:59:59ZZ",
        "2026-12-31T23:59:59Z ",
        " 2026-12-31",
        "+2026-12-31",
        "2026-12-3a",
        "2026-12-31X23:59:59Z",
        "2026-12-31T23-59-59Z",
        "2026-12-31T23:59:59UTC",
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_time_bad(bad[i], "not RFC 3339");
}

static void
test_fmt_time_known(void **state)
{
    char buf[PROTO_TIME_BUF];
    (void)state;
    assert_int_equal(proto_fmt_time(buf, 0), 20);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    proto_fmt_time(buf, 951782400);
    assert_string_equal(buf, "2000-02-29T00:00:00Z");
    proto_fmt_time(buf, 1798761599);
    assert_string_equal(buf, "2026-12-31T23:59:59Z");
    proto_fmt_time(buf, 1798711200 + 3723);
    assert_string_equal(buf, "2026-12-31T11:02:03Z");
    assert_int_equal(proto_fmt_time(buf, PROTO_TIME_MAX), 20);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
}

static void
test_fmt_time_clamps(void **state)
{
    char buf[PROTO_TIME_BUF + 4];
    (void)state;
    memset(buf, '#', sizeof buf);
    assert_int_equal(proto_fmt_time(buf, -1), 20);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(proto_fmt_time(buf, INT64_MIN), 20);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(proto_fmt_time(buf, INT64_MAX), 20);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    assert_int_equal(proto_fmt_time(buf, PROTO_TIME_MAX + 1), 20);
    assert_int_equal(buf[PROTO_TIME_BUF], '#');
}

static int
month_days(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = y % 400 == 0 || (y % 100 != 0 && y % 4 == 0);
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Every day from 1970-01-01 to 9999-12-31, walked with a plain calendar as the oracle: the
 * formatted text must match it, and parsing the text must give the time back. */
static void
test_time_every_day_round_trip(void **state)
{
    int y = 1970, m = 1, d = 1;
    int64_t days = 0;
    (void)state;
    for (;; days++) {
        char want[64];
        char buf[PROTO_TIME_BUF];
        int64_t sec = (days * 7919) % 86400;
        int64_t t = days * 86400 + sec;
        int64_t back = -1;
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, (int)(sec / 3600),
                 (int)(sec / 60 % 60), (int)(sec % 60));
        size_t n = proto_fmt_time(buf, t);
        if (strcmp(buf, want) != 0)
            fail_msg("day %lld: got %s, want %s", (long long)days, buf, want);
        assert_int_equal(n, 20);
        assert_true(proto_parse_time(buf, n, &back, NULL));
        assert_int_equal(back, t);
        if (y == 9999 && m == 12 && d == 31)
            break;
        if (++d > month_days(y, m)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    assert_int_equal(days * 86400 + 86399, PROTO_TIME_MAX);
}

/* Bare dates mean the last second of that day, across the whole range. */
static void
test_time_bare_date_every_1000th_day(void **state)
{
    char buf[PROTO_TIME_BUF];
    (void)state;
    for (int64_t days = 0; days * 86400 <= PROTO_TIME_MAX; days += 997) {
        int64_t t = days * 86400;
        int64_t back = -1;
        proto_fmt_time(buf, t);
        assert_true(proto_parse_time(buf, 10, &back, NULL));
        assert_int_equal(back, t + 86399);
    }
}

/* ---- Value rules: max_uses ---- */

static void
test_max_uses(void **state)
{
    static const struct {
        const char *s;
        uint32_t want;
    } good[] = {{"1", 1}, {"3", 3}, {"1000000", 1000000}, {"0001", 1}, {"0999999", 999999}};
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint32_t v = 0;
        assert_true(proto_parse_max_uses(good[i].s, strlen(good[i].s), &v, NULL));
        assert_int_equal(v, good[i].want);
    }
}

static void
test_max_uses_rejects(void **state)
{
    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"0", "from 1 to 1000000"},
        {"000", "from 1 to 1000000"},
        {"1000001", "from 1 to 1000000"},
        {"4294967297", "from 1 to 1000000"},
        {"99999999999999999999999", "from 1 to 1000000"},
        {"+5", "digits only"},
        {"-1", "digits only"},
        {"1.0", "digits only"},
        {" 1", "digits only"},
        {"1e3", "digits only"},
        {"", "empty"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t v = 4242;
        const char *why = NULL;
        assert_false(proto_parse_max_uses(bad[i].s, strlen(bad[i].s), &v, &why));
        assert_int_equal(v, 4242);
        assert_why(why, "bad max_uses");
        assert_why(why, bad[i].why);
    }
}

/* ---- Upload records ---- */

static void
test_record_basic(void **state)
{
    const char *line = "SUMMER-1,STANDARD,20,FLAT,2026-12-31,3";
    struct proto_coupon c;
    const char *why = NULL;
    (void)state;
    memset(&c, 0x5a, sizeof c);
    assert_true(proto_parse_record(line, strlen(line), &c, &why));
    struct proto_coupon want =
        coupon("SUMMER-1", PROTO_TYPE_STANDARD, 2000, PROTO_KIND_FLAT, 1798761599, 0, 3);
    assert_coupon_equal(&c, &want);
}

static void
test_record_protocol_examples(void **state)
{
    static const char *const lines[] = {
        "SUMMER-1,STANDARD,20,FLAT,2026-12-31,3",
        "SUMMER-2,,15,PERCENT,2026-12-31T12:00:00+02:00,1",
        "MEGA-1,MEGADEAL,50,PERCENT,2026-12-31,1",
    };
    struct proto_coupon want[3];
    (void)state;
    want[0] = coupon("SUMMER-1", PROTO_TYPE_STANDARD, 2000, PROTO_KIND_FLAT, 1798761599, 0, 3);
    want[1] = coupon("SUMMER-2", PROTO_TYPE_NONE, 1500, PROTO_KIND_PERCENT, 1798711200, 0, 1);
    want[2] = coupon("MEGA-1", PROTO_TYPE_MEGADEAL, 5000, PROTO_KIND_PERCENT, 1798761599, 0, 1);
    for (int i = 0; i < 3; i++) {
        struct proto_coupon c;
        assert_true(proto_parse_record(lines[i], strlen(lines[i]), &c, NULL));
        assert_coupon_equal(&c, &want[i]);
    }
}

static void
test_record_uses_zero_and_code_upper(void **state)
{
    const char *line = "summer-9,free,1.5,percent,2030-01-01T00:00:00Z,10";
    struct proto_coupon c;
    (void)state;
    memset(&c, 0x5a, sizeof c);
    assert_true(proto_parse_record(line, strlen(line), &c, NULL));
    assert_int_equal(c.uses, 0);
    assert_string_equal(c.code, "SUMMER-9");
    assert_int_equal(c.type, PROTO_TYPE_FREE);
    assert_int_equal(c.kind, PROTO_KIND_PERCENT);
    assert_int_equal(c.discount, 150);
}

static void
test_record_field_count(void **state)
{
    const char *want = "expected 6 fields: code,type,discount,kind,expires,max_uses";
    (void)state;
    expect_record_bad("A,FREE,1,FLAT,2026-12-31", want);
    expect_record_bad("A,FREE,1,FLAT,2026-12-31,1,", want);
    expect_record_bad("A,FREE,1,FLAT,2026-12-31,1,extra", want);
    expect_record_bad("", want);
    expect_record_bad("   ", want);
    expect_record_bad("A", want);
    /* Six empty fields: the count is right, the first field is not. */
    expect_record_bad(",,,,,", "bad code");
}

static void
test_record_trims_blanks(void **state)
{
    const char *line = " a1 , free ,\t1.5\t, flat ,  2026-12-31 , 2 ";
    struct proto_coupon c;
    const char *why = NULL;
    (void)state;
    if (!proto_parse_record(line, strlen(line), &c, &why))
        fail_msg("rejected: %s", why);
    assert_string_equal(c.code, "A1");
    assert_int_equal(c.type, PROTO_TYPE_FREE);
    assert_int_equal(c.discount, 150);
    assert_int_equal(c.kind, PROTO_KIND_FLAT);
    assert_int_equal(c.expires, 1798761599);
    assert_int_equal(c.max_uses, 2);
    /* A blank-only type field is the untyped kind. */
    const char *l2 = "B, \t ,1,FLAT,2026-12-31,1";
    assert_true(proto_parse_record(l2, strlen(l2), &c, NULL));
    assert_int_equal(c.type, PROTO_TYPE_NONE);
}

static void
test_record_trailing_cr(void **state)
{
    const char *line = "A,,1,FLAT,2026-12-31,7";
    struct proto_coupon c;
    (void)state;
    assert_true(proto_parse_record(line, strlen(line), &c, NULL));
    assert_int_equal(c.max_uses, 7);
    /* The framer took the CR before the LF; one left is a control byte. */
    expect_record_bad("A,,1,FLAT,2026-12-31,7\r", "control byte");
    expect_record_bad("A,,1,FLAT,2026-12-31,7\r\r", "control byte");
    expect_record_bad("A,,1,FL\rAT,2026-12-31,7", "control byte");
}

static void
test_record_bad_bytes(void **state)
{
    struct proto_coupon c;
    const char *why = NULL;
    static const char nul[] = "A,,1,FLAT,2026-12-31,7\0";
    static const char nul2[] = "A\0B,,1,FLAT,2026-12-31,7";
    (void)state;
    assert_false(proto_parse_record(nul, sizeof nul - 1, &c, &why));
    assert_why(why, "NUL byte in record");
    assert_false(proto_parse_record(nul2, sizeof nul2 - 1, &c, &why));
    assert_why(why, "NUL byte");
    expect_record_bad("A,,1,FLAT,2026-12-31,\x01", "control byte");
    expect_record_bad("A\x1b,,1,FLAT,2026-12-31,1", "control byte");
    expect_record_bad("\xc3\xa9,,1,FLAT,2026-12-31,1", "non-ASCII");
}

static void
test_record_field_reasons(void **state)
{
    (void)state;
    expect_record_bad("A/B,,1,FLAT,2026-12-31,1", "bad code:");
    expect_record_bad("A,GOLD,1,FLAT,2026-12-31,1", "bad type:");
    expect_record_bad("A,,1.234,FLAT,2026-12-31,1", "bad discount: more than 2 decimal places");
    expect_record_bad("A,,0,FLAT,2026-12-31,1", "bad discount:");
    expect_record_bad("A,,1,CASH,2026-12-31,1", "bad kind:");
    expect_record_bad("A,,1,FLAT,2026-13-31,1", "bad expires:");
    expect_record_bad("A,,1,FLAT,1969-12-31,1", "bad expires:");
    expect_record_bad("A,,1,FLAT,2026-12-31,0", "bad max_uses:");
    expect_record_bad("A,,1,FLAT,2026-12-31,", "bad max_uses:");
    expect_record_bad(",,1,FLAT,2026-12-31,1", "bad code:");
}

static void
test_record_discount_against_kind(void **state)
{
    struct proto_coupon c;
    const char *ok1 = "A,,100,PERCENT,2026-12-31,1";
    const char *ok2 = "A,,100.01,FLAT,2026-12-31,1";
    const char *ok3 = "A,,1000000000.00,FLAT,2026-12-31,1";
    (void)state;
    assert_true(proto_parse_record(ok1, strlen(ok1), &c, NULL));
    assert_true(proto_parse_record(ok2, strlen(ok2), &c, NULL));
    assert_true(proto_parse_record(ok3, strlen(ok3), &c, NULL));
    expect_record_bad("A,,100.01,PERCENT,2026-12-31,1", "bad discount:");
    expect_record_bad("A,,1000000000.01,FLAT,2026-12-31,1", "bad discount:");
    expect_record_bad("A,,99999999999999999999,FLAT,2026-12-31,1", "bad discount: too large");
}

static void
test_fmt_record_exact(void **state)
{
    char buf[PROTO_RECORD_BUF];
    (void)state;
    struct proto_coupon c =
        coupon("CODE", PROTO_TYPE_STANDARD, 1250, PROTO_KIND_FLAT, 1798761599, 2, 3);
    size_t n = proto_fmt_record(buf, &c);
    assert_string_equal(buf, "CODE,STANDARD,12.50,FLAT,2026-12-31T23:59:59Z,3");
    assert_int_equal(n, strlen(buf));
    c.type = PROTO_TYPE_NONE;
    c.kind = PROTO_KIND_PERCENT;
    c.discount = 1;
    proto_fmt_record(buf, &c);
    assert_string_equal(buf, "CODE,,0.01,PERCENT,2026-12-31T23:59:59Z,3");
}

static void
test_fmt_record_largest_fits(void **state)
{
    char buf[PROTO_RECORD_BUF + 8];
    char code[PROTO_CODE_MAX + 1];
    (void)state;
    memset(buf, '#', sizeof buf);
    struct proto_coupon c = coupon(fill(code, 'W', PROTO_CODE_MAX), PROTO_TYPE_MEGADEAL, INT64_MIN,
                                   PROTO_KIND_PERCENT, INT64_MAX, UINT32_MAX, UINT32_MAX);
    size_t n = proto_fmt_record(buf, &c);
    assert_int_equal(n, strlen(buf));
    assert_true(n < PROTO_RECORD_BUF);
    assert_int_equal(buf[PROTO_RECORD_BUF], '#');
}

/* Coupons from a small generator: every type and kind, many discounts, times and limits. */
static struct proto_coupon
gen_coupon(unsigned i)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";
    char code[PROTO_CODE_MAX + 1];
    size_t len = 1 + i % PROTO_CODE_MAX;
    for (size_t k = 0; k < len; k++)
        code[k] = alphabet[(i * 31 + k * 7) % (sizeof alphabet - 1)];
    code[len] = '\0';
    enum proto_kind kind = (enum proto_kind)(i % PROTO_NKINDS);
    int64_t discount = kind == PROTO_KIND_PERCENT ? 1 + (int64_t)(i * 37) % PROTO_PERCENT_MAX_CENTS
                                                  : 1 + (int64_t)i * 1234567 % PROTO_FLAT_MAX_CENTS;
    int64_t expires = (int64_t)i * 84437821 % (PROTO_TIME_MAX + 1);
    uint32_t max_uses = 1 + (uint32_t)(i * 7919u) % PROTO_USES_MAX;
    return coupon(code, (enum proto_type)(i % PROTO_NTYPES), discount, kind, expires, 0, max_uses);
}

static void
test_record_round_trip(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 20000; i++) {
        char buf[PROTO_RECORD_BUF];
        char again[PROTO_RECORD_BUF];
        struct proto_coupon c = gen_coupon(i);
        struct proto_coupon back;
        const char *why = NULL;
        size_t n = proto_fmt_record(buf, &c);
        if (!proto_parse_record(buf, n, &back, &why))
            fail_msg("\"%s\" rejected: %s", buf, why);
        assert_coupon_equal(&back, &c);
        proto_fmt_record(again, &back);
        assert_string_equal(again, buf);
    }
}

/* ---- Coupon lines ---- */

static void
test_fmt_coupon_exact(void **state)
{
    char buf[PROTO_COUPON_BUF];
    (void)state;
    struct proto_coupon c =
        coupon("SUMMER-1", PROTO_TYPE_STANDARD, 2000, PROTO_KIND_FLAT, 1798761599, 1, 3);
    size_t n = proto_fmt_coupon(buf, &c);
    assert_string_equal(buf, "code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT "
                             "expires=2026-12-31T23:59:59Z uses=1 max_uses=3");
    assert_int_equal(n, strlen(buf));
    c.type = PROTO_TYPE_NONE;
    proto_fmt_coupon(buf, &c);
    assert_non_null(strstr(buf, " type=NONE "));
}

static void
test_fmt_coupon_largest_fits(void **state)
{
    char buf[PROTO_COUPON_BUF + 8];
    char code[PROTO_CODE_MAX + 1];
    (void)state;
    memset(buf, '#', sizeof buf);
    struct proto_coupon c = coupon(fill(code, 'W', PROTO_CODE_MAX), PROTO_TYPE_MEGADEAL, INT64_MIN,
                                   PROTO_KIND_PERCENT, INT64_MAX, UINT32_MAX, UINT32_MAX);
    size_t n = proto_fmt_coupon(buf, &c);
    assert_int_equal(n, strlen(buf));
    assert_true(n < PROTO_COUPON_BUF);
    assert_int_equal(buf[PROTO_COUPON_BUF], '#');
}

static void
test_fmt_coupon_unterminated_code(void **state)
{
    char buf[PROTO_COUPON_BUF];
    struct proto_coupon c = coupon("X", PROTO_TYPE_FREE, 1, PROTO_KIND_FLAT, 0, 0, 1);
    (void)state;
    /* A code filling its whole array (no NUL) still prints at most 64 characters. */
    memset(c.code, 'Q', sizeof c.code);
    proto_fmt_coupon(buf, &c);
    assert_int_equal(strchr(buf, ' ') - buf, 5 + PROTO_CODE_MAX);
    proto_fmt_record(buf, &c);
    assert_int_equal(strchr(buf, ',') - buf, PROTO_CODE_MAX);
}

/* ---- Replies ---- */

static enum proto_reply_kind
kind_of(const char *line)
{
    return proto_reply_kind(line, strlen(line));
}

static void
test_reply_kind(void **state)
{
    (void)state;
    assert_int_equal(kind_of("OK"), PROTO_REPLY_OK);
    assert_int_equal(kind_of("OK PONG"), PROTO_REPLY_OK);
    assert_int_equal(kind_of("OK uploaded=3"), PROTO_REPLY_OK);
    assert_int_equal(kind_of("OK\r"), PROTO_REPLY_OK);
    assert_int_equal(kind_of("ERR"), PROTO_REPLY_ERR);
    assert_int_equal(kind_of("ERR INVALID coupon X is not assigned to bob"), PROTO_REPLY_ERR);
    assert_int_equal(kind_of("OKAY"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of("ERROR x"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of("ok"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of(" OK"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of("O"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of(""), PROTO_REPLY_DATA);
    assert_int_equal(kind_of("INFO PING"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of("STAT commands 3"), PROTO_REPLY_DATA);
    assert_int_equal(kind_of("REJECT 1 bad code: empty"), PROTO_REPLY_DATA);
    /* Only len bytes count. */
    assert_int_equal(proto_reply_kind("OKAY", 2), PROTO_REPLY_OK);
}

static void
test_reply_err_every_code(void **state)
{
    (void)state;
    for (int e = PROTO_ERR_BAD_REQUEST; e < PROTO_NERRS; e++) {
        char line[96];
        snprintf(line, sizeof line, "ERR %s some words here", proto_err_name((enum proto_err)e));
        assert_int_equal(proto_reply_err(line, strlen(line)), e);
        snprintf(line, sizeof line, "ERR %s", proto_err_name((enum proto_err)e));
        assert_int_equal(proto_reply_err(line, strlen(line)), e);
        snprintf(line, sizeof line, "ERR %s\r", proto_err_name((enum proto_err)e));
        assert_int_equal(proto_reply_err(line, strlen(line)), e);
    }
}

static enum proto_err
err_of(const char *line)
{
    return proto_reply_err(line, strlen(line));
}

static void
test_reply_err_unknown(void **state)
{
    (void)state;
    assert_int_equal(err_of("ERR FOO bar"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("ERR"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("ERR bad_request x"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("ERR BAD_REQUESTX x"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("ERR BAD_REQUES x"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("ERR OK"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("INFO BUSY"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("ERRBUSY"), PROTO_ERR_INTERNAL);
    assert_int_equal(err_of("OK"), PROTO_OK);
    assert_int_equal(err_of("OK BUSY"), PROTO_OK);
}

static void
expect_field(const char *line, const char *key, const char *want)
{
    const char *v = NULL;
    size_t n = 99;
    if (!proto_reply_field(line, strlen(line), key, &v, &n))
        fail_msg("no %s= in \"%s\"", key, line);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(v, want, n);
    assert_true(v >= line && v + n <= line + strlen(line));
}

static void
expect_no_field(const char *line, const char *key)
{
    const char *v = NULL;
    size_t n = 99;
    assert_false(proto_reply_field(line, strlen(line), key, &v, &n));
}

static void
test_reply_field(void **state)
{
    (void)state;
    expect_field("OK task=AQ-x_1 status=queued position=4", "task", "AQ-x_1");
    expect_field("OK task=AQ-x_1 status=queued position=4", "status", "queued");
    expect_field("OK task=AQ-x_1 status=queued position=4", "position", "4");
    expect_field("OK uploaded=3\r", "uploaded", "3");
    expect_field("OK k=a=b", "k", "a=b");
    expect_field("OK empty= x=1", "empty", "");
    expect_no_field("OK task=1", "status");
    expect_no_field("OK", "task");
    expect_no_field("OK task=1", "");
    expect_no_field("OK task", "task");
}

static void
test_reply_field_whole_word(void **state)
{
    (void)state;
    expect_no_field("OK xkey=1", "key");
    expect_field("OK xkey=1 key=2", "key", "2");
    expect_no_field("OK keyx=1", "key");
    expect_no_field("OK a=key=1", "key");
    /* "uses" is not found inside "max_uses", in either order. */
    expect_field("OK max_uses=3 uses=1", "uses", "1");
    expect_field("OK uses=1 max_uses=3", "max_uses", "3");
    expect_no_field("OK max_uses=3", "uses");
}

static void
test_reply_coupon_examples(void **state)
{
    static const char *const lines[] = {
        "OK code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT expires=2026-12-31T23:59:59Z "
        "uses=1 max_uses=3",
        "OK task=AQAAAAAAAAEAAAGS-x4 status=granted code=SUMMER-1 type=STANDARD discount=20.00 "
        "kind=FLAT expires=2026-12-31T23:59:59Z uses=1 max_uses=3",
        "code=SUMMER-1 type=STANDARD discount=20.00 kind=FLAT expires=2026-12-31T23:59:59Z "
        "uses=1 max_uses=3\r",
    };
    struct proto_coupon want =
        coupon("SUMMER-1", PROTO_TYPE_STANDARD, 2000, PROTO_KIND_FLAT, 1798761599, 1, 3);
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct proto_coupon c;
        memset(&c, 0x5a, sizeof c);
        assert_true(proto_reply_coupon(lines[i], strlen(lines[i]), &c));
        assert_coupon_equal(&c, &want);
    }
}

static void
test_reply_coupon_round_trip(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 5000; i++) {
        char buf[PROTO_COUPON_BUF];
        char line[PROTO_COUPON_BUF + 8];
        struct proto_coupon c = gen_coupon(i);
        struct proto_coupon back;
        c.uses = i % (c.max_uses + 1);
        proto_fmt_coupon(buf, &c);
        snprintf(line, sizeof line, "OK %s", buf);
        if (!proto_reply_coupon(line, strlen(line), &back))
            fail_msg("rejected \"%s\"", line);
        assert_coupon_equal(&back, &c);
    }
}

static void
expect_coupon_bad(const char *line)
{
    struct proto_coupon c;
    memset(&c, 0x5a, sizeof c);
    if (proto_reply_coupon(line, strlen(line), &c))
        fail_msg("accepted \"%s\"", line);
    assert_int_equal((unsigned char)c.code[0], 0x5a);
}

static void
test_reply_coupon_malformed(void **state)
{
    (void)state;
    /* Each field missing in turn. */
    expect_coupon_bad("OK type=FREE discount=1.00 kind=FLAT expires=2026-12-31T23:59:59Z uses=0 "
                      "max_uses=1");
    expect_coupon_bad("OK code=A discount=1.00 kind=FLAT expires=2026-12-31T23:59:59Z uses=0 "
                      "max_uses=1");
    expect_coupon_bad("OK code=A type=FREE kind=FLAT expires=2026-12-31T23:59:59Z uses=0 "
                      "max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 expires=2026-12-31T23:59:59Z uses=0 "
                      "max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT expires=2026-12-31T23:59:59Z "
                      "max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT expires=2026-12-31T23:59:59Z "
                      "uses=0");
    /* Each field malformed in turn. */
    expect_coupon_bad("OK code=A/B type=FREE discount=1.00 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=GOLD discount=1.00 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.001 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=150 kind=PERCENT "
                      "expires=2026-12-31T23:59:59Z uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=CASH "
                      "expires=2026-12-31T23:59:59Z uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT "
                      "expires=2026-12-32T23:59:59Z uses=0 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=-1 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=0 max_uses=0");
    /* More uses than allowed. */
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=2 max_uses=1");
    expect_coupon_bad("OK code=A type=FREE discount=1.00 kind=FLAT "
                      "expires=2026-12-31T23:59:59Z uses=4294967296 max_uses=1");
    expect_coupon_bad("");
}

static void
test_reply_stat(void **state)
{
    const char *name = NULL;
    size_t nl = 0;
    uint64_t v = 99;
    const char *line = "STAT created.FREE 12";
    (void)state;
    assert_true(proto_reply_stat(line, strlen(line), &name, &nl, &v));
    assert_ptr_equal(name, line + 5);
    assert_int_equal(nl, 12);
    assert_int_equal(v, 12);
    line = "STAT uptime_s 0\r";
    assert_true(proto_reply_stat(line, strlen(line), &name, &nl, &v));
    assert_int_equal(v, 0);
    assert_memory_equal(name, "uptime_s", nl);
    line = "STAT megadeal.granted 18446744073709551615";
    assert_true(proto_reply_stat(line, strlen(line), &name, &nl, &v));
    assert_int_equal(v, UINT64_MAX);
}

static void
test_reply_stat_malformed(void **state)
{
    static const char *const bad[] = {
        "STAT x 18446744073709551616",
        "STAT x",
        "STAT",
        "STAT x 1 2",
        "STAT x -1",
        "STAT x +1",
        "STAT x 1.5",
        "STAT x ",
        "STATS x 1",
        "stat x 1",
        "OK",
        "",
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *name = NULL;
        size_t nl = 77;
        uint64_t v = 77;
        if (proto_reply_stat(bad[i], strlen(bad[i]), &name, &nl, &v))
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(v, 77);
        assert_int_equal(nl, 77);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_name_out_of_range),
        cmocka_unit_test(test_type_and_kind_names),
        cmocka_unit_test(test_verb_table_shape),
        cmocka_unit_test(test_verb_table_args_and_admin),
        cmocka_unit_test(test_req_ping),
        cmocka_unit_test(test_req_every_verb_upper),
        cmocka_unit_test(test_req_every_verb_lower),
        cmocka_unit_test(test_req_every_verb_mixed),
        cmocka_unit_test(test_req_arg_count_errors),
        cmocka_unit_test(test_req_usage_message_exact),
        cmocka_unit_test(test_req_too_many_words),
        cmocka_unit_test(test_req_unknown_command),
        cmocka_unit_test(test_req_unknown_long_verb_truncated),
        cmocka_unit_test(test_req_empty_and_blank),
        cmocka_unit_test(test_req_nul_byte),
        cmocka_unit_test(test_req_control_bytes),
        cmocka_unit_test(test_req_non_ascii),
        cmocka_unit_test(test_req_every_byte_in_user),
        cmocka_unit_test(test_req_tabs_and_runs_of_blanks),
        cmocka_unit_test(test_req_trailing_cr),
        cmocka_unit_test(test_req_line_length_limit),
        cmocka_unit_test(test_req_too_long_wins_over_content),
        cmocka_unit_test(test_req_request_without_type),
        cmocka_unit_test(test_req_request_type_spellings),
        cmocka_unit_test(test_req_request_bad_type),
        cmocka_unit_test(test_req_user_length),
        cmocka_unit_test(test_req_code_length),
        cmocka_unit_test(test_req_code_normalised),
        cmocka_unit_test(test_req_task_length),
        cmocka_unit_test(test_req_bad_task_id),
        cmocka_unit_test(test_req_auth_key),
        cmocka_unit_test(test_req_auth_key_length),
        cmocka_unit_test(test_req_upload_counts),
        cmocka_unit_test(test_req_upload_bad_counts),
        cmocka_unit_test(test_req_line_not_modified),
        cmocka_unit_test(test_line_is_blank),
        cmocka_unit_test(test_looks_like_http),
        cmocka_unit_test(test_user_boundaries),
        cmocka_unit_test(test_user_charset),
        cmocka_unit_test(test_user_untouched_on_failure),
        cmocka_unit_test(test_code_boundaries),
        cmocka_unit_test(test_code_charset),
        cmocka_unit_test(test_code_upper_case),
        cmocka_unit_test(test_code_untouched_on_failure),
        cmocka_unit_test(test_task_rule),
        cmocka_unit_test(test_type_spellings),
        cmocka_unit_test(test_type_rejects),
        cmocka_unit_test(test_kind_rule),
        cmocka_unit_test(test_discount_values),
        cmocka_unit_test(test_discount_rejects),
        cmocka_unit_test(test_discount_overflow),
        cmocka_unit_test(test_check_discount),
        cmocka_unit_test(test_percent_100_point_01_rejected),
        cmocka_unit_test(test_fmt_discount),
        cmocka_unit_test(test_fmt_discount_extremes),
        cmocka_unit_test(test_discount_round_trip),
        cmocka_unit_test(test_time_epoch_and_max),
        cmocka_unit_test(test_time_known_values),
        cmocka_unit_test(test_time_lower_case_t_and_z),
        cmocka_unit_test(test_time_offsets),
        cmocka_unit_test(test_time_fraction_dropped),
        cmocka_unit_test(test_time_leap_years),
        cmocka_unit_test(test_time_days_per_month),
        cmocka_unit_test(test_time_field_ranges),
        cmocka_unit_test(test_time_year_limits),
        cmocka_unit_test(test_time_syntax_errors),
        cmocka_unit_test(test_fmt_time_known),
        cmocka_unit_test(test_fmt_time_clamps),
        cmocka_unit_test(test_time_every_day_round_trip),
        cmocka_unit_test(test_time_bare_date_every_1000th_day),
        cmocka_unit_test(test_max_uses),
        cmocka_unit_test(test_max_uses_rejects),
        cmocka_unit_test(test_record_basic),
        cmocka_unit_test(test_record_protocol_examples),
        cmocka_unit_test(test_record_uses_zero_and_code_upper),
        cmocka_unit_test(test_record_field_count),
        cmocka_unit_test(test_record_trims_blanks),
        cmocka_unit_test(test_record_trailing_cr),
        cmocka_unit_test(test_record_bad_bytes),
        cmocka_unit_test(test_record_field_reasons),
        cmocka_unit_test(test_record_discount_against_kind),
        cmocka_unit_test(test_fmt_record_exact),
        cmocka_unit_test(test_fmt_record_largest_fits),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_fmt_coupon_exact),
        cmocka_unit_test(test_fmt_coupon_largest_fits),
        cmocka_unit_test(test_fmt_coupon_unterminated_code),
        cmocka_unit_test(test_reply_kind),
        cmocka_unit_test(test_reply_err_every_code),
        cmocka_unit_test(test_reply_err_unknown),
        cmocka_unit_test(test_reply_field),
        cmocka_unit_test(test_reply_field_whole_word),
        cmocka_unit_test(test_reply_coupon_examples),
        cmocka_unit_test(test_reply_coupon_round_trip),
        cmocka_unit_test(test_reply_coupon_malformed),
        cmocka_unit_test(test_reply_stat),
        cmocka_unit_test(test_reply_stat_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
