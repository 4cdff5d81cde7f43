/*
 * wf_reset_copy.h — resetting a workflow: a new run whose history starts as a copy of the latest
 * run's events up to a chosen event, then continues live ("restart from this step").
 */
#ifndef AJ_CORE_WF_RESET_H
#define AJ_CORE_WF_RESET_H

#include "core/workflow.h"

/* Starts run N+1 of `id` with a copy of events 1..to_seq of run N and a workflow_reset event
 * (data: the reason, aux: run N, ref: to_seq), terminating run N first if it is still running.
 * AJ_EINVAL when to_seq is not a reset point (see aj_wf_reset). */
int wf_reset(kv_txn *t, const job_env *env, const char *id, uint64_t to_seq, const char *reason,
             uint32_t *out_run);

#endif
