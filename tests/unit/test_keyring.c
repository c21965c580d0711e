/* test_keyring.c - unit tests of the server's pure key and guessing modules: server/keyring.c
 * (names, roles, add, revoke, the check of a presented key, the file's round trip and strict
 * loading), server/access.c (classes, revocation) and server/guess.c (the verdicts, windows and
 * the bounded address table). Each file test works in a temporary directory of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "guess.h"
#include "keyring.h"
#include "keys.h"

#define T0      INT64_C(1798761599) /* 2026-12-31T23:59:59Z */
#define ERR_CAP 512
#define DIR_CAP 64

static void
make_dir(char dir[DIR_CAP])
{
    snprintf(dir, DIR_CAP, "/tmp/test_keyring.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void
remove_dir(const char *dir)
{
    char path[DIR_CAP + 32];
    static const char *const files[] = {"keys", ".keys.tmp", "other"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void
write_file(const char *dir, const char *text, mode_t mode)
{
    char path[DIR_CAP + 32];
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

static void
test_names_and_roles(void **state)
{
    (void)state;
    enum keyring_role r;
    assert_true(keyring_name_ok("shop-1.eu_west"));
    assert_false(keyring_name_ok(""));
    assert_false(keyring_name_ok("admin"));
    assert_false(keyring_name_ok("default"));
    assert_false(keyring_name_ok("a b"));
    assert_false(keyring_name_ok("caf\xc3\xa9"));
    char longname[KEYRING_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(keyring_name_ok(longname));
    longname[KEYRING_NAME_MAX] = '\0';
    assert_true(keyring_name_ok(longname));
    assert_true(keyring_role_parse("service", &r) && r == KEYRING_SERVICE);
    assert_false(keyring_role_parse("Service", &r));
    assert_string_equal(keyring_role_name(KEYRING_MONITOR), "monitor");
}

static void
test_add_check_revoke(void **state)
{
    (void)state;
    struct keyring *kr = keyring_new();
    char k1[KEYRING_KEY_HEX + 1], k2[KEYRING_KEY_HEX + 1], k3[KEYRING_KEY_HEX + 1];
    char err[ERR_CAP], id1[KEYRING_ID_HEX + 1];
    const struct keyring_entry *e;

    assert_true(keyring_add(kr, "shop", KEYRING_SERVICE, T0, k1, &e, err, sizeof err));
    snprintf(id1, sizeof id1, "%s", e->id);
    assert_true(keyring_add(kr, "shop", KEYRING_SERVICE, T0, k2, &e, err, sizeof err));
    assert_false(keyring_add(kr, "shop", KEYRING_SERVICE, T0, k3, &e, err, sizeof err));
    assert_true(keyring_add(kr, "mon", KEYRING_MONITOR, T0, k3, &e, err, sizeof err));
    assert_false(keyring_add(kr, "mon", KEYRING_ADMIN, T0, k3, &e, err, sizeof err)); /* 1 role */
    assert_int_equal(keyring_count(kr), 3);

    assert_non_null(keyring_check(kr, "shop", k1, strlen(k1)));
    assert_non_null(keyring_check(kr, "shop", k2, strlen(k2)));
    assert_null(keyring_check(kr, "mon", k1, strlen(k1)));      /* another name's key */
    assert_null(keyring_check(kr, "shop", k1, strlen(k1) - 1)); /* cut short */
    assert_null(keyring_check(kr, "nobody", k1, strlen(k1)));
    char upper[KEYRING_KEY_HEX + 1];
    for (size_t i = 0; i <= KEYRING_KEY_HEX; i++)
        upper[i] = (char)(k1[i] >= 'a' && k1[i] <= 'f' ? k1[i] - 32 : k1[i]);
    assert_non_null(keyring_check(kr, "shop", upper, strlen(upper))); /* hex in either case */

    assert_int_equal(keyring_revoke(kr, "shop", id1), 1);
    assert_null(keyring_check(kr, "shop", k1, strlen(k1)));
    assert_non_null(keyring_check(kr, "shop", k2, strlen(k2)));
    assert_int_equal(keyring_revoke(kr, "shop", id1), 0);
    assert_int_equal(keyring_revoke(kr, "shop", NULL), 1);
    assert_int_equal(keyring_count(kr), 1);
    keyring_free(kr);
}

static void
test_file_round_trip(void **state)
{
    (void)state;
    char dir[DIR_CAP], err[ERR_CAP], key[KEYRING_KEY_HEX + 1], path[DIR_CAP + 32];
    struct keyring *kr = keyring_new(), *back = NULL;
    const struct keyring_entry *e;
    struct stat sb;

    make_dir(dir);
    assert_true(keyring_load(dir, KEYRING_FILE, &back, err, sizeof err)); /* none: empty */
    assert_int_equal(keyring_count(back), 0);
    keyring_free(back);
    assert_true(keyring_add(kr, "till", KEYRING_MONITOR, T0, key, &e, err, sizeof err));
    mode_t old = umask(0);
    assert_true(keyring_save(kr, dir, KEYRING_FILE, err, sizeof err));
    umask(old);
    snprintf(path, sizeof path, "%s/keys", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(keyring_load(dir, KEYRING_FILE, &back, err, sizeof err));
    assert_int_equal(keyring_count(back), 1);
    e = keyring_at(back, 0);
    assert_string_equal(e->name, "till");
    assert_int_equal(e->role, KEYRING_MONITOR);
    assert_int_equal(e->added, T0);
    assert_non_null(keyring_check(back, "till", key, strlen(key)));
    keyring_free(back);
    keyring_free(kr);
    remove_dir(dir);
}

static void
test_file_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "shop service 1 00\n", /* short hash */
        "shop boss 1 "         /* unknown role */
        "0000000000000000000000000000000000000000000000000000000000000000\n",
        "shop service x "
        "0000000000000000000000000000000000000000000000000000000000000000\n",
        "shop service 1 "
        "0000000000000000000000000000000000000000000000000000000000000000 extra\n",
        "admin admin 1 "
        "0000000000000000000000000000000000000000000000000000000000000000\n",
    };
    char dir[DIR_CAP], err[ERR_CAP];
    struct keyring *kr = NULL;

    make_dir(dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(dir, bad[i], 0600);
        assert_false(keyring_load(dir, KEYRING_FILE, &kr, err, sizeof err));
        assert_null(kr);
        assert_non_null(strstr(err, "line 1"));
    }
    write_file(dir,
               "# comment\nshop service 1 "
               "0000000000000000000000000000000000000000000000000000000000000000\n",
               0640);
    assert_false(keyring_load(dir, KEYRING_FILE, &kr, err, sizeof err));
    assert_non_null(strstr(err, "group or others"));
    write_file(dir,
               "# comment\nshop service 1 "
               "0000000000000000000000000000000000000000000000000000000000000000\n",
               0600);
    assert_true(keyring_load(dir, KEYRING_FILE, &kr, err, sizeof err));
    assert_int_equal(keyring_count(kr), 1);
    keyring_free(kr);
    remove_dir(dir);
}

static void
test_access(void **state)
{
    (void)state;
    unsigned char admin[KEYS_BYTES];
    char admin_hex[KEYS_HEX_CHARS + 1], key[KEYRING_KEY_HEX + 1], err[ERR_CAP];
    struct keyring *kr = keyring_new(), *empty = keyring_new();
    const struct keyring_entry *e;
    struct access_keys k = {.admin_key = admin, .ring = kr, .gen = 1};
    struct access_who w;

    randombytes_buf(admin, sizeof admin);
    sodium_bin2hex(admin_hex, sizeof admin_hex, admin, sizeof admin);
    assert_true(keyring_add(kr, "mon", KEYRING_MONITOR, T0, key, &e, err, sizeof err));
    memset(&w, 0, sizeof w);
    assert_int_equal(access_class_of(&w, &k), ACCESS_OPEN);
    k.require_auth = true;
    assert_int_equal(access_class_of(&w, &k), ACCESS_LOCKED);
    assert_true(access_auth(&w, &k, "", admin_hex, strlen(admin_hex)));
    assert_int_equal(access_class_of(&w, &k), ACCESS_ADMIN);
    assert_string_equal(w.name, "");
    assert_true(access_auth(&w, &k, "default", admin_hex, strlen(admin_hex)));
    assert_false(access_auth(&w, &k, "mon", admin_hex, strlen(admin_hex)));
    assert_int_equal(access_class_of(&w, &k), ACCESS_LOCKED); /* a wrong key takes rights away */
    assert_true(access_auth(&w, &k, "mon", key, strlen(key)));
    assert_int_equal(access_class_of(&w, &k), ACCESS_MONITOR);
    assert_true(access_allows(ACCESS_MONITORS, ACCESS_MONITOR));
    assert_false(access_allows(ACCESS_SERVICES, ACCESS_MONITOR));
    assert_false(access_allows(ACCESS_SERVICES, ACCESS_LOCKED));
    assert_true(access_allows(ACCESS_SERVICES, ACCESS_OPEN));
    assert_false(access_refresh(&w, &k)); /* same generation */
    k.gen++;
    assert_false(access_refresh(&w, &k)); /* still in the file */
    k.ring = empty;
    k.gen++;
    assert_true(access_refresh(&w, &k)); /* revoked */
    assert_int_equal(access_class_of(&w, &k), ACCESS_LOCKED);
    keyring_free(kr);
    keyring_free(empty);
}

static void
test_guess_verdicts(void **state)
{
    (void)state;
    struct guess *g = guess_new();
    struct guess_conn c, other;
    struct guess_verdict v;
    double t = 1000.;
    int logged = 0, cut = 0;

    memset(&c, 0, sizeof c);
    memset(&other, 0, sizeof other);
    for (int i = 1; i <= GUESS_CUT; i++) {
        guess_failed(g, &c, "10.0.0.1:4000", t, &v);
        logged += v.log_conn;
        cut += v.log_cut;
        assert_int_equal(v.failures, i);
        assert_true(i <= GUESS_FREE ? v.delay == 0. : v.delay >= GUESS_DELAY);
        assert_int_equal(v.close, i >= GUESS_CUT);
        t += v.delay;
    }
    assert_int_equal(logged, 1);
    assert_int_equal(cut, 1);
    guess_failed(g, &c, "10.0.0.1:4000", t, &v); /* one started before the cut: no new line */
    assert_true(v.close && !v.log_cut);
    /* another connection of another address is not touched */
    guess_failed(g, &other, "[2001:db8::1]:4000", t, &v);
    assert_true(v.delay == 0. && !v.close && v.addr_failures == 1);
    /* a new window starts over */
    guess_failed(g, &c, "10.0.0.1:4000", t + GUESS_WINDOW, &v);
    assert_int_equal(v.failures, 1);
    assert_true(v.delay == 0. && !v.close);
    guess_free(g);
}

static void
test_guess_address(void **state)
{
    (void)state;
    struct guess *g = guess_new();
    struct guess_verdict v;
    char addr[GUESS_ADDR_MAX + 1], peer[64];

    guess_addr_of("192.0.2.7:555", addr);
    assert_string_equal(addr, "192.0.2.7");
    guess_addr_of("[::1]:555", addr);
    assert_string_equal(addr, "::1");
    /* one failure per connection, many connections: the address is slowed, then cut */
    for (int i = 1; i <= GUESS_ADDR_CUT; i++) {
        struct guess_conn c;
        memset(&c, 0, sizeof c);
        guess_failed(g, &c, "192.0.2.7:1", 50., &v);
        assert_int_equal(v.addr_failures, i);
        assert_int_equal(v.delay > 0., i > GUESS_ADDR_FREE);
        assert_int_equal(v.close, i >= GUESS_ADDR_CUT);
    }
    /* the table is bounded: many more addresses than slots, and it still answers */
    for (int i = 0; i < GUESS_ADDRS * 4; i++) {
        struct guess_conn c;
        memset(&c, 0, sizeof c);
        snprintf(peer, sizeof peer, "10.%d.%d.%d:1", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        guess_failed(g, &c, peer, 60. + i, &v);
        assert_int_equal(v.addr_failures, 1);
    }
    guess_free(g);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_roles), cmocka_unit_test(test_add_check_revoke),
        cmocka_unit_test(test_file_round_trip), cmocka_unit_test(test_file_refused),
        cmocka_unit_test(test_access),          cmocka_unit_test(test_guess_verdicts),
        cmocka_unit_test(test_guess_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
