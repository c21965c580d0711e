/* test_tls_opts.c - coupond's TLS flags (opts.c), --tls-only among them: what goes together,
 * and what is a usage error. Whether the files load is the black-box test's
 * (tests/tls/test_tls.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "opts.h"

#define ARGS_MAX 32

/* Parses the NULL-terminated words after "coupond" into *o. */
static enum opts_result
parse(struct opts *o, char *err, size_t errlen, ...)
{
    char *argv[ARGS_MAX] = {"coupond"};
    int argc = 1;
    va_list ap;

    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < ARGS_MAX - 1;)
        argv[argc++] = a;
    va_end(ap);
    opts_defaults(o);
    FILE *devnull = fopen("/dev/null", "w");
    enum opts_result r = opts_parse(o, argc, argv, devnull, err, errlen);
    fclose(devnull);
    return r;
}

static void
test_tls_off_by_default(void **state)
{
    (void)state;
    struct opts o;
    char err[256];

    assert_int_equal(parse(&o, err, sizeof err, NULL), OPTS_RUN);
    assert_false(o.tls);
    assert_false(o.tls_only);
    assert_null(o.tls_cert);
    assert_null(o.tls_key);
    assert_null(o.tls_ca);
}

static void
test_tls_flags(void **state)
{
    (void)state;
    struct opts o;
    char err[256];

    assert_int_equal(parse(&o, err, sizeof err, "--tls-port", "0", "--tls-cert", "c.pem",
                           "--tls-key", "k.pem", NULL),
                     OPTS_RUN);
    assert_true(o.tls);
    assert_int_equal(o.tls_port, 0);
    assert_string_equal(o.tls_cert, "c.pem");
    assert_string_equal(o.tls_key, "k.pem");
    assert_null(o.tls_ca);
    assert_int_equal(parse(&o, err, sizeof err, "--tls-port=7443", "--tls-cert=c", "--tls-key=k",
                           "--tls-ca=ca", NULL),
                     OPTS_RUN);
    assert_int_equal(o.tls_port, 7443);
    assert_int_equal(o.port, 7070);
    assert_string_equal(o.tls_ca, "ca");
}

static void
test_tls_usage_errors(void **state)
{
    (void)state;
    struct opts o;
    char err[256];

    assert_int_equal(parse(&o, err, sizeof err, "--tls-port", "7443", NULL), OPTS_USAGE);
    assert_non_null(strstr(err, "needs --tls-cert"));
    assert_int_equal(parse(&o, err, sizeof err, "--tls-port", "7443", "--tls-key", "k", NULL),
                     OPTS_USAGE);
    assert_int_equal(parse(&o, err, sizeof err, "--tls-cert", "c", "--tls-key", "k", NULL),
                     OPTS_USAGE);
    assert_non_null(strstr(err, "go with --tls-port"));
    assert_int_equal(parse(&o, err, sizeof err, "--tls-ca", "ca", NULL), OPTS_USAGE);
    assert_int_equal(parse(&o, err, sizeof err, "--tls-port", "65536", "--tls-cert", "c",
                           "--tls-key", "k", NULL),
                     OPTS_USAGE);
    assert_int_equal(
        parse(&o, err, sizeof err, "--tls-port", "7070", "--tls-cert", "c", "--tls-key", "k", NULL),
        OPTS_USAGE);
    assert_non_null(strstr(err, "differ"));
    assert_int_equal(parse(&o, err, sizeof err, "--tls-cert", NULL), OPTS_USAGE);
    assert_null(strchr(err, '\n'));
}

/* --tls-only: the TLS port is the only one, so -p is refused and 7070 may be the TLS port. */
static void
test_tls_only(void **state)
{
    (void)state;
    struct opts o;
    char err[256];

    assert_int_equal(parse(&o, err, sizeof err, "--tls-only", "--tls-port", "7070", "--tls-cert",
                           "c", "--tls-key", "k", NULL),
                     OPTS_RUN);
    assert_true(o.tls_only);
    assert_int_equal(o.tls_port, 7070);
    assert_int_equal(parse(&o, err, sizeof err, "--tls-only", NULL), OPTS_USAGE);
    assert_non_null(strstr(err, "--tls-only needs --tls-port"));
    assert_int_equal(parse(&o, err, sizeof err, "--tls-only", "-p", "7071", "--tls-port", "7443",
                           "--tls-cert", "c", "--tls-key", "k", NULL),
                     OPTS_USAGE);
    assert_non_null(strstr(err, "do not go together"));
    assert_null(strchr(err, '\n'));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_off_by_default),
        cmocka_unit_test(test_tls_flags),
        cmocka_unit_test(test_tls_usage_errors),
        cmocka_unit_test(test_tls_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
