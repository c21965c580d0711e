/* ui.h - the terminal layer the screens share: curses set-up, the one colour table and
 * NO_COLOR, Unicode or ASCII glyphs, clipped text, bars and charts, key reading. */
#ifndef COUPONCTL_UI_H
#define COUPONCTL_UI_H

#include <stdbool.h>
#include <stddef.h>

#include <curses.h>

#define UI_ESC_DELAY_MS 25   /* wait for the rest of an escape sequence; a lone Esc feels instant */
#define UI_TEXT_MAX     1024 /* characters drawn by one ui_text() call at most */

/* Every colour on screen has a role here; the table in ui.c gives each a colour pair and the
 * attribute used instead when there is no colour. */
enum ui_color {
    UI_NORMAL = 0,
    UI_TITLE,  /* the header bar */
    UI_GOOD,   /* "connected", a stored upload */
    UI_ALERT,  /* the reconnecting banner, a refused key */
    UI_WARN,   /* attention without alarm: cancelling, a notice */
    UI_BAD,    /* errors in lists and results */
    UI_LABEL,  /* column and field labels */
    UI_TOTAL,  /* the totals row */
    UI_STALE,  /* numbers from before the connection was lost */
    UI_GRANTS, /* the grants chart */
    UI_QUEUE,  /* the queue depth chart */
    UI_BAR,    /* the progress bar */
    UI_KEY,    /* a key name in the footer */
    UI_FOOTER, /* the footer bar */
    UI_PANEL,  /* a panel's title line */
    UI_NCOLORS
};

/* What a screen's key handler asks the app to do. */
enum ui_action {
    UI_ACT_NONE = 0, /* the key was used, nothing else to do */
    UI_ACT_PASS,     /* the key was not used: offer it to the dashboard */
    UI_ACT_QUIT,
    UI_ACT_REFRESH,
    UI_ACT_UPLOAD,
    UI_ACT_PURGE,
    UI_ACT_HELP,
    UI_ACT_ACCEPT,  /* a prompt's value was entered */
    UI_ACT_CONFIRM, /* a question was answered yes */
    UI_ACT_CANCEL,  /* Esc: cancel what is going on */
    UI_ACT_CLOSE    /* close the panel or screen */
};

/* One key: a character, or a curses KEY_* code when fn is set. */
struct ui_key {
    int code;
    bool fn;
};

#define UI_KEY_ESC   27
#define UI_KEY_ENTER 13 /* nonl(): Enter arrives as CR */

struct ui {
    SCREEN *screen;
    bool color; /* colours in use: the terminal has them and NO_COLOR is not set */
    bool utf8;  /* the locale's charset is UTF-8: Unicode blocks, else ASCII */
    int rows;
    int cols;
};

/* Takes over the terminal (stdin/stdout). Returns false with a reason in err when curses
 * cannot use it. */
bool ui_start(struct ui *ui, char *err, size_t errlen);

/* Gives the terminal back as it was. */
void ui_stop(struct ui *ui);

/* Reads one key without waiting: true and fills *k, or false when none is waiting. A
 * KEY_RESIZE also updates ui->rows and ui->cols. */
bool ui_read_key(struct ui *ui, struct ui_key *k);

/* A frame: ui_frame_begin() clears, the screens draw, ui_frame_end() updates the terminal. */
void ui_frame_begin(struct ui *ui);
void ui_frame_end(struct ui *ui);

/* The attribute of a colour role. */
attr_t ui_attr(const struct ui *ui, enum ui_color c);

/* Draws UTF-8 text at (y, x), clipped to w columns and to the screen; bytes the locale
 * cannot decode show as '?'. A word (a run without blanks) that has a digit is never cut:
 * when it does not fit, it is left out whole, so a number is shown whole or not at all.
 * Returns the columns used. */
int ui_text(const struct ui *ui, int y, int x, int w, enum ui_color c, const char *s);

/* Draws the text only when all of it fits in w columns and on the screen. Returns whether
 * it was drawn: a question the operator cannot see must not be taken as asked. */
bool ui_text_whole(const struct ui *ui, int y, int x, int w, enum ui_color c, const char *s);

/* The columns UTF-8 text takes on screen. */
int ui_width(const char *s);

/* The same with printf formatting. */
int ui_textf(const struct ui *ui, int y, int x, int w, enum ui_color c, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Paints w blank columns at (y, x) in colour c. */
void ui_fill(const struct ui *ui, int y, int x, int w, enum ui_color c);

/* A progress bar of w columns filled to frac (0..1). */
void ui_bar(const struct ui *ui, int y, int x, int w, double frac, enum ui_color c);

/* A bar chart h rows high and w columns wide with its top-left at (y, x): column j shows
 * v[j] on a scale of 0..top, in eighths of a row with Unicode blocks, or in ASCII. */
void ui_chart(const struct ui *ui, int y, int x, int h, int w, const double *v, double top,
              enum ui_color c);

/* Shows the cursor at (y, x), or hides it when y < 0. */
void ui_cursor(const struct ui *ui, int y, int x);

#endif
