/* hist.c - latency histogram for coupond-bench (see hist.h for the bucket layout). */
#include "hist.h"

#include <string.h>

void
hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
}

static unsigned
msb(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

/* Values below 2 * HIST_SUB_HALF map to themselves; above, the shift drops the bits below the
 * sub-bucket resolution and each shift step adds one range of HIST_SUB_HALF buckets. */
static unsigned
bucket_of(uint64_t v)
{
    const uint64_t top = (1ull << (HIST_MAX_BITS + 1)) - 1;
    if (v > top)
        v = top;
    unsigned shift = v < 2 * HIST_SUB_HALF ? 0 : msb(v) - HIST_SUB_BITS;
    return shift * HIST_SUB_HALF + (unsigned)(v >> shift);
}

/* The highest value that lands in bucket i. */
static uint64_t
bucket_high(unsigned i)
{
    if (i < 2 * HIST_SUB_HALF)
        return i;
    unsigned shift = i / HIST_SUB_HALF - 1;
    uint64_t sub = i - shift * HIST_SUB_HALF;
    return ((sub + 1) << shift) - 1;
}

void
hist_record(struct hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->buckets[bucket_of(v)]++;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}

uint64_t
hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p > 100.0)
        p = 100.0;
    /* The rank of the p-th percentile: the smallest count whose share is >= p, at least 1. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank < 1)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

uint64_t
hist_max(const struct hist *h)
{
    return h->max;
}

uint64_t
hist_min(const struct hist *h)
{
    return h->min;
}
