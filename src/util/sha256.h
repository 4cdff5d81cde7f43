/*
 * sha256.h — SHA-256 (FIPS 180-4), for content addresses of large payloads (core/blob.c): a
 * collision-resistant 256-bit hash, so that two different payloads never share stored chunks.
 * A thin wrapper over nettle (docs/ARCHITECTURE.md, "Dependencies"), which picks the CPU's SHA
 * instructions when it has them. A context belongs to one thread at a time.
 */
#ifndef AJ_UTIL_SHA256_H
#define AJ_UTIL_SHA256_H

#include <nettle/sha2.h>
#include <stddef.h>
#include <stdint.h>

#define AJ_SHA256_LEN 32 /* bytes of a digest */

typedef struct aj_sha256 {
    struct sha256_ctx ctx;
} aj_sha256;

void aj__sha256_init(aj_sha256 *c);
void aj__sha256_update(aj_sha256 *c, const void *data, size_t len);
void aj__sha256_final(aj_sha256 *c, uint8_t out[AJ_SHA256_LEN]);
/* The digest of one buffer. */
void aj__sha256(const void *data, size_t len, uint8_t out[AJ_SHA256_LEN]);
/* Lower-case hex of a digest into out (2 * AJ_SHA256_LEN + 1 bytes, NUL-terminated). */
void aj__sha256_hex(const uint8_t d[AJ_SHA256_LEN], char out[2 * AJ_SHA256_LEN + 1]);

#endif
