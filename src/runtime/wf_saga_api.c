/*
 * wf_saga_api.c — the C saga API (aj_saga_push, aj_saga_push_job, aj_saga_compensate): the
 * compensations a workflow registers as it goes, run in reverse by aj_saga_compensate, inline
 * (compensation_started/completed/failed commands) or as jobs whose outcome arrives like an
 * activity's. Not to be confused with the built-in declarative `saga` workflow type
 * (saga_builtin.c), which is written on top of this API. Runtime layer (wf_ctx.h).
 */
#include <string.h>

#include "core/history.h"
#include "core/workflow.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Sagas                                                                                      */

/* The first compensation a run registers makes it a saga, counted once: the flag is stored with
 * the workflow record, so replays of later tasks find it set. */
static void saga_mark(aj_wf *wf) {
    if (wf->query_mode || (wf->w.flags & WF_FLAG_SAGA) != 0) {
        return;
    }
    wf->w.flags |= WF_FLAG_SAGA;
    if (wf->env->delta != NULL) {
        wf->env->delta->wf_sagas_started++;
    }
}

int aj_saga_push(aj_wf *wf, const char *name, aj_step_fn fn, void *ud, aj_bytes data) {
    if (wf->n_saga == WF_SAGA_MAX) {
        return aj__err(AJ_ETOOBIG, "a saga holds at most %d compensations", WF_SAGA_MAX);
    }
    saga_entry *s = &wf->saga[wf->n_saga];
    memset(s, 0, sizeof *s);
    s->name = aj__arena_dup(&wf->scratch, name, strlen(name));
    s->data.data = aj__arena_dup(&wf->scratch, data.data, data.len);
    s->data.len = data.len;
    if (s->name == NULL || s->data.data == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory pushing a compensation");
    }
    s->fn = fn;
    s->ud = ud;
    wf->n_saga++;
    saga_mark(wf);
    return 0;
}

static const char *arena_str(aj_wf *wf, const char *s) {
    return s ? aj__arena_dup(&wf->scratch, s, strlen(s)) : NULL;
}

int aj_saga_push_job(aj_wf *wf, const char *name, const aj_job_spec *spec) {
    if (name == NULL || name[0] == '\0' || spec == NULL || spec->type == NULL) {
        return aj__err(AJ_EINVAL, "a job compensation needs a name and a job spec with a type");
    }
    if (wf->n_saga == WF_SAGA_MAX) {
        return aj__err(AJ_ETOOBIG, "a saga holds at most %d compensations", WF_SAGA_MAX);
    }
    saga_entry *s = &wf->saga[wf->n_saga];
    memset(s, 0, sizeof *s);
    s->name = arena_str(wf, name);
    s->spec = *spec;
    s->spec.queue = arena_str(wf, spec->queue);
    s->spec.type = arena_str(wf, spec->type);
    s->spec.payload = aj__arena_dup(&wf->scratch, spec->payload, spec->payload_len);
    s->spec.idempotency_key = NULL;
    s->spec.metadata = arena_str(wf, spec->metadata);
    if (s->name == NULL || s->spec.type == NULL || s->spec.payload == NULL ||
        (spec->queue != NULL && s->spec.queue == NULL) ||
        (spec->metadata != NULL && s->spec.metadata == NULL)) {
        return aj__err(AJ_ENOMEM, "out of memory pushing a compensation");
    }
    wf->n_saga++;
    saga_mark(wf);
    return 0;
}

/* Runs one compensation: 0 done, AJ_EFAILED failed, AJ_SUSPEND waiting for its job. */
static int compensate_one(aj_wf *wf, saga_entry *s) {
    const wf_event *ev = NULL;
    int rc = wfx_next_command(wf, EV_COMPENSATION_STARTED, EV_COMPENSATION_STARTED, s->name, &ev);
    if (rc < 0) {
        return rc;
    }
    aj_bytes none = {"", 0};
    if (s->fn == NULL) {
        /* A job: compensation_started carries the job; its outcome arrives later. */
        uint64_t seq;
        if (rc == 0) {
            if (wf->query_mode) {
                return wfx_suspend(wf);
            }
            uint64_t job;
            if ((rc = wfx_schedule_job(wf, &s->spec, &job)) != 0 ||
                (rc = wfx_record(wf, EV_COMPENSATION_STARTED, s->name, none, job, 0, 0)) != 0) {
                return rc;
            }
            return aj__wf_suspend_at(wf, "compensation", s->name, 1);
        }
        seq = ev->seq;
        const wf_event *done = wfx_find_arrival(wf, seq, EV_COMPENSATION_COMPLETED,
                                                EV_COMPENSATION_FAILED, 0, wfx_horizon(wf));
        if (done == NULL) {
            return aj__wf_suspend_at(wf, "compensation", s->name, 1);
        }
        if ((rc = wfx_updates_replay(wf, done->seq)) != 0) {
            return rc;
        }
        return done->type == EV_COMPENSATION_COMPLETED ? 0 : AJ_EFAILED;
    }
    /* Inline: started and its outcome are both commands. */
    if (rc == 0) {
        if (wf->query_mode) {
            return wfx_suspend(wf);
        }
        if ((rc = wfx_record(wf, EV_COMPENSATION_STARTED, s->name, none, 0, 0, 0)) != 0) {
            return rc;
        }
    }
    rc = wfx_next_command(wf, EV_COMPENSATION_COMPLETED, EV_COMPENSATION_FAILED, s->name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return ev->type == EV_COMPENSATION_COMPLETED ? 0 : AJ_EFAILED;
    }
    if (wf->query_mode) {
        return wfx_suspend(wf);
    }
    aj_step_policy p;
    aj_step_policy_init(&p);
    p.max_attempts = WF_COMPENSATION_ATTEMPTS;
    aj_bytes out;
    char *err = NULL;
    rc = wfx_run_inline(wf, &p, s->fn, s->ud, s->data, &out, &err);
    if (rc == 0) {
        return wfx_record(wf, EV_COMPENSATION_COMPLETED, s->name, out, 0, 0, 0);
    }
    if (rc != AJ_EFAILED) {
        aj__free(err);
        return rc;
    }
    aj_bytes e = {err ? err : "failed", strlen(err ? err : "failed")};
    rc = wfx_record(wf, EV_COMPENSATION_FAILED, s->name, e, 0, 0, 0);
    aj__free(err);
    return rc != 0 ? rc : AJ_EFAILED;
}

int aj_saga_compensate(aj_wf *wf) {
    if (wf->w.state == AJ_WF_RUNNING) {
        wf->w.state = AJ_WF_COMPENSATING;
    }
    int failed = 0;
    while (wf->n_saga > 0) {
        saga_entry *s = &wf->saga[wf->n_saga - 1];
        int rc = compensate_one(wf, s);
        if (rc == AJ_SUSPEND || (rc < 0 && rc != AJ_EFAILED)) {
            return rc;
        }
        if (rc == AJ_EFAILED) {
            failed = 1;
        }
        wf->n_saga--;
    }
    wf->compensated = failed ? 2 : 1;
    return failed ? aj__err(AJ_EFAILED, "a compensation failed") : 0;
}
