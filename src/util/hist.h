/*
 * hist.h — power-of-two histogram buckets (AJ_HIST_BUCKETS): bucket 0 counts 0, bucket i counts
 * [2^(i-1), 2^i), the last bucket everything larger.
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

#endif
