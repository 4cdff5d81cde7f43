/*
 * hist.c — quantiles of power-of-two and log-linear histograms (see hist.h). Layer: util.
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

void aj__lat_bucket_range(unsigned b, uint64_t *low, uint64_t *width) {
    if (b < AJ_LAT_SUB) {
        *low = b;
        *width = 1;
        return;
    }
    unsigned e = b / AJ_LAT_SUB + AJ__LAT_SUB_BITS - 1; /* the power of two of the bucket */
    unsigned sub = b % AJ_LAT_SUB;
    *width = (uint64_t)1 << (e - AJ__LAT_SUB_BITS);
    *low = ((uint64_t)AJ_LAT_SUB + sub) * *width;
}

double aj_latency_quantile_ms(const uint64_t hist[AJ_LAT_BUCKETS], double q) {
    uint64_t total = 0;
    for (unsigned i = 0; i < AJ_LAT_BUCKETS; i++) {
        total += hist[i];
    }
    if (total == 0) {
        return 0;
    }
    /* The rank of the quantile, counted from 1, rounded up. */
    double exact = q * (double)total;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact || rank == 0) {
        rank++;
    }
    uint64_t seen = 0;
    unsigned b = AJ_LAT_BUCKETS - 1;
    for (unsigned i = 0; i < AJ_LAT_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) {
            b = i;
            break;
        }
    }
    uint64_t low, width;
    aj__lat_bucket_range(b, &low, &width);
    /* Exact buckets hold one value; the others are reported by their midpoint. */
    double us = width == 1 ? (double)low : (double)low + (double)(width - 1) / 2.0;
    return us / 1000.0;
}
