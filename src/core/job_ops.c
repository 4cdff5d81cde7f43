/*
 * job_ops.c — operator operations on one job: cancel, redrive and purge.
 */
#include "core/job_internal.h"

#include <stdint.h>

#include "core/blob.h"
#include "core/deps.h"
#include "core/keys.h"
#include "core/progress.h"
#include "util/err.h"

int job_cancel(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0) {
        return rc;
    }
    if (aj_state_is_final(before.state)) {
        return aj__err(AJ_ESTATE, "job %llu is already %s", (unsigned long long)id,
                       aj_state_name(before.state));
    }
    r = before;
    r.state = AJ_STATE_CANCELLED;
    r.finished_ms = r.updated_ms = env->now_ms;
    r.lease_expires_ms = 0;
    COUNT(env, cancelled);
    return job_transition(t, env, &before, &r);
}

int job_redrive(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0) {
        return rc;
    }
    if (before.state != AJ_STATE_DEAD) {
        return aj__err(AJ_ESTATE, "job %llu is %s, not dead", (unsigned long long)id,
                       aj_state_name(before.state));
    }
    r = before;
    r.state = AJ_STATE_READY;
    r.attempts = 0;
    r.redrives++;
    r.dead_reason = AJ_DEAD_NONE;
    r.dead_ms = r.finished_ms = 0;
    r.run_at_ms = r.updated_ms = env->now_ms;
    r.ready_us = env->now_us;
    COUNT(env, redriven);
    return job_transition(t, env, &before, &r);
}

int job_purge(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec r;
    int rc = job_read(t, id, &r);
    if (rc != 0) {
        return rc;
    }
    if (r.state != AJ_STATE_DEAD) {
        return aj__err(AJ_ESTATE, "job %llu is %s, not dead", (unsigned long long)id,
                       aj_state_name(r.state));
    }
    akey k;
    key_job(&k, id);
    if ((rc = job_unindex(t, &r)) != 0 || (rc = progress_delete(t, id)) != 0 ||
        (rc = deps_forget(t, env, id)) != 0 || (rc = blob_job_release(t, env, &r)) != 0) {
        return rc;
    }
    return job_del_key(t, &k);
}
