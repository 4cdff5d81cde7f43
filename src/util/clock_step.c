/*
 * clock_step.c — noticing wall-clock steps against the monotonic clock, and the hold reapers
 * apply after a forward one (see clock_step.h). No clock is read here.
 */
#include "util/clock_step.h"

#include <stddef.h>

int64_t aj__clock_step_check(aj_clock_step *d, int64_t wall_ms, int64_t mono_us) {
    int64_t offset = wall_ms - mono_us / 1000;
    int64_t step = d->primed ? offset - d->offset_ms : 0;
    /* The base follows every reading, so slewing never adds up to a step. */
    d->offset_ms = offset;
    d->primed = 1;
    if (step > -AJ_CLOCK_STEP_MIN_MS && step < AJ_CLOCK_STEP_MIN_MS) {
        return 0;
    }
    return step;
}

int64_t aj__step_hold_update(aj_step_hold *h, int64_t wall_ms, int64_t mono_us, int64_t *step) {
    int64_t s = aj__clock_step_check(&h->det, wall_ms, mono_us);
    if (step != NULL) {
        *step = s;
    }
    if (h->hold_ms > 0 && mono_us >= h->until_us) {
        h->hold_ms = 0; /* every live holder has had the grace period to renew */
    }
    if (s > 0) {
        /* Steps add up: after +45 s and then +45 s, a lease written before both is 90 s ahead
         * of the clock it was written by. */
        h->hold_ms += s;
        h->until_us = mono_us + (int64_t)AJ_CLOCK_STEP_GRACE_MS * 1000;
    }
    return h->hold_ms;
}
