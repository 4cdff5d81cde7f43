/*
 * fuzz_activity_cache.c — fuzzes the activity cache descriptor that activity_scheduled events
 * carry (act_cache_desc_parse, read back from stored histories when a job completes).
 * Properties: a descriptor that parses has a positive TTL and formats back to exactly the input
 * text; any hash, scope and positive TTL taken from the input formats to a descriptor that parses
 * back to the same values; the content hash is a function of its input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "core/activity_cache.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    aj_slice in = {data, size};
    int global = -1;
    uint8_t hash[ACT_CACHE_HASH];
    int64_t ttl = 0;
    char buf[ACT_CACHE_DESC_MAX];
    if (act_cache_desc_parse(in, &global, hash, &ttl)) {
        CHECK(ttl > 0 && (global == 0 || global == 1));
        size_t n = act_cache_desc_format(buf, sizeof buf, global, hash, ttl);
        CHECK(n == size && memcmp(buf, data, size) == 0);
    }
    /* Round trip of values taken from the input. */
    if (size >= ACT_CACHE_HASH + 9) {
        uint8_t h[ACT_CACHE_HASH], h2[ACT_CACHE_HASH];
        memcpy(h, data, ACT_CACHE_HASH);
        int g = data[ACT_CACHE_HASH] & 1;
        int64_t t = 0;
        memcpy(&t, data + ACT_CACHE_HASH + 1, sizeof t);
        t = t < 0 ? -(t + 1) : t;
        t = t == 0 ? 1 : t;
        size_t n = act_cache_desc_format(buf, sizeof buf, g, h, t);
        aj_slice d = {(const uint8_t *)buf, n};
        int g2 = -1;
        int64_t t2 = 0;
        CHECK(act_cache_desc_parse(d, &g2, h2, &t2) == 1);
        CHECK(g2 == g && t2 == t && memcmp(h, h2, ACT_CACHE_HASH) == 0);
    }
    /* The hash depends only on its input. */
    uint8_t a[ACT_CACHE_HASH], b[ACT_CACHE_HASH];
    act_cache_hash("type", "v1", in, a);
    act_cache_hash("type", "v1", in, b);
    CHECK(memcmp(a, b, ACT_CACHE_HASH) == 0);
    return 0;
}
