/*
 * clock_step.h — noticing steps of the wall clock. The wall clock (CLOCK_REALTIME, or an engine's
 * injected aj_clock) can be stepped by an operator or NTP; the monotonic clock cannot. A step
 * shows as a change of (wall - monotonic) between two readings; slewing changes it by at most
 * 0.5 ms per second and is not a step. Pure: the caller passes both readings, so the tests drive
 * it with invented times.
 */
#ifndef AJ_UTIL_CLOCK_STEP_H
#define AJ_UTIL_CLOCK_STEP_H

#include <stdint.h>

/* A change of (wall - monotonic) at least this large between two readings is a step. Smaller
 * ones (scheduling delay between the two reads, slewing) are followed silently: a lease keeps
 * two thirds of its length (at least AJ_LEASE_MIN_MS) as a margin, far more than this. */
#define AJ_CLOCK_STEP_MIN_MS 250
/* After a forward step, reapers judge leases by the clock as it was before the step for this
 * long: every live lease holder on the machine sees the same step and renews its leases on the
 * new clock at once (docs/DURABILITY.md, "Clocks"); this is the time it is given to do so. */
#define AJ_CLOCK_STEP_GRACE_MS 30000

typedef struct aj_clock_step {
    int64_t offset_ms; /* wall - monotonic at the last reading */
    int primed;        /* a reading was taken */
} aj_clock_step;

/* Takes a reading; returns the step since the previous one (ms, negative when the wall clock
 * went back), or 0 when there was none (also on the first reading). */
int64_t aj__clock_step_check(aj_clock_step *d, int64_t wall_ms, int64_t mono_us);

/* What a reaper subtracts from the wall clock: forward steps seen within the last
 * AJ_CLOCK_STEP_GRACE_MS. A backward step lengthens leases (they are reaped late by its size)
 * and needs no hold; it never cancels a forward step's hold early, because leases written before
 * the backward step are still on the clock of before it. */
typedef struct aj_step_hold {
    aj_clock_step det;
    int64_t hold_ms;  /* subtracted from the wall clock while held */
    int64_t until_us; /* monotonic time the hold ends */
} aj_step_hold;

/* Takes a reading; returns the milliseconds to subtract from wall_ms now (0: none). *step, when
 * not NULL, receives the step seen by this reading (0: none). */
int64_t aj__step_hold_update(aj_step_hold *h, int64_t wall_ms, int64_t mono_us, int64_t *step);

#endif
