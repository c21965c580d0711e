/* table.h - the layout of the dashboard's counters table (one column per counter of
 * stats.h, one row per type and a total) for the width it gets: which columns are shown, how
 * wide, under which label. Every number shown fits its column whole. Pure: no curses. */
#ifndef COUPONCTL_TABLE_H
#define COUPONCTL_TABLE_H

#include <stdbool.h>

#include "stats.h"

#define TABLE_GAP        2  /* blanks at least between two columns */
#define TABLE_WIDE_W     12 /* a column when all of them fit so: 11 digits and a gap, steady */
#define TABLE_DIGITS_MAX 11 /* digits a column widens for; a count with more is abbreviated */

struct table_layout {
    bool shown[STATS_NFAMILIES];
    int width[STATS_NFAMILIES]; /* columns of a shown column, its gap before the number included */
    const char *label[STATS_NFAMILIES]; /* its header */
    int used;                           /* the widths of the shown columns added up */
};

/* Lays the table out in `room` columns (what is left beside the type column), for numbers of
 * widest[f] digits in column f (the widest of its rows; 1 for the "-" of no sample yet). It
 * shows as many columns as fit, giving them up in this order: purged, unredeemed, held,
 * redeemed, assigned, created; available is given up last. The columns shown get the most
 * room that fits them all, trying in turn:
 *   1. TABLE_WIDE_W each (a table that does not shift when a number grows);
 *   2. as wide as its label and its numbers need, and TABLE_GAP;
 *   3. the same with the short labels: "avail" for available, "undone" for unredeemed.
 * A column's numbers need at most TABLE_DIGITS_MAX digits; wider counts are abbreviated
 * (fmtnum.h), so fmtnum_fit(width - TABLE_GAP) always gives a whole number. */
void table_layout(int room, const int widest[STATS_NFAMILIES], struct table_layout *t);

#endif
