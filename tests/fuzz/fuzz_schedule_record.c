/*
 * fuzz_schedule_record.c — fuzzes sched_rec_decode() on arbitrary bytes as a stored schedule
 * record ('K' name), formats 1 and 2 (2 appends the template's routing). Refused: AJ_ECORRUPT or
 * AJ_EFORMAT with a message. Accepted: every borrowed field lies inside the input, the public
 * copy (sched_rec_to_public) can be made and freed, its routing strings are set exactly when the
 * record has routing, and encoding is a fixed point: encode(decode(encode(decode(x)))) equals
 * encode(decode(x)).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "core/schedule_record.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test. */
#define FUZZ_INPUT_MAX 8192

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int inside(aj_slice s, const uint8_t *p, size_t n) {
    return s.p == NULL || s.n == 0 || (s.p >= p && s.p + s.n <= p + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    /* A copy of exactly `size` bytes, so that any over-read is caught by the sanitizers. */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    CHECK(copy != NULL);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    sched_rec r;
    int rc = sched_rec_decode(copy, size, &r);
    if (rc != 0) {
        CHECK(rc == AJ_ECORRUPT || rc == AJ_EFORMAT);
        CHECK(aj_errmsg()[0] != '\0');
        free(copy);
        return 0;
    }
    const aj_slice *all[] = {&r.name, &r.cron,    &r.tz,       &r.queue,
                             &r.type, &r.payload, &r.metadata, &r.route};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK(inside(*all[i], copy, size));
    }
    aj_schedule *pub = sched_rec_to_public(&r);
    CHECK(pub != NULL);
    if (r.route.p == NULL) {
        CHECK(pub->require_tag == NULL && pub->prefer_node == NULL && pub->avoid_node == NULL);
    }
    aj_schedule_free(pub);
    aj_buf a = AJ_BUF_INIT, b = AJ_BUF_INIT;
    CHECK(sched_rec_encode(&r, &a) == 0);
    sched_rec r2;
    CHECK(sched_rec_decode(a.p, a.len, &r2) == 0);
    CHECK((r2.route.p == NULL) == (r.route.p == NULL));
    CHECK(sched_rec_encode(&r2, &b) == 0);
    CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    aj__buf_free(&a);
    aj__buf_free(&b);
    free(copy);
    return 0;
}
