/* upview.h - the upload panel below the dashboard: the path prompt, the check of the file,
 * the progress bar while batches go out, and the result as a scrollable list. The app drives
 * the phases; this module keeps what the panel shows and handles its keys. */
#ifndef COUPONCTL_UPVIEW_H
#define COUPONCTL_UPVIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "listview.h"
#include "prompt.h"
#include "ui.h"
#include "upload.h"

#define UPVIEW_PATH_MAX  (PROMPT_MAX * 4) /* bytes: PROMPT_MAX characters of up to 4 bytes */
#define UPVIEW_TITLE_MAX 400

enum upview_phase {
    UPVIEW_PROMPT = 0, /* asking for the file */
    UPVIEW_CHECKING,   /* reading and checking it */
    UPVIEW_SENDING,    /* batches going out */
    UPVIEW_RESULT      /* the outcome, with details */
};

struct upview {
    enum upview_phase phase;
    struct prompt prompt;
    char path[UPVIEW_PATH_MAX];
    uint32_t lines;                  /* CHECKING: lines read */
    uint64_t bytes;                  /* CHECKING: bytes read */
    struct upload_progress progress; /* SENDING */
    bool cancelling;                 /* SENDING: Esc was pressed */
    char title[UPVIEW_TITLE_MAX];    /* RESULT */
    enum ui_color title_color;       /* RESULT */
    struct listview list;            /* RESULT */
};

void upview_init(struct upview *v);
void upview_free(struct upview *v);

/* Phase changes. upview_checking() keeps a copy of path; upview_result() formats the title
 * and empties the list, which the caller then fills with listview_add(&v->list, ...). */
void upview_prompt(struct upview *v);
void upview_checking(struct upview *v, const char *path);
void upview_sending(struct upview *v);
void upview_result(struct upview *v, enum ui_color color, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The rows the panel wants when `avail` are free. */
int upview_rows(const struct upview *v, int avail);

/* Draws the panel in rows [y, y + rows). */
void upview_draw(struct upview *v, const struct ui *ui, int y, int rows);

/* PROMPT: editing keys, UI_ACT_ACCEPT for Enter (the path is then in upview_path()), and
 * UI_ACT_CLOSE for Esc. CHECKING and SENDING: UI_ACT_CANCEL for Esc. RESULT: scrolling, and
 * UI_ACT_CLOSE for Enter or Esc. Other keys: UI_ACT_PASS. */
enum ui_action upview_key(struct upview *v, const struct ui_key *k);

/* PROMPT accepted: the path typed, in the locale's encoding, or NULL when it cannot be
 * converted. Valid until the next upview call. */
const char *upview_path(struct upview *v);

#endif
