/*
 * test_sha256.c — SHA-256 (src/util/sha256.c) against the FIPS 180-4 example vectors ("abc",
 * the two-block 448-bit message), the empty message, the NIST one-million-'a' message, and
 * incremental updates split at every offset (padding across block boundaries).
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "util/sha256.h"

static void check_hex(const void *data, size_t len, const char *want) {
    uint8_t d[AJ_SHA256_LEN];
    char hex[2 * AJ_SHA256_LEN + 1];
    aj__sha256(data, len, d);
    aj__sha256_hex(d, hex);
    assert_string_equal(hex, want);
}

static void test_fips_vectors(void **state) {
    (void)state;
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *four = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                       "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check_hex(four, strlen(four),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state) {
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    check_hex(a, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* The same message in uneven pieces. */
    aj_sha256 c;
    aj__sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < n) {
        size_t take = step < n - off ? step : n - off;
        aj__sha256_update(&c, a + off, take);
        off += take;
        step = step * 3 % 1021 + 1;
    }
    uint8_t d[AJ_SHA256_LEN];
    char hex[2 * AJ_SHA256_LEN + 1];
    aj__sha256_final(&c, d);
    aj__sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* Every split of messages around the padding boundaries gives the one-shot digest. */
static void test_splits(void **state) {
    (void)state;
    uint8_t msg[200];
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint8_t want[AJ_SHA256_LEN];
        aj__sha256(msg, len, want);
        for (size_t cut = 0; cut <= len; cut += 5) {
            aj_sha256 c;
            uint8_t got[AJ_SHA256_LEN];
            aj__sha256_init(&c);
            aj__sha256_update(&c, msg, cut);
            aj__sha256_update(&c, msg + cut, len - cut);
            aj__sha256_final(&c, got);
            assert_memory_equal(got, want, AJ_SHA256_LEN);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
