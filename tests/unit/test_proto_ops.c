/* test_proto_ops.c - unit tests of protocol/ for version 2's backup and metrics section: BACKUP
 * dir and VERSION, their forms, bounds and errors, and BACKUP's canonical line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

#define LINE_BUF (PROTO_MAX_LINE + 64)

static void
expect_ok(const char *line, enum proto_cmd cmd, struct proto_request *r)
{
    struct proto_error e;

    memset(&e, 0, sizeof e);
    if (!proto_parse_request(line, strlen(line), r, &e))
        fail_msg("\"%s\" refused: %s %s", line, proto_err_name(e.code), e.msg);
    assert_int_equal(r->cmd, cmd);
}

static void
expect_fail(const char *line, enum proto_err code, const char *part)
{
    struct proto_request r;
    struct proto_error e;

    memset(&e, 0, sizeof e);
    if (proto_parse_request(line, strlen(line), &r, &e))
        fail_msg("\"%s\" accepted", line);
    if (e.code != code)
        fail_msg("\"%s\": %s (%s), expected %s", line, proto_err_name(e.code), e.msg,
                 proto_err_name(code));
    if (strstr(e.msg, part) == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, e.msg, part);
}

static void
test_verbs_in_table(void **state)
{
    const struct proto_verb *b = &proto_verbs[PROTO_CMD_BACKUP],
                            *v = &proto_verbs[PROTO_CMD_VERSION];

    (void)state;
    assert_string_equal(b->name, "BACKUP");
    assert_int_equal(b->min_args, 1);
    assert_int_equal(b->max_args, 1);
    assert_true(b->admin);
    assert_string_equal(b->synopsis, "BACKUP dir");
    assert_string_equal(v->name, "VERSION");
    assert_int_equal(v->min_args, 0);
    assert_int_equal(v->max_args, 0);
    assert_false(v->admin);
}

/* The path points into the line, as given: case and every printable byte kept. */
static void
test_backup_path(void **state)
{
    static const char line[] = "backup /var/Backups/coupond-2026-12-31T23:59:59Z";
    struct proto_request r;

    (void)state;
    expect_ok(line, PROTO_CMD_BACKUP, &r);
    assert_ptr_equal(r.path, line + 7);
    assert_int_equal(r.path_len, strlen(line) - 7);
    expect_ok("BACKUP\t/x  ", PROTO_CMD_BACKUP, &r);
    assert_int_equal(r.path_len, 2);
    assert_memory_equal(r.path, "/x", 2);
    expect_ok("BACKUP /", PROTO_CMD_BACKUP, &r); /* the form is right; mkdir will say no */
    expect_ok("VERSION", PROTO_CMD_VERSION, &r);
    assert_null(r.path);
}

static void
test_backup_errors(void **state)
{
    char line[LINE_BUF], path[PROTO_PATH_MAX + 2];
    struct proto_request r;

    (void)state;
    expect_fail("BACKUP", PROTO_ERR_BAD_REQUEST, "usage: BACKUP dir");
    expect_fail("BACKUP /a /b", PROTO_ERR_BAD_REQUEST, "usage: BACKUP dir");
    expect_fail("BACKUP backups/today", PROTO_ERR_BAD_REQUEST, "absolute path");
    expect_fail("BACKUP ./x", PROTO_ERR_BAD_REQUEST, "absolute path");
    expect_fail("BACKUP /x id=1", PROTO_ERR_BAD_REQUEST, "usage"); /* no request ids */
    expect_fail("VERSION 2", PROTO_ERR_BAD_REQUEST, "usage: VERSION");
    /* PROTO_PATH_MAX bytes pass, one more does not. */
    memset(path, 'p', sizeof path);
    path[0] = '/';
    path[PROTO_PATH_MAX] = '\0';
    snprintf(line, sizeof line, "BACKUP %s", path);
    expect_ok(line, PROTO_CMD_BACKUP, &r);
    assert_int_equal(r.path_len, PROTO_PATH_MAX);
    path[PROTO_PATH_MAX] = 'p';
    path[PROTO_PATH_MAX + 1] = '\0';
    snprintf(line, sizeof line, "BACKUP %s", path);
    expect_fail(line, PROTO_ERR_BAD_REQUEST, "longer than 512");
}

/* The canonical line is the verb and the path as given; the longest fits. */
static void
test_backup_canonical(void **state)
{
    char line[LINE_BUF], path[PROTO_PATH_MAX + 1], out[PROTO_REQUEST_BUF];
    struct proto_request r, again;
    struct proto_error e;

    (void)state;
    expect_ok("backup   /srv/Bk", PROTO_CMD_BACKUP, &r);
    proto_fmt_request(out, &r, true);
    assert_string_equal(out, "BACKUP /srv/Bk");
    memset(path, 'q', sizeof path);
    path[0] = '/';
    path[PROTO_PATH_MAX] = '\0';
    snprintf(line, sizeof line, "BACKUP %s", path);
    expect_ok(line, PROTO_CMD_BACKUP, &r);
    size_t n = proto_fmt_request(out, &r, true);
    assert_string_equal(out, line);
    assert_true(proto_parse_request(out, n, &again, &e));
    assert_int_equal(again.path_len, PROTO_PATH_MAX);
    expect_ok("version", PROTO_CMD_VERSION, &r);
    proto_fmt_request(out, &r, true);
    assert_string_equal(out, "VERSION");
}

/* RESP's arguments give the same request as the line. */
static void
test_backup_args(void **state)
{
    static const char dir[] = "/srv/backup";
    const struct proto_arg args[] = {{"BACKUP", 6, PROTO_ARG_STRING},
                                     {dir, sizeof dir - 1, PROTO_ARG_STRING}};
    struct proto_request r;
    struct proto_error e;

    (void)state;
    assert_true(proto_parse_args(args, 2, 2, &r, &e));
    assert_int_equal(r.cmd, PROTO_CMD_BACKUP);
    assert_ptr_equal(r.path, dir);
    assert_int_equal(r.path_len, sizeof dir - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs_in_table), cmocka_unit_test(test_backup_path),
        cmocka_unit_test(test_backup_errors),  cmocka_unit_test(test_backup_canonical),
        cmocka_unit_test(test_backup_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
