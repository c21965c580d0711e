/* purge.h - the purge panel: asks for confirmation, shows that PURGE is running, then the
 * count purged or the error. The app sends PURGE; this module keeps what the panel shows. */
#ifndef COUPONCTL_PURGE_H
#define COUPONCTL_PURGE_H

#include "ui.h"

#define PURGE_MSG_MAX 240
#define PURGE_ROWS    3 /* title, message, hint */

enum purge_phase {
    PURGE_CONFIRM = 0, /* "Purge ...? [y/N]" */
    PURGE_RUNNING,     /* PURGE sent, waiting for its reply */
    PURGE_DONE,        /* "Purged N coupons" */
    PURGE_FAILED       /* the ERR line or the connection failure */
};

struct purge_view {
    enum purge_phase phase;
    char msg[PURGE_MSG_MAX];
    /* CONFIRM: the last frame showed the whole question. A y counts only then; the app
     * clears it when the terminal is resized, until the next frame. */
    bool question_shown;
};

/* Phase changes; the message is a copy. */
void purge_ask(struct purge_view *v);
void purge_running(struct purge_view *v);
void purge_done(struct purge_view *v, const char *count);
void purge_failed(struct purge_view *v, const char *why);

/* Draws the panel in rows [y, y + rows): the question in full, or in short when the full
 * one does not fit; question_shown says whether either was drawn whole. */
void purge_draw(struct purge_view *v, const struct ui *ui, int y, int rows);

/* CONFIRM: UI_ACT_CONFIRM for y or Y when the question was shown, UI_ACT_CLOSE for anything
 * else (a y to a question not on screen cancels). RUNNING: UI_ACT_PASS. DONE and FAILED:
 * UI_ACT_CLOSE for Enter or Esc, else UI_ACT_PASS. */
enum ui_action purge_key(const struct purge_view *v, const struct ui_key *k);

#endif
