/* batch.c - --stats, --upload, --purge, --export and --generate: one connection, one poll(2)
 * loop, no curses. */
#include "batch.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "csvload.h"
#include "dump.h"
#include "mono.h"
#include "report.h"
#include "sig.h"
#include "statjson.h"
#include "upload.h"

#define BATCH_MSG_MAX 512
#define BAR_W         30
#define MS_PER_S      1000.0
#define SECS_PER_MIN  60

enum { TAG_COMMAND = 1 };

struct batch {
    const struct cli_opts *opts;
    const struct client_addr *addr;
    struct client *conn;
    bool done;
    int code;
    /* --stats and --purge */
    const char *request; /* "STATS\n" or "PURGE\n" */
    bool sent;
    struct statjson *json; /* --stats --json: the reply, written at its end */
    /* --export and --generate */
    struct dump *dump;
    /* --upload */
    struct upload *up;
    bool progress; /* stderr is a terminal: show a progress line */
    int64_t last_progress;
};

static void
finish(struct batch *b, int code)
{
    b->done = true;
    b->code = code;
}

/* A failed or lost connection, or a refused key: one line on stderr and the exit code. */
static void
connection_failed(struct batch *b, const struct client_event *ev)
{
    if (ev->kind == CLIENT_EV_DENIED) {
        fprintf(stderr, "couponctl: coupond at %s refused the admin key from %s (%s)\n",
                b->addr->label, b->opts->key_file, client_error(b->conn));
        finish(b, CLI_EXIT_AUTH);
        return;
    }
    fprintf(stderr, "couponctl: %s %s: %s\n",
            b->sent || b->up != NULL ? "connection lost to" : "cannot connect to", b->addr->label,
            client_error(b->conn));
    finish(b, CLI_EXIT_CONNECT);
}

/* ---- --stats and --purge ---- */

static void
command_line(struct batch *b, const struct client_event *ev)
{
    const char *val;
    size_t len;

    if (ev->reply == PROTO_REPLY_DATA) {
        if (b->json != NULL)
            statjson_line(b->json, ev->line, ev->len);
        else if (b->opts->mode == CLI_MODE_STATS)
            printf("%.*s\n", (int)ev->len, ev->line);
        return;
    }
    if (ev->reply == PROTO_REPLY_ERR) {
        fprintf(stderr, "couponctl: %.*s\n", (int)ev->len, ev->line);
        finish(b, CLI_EXIT_FAILED);
        return;
    }
    if (b->opts->mode == CLI_MODE_PURGE) {
        if (!proto_reply_field(ev->line, ev->len, "purged", &val, &len)) {
            fprintf(stderr, "couponctl: unexpected reply: %.*s\n", (int)ev->len, ev->line);
            finish(b, CLI_EXIT_FAILED);
            return;
        }
        printf("purged %.*s\n", (int)len, val);
    }
    if (b->json != NULL)
        statjson_write(b->json, stdout);
    finish(b, CLI_EXIT_OK);
}

static void
command_event(struct batch *b, const struct client_event *ev)
{
    struct iovec iov = {(void *)b->request, strlen(b->request)};

    switch (ev->kind) {
    case CLIENT_EV_READY:
        b->sent = client_send(b->conn, TAG_COMMAND, &iov, 1);
        if (!b->sent) {
            fprintf(stderr, "couponctl: out of memory\n");
            finish(b, CLI_EXIT_FAILED);
        }
        return;
    case CLIENT_EV_LINE:
        command_line(b, ev);
        return;
    case CLIENT_EV_DOWN:
    case CLIENT_EV_DENIED:
        connection_failed(b, ev);
        return;
    }
}

/* ---- --export and --generate ---- */

static void
dump_event(struct batch *b, const struct client_event *ev)
{
    const char *req = dump_request(b->dump);
    struct iovec iov = {(void *)req, strlen(req)};

    switch (ev->kind) {
    case CLIENT_EV_READY:
        b->sent = client_send(b->conn, TAG_COMMAND, &iov, 1);
        if (!b->sent) {
            fprintf(stderr, "couponctl: out of memory\n");
            dump_abandon(b->dump);
            finish(b, CLI_EXIT_FAILED);
            return;
        }
        dump_sent(b->dump);
        return;
    case CLIENT_EV_LINE:
        if (dump_line(b->dump, ev->line, ev->len, ev->reply))
            finish(b, dump_exit(b->dump));
        return;
    case CLIENT_EV_DOWN:
    case CLIENT_EV_DENIED:
        connection_failed(b, ev);
        dump_abandon(b->dump);
        return;
    }
}

/* ---- --upload ---- */

static void
fmt_eta(char *buf, size_t len, int64_t ms)
{
    if (ms < 0) {
        snprintf(buf, len, "-");
        return;
    }
    long long s = (ms + (int64_t)MS_PER_S - 1) / (int64_t)MS_PER_S;
    snprintf(buf, len, "%lld:%02lld", s / SECS_PER_MIN, s % SECS_PER_MIN);
}

static void
show_progress(struct batch *b, int64_t now, bool last)
{
    struct upload_progress p;
    char bar[BAR_W + 1], eta[32];

    if (!b->progress || (!last && now - b->last_progress < BATCH_PROGRESS_MS))
        return;
    b->last_progress = now;
    upload_progress(b->up, b->conn, now, &p);
    size_t fill = p.total > 0 ? p.sent * BAR_W / p.total : 0;
    for (size_t i = 0; i < BAR_W; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_W] = '\0';
    fmt_eta(eta, sizeof eta, p.eta_ms);
    fprintf(stderr, "\r[%s] %zu/%zu records  %.0f records/s  ETA %s  batch %zu/%zu\033[K%s", bar,
            p.sent, p.total, p.rate, eta, p.batch, p.nbatches, last ? "\n" : "");
    fflush(stderr);
}

static void
upload_event(struct batch *b, const struct client_event *ev, int64_t now)
{
    switch (ev->kind) {
    case CLIENT_EV_READY:
        return;
    case CLIENT_EV_LINE:
        upload_on_line(b->up, ev->line, ev->len, ev->reply, now);
        return;
    case CLIENT_EV_DOWN:
        upload_on_down(b->up, client_unsent(b->conn), client_error(b->conn), now);
        return;
    case CLIENT_EV_DENIED:
        upload_on_denied(b->up, client_error(b->conn), now);
        return;
    }
}

static int
outcome_code(enum upload_outcome o)
{
    switch (o) {
    case UPLOAD_COMPLETE:
        return CLI_EXIT_OK;
    case UPLOAD_LOST:
        return CLI_EXIT_CONNECT;
    case UPLOAD_DENIED:
        return CLI_EXIT_AUTH;
    default:
        return CLI_EXIT_FAILED;
    }
}

static void
print_result(struct batch *b)
{
    enum upload_outcome o = upload_outcome(b->up);

    report_upload(b->up, stdout);
    if (o == UPLOAD_DENIED)
        fprintf(stderr, "couponctl: coupond at %s refused the admin key from %s\n", b->addr->label,
                b->opts->key_file);
    else if (o == UPLOAD_LOST)
        fprintf(stderr, "couponctl: connection to %s failed\n", b->addr->label);
    if (upload_resumable(b->up))
        fprintf(stderr, "couponctl: the same command again resumes the upload: %s\n",
                report_resume_why);
    finish(b, outcome_code(o));
}

static void
upload_tick(struct batch *b, int64_t now)
{
    if (sig_stop_requested() && !upload_cancel_requested(b->up)) {
        upload_cancel(b->up);
        if (b->progress)
            fprintf(stderr, "\ncouponctl: cancelling after the batch in flight\n");
    }
    upload_pump(b->up, b->conn, now);
    show_progress(b, now, false);
    if (upload_outcome(b->up) != UPLOAD_RUNNING) {
        show_progress(b, now, true);
        print_result(b);
    }
}

/* Reads and checks the whole file. Returns true when every record is good; otherwise prints
 * why (stdout: the bad records; stderr: a read failure) and sets the exit code. */
static bool
load_file(struct batch *b, struct csvload *ld)
{
    enum csvload_status st;

    while ((st = csvload_step(ld, BATCH_LOAD_BUDGET)) == CSVLOAD_MORE)
        if (sig_stop_requested()) {
            fprintf(stderr, "couponctl: interrupted while checking %s: nothing was sent\n",
                    b->opts->upload_path);
            finish(b, CLI_EXIT_FAILED);
            return false;
        }
    if (st == CSVLOAD_FAILED) {
        fprintf(stderr, "couponctl: cannot read %s: %s\n", b->opts->upload_path,
                csvload_failure(ld));
        finish(b, CLI_EXIT_FAILED);
        return false;
    }
    size_t bad = csvload_bad(ld), kept = csvload_errors_kept(ld);
    if (bad == 0)
        return true;
    for (size_t i = 0; i < kept; i++) {
        const struct csvload_error *e = csvload_error(ld, i);
        printf("line %u: %s\n", (unsigned)e->line, e->reason);
    }
    if (bad > kept)
        printf("... and %zu more\n", bad - kept);
    printf("nothing sent: %zu bad record%s in %s\n", bad, bad == 1 ? "" : "s",
           b->opts->upload_path);
    finish(b, CLI_EXIT_FAILED);
    return false;
}

/* ---- The loop ---- */

static void
run_loop(struct batch *b)
{
    struct client_event ev;

    while (!b->done) {
        int64_t now = mono_now_ms();
        int64_t t = client_timeout(b->conn, now);
        struct pollfd pfd = {client_fd(b->conn), client_poll_events(b->conn), 0};
        if (b->up != NULL && b->progress && (t < 0 || t > BATCH_PROGRESS_MS))
            t = BATCH_PROGRESS_MS;
        if (poll(&pfd, pfd.fd >= 0 ? 1 : 0, (int)t) < 0 && errno != EINTR)
            pfd.revents = POLLERR;
        if (sig_stop_requested() && b->up == NULL) {
            fprintf(stderr, "couponctl: interrupted\n");
            finish(b, CLI_EXIT_FAILED);
            return;
        }
        now = mono_now_ms();
        client_step(b->conn, pfd.fd >= 0 ? pfd.revents : 0, now);
        while (!b->done && client_next_event(b->conn, &ev)) {
            if (b->up != NULL)
                upload_event(b, &ev, now);
            else if (b->dump != NULL)
                dump_event(b, &ev);
            else
                command_event(b, &ev);
        }
        if (b->up != NULL && !b->done)
            upload_tick(b, now);
    }
}

static int
run_dump(struct batch *b)
{
    char err[BATCH_MSG_MAX];

    b->dump = dump_new(b->opts, err, sizeof err);
    if (b->dump == NULL) {
        fprintf(stderr, "couponctl: %s\n", err);
        return CLI_EXIT_FAILED;
    }
    run_loop(b);
    dump_abandon(b->dump); /* interrupted: the reply did not end */
    dump_free(b->dump);
    b->dump = NULL;
    return b->code;
}

static int
run_upload(struct batch *b)
{
    char err[BATCH_MSG_MAX];
    struct csvload_records recs;
    struct csvload *ld = csvload_open(b->opts->upload_path, CSVLOAD_MAX_RECORDS, err, sizeof err);

    if (ld == NULL) {
        fprintf(stderr, "couponctl: %s\n", err);
        return CLI_EXIT_FAILED;
    }
    if (!load_file(b, ld)) {
        csvload_free(ld);
        return b->code;
    }
    csvload_records(ld, &recs);
    if (recs.n == 0) {
        printf("uploaded 0 records in 0 batches: %s holds none\n", b->opts->upload_path);
        csvload_free(ld);
        return CLI_EXIT_OK;
    }
    b->up = upload_new(&recs, b->opts->batch_size);
    if (b->up == NULL) {
        fprintf(stderr, "couponctl: out of memory\n");
        csvload_free(ld);
        return CLI_EXIT_FAILED;
    }
    b->progress = isatty(STDERR_FILENO);
    run_loop(b);
    upload_free(b->up);
    csvload_free(ld);
    return b->code;
}

int
batch_run(const struct cli_opts *o, const struct client_addr *addr, const char *key)
{
    struct client_config cfg = {addr, key, false};
    struct batch b = {.opts = o, .addr = addr};
    int code;

    b.conn = client_new(&cfg);
    if (b.conn == NULL) {
        fprintf(stderr, "couponctl: out of memory\n");
        return CLI_EXIT_FAILED;
    }
    if (o->mode == CLI_MODE_UPLOAD) {
        code = run_upload(&b);
    } else if (o->mode == CLI_MODE_EXPORT || o->mode == CLI_MODE_GENERATE) {
        code = run_dump(&b);
    } else if (o->json && (b.json = statjson_new()) == NULL) {
        fprintf(stderr, "couponctl: out of memory\n");
        code = CLI_EXIT_FAILED;
    } else {
        b.request = o->mode == CLI_MODE_STATS ? "STATS\n" : "PURGE\n";
        run_loop(&b);
        code = b.code;
    }
    statjson_free(b.json);
    client_free(b.conn);
    if (fflush(stdout) != 0 && code == CLI_EXIT_OK)
        code = CLI_EXIT_FAILED;
    return code;
}
