/*
 * job_hooks.h — what other core modules do when a job finishes or is redriven, inside the same
 * transaction as the job's own transition, so that a dependent job or a waiting workflow can
 * never miss the event (no polling, no window between the two writes).
 *
 * job_hook_finished() runs when a job enters completed, dead or cancelled; job_hook_redriven()
 * when a dead job goes back to ready. Each hook returns 0 or an error that aborts the
 * transaction. They dispatch to the modules that follow jobs (dependencies, workflows).
 */
#ifndef AJ_CORE_JOB_HOOKS_H
#define AJ_CORE_JOB_HOOKS_H

#include "core/jobs.h"

int job_hook_finished(kv_txn *t, const job_env *env, const job_rec *job);
int job_hook_redriven(kv_txn *t, const job_env *env, const job_rec *job);
/* Every transition of a job that carries an owner tag (a workflow activity). */
int job_hook_owned(kv_txn *t, const job_env *env, const job_rec *before, const job_rec *after);

#endif
