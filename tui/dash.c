/* dash.c - the dashboard screen: draw and keys. */
#include "dash.h"

#include <stdio.h>
#include <string.h>

#include "fmtnum.h"
#include "table.h"

#define MARGIN         2  /* columns left of everything */
#define TYPE_W         10 /* the type column: "STANDARD" and a gap */
#define ITEM_GAP       2  /* columns between the items of a line */
#define FOOTER_TEXT    16 /* bytes of a footer key or meaning as drawn: " Refresh  " and a NUL */
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
#define FOOTER_KEYS (sizeof footer_keys / sizeof footer_keys[0])

/* The footer's pairs in the order they are kept on a narrow terminal: q and ? first. */
static const size_t footer_keep[FOOTER_KEYS] = {4, 3, 0, 1, 2};

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

/* Draws the items from x on, ITEM_GAP columns apart, each whole or not at all: the first
 * that does not fit ends the line. */
static void
draw_items(const struct ui *ui, int y, int x, enum ui_color c, const char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!ui_text_whole(ui, y, x, ui->cols - x, c, items[i]))
            return;
        x += ui_width(items[i]) + ITEM_GAP;
    }
}

static void
draw_header(const struct dash_view *v, const struct ui *ui)
{
    const struct stats *st = v->stats;
    char up[40] = "up -", conns[32] = "conns -", rate[32] = "cmd/s -", hms[32];
    char node[2 * PROTO_STAT_TEXT_MAX + 16] = "";
    double cmd_rate;

    if (st->have) {
        fmt_uptime(hms, sizeof hms, st->cur.uptime_s);
        snprintf(up, sizeof up, "up %s", hms);
        snprintf(conns, sizeof conns, "conns %llu", (unsigned long long)st->cur.connections);
        if (st->cur.node[0] != '\0' && st->cur.store[0] != '\0')
            snprintf(node, sizeof node, "node %s (%s)", st->cur.node, st->cur.store);
        else if (st->cur.node[0] != '\0')
            snprintf(node, sizeof node, "node %s", st->cur.node);
    }
    if (v->link == DASH_CONNECTED && stats_cmd_rate(st, &cmd_rate))
        snprintf(rate, sizeof rate, "cmd/s %.1f", cmd_rate);
    /* The node last: on a narrow terminal it is the first item left out. */
    const char *items[] = {"couponctl", v->address, link_word(v->link), up, conns, rate, node};
    size_t n = sizeof items / sizeof items[0] - (node[0] == '\0');
    ui_fill(ui, ROW_HEADER, 0, ui->cols, UI_TITLE);
    draw_items(ui, ROW_HEADER, 1, UI_TITLE, items, n);
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

/* One row: its label, then each shown column's text right-aligned in its width. */
static void
draw_row(const struct ui *ui, int y, const struct table_layout *t, const char *label,
         enum ui_color label_c, const char *const *texts, enum ui_color c)
{
    int x = MARGIN + TYPE_W;

    ui_text(ui, y, MARGIN, TYPE_W, label_c, label);
    for (int f = 0; f < STATS_NFAMILIES; f++) {
        if (!t->shown[f])
            continue;
        ui_textf(ui, y, x, t->width[f], c, "%*s", t->width[f], texts[f]);
        x += t->width[f];
    }
}

/* The numbers of one row, each whole in its column's width less the gap (table.h makes the
 * column wide enough); "-" before the first sample. */
static void
row_numbers(const struct table_layout *t, bool have, const uint64_t *vals,
            char bufs[STATS_NFAMILIES][FMTNUM_BUF], const char **texts)
{
    for (int f = 0; f < STATS_NFAMILIES; f++) {
        size_t room = t->shown[f] ? (size_t)(t->width[f] - TABLE_GAP) : 0;
        if (!have || fmtnum_fit(bufs[f], vals[f], room) == 0)
            snprintf(bufs[f], FMTNUM_BUF, "-");
        texts[f] = bufs[f];
    }
}

/* The values of row `ty` (PROTO_NTYPES: the total). */
static void
row_values(const struct stats *st, int ty, uint64_t vals[STATS_NFAMILIES])
{
    for (int f = 0; f < STATS_NFAMILIES; f++)
        vals[f] = ty < PROTO_NTYPES ? st->cur.by_type[f][ty]
                                    : stats_total(&st->cur, (enum stats_family)f);
}

static int
digits(uint64_t v)
{
    int n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* The widest number of each column, over the types and the total. */
static void
widest_numbers(const struct stats *st, int widest[STATS_NFAMILIES])
{
    uint64_t vals[STATS_NFAMILIES];

    for (int f = 0; f < STATS_NFAMILIES; f++)
        widest[f] = 1; /* "-" */
    for (int ty = 0; st->have && ty <= PROTO_NTYPES; ty++) {
        row_values(st, ty, vals);
        for (int f = 0; f < STATS_NFAMILIES; f++)
            widest[f] = digits(vals[f]) > widest[f] ? digits(vals[f]) : widest[f];
    }
}

static void
draw_table(const struct dash_view *v, const struct ui *ui, int bottom)
{
    const struct stats *st = v->stats;
    enum ui_color num = v->link == DASH_CONNECTED ? UI_NORMAL : UI_STALE;
    char bufs[STATS_NFAMILIES][FMTNUM_BUF];
    const char *texts[STATS_NFAMILIES];
    uint64_t vals[STATS_NFAMILIES];
    int widest[STATS_NFAMILIES];
    struct table_layout t;
    int y = ROW_TABLE;

    if (y >= bottom)
        return;
    widest_numbers(st, widest);
    table_layout(ui->cols - MARGIN - TYPE_W, widest, &t);
    draw_row(ui, y, &t, "TYPE", UI_LABEL, t.label, UI_LABEL);
    for (int ty = 0; ty < PROTO_NTYPES && ++y < bottom; ty++) {
        row_values(st, ty, vals);
        row_numbers(&t, st->have, vals, bufs, texts);
        draw_row(ui, y, &t, proto_type_name((enum proto_type)ty), UI_LABEL, texts, num);
    }
    if (++y >= bottom)
        return;
    row_values(st, PROTO_NTYPES, vals);
    row_numbers(&t, st->have, vals, bufs, texts);
    draw_row(ui, y, &t, "TOTAL", UI_TOTAL, texts, num == UI_STALE ? UI_STALE : UI_TOTAL);
}

/* The MEGADEAL line: each "name value" pair whole or not at all. */
static void
draw_mega(const struct dash_view *v, const struct ui *ui)
{
    const struct stats *st = v->stats;
    int x = MARGIN;

    if (!ui_text_whole(ui, ROW_MEGA, x, ui->cols - x, UI_LABEL, "MEGADEAL"))
        return;
    x += ui_width("MEGADEAL");
    for (int i = 0; i < STATS_NMEGA; i++) {
        char val[24] = "-";
        if (st->have)
            snprintf(val, sizeof val, "%llu", (unsigned long long)st->cur.mega[i]);
        const char *name = stats_mega_names[i];
        int w = ui_width(name) + 1 + ui_width(val);
        if (x + ITEM_GAP + w > ui->cols)
            return;
        x += ITEM_GAP;
        x += ui_text(ui, ROW_MEGA, x, ui->cols - x, UI_NORMAL, name) + 1;
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
    char now[40] = "now -", peak[40], last[48];
    double rate;
    if (queue && st->have)
        snprintf(now, sizeof now, "now %llu", (unsigned long long)st->cur.mega[STATS_MEGA_QUEUED]);
    else if (!queue && stats_grant_rate(st, &rate))
        snprintf(now, sizeof now, "now %.1f", rate);
    snprintf(peak, sizeof peak, queue ? "peak %.0f" : "peak %.1f", top);
    snprintf(last, sizeof last, "(last %s)", span);
    const char *items[] = {queue ? "queue depth" : "grants/s", now, peak, last};
    draw_items(ui, y, MARGIN, UI_LABEL, items, sizeof items / sizeof items[0]);
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
    draw_table(v, ui, bottom);
    if (ROW_MEGA < bottom)
        draw_mega(v, ui);
    draw_charts(v, ui, bottom);
}

/* The footer's key and meaning of pair i, as drawn. */
static void
footer_pair(size_t i, char key[FOOTER_TEXT], char what[FOOTER_TEXT])
{
    snprintf(key, FOOTER_TEXT, " %s ", footer_keys[i].key);
    snprintf(what, FOOTER_TEXT, " %s  ", footer_keys[i].what);
}

void
dash_footer(const struct ui *ui, const char *extra)
{
    bool shown[FOOTER_KEYS] = {false};
    char key[FOOTER_TEXT], what[FOOTER_TEXT];
    int y = ui->rows - 1, x = 0, used = 0;

    /* The pairs that fit, in the order of footer_keep; a key without its meaning helps
     * nobody, so a pair is shown whole or not at all. */
    for (size_t i = 0; i < FOOTER_KEYS; i++) {
        footer_pair(footer_keep[i], key, what);
        int w = ui_width(key) + ui_width(what);
        if (used + w > ui->cols)
            break;
        used += w;
        shown[footer_keep[i]] = true;
    }
    ui_fill(ui, y, 0, ui->cols, UI_FOOTER);
    for (size_t i = 0; i < FOOTER_KEYS; i++) {
        if (!shown[i])
            continue;
        footer_pair(i, key, what);
        x += ui_text(ui, y, x, ui->cols - x, UI_KEY, key);
        x += ui_text(ui, y, x, ui->cols - x, UI_FOOTER, what);
    }
    if (extra != NULL)
        ui_text(ui, y, x, ui->cols - x, UI_WARN, extra);
}
