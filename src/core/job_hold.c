/*
 * job_hold.c — holding a job until the jobs it depends on have finished (deps.h).
 *
 * deps.c decides when a held job may run, fails or is discarded; these functions make the
 * matching transitions of the job record.
 */
#include "core/job_internal.h"

#include <stdint.h>

#include "core/blob.h"
#include "core/keys.h"
#include "core/progress.h"
#include "util/err.h"

/* A job held for its dependencies is scheduled at AJ_RUN_AT_DEPS, past any real time, so the
 * promoter never takes it; deps.c keeps its own run-at in the dependency header. */
static int job_waiting(const job_rec *r) {
    return r->state == AJ_STATE_SCHEDULED && r->run_at_ms == AJ_RUN_AT_DEPS;
}

int job_hold(kv_txn *t, const job_env *env, uint64_t id, int64_t *out_run_at) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0) {
        return rc;
    }
    if (job_waiting(&before)) {
        *out_run_at = 0;
        return 0;
    }
    if (before.state != AJ_STATE_READY && before.state != AJ_STATE_SCHEDULED) {
        return aj__err(AJ_ESTATE, "job %llu is %s and cannot wait on dependencies",
                       (unsigned long long)id, aj_state_name(before.state));
    }
    r = before;
    *out_run_at = before.state == AJ_STATE_SCHEDULED ? before.run_at_ms : 0;
    r.state = AJ_STATE_SCHEDULED;
    r.run_at_ms = AJ_RUN_AT_DEPS;
    r.updated_ms = env->now_ms;
    return job_transition(t, env, &before, &r);
}

int job_unhold(kv_txn *t, const job_env *env, uint64_t id, int64_t run_at_ms) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0 || !job_waiting(&before)) {
        return rc;
    }
    r = before;
    r.updated_ms = env->now_ms;
    if (run_at_ms > env->now_ms) {
        r.state = AJ_STATE_SCHEDULED;
        r.run_at_ms = run_at_ms;
    } else {
        r.state = AJ_STATE_READY;
        r.run_at_ms = env->now_ms;
        r.ready_us = env->now_us;
    }
    return job_transition(t, env, &before, &r);
}

int job_dep_fail(kv_txn *t, const job_env *env, uint64_t id, const char *error) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0 || !job_waiting(&before)) {
        return rc;
    }
    r = before;
    r.state = AJ_STATE_DEAD;
    r.dead_reason = AJ_DEAD_DEPENDENCY;
    r.dead_ms = r.finished_ms = r.updated_ms = env->now_ms;
    r.error = job_error_slice(error);
    COUNT(env, dead_lettered);
    return job_transition(t, env, &before, &r);
}

int job_discard(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec r;
    int rc = job_read(t, id, &r);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    akey k;
    key_job(&k, id);
    if (rc != 0 || (rc = job_unindex(t, &r)) != 0 || (rc = progress_delete(t, id)) != 0 ||
        (rc = blob_job_release(t, env, &r)) != 0) {
        return rc;
    }
    return job_del_key(t, &k);
}
