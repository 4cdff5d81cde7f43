/*
 * fuzz_routing.c — fuzzes the parsers of routing and queue controls. The first byte picks one:
 *   even: aj_rate_parse() on the rest as text. Accepted: 0/0 for "none" and "0", else a count
 *         of 1..AJ_QUEUE_RATE_MAX and a window of 1 ms..AJ_QUEUE_RATE_WINDOW_MAX, and the text
 *         "N/" + aj_duration_format(window) parses back to the same pair. Refused: AJ_EINVAL
 *         with a message, out-parameters untouched.
 *   odd:  route_decode() on the rest as a stored routing field. Accepted: every present string
 *         lies inside the input, the wait is within 100 years, and route_allows() answers for
 *         claimers with and without node and tags without reading out of bounds. Refused:
 *         AJ_ECORRUPT or AJ_EFORMAT.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "core/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test. */
#define FUZZ_INPUT_MAX 4096

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_rate(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    uint32_t n = 7777;
    int64_t w = 7777;
    int rc = aj_rate_parse(text, &n, &w);
    if (rc != 0) {
        CHECK(rc == AJ_EINVAL);
        CHECK(aj_errmsg()[0] != '\0');
        CHECK(n == 7777 && w == 7777);
    } else if (n == 0) {
        CHECK(w == 0);
    } else {
        CHECK(n <= AJ_QUEUE_RATE_MAX);
        CHECK(w >= 1 && w <= AJ_QUEUE_RATE_WINDOW_MAX);
        char again[128];
        int k = snprintf(again, sizeof again, "%u/", n);
        aj_duration_format(w, again + k, sizeof again - (size_t)k);
        uint32_t n2 = 0;
        int64_t w2 = 0;
        CHECK(aj_rate_parse(again, &n2, &w2) == 0);
        CHECK(n2 == n && w2 == w);
    }
    free(text);
}

static int inside(aj_slice s, const uint8_t *p, size_t n) {
    return s.p == NULL || (s.n == 0) || (s.p >= p && s.p + s.n <= p + n);
}

static void fuzz_route(const uint8_t *data, size_t size) {
    /* A copy of exactly `size` bytes, so that any over-read is caught by the sanitizers. */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    aj_slice enc = {copy, size};
    job_route r;
    int rc = route_decode(enc, &r);
    if (rc != 0) {
        CHECK(rc == AJ_ECORRUPT || rc == AJ_EFORMAT);
        free(copy);
        return;
    }
    CHECK(inside(r.require_tag, copy, size));
    CHECK(inside(r.prefer_node, copy, size));
    CHECK(inside(r.avoid_node, copy, size));
    CHECK(r.prefer_wait_ms >= 0 && r.prefer_wait_ms <= (int64_t)100 * 365 * AJ_DAY);
    const char *tags[] = {"gpu", ""};
    route_claimer a = {"n1", tags, 2}, b = {NULL, NULL, 0};
    int64_t until = INT64_MAX;
    int x = route_allows(&r, &a, 0, 0, &until);
    int y = route_allows(&r, &b, INT64_MAX / 2, 0, NULL);
    int z = route_allows(&r, NULL, 1000, 1000, &until);
    CHECK((x == 0 || x == 1) && (y == 0 || y == 1) && (z == 0 || z == 1));
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > FUZZ_INPUT_MAX) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        fuzz_rate(data + 1, size - 1);
    } else {
        fuzz_route(data + 1, size - 1);
    }
    return 0;
}
