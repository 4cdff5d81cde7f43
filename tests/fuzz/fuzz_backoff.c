/*
 * fuzz_backoff.c — fuzzes aj_backoff_parse(), aj_backoff_format() and aj_backoff_delay().
 * Properties of an accepted spec: its fields are within the documented limits (every delay
 * 0..1d, factor 1..100, 1..AJ_BACKOFF_LIST_MAX list delays, MAX >= INITIAL); its canonical text
 * parses back to the same spec and formats to itself; delays follow the kind's rule, stay within
 * 0..cap, and grow monotonically for `exp` even at huge attempt numbers. A failure is AJ_EINVAL
 * with a one-line message and leaves the out-parameter alone. Independently, a struct built from
 * raw input bytes (NaN factors, negative delays, oversized counts) must still give delays in
 * 0..1d and formatted text of bounded length.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test (specs are capped at 512 bytes). */
#define FUZZ_INPUT_MAX 4096
/* More than the longest canonical spec: 16 delays of at most 28 bytes each, plus "list:". */
#define FUZZ_BUF 1024
/* The largest delay anywhere in a spec (parse.c's AJ__BACKOFF_DELAY_MAX). */
#define FUZZ_DELAY_MAX AJ_DAY
/* Attempts checked one by one; huge attempt numbers are checked separately. */
#define FUZZ_ATTEMPTS 80

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int same(const aj_backoff *a, const aj_backoff *b) {
    if (a->kind != b->kind || a->initial_ms != b->initial_ms || a->factor != b->factor ||
        a->max_ms != b->max_ms || a->n_delays != b->n_delays) {
        return 0;
    }
    for (uint32_t i = 0; i < a->n_delays; i++) {
        if (a->delays_ms[i] != b->delays_ms[i]) {
            return 0;
        }
    }
    return 1;
}

static int delay_ok(int64_t d) {
    return d >= 0 && d <= FUZZ_DELAY_MAX;
}

static void check_parsed(const aj_backoff *b) {
    switch (b->kind) {
    case AJ_BACKOFF_NONE:
        break;
    case AJ_BACKOFF_FIXED:
        CHECK(delay_ok(b->initial_ms));
        break;
    case AJ_BACKOFF_EXP:
        CHECK(delay_ok(b->initial_ms) && delay_ok(b->max_ms));
        CHECK(b->initial_ms <= b->max_ms);
        CHECK(b->factor >= 1.0 && b->factor <= 100.0);
        CHECK(fabs(b->factor * 1000 - round(b->factor * 1000)) < 1e-6); /* 3 decimals */
        break;
    case AJ_BACKOFF_LIST:
        CHECK(b->n_delays >= 1 && b->n_delays <= AJ_BACKOFF_LIST_MAX);
        for (uint32_t i = 0; i < b->n_delays; i++) {
            CHECK(delay_ok(b->delays_ms[i]));
        }
        break;
    default:
        CHECK(!"unknown kind");
    }

    char buf[FUZZ_BUF], again[FUZZ_BUF];
    size_t n = aj_backoff_format(b, buf, sizeof buf);
    CHECK(n < sizeof buf && n == strlen(buf));
    aj_backoff back;
    CHECK(aj_backoff_parse(buf, &back) == 0);
    CHECK(same(b, &back));
    aj_backoff_format(&back, again, sizeof again);
    CHECK(strcmp(buf, again) == 0);

    int64_t prev = 0;
    for (uint32_t a = 1; a <= FUZZ_ATTEMPTS; a++) {
        int64_t d = aj_backoff_delay(b, a);
        CHECK(delay_ok(d));
        switch (b->kind) {
        case AJ_BACKOFF_NONE:
            CHECK(d == 0);
            break;
        case AJ_BACKOFF_FIXED:
            CHECK(d == b->initial_ms);
            break;
        case AJ_BACKOFF_EXP:
            CHECK(d >= prev && d <= b->max_ms);
            CHECK(a > 1 || d == b->initial_ms);
            break;
        case AJ_BACKOFF_LIST:
            CHECK(d == b->delays_ms[(a < b->n_delays ? a : b->n_delays) - 1]);
            break;
        }
        prev = d;
    }
    const uint32_t huge[] = {1000, 65536, 1u << 31, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        int64_t d = aj_backoff_delay(b, huge[i]);
        CHECK(delay_ok(d));
        if (b->kind == AJ_BACKOFF_EXP) {
            CHECK(d >= prev && d <= b->max_ms);
            /* Any factor above 1 reaches the cap long before 2^32 attempts. */
            CHECK(huge[i] != UINT32_MAX || b->initial_ms == 0 || b->factor == 1.0 ||
                  d == b->max_ms);
        }
        prev = d;
    }
}

/* A struct from raw bytes: whatever it holds, delays stay in range and formatting is bounded. */
static void check_raw(const uint8_t *data, size_t size) {
    aj_backoff b;
    if (size < sizeof b) {
        return;
    }
    memcpy(&b, data, sizeof b);
    b.kind = (aj_backoff_kind)(data[0] % 5); /* 4: an unknown kind, as from a corrupt record */
    const uint32_t attempts[] = {0, 1, 2, 3, 17, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        CHECK(delay_ok(aj_backoff_delay(&b, attempts[i])));
    }
    char buf[FUZZ_BUF];
    size_t n = aj_backoff_format(&b, buf, sizeof buf);
    CHECK(n < sizeof buf && n == strlen(buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    aj_backoff b, before;
    memset(&b, 0x5a, sizeof b);
    before = b;
    int rc = aj_backoff_parse(text, &b);
    if (rc == 0) {
        check_parsed(&b);
    } else {
        CHECK(rc == AJ_EINVAL);
        CHECK(memcmp(&b, &before, sizeof b) == 0);
        CHECK(strncmp(aj_errmsg(), "invalid backoff '", 17) == 0);
        CHECK(strchr(aj_errmsg(), '\n') == NULL);
    }
    check_raw(data, size);
    free(text);
    return 0;
}
