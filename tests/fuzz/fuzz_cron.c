/*
 * fuzz_cron.c — fuzzes the cron parser and next-fire search (src/core/cron.c), and the time zone
 * readers behind them (src/core/tz.c). The input is a cron expression, unless it starts with
 * "TZif" (a zone file for tz_parse) or "TZ=" (a POSIX TZ rule for tz_posix_parse).
 *
 * Properties of an expression: the parser returns 0 or AJ_EINVAL with a one-line message that
 * starts "cron expression" and leaves its output alone. An accepted expression, searched from a
 * few instants in UTC and in America/New_York (which has daylight-saving gaps and overlaps), gives
 * fire times that strictly increase, are whole seconds (or lie on the @every grid), and are each
 * the first fire after the instant just before them (nothing is skipped between two answers).
 * Properties of a zone: parsing fails cleanly or gives a zone whose offsets are in range and whose
 * conversions agree: the first instant reaching an instant's local time is never later than it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "core/cron.h"
#include "core/tz.h"
#include "runtime/tz_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test (a zone file is at most a few KiB). */
#define FUZZ_INPUT_MAX 8192
/* Fire times followed from each start. */
#define FUZZ_FIRES 4
/* A value the parser must not write on failure. */
#define FUZZ_SENTINEL 0x5a

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Starts of the searches: around the 2026 US changes, an epoch, and far ahead. */
static const int64_t starts[] = {
    1772949600000LL, /* 2026-03-08T06:00:00Z */
    1793422800000LL, /* 2026-11-01T05:00:00Z */
    0,               /* 1970-01-01T00:00:00Z */
    4102444800123LL, /* 2100-01-01T00:00:00.123Z */
};

static const tz_zone *zone_ny(void) {
    static tz_zone *z;
    static int tried;
    if (!tried) {
        tried = 1;
        if (tz_load("America/New_York", NULL, &z) != 0) {
            z = NULL; /* no zoneinfo here: only UTC is checked */
        }
    }
    return z;
}

static void check_fires(const cron_expr *c, const tz_zone *z, int64_t start) {
    int64_t t = start;
    for (int i = 0; i < FUZZ_FIRES; i++) {
        int64_t next = 0;
        if (cron_next(c, z, start, t, &next) != 0) {
            return;
        }
        CHECK(next > t);
        if (c->kind == CRON_EVERY) {
            CHECK((next - start) % c->every_ms == 0);
        } else {
            CHECK(next % 1000 == 0);
        }
        int64_t again = 0;
        CHECK(cron_next(c, z, start, next - 1, &again) == 0);
        CHECK(again == next);
        t = next;
    }
}

static void fuzz_expr(const char *text) {
    cron_expr c;
    memset(&c, FUZZ_SENTINEL, sizeof c);
    cron_expr before = c;
    int rc = cron_parse(text, &c);
    if (rc != 0) {
        CHECK(rc == AJ_EINVAL);
        CHECK(memcmp(&c, &before, sizeof c) == 0);
        CHECK(strncmp(aj_errmsg(), "cron expression", 15) == 0);
        CHECK(strchr(aj_errmsg(), '\n') == NULL);
        return;
    }
    tz_zone *utc = NULL;
    CHECK(tz_utc(&utc) == 0);
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        check_fires(&c, utc, starts[i]);
        if (zone_ny() != NULL) {
            check_fires(&c, zone_ny(), starts[i]);
        }
    }
    tz_free(utc);
}

static void fuzz_zone(const uint8_t *data, size_t size) {
    tz_zone *z = NULL;
    int rc = tz_parse("fuzz", data, size, &z);
    if (rc != 0) {
        CHECK(z == NULL);
        CHECK(strchr(aj_errmsg(), '\n') == NULL);
        return;
    }
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        int64_t t = starts[i] / 1000;
        int32_t off = tz_offset_at(z, t);
        CHECK(off >= -TZ_OFFSET_MAX_S && off <= TZ_OFFSET_MAX_S);
        int64_t change = tz_next_change(z, t);
        CHECK(change > t);
        int64_t back = tz_from_local(z, tz_to_local(z, t));
        CHECK(back <= t);
    }
    tz_free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
        fuzz_zone(data, size);
        return 0;
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (strncmp(text, "TZ=", 3) == 0) {
        tz_posix p;
        int rc = tz_posix_parse(text + 3, &p);
        CHECK(rc == 0 || rc == AJ_EINVAL);
        if (rc == 0) {
            CHECK(p.std_off >= -TZ_OFFSET_MAX_S && p.std_off <= TZ_OFFSET_MAX_S);
        }
    } else {
        fuzz_expr(text);
    }
    free(text);
    return 0;
}
