/*
 * rand.h — a small seeded PRNG (xoshiro256**), so that a seed replays every random decision
 * (jitter, ids of workers, test schedules). Not for secrets. Not thread-safe: one per owner.
 */
#ifndef AJ_UTIL_RAND_H
#define AJ_UTIL_RAND_H

#include <stdint.h>

typedef struct aj_rng {
    uint64_t s[4];
} aj_rng;

void aj__rng_seed(aj_rng *r, uint64_t seed);
/* Seeds from the OS (getrandom), falling back to time and pid. */
void aj__rng_seed_os(aj_rng *r);
uint64_t aj__rng_next(aj_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t aj__rng_below(aj_rng *r, uint64_t n);

#endif
