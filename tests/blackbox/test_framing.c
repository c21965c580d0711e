/* test_framing.c - the wire framing of PROTOCOL.md: pipelining, split and merged packets, CRLF,
 * blank lines, blanks between words, verb case, the 4096-byte line limit, NUL bytes, big uploads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"
#include "proto.h"

#define PIPELINE_ROUNDS       100          /* rounds of PING, FROB, REQUEST sent in one write */
#define SPLIT_PAUSE_MS        60           /* pause between the pieces of a split command */
#define HUGE_LINE             (100 * 1024) /* an over-long line many times the limit */
#define HUGE_CHUNK            4096         /* pieces the huge line is sent in, the second time */
#define HUGE_CHUNK_PAUSE      2            /* ms between those pieces */
#define QUIET_MS              300          /* no stray reply may arrive within this */
#define BIG_UPLOAD            PROTO_UPLOAD_MAX /* records in the largest upload */
#define BIG_UPLOAD_TIMEOUT_MS 120000           /* an ASan server on a busy CI machine is slow */

/* Sends `s` in pieces, the lengths of which are given by `cuts` (0-terminated), pausing between
 * them; the remainder goes last. */
static void
send_in_pieces(struct bb_client *c, const char *s, const size_t *cuts)
{
    size_t len = strlen(s);
    for (; *cuts != 0 && *cuts < len; cuts++) {
        bb_send(c, s, *cuts);
        s += *cuts;
        len -= *cuts;
        bb_sleep_ms(SPLIT_PAUSE_MS);
    }
    bb_send(c, s, len);
}

static void
expect_line(struct bb_client *c, const char *want)
{
    static char line[BB_LINE_MAX];
    enum bb_read r = bb_read_line(c, line, sizeof line);
    if (r != BB_READ_LINE)
        fail_msg("expected \"%s\", got no line (%d)", want, (int)r);
    if (strcmp(line, want) != 0)
        fail_msg("expected \"%s\", got \"%s\"", want, line);
}

static void
test_pipelined_replies_in_order(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_upload_gen(c, "P-", "", PIPELINE_ROUNDS, NULL, 1);
    size_t cap = PIPELINE_ROUNDS * 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t len = 0;
    for (int i = 0; i < PIPELINE_ROUNDS; i++)
        len += (size_t)snprintf(buf + len, cap - len, "PING\nFROB\nREQUEST user%d\n", i);
    bb_send(c, buf, len);
    free(buf);
    for (int i = 0; i < PIPELINE_ROUNDS; i++) {
        char want[64];
        snprintf(want, sizeof want, "OK code=P-%06d ", i);
        bb_get_reply(c, reply);
        assert_string_equal(reply, "OK PONG");
        bb_get_reply(c, reply);
        if (!bb_has_prefix(reply, "ERR UNKNOWN_COMMAND"))
            fail_msg("round %d: expected ERR UNKNOWN_COMMAND, got \"%s\"", i, reply);
        bb_get_reply(c, reply);
        if (strncmp(reply, want, strlen(want)) != 0)
            fail_msg("round %d: expected \"%s...\", got \"%s\"", i, want, reply);
    }
    assert_true(bb_quiet(c, QUIET_MS));
    bb_close(c);
}

static void
test_command_split_across_writes(void **state)
{
    static const size_t request_cuts[] = {3, 4, 3, 0}; /* "REQ" "UEST" " al" "ice\n" */
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_upload_gen(c, "S-", "", 1, NULL, 1);
    send_in_pieces(c, "REQUEST alice\n", request_cuts);
    bb_expect_reply_prefix(c, "OK code=S-000000");
    static const size_t byte_cuts[] = {1, 1, 1, 1, 0}; /* one byte at a time */
    send_in_pieces(c, "PING\n", byte_cuts);
    expect_line(c, "OK PONG");
    bb_close(c);
}

static void
test_two_commands_in_one_packet(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_send_str(c, "PING\nHELP\n");
    expect_line(c, "OK PONG");
    int lines = bb_read_reply(c, reply);
    assert_true(lines >= 2);
    assert_string_equal(strrchr(reply, '\n') + 1, "OK");
    assert_true(strncmp(reply, "INFO ", 5) == 0);
    /* The second command of a packet ends in the next packet. */
    bb_send_str(c, "PING\nPI");
    expect_line(c, "OK PONG");
    bb_sleep_ms(SPLIT_PAUSE_MS);
    bb_send_str(c, "NG\n");
    expect_line(c, "OK PONG");
    bb_close(c);
}

static void
test_crlf(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_send_str(c, "PING\r\n");
    expect_line(c, "OK PONG");
    bb_send_str(c, "AUTH ");
    bb_send_str(c, bb_server_of(state)->key);
    bb_send_str(c, "\r\n");
    expect_line(c, "OK");
    bb_send_str(c, "UPLOAD 1\r\nC-1,,10,FLAT,2030-01-01,1\r\n");
    expect_line(c, "OK uploaded=1");
    bb_send_str(c, "REQUEST alice\r\n");
    expect_line(c, "OK code=C-1 type=NONE discount=10.00 kind=FLAT expires=2030-01-01T23:59:59Z "
                   "uses=0 max_uses=1");
    /* The CR was not part of the user name. */
    bb_expect_prefix(c, "VALIDATE alice C-1", "OK code=C-1");
    bb_close(c);
}

static void
test_blank_lines_get_no_reply(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_send_str(c, "\n\n   \n\t\n\r\n \t \r\nPING\n");
    expect_line(c, "OK PONG");
    bb_send_str(c, "\n\nFROB\n\n");
    char line[BB_LINE_MAX];
    assert_int_equal(bb_read_line(c, line, sizeof line), BB_READ_LINE);
    if (!bb_has_prefix(line, "ERR UNKNOWN_COMMAND"))
        fail_msg("expected ERR UNKNOWN_COMMAND, got \"%s\"", line);
    assert_true(bb_quiet(c, QUIET_MS));
    bb_close(c);
}

static void
test_tabs_and_multiple_spaces(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_upload_gen(c, "W-", "STANDARD", 1, NULL, 2);
    bb_send_str(c, "REQUEST \t alice\t\tSTANDARD  \n");
    bb_expect_reply_prefix(c, "OK code=W-000000");
    bb_send_str(c, "REDEEM\talice\tW-000000\t\n");
    bb_expect_reply_prefix(c, "OK code=W-000000");
    bb_send_str(c, "  \tPING\n"); /* leading blanks before the verb */
    expect_line(c, "OK PONG");
    bb_close(c);
}

static void
test_lower_case_verbs(void **state)
{
    char cmd[BB_KEY_HEX + 8];
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_expect(c, "ping", "OK PONG");
    bb_expect(c, "Ping", "OK PONG");
    bb_expect_prefix(c, "hElP", "OK");
    snprintf(cmd, sizeof cmd, "auth %s", bb_server_of(state)->key);
    bb_expect(c, cmd, "OK");
    bb_expect_prefix(c, "stats", "OK");
    bb_expect_prefix(c, "request alice", "ERR NO_COUPONS");
    bb_expect(c, "quit", "OK BYE");
    bb_close(c);
}

static void
test_line_limit_4096(void **state)
{
    static char line[PROTO_MAX_LINE + 2];
    struct bb_client *c = bb_connect(bb_server_of(state));
    /* Exactly 4096 bytes: accepted and parsed (the trailing blanks are separators). */
    memset(line, ' ', PROTO_MAX_LINE);
    memcpy(line, "PING", 4);
    line[PROTO_MAX_LINE] = '\0';
    bb_expect(c, line, "OK PONG");
    memset(line, 'x', PROTO_MAX_LINE);
    memcpy(line, "FROB ", 5);
    bb_expect_prefix(c, line, "ERR UNKNOWN_COMMAND");
    /* 4097 bytes: too long, and the connection lives on. */
    memset(line, ' ', PROTO_MAX_LINE + 1);
    memcpy(line, "PING", 4);
    line[PROTO_MAX_LINE + 1] = '\0';
    bb_expect_prefix(c, line, "ERR TOO_LONG");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

static void
test_huge_line_answered_once(void **state)
{
    char *huge = malloc(HUGE_LINE + 16);
    assert_non_null(huge);
    memset(huge, 'A', HUGE_LINE);
    memcpy(huge + HUGE_LINE, "\nPING\n", 7);
    struct bb_client *c = bb_connect(bb_server_of(state));

    bb_send_str(c, huge); /* all in one write */
    bb_expect_reply_prefix(c, "ERR TOO_LONG");
    expect_line(c, "OK PONG");
    assert_true(bb_quiet(c, QUIET_MS));

    for (size_t off = 0; off < HUGE_LINE; off += HUGE_CHUNK) { /* in many small writes */
        bb_send(c, huge + off, HUGE_CHUNK);
        bb_sleep_ms(HUGE_CHUNK_PAUSE);
    }
    bb_send_str(c, "\nPING\n");
    bb_expect_reply_prefix(c, "ERR TOO_LONG");
    expect_line(c, "OK PONG");
    assert_true(bb_quiet(c, QUIET_MS));
    free(huge);
    bb_close(c);
}

static void
test_nul_and_control_bytes(void **state)
{
    static const char nul_inside[] = "PI\0NG\n";
    static const char nul_at_end[] = "PING\0\n";
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_send(c, nul_inside, sizeof nul_inside - 1);
    bb_expect_reply_prefix(c, "ERR BAD_REQUEST");
    bb_send(c, nul_at_end, sizeof nul_at_end - 1);
    bb_expect_reply_prefix(c, "ERR BAD_REQUEST");
    bb_send_str(c, "PING\x01\n");
    bb_expect_reply_prefix(c, "ERR BAD_REQUEST");
    bb_send_str(c, "REQUEST al\x1b"
                   "ice\n");
    bb_expect_reply_prefix(c, "ERR BAD_REQUEST");
    bb_expect(c, "PING", "OK PONG");
    bb_close(c);
}

static void
test_upload_records_split_across_writes(void **state)
{
    static const char upload[] = "UPLOAD 3\nA-1,,10,FLAT,2030-01-01,1\nA-2,,10,FLAT,2030-01-01,1\n"
                                 "A-3,,10,FLAT,2030-01-01,1\n";
    static const size_t cuts[] = {3, 9, 14, 20, 6, 27, 0};
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    send_in_pieces(c, upload, cuts);
    expect_line(c, "OK uploaded=3");
    assert_int_equal(bb_stat(c, "created.NONE"), 3);
    bb_close(c);
}

static void
test_record_lines_are_never_commands(void **state)
{
    static char reply[BB_REPLY_MAX];
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_send_str(c, "UPLOAD 2\nQUIT\nPING\nPING\n");
    int lines = bb_read_reply(c, reply);
    if (lines != 3 || strncmp(reply, "REJECT 1 ", 9) != 0 || strstr(reply, "\nREJECT 2 ") == NULL)
        fail_msg("expected REJECT 1, REJECT 2 and BAD_BATCH, got:\n%s", reply);
    assert_string_equal(strrchr(reply, '\n') + 1,
                        "ERR BAD_BATCH 2 of 2 records rejected, nothing stored");
    expect_line(c, "OK PONG");
    assert_true(bb_quiet(c, QUIET_MS));
    bb_close(c);
}

static void
test_upload_50000_records(void **state)
{
    struct bb_client *c = bb_connect(bb_server_of(state));
    bb_auth(c);
    bb_set_timeout(c, BIG_UPLOAD_TIMEOUT_MS);
    int64_t t0 = bb_now_ms();
    bb_upload_gen(c, "BIG-", "", BIG_UPLOAD, NULL, 1);
    int64_t ms = bb_now_ms() - t0;
    print_message("upload of %d records: %lld ms\n", BIG_UPLOAD, (long long)ms);
    assert_int_equal(bb_stat(c, "created.NONE"), BIG_UPLOAD);
    assert_int_equal(bb_stat(c, "available.NONE"), BIG_UPLOAD);
    bb_expect_prefix(c, "REQUEST alice", "OK code=BIG-000000");
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelined_replies_in_order, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_command_split_across_writes, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_two_commands_in_one_packet, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_crlf, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_blank_lines_get_no_reply, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_tabs_and_multiple_spaces, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_lower_case_verbs, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_line_limit_4096, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_huge_line_answered_once, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_nul_and_control_bytes, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_records_split_across_writes, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_record_lines_are_never_commands, bb_setup,
                                        bb_teardown),
        cmocka_unit_test_setup_teardown(test_upload_50000_records, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
