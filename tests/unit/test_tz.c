/*
 * test_tz.c — time zones from the system's TZif files (src/core/tz.c): daylight-saving changes
 * in America/New_York and Europe/Berlin checked against known UTC instants (the spring gap and
 * the autumn overlap, inside the file's table and far beyond it where the footer rule decides),
 * POSIX rule parsing, bad names and damaged files, and a sweep that compares every offset with
 * the C library's own reading of the same files (a reference implementation the library never
 * uses: it calls setenv("TZ"), which only a single-threaded test may do).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/tz.h"
#include "runtime/tz_cache.h"
#include "util/civil.h"

int main(void);

/* Instants compared with the C library per zone in the sweep. */
#define SWEEP_SAMPLES 4000

static int64_t utc(const char *rfc3339) {
    int64_t ms = 0;
    if (aj_time_parse(rfc3339, &ms) != 0) {
        fail_msg("bad time in test: %s", rfc3339);
    }
    return ms / 1000;
}

/* Local wall-clock seconds for a civil time. */
static int64_t local(int y, int mo, int d, int h, int mi, int s) {
    return aj__days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

static tz_zone *load(const char *name) {
    tz_zone *z = NULL;
    int rc = tz_load(name, NULL, &z);
    if (rc != 0) {
        fail_msg("cannot load %s: %s", name, aj_errmsg());
    }
    return z;
}

static void test_new_york(void **state) {
    (void)state;
    tz_zone *z = load("America/New_York");
    /* 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00Z. */
    assert_int_equal(tz_offset_at(z, utc("2026-03-08T06:59:59Z")), -5 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-03-08T07:00:00Z")), -4 * 3600);
    assert_int_equal(tz_next_change(z, utc("2026-01-01T00:00:00Z")), utc("2026-03-08T07:00:00Z"));
    /* 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00Z. */
    assert_int_equal(tz_offset_at(z, utc("2026-11-01T05:59:59Z")), -4 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-11-01T06:00:00Z")), -5 * 3600);
    assert_int_equal(tz_next_change(z, utc("2026-03-08T07:00:00Z")), utc("2026-11-01T06:00:00Z"));
    /* The gap: 02:00..02:59 on 2026-03-08 do not exist; they map to the change, 07:00Z. */
    assert_int_equal(tz_from_local(z, local(2026, 3, 8, 2, 0, 0)), utc("2026-03-08T07:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 3, 8, 2, 30, 0)), utc("2026-03-08T07:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 3, 8, 2, 59, 59)), utc("2026-03-08T07:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 3, 8, 1, 59, 59)), utc("2026-03-08T06:59:59Z"));
    assert_int_equal(tz_from_local(z, local(2026, 3, 8, 3, 0, 0)), utc("2026-03-08T07:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 3, 8, 3, 0, 1)), utc("2026-03-08T07:00:01Z"));
    /* The overlap: 01:00..01:59 on 2026-11-01 happen twice; the first is EDT. */
    assert_int_equal(tz_from_local(z, local(2026, 11, 1, 1, 30, 0)), utc("2026-11-01T05:30:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 11, 1, 0, 59, 59)), utc("2026-11-01T04:59:59Z"));
    assert_int_equal(tz_from_local(z, local(2026, 11, 1, 2, 0, 0)), utc("2026-11-01T07:00:00Z"));
    /* Instants in the repeated hour read back as local times. */
    assert_int_equal(tz_to_local(z, utc("2026-11-01T05:30:00Z")), local(2026, 11, 1, 1, 30, 0));
    assert_int_equal(tz_to_local(z, utc("2026-11-01T06:30:00Z")), local(2026, 11, 1, 1, 30, 0));
    /* Long after the table: the footer rule (M3.2.0,M11.1.0). */
    assert_int_equal(tz_offset_at(z, utc("2100-03-14T06:59:59Z")), -5 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2100-03-14T07:00:00Z")), -4 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2100-11-07T05:59:59Z")), -4 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2100-11-07T06:00:00Z")), -5 * 3600);
    assert_int_equal(tz_next_change(z, utc("2100-01-01T00:00:00Z")), utc("2100-03-14T07:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2100, 3, 14, 2, 30, 0)), utc("2100-03-14T07:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2100, 11, 7, 1, 30, 0)), utc("2100-11-07T05:30:00Z"));
    /* Before DST existed (1883 railway time and earlier: LMT -4:56:02). */
    assert_int_equal(tz_offset_at(z, utc("1800-01-01T00:00:00Z")), -(4 * 3600 + 56 * 60 + 2));
    tz_free(z);
}

static void test_berlin(void **state) {
    (void)state;
    tz_zone *z = load("Europe/Berlin");
    /* 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00Z. */
    assert_int_equal(tz_offset_at(z, utc("2026-03-29T00:59:59Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-03-29T01:00:00Z")), 7200);
    /* 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00Z. */
    assert_int_equal(tz_offset_at(z, utc("2026-10-25T00:59:59Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2026-10-25T01:00:00Z")), 3600);
    assert_int_equal(tz_from_local(z, local(2026, 3, 29, 2, 30, 0)), utc("2026-03-29T01:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 10, 25, 2, 30, 0)), utc("2026-10-25T00:30:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 10, 25, 3, 0, 0)), utc("2026-10-25T02:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2026, 7, 1, 12, 0, 0)), utc("2026-07-01T10:00:00Z"));
    /* Footer rule M3.5.0,M10.5.0/3 in 2100. */
    assert_int_equal(tz_offset_at(z, utc("2100-03-28T00:59:59Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2100-03-28T01:00:00Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2100-10-31T00:59:59Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2100-10-31T01:00:00Z")), 3600);
    assert_int_equal(tz_from_local(z, local(2100, 3, 28, 2, 15, 0)), utc("2100-03-28T01:00:00Z"));
    assert_int_equal(tz_from_local(z, local(2100, 10, 31, 2, 15, 0)), utc("2100-10-31T00:15:00Z"));
    tz_free(z);
}

static void test_utc_and_names(void **state) {
    (void)state;
    tz_zone *z = load("UTC");
    assert_int_equal(tz_offset_at(z, utc("2026-06-01T00:00:00Z")), 0);
    assert_int_equal(tz_next_change(z, 0), INT64_MAX);
    assert_int_equal(tz_from_local(z, 12345), 12345);
    tz_free(z);
    tz_zone *out = NULL;
    assert_int_equal(tz_load("Mars/Olympus_Mons", NULL, &out), AJ_ENOTFOUND);
    assert_non_null(strstr(aj_errmsg(), "unknown time zone 'Mars/Olympus_Mons'"));
    assert_int_equal(tz_load("../etc/passwd", NULL, &out), AJ_EINVAL);
    assert_int_equal(tz_load("/etc/passwd", NULL, &out), AJ_EINVAL);
    assert_int_equal(tz_load("Europe/Berlin ", NULL, &out), AJ_EINVAL);
    assert_int_equal(tz_load("", NULL, &out), AJ_EINVAL);
    assert_int_equal(tz_load("America", NULL, &out), AJ_ENOTFOUND); /* a directory */
    assert_null(out);
}

static void test_posix_rules(void **state) {
    (void)state;
    tz_posix p;
    assert_int_equal(tz_posix_parse("EST5EDT,M3.2.0,M11.1.0", &p), 0);
    assert_int_equal(p.std_off, -5 * 3600);
    assert_int_equal(p.dst_off, -4 * 3600);
    assert_int_equal(p.start.month, 3);
    assert_int_equal(p.start.week, 2);
    assert_int_equal(p.end.time, 7200);
    assert_int_equal(tz_posix_parse("<+0330>-3:30", &p), 0);
    assert_int_equal(p.std_off, 3 * 3600 + 1800);
    assert_false(p.has_dst);
    assert_int_equal(tz_posix_parse("IST-1GMT0,M10.5.0,M3.5.0/1", &p), 0); /* Dublin */
    assert_int_equal(p.std_off, 3600);
    assert_int_equal(p.dst_off, 0);
    assert_int_equal(tz_posix_parse("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", &p), 0);
    assert_int_equal(p.start.time, -7200);
    assert_int_equal(tz_posix_parse("EST5EDT,0/0,J365/25", &p), 0);
    assert_int_equal(p.end.time, 25 * 3600);
    assert_int_equal(tz_posix_parse("EST5EDT", &p), 0); /* default US rule */
    assert_int_equal(p.start.month, 3);
    const char *bad[] = {"",
                         "E5",
                         "EST",
                         "EST5EDT,M13.1.0,M11.1.0",
                         "EST5EDT,M3.6.0,M11.1.0",
                         "EST5EDT,M3.2.7,M11.1.0",
                         "EST5EDT,J0,J365",
                         "EST5EDT,366,J1",
                         "EST5EDT,M3.2.0",
                         "EST99",
                         "EST5EDT,M3.2.0/200,M11.1.0",
                         "<AB>5",
                         "EST5 ",
                         NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        if (tz_posix_parse(bad[i], &p) != AJ_EINVAL) {
            fail_msg("'%s' was accepted", bad[i]);
        }
    }
    /* All-year daylight time: no change ever. */
    tz_zone z;
    memset(&z, 0, sizeof z);
    z.has_rule = 1;
    assert_int_equal(tz_posix_parse("EST5EDT,0/0,J365/25", &z.rule), 0);
    assert_int_equal(tz_offset_at(&z, utc("2030-06-01T00:00:00Z")), -4 * 3600);
    assert_int_equal(tz_offset_at(&z, utc("2030-01-01T04:59:00Z")), -4 * 3600);
    assert_int_equal(tz_next_change(&z, utc("2030-06-01T00:00:00Z")), INT64_MAX);
}

static void test_damaged_files(void **state) {
    (void)state;
    FILE *f = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    assert_non_null(f);
    static uint8_t buf[TZ_FILE_MAX];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    tz_zone *z = NULL;
    assert_int_equal(tz_parse("x", buf, n, &z), 0);
    tz_free(z);
    /* Every truncation fails cleanly. */
    for (size_t cut = 0; cut < n; cut += 7) {
        z = NULL;
        int rc = tz_parse("x", buf, cut, &z);
        if (rc == 0) {
            fail_msg("a file cut at %zu bytes of %zu was accepted", cut, n);
        }
        assert_null(z);
    }
    /* A version 1 file is refused. */
    buf[4] = 0;
    assert_int_equal(tz_parse("x", buf, n, &z), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "version 1"));
    assert_int_equal(tz_parse("x", (const uint8_t *)"not a zone", 10, &z), AJ_EINVAL);
}

/* The C library's offset at t in zone `name` (the reference). */
static long libc_offset(int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    assert_non_null(localtime_r(&tt, &tm));
    return tm.tm_gmtoff;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_sweep_against_libc(void **state) {
    (void)state;
    const char *zones[] = {
        "America/New_York",  "Europe/Berlin",    "Australia/Sydney",  "Asia/Kolkata",
        "America/Sao_Paulo", "Europe/Dublin",    "Africa/Casablanca", "Pacific/Chatham",
        "America/St_Johns",  "Antarctica/Troll", "Asia/Tehran",       "Pacific/Apia",
        "Europe/London",     "America/Santiago", "Asia/Gaza",         NULL};
    const int64_t lo = utc("1900-01-01T00:00:00Z"), hi = utc("2300-01-01T00:00:00Z");
    uint64_t seed = 7;
    for (int zi = 0; zones[zi] != NULL; zi++) {
        char env[TZ_NAME_MAX + 2];
        snprintf(env, sizeof env, ":%s", zones[zi]);
        setenv("TZ", env, 1);
        tzset();
        tz_zone *z = load(zones[zi]);
        int64_t t = lo;
        for (int i = 0; i < SWEEP_SAMPLES; i++) {
            int64_t probe = lo + (int64_t)(rng_next(&seed) % (uint64_t)(hi - lo));
            /* Half the probes sit next to a change, where mistakes hide. */
            if (i % 2 == 1) {
                int64_t ch = tz_next_change(z, t);
                if (ch != INT64_MAX && ch < hi) {
                    probe = ch - 1 + (int64_t)(rng_next(&seed) % 3);
                    t = ch;
                } else {
                    t = lo;
                }
            }
            long want = libc_offset(probe);
            int32_t got = tz_offset_at(z, probe);
            if (want != got) {
                char when[64];
                aj_time_format(probe * 1000, when, sizeof when);
                fail_msg("%s at %s: offset %d, libc says %ld", zones[zi], when, got, want);
            }
            /* Round trip: the first instant showing this instant's local time is never later. */
            int64_t back = tz_from_local(z, tz_to_local(z, probe));
            assert_true(back <= probe);
            assert_int_equal(tz_to_local(z, back), tz_to_local(z, probe));
        }
        tz_free(z);
    }
    unsetenv("TZ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_york),      cmocka_unit_test(test_berlin),
        cmocka_unit_test(test_utc_and_names), cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_damaged_files), cmocka_unit_test(test_sweep_against_libc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
