/*
 * clock.h — time sources. Core code never reads a clock itself: it is handed `now`. The runtime
 * reads the engine's injected aj_clock (wall time, for records) and the monotonic clock (for
 * waiting and measuring).
 */
#ifndef AJ_UTIL_CLOCK_H
#define AJ_UTIL_CLOCK_H

#include <stdint.h>

#include "aj.h"

/* Wall-clock Unix milliseconds. */
int64_t aj__wall_ms(void);
/* Monotonic microseconds, for intervals. */
int64_t aj__mono_us(void);
/* A clock that reads aj__wall_ms(). */
extern const aj_clock aj__system_clock;
static inline int64_t aj__clock_now(const aj_clock *c) {
    return c->now_ms(c->ud);
}
void aj__sleep_ms(int64_t ms);
/* Fills a timespec for pthread_cond_timedwait on CLOCK_MONOTONIC, timeout_ms from now. */
struct timespec;
void aj__deadline_ts(struct timespec *ts, int64_t timeout_ms);

#endif
