/* test_keys.c - named keys and roles (coupond-protocol(7) "Keys and roles", coupond(8) "key"):
 * `coupond key add|list|revoke` beside a running server, the keys file's mode, the role of every
 * command under every kind of connection with and without --require-auth, rotation with two
 * keys for one name and SIGHUP (no restart), a revoked key's connection losing its rights, a bad
 * keys file on SIGHUP, key changes in the audit chain, and request ids scoped per key name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

#define KEY_HEX    64
#define ID_HEX     8
#define PATH_BUF   (BB_PATH_MAX + 32)
#define RELOAD_MS  5000 /* a SIGHUP's reload is logged within this */
#define LINE_BUF   1024
#define MATRIX_MAX 40

static const char *const require_auth[] = {"--require-auth", NULL};

/* A key made by `coupond -d DIR key add`, and its short id from `key list`. */
struct made_key {
    char key[KEY_HEX + 1];
    char id[ID_HEX + 1];
};

static int
run_key(const struct bb_server *s, const char *w1, const char *w2, const char *w3, char *out,
        char *err)
{
    const char *args[] = {"-d", s->dir, "key", w1, w2, w3, NULL};
    return bb_run(args, out, BB_RUN_OUT_MAX, err, BB_RUN_OUT_MAX);
}

/* The id of the newest key of `name` in `key list` (its last line naming it). */
static void
list_id(const struct bb_server *s, const char *name, char id[ID_HEX + 1])
{
    static char out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX];
    assert_int_equal(run_key(s, "list", NULL, NULL, out, err), 0);
    id[0] = '\0';
    for (char *l = strtok(out, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        char n[128], role[16], when[32], i[ID_HEX + 1];
        if (sscanf(l, "%127s %15s %31s %8s", n, role, when, i) == 4 && strcmp(n, name) == 0)
            memcpy(id, i, sizeof i);
    }
    assert_int_equal(strlen(id), ID_HEX);
}

static struct made_key
add_key(const struct bb_server *s, const char *name, const char *role)
{
    static char out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX];
    struct made_key k;
    int st = run_key(s, "add", name, role, out, err);
    if (st != 0)
        fail_msg("key add %s %s: status %d: %s", name, role, st, err);
    assert_int_equal(strlen(out), KEY_HEX + 1);
    memcpy(k.key, out, KEY_HEX);
    k.key[KEY_HEX] = '\0';
    list_id(s, name, k.id);
    return k;
}

/* SIGHUP, and the wait for the reload's log line (the n-th of its kind). */
static void
reload(const struct bb_server *s, const char *event)
{
    char log[PATH_BUF], needle[64];
    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    bb_fmt(needle, sizeof needle, "op=%s", event);
    int before = bb_file_count(log, needle);
    bb_server_signal(s, SIGHUP);
    for (int64_t end = bb_now_ms() + RELOAD_MS; bb_file_count(log, needle) <= before;) {
        if (bb_now_ms() > end)
            fail_msg("no %s line after SIGHUP", event);
        bb_sleep_ms(BB_POLL_MS);
    }
}

static struct bb_client *
connect_as(struct bb_server *s, const char *name, const struct made_key *k)
{
    struct bb_client *c = bb_connect(s);
    char line[LINE_BUF];
    bb_fmt(line, sizeof line, "AUTH %s %s", name, k->key);
    bb_expect(c, line, "OK");
    return c;
}

static unsigned
mode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return (unsigned)(st.st_mode & 07777);
}

/* ---- the command line ---- */

static void
test_cli(void **state)
{
    struct bb_server *s = *state;
    static char out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX], file[BB_RUN_OUT_MAX];
    char path[PATH_BUF];

    mode_t old = umask(0); /* the file is 0600 whatever the umask */
    struct made_key a = add_key(s, "shop", "service");
    umask(old);
    struct made_key b = add_key(s, "shop", "service");
    bb_fmt(path, sizeof path, "%s/keys", s->dir);
    assert_int_equal(mode_of(path), 0600);
    assert_string_not_equal(a.id, b.id);

    /* a name has one role, at most two keys; bad roles and reserved names are refused */
    assert_int_equal(run_key(s, "add", "shop", "service", out, err), 1);
    assert_non_null(strstr(err, "revoke one first"));
    assert_int_equal(run_key(s, "add", "shop", "admin", out, err), 1);
    assert_int_equal(run_key(s, "add", "till", "boss", out, err), 2);
    assert_int_equal(run_key(s, "add", "admin", "admin", out, err), 1);
    assert_int_equal(run_key(s, "add", "no/slash", "monitor", out, err), 1);
    assert_int_equal(run_key(s, "frob", NULL, NULL, out, err), 2);

    /* list shows names, roles, times and ids; the file holds neither key */
    assert_int_equal(run_key(s, "list", NULL, NULL, out, err), 0);
    assert_non_null(strstr(out, a.id));
    assert_non_null(strstr(out, b.id));
    assert_null(strstr(out, a.key));
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(file, 1, sizeof file - 1, fp);
    fclose(fp);
    file[n] = '\0';
    assert_null(strstr(file, a.key));
    assert_null(strstr(file, b.key));

    /* revoke by id takes one key; by name the rest; an unknown one fails */
    assert_int_equal(run_key(s, "revoke", "shop", a.id, out, err), 0);
    assert_int_equal(run_key(s, "revoke", "shop", a.id, out, err), 1);
    assert_int_equal(run_key(s, "list", NULL, NULL, out, err), 0);
    assert_null(strstr(out, a.id));
    assert_non_null(strstr(out, b.id));
    assert_int_equal(run_key(s, "revoke", "shop", NULL, out, err), 0);
    assert_int_equal(run_key(s, "revoke", "nobody", NULL, out, err), 1);
    assert_int_equal(mode_of(path), 0600);
}

/* ---- the role matrix ---- */

enum who { NOBODY, MONITOR, SERVICE, ADMIN_NAMED, ADMIN_KEY, NWHO };

struct row {
    const char *cmd; /* a line that parses; records follow for UPLOAD */
    unsigned open;   /* who may run it without --require-auth (bits of enum who) */
    unsigned locked; /* ... with --require-auth */
};

#define B(w)     (1u << (w))
#define ALL      (B(NOBODY) | B(MONITOR) | B(SERVICE) | B(ADMIN_NAMED) | B(ADMIN_KEY))
#define MONITORS (B(MONITOR) | B(SERVICE) | B(ADMIN_NAMED) | B(ADMIN_KEY))
#define SERVICES (B(SERVICE) | B(ADMIN_NAMED) | B(ADMIN_KEY))
#define ADMINS   (B(ADMIN_NAMED) | B(ADMIN_KEY))

static const struct row matrix[] = {
    {"PING", ALL, ALL},
    {"HELP", ALL, ALL},
    {"VERSION", ALL, ALL},
    {"ECHO hi", ALL, ALL},
    {"CLIENT ID", ALL, ALL},
    {"COMMAND COUNT", ALL, ALL},
    {"SELECT 0", ALL, ALL},
    {"HELLO", ALL, ALL},
    {"STATS", MONITORS, MONITORS},
    {"INFO server", ALL, MONITORS},
    {"CONFIG GET port", ALL, MONITORS},
    {"REQUEST bob", SERVICES | B(NOBODY), SERVICES},
    {"STATUS x", SERVICES | B(NOBODY), SERVICES},
    {"WAIT x", SERVICES | B(NOBODY), SERVICES},
    {"VALIDATE bob X", SERVICES | B(NOBODY), SERVICES},
    {"REDEEM bob X", SERVICES | B(NOBODY), SERVICES},
    {"HOLD bob X", SERVICES | B(NOBODY), SERVICES},
    {"RELEASE x", SERVICES | B(NOBODY), SERVICES},
    {"UNREDEEM bob 1", SERVICES | B(NOBODY), SERVICES},
    {"COUPONS bob", SERVICES | B(NOBODY), SERVICES},
    {"UPLOAD", ADMINS, ADMINS}, /* with a record of a code of its own */
    {"PURGE", ADMINS, ADMINS},
    {"COUPON X", ADMINS, ADMINS},
    {"GENERATE 1 FREE 1 FLAT " BB_FAR_EXPIRY " 1", ADMINS, ADMINS},
    {"EXPORT COUPONS", ADMINS, ADMINS},
    {"AUDIT", ADMINS, ADMINS},
    {"BACKUP", ADMINS, ADMINS}, /* into a new directory of its own */
    {"QUIT", ALL, ALL},
};

static const char *const who_names[NWHO] = {"no AUTH", "monitor", "service", "admin key",
                                            "admin.key"};

static struct bb_client *
connect_who(struct bb_server *s, enum who w, const struct made_key keys[NWHO])
{
    static const char *const names[NWHO] = {NULL, "mon", "svc", "boss", NULL};
    if (w == NOBODY)
        return bb_connect(s);
    if (w == ADMIN_KEY)
        return bb_connect_admin(s);
    return connect_as(s, names[w], &keys[w]);
}

static void
run_matrix(struct bb_server *s, bool locked)
{
    struct made_key keys[NWHO];
    char reply[BB_REPLY_MAX], line[LINE_BUF];
    static int serial;

    keys[MONITOR] = add_key(s, "mon", "monitor");
    keys[SERVICE] = add_key(s, "svc", "service");
    keys[ADMIN_NAMED] = add_key(s, "boss", "admin");
    reload(s, "KEYS_RELOADED");
    for (int w = 0; w < NWHO; w++) {
        for (size_t i = 0; i < sizeof matrix / sizeof matrix[0]; i++) {
            struct bb_client *c = connect_who(s, (enum who)w, keys);
            const struct row *r = &matrix[i];
            serial++;
            if (strcmp(r->cmd, "BACKUP") == 0)
                bb_fmt(line, sizeof line, "BACKUP %s/bk-%d", s->dir, serial);
            else if (strcmp(r->cmd, "UPLOAD") == 0)
                bb_fmt(line, sizeof line, "UPLOAD 1\nM-%d,FREE,1,FLAT,%s,1", serial, BB_FAR_EXPIRY);
            else
                bb_fmt(line, sizeof line, "%s", r->cmd);
            const char *st = bb_cmd(c, line, reply);
            bool want = ((locked ? r->locked : r->open) & B(w)) != 0;
            bool denied = strncmp(st, "ERR DENIED", 10) == 0;
            printf("%-9s %-16.16s %-7s -> %s\n", who_names[w], r->cmd, locked ? "locked" : "open",
                   st);
            if (denied == want)
                fail_msg("%s as %s (%s): %s", line, who_names[w],
                         locked ? "--require-auth" : "--no-require-auth", st);
            bb_close(c);
        }
    }
}

static void
test_matrix_open(void **state)
{
    run_matrix(*state, false);
}

static void
test_matrix_locked(void **state)
{
    run_matrix(*state, true);
}

/* ---- rotation and revocation ---- */

static void
test_rotation(void **state)
{
    struct bb_server *s = *state;
    pid_t pid = s->pid;
    char line[LINE_BUF];

    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "R-", "", 10, NULL, 1);
    struct made_key k1 = add_key(s, "shop", "service");
    reload(s, "KEYS_RELOADED");
    struct bb_client *c1 = connect_as(s, "shop", &k1);
    bb_expect_prefix(c1, "REQUEST u1", "OK code=");

    /* a second key for the same name: both work at once */
    struct made_key k2 = add_key(s, "shop", "service");
    reload(s, "KEYS_RELOADED");
    struct bb_client *c2 = connect_as(s, "shop", &k2);
    bb_expect_prefix(c2, "REQUEST u2", "OK code=");
    bb_expect_prefix(c1, "REQUEST u3", "OK code=");

    /* the old one is revoked: its connection loses its rights at once, the other goes on */
    char out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX];
    assert_int_equal(run_key(s, "revoke", "shop", k1.id, out, err), 0);
    reload(s, "KEYS_RELOADED");
    bb_expect_prefix(c1, "REQUEST u4", "ERR DENIED");
    bb_expect_prefix(c2, "REQUEST u5", "OK code=");
    struct bb_client *c3 = bb_connect(s);
    bb_fmt(line, sizeof line, "AUTH shop %s", k1.key);
    bb_expect_prefix(c3, line, "ERR DENIED");
    bb_close(c3);
    c3 = connect_as(s, "shop", &k2);
    bb_expect_prefix(c3, "REQUEST u6", "OK code=");
    assert_int_equal(s->pid, pid); /* no restart */
    assert_int_equal(kill(pid, 0), 0);
}

/* A keys file that does not load on SIGHUP leaves the keys as they were, with one log line. */
static void
test_bad_file_keeps_keys(void **state)
{
    struct bb_server *s = *state;
    char path[PATH_BUF], log[PATH_BUF];

    struct made_key k = add_key(s, "shop", "service");
    reload(s, "KEYS_RELOADED");
    bb_fmt(path, sizeof path, "%s/keys", s->dir);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("this is not a key line\n", fp);
    fclose(fp);
    reload(s, "KEYS_RELOAD_FAILED");
    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    assert_int_equal(bb_file_count(log, "op=KEYS_RELOAD_FAILED"), 1);
    struct bb_client *c = connect_as(s, "shop", &k);
    bb_expect_prefix(c, "COUPONS bob", "OK count=0");
}

/* ---- the audit chain and request ids ---- */

static void
test_audit_notes(void **state)
{
    struct bb_server *s = *state;
    char reply[BB_REPLY_MAX], want[LINE_BUF], out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX];

    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "N-", "", 3, NULL, 1);
    struct made_key k = add_key(s, "shop", "service");
    reload(s, "KEYS_RELOADED");
    struct bb_client *c = connect_as(s, "shop", &k);
    bb_expect_prefix(c, "REQUEST alice", "OK code=");
    assert_int_equal(run_key(s, "revoke", "shop", NULL, out, err), 0);
    reload(s, "KEYS_RELOADED");
    for (int64_t end = bb_now_ms() + RELOAD_MS;; bb_sleep_ms(BB_POLL_MS)) {
        bb_cmd(admin, "EXPORT AUDIT", reply);
        if (strstr(reply, "verb=KEY_REVOKE") != NULL || bb_now_ms() > end)
            break;
    }
    bb_fmt(want, sizeof want, "verb=KEY_ADD name=shop role=service key_id=%s outcome=OK", k.id);
    assert_non_null(strstr(reply, want));
    bb_fmt(want, sizeof want, "verb=KEY_REVOKE name=shop role=service key_id=%s outcome=OK", k.id);
    assert_non_null(strstr(reply, want));
    assert_non_null(strstr(reply, "actor=shop verb=REQUEST user=alice"));
}

static void
test_ids_per_key_name(void **state)
{
    struct bb_server *s = *state;
    char first[LINE_BUF], reply[BB_REPLY_MAX];

    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "I-", "", 10, NULL, 1);
    struct made_key a1 = add_key(s, "shop", "service");
    struct made_key a2 = add_key(s, "shop", "service");
    struct made_key b = add_key(s, "till", "service");
    reload(s, "KEYS_RELOADED");
    struct bb_client *ca1 = connect_as(s, "shop", &a1);
    struct bb_client *ca2 = connect_as(s, "shop", &a2);
    struct bb_client *cb = connect_as(s, "till", &b);
    struct bb_client *anon = bb_connect(s);

    bb_fmt(first, sizeof first, "%s", bb_cmd(ca1, "REQUEST alice id=order-1", reply));
    assert_true(bb_has_prefix(first, "OK code="));
    /* the same name, another key of it: the same scope, a replay */
    const char *st = bb_cmd(ca2, "REQUEST alice id=order-1", reply);
    assert_non_null(strstr(st, " replayed=1"));
    assert_int_equal(strncmp(st, first, strlen(first)), 0);
    /* another name, and no AUTH: scopes of their own, new coupons */
    st = bb_cmd(cb, "REQUEST alice id=order-1", reply);
    assert_true(bb_has_prefix(st, "OK code="));
    assert_null(strstr(st, "replayed"));
    assert_string_not_equal(st, first);
    st = bb_cmd(anon, "REQUEST alice id=order-1", reply);
    assert_null(strstr(st, "replayed"));
}

/* ---- --require-auth's default ---- */

static void
test_require_auth_default(void **state)
{
    (void)state;
    static const char *const any[] = {"--listen", "0.0.0.0", NULL};
    static const char *const any_open[] = {"--listen", "0.0.0.0", "--no-require-auth", NULL};
    char log[PATH_BUF];

    struct bb_server *s = bb_server_start(any);
    assert_non_null(s);
    struct bb_client *c = bb_connect(s);
    bb_expect_prefix(c, "REQUEST bob", "ERR DENIED");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
    assert_int_equal(bb_server_stop(s), 0);
    bb_server_free(s);

    s = bb_server_start(any_open);
    assert_non_null(s);
    c = bb_connect(s);
    bb_expect_prefix(c, "REQUEST bob", "ERR NO_COUPONS");
    bb_close(c);
    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    assert_int_equal(bb_file_wait_count(log, "op=WARNING", 1, BB_LOG_WAIT_MS), 1);
    assert_int_equal(bb_server_stop(s), 0);
    bb_server_free(s);
}

/* HELLO's AUTH and the Redis wire form's AUTH take named keys too; BACKUP copies the keys. */
static void
test_hello_resp_backup(void **state)
{
    struct bb_server *s = *state;
    char line[LINE_BUF], reply[BB_REPLY_MAX], path[PATH_BUF];
    struct stat sb;

    struct made_key m = add_key(s, "mon", "monitor");
    reload(s, "KEYS_RELOADED");
    struct bb_client *c = bb_connect(s);
    bb_fmt(line, sizeof line, "HELLO 3 AUTH mon %s", m.key);
    bb_expect_prefix(c, line, "OK server=coupond");
    bb_expect_prefix(c, "STATS", "OK");
    bb_expect_prefix(c, "UPLOAD 1\nX-1,FREE,1,FLAT," BB_FAR_EXPIRY ",1", "ERR DENIED");
    bb_close(c);

    c = bb_connect(s);
    bb_fmt(line, sizeof line, "*3\r\n$4\r\nAUTH\r\n$3\r\nmon\r\n$64\r\n%s\r\n", m.key);
    bb_send_str(c, line);
    assert_int_equal(bb_read_line(c, reply, sizeof reply), BB_READ_LINE);
    assert_string_equal(reply, "+OK\r");
    bb_send_str(c, "*1\r\n$5\r\nPURGE\r\n");
    assert_int_equal(bb_read_line(c, reply, sizeof reply), BB_READ_LINE);
    assert_true(strncmp(reply, "-DENIED", 7) == 0);
    bb_close(c);

    if (bb_on_pg()) /* BACKUP copies LMDB only (coupond(8)); the rest holds on both */
        return;
    struct bb_client *admin = bb_connect_admin(s);
    bb_fmt(line, sizeof line, "BACKUP %s/bk", s->dir);
    bb_expect_prefix(admin, line, "OK bytes=");
    bb_fmt(path, sizeof path, "%s/bk/keys", s->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_matrix_open, bb_setup, bb_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_matrix_locked, bb_setup, bb_teardown,
                                                 (void *)require_auth),
        cmocka_unit_test_prestate_setup_teardown(test_rotation, bb_setup, bb_teardown,
                                                 (void *)require_auth),
        cmocka_unit_test_setup_teardown(test_bad_file_keeps_keys, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_audit_notes, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_ids_per_key_name, bb_setup, bb_teardown),
        cmocka_unit_test(test_require_auth_default),
        cmocka_unit_test_setup_teardown(test_hello_resp_backup, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
