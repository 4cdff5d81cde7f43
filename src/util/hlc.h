/*
 * hlc.h — a hybrid logical clock: timestamps that follow the wall clock but never go backwards
 * and order every event a process has seen before the events it then makes.
 *
 * A timestamp is (ms, logical): physical Unix milliseconds and a counter that breaks ties within
 * one millisecond. Rules (Kulkarni et al., "Logical Physical Clocks", 2014):
 *   now:      ms' = max(last.ms, physical); logical' = last.logical + 1 if ms' == last.ms, else 0
 *   observe:  ms' = max(last.ms, remote.ms, physical); logical' continues whichever of last and
 *             remote had ms' (the larger counter + 1 when both did), else 0
 * so a timestamp issued after observing another is always greater than it, whatever the wall
 * clocks of the two processes say. The physical clock is injected (an aj_clock), so tests replay
 * exactly. When the counter would overflow, the clock moves to the next millisecond instead.
 *
 * An aj_hlc is not thread-safe: its owner serialises calls. Timestamps are plain values.
 */
#ifndef AJ_UTIL_HLC_H
#define AJ_UTIL_HLC_H

#include <stdint.h>

#include "aj.h"

typedef struct aj_hlc_ts {
    int64_t ms;       /* physical part: Unix milliseconds */
    uint32_t logical; /* ties within one millisecond */
} aj_hlc_ts;

typedef struct aj_hlc {
    aj_clock clock; /* the physical clock (copied) */
    aj_hlc_ts last; /* the greatest timestamp issued or observed */
} aj_hlc;

/* Starts a clock reading `clock` (copied); nothing issued yet. */
void aj__hlc_init(aj_hlc *h, const aj_clock *clock);
/* Issues a timestamp greater than every one issued or observed before. */
aj_hlc_ts aj__hlc_now(aj_hlc *h);
/* Takes in a timestamp seen elsewhere (a stored record's), so that later ones exceed it. */
void aj__hlc_observe(aj_hlc *h, aj_hlc_ts remote);
/* -1, 0 or 1 as a is before, equal to or after b. */
int aj__hlc_cmp(aj_hlc_ts a, aj_hlc_ts b);

/* The pure steps behind now and observe, for callers that hold the state elsewhere. */
aj_hlc_ts aj__hlc_next(aj_hlc_ts last, int64_t physical_ms);
aj_hlc_ts aj__hlc_merge(aj_hlc_ts last, aj_hlc_ts remote, int64_t physical_ms);

#endif
