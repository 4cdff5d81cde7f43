/*
 * hist.c — quantiles of power-of-two histograms (see hist.h).
 */
#include "util/hist.h"

uint64_t aj__hist_quantile(const uint64_t *hist, double q) {
    uint64_t total = 0;
    for (unsigned i = 0; i < AJ_HIST_BUCKETS; i++) {
        total += hist[i];
    }
    if (total == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)(q * (double)total);
    uint64_t seen = 0;
    for (unsigned i = 0; i < AJ_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want) {
            return i == 0 ? 0 : (uint64_t)1 << i;
        }
    }
    return (uint64_t)1 << (AJ_HIST_BUCKETS - 1);
}
