/*
 * sha256.c — SHA-256 through nettle (see sha256.h). Tested against the FIPS 180-4 example
 * vectors and the NIST long-message vector (tests/unit/test_sha256.c).
 */
#include "util/sha256.h"

void aj__sha256_init(aj_sha256 *c) {
    sha256_init(&c->ctx);
}

void aj__sha256_update(aj_sha256 *c, const void *data, size_t len) {
    sha256_update(&c->ctx, len, data);
}

void aj__sha256_final(aj_sha256 *c, uint8_t out[AJ_SHA256_LEN]) {
    sha256_digest(&c->ctx, AJ_SHA256_LEN, out);
}

void aj__sha256(const void *data, size_t len, uint8_t out[AJ_SHA256_LEN]) {
    aj_sha256 c;
    aj__sha256_init(&c);
    aj__sha256_update(&c, data, len);
    aj__sha256_final(&c, out);
}

void aj__sha256_hex(const uint8_t d[AJ_SHA256_LEN], char out[2 * AJ_SHA256_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < AJ_SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * AJ_SHA256_LEN] = '\0';
}
