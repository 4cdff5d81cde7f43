/*
 * fuzz_time.c — fuzzes aj_time_parse()/aj_time_format(). Properties: an accepted time lies in
 * 0000-01-01T00:00:00Z..9999-12-31T23:59:59.999Z; its formatted text parses back to the same
 * value and formats to itself; the formatted date and clock agree with the C library's gmtime_r()
 * (a reference the library itself does not use); a failure is AJ_EINVAL with a one-line message
 * and leaves the out-parameter alone. Independently, an int64 read from the input is formatted
 * (any value, without overflow) and, inside the range, round-trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test. */
#define FUZZ_INPUT_MAX 4096
/* More than the longest formatted time ("-292277026-...", about 35 bytes). */
#define FUZZ_BUF 64
/* The range of times the parser accepts. */
#define FUZZ_TIME_MIN (-62167219200000LL)
#define FUZZ_TIME_MAX 253402300799999LL
/* A value the parser must not write on failure. */
#define FUZZ_SENTINEL INT64_MIN

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_in_range(int64_t v) {
    char buf[FUZZ_BUF], again[FUZZ_BUF], want[FUZZ_BUF];
    size_t n = aj_time_format(v, buf, sizeof buf);
    CHECK(n < sizeof buf && n == strlen(buf));
    int64_t back = FUZZ_SENTINEL;
    CHECK(aj_time_parse(buf, &back) == 0);
    CHECK(back == v);
    aj_time_format(back, again, sizeof again);
    CHECK(strcmp(buf, again) == 0);

    int64_t secs = v / 1000 - (v % 1000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;
    CHECK(gmtime_r(&t, &tm) != NULL);
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    CHECK(strncmp(buf, want, strlen(want)) == 0);
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

    int64_t v = FUZZ_SENTINEL;
    int rc = aj_time_parse(text, &v);
    if (rc == 0) {
        CHECK(v >= FUZZ_TIME_MIN && v <= FUZZ_TIME_MAX);
        check_in_range(v);
    } else {
        CHECK(rc == AJ_EINVAL);
        CHECK(v == FUZZ_SENTINEL);
        CHECK(strncmp(aj_errmsg(), "invalid time '", 14) == 0);
        CHECK(strchr(aj_errmsg(), '\n') == NULL);
    }

    if (size >= sizeof(int64_t)) {
        int64_t raw;
        memcpy(&raw, data, sizeof raw);
        char buf[FUZZ_BUF];
        size_t n = aj_time_format(raw, buf, sizeof buf);
        CHECK(n < sizeof buf && n == strlen(buf));
        if (raw >= FUZZ_TIME_MIN && raw <= FUZZ_TIME_MAX) {
            check_in_range(raw);
        } else {
            int64_t back;
            CHECK(aj_time_parse(buf, &back) == AJ_EINVAL);
        }
    }
    free(text);
    return 0;
}
