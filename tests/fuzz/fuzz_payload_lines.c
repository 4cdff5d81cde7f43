/*
 * fuzz_payload_lines.c — fuzzes aj_payload_lines_split() against a reference splitter written
 * separately here. Properties: the call succeeds exactly when the reference finds 1..AJ_BATCH_MAX
 * lines that are each non-blank, at most AJ_PAYLOAD_MAX bytes and one complete JSON value; on
 * success the spans equal the reference's lines (in order, inside the input, without CR or LF);
 * on failure the code is AJ_EINVAL or AJ_ETOOBIG with a one-line printable message naming the
 * line, and the out-parameters are untouched.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "util/lines.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs are kept small enough that the fuzzer stays fast; limits are tested in test_lines.c. */
#define FUZZ_INPUT_MAX 65536

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The reference splitter: walks the text byte by byte and records up to `max` lines (without
 * CR/LF); returns how many lines there are. */
static size_t reference_lines(const char *text, size_t len, aj_span *spans, size_t max) {
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        int end_of_line = i == len ? start < len : text[i] == '\n';
        if (!end_of_line) {
            continue;
        }
        size_t e = i;
        if (e > start && text[e - 1] == '\r') {
            e--;
        }
        if (n < max) {
            spans[n].off = start;
            spans[n].len = e - start;
        }
        n++;
        start = i + 1;
    }
    return n;
}

static int reference_line_ok(const char *p, size_t len) {
    if (len > AJ_PAYLOAD_MAX) {
        return 0;
    }
    size_t blanks = 0;
    while (blanks < len && (p[blanks] == ' ' || p[blanks] == '\t' || p[blanks] == '\r')) {
        blanks++;
    }
    if (blanks == len) {
        return 0;
    }
    json_error_t err;
    json_t *v = json_loadb(p, len, JSON_DECODE_ANY, &err);
    if (v == NULL) {
        return 0;
    }
    json_decref(v);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    /* A private copy, so reads past the end are caught by ASan rather than hidden by padding. */
    char *text = malloc(size == 0 ? 1 : size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);

    size_t max = size + 1;
    aj_span *ref = malloc(max * sizeof *ref);
    if (ref == NULL) {
        free(text);
        return 0;
    }
    size_t n_ref = reference_lines(text, size, ref, max);
    int want_ok = n_ref >= 1 && n_ref <= AJ_BATCH_MAX;
    for (size_t i = 0; want_ok && i < n_ref; i++) {
        want_ok = reference_line_ok(text + ref[i].off, ref[i].len);
    }

    aj_span sentinel;
    aj_span *spans = &sentinel;
    size_t n = 7;
    int rc = aj_payload_lines_split(text, size, &spans, &n);
    CHECK((rc == 0) == want_ok);
    if (rc == 0) {
        CHECK(n == n_ref);
        for (size_t i = 0; i < n; i++) {
            CHECK(spans[i].off == ref[i].off && spans[i].len == ref[i].len);
            CHECK(spans[i].off + spans[i].len <= size);
            CHECK(memchr(text + spans[i].off, '\n', spans[i].len) == NULL);
        }
        aj__free(spans);
    } else {
        CHECK(rc == AJ_EINVAL || rc == AJ_ETOOBIG);
        CHECK(spans == &sentinel && n == 7);
        const char *msg = aj_errmsg();
        CHECK(strncmp(msg, "line ", 5) == 0 || strcmp(msg, "the text holds no lines") == 0 ||
              strncmp(msg, "payload lines are over", 22) == 0);
        for (const char *p = msg; *p != '\0'; p++) {
            CHECK(*p >= 0x20 && *p < 0x7f);
        }
    }
    free(ref);
    free(text);
    return 0;
}
