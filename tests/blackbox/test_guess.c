/* test_guess.c - the code-guessing defence (coupond-protocol(7) "Guessing codes"): one client
 * that sends 1,000 wrong codes is answered at once for GUESS_FREE of them, then slowly, then cut
 * off, while another client on the same address keeps redeeming at its usual latency (both
 * clients' p50 and p99 are printed); failures over several connections of one address are
 * slowed too; each episode is logged once. The numbers are the man page's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"

#define GUESSES        1000 /* wrong codes the attacker sends at once */
#define FREE           20   /* answered at once per connection (coupond-protocol(7)) */
#define CUT            40   /* the connection is closed after this many */
#define DELAY_MS       500  /* each answer past FREE waits this much longer than the last */
#define ADDR_FREE      100  /* answered at once per address */
#define BASELINE       200  /* REDEEMs measured before the attack */
#define SAMPLES_MAX    100000
#define ATTACK_TIMEOUT 60000 /* ms the attacker waits for a reply at most */
#define LINE_BUF       256
/* The other client's latency during the attack: its p99 must stay far below one delayed
 * answer (DELAY_MS); these bounds leave room for a sanitizer build on a busy 2-core machine. */
#define OTHER_P50_MAX_MS 100.0
#define OTHER_P99_MAX_MS 400.0

struct attack {
    struct bb_client *c;
    int answers;           /* replies before the close */
    bool closed;           /* the server closed the connection */
    int64_t start_ms;      /* when the guesses were sent */
    int64_t cut_ms;        /* when the close was seen, after start */
    double at_ms[CUT + 1]; /* each reply's arrival, after start */
    atomic_bool done;      /* set last by the attacker's thread (release), read by the test */
};

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
percentile(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return n == 0 ? 0. : v[i];
}

/* The attacker's thread: every guess in one write, then the replies until the close. */
static void *
attacker(void *arg)
{
    struct attack *a = arg;
    static char buf[GUESSES * 40];
    size_t len = 0;
    char line[BB_LINE_MAX];

    for (int i = 0; i < GUESSES; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "VALIDATE mallory WRONG-%06d\n", i);
    a->start_ms = bb_now_ms();
    if (bb_try_send(a->c, buf, len) != 0) {
        atomic_store(&a->done, true);
        return NULL;
    }
    for (;;) {
        enum bb_read r = bb_read_line(a->c, line, sizeof line);
        if (r != BB_READ_LINE) {
            a->closed = r == BB_READ_CLOSED;
            break;
        }
        if (a->answers <= CUT)
            a->at_ms[a->answers] = (double)(bb_now_ms() - a->start_ms);
        a->answers++;
    }
    a->cut_ms = bb_now_ms() - a->start_ms;
    atomic_store(&a->done, true);
    return NULL;
}

/* One REDEEM's latency in ms. */
static double
redeem_ms(struct bb_client *c)
{
    char reply[BB_REPLY_MAX];
    int64_t t0 = bb_now_ms();
    const char *st = bb_cmd(c, "REDEEM bob G-000000", reply);
    if (!bb_has_prefix(st, "OK code=G-000000"))
        fail_msg("REDEEM: %s", st);
    return (double)(bb_now_ms() - t0);
}

static void
test_one_client_cut_off(void **state)
{
    struct bb_server *s = *state;
    static double base[BASELINE], during[SAMPLES_MAX];
    static struct attack a;
    char log[BB_PATH_MAX + 16];
    size_t n = 0;
    pthread_t th;

    struct bb_client *admin = bb_connect_admin(s);
    bb_upload_gen(admin, "G-", "", 1, NULL, 1000000);
    struct bb_client *good = bb_connect(s);
    bb_expect_prefix(good, "REQUEST bob", "OK code=G-000000");
    for (int i = 0; i < BASELINE; i++)
        base[i] = redeem_ms(good);

    memset(&a, 0, sizeof a);
    atomic_init(&a.done, false);
    a.c = bb_connect(s);
    bb_set_timeout(a.c, ATTACK_TIMEOUT);
    assert_int_equal(pthread_create(&th, NULL, attacker, &a), 0);
    while (!atomic_load(&a.done) && n < SAMPLES_MAX)
        during[n++] = redeem_ms(good);
    pthread_join(th, NULL);

    double b50 = percentile(base, BASELINE, .50), b99 = percentile(base, BASELINE, .99);
    double d50 = percentile(during, n, .50), d99 = percentile(during, n, .99);
    printf("other client, before: p50 %.1f ms p99 %.1f ms (%d REDEEMs)\n", b50, b99, BASELINE);
    printf("other client, during: p50 %.1f ms p99 %.1f ms (%zu REDEEMs)\n", d50, d99, n);
    printf("guesser: %d of %d answered, answer %d at %.0f ms, answer %d at %.0f ms, cut off "
           "after %.1f s\n",
           a.answers, GUESSES, FREE, a.at_ms[FREE - 1], a.answers,
           a.at_ms[a.answers > 0 ? a.answers - 1 : 0], (double)a.cut_ms / 1000.);
    assert_true(a.closed);
    assert_int_equal(a.answers, CUT);
    assert_true(a.at_ms[FREE - 1] < DELAY_MS);                       /* the free ones at once */
    assert_true(a.cut_ms >= (CUT - FREE) * DELAY_MS * 9 / 10);       /* then slowly */
    assert_true(d50 <= OTHER_P50_MAX_MS && d99 <= OTHER_P99_MAX_MS); /* never the others */
    assert_true(n > 10);

    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    /* Once each: the connection slowed, and closed. Its address is slowed too when more than
     * ADDR_FREE of its pipelined guesses had started before the cut (PostgreSQL answers reads
     * later than LMDB, so more start): one more line, once. */
    assert_int_equal(bb_file_wait_count(log, "action=closed", 1, BB_LOG_WAIT_MS), 1);
    int slowed = bb_file_count(log, "action=slowed"); /* logged before the close */
    assert_true(slowed == 1 || slowed == 2);
    assert_int_equal(bb_file_count(log, "op=GUESSING"), slowed + 1);
    bb_close(a.c);
}

/* Many connections of one address, each under its own allowance: past ADDR_FREE failures in
 * all, the address's answers wait. */
static void
test_address_slowed(void **state)
{
    struct bb_server *s = *state;
    char buf[FREE * 40], line[BB_LINE_MAX], log[BB_PATH_MAX + 16];
    int64_t took[ADDR_FREE / FREE + 1];

    for (int k = 0; k <= ADDR_FREE / FREE; k++) {
        struct bb_client *c = bb_connect(s);
        size_t len = 0;
        for (int i = 0; i < FREE; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "VALIDATE eve W-%d-%d\n", k, i);
        int64_t t0 = bb_now_ms();
        bb_send(c, buf, len);
        for (int i = 0; i < FREE; i++) {
            assert_int_equal(bb_read_line(c, line, sizeof line), BB_READ_LINE);
            assert_true(bb_has_prefix(line, "ERR INVALID"));
        }
        took[k] = bb_now_ms() - t0;
        printf("connection %d: %d failures answered in %lld ms\n", k + 1, FREE, (long long)took[k]);
        bb_close(c);
    }
    for (int k = 0; k < ADDR_FREE / FREE; k++)
        assert_true(took[k] < DELAY_MS);
    assert_true(took[ADDR_FREE / FREE] >= DELAY_MS);
    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    assert_int_equal(bb_file_wait_count(log, "op=GUESSING", 1, BB_LOG_WAIT_MS), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_client_cut_off, bb_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_address_slowed, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
