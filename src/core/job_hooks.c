/*
 * job_hooks.c — dispatches job completions and redrives to the modules that follow jobs (see
 * job_hooks.h). A module adds one call here; the job lifecycle itself stays unaware of them.
 */
#include "core/job_hooks.h"

#include "core/deps.h"
#include "core/workflow.h"

int job_hook_finished(kv_txn *t, const job_env *env, const job_rec *job) {
    return deps_on_finished(t, env, job);
}

int job_hook_redriven(kv_txn *t, const job_env *env, const job_rec *job) {
    return deps_on_redriven(t, env, job);
}

int job_hook_owned(kv_txn *t, const job_env *env, const job_rec *before, const job_rec *after) {
    return wf_on_job_transition(t, env, before, after);
}
