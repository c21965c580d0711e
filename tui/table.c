/* table.c - which counters fit the dashboard's table, and how wide. */
#include "table.h"

#include <string.h>

enum level { LEVEL_WIDE = 0, LEVEL_FULL, LEVEL_SHORT, NLEVELS };

/* The columns in the order they are kept on a narrow terminal: purged is given up first. */
static const enum stats_family keep_order[STATS_NFAMILIES] = {
    STATS_AVAILABLE, STATS_CREATED,    STATS_ASSIGNED, STATS_REDEEMED,
    STATS_HELD,      STATS_UNREDEEMED, STATS_PURGED,
};

/* Labels when room is short; NULL: the full name (stats_family_names) is short already. */
static const char *const short_names[STATS_NFAMILIES] = {
    [STATS_AVAILABLE] = "avail",
    [STATS_UNREDEEMED] = "undone",
};

static const char *
label_at(enum stats_family f, enum level lv)
{
    if (lv == LEVEL_SHORT && short_names[f] != NULL)
        return short_names[f];
    return stats_family_names[f];
}

static int
width_at(enum stats_family f, enum level lv, const int widest[STATS_NFAMILIES])
{
    int digits = widest[f] < TABLE_DIGITS_MAX ? widest[f] : TABLE_DIGITS_MAX;
    int label = (int)strlen(label_at(f, lv));
    int need = (digits > label ? digits : label) + TABLE_GAP;

    if (lv == LEVEL_WIDE)
        return need > TABLE_WIDE_W ? need : TABLE_WIDE_W;
    return need;
}

/* The room the first k columns of keep_order take at level lv. */
static int
room_of(int k, enum level lv, const int widest[STATS_NFAMILIES])
{
    int sum = 0;

    for (int i = 0; i < k; i++)
        sum += width_at(keep_order[i], lv, widest);
    return sum;
}

void
table_layout(int room, const int widest[STATS_NFAMILIES], struct table_layout *t)
{
    memset(t, 0, sizeof *t);
    for (int k = STATS_NFAMILIES; k > 0; k--) {
        for (int lv = LEVEL_WIDE; lv < NLEVELS; lv++) {
            if (room_of(k, (enum level)lv, widest) > room)
                continue;
            for (int i = 0; i < k; i++) {
                enum stats_family f = keep_order[i];
                t->shown[f] = true;
                t->width[f] = width_at(f, (enum level)lv, widest);
                t->label[f] = label_at(f, (enum level)lv);
            }
            t->used = room_of(k, (enum level)lv, widest);
            return;
        }
    }
}
