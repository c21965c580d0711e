/* fmtnum.h - a count in a fixed number of columns: all its digits when they fit, else
 * abbreviated with a unit (1.2M), never cut. Pure: no curses, no I/O. */
#ifndef COUPONCTL_FMTNUM_H
#define COUPONCTL_FMTNUM_H

#include <stddef.h>
#include <stdint.h>

#define FMTNUM_MIN_WIDTH 6  /* "999.9k": any count fits this many columns */
#define FMTNUM_BUF       24 /* 20 digits of UINT64_MAX and a NUL, with room */

/* Writes v into buf (FMTNUM_BUF bytes) in at most `width` characters: its digits when they
 * fit; else the value in the smallest unit of k, M, G, T, P, E (powers of 1000) that keeps
 * it under 1000, with one decimal ("1.0M", "18.4E") or none when only that fits. Returns
 * the length, or 0 with buf empty when nothing fits (width below FMTNUM_MIN_WIDTH and too
 * many digits). */
size_t fmtnum_fit(char buf[FMTNUM_BUF], uint64_t v, size_t width);

#endif
