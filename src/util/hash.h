/*
 * hash.h — FNV-1a 64-bit, for fingerprints that only need to tell inputs apart (idempotency
 * payload checks), not to resist attackers.
 */
#ifndef AJ_UTIL_HASH_H
#define AJ_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define AJ_FNV_INIT 0xcbf29ce484222325ULL

static inline uint64_t aj__fnv1a(uint64_t h, const void *data, size_t len) {
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
