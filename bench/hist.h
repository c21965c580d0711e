/* hist.h - latency histogram for coupond-bench: HdrHistogram-style log2 buckets with linear
 * sub-buckets, so every recorded value is kept to better than 1% (2 significant digits). */
#ifndef COUPOND_BENCH_HIST_H
#define COUPOND_BENCH_HIST_H

#include <stdint.h>

/* Each power-of-two range [2^k, 2^(k+1)) above HIST_SUB_HALF is split into HIST_SUB_HALF linear
 * sub-buckets: 128 of them keep the bucket width under 1/128 of the value (< 0.8%, which is 2
 * significant digits). Below 2 * HIST_SUB_HALF every value has its own bucket. */
#define HIST_SUB_BITS 7
#define HIST_SUB_HALF (1u << HIST_SUB_BITS)
/* Largest value kept exactly in a bucket: 2^40 ns is about 18 minutes; larger values are
 * clamped into the top bucket (and still reported exactly by hist_max). */
#define HIST_MAX_BITS 40
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB_HALF + HIST_SUB_HALF)

/* A histogram of non-negative integer values (coupond-bench records nanoseconds). Zero it
 * with hist_init before use; it holds no pointers, so it may be copied. */
struct hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
};

/* Empties h. */
void hist_init(struct hist *h);

/* Records one value. */
void hist_record(struct hist *h, uint64_t v);

/* Adds every value recorded in src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile p (0 < p <= 100): the highest value equivalent to the bucket that
 * holds the p-th percentile, never more than hist_max. 0 when the histogram is empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* The largest and smallest values recorded, exactly; 0 when empty. */
uint64_t hist_max(const struct hist *h);
uint64_t hist_min(const struct hist *h);

#endif
