/*
 * hist.h — power-of-two histogram buckets (AJ_HIST_BUCKETS): bucket 0 counts 0, bucket i counts
 * [2^(i-1), 2^i), the last bucket everything larger; and log-linear latency buckets
 * (AJ_LAT_BUCKETS), HdrHistogram's layout with 32 sub-buckets per power of two, for percentiles
 * within 1.6%.
 */
#ifndef AJ_UTIL_HIST_H
#define AJ_UTIL_HIST_H

#include <stdint.h>

#include "aj.h"

static inline unsigned aj__hist_bucket(uint64_t v) {
    unsigned b = v == 0 ? 0 : 64u - (unsigned)__builtin_clzll(v);
    return b < AJ_HIST_BUCKETS ? b : AJ_HIST_BUCKETS - 1;
}

/* The value below which a fraction q of the counted values lie, as a bucket's upper bound. */
uint64_t aj__hist_quantile(const uint64_t *hist, double q);

/* Log-linear buckets (AJ_LAT_BUCKETS, see aj.h): the bucket of v, and a bucket's lowest value
 * and width. */
#define AJ__LAT_SUB_BITS 5 /* log2(AJ_LAT_SUB) */
static inline unsigned aj__lat_bucket(uint64_t v) {
    if (v < AJ_LAT_SUB) {
        return (unsigned)v;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 2^e <= v < 2^(e+1), e >= 5 */
    unsigned sub = (unsigned)(v >> (e - AJ__LAT_SUB_BITS)) & (AJ_LAT_SUB - 1);
    unsigned b = (e - AJ__LAT_SUB_BITS + 1) * AJ_LAT_SUB + sub;
    return b < AJ_LAT_BUCKETS ? b : AJ_LAT_BUCKETS - 1;
}
void aj__lat_bucket_range(unsigned b, uint64_t *low, uint64_t *width);

#endif
