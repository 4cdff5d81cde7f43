/*
 * test_log.c — logfmt quoting (src/util/log.c): every control byte 1..31 and DEL is escaped so
 * that a value can never split or forge a log line; plain values stay bare; a value cut for
 * room never ends inside an escape.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include "util/log.h"

/* No byte below 0x20 and no DEL in the text. */
static void assert_printable(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        assert_true(*p >= 0x20 && *p != 0x7f);
    }
}

static void test_every_control_byte(void **state) {
    (void)state;
    for (int c = 1; c < 32; c++) {
        char in[8], want[32], buf[64];
        snprintf(in, sizeof in, "a%cb", c);
        const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (named != NULL) {
            snprintf(want, sizeof want, "\"a%sb\"", named);
        } else {
            snprintf(want, sizeof want, "\"a\\u%04xb\"", (unsigned)c);
        }
        const char *got = aj__logq(buf, sizeof buf, in);
        assert_printable(got);
        assert_string_equal(got, want);
    }
    char buf[64];
    assert_string_equal(aj__logq(buf, sizeof buf, "x\x7fy"), "\"x\\u007fy\"");
    /* Every control byte in one value, and what other code relies on. */
    char all[40];
    for (int c = 1; c < 32; c++) {
        all[c - 1] = (char)c;
    }
    all[31] = '\0';
    char big[256];
    assert_printable(aj__logq(big, sizeof big, all));
    assert_string_equal(aj__logq(buf, sizeof buf, "q\"s\\e"), "\"q\\\"s\\\\e\"");
}

static void test_plain_and_empty(void **state) {
    (void)state;
    char buf[64];
    assert_string_equal(aj__logq(buf, sizeof buf, "plain.value-1"), "plain.value-1");
    assert_string_equal(aj__logq(buf, sizeof buf, ""), "\"\"");
    assert_string_equal(aj__logq(buf, sizeof buf, "a b"), "\"a b\"");
    assert_string_equal(aj__logq(buf, sizeof buf, "k=v"), "\"k=v\"");
    /* UTF-8 passes through unchanged. */
    assert_string_equal(aj__logq(buf, sizeof buf, "caf\xc3\xa9"), "caf\xc3\xa9");
}

static void test_cut_at_whole_escapes(void **state) {
    (void)state;
    char buf[10];
    /* "\"ab\\u0001" would need 9 bytes + quote + NUL: the escape is left out whole. */
    const char *got = aj__logq(buf, sizeof buf, "ab\x01");
    assert_string_equal(got, "\"ab\"");
    got = aj__logq(buf, 2, "a b");
    assert_string_equal(got, "");
    got = aj__logq(buf, 4, "abcdef");
    assert_string_equal(got, "abc");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_control_byte),
        cmocka_unit_test(test_plain_and_empty),
        cmocka_unit_test(test_cut_at_whole_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
