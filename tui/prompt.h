/* prompt.h - a one-line editor for answers such as a file path: cursor movement, the usual
 * Emacs-style control keys, and file name completion with Tab. */
#ifndef COUPONCTL_PROMPT_H
#define COUPONCTL_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <wchar.h>

#include "ui.h"

#define PROMPT_MAX 4096 /* characters in an answer: PATH_MAX */

struct prompt {
    const char *label; /* a constant */
    wchar_t buf[PROMPT_MAX + 1];
    size_t len; /* characters in buf */
    size_t cur; /* cursor, 0..len */
};

/* Starts editing an empty answer after `label` (a string constant). */
void prompt_start(struct prompt *p, const char *label);

/* Edits: printable characters insert; Left/Right, Home/End, Ctrl-B/F/A/E move; Backspace,
 * Delete, Ctrl-D delete; Ctrl-U and Ctrl-K kill to the start or end; Ctrl-W kills the word
 * before the cursor; Tab completes a file name. Returns UI_ACT_ACCEPT for Enter,
 * UI_ACT_CANCEL for Esc or Ctrl-G, else UI_ACT_NONE. */
enum ui_action prompt_key(struct prompt *p, const struct ui_key *k);

/* Draws the label and the answer in w columns at (y, x), scrolled so the cursor shows, and
 * puts the terminal cursor there. */
void prompt_draw(const struct prompt *p, const struct ui *ui, int y, int x, int w);

/* The answer in the locale's encoding. False when it does not fit outlen or convert. */
bool prompt_value(const struct prompt *p, char *out, size_t outlen);

#endif
