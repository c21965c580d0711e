/* listview.c - a scrollable list of owned text lines. */
#include "listview.h"

#include <stdlib.h>
#include <string.h>

#define LISTVIEW_MIN_CAP 64

void
listview_init(struct listview *lv)
{
    memset(lv, 0, sizeof *lv);
}

void
listview_clear(struct listview *lv)
{
    for (size_t i = 0; i < lv->n; i++)
        free(lv->items[i].text);
    free(lv->items);
    listview_init(lv);
}

bool
listview_add(struct listview *lv, const char *text, enum ui_color color)
{
    if (lv->n == LISTVIEW_MAX_ITEMS)
        return false;
    if (lv->n == lv->cap) {
        size_t cap = lv->cap > 0 ? lv->cap * 2 : LISTVIEW_MIN_CAP;
        struct listview_item *p = realloc(lv->items, cap * sizeof *p);
        if (p == NULL)
            return false;
        lv->items = p;
        lv->cap = cap;
    }
    char *copy = strdup(text);
    if (copy == NULL)
        return false;
    lv->items[lv->n].text = copy;
    lv->items[lv->n].color = color;
    lv->n++;
    return true;
}

static size_t
max_top(const struct listview *lv)
{
    size_t page = lv->page > 0 ? (size_t)lv->page : 1;
    return lv->n > page ? lv->n - page : 0;
}

void
listview_draw(struct listview *lv, const struct ui *ui, int y, int x, int h, int w)
{
    if (h <= 0 || w <= 1)
        return;
    lv->page = h;
    if (lv->top > max_top(lv))
        lv->top = max_top(lv);
    for (int r = 0; r < h && lv->top + (size_t)r < lv->n; r++) {
        const struct listview_item *it = &lv->items[lv->top + (size_t)r];
        ui_text(ui, y + r, x, w - 1, it->color, it->text);
    }
    if (lv->n <= (size_t)h)
        return;
    /* Where the page is in the list: a marker on the right edge. */
    int mark = (int)((double)lv->top / (double)max_top(lv) * (h - 1) + 0.5);
    for (int r = 0; r < h; r++)
        ui_text(ui, y + r, x + w - 1, 1, r == mark ? UI_LABEL : UI_STALE, r == mark ? "#" : "|");
}

bool
listview_key(struct listview *lv, const struct ui_key *k)
{
    size_t page = lv->page > 1 ? (size_t)lv->page - 1 : 1;

    if (!k->fn)
        return false;
    switch (k->code) {
    case KEY_UP:
        lv->top = lv->top > 0 ? lv->top - 1 : 0;
        return true;
    case KEY_DOWN:
        lv->top = lv->top < max_top(lv) ? lv->top + 1 : lv->top;
        return true;
    case KEY_PPAGE:
        lv->top = lv->top > page ? lv->top - page : 0;
        return true;
    case KEY_NPAGE:
        lv->top = lv->top + page < max_top(lv) ? lv->top + page : max_top(lv);
        return true;
    case KEY_HOME:
        lv->top = 0;
        return true;
    case KEY_END:
        lv->top = max_top(lv);
        return true;
    default:
        return false;
    }
}
