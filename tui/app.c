/* app.c - the dashboard's loop: poll, connections, keys, jobs, drawing. */
#include "app.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csvload.h"
#include "dash.h"
#include "help.h"
#include "mono.h"
#include "purge.h"
#include "report.h"
#include "sig.h"
#include "stats.h"
#include "ui.h"
#include "upload.h"
#include "upview.h"

#define APP_MSG_MAX 512
#define MS_PER_S    1000.0

enum { TAG_STATS = 1, TAG_PURGE = 2 };

enum app_panel { PANEL_NONE = 0, PANEL_UPLOAD, PANEL_PURGE };
enum app_job { JOB_NONE = 0, JOB_UPLOAD, JOB_PURGE };
enum { FD_TTY = 0, FD_DASH, FD_JOB, FD_COUNT };

struct app {
    const struct cli_opts *opts;
    const struct client_addr *addr;
    const char *key;
    struct ui ui;
    int64_t now;

    /* The dashboard's connection and its STATS polling. */
    struct client *dash;
    struct stats stats;
    bool ever_connected;
    bool stats_in_flight;
    int64_t stats_sent_ms;
    int64_t next_poll_ms;

    /* Screens. */
    bool help;
    enum app_panel panel;
    struct upview upv;
    struct purge_view pv;
    char notice[DASH_NOTICE_MAX];
    int64_t notice_until;
    bool quit_asked; /* q while a job runs: "quit anyway? [y/N]" */
    bool quit_shown; /* the last frame showed that question whole; y counts only then */

    /* The job: an upload or a purge, on a connection of its own. */
    enum app_job job;
    struct client *job_conn;
    bool job_finished;
    struct csvload *load;
    struct csvload_records recs;
    struct upload *up;

    bool dirty;
    int64_t last_draw;
    bool quit;
    int exit_code;
    char exit_msg[APP_MSG_MAX];
};

/* Copies text into buf of size len, cut short when it does not fit. */
static void
copy_text(char *buf, size_t len, const char *text)
{
    size_t n = strlen(text);

    if (n >= len)
        n = len - 1;
    memcpy(buf, text, n);
    buf[n] = '\0';
}

static void
notice(struct app *a, const char *text)
{
    copy_text(a->notice, sizeof a->notice, text);
    a->notice_until = a->now + APP_NOTICE_MS;
}

static void
stop(struct app *a, int code, const char *msg)
{
    a->quit = true;
    a->exit_code = code;
    copy_text(a->exit_msg, sizeof a->exit_msg, msg);
}

static bool
busy(const struct app *a)
{
    return a->job != JOB_NONE || a->load != NULL;
}

/* ---- The dashboard's connection ---- */

static void
poll_stats(struct app *a)
{
    static const char req[] = "STATS\n";
    struct iovec iov = {(void *)req, sizeof req - 1};

    if (!client_send(a->dash, TAG_STATS, &iov, 1))
        return;
    stats_begin(&a->stats);
    a->stats_in_flight = true;
    a->stats_sent_ms = a->now;
    a->next_poll_ms = a->now + a->opts->interval_ms;
}

static void
dash_line(struct app *a, const struct client_event *ev)
{
    char msg[APP_MSG_MAX];

    if (ev->tag != TAG_STATS)
        return;
    if (ev->reply == PROTO_REPLY_DATA) {
        stats_line(&a->stats, ev->line, ev->len);
        return;
    }
    a->stats_in_flight = false;
    if (ev->reply == PROTO_REPLY_OK) {
        stats_end(&a->stats, a->now);
        return;
    }
    snprintf(msg, sizeof msg, "STATS failed: %.*s", (int)ev->len, ev->line);
    notice(a, msg);
}

static void
dash_event(struct app *a, const struct client_event *ev)
{
    char msg[APP_MSG_MAX];

    a->dirty = true;
    switch (ev->kind) {
    case CLIENT_EV_READY:
        a->ever_connected = true;
        a->next_poll_ms = a->now;
        break;
    case CLIENT_EV_LINE:
        dash_line(a, ev);
        break;
    case CLIENT_EV_DOWN:
        a->stats_in_flight = false;
        stats_break(&a->stats);
        break;
    case CLIENT_EV_DENIED:
        snprintf(msg, sizeof msg, "coupond at %s refused the admin key from %s (%s)",
                 a->addr->label, a->opts->key_file, client_error(a->dash));
        stop(a, CLI_EXIT_AUTH, msg);
        break;
    }
}

static void
tick_stats(struct app *a)
{
    if (client_state(a->dash) != CLIENT_READY)
        return;
    if (a->stats_in_flight) {
        if (a->now - a->stats_sent_ms > APP_STATS_TIMEOUT_MS) {
            char why[APP_MSG_MAX];
            snprintf(why, sizeof why, "no reply to STATS for %d s",
                     APP_STATS_TIMEOUT_MS / (int)MS_PER_S);
            client_drop(a->dash, why);
        }
        return;
    }
    if (a->now >= a->next_poll_ms)
        poll_stats(a);
}

/* ---- Jobs: upload ---- */

static void
end_job(struct app *a)
{
    a->job_finished = true;
    a->next_poll_ms = a->now; /* show the effect at once */
}

static void
free_job(struct app *a)
{
    client_free(a->job_conn);
    a->job_conn = NULL;
    upload_free(a->up);
    a->up = NULL;
    csvload_free(a->load);
    a->load = NULL;
    a->job = JOB_NONE;
    a->job_finished = false;
}

static void
show_bad_records(struct app *a)
{
    char line[UPLOAD_TEXT_MAX + 32];
    size_t bad = csvload_bad(a->load), kept = csvload_errors_kept(a->load);

    upview_result(&a->upv, UI_ALERT, "%zu bad record%s in %s: nothing was sent", bad,
                  bad == 1 ? "" : "s", a->upv.path);
    for (size_t i = 0; i < kept; i++) {
        const struct csvload_error *e = csvload_error(a->load, i);
        snprintf(line, sizeof line, "line %u: %s", (unsigned)e->line, e->reason);
        listview_add(&a->upv.list, line, UI_BAD);
    }
    if (bad > kept) {
        snprintf(line, sizeof line, "... and %zu more", bad - kept);
        listview_add(&a->upv.list, line, UI_BAD);
    }
}

static void
start_upload(struct app *a)
{
    struct client_config cfg = {a->addr, a->key, false};

    csvload_records(a->load, &a->recs);
    a->up = upload_new(&a->recs, a->opts->batch_size);
    a->job_conn = client_new(&cfg);
    if (a->up == NULL || a->job_conn == NULL) {
        upview_result(&a->upv, UI_ALERT, "Out of memory: nothing was sent");
        free_job(a);
        return;
    }
    a->job = JOB_UPLOAD;
    upview_sending(&a->upv);
}

static void
tick_check(struct app *a)
{
    enum csvload_status st = csvload_step(a->load, APP_CHECK_BUDGET);
    struct csvload_records recs;

    a->upv.lines = csvload_lines(a->load);
    a->upv.bytes = csvload_bytes(a->load);
    a->dirty = true;
    if (st == CSVLOAD_MORE)
        return;
    csvload_records(a->load, &recs);
    if (st == CSVLOAD_FAILED)
        upview_result(&a->upv, UI_ALERT, "Cannot read %s: %s; nothing was sent", a->upv.path,
                      csvload_failure(a->load));
    else if (csvload_bad(a->load) > 0)
        show_bad_records(a);
    else if (recs.n == 0)
        upview_result(&a->upv, UI_WARN, "%s holds no records: nothing was sent", a->upv.path);
    else {
        start_upload(a);
        return;
    }
    free_job(a);
}

static void
finish_upload(struct app *a)
{
    char summary[UPLOAD_TEXT_MAX], line[UPLOAD_TEXT_MAX];
    int64_t ms = upload_elapsed_ms(a->up);
    size_t stored = upload_stored(a->up);
    bool ok = upload_outcome(a->up) == UPLOAD_COMPLETE;

    upload_summary(a->up, summary, sizeof summary);
    upview_result(&a->upv, ok ? UI_GOOD : UI_ALERT, "%s; %.1f s, %.0f records/s; %s", summary,
                  (double)ms / MS_PER_S, ms > 0 ? (double)stored * MS_PER_S / (double)ms : 0.0,
                  a->upv.path);
    for (size_t i = 0; i < upload_detail_count(a->up); i++) {
        upload_detail(a->up, i, line, sizeof line);
        listview_add(&a->upv.list, line, strstr(line, ": stored") != NULL ? UI_NORMAL : UI_BAD);
    }
    if (upload_resumable(a->up)) {
        snprintf(line, sizeof line, "Uploading the same file again resumes it: %s",
                 report_resume_why);
        listview_add(&a->upv.list, line, UI_WARN);
    }
    end_job(a);
}

static void
tick_upload(struct app *a)
{
    upload_pump(a->up, a->job_conn, a->now);
    upload_progress(a->up, a->job_conn, a->now, &a->upv.progress);
    a->dirty = true;
    if (upload_outcome(a->up) != UPLOAD_RUNNING)
        finish_upload(a);
}

static void
upload_event(struct app *a, const struct client_event *ev)
{
    switch (ev->kind) {
    case CLIENT_EV_READY:
        break;
    case CLIENT_EV_LINE:
        upload_on_line(a->up, ev->line, ev->len, ev->reply, a->now);
        break;
    case CLIENT_EV_DOWN:
        upload_on_down(a->up, client_unsent(a->job_conn), client_error(a->job_conn), a->now);
        break;
    case CLIENT_EV_DENIED:
        upload_on_denied(a->up, client_error(a->job_conn), a->now);
        break;
    }
}

/* ---- Jobs: purge ---- */

static void
purge_event(struct app *a, const struct client_event *ev)
{
    static const char req[] = "PURGE\n";
    struct iovec iov = {(void *)req, sizeof req - 1};
    char msg[APP_MSG_MAX];
    const char *val;
    size_t len;

    switch (ev->kind) {
    case CLIENT_EV_READY:
        if (!client_send(a->job_conn, TAG_PURGE, &iov, 1)) {
            purge_failed(&a->pv, "cannot send PURGE");
            end_job(a);
        }
        return;
    case CLIENT_EV_LINE:
        if (ev->reply == PROTO_REPLY_DATA)
            return;
        if (ev->reply == PROTO_REPLY_OK &&
            proto_reply_field(ev->line, ev->len, "purged", &val, &len)) {
            snprintf(msg, sizeof msg, "%.*s", (int)len, val);
            purge_done(&a->pv, msg);
        } else {
            snprintf(msg, sizeof msg, "%.*s", (int)ev->len, ev->line);
            purge_failed(&a->pv, msg);
        }
        break;
    case CLIENT_EV_DOWN:
        snprintf(msg, sizeof msg, "connection to %s: %s", a->addr->label,
                 client_error(a->job_conn));
        purge_failed(&a->pv, msg);
        break;
    case CLIENT_EV_DENIED:
        snprintf(msg, sizeof msg, "the server refused the key: %s", client_error(a->job_conn));
        purge_failed(&a->pv, msg);
        break;
    }
    end_job(a);
}

static void
start_purge(struct app *a)
{
    struct client_config cfg = {a->addr, a->key, false};

    a->job_conn = client_new(&cfg);
    if (a->job_conn == NULL) {
        purge_failed(&a->pv, "out of memory");
        return;
    }
    a->job = JOB_PURGE;
    purge_running(&a->pv);
}

/* ---- Keys: the one place they are dispatched ---- */

/* "~/x" is the operator's home, as a shell would have it. */
static void
expand_home(const char *in, char *out, size_t outlen)
{
    const char *home = getenv("HOME");

    if (in[0] == '~' && in[1] == '/' && home != NULL)
        snprintf(out, outlen, "%s%s", home, in + 1);
    else
        snprintf(out, outlen, "%s", in);
}

static void
start_check(struct app *a)
{
    char path[UPVIEW_PATH_MAX], err[APP_MSG_MAX];
    const char *typed = upview_path(&a->upv);

    if (typed == NULL || typed[0] == '\0') {
        a->panel = PANEL_NONE;
        return;
    }
    expand_home(typed, path, sizeof path);
    upview_checking(&a->upv, path);
    if (strcmp(path, "-") == 0) {
        upview_result(&a->upv, UI_ALERT,
                      "Standard input is the terminal here: "
                      "use couponctl --upload - in a pipe");
        return;
    }
    a->load = csvload_open(path, CSVLOAD_MAX_RECORDS, err, sizeof err);
    if (a->load == NULL)
        upview_result(&a->upv, UI_ALERT, "%s; nothing was sent", err);
}

static void
cancel(struct app *a)
{
    if (a->panel != PANEL_UPLOAD)
        return;
    if (a->load != NULL && a->job == JOB_NONE) {
        upview_result(&a->upv, UI_WARN, "Check of %s cancelled: nothing was sent", a->upv.path);
        free_job(a);
    } else if (a->up != NULL) {
        upload_cancel(a->up);
        a->upv.cancelling = true;
    }
}

/* u and p: one job at a time. */
static void
open_panel(struct app *a, enum app_panel panel)
{
    if (busy(a)) {
        notice(a, "An upload or purge is already running");
        return;
    }
    a->panel = panel;
    if (panel == PANEL_UPLOAD)
        upview_prompt(&a->upv);
    else
        purge_ask(&a->pv);
}

/* A job whose outcome quitting would leave open. A check sends nothing: it is not one. */
static bool
job_running(const struct app *a)
{
    return a->job != JOB_NONE && !a->job_finished;
}

static void
act(struct app *a, enum ui_action action)
{
    switch (action) {
    case UI_ACT_QUIT:
        if (job_running(a)) {
            a->quit_asked = true;
            a->quit_shown = false;
            return;
        }
        a->quit = true;
        return;
    case UI_ACT_REFRESH:
        clearok(curscr, TRUE);
        if (!a->stats_in_flight)
            a->next_poll_ms = a->now;
        return;
    case UI_ACT_UPLOAD:
    case UI_ACT_PURGE:
        open_panel(a, action == UI_ACT_UPLOAD ? PANEL_UPLOAD : PANEL_PURGE);
        return;
    case UI_ACT_HELP:
        a->help = true;
        return;
    case UI_ACT_ACCEPT:
        start_check(a);
        return;
    case UI_ACT_CONFIRM:
        start_purge(a);
        return;
    case UI_ACT_CANCEL:
        cancel(a);
        return;
    case UI_ACT_CLOSE:
        a->panel = PANEL_NONE;
        return;
    case UI_ACT_NONE:
    case UI_ACT_PASS:
        return;
    }
}

static void
dispatch(struct app *a, const struct ui_key *k)
{
    enum ui_action action = UI_ACT_PASS;

    a->dirty = true;
    if (k->fn && k->code == KEY_RESIZE) {
        clearok(curscr, TRUE); /* ncurses has resized stdscr; repaint it all */
        /* A question counts as seen again only once it is drawn on the new size. */
        a->pv.question_shown = false;
        a->quit_shown = false;
        return;
    }
    if (a->quit_asked) {
        a->quit_asked = false;
        a->quit = a->quit_shown && !k->fn && (k->code == 'y' || k->code == 'Y');
        return;
    }
    if (a->help) {
        if (help_key(k) == UI_ACT_CLOSE)
            a->help = false;
        return;
    }
    if (a->panel == PANEL_UPLOAD)
        action = upview_key(&a->upv, k);
    else if (a->panel == PANEL_PURGE)
        action = purge_key(&a->pv, k);
    if (action == UI_ACT_PASS)
        action = dash_key(k);
    act(a, action);
}

static void
read_keys(struct app *a)
{
    struct ui_key k;

    while (!a->quit && ui_read_key(&a->ui, &k))
        dispatch(a, &k);
}

/* ---- Drawing ---- */

static enum dash_link
link_state(const struct app *a)
{
    enum client_state s = client_state(a->dash);

    if (s == CLIENT_READY)
        return DASH_CONNECTED;
    if (!a->ever_connected && client_failures(a->dash) == 0)
        return DASH_CONNECTING;
    return DASH_RECONNECTING;
}

/* The rows of the open panel: what it wants of the rows below the table that the charts
 * can spare, and at least APP_PANEL_MIN_ROWS, taken from the charts and then from the
 * table; never the header and the banner. */
static int
panel_rows(struct app *a)
{
    int avail = a->ui.rows - 1 - DASH_TOP_ROWS - DASH_CHARTS_MIN;
    int most = a->ui.rows - 1 - DASH_HEAD_ROWS;

    avail = avail < APP_PANEL_MIN_ROWS ? APP_PANEL_MIN_ROWS : avail;
    avail = avail > most ? most : avail;
    if (avail <= 0)
        return 0;
    if (a->panel == PANEL_UPLOAD)
        return upview_rows(&a->upv, avail);
    if (a->panel == PANEL_PURGE)
        return PURGE_ROWS < avail ? PURGE_ROWS : avail;
    return 0;
}

/* The quit question, on row y; sets quit_shown to whether it was drawn whole. */
static void
draw_quit_question(struct app *a, int y)
{
    const char *q = a->job == JOB_UPLOAD ? "Stop the upload and quit? [y/N]"
                                         : "Quit before the purge is answered? [y/N]";

    ui_fill(&a->ui, y, 0, a->ui.cols, UI_ALERT);
    a->quit_shown = ui_text_whole(&a->ui, y, 1, a->ui.cols - 1, UI_ALERT, q);
}

/* The last row: the quit question when it is asked, else the keys. */
static void
draw_footer(struct app *a, const char *extra)
{
    if (a->quit_asked)
        draw_quit_question(a, a->ui.rows - 1);
    else
        dash_footer(&a->ui, extra);
}

static const char *
footer_extra(const struct app *a)
{
    if (a->help)
        return "any key closes the help";
    if (a->panel == PANEL_UPLOAD &&
        (a->upv.phase == UPVIEW_SENDING || a->upv.phase == UPVIEW_CHECKING))
        return "Esc cancel upload";
    if (a->panel != PANEL_NONE && a->job == JOB_NONE)
        return "Esc close";
    return NULL;
}

static void
draw_dashboard(struct app *a)
{
    struct ui *ui = &a->ui;
    int prow = panel_rows(a);
    int bottom = ui->rows - 1 - prow;
    int64_t retry_at = client_retry_at(a->dash);
    struct dash_view v = {
        .stats = &a->stats,
        .address = a->addr->label,
        .link = link_state(a),
        .link_error = client_error(a->dash),
        .retry_in_ms =
            client_state(a->dash) == CLIENT_WAITING && retry_at > a->now ? retry_at - a->now : 0,
        .attempts = client_failures(a->dash),
        .notice = a->now < a->notice_until ? a->notice : NULL,
        .now_ms = a->now,
    };

    dash_draw(&v, ui, bottom);
    draw_footer(a, footer_extra(a));
    /* The panel last: the prompt places the cursor. */
    if (a->panel == PANEL_UPLOAD)
        upview_draw(&a->upv, ui, bottom, prow);
    else if (a->panel == PANEL_PURGE)
        purge_draw(&a->pv, ui, bottom, prow);
}

static void
draw(struct app *a)
{
    struct ui *ui = &a->ui;

    ui_frame_begin(ui);
    ui_cursor(ui, -1, -1);
    if (ui->cols < APP_MIN_COLS || ui->rows < APP_MIN_ROWS) {
        ui_textf(ui, 0, 0, ui->cols, UI_WARN, "Terminal too small (%dx%d): 80x24 is best", ui->cols,
                 ui->rows);
        if (a->quit_asked)
            draw_quit_question(a, 1);
    } else if (a->help) {
        help_draw(ui);
        draw_footer(a, footer_extra(a));
    } else {
        draw_dashboard(a);
    }
    ui_frame_end(ui);
    a->dirty = false;
    a->last_draw = a->now;
}

/* ---- The loop ---- */

static bool
live(const struct app *a)
{
    return client_state(a->dash) != CLIENT_READY || busy(a) || a->now < a->notice_until;
}

static void
drain(struct app *a)
{
    struct client_event ev;

    while (!a->quit && client_next_event(a->dash, &ev))
        dash_event(a, &ev);
    while (a->job_conn != NULL && !a->job_finished && client_next_event(a->job_conn, &ev)) {
        a->dirty = true;
        if (a->job == JOB_UPLOAD)
            upload_event(a, &ev);
        else
            purge_event(a, &ev);
    }
}

static void
tick(struct app *a)
{
    tick_stats(a);
    if (a->load != NULL && a->job == JOB_NONE)
        tick_check(a);
    if (a->job == JOB_UPLOAD && !a->job_finished)
        tick_upload(a);
    if (a->job_finished)
        free_job(a);
    if (a->quit_asked && !job_running(a))
        a->quit_asked = false; /* the job ended meanwhile: nothing left to ask about */
    if (live(a) && a->now - a->last_draw >= APP_LIVE_MS)
        a->dirty = true;
}

static int64_t
min_timeout(int64_t t, int64_t cand)
{
    if (cand < 0)
        return t;
    return t < 0 || cand < t ? cand : t;
}

static int
next_timeout(const struct app *a)
{
    int64_t t = -1;

    if (a->load != NULL && a->job == JOB_NONE)
        return 0;
    t = min_timeout(t, client_timeout(a->dash, a->now));
    if (a->job_conn != NULL)
        t = min_timeout(t, client_timeout(a->job_conn, a->now));
    if (client_state(a->dash) == CLIENT_READY)
        t = min_timeout(t, a->stats_in_flight ? a->stats_sent_ms + APP_STATS_TIMEOUT_MS + 1 - a->now
                                              : a->next_poll_ms - a->now);
    if (a->dirty)
        t = min_timeout(t, a->last_draw + APP_FRAME_MS - a->now);
    if (live(a))
        t = min_timeout(t, APP_LIVE_MS);
    return t < 0 ? -1 : (int)(t > 0 ? t : 0);
}

static void
step_client(struct client *c, const struct pollfd *pfd, int64_t now)
{
    client_step(c, pfd->fd >= 0 ? pfd->revents : 0, now);
}

static void
loop(struct app *a)
{
    struct pollfd pfd[FD_COUNT];
    int timeout = 0;

    while (!a->quit) {
        pfd[FD_TTY] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
        pfd[FD_DASH] = (struct pollfd){client_fd(a->dash), client_poll_events(a->dash), 0};
        pfd[FD_JOB] = (struct pollfd){a->job_conn != NULL ? client_fd(a->job_conn) : -1,
                                      a->job_conn != NULL ? client_poll_events(a->job_conn) : 0, 0};
        if (poll(pfd, FD_COUNT, timeout) < 0 && errno != EINTR)
            pfd[FD_TTY].revents = POLLERR;
        if (sig_stop_requested())
            break;
        a->now = mono_now_ms();
        if (pfd[FD_TTY].revents & (POLLHUP | POLLERR | POLLNVAL))
            break; /* the terminal is gone */
        step_client(a->dash, &pfd[FD_DASH], a->now);
        if (a->job_conn != NULL)
            step_client(a->job_conn, &pfd[FD_JOB], a->now);
        drain(a);
        read_keys(a);
        tick(a);
        if (a->dirty && a->now - a->last_draw >= APP_FRAME_MS)
            draw(a);
        timeout = next_timeout(a);
    }
}

/* The dashboard ends while a job runs (q answered y, a stop signal, the terminal gone): an
 * upload's result goes to stdout as --upload prints it, the batch in flight reported as
 * cut or of unknown outcome; a purge is named as unanswered. Returns the exit code. */
static int
report_open_job(struct app *a, int code)
{
    if (!job_running(a))
        return code;
    if (a->job == JOB_PURGE) {
        fprintf(stderr, "couponctl: quit before the purge was answered; "
                        "couponctl --purge makes sure it is done\n");
        return code;
    }
    upload_abandon(a->up, client_unsent(a->job_conn), mono_now_ms());
    report_upload(a->up, stdout);
    if (upload_resumable(a->up))
        fprintf(stderr, "couponctl: uploading the same file again resumes the upload: %s\n",
                report_resume_why);
    return code == CLI_EXIT_OK ? CLI_EXIT_FAILED : code;
}

int
app_run(const struct cli_opts *o, const struct client_addr *addr, const char *key)
{
    struct client_config cfg = {addr, key, true};
    char err[APP_MSG_MAX];
    struct app *a;

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "couponctl: the dashboard needs a terminal; "
                        "in scripts use --stats, --upload or --purge\n");
        return CLI_EXIT_USAGE;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL || (a->dash = client_new(&cfg)) == NULL) {
        fprintf(stderr, "couponctl: out of memory\n");
        free(a);
        return CLI_EXIT_FAILED;
    }
    a->opts = o;
    a->addr = addr;
    a->key = key;
    a->dirty = true;
    a->last_draw = INT64_MIN / 2;
    a->now = mono_now_ms();
    stats_init(&a->stats);
    upview_init(&a->upv);
    int code = CLI_EXIT_OK;
    if (!ui_start(&a->ui, err, sizeof err)) {
        fprintf(stderr, "couponctl: %s; in scripts use --stats, --upload or --purge\n", err);
        code = CLI_EXIT_USAGE; /* as for no terminal at all: couponctl(1) */
    } else {
        loop(a);
        ui_stop(&a->ui);
        code = a->exit_code;
        if (a->exit_msg[0] != '\0')
            fprintf(stderr, "couponctl: %s\n", a->exit_msg);
        code = report_open_job(a, code);
    }
    free_job(a);
    upview_free(&a->upv);
    client_free(a->dash);
    free(a);
    return code;
}
