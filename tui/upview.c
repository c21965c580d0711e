/* upview.c - the upload panel: prompt, check, progress, result. */
#include "upview.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PANEL_PROMPT_ROWS  3 /* title, prompt, hint */
#define PANEL_CHECK_ROWS   3 /* title, progress, hint */
#define PANEL_SENDING_ROWS 4 /* title, bar, numbers, hint */
#define PANEL_RESULT_MIN   4 /* title, two list lines, hint */
#define MARGIN             2
#define PERCENT_W          6 /* " 100%" */
#define BYTES_PER_MB       (1024.0 * 1024.0)
#define MS_PER_S           1000
#define SECS_PER_MIN       60

void
upview_init(struct upview *v)
{
    memset(v, 0, sizeof *v);
    listview_init(&v->list);
}

void
upview_free(struct upview *v)
{
    listview_clear(&v->list);
}

void
upview_prompt(struct upview *v)
{
    listview_clear(&v->list);
    v->phase = UPVIEW_PROMPT;
    prompt_start(&v->prompt, "File to upload:");
}

void
upview_checking(struct upview *v, const char *path)
{
    v->phase = UPVIEW_CHECKING;
    snprintf(v->path, sizeof v->path, "%s", path);
    v->lines = 0;
    v->bytes = 0;
}

void
upview_sending(struct upview *v)
{
    v->phase = UPVIEW_SENDING;
    v->cancelling = false;
    memset(&v->progress, 0, sizeof v->progress);
}

void
upview_result(struct upview *v, enum ui_color color, const char *fmt, ...)
{
    va_list ap;

    v->phase = UPVIEW_RESULT;
    v->title_color = color;
    va_start(ap, fmt);
    vsnprintf(v->title, sizeof v->title, fmt, ap);
    va_end(ap);
    listview_clear(&v->list);
}

int
upview_rows(const struct upview *v, int avail)
{
    int want = PANEL_RESULT_MIN;

    switch (v->phase) {
    case UPVIEW_PROMPT:
        want = PANEL_PROMPT_ROWS;
        break;
    case UPVIEW_CHECKING:
        want = PANEL_CHECK_ROWS;
        break;
    case UPVIEW_SENDING:
        want = PANEL_SENDING_ROWS;
        break;
    case UPVIEW_RESULT:
        want = (int)(v->list.n < (size_t)avail ? v->list.n : (size_t)avail) + 2;
        if (want < PANEL_RESULT_MIN)
            want = PANEL_RESULT_MIN;
        break;
    }
    return want < avail ? want : avail;
}

static void title_line(const struct ui *ui, int y, enum ui_color c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A panel's title bar: the panel colour, or c when it is not UI_NORMAL. */
static void
title_line(const struct ui *ui, int y, enum ui_color c, const char *fmt, ...)
{
    char text[UPVIEW_TITLE_MAX + UPVIEW_PATH_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ui_fill(ui, y, 0, ui->cols, c == UI_NORMAL ? UI_PANEL : c);
    ui_text(ui, y, 1, ui->cols - 1, c == UI_NORMAL ? UI_PANEL : c, text);
}

static void
hint_line(const struct ui *ui, int y, const char *text)
{
    ui_text(ui, y, MARGIN, ui->cols - MARGIN, UI_STALE, text);
}

static void
fmt_eta(char *buf, size_t len, int64_t ms)
{
    if (ms < 0) {
        snprintf(buf, len, "-");
        return;
    }
    int64_t s = (ms + MS_PER_S - 1) / MS_PER_S;
    snprintf(buf, len, "%lld:%02lld", (long long)(s / SECS_PER_MIN), (long long)(s % SECS_PER_MIN));
}

static void
draw_sending(const struct upview *v, const struct ui *ui, int y, int rows)
{
    const struct upload_progress *p = &v->progress;
    char eta[32];
    double frac = p->total > 0 ? (double)p->sent / (double)p->total : 0;
    int w = ui->cols - 2 * MARGIN - 2 - PERCENT_W;

    title_line(ui, y, UI_NORMAL, "Uploading %s: batch %zu of %zu", v->path, p->batch, p->nbatches);
    if (rows > 1 && w > 0) {
        ui_text(ui, y + 1, MARGIN, 1, UI_NORMAL, "[");
        ui_bar(ui, y + 1, MARGIN + 1, w, frac, UI_BAR);
        ui_textf(ui, y + 1, MARGIN + 1 + w, PERCENT_W + 1, UI_NORMAL, "] %3.0f%%", frac * 100);
    }
    fmt_eta(eta, sizeof eta, p->eta_ms);
    if (rows > 2)
        ui_textf(ui, y + 2, MARGIN, ui->cols - MARGIN, UI_NORMAL,
                 "%zu of %zu records sent   %.0f records/s   ETA %s   stored %zu", p->sent,
                 p->total, p->rate, eta, p->stored);
    if (rows > 3) {
        if (v->cancelling)
            ui_text(ui, y + 3, MARGIN, ui->cols - MARGIN, UI_WARN,
                    "Cancelling: stopping after the batch in flight");
        else
            hint_line(ui, y + 3, "Esc cancels after the batch in flight");
    }
}

void
upview_draw(struct upview *v, const struct ui *ui, int y, int rows)
{
    if (rows <= 0)
        return;
    switch (v->phase) {
    case UPVIEW_PROMPT:
        title_line(ui, y, UI_NORMAL,
                   "Upload coupons from a CSV file "
                   "(code,type,discount,kind,expires,max_uses)");
        if (rows > 2)
            hint_line(ui, y + 2, "Enter upload   Tab complete   Esc cancel");
        if (rows > 1)
            prompt_draw(&v->prompt, ui, y + 1, MARGIN, ui->cols - 2 * MARGIN);
        return;
    case UPVIEW_CHECKING:
        title_line(ui, y, UI_NORMAL, "Checking %s", v->path);
        if (rows > 1)
            ui_textf(ui, y + 1, MARGIN, ui->cols - MARGIN, UI_NORMAL, "%u lines, %.1f MB read",
                     v->lines, (double)v->bytes / BYTES_PER_MB);
        if (rows > 2)
            hint_line(ui, y + 2, "Nothing is sent before every record is checked; Esc cancels");
        return;
    case UPVIEW_SENDING:
        draw_sending(v, ui, y, rows);
        return;
    case UPVIEW_RESULT:
        title_line(ui, y, v->title_color, "%s", v->title);
        listview_draw(&v->list, ui, y + 1, MARGIN, rows - 2, ui->cols - 2 * MARGIN);
        if (rows > 1)
            hint_line(ui, y + rows - 1, "Up/Down PgUp/PgDn scroll   Enter or Esc close");
        return;
    }
}

static bool
is_esc(const struct ui_key *k)
{
    return !k->fn && k->code == UI_KEY_ESC;
}

static bool
is_enter(const struct ui_key *k)
{
    return (!k->fn && (k->code == UI_KEY_ENTER || k->code == '\n')) ||
           (k->fn && k->code == KEY_ENTER);
}

enum ui_action
upview_key(struct upview *v, const struct ui_key *k)
{
    switch (v->phase) {
    case UPVIEW_PROMPT: {
        enum ui_action a = prompt_key(&v->prompt, k);
        return a == UI_ACT_CANCEL ? UI_ACT_CLOSE : a;
    }
    case UPVIEW_CHECKING:
    case UPVIEW_SENDING:
        return is_esc(k) ? UI_ACT_CANCEL : UI_ACT_PASS;
    case UPVIEW_RESULT:
        if (listview_key(&v->list, k))
            return UI_ACT_NONE;
        return is_esc(k) || is_enter(k) ? UI_ACT_CLOSE : UI_ACT_PASS;
    }
    return UI_ACT_PASS;
}

const char *
upview_path(struct upview *v)
{
    if (!prompt_value(&v->prompt, v->path, sizeof v->path))
        return NULL;
    return v->path;
}
