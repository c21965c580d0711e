/* listview.h - a scrollable list of text lines inside a panel: check errors, REJECT lines,
 * batch results. It owns copies of its lines. */
#ifndef COUPONCTL_LISTVIEW_H
#define COUPONCTL_LISTVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "ui.h"

#define LISTVIEW_MAX_ITEMS 100000 /* lines kept at most; a list this long is scrolled, not read */

struct listview_item {
    char *text;
    enum ui_color color;
};

struct listview {
    struct listview_item *items;
    size_t n, cap;
    size_t top; /* first line shown */
    int page;   /* lines shown by the last draw: the PgUp/PgDn step */
};

void listview_init(struct listview *lv);

/* Frees the lines and empties the list. */
void listview_clear(struct listview *lv);

/* Appends a copy of text. Returns false (and adds nothing) when out of memory or full. */
bool listview_add(struct listview *lv, const char *text, enum ui_color color);

/* Draws the lines from top in the rows [y, y + h), w columns from x, and a position
 * indicator on the last column when they do not all fit. */
void listview_draw(struct listview *lv, const struct ui *ui, int y, int x, int h, int w);

/* Scrolls for Up, Down, PgUp, PgDn, Home and End; returns false for any other key. */
bool listview_key(struct listview *lv, const struct ui_key *k);

#endif
