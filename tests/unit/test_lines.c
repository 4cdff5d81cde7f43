/*
 * test_lines.c — the payload-lines parser (util/lines.h): line splitting (LF, CRLF, a last line
 * without LF), validation of every line as exactly one JSON value, the size and count limits, the
 * error messages naming the line, and out-parameters left alone on failure.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "util/lines.h"
#include "util/mem.h"

int main(void);

/* Splits a C string and checks the spans against the expected line texts. */
static void split_ok(const char *text, const char *const *want, size_t n_want) {
    aj_span *spans = NULL;
    size_t n = 0;
    int rc = aj_payload_lines_split(text, strlen(text), &spans, &n);
    if (rc != 0) {
        fail_msg("split failed: %s", aj_errmsg());
    }
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(spans[i].len, strlen(want[i]));
        assert_memory_equal(text + spans[i].off, want[i], spans[i].len);
    }
    aj__free(spans);
}

static void split_bad_len(const char *text, size_t len, int code, const char *msg_part) {
    aj_span sentinel_span;
    aj_span *spans = &sentinel_span;
    size_t n = 12345;
    assert_int_equal(aj_payload_lines_split(text, len, &spans, &n), code);
    assert_ptr_equal(spans, &sentinel_span);
    assert_int_equal(n, 12345);
    if (strstr(aj_errmsg(), msg_part) == NULL) {
        fail_msg("error message \"%s\" does not contain \"%s\"", aj_errmsg(), msg_part);
    }
    /* One printable line, whatever bytes the input held. */
    for (const char *p = aj_errmsg(); *p != '\0'; p++) {
        assert_true(*p >= 0x20 && *p < 0x7f);
    }
}

static void split_bad(const char *text, int code, const char *msg_part) {
    split_bad_len(text, strlen(text), code, msg_part);
}

static void test_lines_split(void **state) {
    (void)state;
    const char *one[] = {"{}"};
    split_ok("{}", one, 1);
    split_ok("{}\n", one, 1);
    split_ok("{}\r\n", one, 1);
    split_ok("{}\r", one, 1); /* a CR ending the last line is dropped too */

    const char *two[] = {"{\"a\":1}", "[1,2]"};
    split_ok("{\"a\":1}\n[1,2]\n", two, 2);
    split_ok("{\"a\":1}\n[1,2]", two, 2);
    split_ok("{\"a\":1}\r\n[1,2]\r\n", two, 2);
    split_ok("{\"a\":1}\r\n[1,2]", two, 2);

    /* Any JSON value is a payload; whitespace around it stays part of the line. */
    const char *any[] = {"1", "\"x\"", "null", "true", "-2.5e3", "  {} ", "\t[]"};
    split_ok("1\n\"x\"\nnull\ntrue\n-2.5e3\n  {} \n\t[]\n", any, 7);

    const char *utf8[] = {"\"caf\xc3\xa9\"", "{\"k\":\"\\u00e9\"}"};
    split_ok("\"caf\xc3\xa9\"\n{\"k\":\"\\u00e9\"}\n", utf8, 2);
}

static void test_lines_offsets(void **state) {
    (void)state;
    const char *text = "{}\r\n[1]\n\"abc\"";
    aj_span *spans;
    size_t n;
    assert_int_equal(aj_payload_lines_split(text, strlen(text), &spans, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(spans[0].off, 0);
    assert_int_equal(spans[0].len, 2);
    assert_int_equal(spans[1].off, 4);
    assert_int_equal(spans[1].len, 3);
    assert_int_equal(spans[2].off, 8);
    assert_int_equal(spans[2].len, 5);
    aj__free(spans);
}

static void test_lines_empty(void **state) {
    (void)state;
    split_bad("", AJ_EINVAL, "the text holds no lines");
    split_bad_len(NULL, 0, AJ_EINVAL, "the text holds no lines");
    split_bad("\n", AJ_EINVAL, "line 1 is blank");
    split_bad("\r\n", AJ_EINVAL, "line 1 is blank");
    split_bad("{}\n\n", AJ_EINVAL, "line 2 is blank");
    split_bad("{}\n   \n{}\n", AJ_EINVAL, "line 2 is blank");
    split_bad("{}\n{}\n\t \r\n", AJ_EINVAL, "line 3 is blank");
    split_bad("\n{}", AJ_EINVAL, "line 1 is blank");
}

static void test_lines_bad_json(void **state) {
    (void)state;
    /* Trailing garbage after a complete value is refused on every line. */
    split_bad("{} x", AJ_EINVAL, "line 1 is not valid JSON: column ");
    split_bad("{}{}", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("1 2", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("[1]]", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("{}\r{}\n", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("{\"a\":1}\n{\"a\":", AJ_EINVAL, "line 2 is not valid JSON");
    split_bad("{}\n{}\nnope\n{}\n", AJ_EINVAL, "line 3 is not valid JSON: column ");
    split_bad("{'a':1}", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("\"\xff\"", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("\"a\x01\"", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("\"\\u12\"", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad("\"\\ud800\"", AJ_EINVAL, "line 1 is not valid JSON"); /* a lone surrogate */
    split_bad("\x0c{}", AJ_EINVAL, "line 1 is not valid JSON");
    split_bad_len("{\0}", 3, AJ_EINVAL, "line 1 is not valid JSON");
    split_bad_len("{}\n\0", 4, AJ_EINVAL, "line 2 is not valid JSON");

    /* The first bad line is the one named, even when a later one is also bad. */
    split_bad("{}\nx\ny\n", AJ_EINVAL, "line 2 ");
}

static void test_lines_deep_nesting(void **state) {
    (void)state;
    enum { DEPTH = 100000 };
    char *text = malloc(2 * DEPTH);
    assert_non_null(text);
    memset(text, '[', DEPTH);
    memset(text + DEPTH, ']', DEPTH);
    aj_span *spans = NULL;
    size_t n = 0;
    /* Nesting deeper than AJ_JSON_DEPTH_MAX is refused with an error, never a stack overflow. */
    assert_int_equal(aj_payload_lines_split(text, 2 * DEPTH, &spans, &n), AJ_EINVAL);
    free(text);
}

static void test_lines_size_limit(void **state) {
    (void)state;
    /* A JSON string of exactly AJ_PAYLOAD_MAX bytes, then one byte more. */
    size_t len = AJ_PAYLOAD_MAX;
    char *text = malloc(len + 2);
    assert_non_null(text);
    text[0] = '"';
    memset(text + 1, 'a', len - 2);
    text[len - 1] = '"';
    text[len] = '\n';
    aj_span *spans = NULL;
    size_t n = 0;
    assert_int_equal(aj_payload_lines_split(text, len + 1, &spans, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(spans[0].len, AJ_PAYLOAD_MAX);
    aj__free(spans);

    text[len - 1] = 'a';
    text[len] = '"';
    text[len + 1] = '\n';
    spans = NULL;
    assert_int_equal(aj_payload_lines_split(text, len + 2, &spans, &n), AJ_ETOOBIG);
    assert_null(spans);
    assert_string_equal(aj_errmsg(), "line 1 is 67108865 bytes, over the 64 MiB limit");
    free(text);
}

static void test_lines_count_limit(void **state) {
    (void)state;
    size_t len = 2 * ((size_t)AJ_BATCH_MAX + 1);
    char *text = malloc(len);
    assert_non_null(text);
    for (size_t i = 0; i < len; i += 2) {
        text[i] = '1';
        text[i + 1] = '\n';
    }
    aj_span *spans = NULL;
    size_t n = 0;
    assert_int_equal(aj_payload_lines_split(text, len - 2, &spans, &n), 0);
    assert_int_equal(n, AJ_BATCH_MAX);
    assert_int_equal(spans[AJ_BATCH_MAX - 1].off, len - 4);
    aj__free(spans);
    /* Without its final LF the last line still counts. */
    assert_int_equal(aj_payload_lines_split(text, len - 3, &spans, &n), 0);
    assert_int_equal(n, AJ_BATCH_MAX);
    aj__free(spans);

    spans = NULL;
    assert_int_equal(aj_payload_lines_split(text, len, &spans, &n), AJ_ETOOBIG);
    assert_string_equal(aj_errmsg(), "payload lines are over the batch limit of 100000");
    assert_int_equal(aj_payload_lines_split(text, len - 1, &spans, &n), AJ_ETOOBIG);
    assert_null(spans);
    free(text);
}

static void test_lines_out_of_memory(void **state) {
    (void)state;
    aj_span *spans = NULL;
    size_t n = 99;
    aj__mem_fail_at(1);
    assert_int_equal(aj_payload_lines_split("{}\n[]\n", 6, &spans, &n), AJ_ENOMEM);
    aj__mem_fail_at(0);
    assert_null(spans);
    assert_int_equal(n, 99);
    assert_int_equal(aj_payload_lines_split("{}\n[]\n", 6, &spans, &n), 0);
    assert_int_equal(n, 2);
    aj__free(spans);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_split),        cmocka_unit_test(test_lines_offsets),
        cmocka_unit_test(test_lines_empty),        cmocka_unit_test(test_lines_bad_json),
        cmocka_unit_test(test_lines_deep_nesting), cmocka_unit_test(test_lines_size_limit),
        cmocka_unit_test(test_lines_count_limit),  cmocka_unit_test(test_lines_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
