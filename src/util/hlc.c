/*
 * hlc.c — the hybrid logical clock of hlc.h.
 *
 * Invariant: every timestamp returned by aj__hlc_now() is greater (aj__hlc_cmp) than `last`,
 * which is the greatest timestamp issued or observed so far; the physical part never goes below
 * the injected clock's reading. Counter overflow spills into the next millisecond, so the order
 * stays total without a wider counter. Part of util/: depends on nothing but aj.h's aj_clock.
 */
#include "util/hlc.h"

/* The largest logical counter; one more moves the timestamp to the next millisecond. */
#define HLC_LOGICAL_MAX UINT32_MAX

/* The timestamp right after (ms, logical): the counter plus one, or the next millisecond. */
static aj_hlc_ts successor(int64_t ms, uint32_t logical) {
    aj_hlc_ts t;
    if (logical == HLC_LOGICAL_MAX) {
        t.ms = ms + 1;
        t.logical = 0;
    } else {
        t.ms = ms;
        t.logical = logical + 1;
    }
    return t;
}

int aj__hlc_cmp(aj_hlc_ts a, aj_hlc_ts b) {
    if (a.ms != b.ms) {
        return a.ms < b.ms ? -1 : 1;
    }
    if (a.logical != b.logical) {
        return a.logical < b.logical ? -1 : 1;
    }
    return 0;
}

aj_hlc_ts aj__hlc_next(aj_hlc_ts last, int64_t physical_ms) {
    if (physical_ms > last.ms) {
        aj_hlc_ts t = {physical_ms, 0};
        return t;
    }
    return successor(last.ms, last.logical);
}

aj_hlc_ts aj__hlc_merge(aj_hlc_ts last, aj_hlc_ts remote, int64_t physical_ms) {
    if (physical_ms > last.ms && physical_ms > remote.ms) {
        aj_hlc_ts t = {physical_ms, 0};
        return t;
    }
    /* The later of the two known stamps carries on; on equal milliseconds, the larger counter. */
    aj_hlc_ts top = aj__hlc_cmp(last, remote) >= 0 ? last : remote;
    return successor(top.ms, top.logical);
}

void aj__hlc_init(aj_hlc *h, const aj_clock *clock) {
    h->clock = *clock;
    h->last.ms = 0;
    h->last.logical = 0;
}

aj_hlc_ts aj__hlc_now(aj_hlc *h) {
    h->last = aj__hlc_next(h->last, h->clock.now_ms(h->clock.ud));
    return h->last;
}

void aj__hlc_observe(aj_hlc *h, aj_hlc_ts remote) {
    if (aj__hlc_cmp(remote, h->last) <= 0) {
        return; /* nothing new: the next now() already exceeds it */
    }
    h->last = aj__hlc_merge(h->last, remote, h->clock.now_ms(h->clock.ud));
}
