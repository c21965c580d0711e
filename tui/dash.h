/* dash.h - the dashboard screen: header, connection banner, the table by type, the MEGADEAL
 * panel with its charts, and the footer of keys. */
#ifndef COUPONCTL_DASH_H
#define COUPONCTL_DASH_H

#include <stdbool.h>
#include <stdint.h>

#include "stats.h"
#include "ui.h"

#define DASH_HEAD_ROWS   2  /* header and banner: never covered by a panel */
#define DASH_TOP_ROWS    10 /* header, banner, table (title, 4 types, total), gap, MEGADEAL */
#define DASH_CHARTS_MIN  4  /* two charts of one row and their labels */
#define DASH_CHART_MAX_H 12 /* rows of a chart at most: 96 levels is plenty */
#define DASH_NOTICE_MAX  160

enum dash_link {
    DASH_CONNECTING = 0, /* the first attempt is under way */
    DASH_CONNECTED,
    DASH_RECONNECTING /* failed or lost: waiting for the next attempt */
};

/* What the dashboard shows; the app fills it before each draw. */
struct dash_view {
    const struct stats *stats;
    const char *address; /* "127.0.0.1:7070" */
    enum dash_link link;
    const char *link_error; /* why the last attempt failed */
    int64_t retry_in_ms;    /* RECONNECTING: time to the next attempt */
    unsigned attempts;      /* RECONNECTING: attempts failed in a row */
    const char *notice;     /* a one-line notice for the banner row, or NULL */
    int64_t now_ms;
};

/* Draws everything above row `bottom` (at least DASH_HEAD_ROWS), and nothing below: the
 * charts take the rows left over below the table, a panel may cover the table's end. */
void dash_draw(const struct dash_view *v, const struct ui *ui, int bottom);

/* Draws the footer on the last row: the dashboard's keys, then `extra` hints ("Esc cancel")
 * when not NULL. */
void dash_footer(const struct ui *ui, const char *extra);

/* The dashboard's keys: u, p, r, ?, q (either case; F1 for help, Ctrl-L to redraw). */
enum ui_action dash_key(const struct ui_key *k);

#endif
