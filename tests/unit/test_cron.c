/*
 * test_cron.c — cron expressions (src/core/cron.c) against known instants: every field form
 * (lists, ranges, steps, names, L, LW, nW, nL, n#k), the Vixie day-of-month/day-of-week rule,
 * 5-, 6- and 7-field forms, macros and @every, daylight-saving gaps and overlaps in New York and
 * Berlin, expressions that never fire, and error messages that name the field at fault. A
 * brute-force matcher cross-checks the search on random expressions in UTC.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cron.h"
#include "runtime/tz_cache.h"
#include "util/civil.h"

int main(void);

/* Fire times checked per random expression, and random expressions checked. */
#define BRUTE_FIRES 6
#define BRUTE_EXPRS 1000
/* The brute-force matcher gives up after this many days (about 3 years). */
#define BRUTE_DAYS_MAX (3 * 366)

static int64_t ms_of(const char *rfc3339) {
    int64_t ms = 0;
    if (aj_time_parse(rfc3339, &ms) != 0) {
        fail_msg("bad time in test: %s", rfc3339);
    }
    return ms;
}

static tz_zone *zone(const char *name) {
    tz_zone *z = NULL;
    if (tz_load(name, NULL, &z) != 0) {
        fail_msg("cannot load %s: %s", name, aj_errmsg());
    }
    return z;
}

/* Checks that the fire times of `expr` in zone `tz` after `from` are `want` (NULL-terminated),
 * each computed from the previous one. */
static void fires_in(const char *tz, const char *expr, const char *from, const char *const *want) {
    cron_expr c;
    if (cron_parse(expr, &c) != 0) {
        fail_msg("'%s' did not parse: %s", expr, aj_errmsg());
    }
    tz_zone *z = zone(tz);
    int64_t t = ms_of(from);
    for (int i = 0; want[i] != NULL; i++) {
        int64_t next = 0;
        int rc = cron_next(&c, z, ms_of(from), t, &next);
        if (strcmp(want[i], "none") == 0) {
            if (rc != AJ_ENOTFOUND) {
                char got[64];
                aj_time_format(next, got, sizeof got);
                fail_msg("'%s' in %s: fire %d: expected none, got %s", expr, tz, i, got);
            }
            break;
        }
        if (rc != 0) {
            fail_msg("'%s' in %s: fire %d: %s", expr, tz, i, aj_errmsg());
        }
        char got[64];
        aj_time_format(next, got, sizeof got);
        if (strcmp(got, want[i]) != 0) {
            fail_msg("'%s' in %s after %s: fire %d is %s, expected %s", expr, tz, from, i, got,
                     want[i]);
        }
        t = next;
    }
    tz_free(z);
}

#define FIRES(tz, expr, from, ...)                                                                 \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__, NULL};                                           \
        fires_in(tz, expr, from, want_);                                                           \
    } while (0)

#define JAN1 "2026-01-01T00:00:00Z" /* a Thursday */

static void test_basic_fields(void **state) {
    (void)state;
    FIRES("UTC", "* * * * *", JAN1, "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z");
    FIRES("UTC", "0 * * * *", JAN1, "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z");
    FIRES("UTC", "*/15 * * * *", JAN1, "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z",
          "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z");
    FIRES("UTC", "5/15 * * * *", JAN1, "2026-01-01T00:05:00Z", "2026-01-01T00:20:00Z");
    FIRES("UTC", "10-20/5 3 * * *", JAN1, "2026-01-01T03:10:00Z", "2026-01-01T03:15:00Z",
          "2026-01-01T03:20:00Z", "2026-01-02T03:10:00Z");
    FIRES("UTC", "0 9 * * MON-FRI", JAN1, "2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z",
          "2026-01-05T09:00:00Z");
    FIRES("UTC", "0 0 * * 1-5/2", JAN1, "2026-01-02T00:00:00Z", "2026-01-05T00:00:00Z",
          "2026-01-07T00:00:00Z");
    FIRES("UTC", "0 0 1 * *", JAN1, "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z");
    FIRES("UTC", "0 0 * * 7", JAN1, "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z");
    FIRES("UTC", "0 0 * * 0", JAN1, "2026-01-04T00:00:00Z");
    FIRES("UTC", "0 0 * jan,MAR sun", JAN1, "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z",
          "2026-01-18T00:00:00Z", "2026-01-25T00:00:00Z", "2026-03-01T00:00:00Z");
    FIRES("UTC", "0 0 * * 5-7", JAN1, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z",
          "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z");
    FIRES("UTC", "0 12 1,15 6-8 *", JAN1, "2026-06-01T12:00:00Z", "2026-06-15T12:00:00Z",
          "2026-07-01T12:00:00Z");
    FIRES("UTC", "  30\t4  * * *  ", JAN1, "2026-01-01T04:30:00Z");
    FIRES("UTC", "0 0 29 2 *", JAN1, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z");
    FIRES("UTC", "59 23 31 12 *", JAN1, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z");
    /* A fractional start: strictly after, whole seconds. */
    FIRES("UTC", "* * * * *", "2026-01-01T00:00:59.999Z", "2026-01-01T00:01:00Z");
    FIRES("UTC", "* * * * *", "2026-01-01T00:01:00.001Z", "2026-01-01T00:02:00Z");
}

static void test_specials(void **state) {
    (void)state;
    FIRES("UTC", "0 0 L * *", JAN1, "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z",
          "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z");
    FIRES("UTC", "0 0 L 2 *", "2027-06-01T00:00:00Z", "2028-02-29T00:00:00Z");
    FIRES("UTC", "0 0 LW * *", JAN1, "2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z",
          "2026-03-31T00:00:00Z");
    FIRES("UTC", "0 0 15W * *", JAN1, "2026-01-15T00:00:00Z", "2026-02-16T00:00:00Z",
          "2026-03-16T00:00:00Z");
    /* 1W never leaves the month: Saturday 2026-08-01 gives Monday the 3rd. */
    FIRES("UTC", "0 0 1W * *", "2026-07-15T00:00:00Z", "2026-08-03T00:00:00Z",
          "2026-09-01T00:00:00Z");
    /* 31W in a month whose 31st is a Sunday gives Friday the 29th (2026-05-31 is a Sunday). */
    FIRES("UTC", "0 0 31W * *", "2026-05-01T00:00:00Z", "2026-05-29T00:00:00Z",
          "2026-07-31T00:00:00Z");
    FIRES("UTC", "0 0 * * 5L", JAN1, "2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z",
          "2026-03-27T00:00:00Z");
    FIRES("UTC", "0 0 * * FRIL", JAN1, "2026-01-30T00:00:00Z");
    FIRES("UTC", "0 0 * * FRI#2", JAN1, "2026-01-09T00:00:00Z", "2026-02-13T00:00:00Z",
          "2026-03-13T00:00:00Z");
    FIRES("UTC", "0 0 * * 1#1,1#3", JAN1, "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z",
          "2026-02-02T00:00:00Z");
    /* The fifth Monday exists only in some months. */
    FIRES("UTC", "0 0 * * MON#5", JAN1, "2026-03-30T00:00:00Z", "2026-06-29T00:00:00Z");
    FIRES("UTC", "0 0 ? * MON", JAN1, "2026-01-05T00:00:00Z");
}

static void test_vixie_day_rule(void **state) {
    (void)state;
    /* Both restricted: the 13th or any Friday. */
    FIRES("UTC", "0 0 13 * FRI", JAN1, "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z",
          "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z");
    /* A field starting with '*' counts as unrestricted: odd days that are Fridays. */
    FIRES("UTC", "0 0 */2 * FRI", JAN1, "2026-01-09T00:00:00Z", "2026-01-23T00:00:00Z",
          "2026-02-13T00:00:00Z");
    /* Only day of month restricted. */
    FIRES("UTC", "0 0 13 * *", JAN1, "2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z");
    /* The last day or any Monday. */
    FIRES("UTC", "0 0 L * MON", "2026-01-27T00:00:00Z", "2026-01-31T00:00:00Z",
          "2026-02-02T00:00:00Z");
}

static void test_seconds_and_years(void **state) {
    (void)state;
    FIRES("UTC", "*/10 * * * * *", JAN1, "2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z");
    FIRES("UTC", "30 0 12 * * *", JAN1, "2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z");
    FIRES("UTC", "0 0 0 1 1 * 2030", JAN1, "2030-01-01T00:00:00Z", "none");
    FIRES("UTC", "0 0 0 1 1 * 2027-2029/2", JAN1, "2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z",
          "none");
    FIRES("UTC", "0 0 0 29 2 * 2100", JAN1, "none"); /* 2100 is not a leap year */
    FIRES("UTC", "0 0 30 2 *", JAN1, "none");
    FIRES("UTC", "0 0 31 4,6,9,11 *", JAN1, "none");
    FIRES("UTC", "0 0 0 1 1 * 2199", "2199-06-01T00:00:00Z", "none");
}

static void test_macros(void **state) {
    (void)state;
    FIRES("UTC", "@hourly", JAN1, "2026-01-01T01:00:00Z");
    FIRES("UTC", "@daily", JAN1, "2026-01-02T00:00:00Z");
    FIRES("UTC", "@midnight", JAN1, "2026-01-02T00:00:00Z");
    FIRES("UTC", "@weekly", JAN1, "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z");
    FIRES("UTC", "@monthly", JAN1, "2026-02-01T00:00:00Z");
    FIRES("UTC", "@yearly", JAN1, "2027-01-01T00:00:00Z");
    FIRES("UTC", "@annually", JAN1, "2027-01-01T00:00:00Z");
    /* @every is anchored at the start given (the schedule's creation). */
    FIRES("UTC", "@every 90m", JAN1, "2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z");
    FIRES("America/New_York", "@every 250ms", JAN1, "2026-01-01T00:00:00.250Z",
          "2026-01-01T00:00:00.500Z");
    cron_expr c;
    assert_int_equal(cron_parse("@every 1h", &c), 0);
    tz_zone *z = zone("UTC");
    int64_t next = 0;
    int64_t anchor = ms_of(JAN1);
    assert_int_equal(cron_next(&c, z, anchor, ms_of("2026-01-01T05:30:00Z"), &next), 0);
    assert_int_equal(next, ms_of("2026-01-01T06:00:00Z"));
    assert_int_equal(cron_next(&c, z, anchor, ms_of("2026-01-01T06:00:00Z"), &next), 0);
    assert_int_equal(next, ms_of("2026-01-01T07:00:00Z"));
    /* Before the anchor the grid continues backwards (backfills use it). */
    assert_int_equal(cron_next(&c, z, anchor, ms_of("2025-01-01T00:30:00Z"), &next), 0);
    assert_int_equal(next, ms_of("2025-01-01T01:00:00Z"));
    tz_free(z);
}

static void test_dst_new_york(void **state) {
    (void)state;
    const char *ny = "America/New_York";
    /* Spring forward on 2026-03-08: 02:30 does not exist and fires once at 03:00 EDT. */
    FIRES(ny, "30 2 * * *", "2026-03-07T00:00:00Z", "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z",
          "2026-03-09T06:30:00Z");
    /* Every local time of the gap fires once, together, at its end. */
    FIRES(ny, "*/20 * * * *", "2026-03-08T06:30:00Z", "2026-03-08T06:40:00Z",
          "2026-03-08T07:00:00Z", "2026-03-08T07:20:00Z");
    /* Fall back on 2026-11-01: 01:30 happens twice; it fires at the first (EDT) only. */
    FIRES(ny, "30 1 * * *", "2026-10-31T00:00:00Z", "2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z",
          "2026-11-02T06:30:00Z");
    FIRES(ny, "*/20 * * * *", "2026-11-01T05:00:00Z", "2026-11-01T05:20:00Z",
          "2026-11-01T05:40:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:20:00Z");
    /* Starting inside the repeated hour (01:10 EST) skips its remaining local times. */
    FIRES(ny, "*/20 * * * *", "2026-11-01T06:10:00Z", "2026-11-01T07:00:00Z");
    /* A time outside the transitions is unaffected: 09:00 local is 14:00Z then 13:00Z. */
    FIRES(ny, "0 9 * * *", "2026-03-07T00:00:00Z", "2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z");
    /* Far beyond the file's table, the footer rule: 2100-03-14 and 2100-11-07. */
    FIRES(ny, "30 2 14 3 *", "2100-01-01T00:00:00Z", "2100-03-14T07:00:00Z");
    FIRES(ny, "30 1 7 11 *", "2100-01-01T00:00:00Z", "2100-11-07T05:30:00Z");
    /* Seconds in the gap. */
    FIRES(ny, "15 30 2 8 3 * 2026", "2026-01-01T00:00:00Z", "2026-03-08T07:00:00Z", "none");
}

static void test_dst_berlin(void **state) {
    (void)state;
    const char *be = "Europe/Berlin";
    /* 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z. */
    FIRES(be, "0 2 * * *", "2026-03-28T00:00:00Z", "2026-03-28T01:00:00Z", "2026-03-29T01:00:00Z",
          "2026-03-30T00:00:00Z");
    FIRES(be, "30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z");
    /* 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z; 02:30 fires at 00:30Z only. */
    FIRES(be, "0 30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z",
          "2026-10-26T01:30:00Z");
    /* Hourly across the overlap: the repeated 02:00 (01:00Z) does not fire again. */
    FIRES(be, "0 * * * *", "2026-10-24T23:30:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z");
    FIRES(be, "0 12 * * *", "2026-03-28T00:00:00Z", "2026-03-28T11:00:00Z", "2026-03-29T10:00:00Z");
    FIRES(be, "0 2 * * *", "2100-03-27T12:00:00Z", "2100-03-28T01:00:00Z", "2100-03-29T00:00:00Z");
}

static void bad(const char *expr, const char *msg_part) {
    cron_expr c;
    memset(&c, 0x5a, sizeof c);
    cron_expr before = c;
    int rc = cron_parse(expr, &c);
    if (rc != AJ_EINVAL) {
        fail_msg("'%s' was accepted", expr);
    }
    assert_memory_equal(&c, &before, sizeof c);
    if (strstr(aj_errmsg(), msg_part) == NULL) {
        fail_msg("'%s': message \"%s\" lacks \"%s\"", expr, aj_errmsg(), msg_part);
    }
    assert_null(strchr(aj_errmsg(), '\n'));
}

static void test_errors(void **state) {
    (void)state;
    bad("61 * * * *", "minute field: 61 is out of range (0-59)");
    bad("* 24 * * *", "hour field: 24 is out of range (0-23)");
    bad("* * 0 * *", "day-of-month field: 0 is out of range (1-31)");
    bad("* * 32 * *", "day-of-month field: 32 is out of range");
    bad("* * * 13 *", "month field: 13 is out of range (1-12)");
    bad("* * * * 8", "day-of-week field: 8 is out of range (0-7)");
    bad("60 * * * * *", "second field: 60 is out of range");
    bad("0 0 0 1 1 * 1969", "year field: 1969 is out of range (1970-2199)");
    bad("* * * *", "4 fields; expected 5");
    bad("", "0 fields");
    bad("* * * * * * * *", "more than 7 fields");
    bad("*/0 * * * *", "minute field: step 0 is out of range");
    bad("*/61 * * * *", "step 61 is out of range (1-60)");
    /* The whole number is quoted, not its first digits (it once read "step 42949"). */
    bad("0-59/4294967297 * * * *", "minute field: step 4294967297 is out of range (1-60)");
    bad("*/000000000000000000000000001 * * * *", "step 00000000000000000000... is out of range");
    bad("5-1 * * * *", "range 5-1 is backwards");
    bad("1,,2 * * * *", "empty list item");
    bad("1, * * * *", "empty list item");
    bad("* * * FOO *", "'FOO' is not a month name");
    bad("* * * * FRIDAY", "unexpected 'D'");
    bad("* * * * MON#6", "expected DAY#N with N from 1 to 5");
    bad("* * * * MON#", "expected DAY#N");
    bad("* * * * L", "'L' needs a day before it");
    bad("L * * * *", "minute field: unexpected 'L'");
    bad("* * 5L * *", "day-of-month field");
    bad("* * W * *", "day-of-month field");
    bad("? * * * *", "'?' is only allowed in the day-of-month and day-of-week fields");
    bad("* * ?/2 * *", "'?' stands alone");
    bad("1-2-3 * * * *", "unexpected '-'");
    bad("*/ * * * *", "expected a step after '/'");
    bad("12345 * * * *", "is too long");
    bad("@reboot", "unknown macro '@reboot'");
    bad("@daily 5", "@daily takes nothing after it");
    bad("@every", "@every needs a duration");
    bad("@every 5", "is not a duration");
    bad("@every 5ms", "@every 5ms is out of range");
    bad("@every 0s", "out of range");
    bad("* * * * *\n", "contains byte 0x0a");
    bad("* * * * \xc3\xa9", "contains byte 0xc3");
    char long_expr[CRON_EXPR_MAX + 8];
    memset(long_expr, '*', sizeof long_expr - 1);
    long_expr[sizeof long_expr - 1] = '\0';
    bad(long_expr, "over the 256-byte limit");
}

/* ----------------------------------------------------------------------------------------- */
/* Brute force: check the search against minute-by-minute matching in UTC.                    */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A random field item from a small grammar that the parser must accept. */
static void random_field(uint64_t *s, int lo, int hi, char *out, size_t size) {
    int span = hi - lo + 1;
    switch (rng_next(s) % 6) {
    case 0:
        snprintf(out, size, "*");
        break;
    case 1:
        snprintf(out, size, "*/%d", (int)(rng_next(s) % (uint64_t)(span < 7 ? span : 7)) + 1);
        break;
    case 2: {
        int a = lo + (int)(rng_next(s) % (uint64_t)span);
        int b = a + (int)(rng_next(s) % (uint64_t)(hi - a + 1));
        snprintf(out, size, "%d-%d", a, b);
        break;
    }
    case 3: {
        int a = lo + (int)(rng_next(s) % (uint64_t)span);
        int b = lo + (int)(rng_next(s) % (uint64_t)span);
        snprintf(out, size, "%d,%d", a, b);
        break;
    }
    default:
        snprintf(out, size, "%d", lo + (int)(rng_next(s) % (uint64_t)span));
        break;
    }
}

static int in_field(const char *f, int v, int lo, int hi) {
    /* Re-parse the tiny grammar above independently of cron.c. */
    if (strcmp(f, "*") == 0) {
        return 1;
    }
    int a, b, step;
    if (sscanf(f, "*/%d", &step) == 1) {
        return (v - lo) % step == 0;
    }
    if (strchr(f, '-') != NULL && sscanf(f, "%d-%d", &a, &b) == 2) {
        return v >= a && v <= b;
    }
    if (strchr(f, ',') != NULL && sscanf(f, "%d,%d", &a, &b) == 2) {
        return v == a || v == b;
    }
    (void)hi;
    return atoi(f) == v;
}

static void test_brute_force(void **state) {
    (void)state;
    uint64_t seed = 12345;
    tz_zone *z = zone("UTC");
    for (int n = 0; n < BRUTE_EXPRS; n++) {
        char f[5][32];
        random_field(&seed, 0, 59, f[0], sizeof f[0]);
        random_field(&seed, 0, 23, f[1], sizeof f[1]);
        random_field(&seed, 1, 31, f[2], sizeof f[2]);
        random_field(&seed, 1, 12, f[3], sizeof f[3]);
        random_field(&seed, 0, 6, f[4], sizeof f[4]);
        char expr[200];
        snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
        cron_expr c;
        if (cron_parse(expr, &c) != 0) {
            fail_msg("'%s': %s", expr, aj_errmsg());
        }
        int dom_star = f[2][0] == '*', dow_star = f[4][0] == '*';
        int64_t start = ms_of(JAN1) + (int64_t)(rng_next(&seed) % 400) * AJ_DAY;
        int64_t t = start;
        int64_t minute = start / AJ_MINUTE;
        for (int k = 0; k < BRUTE_FIRES; k++) {
            int64_t want = -1;
            /* Day by day (month and day fields), then minute by minute within a matching day. */
            int64_t first_day = (minute + 1) / (24 * 60);
            for (int64_t days = first_day; want < 0 && days < first_day + BRUTE_DAYS_MAX; days++) {
                int64_t y;
                int mo, d;
                aj__civil_from_days(days, &y, &mo, &d);
                int wd = tz_weekday(days);
                int dom = in_field(f[2], d, 1, 31), dow = in_field(f[4], wd, 0, 6);
                int day = dom_star || dow_star ? dom && dow : dom || dow;
                if (!day || !in_field(f[3], mo, 1, 12)) {
                    continue;
                }
                for (int m = 0; m < 24 * 60; m++) {
                    int64_t abs_min = days * 24 * 60 + m;
                    if (abs_min > minute && in_field(f[0], m % 60, 0, 59) &&
                        in_field(f[1], m / 60, 0, 23)) {
                        want = abs_min * AJ_MINUTE;
                        break;
                    }
                }
            }
            int64_t got = 0;
            int rc = cron_next(&c, z, start, t, &got);
            if (want < 0) {
                break; /* nothing within the brute-force window */
            }
            if (rc != 0 || got != want) {
                char a[64], b[64];
                aj_time_format(want, a, sizeof a);
                aj_time_format(got, b, sizeof b);
                fail_msg("'%s' after fire %d: expected %s, got %s (rc %d)", expr, k, a, b, rc);
            }
            t = got;
            minute = got / AJ_MINUTE;
        }
    }
    tz_free(z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_fields),   cmocka_unit_test(test_specials),
        cmocka_unit_test(test_vixie_day_rule), cmocka_unit_test(test_seconds_and_years),
        cmocka_unit_test(test_macros),         cmocka_unit_test(test_dst_new_york),
        cmocka_unit_test(test_dst_berlin),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
