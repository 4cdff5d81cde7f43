/*
 * fuzz_duration.c — fuzzes aj_duration_parse()/aj_duration_format(). Properties: a parsed
 * duration is never negative; its canonical text parses back to the same value and formats to
 * itself; accepted text holds only digits and unit letters; a failure is AJ_EINVAL with a
 * one-line message; and any non-negative int64 read from the input round-trips through the
 * formatter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test, and slow the fuzzer down. */
#define FUZZ_INPUT_MAX 4096
/* More than the longest duration text ("-106751991167d7h12m55s808ms"). */
#define FUZZ_BUF 64

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_round_trip(int64_t v) {
    char buf[FUZZ_BUF], again[FUZZ_BUF];
    size_t n = aj_duration_format(v, buf, sizeof buf);
    CHECK(n < sizeof buf && n == strlen(buf));
    int64_t back = -1;
    CHECK(aj_duration_parse(buf, &back) == 0);
    CHECK(back == v);
    aj_duration_format(back, again, sizeof again);
    CHECK(strcmp(buf, again) == 0);
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

    int64_t v = -1;
    int rc = aj_duration_parse(text, &v);
    if (rc == 0) {
        CHECK(v >= 0);
        CHECK(text[0] >= '0' && text[0] <= '9');
        for (const char *p = text; *p != '\0'; p++) {
            CHECK((*p >= '0' && *p <= '9') || strchr("dhms", *p) != NULL);
        }
        check_round_trip(v);
    } else {
        CHECK(rc == AJ_EINVAL);
        CHECK(v == -1);
        const char *msg = aj_errmsg();
        CHECK(strncmp(msg, "invalid duration '", 18) == 0);
        CHECK(strchr(msg, '\n') == NULL);
    }

    if (size >= sizeof(int64_t)) {
        int64_t raw;
        memcpy(&raw, data, sizeof raw);
        check_round_trip(raw < 0 ? ~raw : raw);
    }
    free(text);
    return 0;
}
