/*
 * wf_continue.c — continue-as-new: aj_wf_continue_as_new ends the run with continued_as_new and
 * the task starts the next run under the same id in the same transaction, carrying over the
 * signals the run did not consume, so a signal sent at any moment is seen by some run. The
 * context then holds the new run, so the history cache keeps the new run's history. Runtime
 * layer (wf_ctx.h); runs' lineage is read in wf_runs.c.
 */
#include <stdio.h>
#include <string.h>

#include "core/child.h"
#include "core/history.h"
#include "core/workflow.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"

/* ----------------------------------------------------------------------------------------- */
/* Continue-as-new                                                                          */

/* Continue-as-new: ends the run with continued_as_new and starts the next one under the same id
 * in the task's transaction. The context then holds the new run (its one event), so the cache
 * keeps the new run's history. */
int wfx_continue_run(aj_wf *wf, const wf_rec *before) {
    for (size_t i = wf->cursor; i < wf->n_events; i++) {
        if (wfx_is_command(&wf->events[i]) && wf->events[i].type != EV_VERSION_MARKER) {
            return wfx_diverged(wf,
                                "non-determinism in workflow '%.*s': the code continued as new but "
                                "the history has %s '%.*s' (event %llu) next",
                                (int)wf->w.id.n, (const char *)wf->w.id.p,
                                wf_event_name(wf->events[i].type), (int)wf->events[i].name.n,
                                (const char *)wf->events[i].name.p,
                                (unsigned long long)wf->events[i].seq);
        }
    }
    const job_env *env = wf->env;
    int rc = wfx_record(wf, EV_CONTINUED_AS_NEW, "", wf->continue_input, wf->w.run + 1, 0, 1);
    if (rc == 0) {
        wf_rec closed = wf->w;
        closed.state = AJ_WF_CONTINUED;
        closed.finished_ms = env->now_ms;
        rc = wf_child_closed(wf->t, env, &closed, 0); /* its children's policies */
    }
    if (rc != 0) {
        return rc;
    }
    /* Signals the run received but did not consume carry over to the next run, in order, so
     * a signal sent at any moment is seen by some run. Copied out of the arena freed below. */
    size_t n_carry = 0;
    wf_event *carry = NULL;
    for (size_t i = 0; i < wf->n_events; i++) {
        n_carry += wf->events[i].type == EV_SIGNAL_RECEIVED && !wf->consumed[i];
    }
    if (n_carry > 0) {
        carry = aj__arena_alloc(&wf->scratch, n_carry * sizeof *carry);
        if (carry == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory continuing a workflow");
        }
        n_carry = 0;
        for (size_t i = 0; i < wf->n_events; i++) {
            const wf_event *ev = &wf->events[i];
            if (ev->type == EV_SIGNAL_RECEIVED && !wf->consumed[i]) {
                carry[n_carry] = *ev;
                carry[n_carry].name.p = aj__arena_dup(&wf->scratch, ev->name.p, ev->name.n);
                carry[n_carry].data.p = aj__arena_dup(&wf->scratch, ev->data.p, ev->data.n);
                if (carry[n_carry].name.p == NULL || carry[n_carry].data.p == NULL) {
                    return aj__err(AJ_ENOMEM, "out of memory continuing a workflow");
                }
                n_carry++;
            }
        }
    }
    wf->w.run++;
    wf->w.seq = 0;
    wf->w.last_id = 0;
    wf->w.state = AJ_WF_RUNNING;
    wf->w.flags = WF_FLAG_WAIT_POINTS;
    wf->w.created_ms = env->now_ms;
    wf->w.finished_ms = 0;
    wf->w.input.p = wf->continue_input.data;
    wf->w.input.n = wf->continue_input.len;
    wf->w.result.p = wf->w.error.p = NULL;
    wf->w.result.n = wf->w.error.n = 0;
    /* The old run's events leave the context (and the cache) with it. */
    wf->n_events = 0;
    wf->cursor = 0;
    aj__arena_free(&wf->arena);
    memset(&wf->arena, 0, sizeof wf->arena);
    char type[AJ_NAME_MAX + 1];
    snprintf(type, sizeof type, "%.*s", (int)wf->w.type.n, (const char *)wf->w.type.p);
    rc = wfx_record(wf, EV_WORKFLOW_STARTED, type, wf->continue_input, 0, 0, 0);
    for (size_t i = 0; i < n_carry && rc == 0; i++) {
        char name[AJ_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)carry[i].name.n, (const char *)carry[i].name.p);
        rc = wfx_record(wf, EV_SIGNAL_RECEIVED, name, wfx_bytes_of(carry[i].data), carry[i].aux, 0,
                        0);
    }
    if (rc == 0) {
        rc = wf_write(wf->t, before, &wf->w);
    }
    if (rc == 0) {
        rc = wf_wake(wf->t, env, wf->w.id, wf->w.type, 0);
    }
    return rc;
}

int aj_wf_continue_as_new(aj_wf *wf, const void *input, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "continue-as-new input is %zu bytes, over the %zu-byte limit",
                       len, AJ_WF_DATA_MAX);
    }
    void *copy = aj__arena_dup(&wf->scratch, input ? input : "", len);
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a continue-as-new input");
    }
    wf->continue_input.data = copy;
    wf->continue_input.len = len;
    wf->continue_as_new = 1;
    wfx_answer_query(wf);
    return AJ_CONTINUE_AS_NEW;
}
