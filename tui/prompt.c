/* prompt.c - the one-line editor. */
#include "prompt.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* Control characters by the letter typed with Ctrl. */
enum {
    CTRL_A = 1,
    CTRL_B = 2,
    CTRL_D = 4,
    CTRL_E = 5,
    CTRL_F = 6,
    CTRL_G = 7,
    CTRL_H = 8,
    CTRL_K = 11,
    CTRL_U = 21,
    CTRL_W = 23,
    DEL_CHAR = 127
};

void
prompt_start(struct prompt *p, const char *label)
{
    memset(p, 0, sizeof *p);
    p->label = label;
}

static void
insert(struct prompt *p, const wchar_t *s, size_t n)
{
    if (n > PROMPT_MAX - p->len)
        n = PROMPT_MAX - p->len;
    wmemmove(p->buf + p->cur + n, p->buf + p->cur, p->len - p->cur);
    wmemcpy(p->buf + p->cur, s, n);
    p->len += n;
    p->cur += n;
    p->buf[p->len] = L'\0';
}

/* Deletes the characters [from, to). */
static void
delete_range(struct prompt *p, size_t from, size_t to)
{
    wmemmove(p->buf + from, p->buf + to, p->len - to);
    p->len -= to - from;
    p->buf[p->len] = L'\0';
    if (p->cur > to)
        p->cur -= to - from;
    else if (p->cur > from)
        p->cur = from;
}

static void
kill_word(struct prompt *p)
{
    size_t i = p->cur;

    while (i > 0 && p->buf[i - 1] == L' ')
        i--;
    while (i > 0 && p->buf[i - 1] != L' ' && p->buf[i - 1] != L'/')
        i--;
    if (i == p->cur && i > 0)
        i--; /* a lone separator goes too */
    delete_range(p, i, p->cur);
}

/* ---- Tab: file name completion of the text before the cursor ---- */

static size_t
common_prefix(const char *a, const char *b)
{
    size_t i = 0;

    while (a[i] != '\0' && a[i] == b[i])
        i++;
    return i;
}

/* Completes `path` in place (at most PATH_MAX bytes): the longest prefix shared by the
 * names in its directory that start with its last component, and a '/' after a single
 * directory. */
static void
complete_path(char *path, size_t cap)
{
    char dir[PATH_MAX], best[NAME_MAX + 1];
    char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    size_t blen = strlen(base), matches = 0;
    bool best_is_dir = false;

    if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if (slash != NULL)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, blen) != 0 || strcmp(e->d_name, ".") == 0 ||
            strcmp(e->d_name, "..") == 0 || (blen == 0 && e->d_name[0] == '.'))
            continue;
        if (matches++ == 0) {
            snprintf(best, sizeof best, "%s", e->d_name);
            best_is_dir = e->d_type == DT_DIR;
        } else {
            best[common_prefix(best, e->d_name)] = '\0';
        }
    }
    closedir(d);
    if (matches == 0)
        return;
    size_t keep = (size_t)(base - path);
    snprintf(path + keep, cap - keep, "%s%s", best, matches == 1 && best_is_dir ? "/" : "");
}

static void
complete(struct prompt *p)
{
    char path[PATH_MAX];
    wchar_t wide[PROMPT_MAX + 1];
    wchar_t tail[PROMPT_MAX + 1];
    size_t tail_len = p->len - p->cur;

    wmemcpy(tail, p->buf + p->cur, tail_len);
    p->buf[p->cur] = L'\0';
    size_t n = wcstombs(path, p->buf, sizeof path);
    p->buf[p->cur] = tail_len > 0 ? tail[0] : L'\0';
    if (n == (size_t)-1 || n >= sizeof path - 1)
        return;
    complete_path(path, sizeof path);
    size_t wn = mbstowcs(wide, path, PROMPT_MAX);
    if (wn == (size_t)-1 || wn + tail_len > PROMPT_MAX)
        return;
    wmemcpy(p->buf, wide, wn);
    wmemcpy(p->buf + wn, tail, tail_len);
    p->len = wn + tail_len;
    p->cur = wn;
    p->buf[p->len] = L'\0';
}

/* ---- Keys ---- */

static enum ui_action
function_key(struct prompt *p, int code)
{
    switch (code) {
    case KEY_LEFT:
        p->cur = p->cur > 0 ? p->cur - 1 : 0;
        break;
    case KEY_RIGHT:
        p->cur = p->cur < p->len ? p->cur + 1 : p->len;
        break;
    case KEY_HOME:
        p->cur = 0;
        break;
    case KEY_END:
        p->cur = p->len;
        break;
    case KEY_BACKSPACE:
        if (p->cur > 0)
            delete_range(p, p->cur - 1, p->cur);
        break;
    case KEY_DC:
        if (p->cur < p->len)
            delete_range(p, p->cur, p->cur + 1);
        break;
    case KEY_ENTER:
        return UI_ACT_ACCEPT;
    default:
        break;
    }
    return UI_ACT_NONE;
}

static enum ui_action
control_key(struct prompt *p, int code)
{
    switch (code) {
    case UI_KEY_ENTER:
    case '\n':
        return UI_ACT_ACCEPT;
    case UI_KEY_ESC:
    case CTRL_G:
        return UI_ACT_CANCEL;
    case CTRL_A:
        return function_key(p, KEY_HOME);
    case CTRL_E:
        return function_key(p, KEY_END);
    case CTRL_B:
        return function_key(p, KEY_LEFT);
    case CTRL_F:
        return function_key(p, KEY_RIGHT);
    case CTRL_H:
    case DEL_CHAR:
        return function_key(p, KEY_BACKSPACE);
    case CTRL_D:
        return function_key(p, KEY_DC);
    case CTRL_U:
        delete_range(p, 0, p->cur);
        return UI_ACT_NONE;
    case CTRL_K:
        delete_range(p, p->cur, p->len);
        return UI_ACT_NONE;
    case CTRL_W:
        kill_word(p);
        return UI_ACT_NONE;
    case '\t':
        complete(p);
        return UI_ACT_NONE;
    default:
        return UI_ACT_NONE;
    }
}

enum ui_action
prompt_key(struct prompt *p, const struct ui_key *k)
{
    if (k->fn)
        return function_key(p, k->code);
    if (k->code < ' ' || k->code == DEL_CHAR)
        return control_key(p, k->code);
    wchar_t wc = (wchar_t)k->code;
    if (iswprint((wint_t)wc))
        insert(p, &wc, 1);
    return UI_ACT_NONE;
}

static int
char_width(wchar_t wc)
{
    int w = wcwidth(wc);
    return w > 0 ? w : 1;
}

void
prompt_draw(const struct prompt *p, const struct ui *ui, int y, int x, int w)
{
    int used = ui_text(ui, y, x, w, UI_LABEL, p->label);
    int avail = w - used - 1;

    if (avail <= 1)
        return;
    /* Scroll so that the cursor, and as much as fits before it, shows. */
    size_t start = p->cur;
    int before = 0;
    while (start > 0 && before + char_width(p->buf[start - 1]) < avail) {
        start--;
        before += char_width(p->buf[start]);
    }
    int col = 0;
    size_t i = start;
    while (i < p->len && col + char_width(p->buf[i]) <= avail)
        col += char_width(p->buf[i++]);
    attrset(ui_attr(ui, UI_NORMAL));
    mvaddnwstr(y, x + used + 1, p->buf + start, (int)(i - start));
    ui_cursor(ui, y, x + used + 1 + before);
}

bool
prompt_value(const struct prompt *p, char *out, size_t outlen)
{
    size_t n = wcstombs(out, p->buf, outlen);

    return n != (size_t)-1 && n < outlen;
}
