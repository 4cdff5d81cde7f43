/*
 * wf_timers.c — durable timers: timer_scheduled (with the fire time, so a replay uses the
 * recorded time), timer_fired recorded at the live edge when due, and a wake-up job so a task
 * runs then (aj_sleep, aj_sleep_until). The timer is shared with signal timeouts
 * (wf_signals.c). Runtime layer (wf_ctx.h).
 */
#include <stdint.h>

#include "core/workflow.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"
#include "util/hist.h"

/* ----------------------------------------------------------------------------------------- */
/* Timers and signals                                                                         */

/* Schedules (or replays) a timer; *out_seq receives its timer_scheduled seq, *out_fired whether
 * it has fired (visible before `before`, or firing now when due). */
int wfx_timer(aj_wf *wf, const char *name, int64_t fire_at, uint64_t *out_seq,
              uint64_t *out_fired_seq) {
    const wf_event *ev = NULL;
    int rc = wfx_next_command(wf, EV_TIMER_SCHEDULED, EV_TIMER_SCHEDULED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    int replayed = rc == 1; /* scheduled by an earlier task, whose wake-up may be spent */
    uint64_t seq;
    if (rc == 0) {
        if (wf->query_mode) {
            return wfx_suspend(wf);
        }
        aj_bytes none = {"", 0};
        if ((rc = wfx_record(wf, EV_TIMER_SCHEDULED, name, none, (uint64_t)fire_at, 0, 0)) != 0) {
            return rc;
        }
        seq = wf->w.seq;
        if (fire_at > wf->env->now_ms &&
            (rc = wf_wake(wf->t, wf->env, wf->w.id, wf->w.type, fire_at)) != 0) {
            return rc;
        }
    } else {
        seq = ev->seq;
        fire_at = (int64_t)ev->aux;
    }
    *out_seq = seq;
    const wf_event *fired =
        wfx_find_arrival(wf, seq, EV_TIMER_FIRED, EV_TIMER_FIRED, 0, UINT64_MAX);
    if (fired != NULL) {
        *out_fired_seq = fired->seq;
        return 0;
    }
    *out_fired_seq = 0;
    /* Not fired yet. At the live edge a due timer fires now (recorded, so replays agree). */
    if (!wf->query_mode && wfx_horizon(wf) == UINT64_MAX) {
        if (wf->env->now_ms >= fire_at) {
            aj_bytes none = {"", 0};
            if ((rc = wfx_record(wf, EV_TIMER_FIRED, name, none, 0, seq, 0)) != 0) {
                return rc;
            }
            if (wf->env->delta != NULL) {
                wf->env->delta
                    ->wf_timer_lag_hist[aj__hist_bucket((uint64_t)(wf->env->now_ms - fire_at))]++;
            }
            *out_fired_seq = wf->w.seq;
        } else if (replayed) {
            /* Woken early (another event, or a clock behind the one that scheduled it): make
             * sure a task still runs when the timer is due. */
            if ((rc = wf_wake(wf->t, wf->env, wf->w.id, wf->w.type, fire_at)) != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int aj_sleep_until(aj_wf *wf, int64_t at_ms) {
    uint64_t seq, fired;
    int rc = wfx_timer(wf, "sleep", at_ms, &seq, &fired);
    if (rc != 0) {
        return rc;
    }
    if (fired != 0) {
        return wfx_updates_replay(wf, fired);
    }
    if (wfx_cancel_visible(wf, wfx_horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled while sleeping");
    }
    return aj__wf_suspend_at(wf, "timer", "sleep", 1);
}

int aj_sleep(aj_wf *wf, int64_t ms) {
    if (ms < 0) {
        return aj__err(AJ_EINVAL, "a sleep must not be negative");
    }
    /* The wake time is fixed when the timer is first scheduled; on replay it comes from the
     * history, so the current time used here does not matter then. */
    return aj_sleep_until(wf, wf->env->now_ms + ms);
}
