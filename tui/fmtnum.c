/* fmtnum.c - counts that fit their columns. */
#include "fmtnum.h"

#include <stdio.h>

#define UNIT_STEP 1000.0
/* A mantissa that rounds to 1000.0 at one decimal belongs to the next unit. */
#define MANTISSA_LIMIT 999.95

static const char units[] = "kMGTPE";

size_t
fmtnum_fit(char buf[FMTNUM_BUF], uint64_t v, size_t width)
{
    int n = snprintf(buf, FMTNUM_BUF, "%llu", (unsigned long long)v);
    double m = (double)v;

    if ((size_t)n <= width)
        return (size_t)n;
    for (size_t u = 0; u < sizeof units - 1; u++) {
        m /= UNIT_STEP;
        if (m >= MANTISSA_LIMIT)
            continue;
        n = snprintf(buf, FMTNUM_BUF, "%.1f%c", m, units[u]);
        if ((size_t)n <= width)
            return (size_t)n;
        n = snprintf(buf, FMTNUM_BUF, "%.0f%c", m, units[u]);
        if ((size_t)n <= width)
            return (size_t)n;
        break;
    }
    buf[0] = '\0';
    return 0;
}
