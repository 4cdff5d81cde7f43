/*
 * wf_activity.c — activities: a job submitted in the workflow task's transaction, owned by the
 * run (activity_scheduled), whose outcome arrives through the inbox (activity_completed/failed)
 * and is found by reference on replay; aj_activity_cached answers from the activity cache and
 * records a hit as an execution. Also the job submission shared with job compensations
 * (wf_saga_api.c). Runtime layer (wf_ctx.h); the async variant is wf_activity_async.c.
 */
#include <string.h>

#include "core/activity_cache.h"
#include "core/history.h"
#include "core/workflow.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"

/* ----------------------------------------------------------------------------------------- */
/* Activities                                                                                 */

/* Submits the job of an activity or job compensation in the task's transaction. */
int wfx_schedule_job(aj_wf *wf, const aj_job_spec *spec, uint64_t *out_job) {
    int rc = job_spec_check(spec);
    if (rc != 0) {
        return rc;
    }
    aj_buf owner = AJ_BUF_INIT;
    wf_owner(&owner, wf->w.id, wf->w.run, wf->w.seq + 1); /* the event recorded next */
    uint64_t id;
    int created;
    rc = owner.oom ? AJ_ENOMEM : wf->env->alloc_id(wf->env->alloc_ud, &id);
    if (rc == 0) {
        rc = job_note_queue(wf->t, spec->queue ? spec->queue : "default");
    }
    if (rc == 0) {
        aj_slice o = {owner.p, owner.len};
        rc = job_submit_owned(wf->t, wf->env, spec, id, o, out_job, &created);
    }
    aj__buf_free(&owner);
    return rc;
}

static int activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out,
                            int own_command);

int aj__wf_activity_schedule(aj_wf *wf, const char *name, const aj_job_spec *spec) {
    uint64_t job;
    int rc = wfx_schedule_job(wf, spec, &job);
    if (rc != 0) {
        return rc;
    }
    aj_bytes none = {"", 0};
    return wfx_record(wf, EV_ACTIVITY_SCHEDULED, name, none, job, 0, 0);
}

int aj__wf_activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out) {
    return activity_outcome(wf, name, seq, out, 0); /* aj_activity_wait records nothing */
}

/* The history's answer for an activity at this position: 1 with *ev when the history holds it
 * (replay), 0 when it is new, or an error. A cancel that precedes this position refuses it,
 * live and on replay alike (the refusal records nothing, so the position must decide, not the
 * live edge). */
static int next_activity(aj_wf *wf, const char *name, const wf_event **ev) {
    if (wfx_cancel_visible(wf, wfx_horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled before activity '%s'", name);
    }
    return wfx_next_command(wf, EV_ACTIVITY_SCHEDULED, EV_ACTIVITY_SCHEDULED, name, ev);
}

int aj_activity(aj_wf *wf, const char *name, const aj_job_spec *spec, aj_bytes *out) {
    const wf_event *ev = NULL;
    int rc = next_activity(wf, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0) {
        if (wf->query_mode) {
            return wfx_suspend(wf);
        }
        uint64_t job;
        if ((rc = wfx_schedule_job(wf, spec, &job)) != 0) {
            return rc;
        }
        aj_bytes none = {"", 0};
        if ((rc = wfx_record(wf, EV_ACTIVITY_SCHEDULED, name, none, job, 0, 0)) != 0) {
            return rc;
        }
        return aj__wf_suspend_at(wf, "activity", name, 1);
    }
    return activity_outcome(wf, name, ev->seq, out, 1);
}

/* The outcome of the activity whose activity_scheduled is event `seq`, as visible now.
 * own_command: the caller's own activity_scheduled is the last command (aj_activity). */
static int activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out,
                            int own_command) {
    uint64_t before;
    const wf_event *done;
    int marked = 0, rc = 0;
    for (;;) {
        before = wfx_horizon(wf);
        done = wfx_find_arrival(wf, seq, EV_ACTIVITY_COMPLETED, EV_ACTIVITY_FAILED, 1, before);
        if (done != NULL || (rc = aj__wf_wait_marker(wf, "activity", name)) != 1) {
            break;
        }
        marked = 1; /* the run waited here before: look up to the next command */
    }
    if (rc < 0) {
        return rc;
    }
    rc = done != NULL ? wfx_updates_replay(wf, done->seq) : 0;
    if (rc != 0) {
        return rc;
    }
    if (done != NULL && done->type == EV_ACTIVITY_COMPLETED) {
        if (out != NULL) {
            *out = wfx_bytes_of(done->data);
        }
        return 0;
    }
    if (done != NULL) {
        if (wfx_cancel_visible(wf, before)) {
            return aj__err(AJ_ECANCELLED, "workflow cancelled while activity '%s' ran", name);
        }
        return aj__err(AJ_EFAILED, "activity '%s' failed: %.*s", name, (int)done->data.n,
                       (const char *)done->data.p);
    }
    if (wfx_cancel_visible(wf, before) && !wf->query_mode) {
        /* Cancel the job as well, and return only once its outcome is in: a job that completed
         * before the cancel reached it returns its result, so the caller registers its
         * compensation and a saga undoes it like any other completed step. The job's cancel
         * (or end) arrives through the inbox; cancelling it again on a later task is a no-op. */
        const wf_event *sched = seq >= 1 && seq <= wf->n_events ? &wf->events[seq - 1] : NULL;
        uint64_t job = sched != NULL && sched->seq == seq && sched->type == EV_ACTIVITY_SCHEDULED
                           ? sched->aux
                           : 0;
        int crc = job != 0 ? job_cancel(wf->t, wf->env, job) : 0;
        if (crc != 0 && crc != AJ_ESTATE && crc != AJ_ENOTFOUND) {
            return crc;
        }
        aj__err_clear();
    }
    return aj__wf_suspend_at(wf, "activity", name, own_command || marked);
}

int aj_activity_cached(aj_wf *wf, const char *name, const aj_job_spec *spec,
                       const aj_activity_cache *cache, aj_bytes *out) {
    if (cache == NULL) {
        return aj_activity(wf, name, spec, out);
    }
    if (cache->ttl_ms <= 0) {
        return aj__err(AJ_EINVAL, "activity '%s': the cache TTL must be positive", name);
    }
    if (cache->version != NULL && strlen(cache->version) > AJ_NAME_MAX) {
        return aj__err(AJ_EINVAL, "activity '%s': the cache version is longer than %d bytes", name,
                       AJ_NAME_MAX);
    }
    if (spec == NULL || spec->type == NULL) {
        return aj__err(AJ_EINVAL, "activity '%s' needs a job type", name);
    }
    const wf_event *ev = NULL;
    int rc = next_activity(wf, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        /* Replay answers from the history, never from the cache: a hit was recorded as an
         * execution, so expiry or a changed entry cannot change what the run saw. */
        return activity_outcome(wf, name, ev->seq, out, 1);
    }
    if (wf->query_mode) {
        return wfx_suspend(wf);
    }
    act_cache_ref r;
    memset(&r, 0, sizeof r);
    r.global = cache->global != 0;
    r.wf_id = wf->w.id;
    aj_slice in = {spec->payload ? (const uint8_t *)spec->payload : (const uint8_t *)"",
                   spec->payload_len};
    act_cache_hash(spec->type, cache->version, in, r.hash);
    char desc[ACT_CACHE_DESC_MAX];
    aj_bytes d = {desc, act_cache_desc_format(desc, sizeof desc, r.global, r.hash, cache->ttl_ms)};
    aj_slice hit;
    rc = act_cache_get(wf->t, wf->env, &r, &hit);
    if (rc == 0) {
        if ((rc = wfx_record(wf, EV_ACTIVITY_SCHEDULED, name, d, 0, 0, 0)) != 0 ||
            (rc = wfx_record(wf, EV_ACTIVITY_COMPLETED, name, wfx_bytes_of(hit), AJ_WF_EVENT_CACHED,
                             wf->w.seq, 0)) != 0) {
            return rc;
        }
        if (wf->env->delta != NULL) {
            wf->env->delta->activity_cache_hits++;
        }
        if (out != NULL) {
            *out = wfx_bytes_of(wf->events[wf->n_events - 1].data);
        }
        return 0;
    }
    if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    /* A miss: the job runs, and its completion fills the entry (act_cache_on_complete). */
    uint64_t job;
    if ((rc = wfx_schedule_job(wf, spec, &job)) != 0 ||
        (rc = wfx_record(wf, EV_ACTIVITY_SCHEDULED, name, d, job, 0, 0)) != 0) {
        return rc;
    }
    if (wf->env->delta != NULL) {
        wf->env->delta->activity_cache_misses++;
    }
    return aj__wf_suspend_at(wf, "activity", name, 1);
}
