/*
 * wf_signals.c — aj_wait_signal: the first unconsumed signal of a name that arrived before the
 * call's position in the history (and before its timeout fired); the timeout is a timer
 * (wf_timers.c) cancelled by a command when a signal comes first. Signals not consumed by a run
 * carry over to the next one on continue-as-new (wf_continue.c). Runtime layer (wf_ctx.h).
 */
#include <stdio.h>

#include "core/history.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"

/* ----------------------------------------------------------------------------------------- */
/* Signals                                                                                  */

int aj_wait_signal(aj_wf *wf, const char *name, int64_t timeout_ms, aj_bytes *out) {
    uint64_t timer_seq = 0, fired_seq = 0;
    char tname[AJ_NAME_MAX + 16];
    snprintf(tname, sizeof tname, "signal:%s", name);
    if (timeout_ms >= 0) {
        int rc = wfx_timer(wf, tname, wf->env->now_ms + timeout_ms, &timer_seq, &fired_seq);
        if (rc != 0) {
            return rc;
        }
    }
    /* The first unconsumed signal of that name that arrived before the timeout fired and
     * before this call's position in the history; once more past this call's wait point when
     * the run waited here before. */
    int marked = 0;
again:;
    uint64_t before = wfx_horizon(wf);
    if (fired_seq != 0 && fired_seq < before) {
        before = fired_seq;
    }
    for (size_t i = 0; i < wf->n_events && wf->events[i].seq < before; i++) {
        const wf_event *ev = &wf->events[i];
        if (ev->type == EV_SIGNAL_RECEIVED && !wf->consumed[i] && aj__slice_eq(ev->name, name)) {
            wf->consumed[i] = 1;
            int urc = wfx_updates_replay(wf, ev->seq);
            if (urc != 0) {
                return urc;
            }
            if (out != NULL) {
                *out = wfx_bytes_of(ev->data);
            }
            if (timer_seq != 0 && fired_seq == 0) {
                /* Cancel the timeout: a command, so replays expect it. */
                const wf_event *c = NULL;
                int rc = wfx_next_command(wf, EV_TIMER_CANCELLED, EV_TIMER_CANCELLED, tname, &c);
                if (rc < 0) {
                    return rc;
                }
                if (rc == 0 && !wf->query_mode) {
                    aj_bytes none = {"", 0};
                    return wfx_record(wf, EV_TIMER_CANCELLED, tname, none, 0, timer_seq, 0);
                }
            }
            return 0;
        }
    }
    if (fired_seq != 0) {
        int urc = wfx_updates_replay(wf, fired_seq);
        if (urc != 0) {
            return urc;
        }
        return aj__err(AJ_ETIMEDOUT, "no signal '%s' within %lld ms", name, (long long)timeout_ms);
    }
    int mrc = aj__wf_wait_marker(wf, "signal", name);
    if (mrc < 0) {
        return mrc;
    }
    if (mrc == 1) {
        marked = 1;
        goto again;
    }
    if (wfx_cancel_visible(wf, wfx_horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled while waiting for signal '%s'", name);
    }
    /* With a timeout, the timer_scheduled just replayed or made marks where the code waits. */
    return aj__wf_suspend_at(wf, "signal", name, timer_seq != 0 || marked);
}
