/* purge.c - the purge panel: confirmation, progress, count. */
#include "purge.h"

#include <stdio.h>
#include <string.h>

#define MARGIN 2

static const char question_long[] = "Delete every expired coupon that was never redeemed? [y/N]";
static const char question_short[] = "Purge expired coupons? [y/N]";

void
purge_ask(struct purge_view *v)
{
    v->phase = PURGE_CONFIRM;
    v->msg[0] = '\0';
    v->question_shown = false;
}

void
purge_running(struct purge_view *v)
{
    v->phase = PURGE_RUNNING;
    v->msg[0] = '\0';
}

void
purge_done(struct purge_view *v, const char *count)
{
    v->phase = PURGE_DONE;
    snprintf(v->msg, sizeof v->msg, "Purged %s coupon%s", count,
             strcmp(count, "1") == 0 ? "" : "s");
}

void
purge_failed(struct purge_view *v, const char *why)
{
    v->phase = PURGE_FAILED;
    snprintf(v->msg, sizeof v->msg, "Purge failed: %s", why);
}

/* The question, whole: the long form, else the short one. */
static bool
draw_question(const struct ui *ui, int y)
{
    return ui_text_whole(ui, y, MARGIN, ui->cols - MARGIN, UI_WARN, question_long) ||
           ui_text_whole(ui, y, MARGIN, ui->cols - MARGIN, UI_WARN, question_short);
}

void
purge_draw(struct purge_view *v, const struct ui *ui, int y, int rows)
{
    enum ui_color title = v->phase == PURGE_FAILED ? UI_ALERT : UI_PANEL;

    v->question_shown = false;
    if (rows <= 0)
        return;
    ui_fill(ui, y, 0, ui->cols, title);
    ui_text(ui, y, 1, ui->cols - 1, title, "Purge expired coupons");
    if (rows < 2)
        return;
    switch (v->phase) {
    case PURGE_CONFIRM:
        v->question_shown = draw_question(ui, y + 1);
        break;
    case PURGE_RUNNING:
        ui_text(ui, y + 1, MARGIN, ui->cols - MARGIN, UI_NORMAL, "Purging...");
        break;
    case PURGE_DONE:
        ui_text(ui, y + 1, MARGIN, ui->cols - MARGIN, UI_GOOD, v->msg);
        break;
    case PURGE_FAILED:
        ui_text(ui, y + 1, MARGIN, ui->cols - MARGIN, UI_BAD, v->msg);
        break;
    }
    if (rows < 3)
        return;
    ui_text(ui, y + 2, MARGIN, ui->cols - MARGIN, UI_STALE,
            v->phase == PURGE_CONFIRM   ? "y purges, any other key cancels"
            : v->phase == PURGE_RUNNING ? "The server purges in chunks; the dashboard goes on"
                                        : "Enter or Esc close");
}

enum ui_action
purge_key(const struct purge_view *v, const struct ui_key *k)
{
    bool enter_or_esc =
        !k->fn && (k->code == UI_KEY_ENTER || k->code == '\n' || k->code == UI_KEY_ESC);

    switch (v->phase) {
    case PURGE_CONFIRM:
        if (k->fn && k->code == KEY_RESIZE)
            return UI_ACT_PASS;
        return !k->fn && (k->code == 'y' || k->code == 'Y') && v->question_shown ? UI_ACT_CONFIRM
                                                                                 : UI_ACT_CLOSE;
    case PURGE_RUNNING:
        return UI_ACT_PASS;
    case PURGE_DONE:
    case PURGE_FAILED:
        return enter_or_esc ? UI_ACT_CLOSE : UI_ACT_PASS;
    }
    return UI_ACT_PASS;
}
