/*
 * fuzz_progress.c — fuzzes the parsers of progress and dead-letter analytics. The first byte
 * picks the parser, the rest is its input:
 *   0  progress_line_parse(): a malformed line is AJ_EINVAL with a one-line message; a parsed
 *      one is of a known kind, its text lies inside the input, its percentage is at most 100
 *      and its names pass progress_name_check();
 *   1  progress_decode(): a record either fails with AJ_ECORRUPT/AJ_EFORMAT or decodes to a
 *      state that survives re-encoding, and merging it with itself changes nothing;
 *   2  aj_dlq_error_group(): the group is NUL-terminated, at most AJ_DLQ_GROUP_MAX bytes, and
 *      grouping it again gives the same group (normalising is idempotent).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "core/progress.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test, and slow the fuzzer down. */
#define FUZZ_INPUT_MAX 8192

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fuzz_line(const uint8_t *p, size_t n) {
    const char *line = (const char *)p;
    progress_line pl;
    int rc = progress_line_parse(line, n, &pl);
    if (rc != 0) {
        CHECK(rc == AJ_EINVAL);
        CHECK(strchr(aj_errmsg(), '\n') == NULL);
        return;
    }
    CHECK(pl.kind <= PROGRESS_LINE_COUNT);
    if (pl.text != NULL) {
        CHECK(pl.text >= line && pl.text + pl.text_len <= line + n);
    }
    if (pl.kind == PROGRESS_LINE_PERCENT) {
        CHECK(pl.percent <= PROGRESS_PERCENT_MAX);
        CHECK(pl.text_len <= AJ_PROGRESS_MESSAGE_MAX);
    }
    if (pl.kind == PROGRESS_LINE_STEP || pl.kind == PROGRESS_LINE_COUNT) {
        CHECK(progress_name_check("name", pl.text, pl.text_len, pl.kind == PROGRESS_LINE_COUNT) ==
              0);
    }
}

static void fuzz_decode(const uint8_t *p, size_t n) {
    progress_state *s = malloc(sizeof *s);
    progress_state *t = malloc(sizeof *t);
    if (s == NULL || t == NULL) {
        free(s);
        free(t);
        return;
    }
    int rc = progress_decode(p, n, s);
    if (rc != 0) {
        CHECK(rc == AJ_ECORRUPT || rc == AJ_EFORMAT);
    } else {
        /* Varints may be written overlong, so compare states, not bytes: the re-encoded
         * record decodes to the same state. */
        aj_buf b = AJ_BUF_INIT;
        CHECK(progress_encode(s, &b) == 0);
        CHECK(progress_decode(b.p, b.len, t) == 0);
        CHECK(progress_equal(s, t));
        aj__buf_free(&b);
        *t = *s;
        progress_merge(t, s);
        CHECK(progress_equal(t, s));
    }
    free(s);
    free(t);
}

static void fuzz_group(const uint8_t *p, size_t n) {
    char *text = malloc(n + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    char g1[AJ_DLQ_GROUP_MAX + 1], g2[AJ_DLQ_GROUP_MAX + 1];
    size_t n1 = aj_dlq_error_group(text, g1, sizeof g1);
    CHECK(n1 <= AJ_DLQ_GROUP_MAX && n1 == strlen(g1));
    if (n1 < AJ_DLQ_GROUP_MAX) {
        size_t n2 = aj_dlq_error_group(g1, g2, sizeof g2);
        CHECK(n2 == n1 && strcmp(g1, g2) == 0);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > FUZZ_INPUT_MAX) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_line(data + 1, size - 1);
        break;
    case 1:
        fuzz_decode(data + 1, size - 1);
        break;
    default:
        fuzz_group(data + 1, size - 1);
        break;
    }
    return 0;
}
