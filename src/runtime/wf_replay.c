/*
 * wf_replay.c — the workflow task: running workflow code against its history.
 *
 * One task = one transaction: it loads the run's history (wf_context.c), moves the inbox
 * (activity outcomes, signals, cancel requests; update requests are kept aside) into the
 * history, runs the workflow function from the start, and commits every event the function
 * produced together with the jobs it scheduled, ending the run when the function returned. A
 * conflict re-runs the task; a crash before the commit leaves the task job to run again. Either
 * way a step completed in a committed task is never run again. Code that diverged from its
 * history parks the run (aj__wf_park). Also the read-only replay check (aj_wf_replay_check).
 * Runtime layer: called by the task handler in wf_api.c; the durable calls are in wf_steps.c,
 * wf_activity.c, wf_timers.c, wf_signals.c, wf_side_effect.c, wf_saga_api.c, wf_continue.c,
 * wf_child.c and wf_patch.c.
 */
#include <stdio.h>
#include <string.h>

#include "core/child.h"
#include "core/history.h"
#include "core/wf_reply.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_ctx.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Running a workflow                                                                         */

static int drain_inbox_cb(void *ud, const wf_inbox_entry *e) {
    aj_wf *wf = ud;
    if (e->type == EV_UPDATE_REQUESTED) {
        if (e->run != wf->w.run) {
            return wf_reply_put(wf->t, (int64_t)e->ref, e->aux, WF_REPLY_GONE,
                                aj__slice_str("the workflow run it was sent to has ended"));
        }
        return wfx_pending_add(wf, e); /* validated where the code waits; recorded if accepted */
    }
    if (e->run != wf->w.run) {
        /* A signal or cancel request sent while the run continued as new is meant for the
         * workflow, so the current run gets it; anything else for an earlier run is dropped. */
        int carry = 0;
        if ((e->type == EV_SIGNAL_RECEIVED || e->type == EV_CANCEL_REQUESTED) &&
            e->run < wf->w.run) {
            carry = aj__wf_runs_continued(wf->t, wf->w.id, e->run, wf->w.run);
        }
        if (carry <= 0) {
            return carry;
        }
    }
    if (e->type == EV_CANCEL_REQUESTED) {
        wf->w.flags |= WF_FLAG_CANCEL_REQUESTED;
    }
    aj_bytes d = wfx_bytes_of(e->data);
    char name[AJ_NAME_MAX * 2 + 1];
    snprintf(name, sizeof name, "%.*s", (int)e->name.n, (const char *)e->name.p);
    return wfx_record(wf, e->type, name, d, e->aux, e->ref, 0);
}

/* The end state of a run whose function returned rc. */
static aj_wf_state end_state(const aj_wf *wf, int rc, uint8_t *event) {
    if (wf->compensated) {
        *event = wf->compensated == 1 ? EV_WORKFLOW_COMPENSATED : EV_WORKFLOW_COMPENSATION_FAILED;
        return wf->compensated == 1 ? AJ_WF_COMPENSATED : AJ_WF_COMPENSATION_FAILED;
    }
    if (rc == 0) {
        *event = EV_WORKFLOW_COMPLETED;
        return AJ_WF_COMPLETED;
    }
    if (rc == AJ_ECANCELLED) {
        *event = EV_WORKFLOW_CANCELLED;
        return AJ_WF_CANCELLED;
    }
    *event = EV_WORKFLOW_FAILED;
    return AJ_WF_FAILED;
}

/* One task: advance the workflow as far as it goes. Returns 0, or AJ_ESTATE with
 * *out_parked set when the code diverged from the history (the caller parks the run in a fresh
 * transaction). */
int aj__wf_advance(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, aj_workflow_fn fn,
                   void *ud, char **out_parked, aj_wf **keep) {
    aj_wf *wf;
    *keep = NULL;
    int rc = aj__wf_load(e, t, env, id, 0, &wf);
    if (rc != 0) {
        return rc;
    }
    wf->loaded = wf->n_events;
    wf_rec before = wf->w;
    if (aj_wf_state_is_final(wf->w.state) || wf->w.state == AJ_WF_PARKED) {
        *keep = wf;
        return 0; /* nothing to do: a stale wake-up */
    }
    rc = wf_inbox_drain(t, wf->w.id, drain_inbox_cb, wf);
    if (rc == 0 && wf->w.deadline_ms > 0 && env->now_ms >= wf->w.deadline_ms) {
        aj_bytes why = {"execution timeout", 17};
        rc = wfx_updates_gone(wf, "the workflow timed out before handling the update");
        if (rc == 0) {
            rc = wfx_record(wf, EV_WORKFLOW_TIMED_OUT, "", why, 0, 0, 1);
        }
        if (rc == 0) {
            wf->w.state = AJ_WF_TIMED_OUT;
            wf->w.finished_ms = env->now_ms;
            wf->w.error = aj__slice_str("execution timeout");
            rc = wf_write(t, &before, &wf->w);
        }
        if (rc == 0) {
            rc = wf_child_closed(t, env, &wf->w, 1);
        }
        if (rc == 0) {
            *keep = wf;
        } else {
            aj__wf_free(wf);
        }
        return rc;
    }
    if (rc != 0) {
        aj__wf_free(wf);
        return rc;
    }
    aj__err_clear();
    aj_bytes input = {wf->w.input.p, wf->w.input.n};
    int64_t started = aj__mono_us();
    int fr = fn(wf, input, ud);
    wf->run_us = aj__mono_us() - started;
    if (wf->nondeterminism) {
        *out_parked = wf->park_msg;
        wf->park_msg = NULL;
        aj__wf_free(wf);
        return AJ_ESTATE;
    }
    if (fr == AJ_EIO || fr == AJ_EFULL || fr == AJ_ENOMEM || fr == AJ_ERETRIES ||
        fr == AJ_ECORRUPT || fr == AJ_EINTERNAL || fr == AJ_ECONFLICT || fr == AJ_EFORMAT ||
        fr == AJ_ECLOSED || fr == AJ_EBUSY) {
        /* Store trouble inside a durable call (I/O, conflicts, memory): retry the task. */
        aj__wf_free(wf);
        return fr;
    }
    wf->w.flags |= WF_FLAG_WAIT_POINTS; /* this task records where its code waits */
    if (fr == AJ_SUSPEND) {
        /* Replay must have consumed every recorded command; where the code waits is recorded
         * when no command of its own marks it (wf_progress.c). */
        rc = aj__wf_progress_suspended(wf);
        if (wf->nondeterminism) {
            *out_parked = wf->park_msg;
            wf->park_msg = NULL;
            aj__wf_free(wf);
            return AJ_ESTATE;
        }
        if (rc == 0) {
            rc = wfx_updates_gone(wf, "the workflow could not handle the update where it waits");
        }
    } else if (fr == AJ_CONTINUE_AS_NEW && wf->continue_as_new) {
        rc = wfx_updates_gone(wf, "the workflow continued as new before handling the update");
        if (rc == 0) {
            rc = wfx_continue_run(wf, &before);
        }
        if (rc == 0) {
            *keep = wf;
        } else {
            if (wf->nondeterminism) {
                *out_parked = wf->park_msg;
                wf->park_msg = NULL;
            }
            aj__wf_free(wf);
        }
        return rc;
    } else if ((rc = wfx_updates_gone(wf, "the workflow ended before handling the update")) != 0) {
        /* store trouble: the task is retried */
    } else {
        for (size_t i = wf->cursor; i < wf->n_events; i++) {
            if (wfx_is_command(&wf->events[i]) && wf->events[i].type != EV_VERSION_MARKER) {
                char *msg = aj__malloc(300);
                if (msg != NULL) {
                    snprintf(msg, 300,
                             "non-determinism in workflow '%.*s': the code returned but the "
                             "history has %s '%.*s' (event %llu) next",
                             (int)wf->w.id.n, (const char *)wf->w.id.p,
                             wf_event_name(wf->events[i].type), (int)wf->events[i].name.n,
                             (const char *)wf->events[i].name.p,
                             (unsigned long long)wf->events[i].seq);
                }
                *out_parked = msg;
                aj__wf_free(wf);
                return AJ_ESTATE;
            }
        }
        uint8_t ev;
        aj_wf_state st = end_state(wf, fr, &ev);
        aj_bytes data;
        if (st == AJ_WF_COMPLETED) {
            data = wf->has_result ? wf->result : (aj_bytes){"", 0};
        } else {
            const char *msg = wf->error ? wf->error : aj_errmsg();
            if (msg[0] == '\0') {
                msg = aj_strerror(fr);
            }
            data.data = aj__arena_dup(&wf->scratch, msg, strlen(msg));
            data.len = strlen(msg);
        }
        rc = wfx_record(wf, ev, "", data, 0, 0, 1);
        if (rc == 0) {
            wf->w.state = st;
            wf->w.finished_ms = env->now_ms;
            if (st == AJ_WF_COMPLETED) {
                wf->w.result.p = data.data;
                wf->w.result.n = data.len;
            } else {
                wf->w.error.p = data.data;
                wf->w.error.n = data.len;
            }
        }
    }
    if (rc == 0 &&
        (wf->w.seq != before.seq || wf->w.state != before.state || wf->w.flags != before.flags)) {
        rc = wf_write(t, &before, &wf->w);
    }
    if (rc == 0 && aj_wf_state_is_final(wf->w.state)) {
        rc = wf_child_closed(t, env, &wf->w, 1); /* its parent, and its children's policies */
    }
    if (rc == 0) {
        *keep = wf;
    } else {
        aj__wf_free(wf);
    }
    return rc;
}

void aj__wf_task_done(aj_engine *e, aj_wf *wf) {
    aj_counters d;
    memset(&d, 0, sizeof d);
    d.wf_tasks = 1;
    d.wf_events_replayed = wf->loaded;
    d.wf_events_appended = wf->n_events - wf->loaded;
    d.wf_replay_us = (uint64_t)wf->run_us;
    d.wf_cache_hits = wf->cache_hit;
    d.wf_cache_misses = !wf->cache_hit;
    eng_count(e, &d);
    aj__wf_cache_put(e, wf);
}

/* Parks a run in its own transaction. */
int aj__wf_park(kv_txn *t, const job_env *env, aj_slice id, const char *msg) {
    wf_rec before, w;
    int rc = wf_read(t, id, &before);
    if (rc != 0 || aj_wf_state_is_final(before.state) || before.state == AJ_WF_PARKED) {
        return rc;
    }
    w = before;
    aj_slice m = aj__slice_str(msg);
    rc = wf_append(t, env, &w, EV_WORKFLOW_PARKED, aj__slice_str(""), m, 0, 0, 1);
    if (rc == 0) {
        w.state = AJ_WF_PARKED;
        w.error = m;
        rc = wf_write(t, &before, &w);
    }
    return rc;
}

int aj__wf_replay_check(aj_wf *wf, aj_workflow_fn fn, void *ud, char **out_report) {
    aj_bytes input = {wf->w.input.p, wf->w.input.n};
    int fr = fn(wf, input, ud);
    if (fr == AJ_SUSPEND && !wf->nondeterminism) {
        (void)aj__wf_progress_suspended(wf); /* read-only: checks, never records */
    }
    char *msg = NULL;
    if (wf->nondeterminism) {
        msg = wf->park_msg;
        wf->park_msg = NULL;
    } else if (fr != AJ_SUSPEND) {
        /* The code finished: every recorded command must have been made. */
        for (size_t i = wf->cursor; i < wf->n_events && msg == NULL; i++) {
            const wf_event *ev = &wf->events[i];
            if (wfx_is_command(ev) && ev->type != EV_VERSION_MARKER) {
                msg = aj__malloc(400);
                if (msg != NULL) {
                    snprintf(msg, 400,
                             "the code returned, but the history has %s '%.*s' (event %llu) next",
                             wf_event_name(ev->type), (int)ev->name.n, (const char *)ev->name.p,
                             (unsigned long long)ev->seq);
                }
            }
        }
    }
    if (msg == NULL) {
        return 0;
    }
    int rc = aj__err(AJ_ESTATE, "%s", msg);
    if (out_report != NULL) {
        *out_report = msg;
    } else {
        aj__free(msg);
    }
    return rc;
}
