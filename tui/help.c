/* help.c - the help screen. */
#include "help.h"

#include <stddef.h>

#define MARGIN 2

static const struct {
    enum ui_color color;
    const char *text;
} lines[] = {
    {UI_LABEL, "Keys"},
    {UI_NORMAL, "  u        upload a CSV file of coupons (Tab completes the path)"},
    {UI_NORMAL, "  p        purge expired coupons that were never redeemed"},
    {UI_NORMAL, "  r        poll STATS now"},
    {UI_NORMAL, "  ?        this help; any key closes it"},
    {UI_NORMAL, "  q        quit; while an upload or purge runs, asks first"},
    {UI_NORMAL, "  Esc      cancel an upload after the batch in flight; close a panel"},
    {UI_NORMAL, ""},
    {UI_LABEL, "The table, by coupon type"},
    {UI_NORMAL, "  created    coupons uploaded          assigned   assignments to users"},
    {UI_NORMAL, "  redeemed   single uses counted       available  unassigned and unexpired"},
    {UI_NORMAL, "  purged     coupons deleted by purges held       uses reserved by live holds"},
    {UI_NORMAL, "  unredeemed uses given back by UNREDEEM (narrow: undone; avail: available)"},
    {UI_NORMAL, ""},
    {UI_LABEL, "MEGADEAL"},
    {UI_NORMAL, "  queued, in flight: now; granted, rejected, timed out: since the start."},
    {UI_NORMAL, "  The charts show grants per second and queue depth, oldest on the left."},
    {UI_NORMAL, ""},
    {UI_LABEL, "Upload files"},
    {UI_NORMAL, "  CSV with columns code,type,discount,kind,expires,max_uses, in that order"},
    {UI_NORMAL, "  or named by a header row. Every record is checked before anything is sent."},
};

void
help_draw(const struct ui *ui)
{
    ui_fill(ui, 0, 0, ui->cols, UI_TITLE);
    ui_text(ui, 0, 1, ui->cols - 1, UI_TITLE, "couponctl help");
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ui_text(ui, 2 + (int)i, MARGIN, ui->cols - MARGIN, lines[i].color, lines[i].text);
}

enum ui_action
help_key(const struct ui_key *k)
{
    if (k->fn && k->code == KEY_RESIZE)
        return UI_ACT_PASS;
    return UI_ACT_CLOSE;
}
