/*
 * wf_exec.h — the runtime's internal interface to workflow execution (wf_exec.c), used by the
 * task handler and the public workflow calls (wf_api.c) and the declarative saga (saga.c).
 */
#ifndef AJ_RUNTIME_WF_EXEC_H
#define AJ_RUNTIME_WF_EXEC_H

#include "aj.h"
#include "core/workflow.h"

typedef struct aj__wf_cache aj__wf_cache;

/* Loads a run (and its whole history) into a context; query_mode: durable calls never act. */
int aj__wf_load(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, int query_mode,
                aj_wf **out);
void aj__wf_free(aj_wf *wf);
/* Runs one workflow task in `t`. AJ_ESTATE with *out_parked (owned) when the code diverged.
 * On success *keep receives the context (or NULL): once the transaction has committed, hand it
 * to aj__wf_task_done (which caches the history and counts); otherwise aj__wf_free it. */
int aj__wf_advance(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, aj_workflow_fn fn,
                   void *ud, char **out_parked, aj_wf **keep);
/* A committed task: counts it and keeps its history in the process's cache (consumes wf). */
void aj__wf_task_done(aj_engine *e, aj_wf *wf);
void aj__wf_cache_put(aj_engine *e, aj_wf *wf);
void aj__wf_cache_free(aj__wf_cache *c);
/* Parks the run with a message, in `t`. */
int aj__wf_park(kv_txn *t, const job_env *env, aj_slice id, const char *msg);
/* Replays read-only and calls the query handler `name`. *out: malloc'd. */
int aj__wf_query_run(aj_wf *wf, aj_workflow_fn fn, void *ud, const char *name, char **out,
                     size_t *out_len);
/* The declarative saga (saga.c): checks an input; registers the `saga` type. */
int aj__saga_validate(const void *input, size_t len);
int aj__saga_register(aj_engine *e);

/* Replays a loaded (query-mode) context against fn; see aj_wf_replay_check. */
int aj__wf_replay_check(aj_wf *wf, aj_workflow_fn fn, void *ud, char **out_report);

#endif
