/* dash.c - the dashboard screen: draw and keys. */
#include "dash.h"

#include <stdio.h>
#include <string.h>

#define MARGIN         2  /* columns left of everything */
#define TYPE_W         10 /* the type column */
#define NUM_W          12 /* each number column */
#define LABEL_ROWS     1  /* a chart's label line */
#define CHARTS         2  /* grants per second, queue depth */
#define ROW_HEADER     0
#define ROW_BANNER     1
#define ROW_TABLE      2
#define ROW_MEGA       (DASH_TOP_ROWS - 1)
#define CHART_COLS_MAX 512 /* wider terminals get the newest 512 columns of history */
#define SECS_PER_DAY   86400
#define SECS_PER_HOUR  3600
#define SECS_PER_MIN   60
#define MS_PER_S       1000.0
#define CTRL_L         12

static const struct {
    int code;
    bool fn;
    enum ui_action act;
} keymap[] = {
    {'u', false, UI_ACT_UPLOAD},     {'U', false, UI_ACT_UPLOAD},  {'p', false, UI_ACT_PURGE},
    {'P', false, UI_ACT_PURGE},      {'r', false, UI_ACT_REFRESH}, {'R', false, UI_ACT_REFRESH},
    {CTRL_L, false, UI_ACT_REFRESH}, {'?', false, UI_ACT_HELP},    {'h', false, UI_ACT_HELP},
    {KEY_F(1), true, UI_ACT_HELP},   {'q', false, UI_ACT_QUIT},    {'Q', false, UI_ACT_QUIT},
};

static const struct {
    const char *key;
    const char *what;
} footer_keys[] = {
    {"u", "Upload"}, {"p", "Purge"}, {"r", "Refresh"}, {"?", "Help"}, {"q", "Quit"},
};

enum ui_action
dash_key(const struct ui_key *k)
{
    for (size_t i = 0; i < sizeof keymap / sizeof keymap[0]; i++)
        if (keymap[i].code == k->code && keymap[i].fn == k->fn)
            return keymap[i].act;
    return UI_ACT_PASS;
}

static void
fmt_uptime(char *buf, size_t len, uint64_t s)
{
    unsigned h = (unsigned)(s % SECS_PER_DAY / SECS_PER_HOUR);
    unsigned m = (unsigned)(s % SECS_PER_HOUR / SECS_PER_MIN), sec = (unsigned)(s % SECS_PER_MIN);

    if (s >= SECS_PER_DAY)
        snprintf(buf, len, "%llud %02u:%02u:%02u", (unsigned long long)(s / SECS_PER_DAY), h, m,
                 sec);
    else
        snprintf(buf, len, "%02u:%02u:%02u", h, m, sec);
}

static const char *
link_word(enum dash_link l)
{
    switch (l) {
    case DASH_CONNECTING:
        return "connecting";
    case DASH_CONNECTED:
        return "connected";
    case DASH_RECONNECTING:
        return "RECONNECTING";
    }
    return "?";
}

static void
draw_header(const struct dash_view *v, const struct ui *ui)
{
    const struct stats *st = v->stats;
    char up[32] = "-", conns[24] = "-", rate[24] = "-";

    if (st->have) {
        fmt_uptime(up, sizeof up, st->cur.uptime_s);
        snprintf(conns, sizeof conns, "%llu", (unsigned long long)st->cur.connections);
    }
    if (st->have && st->continuous && v->link == DASH_CONNECTED)
        snprintf(rate, sizeof rate, "%.1f", st->cmd_rate);
    ui_fill(ui, ROW_HEADER, 0, ui->cols, UI_TITLE);
    ui_textf(ui, ROW_HEADER, 1, ui->cols - 1, UI_TITLE,
             "couponctl  %s  %s  up %s  conns %s  cmd/s %s", v->address, link_word(v->link), up,
             conns, rate);
}

static void
draw_banner(const struct dash_view *v, const struct ui *ui)
{
    if (v->link == DASH_RECONNECTING) {
        ui_fill(ui, ROW_BANNER, 0, ui->cols, UI_ALERT);
        ui_textf(ui, ROW_BANNER, 1, ui->cols - 1, UI_ALERT,
                 "RECONNECTING to %s in %.1f s (attempt %u): %s", v->address,
                 (double)v->retry_in_ms / MS_PER_S, v->attempts + 1, v->link_error);
        return;
    }
    if (v->link == DASH_CONNECTING) {
        ui_textf(ui, ROW_BANNER, MARGIN, ui->cols - MARGIN, UI_WARN, "Connecting to %s ...",
                 v->address);
        return;
    }
    if (v->notice != NULL)
        ui_text(ui, ROW_BANNER, MARGIN, ui->cols - MARGIN, UI_WARN, v->notice);
}

static void
draw_number(const struct ui *ui, int y, int x, bool have, uint64_t n, enum ui_color c)
{
    if (have)
        ui_textf(ui, y, x, NUM_W, c, "%*llu", NUM_W, (unsigned long long)n);
    else
        ui_textf(ui, y, x, NUM_W, c, "%*s", NUM_W, "-");
}

static void
draw_table(const struct dash_view *v, const struct ui *ui)
{
    const struct stats *st = v->stats;
    enum ui_color num = v->link == DASH_CONNECTED ? UI_NORMAL : UI_STALE;
    int y = ROW_TABLE;

    ui_text(ui, y, MARGIN, TYPE_W, UI_LABEL, "TYPE");
    for (int f = 0; f < STATS_NFAMILIES; f++)
        ui_textf(ui, y, MARGIN + TYPE_W + f * NUM_W, NUM_W, UI_LABEL, "%*s", NUM_W,
                 stats_family_names[f]);
    for (int t = 0; t < PROTO_NTYPES; t++) {
        y++;
        ui_text(ui, y, MARGIN, TYPE_W, UI_LABEL, proto_type_name((enum proto_type)t));
        for (int f = 0; f < STATS_NFAMILIES; f++)
            draw_number(ui, y, MARGIN + TYPE_W + f * NUM_W, st->have, st->cur.by_type[f][t], num);
    }
    y++;
    ui_text(ui, y, MARGIN, TYPE_W, UI_TOTAL, "TOTAL");
    for (int f = 0; f < STATS_NFAMILIES; f++)
        draw_number(ui, y, MARGIN + TYPE_W + f * NUM_W, st->have,
                    stats_total(&st->cur, (enum stats_family)f),
                    num == UI_STALE ? UI_STALE : UI_TOTAL);
}

static void
draw_mega(const struct dash_view *v, const struct ui *ui)
{
    const struct stats *st = v->stats;
    int x = MARGIN + ui_text(ui, ROW_MEGA, MARGIN, ui->cols - MARGIN, UI_LABEL, "MEGADEAL");

    for (int i = 0; i < STATS_NMEGA; i++) {
        char val[24] = "-";
        if (st->have)
            snprintf(val, sizeof val, "%llu", (unsigned long long)st->cur.mega[i]);
        x += 2;
        x += ui_textf(ui, ROW_MEGA, x, ui->cols - x, UI_NORMAL, "%s ", stats_mega_names[i]);
        x += ui_text(ui, ROW_MEGA, x, ui->cols - x, UI_TOTAL, val);
    }
}

static void
fmt_span(char *buf, size_t len, unsigned secs)
{
    if (secs % SECS_PER_MIN == 0)
        snprintf(buf, len, "%u min", secs / SECS_PER_MIN);
    else
        snprintf(buf, len, "%u:%02u min", secs / SECS_PER_MIN, secs % SECS_PER_MIN);
}

/* One chart: its label line, then h rows of bars. */
static void
draw_chart(const struct dash_view *v, const struct ui *ui, int y, int h, bool queue)
{
    double vals[CHART_COLS_MAX];
    unsigned k;
    int w = ui->cols - 2 * MARGIN;
    const struct stats *st = v->stats;

    if (w <= 0)
        return;
    if (w > CHART_COLS_MAX)
        w = CHART_COLS_MAX;
    double top =
        stats_chart(queue ? &st->queue : &st->grants, v->now_ms, queue, vals, (size_t)w, &k);
    char span[32];
    unsigned shown = (unsigned)w * k < STATS_HISTORY_S ? (unsigned)w * k : STATS_HISTORY_S;
    fmt_span(span, sizeof span, shown);
    if (queue)
        ui_textf(ui, y, MARGIN, w, UI_LABEL, "queue depth  now %llu  peak %.0f  (last %s)",
                 (unsigned long long)(st->have ? st->cur.mega[STATS_MEGA_QUEUED] : 0), top, span);
    else
        ui_textf(ui, y, MARGIN, w, UI_LABEL, "grants/s  now %.1f  peak %.1f  (last %s)",
                 st->continuous ? st->grant_rate : 0.0, top, span);
    ui_chart(ui, y + LABEL_ROWS, MARGIN, h, w, vals, top < 1 ? 1 : top,
             queue ? UI_QUEUE : UI_GRANTS);
}

static void
draw_charts(const struct dash_view *v, const struct ui *ui, int bottom)
{
    int area = bottom - DASH_TOP_ROWS;
    int h = (area - CHARTS * LABEL_ROWS) / CHARTS;

    if (area < LABEL_ROWS + 1)
        return;
    if (h < 1)
        h = 1;
    if (h > DASH_CHART_MAX_H)
        h = DASH_CHART_MAX_H;
    draw_chart(v, ui, DASH_TOP_ROWS, h, false);
    if (DASH_TOP_ROWS + LABEL_ROWS + h + LABEL_ROWS + 1 <= bottom)
        draw_chart(v, ui, DASH_TOP_ROWS + LABEL_ROWS + h, h, true);
}

void
dash_draw(const struct dash_view *v, const struct ui *ui, int bottom)
{
    draw_header(v, ui);
    draw_banner(v, ui);
    draw_table(v, ui);
    draw_mega(v, ui);
    draw_charts(v, ui, bottom);
}

void
dash_footer(const struct ui *ui, const char *extra)
{
    int y = ui->rows - 1, x = 0;

    ui_fill(ui, y, 0, ui->cols, UI_FOOTER);
    for (size_t i = 0; i < sizeof footer_keys / sizeof footer_keys[0]; i++) {
        x += ui_textf(ui, y, x, ui->cols - x, UI_KEY, " %s ", footer_keys[i].key);
        x += ui_textf(ui, y, x, ui->cols - x, UI_FOOTER, " %s  ", footer_keys[i].what);
    }
    if (extra != NULL)
        ui_text(ui, y, x, ui->cols - x, UI_WARN, extra);
}
