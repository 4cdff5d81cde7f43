/*
 * test_hist.c — the log-linear latency histogram (src/util/hist.h, aj_latency_quantile_ms):
 * every value falls in a bucket whose range holds it, buckets tile the range without gaps, a
 * bucket's midpoint is within 1.6% of any value in it, and quantiles of known distributions come
 * out as real values in milliseconds, not as power-of-two bounds.
 */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/hist.h"

static void test_buckets_tile_the_range(void **state) {
    (void)state;
    uint64_t next = 0;
    for (unsigned b = 0; b < AJ_LAT_BUCKETS; b++) {
        uint64_t low, width;
        aj__lat_bucket_range(b, &low, &width);
        assert_int_equal(low, next); /* no gap, no overlap */
        assert_int_equal(aj__lat_bucket(low), b);
        assert_int_equal(aj__lat_bucket(low + width - 1), b);
        double mid = (double)low + (double)(width - 1) / 2.0;
        if (low > 0) {
            assert_true(fabs(mid - (double)low) / (double)low <= 1.0 / 64 + 1e-9);
            assert_true(fabs(mid - (double)(low + width - 1)) / (double)low <= 1.0 / 64 + 1e-9);
        }
        next = low + width;
    }
    assert_int_equal(next, (uint64_t)1 << 36);
    assert_int_equal(aj__lat_bucket(UINT64_MAX), AJ_LAT_BUCKETS - 1);
}

static void test_quantiles_in_ms(void **state) {
    (void)state;
    uint64_t *h = calloc(AJ_LAT_BUCKETS, sizeof *h);
    assert_non_null(h);
    assert_true(aj_latency_quantile_ms(h, 0.5) == 0.0);
    /* 1..100000 us, once each: p50 is 50 ms, p99 99 ms. */
    for (uint64_t v = 1; v <= 100000; v++) {
        h[aj__lat_bucket(v)]++;
    }
    double p50 = aj_latency_quantile_ms(h, 0.50), p99 = aj_latency_quantile_ms(h, 0.99);
    assert_true(fabs(p50 - 50.0) / 50.0 < 0.02);
    assert_true(fabs(p99 - 99.0) / 99.0 < 0.02);
    /* One value of 70 ms: a power-of-two histogram would say "<= 131 ms" (2^17 us). */
    memset(h, 0, AJ_LAT_BUCKETS * sizeof *h);
    h[aj__lat_bucket(70000)] = 3;
    assert_true(fabs(aj_latency_quantile_ms(h, 0.5) - 70.0) / 70.0 < 0.016);
    /* Small values are exact. */
    memset(h, 0, AJ_LAT_BUCKETS * sizeof *h);
    h[aj__lat_bucket(7)] = 1;
    assert_true(aj_latency_quantile_ms(h, 1.0) == 0.007);
    free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_tile_the_range),
        cmocka_unit_test(test_quantiles_in_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
