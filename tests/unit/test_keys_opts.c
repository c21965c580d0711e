/* test_keys_opts.c - unit tests of the server's key files (real libsodium, real files) and of
 * its command-line parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "opts.h"

struct fixture {
    char dir[64];
    char path[PATH_MAX];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/coupond-keys-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, KEYS_ADMIN_FILE);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char tmp[PATH_MAX];
    unlink(f->path);
    snprintf(tmp, sizeof tmp, "%s/raw.key", f->dir);
    unlink(tmp);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void
test_key_created_0600_hex_even_with_umask_0(void **state)
{
    struct fixture *f = *state;
    unsigned char key[KEYS_BYTES];
    char err[256];
    mode_t old = umask(0);
    bool ok = keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err);
    umask(old);
    assert_true(ok);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, KEYS_HEX_CHARS + 1);

    char text[KEYS_HEX_CHARS + 2] = {0};
    int fd = open(f->path, O_RDONLY);
    assert_int_equal(read(fd, text, sizeof text), KEYS_HEX_CHARS + 1);
    close(fd);
    assert_int_equal(text[KEYS_HEX_CHARS], '\n');
    assert_true(keys_match(key, text, KEYS_HEX_CHARS));
}

static void
test_key_kept_across_loads(void **state)
{
    struct fixture *f = *state;
    unsigned char a[KEYS_BYTES], b[KEYS_BYTES];
    char err[256];
    assert_true(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, a, err, sizeof err));
    assert_true(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, b, err, sizeof err));
    assert_memory_equal(a, b, KEYS_BYTES);
}

static void
test_two_stores_get_different_keys(void **state)
{
    struct fixture *f = *state;
    unsigned char a[KEYS_BYTES], b[KEYS_BYTES];
    char err[256];
    assert_true(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, a, err, sizeof err));
    unlink(f->path);
    assert_true(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, b, err, sizeof err));
    assert_memory_not_equal(a, b, KEYS_BYTES);
}

static void
test_group_readable_key_refused(void **state)
{
    struct fixture *f = *state;
    unsigned char key[KEYS_BYTES];
    char err[256];
    assert_true(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err));
    assert_int_equal(chmod(f->path, 0640), 0);
    assert_false(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err));
    assert_non_null(strstr(err, "group or others"));
    assert_non_null(strstr(err, f->path));
    assert_int_equal(chmod(f->path, 0604), 0);
    assert_false(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err));
}

static void
test_malformed_key_refused(void **state)
{
    struct fixture *f = *state;
    unsigned char key[KEYS_BYTES];
    char err[256];
    static const char *const bad[] = {
        "", "abc\n",                                                           /* too short */
        "zz00000000000000000000000000000000000000000000000000000000000000\n",  /* not hex */
        "00000000000000000000000000000000000000000000000000000000000000000\n", /* 65 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(f->path, bad[i], strlen(bad[i]), 0600);
        assert_false(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err));
        assert_non_null(strstr(err, "malformed"));
    }
}

static void
test_hex_key_without_newline_and_upper_case_accepted(void **state)
{
    struct fixture *f = *state;
    unsigned char key[KEYS_BYTES];
    char err[256];
    const char *hex = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
    write_file(f->path, hex, strlen(hex), 0600);
    assert_true(keys_load_or_create(f->dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err));
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[10], 0xaa);
    assert_true(keys_match(key, hex, strlen(hex)));
}

static void
test_raw_key(void **state)
{
    struct fixture *f = *state;
    unsigned char a[KEYS_BYTES], b[KEYS_BYTES];
    char err[256], path[PATH_MAX];
    assert_true(keys_load_or_create(f->dir, "raw.key", KEYS_RAW, a, err, sizeof err));
    snprintf(path, sizeof path, "%s/raw.key", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, KEYS_BYTES);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(keys_load_or_create(f->dir, "raw.key", KEYS_RAW, b, err, sizeof err));
    assert_memory_equal(a, b, KEYS_BYTES);
}

static void
test_keys_match(void **state)
{
    (void)state;
    unsigned char key[KEYS_BYTES];
    char hex[KEYS_HEX_CHARS + 1];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    assert_true(keys_match(key, hex, KEYS_HEX_CHARS));
    assert_false(keys_match(key, hex, KEYS_HEX_CHARS - 1)); /* truncated */
    assert_false(keys_match(key, hex, 0));
    hex[5] = hex[5] == '0' ? '1' : '0'; /* one nibble off */
    assert_false(keys_match(key, hex, KEYS_HEX_CHARS));
    assert_false(keys_match(key, "not-hex-at-all", 14));
}

/* --- opts --- */

static enum opts_result
parse(struct opts *o, char *err, size_t errlen, ...)
{
    char *argv[32] = {"coupond"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    opts_defaults(o);
    FILE *devnull = fopen("/dev/null", "w");
    enum opts_result r = opts_parse(o, argc, argv, devnull, err, errlen);
    fclose(devnull);
    return r;
}

static void
test_opts_defaults(void **state)
{
    (void)state;
    struct opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, NULL), OPTS_RUN);
    assert_string_equal(o.listen, "127.0.0.1");
    assert_int_equal(o.port, 7070);
    assert_string_equal(o.data_dir, "./coupond-data");
    assert_int_equal(o.max_upload, 50000);
    assert_int_equal(o.purge_interval, 3600);
    assert_int_equal(o.max_clients, 10000);
    assert_int_equal(o.idle_timeout, 300);
    assert_null(o.log_path);
}

static void
test_opts_all_flags(void **state)
{
    (void)state;
    struct opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, "-l", "::1", "-p", "0", "-d", "/x", "--max-upload",
                           "10", "--purge-interval", "0", "--log", "/l", "--max-clients", "5",
                           "--idle-timeout", "7", "--map-size", "64M", NULL),
                     OPTS_RUN);
    assert_string_equal(o.listen, "::1");
    assert_int_equal(o.port, 0);
    assert_string_equal(o.data_dir, "/x");
    assert_int_equal(o.max_upload, 10);
    assert_int_equal(o.purge_interval, 0);
    assert_string_equal(o.log_path, "/l");
    assert_int_equal(o.max_clients, 5);
    assert_int_equal(o.idle_timeout, 7);
    assert_int_equal(o.map_size, 64ULL << 20);
}

static void
test_opts_bad_values(void **state)
{
    (void)state;
    struct opts o;
    char err[256];
    static const char *const bad[][2] = {
        {"-p", "65536"},
        {"-p", "-1"},
        {"-p", "80x"},
        {"--max-upload", "0"},
        {"--max-upload", "50001"},
        {"--max-clients", "0"},
        {"--idle-timeout", "1.5"},
        {"--map-size", "1K"},
        {"--map-size", "12Q"},
        {"--map-size", ""},
        {"--purge-interval", ""},
        {"-d", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(&o, err, sizeof err, bad[i][0], bad[i][1], NULL), OPTS_USAGE);
        assert_true(strlen(err) > 0);
        assert_null(strchr(err, '\n'));
    }
}

static void
test_opts_usage_errors(void **state)
{
    (void)state;
    struct opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, "--bogus", NULL), OPTS_USAGE);
    assert_non_null(strstr(err, "--bogus"));
    assert_int_equal(parse(&o, err, sizeof err, "-p", NULL), OPTS_USAGE);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(parse(&o, err, sizeof err, "stray", NULL), OPTS_USAGE);
    assert_int_equal(parse(&o, err, sizeof err, "-h", NULL), OPTS_EXIT_OK);
    assert_int_equal(parse(&o, err, sizeof err, "--version", NULL), OPTS_EXIT_OK);
    assert_int_equal(parse(&o, err, sizeof err, "--check", NULL), OPTS_RUN);
    assert_int_equal(o.mode, OPTS_MODE_CHECK);
}

static void
test_opts_keys_and_require_auth(void **state)
{
    (void)state;
    struct opts o;
    char err[256];
    assert_int_equal(parse(&o, err, sizeof err, NULL), OPTS_RUN);
    assert_int_equal(o.require_auth, OPTS_REQUIRE_AUTH_AUTO);
    assert_int_equal(parse(&o, err, sizeof err, "--require-auth", NULL), OPTS_RUN);
    assert_int_equal(o.require_auth, OPTS_REQUIRE_AUTH_ON);
    assert_int_equal(parse(&o, err, sizeof err, "--no-require-auth", NULL), OPTS_RUN);
    assert_int_equal(o.require_auth, OPTS_REQUIRE_AUTH_OFF);
    assert_int_equal(parse(&o, err, sizeof err, "-d", "/k", "key", "add", "shop", "service", NULL),
                     OPTS_RUN);
    assert_int_equal(o.mode, OPTS_MODE_KEY);
    assert_string_equal(o.data_dir, "/k");
    assert_int_equal(o.key_argc, 3);
    assert_string_equal(o.key_argv[0], "add");
    assert_string_equal(o.key_argv[2], "service");
    assert_int_equal(parse(&o, err, sizeof err, "key", "list", "-d", "/k", NULL), OPTS_RUN);
    assert_int_equal(o.mode, OPTS_MODE_KEY);
    assert_string_equal(o.data_dir, "/k");
    assert_int_equal(parse(&o, err, sizeof err, "--check", "key", "list", NULL), OPTS_USAGE);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_created_0600_hex_even_with_umask_0, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_kept_across_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_stores_get_different_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_readable_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hex_key_without_newline_and_upper_case_accepted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_raw_key, setup, teardown),
        cmocka_unit_test(test_keys_match),
        cmocka_unit_test(test_opts_defaults),
        cmocka_unit_test(test_opts_all_flags),
        cmocka_unit_test(test_opts_bad_values),
        cmocka_unit_test(test_opts_usage_errors),
        cmocka_unit_test(test_opts_keys_and_require_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
