/*
 * test_parse.c — the shared parsers of aj.h: durations, priorities, names, backoff specs and
 * RFC 3339 times. Each rule is checked with valid and invalid text, the exact error messages that
 * front ends show are pinned, and every formatter is checked to round-trip through its parser.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(void);

/* Bytes of formatter output buffers in these tests: more than any formatter writes. */
#define BUF_SIZE 1024
/* A value the parsers must leave alone when they fail. */
#define SENTINEL ((int64_t)-424242)

/* A small deterministic PRNG (splitmix64) for round-trip sweeps. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void assert_msg_contains(const char *want) {
    const char *msg = aj_errmsg();
    if (strstr(msg, want) == NULL) {
        fail_msg("error message \"%s\" does not contain \"%s\"", msg, want);
    }
    assert_null(strchr(msg, '\n'));
}

/* ---------------------------------------------------------------------------------------------
 * Durations
 * ------------------------------------------------------------------------------------------- */

static void dur_ok(const char *text, int64_t want) {
    int64_t v = SENTINEL;
    int rc = aj_duration_parse(text, &v);
    if (rc != 0) {
        fail_msg("'%s' failed: %s", text, aj_errmsg());
    }
    assert_int_equal(v, want);
}

static void dur_bad(const char *text, const char *msg_part) {
    int64_t v = SENTINEL;
    assert_int_equal(aj_duration_parse(text, &v), AJ_EINVAL);
    assert_int_equal(v, SENTINEL);
    assert_msg_contains(msg_part);
}

static void test_duration_valid(void **state) {
    (void)state;
    dur_ok("0s", 0);
    dur_ok("0ms", 0);
    dur_ok("0d", 0);
    dur_ok("250ms", 250);
    dur_ok("1s", AJ_SECOND);
    dur_ok("1m", AJ_MINUTE);
    dur_ok("1h", AJ_HOUR);
    dur_ok("2d", 2 * AJ_DAY);
    dur_ok("1h30m", AJ_HOUR + 30 * AJ_MINUTE);
    dur_ok("2m30s500ms", 2 * AJ_MINUTE + 30 * AJ_SECOND + 500);
    dur_ok("1d2h3m4s5ms", AJ_DAY + 2 * AJ_HOUR + 3 * AJ_MINUTE + 4 * AJ_SECOND + 5);
    dur_ok("1d5ms", AJ_DAY + 5);
    dur_ok("90m", 90 * AJ_MINUTE);
    dur_ok("1500ms", 1500);
    dur_ok("007s", 7 * AJ_SECOND);
    dur_ok("9223372036854775807ms", INT64_MAX);
    dur_ok("106751991167d7h12m55s807ms", INT64_MAX);
    dur_ok("106751991167d", 106751991167 * AJ_DAY);
}

static void test_duration_invalid(void **state) {
    (void)state;
    dur_bad("10", "invalid duration '10': a number needs a unit (ms, s, m, h, d)");
    dur_bad("1h30", "invalid duration '1h30': a number needs a unit");
    dur_bad("", "invalid duration '': the text is empty");
    dur_bad(NULL, "the text is empty");
    dur_bad("-5s", "invalid duration '-5s': negative durations are not allowed");
    dur_bad("+5s", "a sign is not allowed");
    dur_bad("5x", "invalid duration '5x': unknown unit 'x' (ms, s, m, h, d)");
    dur_bad("5sec", "unknown unit 'sec'");
    dur_bad("5S", "unknown unit 'S'");
    dur_bad("5us", "unknown unit 'us'");
    dur_bad(" 5s", "whitespace is not allowed");
    dur_bad("5s ", "whitespace is not allowed");
    dur_bad("5 s", "whitespace is not allowed");
    dur_bad("1h 30m", "invalid duration '1h 30m': whitespace is not allowed");
    dur_bad("5s\n", "invalid duration '5s\\n': whitespace");
    dur_bad("30s1h", "units must go from largest to smallest, each at most once");
    dur_bad("1m1m", "units must go from largest to smallest");
    dur_bad("1ms1s", "units must go from largest to smallest");
    dur_bad("1.5h", "fractions are not allowed");
    dur_bad("1,5h", "fractions are not allowed");
    dur_bad("h", "a unit needs a number before it");
    dur_bad("1hm", "unknown unit 'hm'");
    dur_bad("5s-3s", "unexpected character '-'");
    dur_bad("5*s", "unexpected character '*'");
    dur_bad("5\x01s", "invalid duration '5\\x01s': unexpected character '\\x01'");
    dur_bad("9223372036854775808ms", "larger than the largest duration (9223372036854775807ms)");
    dur_bad("106751991167d7h12m55s808ms", "larger than the largest duration");
    dur_bad("106751991168d", "larger than the largest duration");
    dur_bad("99999999999999999999999999d", "larger than the largest duration");
    dur_bad("9223372036854775807ms1ms", "units must go"); /* order is checked before the sum */
    dur_bad("9223372036854775807s", "larger than the largest duration");
}

static void test_duration_long_text_is_cut_in_message(void **state) {
    (void)state;
    char text[300];
    memset(text, '1', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    int64_t v = SENTINEL;
    assert_int_equal(aj_duration_parse(text, &v), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "...'"));
    assert_true(strlen(aj_errmsg()) < 200);
}

static void fmt_dur(int64_t ms, const char *want) {
    char buf[BUF_SIZE];
    size_t n = aj_duration_format(ms, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_duration_format(void **state) {
    (void)state;
    fmt_dur(0, "0ms");
    fmt_dur(1, "1ms");
    fmt_dur(999, "999ms");
    fmt_dur(1000, "1s");
    fmt_dur(1500, "1s500ms");
    fmt_dur(AJ_HOUR + 30 * AJ_MINUTE, "1h30m");
    fmt_dur(5 * AJ_MINUTE, "5m");
    fmt_dur(AJ_DAY + 1, "1d1ms");
    fmt_dur(INT64_MAX, "106751991167d7h12m55s807ms");
    fmt_dur(-1500, "-1s500ms");
    fmt_dur(INT64_MIN, "-106751991167d7h12m55s808ms");

    /* snprintf-like: the full length comes back, the output is cut and terminated. */
    char small[4];
    assert_int_equal(aj_duration_format(AJ_HOUR + 30 * AJ_MINUTE, small, sizeof small), 5);
    assert_string_equal(small, "1h3");
    assert_int_equal(aj_duration_format(INT64_MAX, NULL, 0), 26);
    char one[1] = {'x'};
    assert_int_equal(aj_duration_format(0, one, 1), 3);
    assert_int_equal(one[0], '\0');
}

static void test_duration_round_trip(void **state) {
    (void)state;
    uint64_t seed = 1;
    char buf[BUF_SIZE];
    for (int i = 0; i < 20000; i++) {
        uint64_t r = rng_next(&seed);
        /* Mix magnitudes: small values exercise every unit, large ones the limits. */
        int64_t ms = (int64_t)((r >> 1) >> (r & 63));
        if (i < 100) {
            ms = INT64_MAX - i;
        }
        aj_duration_format(ms, buf, sizeof buf);
        int64_t back = SENTINEL;
        assert_int_equal(aj_duration_parse(buf, &back), 0);
        assert_int_equal(back, ms);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Priorities
 * ------------------------------------------------------------------------------------------- */

static void prio_ok(const char *text, uint32_t want) {
    uint32_t v = 7777;
    int rc = aj_priority_parse(text, &v);
    if (rc != 0) {
        fail_msg("'%s' failed: %s", text, aj_errmsg());
    }
    assert_int_equal(v, want);
}

static void prio_bad(const char *text, const char *msg_part) {
    uint32_t v = 7777;
    assert_int_equal(aj_priority_parse(text, &v), AJ_EINVAL);
    assert_int_equal(v, 7777);
    assert_msg_contains(msg_part);
}

static void test_priority(void **state) {
    (void)state;
    prio_ok("0", 0);
    prio_ok("1", 1);
    prio_ok("1024", 1024);
    prio_ok("4294967295", UINT32_MAX);
    prio_ok("0004294967295", UINT32_MAX);
    prio_ok("critical", AJ_PRIORITY_CRITICAL);
    prio_ok("high", 512);
    prio_ok("normal", 1024);
    prio_ok("low", 2048);

    prio_bad("4294967296", "invalid priority '4294967296': larger than 4294967295");
    prio_bad("99999999999999999999999999", "larger than 4294967295");
    prio_bad("-1", "invalid priority '-1': use a number 0..4294967295 or critical, high");
    prio_bad("+1", "invalid priority '+1'");
    prio_bad(" 1", "invalid priority ' 1'");
    prio_bad("1 ", "invalid priority '1 '");
    prio_bad("1.0", "invalid priority '1.0'");
    prio_bad("0x10", "invalid priority '0x10'");
    prio_bad("High", "invalid priority 'High'");
    prio_bad("urgent", "invalid priority 'urgent'");
    prio_bad("99999999999999999999x", "use a number"); /* a bad character beats the range */
    prio_bad("", "invalid priority '': the text is empty");
    prio_bad(NULL, "the text is empty");
}

static void test_priority_round_trip(void **state) {
    (void)state;
    uint64_t seed = 2;
    for (int i = 0; i < 10000; i++) {
        uint32_t p = (uint32_t)(rng_next(&seed) >> (32 + (i % 32)));
        char buf[32];
        snprintf(buf, sizeof buf, "%u", p);
        prio_ok(buf, p);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------- */

static void name_bad(const char *what, const char *name, const char *msg) {
    assert_int_equal(aj_name_check(what, name), AJ_EINVAL);
    assert_string_equal(aj_errmsg(), msg);
}

static void test_names(void **state) {
    (void)state;
    assert_int_equal(aj_name_check("queue", "a"), 0);
    assert_int_equal(aj_name_check("queue", "emails"), 0);
    assert_int_equal(aj_name_check("queue", "A-b+c/d;e.f$g_h(i)"), 0);
    assert_int_equal(aj_name_check("queue", "x-"), 0);
    assert_int_equal(aj_name_check("type", "0abc"), 0);
    assert_int_equal(aj_name_check("type", "(x)"), 0);
    char name[AJ_NAME_MAX + 2];
    memset(name, 'x', AJ_NAME_MAX);
    name[AJ_NAME_MAX] = '\0';
    assert_int_equal(aj_name_check("queue", name), 0);

    name[AJ_NAME_MAX] = 'x';
    name[AJ_NAME_MAX + 1] = '\0';
    name_bad("queue", name, "queue name is longer than 200 bytes");
    name_bad("queue", "a b",
             "queue name 'a b' contains ' ' (allowed: letters, digits and -+/;.$_())");
    name_bad("queue", "", "queue name is empty");
    name_bad("queue", NULL, "queue name is empty");
    name_bad("queue", "-x", "queue name '-x' starts with '-'");
    name_bad("type", "-", "type name '-' starts with '-'");
    name_bad("type", "a:b",
             "type name 'a:b' contains ':' (allowed: letters, digits and -+/;.$_())");
    name_bad("queue",
             "a\x01"
             "b",
             "queue name 'a\\x01b' contains '\\x01' (allowed: letters, digits and -+/;.$_())");
    name_bad("queue", "a\tb",
             "queue name 'a\\tb' contains '\\t' (allowed: letters, digits and -+/;.$_())");
    name_bad("queue", "caf\xc3\xa9",
             "queue name 'caf\\xc3\\xa9' contains '\\xc3' (allowed: letters, digits and "
             "-+/;.$_())");
    name_bad("queue", "a'b",
             "queue name 'a\\'b' contains '\\'' (allowed: letters, digits and -+/;.$_())");
    name_bad(NULL, "a b", "name 'a b' contains ' ' (allowed: letters, digits and -+/;.$_())");
    const char *bad_bytes = ",:*\\\"'`!@#%^&=[]{}<>?|~ ";
    for (const char *p = bad_bytes; *p != '\0'; p++) {
        char n[4] = {'a', *p, 'b', '\0'};
        assert_int_equal(aj_name_check("queue", n), AJ_EINVAL);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Backoff
 * ------------------------------------------------------------------------------------------- */

static void assert_backoff_equal(const aj_backoff *a, const aj_backoff *b) {
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->initial_ms, b->initial_ms);
    assert_true(a->factor == b->factor);
    assert_int_equal(a->max_ms, b->max_ms);
    assert_int_equal(a->n_delays, b->n_delays);
    for (uint32_t i = 0; i < a->n_delays; i++) {
        assert_int_equal(a->delays_ms[i], b->delays_ms[i]);
    }
}

/* Parses, checks the canonical text, and checks that the text parses back to the same spec. */
static aj_backoff backoff_ok(const char *text, const char *canonical) {
    aj_backoff b, back;
    int rc = aj_backoff_parse(text, &b);
    if (rc != 0) {
        fail_msg("'%s' failed: %s", text, aj_errmsg());
    }
    char buf[BUF_SIZE];
    size_t n = aj_backoff_format(&b, buf, sizeof buf);
    assert_string_equal(buf, canonical);
    assert_int_equal(n, strlen(canonical));
    assert_int_equal(aj_backoff_parse(buf, &back), 0);
    assert_backoff_equal(&b, &back);
    return b;
}

static void backoff_bad(const char *text, const char *msg_part) {
    aj_backoff b;
    memset(&b, 0x5a, sizeof b);
    aj_backoff before = b;
    assert_int_equal(aj_backoff_parse(text, &b), AJ_EINVAL);
    assert_memory_equal(&b, &before, sizeof b);
    assert_msg_contains(msg_part);
}

static void test_backoff_default(void **state) {
    (void)state;
    aj_backoff d, p;
    aj_backoff_default(&d);
    assert_int_equal(d.kind, AJ_BACKOFF_EXP);
    assert_int_equal(d.initial_ms, AJ_SECOND);
    assert_true(d.factor == 2.0);
    assert_int_equal(d.max_ms, 5 * AJ_MINUTE);
    char buf[BUF_SIZE];
    aj_backoff_format(&d, buf, sizeof buf);
    assert_string_equal(buf, "exp:1s:2:5m");
    assert_int_equal(aj_backoff_parse("exp:1s:2:5m", &p), 0);
    assert_backoff_equal(&d, &p);
}

static void test_backoff_valid(void **state) {
    (void)state;
    aj_backoff b = backoff_ok("none", "none");
    assert_int_equal(b.kind, AJ_BACKOFF_NONE);
    b = backoff_ok("fixed:30s", "fixed:30s");
    assert_int_equal(b.kind, AJ_BACKOFF_FIXED);
    assert_int_equal(b.initial_ms, 30 * AJ_SECOND);
    backoff_ok("fixed:0ms", "fixed:0ms");
    backoff_ok("fixed:1d", "fixed:1d");
    backoff_ok("fixed:60s", "fixed:1m");

    /* exp without FACTOR or MAX: factor 2, capped only by the global 1d limit. */
    b = backoff_ok("exp:1s", "exp:1s:2:1d");
    assert_int_equal(b.kind, AJ_BACKOFF_EXP);
    assert_true(b.factor == 2.0);
    assert_int_equal(b.max_ms, AJ_DAY);
    b = backoff_ok("exp:500ms:1.5", "exp:500ms:1.5:1d");
    assert_true(b.factor == 1.5);
    backoff_ok("exp:1s:2:5m", "exp:1s:2:5m");
    backoff_ok("exp:1s:1", "exp:1s:1:1d");
    backoff_ok("exp:1s:1.0", "exp:1s:1:1d");
    backoff_ok("exp:1s:1.125:1h", "exp:1s:1.125:1h");
    backoff_ok("exp:1s:1.050", "exp:1s:1.05:1d");
    backoff_ok("exp:1s:002.5", "exp:1s:2.5:1d");
    backoff_ok("exp:1s:100", "exp:1s:100:1d");
    backoff_ok("exp:1s:100.000", "exp:1s:100:1d");
    backoff_ok("exp:0ms", "exp:0ms:2:1d");
    backoff_ok("exp:1m:3:1m", "exp:1m:3:1m");
    backoff_ok("exp:1d:2:1d", "exp:1d:2:1d");

    b = backoff_ok("list:1s", "list:1s");
    assert_int_equal(b.kind, AJ_BACKOFF_LIST);
    assert_int_equal(b.n_delays, 1);
    b = backoff_ok("list:1s,5s,1m", "list:1s,5s,1m");
    assert_int_equal(b.n_delays, 3);
    assert_int_equal(b.delays_ms[2], AJ_MINUTE);
    backoff_ok("list:1m,1s", "list:1m,1s"); /* a list need not grow */
    backoff_ok("list:1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s,12s,13s,14s,15s,16s",
               "list:1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s,12s,13s,14s,15s,16s");
}

static void test_backoff_invalid(void **state) {
    (void)state;
    backoff_bad("", "invalid backoff '': the text is empty");
    backoff_bad(NULL, "the text is empty");
    backoff_bad("foo", "invalid backoff 'foo': unknown kind (use none, fixed:DUR, "
                       "exp:INITIAL[:FACTOR[:MAX]] or list:DUR[,DUR...])");
    backoff_bad("NONE", "unknown kind");
    backoff_bad(" none", "unknown kind");
    backoff_bad("none:1s", "none takes no parameters");
    backoff_bad("fixed", "fixed needs a delay");
    backoff_bad("fixed:", "the delay is missing");
    backoff_bad("fixed:1s:2s", "fixed takes one delay");
    backoff_bad("fixed:2d", "the delay is longer than 1d");
    backoff_bad("fixed:1d1ms", "longer than 1d");
    backoff_bad("fixed:10",
                "invalid backoff 'fixed:10': invalid duration '10': a number needs a unit");
    backoff_bad("fixed:-1s", "negative durations are not allowed");
    backoff_bad("exp", "exp needs an initial delay");
    backoff_bad("exp:", "the initial delay is missing");
    backoff_bad("exp:1s:", "factor must be a decimal from 1 to 100 with at most 3 decimals");
    backoff_bad("exp:1s:0.5", "factor must be");
    backoff_bad("exp:1s:0.999", "factor must be");
    backoff_bad("exp:1s:0", "factor must be");
    backoff_bad("exp:1s:-2", "factor must be");
    backoff_bad("exp:1s:+2", "factor must be");
    backoff_bad("exp:1s:1.2345", "factor must be");
    backoff_bad("exp:1s:100.001", "factor must be");
    backoff_bad("exp:1s:101", "factor must be");
    backoff_bad("exp:1s:99999999999999999999999", "factor must be");
    backoff_bad("exp:1s:2.", "factor must be");
    backoff_bad("exp:1s:.5", "factor must be");
    backoff_bad("exp:1s:1e2", "factor must be");
    backoff_bad("exp:1s:2x", "factor must be");
    backoff_bad("exp:1s:2:", "the maximum delay is missing");
    backoff_bad("exp:1s:2:2d", "the maximum delay is longer than 1d");
    backoff_bad("exp:2d", "the initial delay is longer than 1d");
    backoff_bad("exp:1m:2:30s", "the maximum delay is less than the initial delay");
    backoff_bad("exp:1s:2:5m:1", "too many fields");
    backoff_bad("exp:1s:2:5", "invalid duration '5': a number needs a unit");
    backoff_bad("list", "list needs delays");
    backoff_bad("list:", "a delay is missing");
    backoff_bad("list:1s,", "a delay is missing");
    backoff_bad("list:,1s", "a delay is missing");
    backoff_bad("list:1s,,2s", "a delay is missing");
    backoff_bad("list:1s;2s", "invalid duration '1s;2s'");
    backoff_bad("list:1s, 2s", "whitespace is not allowed");
    backoff_bad("list:1s:2s", "invalid duration '1s:2s'");
    backoff_bad("list:1s,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s,12s,13s,14s,15s,16s,17s",
                "more than 16 delays");
    backoff_bad("list:1s,2d", "a delay is longer than 1d");

    char text[600];
    strcpy(text, "list:");
    memset(text + 5, '0', sizeof text - 8);
    strcpy(text + sizeof text - 3, "s");
    backoff_bad(text, "longer than 512 bytes");
}

static void test_backoff_format_small_buffer(void **state) {
    (void)state;
    aj_backoff d;
    aj_backoff_default(&d);
    char small[5];
    assert_int_equal(aj_backoff_format(&d, small, sizeof small), strlen("exp:1s:2:5m"));
    assert_string_equal(small, "exp:");
    assert_int_equal(aj_backoff_format(&d, NULL, 0), strlen("exp:1s:2:5m"));
}

static void delays_are(const char *spec, const int64_t *want, size_t n) {
    aj_backoff b;
    assert_int_equal(aj_backoff_parse(spec, &b), 0);
    for (size_t i = 0; i < n; i++) {
        int64_t got = aj_backoff_delay(&b, (uint32_t)i + 1);
        if (got != want[i]) {
            fail_msg("%s attempt %zu: got %lld, want %lld", spec, i + 1, (long long)got,
                     (long long)want[i]);
        }
    }
}

static void test_backoff_delay(void **state) {
    (void)state;
    aj_backoff b;
    const int64_t none[] = {0, 0, 0};
    delays_are("none", none, 3);
    const int64_t fixed[] = {30000, 30000, 30000};
    delays_are("fixed:30s", fixed, 3);
    const int64_t dflt[] = {1000,  2000,   4000,   8000,   16000,  32000,
                            64000, 128000, 256000, 300000, 300000, 300000};
    delays_are("exp:1s:2:5m", dflt, 12);
    const int64_t half[] = {1000, 1500, 2250, 3375, 5062};
    delays_are("exp:1s:1.5:1d", half, 5);
    const int64_t one[] = {1000, 1000, 1000};
    delays_are("exp:1s:1", one, 3);
    const int64_t list[] = {1000, 5000, 60000, 60000, 60000};
    delays_are("list:1s,5s,1m", list, 5);
    const int64_t zero[] = {0, 0, 0};
    delays_are("exp:0ms", zero, 3);

    /* Huge attempt numbers saturate at the cap without overflow. */
    aj_backoff_default(&b);
    assert_int_equal(aj_backoff_delay(&b, 0), 1000); /* 0 counts as the first retry */
    assert_int_equal(aj_backoff_delay(&b, 64), 300000);
    assert_int_equal(aj_backoff_delay(&b, 1100), 300000);
    assert_int_equal(aj_backoff_delay(&b, UINT32_MAX), 300000);
    assert_int_equal(aj_backoff_parse("exp:1s", &b), 0);
    assert_int_equal(aj_backoff_delay(&b, 100), AJ_DAY);
    assert_int_equal(aj_backoff_delay(&b, UINT32_MAX), AJ_DAY);
    assert_int_equal(aj_backoff_parse("exp:1ms:1.001", &b), 0);
    assert_int_equal(aj_backoff_delay(&b, UINT32_MAX), AJ_DAY);
    assert_int_equal(aj_backoff_parse("exp:1s:1:5m", &b), 0);
    assert_int_equal(aj_backoff_delay(&b, UINT32_MAX), 1000);
    assert_int_equal(aj_backoff_parse("list:1s,5s,1m", &b), 0);
    assert_int_equal(aj_backoff_delay(&b, UINT32_MAX), 60000);
    assert_int_equal(aj_backoff_delay(&b, 0), 1000);
    assert_int_equal(aj_backoff_parse("exp:0ms:2:1m", &b), 0);
    assert_int_equal(aj_backoff_delay(&b, UINT32_MAX), 0);
}

static void test_backoff_delay_monotonic(void **state) {
    (void)state;
    const char *specs[] = {"exp:1s:2:5m", "exp:1ms:1.001", "exp:7ms:1.5:1h", "exp:1s:100",
                           "exp:333ms:2.718:23h"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        aj_backoff b;
        assert_int_equal(aj_backoff_parse(specs[i], &b), 0);
        int64_t prev = 0;
        for (uint32_t a = 1; a < 20000; a++) {
            int64_t d = aj_backoff_delay(&b, a);
            assert_true(d >= prev);
            assert_true(d <= b.max_ms);
            prev = d;
        }
    }
}

/* A struct built by hand (not by the parser) still gives delays in 0..1d. */
static void test_backoff_hand_built(void **state) {
    (void)state;
    aj_backoff b;
    memset(&b, 0, sizeof b);
    b.kind = AJ_BACKOFF_EXP;
    b.initial_ms = -5;
    b.factor = NAN;
    b.max_ms = INT64_MAX;
    assert_int_equal(aj_backoff_delay(&b, 3), 0);
    b.initial_ms = 1000;
    assert_int_equal(aj_backoff_delay(&b, 3), 1000); /* NaN factor acts as 1 */
    b.factor = 1e300;
    assert_int_equal(aj_backoff_delay(&b, 3), 1000 * 100 * 100);
    char buf[BUF_SIZE];
    aj_backoff_format(&b, buf, sizeof buf);
    assert_string_equal(buf, "exp:1s:100:106751991167d7h12m55s807ms");
    b.kind = AJ_BACKOFF_FIXED;
    b.initial_ms = INT64_MAX;
    assert_int_equal(aj_backoff_delay(&b, 1), AJ_DAY);
    b.kind = AJ_BACKOFF_LIST;
    b.n_delays = 0;
    assert_int_equal(aj_backoff_delay(&b, 1), 0);
    b.n_delays = 1000; /* more than the array holds: only AJ_BACKOFF_LIST_MAX are read */
    for (int i = 0; i < AJ_BACKOFF_LIST_MAX; i++) {
        b.delays_ms[i] = i;
    }
    assert_int_equal(aj_backoff_delay(&b, 500), AJ_BACKOFF_LIST_MAX - 1);
    /* An unknown kind (a corrupt record) neither crashes nor parses back. */
    b.kind = (aj_backoff_kind)9;
    assert_int_equal(aj_backoff_delay(&b, 1), 0);
    aj_backoff_format(&b, buf, sizeof buf);
    assert_string_equal(buf, "invalid");
    assert_int_equal(aj_backoff_parse(buf, &b), AJ_EINVAL);
}

/* ---------------------------------------------------------------------------------------------
 * Times
 * ------------------------------------------------------------------------------------------- */

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the range a time may take. */
#define TIME_MIN (-62167219200000LL)
#define TIME_MAX 253402300799999LL
#define T_2026_03_08_07 1772953200000LL

static void time_ok(const char *text, int64_t want) {
    int64_t v = SENTINEL;
    int rc = aj_time_parse(text, &v);
    if (rc != 0) {
        fail_msg("'%s' failed: %s", text, aj_errmsg());
    }
    assert_int_equal(v, want);
}

static void time_bad(const char *text, const char *msg_part) {
    int64_t v = SENTINEL;
    assert_int_equal(aj_time_parse(text, &v), AJ_EINVAL);
    assert_int_equal(v, SENTINEL);
    assert_msg_contains(msg_part);
}

static void test_time_valid(void **state) {
    (void)state;
    time_ok("1970-01-01T00:00:00Z", 0);
    time_ok("2026-03-08T07:00:00Z", T_2026_03_08_07);
    time_ok("2026-03-08T09:00:00.250+02:00", T_2026_03_08_07 + 250);
    time_ok("2026-03-08T02:30:00-04:30", T_2026_03_08_07);
    time_ok("2026-03-08T07:00:00-00:00", T_2026_03_08_07);
    time_ok("2026-03-08T07:00:00+00:00", T_2026_03_08_07);
    time_ok("2026-03-08t07:00:00z", T_2026_03_08_07);
    time_ok("2026-03-09T06:59:00+23:59", T_2026_03_08_07);
    time_ok("2026-03-08T07:00:00.5Z", T_2026_03_08_07 + 500);
    time_ok("2026-03-08T07:00:00.05Z", T_2026_03_08_07 + 50);
    time_ok("2026-03-08T07:00:00.007Z", T_2026_03_08_07 + 7);
    time_ok("2026-03-08T07:00:00.123456789Z", T_2026_03_08_07 + 123);
    time_ok("2026-03-08T07:00:00.9999Z", T_2026_03_08_07 + 999); /* truncated, not rounded */
    time_ok("1969-12-31T23:59:59.999Z", -1);
    time_ok("2024-02-29T12:00:00Z", 1709208000000LL);
    time_ok("2000-02-29T00:00:00Z", 951782400000LL);
    time_ok("2026-12-31T23:59:60Z", 1798761600000LL); /* a leap second counts as the next one */
    time_ok("2026-12-31T23:59:60.500Z", 1798761600500LL);
    time_ok("0000-01-01T00:00:00Z", TIME_MIN);
    time_ok("0000-02-29T00:00:00Z", TIME_MIN + 59 * AJ_DAY); /* year 0 is a leap year */
    time_ok("9999-12-31T23:59:59.999Z", TIME_MAX);
    time_ok("0001-01-01T00:00:00-23:59", TIME_MIN + 366 * AJ_DAY + 23 * AJ_HOUR + 59 * AJ_MINUTE);
}

static void test_time_invalid(void **state) {
    (void)state;
    time_bad("", "invalid time '': the text is empty");
    time_bad(NULL, "the text is empty");
    time_bad("2026-03-08", "invalid time '2026-03-08': expected 'T' and a time after the date");
    time_bad("2026-03-08T07:00:00", "expected a time zone offset (Z or +HH:MM)");
    time_bad("2026-03-08 07:00:00Z", "expected 'T'");
    time_bad("2026-3-8T07:00:00Z", "expected a date YYYY-MM-DD");
    time_bad("26-03-08T07:00:00Z", "expected a date YYYY-MM-DD");
    time_bad("+2026-03-08T07:00:00Z", "expected a date YYYY-MM-DD");
    time_bad("20260308T070000Z", "expected a date YYYY-MM-DD");
    time_bad("2026-03-08T07:00Z", "expected a time HH:MM:SS");
    time_bad("2026-03-08T7:00:00Z", "expected a time HH:MM:SS");
    time_bad("2026-13-01T00:00:00Z", "month 13 is out of range (01-12)");
    time_bad("2026-00-01T00:00:00Z", "month 00 is out of range");
    time_bad("2026-01-00T00:00:00Z", "day 00 is out of range (2026-01 has 31 days)");
    time_bad("2026-01-32T00:00:00Z", "day 32 is out of range");
    time_bad("2026-04-31T00:00:00Z", "day 31 is out of range (2026-04 has 30 days)");
    time_bad("2023-02-29T00:00:00Z", "day 29 is out of range (2023-02 has 28 days)");
    time_bad("1900-02-29T00:00:00Z", "day 29 is out of range (1900-02 has 28 days)");
    time_bad("2026-03-08T24:00:00Z", "hour 24 is out of range (00-23)");
    time_bad("2026-03-08T23:60:00Z", "minute 60 is out of range (00-59)");
    time_bad("2026-03-08T23:59:61Z", "second 61 is out of range (00-60)");
    time_bad("2026-03-08T07:00:00+24:00", "offset is out of range");
    time_bad("2026-03-08T07:00:00+02:60", "offset is out of range");
    time_bad("2026-03-08T07:00:00+0200", "expected an offset +HH:MM or -HH:MM");
    time_bad("2026-03-08T07:00:00+2:00", "expected an offset");
    time_bad("2026-03-08T07:00:00+02:00:00", "unexpected text after the offset");
    time_bad("2026-03-08T07:00:00Z ", "unexpected text after the offset");
    time_bad(" 2026-03-08T07:00:00Z", "expected a date");
    time_bad("2026-03-08T07:00:00.Z", "expected digits after '.'");
    time_bad("2026-03-08T07:00:00.1234567890Z", "more than 9 fractional digits");
    time_bad("2026-03-08T07:00:00,5Z", "expected a time zone offset");
    time_bad("0000-01-01T00:00:00+00:01", "outside the years 0000..9999 in UTC");
    time_bad("9999-12-31T23:59:59-00:01", "outside the years 0000..9999 in UTC");
    time_bad("9999-12-31T23:59:60Z", "outside the years 0000..9999 in UTC");
    time_bad("2026-03-08T07:00:00\x7f", "invalid time '2026-03-08T07:00:00\\x7f'");
}

static void fmt_time(int64_t ms, const char *want) {
    char buf[BUF_SIZE];
    size_t n = aj_time_format(ms, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_time_format(void **state) {
    (void)state;
    fmt_time(0, "1970-01-01T00:00:00Z");
    fmt_time(250, "1970-01-01T00:00:00.250Z");
    fmt_time(7, "1970-01-01T00:00:00.007Z");
    fmt_time(-1, "1969-12-31T23:59:59.999Z");
    fmt_time(-AJ_DAY, "1969-12-31T00:00:00Z");
    fmt_time(T_2026_03_08_07, "2026-03-08T07:00:00Z");
    fmt_time(T_2026_03_08_07 + 250, "2026-03-08T07:00:00.250Z");
    fmt_time(1709208000000LL, "2024-02-29T12:00:00Z");
    fmt_time(TIME_MIN, "0000-01-01T00:00:00Z");
    fmt_time(TIME_MAX, "9999-12-31T23:59:59.999Z");
    /* Outside 0000..9999 the year gets a sign; the parser rejects such text. */
    fmt_time(TIME_MIN - 1, "-0001-12-31T23:59:59.999Z");
    fmt_time(TIME_MAX + 1, "+10000-01-01T00:00:00Z");
    char buf[BUF_SIZE];
    int64_t v;
    aj_time_format(INT64_MAX, buf, sizeof buf);
    assert_int_equal(buf[0], '+');
    assert_int_equal(aj_time_parse(buf, &v), AJ_EINVAL);
    aj_time_format(INT64_MIN, buf, sizeof buf);
    assert_int_equal(buf[0], '-');
    assert_int_equal(aj_time_parse(buf, &v), AJ_EINVAL);

    char small[11];
    assert_int_equal(aj_time_format(T_2026_03_08_07, small, sizeof small), 20);
    assert_string_equal(small, "2026-03-08");
}

static void test_time_round_trip(void **state) {
    (void)state;
    uint64_t seed = 3;
    char buf[BUF_SIZE];
    for (int i = 0; i < 50000; i++) {
        uint64_t r = rng_next(&seed);
        int64_t ms = TIME_MIN + (int64_t)(r % (uint64_t)(TIME_MAX - TIME_MIN + 1));
        if (i % 3 == 0) {
            ms -= ms % AJ_SECOND; /* whole seconds take the other branch of the formatter */
        }
        aj_time_format(ms, buf, sizeof buf);
        int64_t back = SENTINEL;
        if (aj_time_parse(buf, &back) != 0) {
            fail_msg("'%s' failed: %s", buf, aj_errmsg());
        }
        assert_int_equal(back, ms);
    }
}

/* The pure arithmetic agrees with the C library's gmtime() on every day of 0000..9999. */
static void test_time_matches_gmtime(void **state) {
    (void)state;
    char buf[BUF_SIZE], want[BUF_SIZE];
    for (int64_t day = TIME_MIN / AJ_DAY; day <= TIME_MAX / AJ_DAY; day += 7) {
        int64_t ms = day * AJ_DAY + ((day % 86400 + 86400) % 86400) * AJ_SECOND;
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        assert_non_null(gmtime_r(&t, &tm));
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        aj_time_format(ms, buf, sizeof buf);
        assert_string_equal(buf, want);
    }
}

static void test_version(void **state) {
    (void)state;
    assert_string_equal(aj_version(), AJ_VERSION_STRING);
    assert_string_equal(aj_version(), "0.1.0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_valid),
        cmocka_unit_test(test_duration_invalid),
        cmocka_unit_test(test_duration_long_text_is_cut_in_message),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_duration_round_trip),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_priority_round_trip),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_backoff_default),
        cmocka_unit_test(test_backoff_valid),
        cmocka_unit_test(test_backoff_invalid),
        cmocka_unit_test(test_backoff_format_small_buffer),
        cmocka_unit_test(test_backoff_delay),
        cmocka_unit_test(test_backoff_delay_monotonic),
        cmocka_unit_test(test_backoff_hand_built),
        cmocka_unit_test(test_time_valid),
        cmocka_unit_test(test_time_invalid),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_time_matches_gmtime),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
