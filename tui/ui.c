/* ui.c - curses set-up, the colour table, glyphs, and the drawing helpers of the screens. */
#include "ui.h"

#include <langinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <term.h>
#include <wchar.h>

#define EIGHTHS 8

/* The colour table: the one place colours are defined. fg/bg -1 is the terminal's own. */
static const struct ui_style {
    short fg, bg;
    attr_t color_attr; /* added to the pair when colours are on */
    attr_t mono_attr;  /* used alone when they are off */
} styles[UI_NCOLORS] = {
    [UI_NORMAL] = {-1, -1, A_NORMAL, A_NORMAL},
    [UI_TITLE] = {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
    [UI_GOOD] = {COLOR_GREEN, -1, A_BOLD, A_BOLD},
    [UI_ALERT] = {COLOR_WHITE, COLOR_RED, A_BOLD, A_REVERSE | A_BOLD},
    [UI_WARN] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    [UI_BAD] = {COLOR_RED, -1, A_BOLD, A_BOLD},
    [UI_LABEL] = {COLOR_CYAN, -1, A_BOLD, A_BOLD},
    [UI_TOTAL] = {-1, -1, A_BOLD, A_BOLD},
    [UI_STALE] = {-1, -1, A_DIM, A_DIM},
    [UI_GRANTS] = {COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    [UI_QUEUE] = {COLOR_MAGENTA, -1, A_NORMAL, A_NORMAL},
    [UI_BAR] = {COLOR_CYAN, -1, A_NORMAL, A_NORMAL},
    [UI_KEY] = {COLOR_BLACK, COLOR_CYAN, A_BOLD, A_REVERSE | A_BOLD},
    [UI_FOOTER] = {-1, -1, A_NORMAL, A_NORMAL},
    [UI_PANEL] = {COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_REVERSE},
};

/* Chart cells by eighths filled, 0..8: Unicode blocks, or ASCII. */
static const wchar_t chart_utf8[EIGHTHS + 1] = {
    L' ', 0x2581, 0x2582, 0x2583, 0x2584, 0x2585, 0x2586, 0x2587, 0x2588,
};
static const wchar_t chart_ascii[EIGHTHS + 1] = {
    L' ', L'_', L'_', L'-', L'-', L'=', L'=', L'#', L'#',
};
/* The baseline under a column at zero, drawn dim. */
static const wchar_t baseline_utf8 = 0x00B7;
static const wchar_t baseline_ascii = L'.';
/* Progress bar cells: left eighths blocks, then the track. */
static const wchar_t bar_utf8[EIGHTHS + 1] = {
    0x2591, 0x258F, 0x258E, 0x258D, 0x258C, 0x258B, 0x258A, 0x2589, 0x2588,
};
static const wchar_t bar_ascii[EIGHTHS + 1] = {
    L'.', L'.', L'.', L'.', L'#', L'#', L'#', L'#', L'#',
};

static bool
no_color_requested(void)
{
    const char *v = getenv("NO_COLOR");

    /* no-color.org: set and not empty. */
    return v != NULL && v[0] != '\0';
}

static void
init_colors(struct ui *ui)
{
    ui->color = has_colors() && !no_color_requested();
    if (!ui->color)
        return;
    start_color();
    bool defaults = use_default_colors() == OK;
    for (int i = 1; i < UI_NCOLORS; i++) {
        short fg = styles[i].fg, bg = styles[i].bg;
        if (!defaults) {
            fg = fg < 0 ? COLOR_WHITE : fg;
            bg = bg < 0 ? COLOR_BLACK : bg;
        }
        init_pair((short)i, fg, bg);
    }
}

/* Whether the terminal newterm() opened can place the cursor: "dumb" and hard-copy types
 * cannot, and a full-screen display on them is garbage. */
static bool
can_address_cursor(void)
{
    const char *cup = tigetstr("cup");

    return cup != NULL && cup != (const char *)-1;
}

static void
terminal_error(char *err, size_t errlen, const char *why)
{
    const char *term = getenv("TERM");

    if (term == NULL || term[0] == '\0')
        snprintf(err, errlen, "cannot use the terminal: TERM is not set");
    else
        snprintf(err, errlen, "cannot use the terminal (TERM=%s): %s", term, why);
}

bool
ui_start(struct ui *ui, char *err, size_t errlen)
{
    const char *term = getenv("TERM");

    memset(ui, 0, sizeof *ui);
    ui->utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    if (term == NULL || term[0] == '\0') {
        /* Said before curses is asked: newterm() would fail the same way, and leave some of
         * its memory behind. */
        terminal_error(err, errlen, "");
        return false;
    }
    ui->screen = newterm(NULL, stdout, stdin);
    if (ui->screen == NULL) {
        terminal_error(err, errlen, "no such terminal type");
        return false;
    }
    set_term(ui->screen);
    if (!can_address_cursor()) {
        terminal_error(err, errlen, "it cannot move the cursor");
        ui_stop(ui);
        return false;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(UI_ESC_DELAY_MS);
    curs_set(0);
    init_colors(ui);
    getmaxyx(stdscr, ui->rows, ui->cols);
    return true;
}

void
ui_stop(struct ui *ui)
{
    if (ui->screen == NULL)
        return;
    curs_set(1);
    endwin();
    delscreen(ui->screen);
    ui->screen = NULL;
}

bool
ui_read_key(struct ui *ui, struct ui_key *k)
{
    wint_t wch;
    int rc = wget_wch(stdscr, &wch);

    if (rc == ERR)
        return false;
    k->fn = rc == KEY_CODE_YES;
    k->code = (int)wch;
    if (k->fn && k->code == KEY_RESIZE)
        getmaxyx(stdscr, ui->rows, ui->cols);
    return true;
}

void
ui_frame_begin(struct ui *ui)
{
    getmaxyx(stdscr, ui->rows, ui->cols);
    werase(stdscr);
}

void
ui_frame_end(struct ui *ui)
{
    (void)ui;
    wnoutrefresh(stdscr);
    doupdate();
}

attr_t
ui_attr(const struct ui *ui, enum ui_color c)
{
    if (!ui->color)
        return styles[c].mono_attr;
    return (attr_t)COLOR_PAIR(c) | styles[c].color_attr;
}

/* Columns available from (y, x) on, at most w; 0 when the spot is off screen. */
static int
clip(const struct ui *ui, int y, int x, int w)
{
    if (y < 0 || y >= ui->rows || x < 0 || x >= ui->cols || w <= 0)
        return 0;
    return w < ui->cols - x ? w : ui->cols - x;
}

static bool
is_blank_byte(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Whether the word starting at s (up to a blank or the end) has a digit. UTF-8 continuation
 * bytes are never ASCII digits, so bytes will do. */
static bool
word_has_digit(const char *s)
{
    for (; *s != '\0' && !is_blank_byte(*s); s++)
        if (*s >= '0' && *s <= '9')
            return true;
    return false;
}

/* UTF-8 text decoded for the screen: wide characters and the columns they take. */
struct decoded {
    wchar_t wc[UI_TEXT_MAX];
    size_t n;
    int cols;
    bool cut; /* the text did not all fit */
};

/* Decodes s for at most w columns (w < 0: no limit). Bytes the locale cannot decode become
 * '?'. When the text must be cut inside a word that has a digit, the whole word goes: a
 * number is shown whole or not at all. */
static void
decode(const char *s, int w, struct decoded *d)
{
    mbstate_t st;
    size_t left = strlen(s), word_n = 0;
    int word_cols = 0;
    bool word_digit = false;

    memset(&st, 0, sizeof st);
    d->n = 0;
    d->cols = 0;
    while (left > 0 && d->n < UI_TEXT_MAX) {
        wchar_t wc;
        size_t used = mbrtowc(&wc, s, left, &st);
        if (used == (size_t)-1 || used == (size_t)-2 || used == 0) {
            wc = L'?';
            used = 1;
            memset(&st, 0, sizeof st);
        }
        int cw = wcwidth(wc);
        if (cw < 0) {
            wc = L'?';
            cw = 1;
        }
        if (w >= 0 && d->cols + cw > w)
            break;
        if (is_blank_byte(*s)) {
            word_n = d->n + 1;
            word_cols = d->cols + cw;
            word_digit = false;
        } else if (*s >= '0' && *s <= '9') {
            word_digit = true;
        }
        d->wc[d->n++] = wc;
        d->cols += cw;
        s += used;
        left -= used;
    }
    d->cut = left > 0;
    if (d->cut && !is_blank_byte(*s) && (word_digit || word_has_digit(s))) {
        d->n = word_n;
        d->cols = word_cols;
    }
}

int
ui_width(const char *s)
{
    struct decoded d;

    decode(s, -1, &d);
    return d.cols;
}

int
ui_text(const struct ui *ui, int y, int x, int w, enum ui_color c, const char *s)
{
    struct decoded d;

    decode(s, clip(ui, y, x, w), &d);
    if (d.n == 0)
        return 0;
    attrset(ui_attr(ui, c));
    mvaddnwstr(y, x, d.wc, (int)d.n);
    attrset(A_NORMAL);
    return d.cols;
}

bool
ui_text_whole(const struct ui *ui, int y, int x, int w, enum ui_color c, const char *s)
{
    int need = ui_width(s);

    if (need > clip(ui, y, x, w) || (need == 0 && clip(ui, y, x, 1) == 0))
        return false;
    ui_text(ui, y, x, w, c, s);
    return true;
}

int
ui_textf(const struct ui *ui, int y, int x, int w, enum ui_color c, const char *fmt, ...)
{
    char buf[UI_TEXT_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ui_text(ui, y, x, w, c, buf);
}

/* Draws one glyph w times from (y, x); the caller has clipped. */
static void
repeat(int y, int x, int w, wchar_t wc)
{
    for (int i = 0; i < w; i++)
        mvaddnwstr(y, x + i, &wc, 1);
}

void
ui_fill(const struct ui *ui, int y, int x, int w, enum ui_color c)
{
    w = clip(ui, y, x, w);
    attrset(ui_attr(ui, c));
    repeat(y, x, w, L' ');
    attrset(A_NORMAL);
}

void
ui_bar(const struct ui *ui, int y, int x, int w, double frac, enum ui_color c)
{
    const wchar_t *g = ui->utf8 ? bar_utf8 : bar_ascii;

    w = clip(ui, y, x, w);
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    long eighths = (long)(frac * w * EIGHTHS);
    attrset(ui_attr(ui, c));
    for (int i = 0; i < w; i++) {
        long cell = eighths - (long)i * EIGHTHS;
        cell = cell < 0 ? 0 : (cell > EIGHTHS ? EIGHTHS : cell);
        mvaddnwstr(y, x + i, &g[cell], 1);
    }
    attrset(A_NORMAL);
}

void
ui_chart(const struct ui *ui, int y, int x, int h, int w, const double *v, double top,
         enum ui_color c)
{
    const wchar_t *g = ui->utf8 ? chart_utf8 : chart_ascii;

    w = clip(ui, y, x, w);
    attrset(ui_attr(ui, c));
    for (int j = 0; j < w; j++) {
        long e = 0;
        if (top > 0 && v[j] > 0) {
            e = (long)(v[j] / top * h * EIGHTHS + 0.5);
            e = e < 1 ? 1 : e; /* anything above zero shows */
        }
        if (e == 0 && y + h - 1 < ui->rows) {
            attrset(ui_attr(ui, UI_STALE));
            mvaddnwstr(y + h - 1, x + j, ui->utf8 ? &baseline_utf8 : &baseline_ascii, 1);
            attrset(ui_attr(ui, c));
            continue;
        }
        for (int r = 0; r < h; r++) {
            long cell = e - (long)r * EIGHTHS;
            cell = cell < 0 ? 0 : (cell > EIGHTHS ? EIGHTHS : cell);
            if (y + h - 1 - r < ui->rows)
                mvaddnwstr(y + h - 1 - r, x + j, &g[cell], 1);
        }
    }
    attrset(A_NORMAL);
}

void
ui_cursor(const struct ui *ui, int y, int x)
{
    if (y < 0 || y >= ui->rows || x < 0 || x >= ui->cols) {
        curs_set(0);
        return;
    }
    curs_set(1);
    move(y, x);
}
