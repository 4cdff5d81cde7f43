/*
 * wf_exec.h — the runtime's internal interface to workflow execution (wf_exec.c), used by the
 * task handler and the public workflow calls (wf_api.c) and the declarative saga (saga.c).
 */
#ifndef AJ_RUNTIME_WF_EXEC_H
#define AJ_RUNTIME_WF_EXEC_H

#include "aj.h"
#include "core/workflow.h"

/* Loads a run (and its whole history) into a context; query_mode: durable calls never act. */
int aj__wf_load(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, int query_mode,
                aj_wf **out);
void aj__wf_free(aj_wf *wf);
/* Runs one workflow task in `t`. AJ_ESTATE with *out_parked (owned) when the code diverged. */
int aj__wf_advance(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, aj_workflow_fn fn,
                   void *ud, char **out_parked);
/* Parks the run with a message, in `t`. */
int aj__wf_park(kv_txn *t, const job_env *env, aj_slice id, const char *msg);
/* Replays read-only and calls the query handler `name`. *out: malloc'd. */
int aj__wf_query_run(aj_wf *wf, aj_workflow_fn fn, void *ud, const char *name, char **out,
                     size_t *out_len);
/* The declarative saga (saga.c): checks an input; registers the `saga` type. */
int aj__saga_validate(const void *input, size_t len);
int aj__saga_register(aj_engine *e);

/* A compensation that is a job (the declarative saga). */
int aj__saga_push_job(aj_wf *wf, const char *name, const aj_job_spec *spec);

#endif
