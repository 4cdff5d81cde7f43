/*
 * wf_wakeq.h — wake requests: how an arrival wakes a workflow without conflicting with anything.
 *
 * wf_wake decides whether a new task is needed by reading the workflow's wake marker and the task
 * it names; sibling arrivals that do this together conflict on the marker, and an arrival
 * conflicts with the claim of the task it read. When the arrival is written by a workflow task
 * (a child's end notifying its parent), such a conflict re-runs that task and its inline steps:
 * user code. A wake request instead is a blind write of a key no one else writes,
 * 'g' id 0 seq (seq: the inbox entry's), so the arrival's transaction reads nothing of the
 * woken workflow's bookkeeping. Once it committed, the writer folds the requests of that
 * workflow in a transaction of their own (wf_wakeq_fold): wf_wake_settled, then the requests are
 * deleted; a conflict there retries only that bookkeeping. A crash between the two leaves the
 * request, which the sweep duty folds (wf_wakeq_sweep). Pure logic over one transaction.
 */
#ifndef AJ_CORE_WF_WAKEQ_H
#define AJ_CORE_WF_WAKEQ_H

#include "core/jobs.h"

/* Workflows whose requests the sweep folds per transaction. */
#define WF_WAKEQ_SWEEP_BATCH 32
/* Requests younger than this are left to the writer's own fold (the sweep is for crashes). */
#define WF_WAKEQ_SWEEP_AGE_MS 2000

/* Records a wake request for workflow `id` (a blind write; seq makes the key unique). */
int wf_wakeq_add(kv_txn *t, aj_slice id, uint64_t seq);
/* Folds the wake requests of workflow `id`: makes sure a task will run it and deletes them.
 * *out_n: requests folded (0: nothing to do, nothing written). */
int wf_wakeq_fold(kv_txn *t, const job_env *env, aj_slice id, size_t *out_n);
/* Folds the requests of the parent of workflow `child` (after the child's run ended and
 * notified it). *out_n as for wf_wakeq_fold; 0 when the child has no parent. */
int wf_wakeq_fold_parent(kv_txn *t, const job_env *env, aj_slice child, size_t *out_n);
/* The duty: folds the requests of at most `limit` (and WF_WAKEQ_SWEEP_BATCH) workflows that
 * have one older than WF_WAKEQ_SWEEP_AGE_MS. *out_n: requests folded. */
int wf_wakeq_sweep(kv_txn *t, const job_env *env, size_t limit, size_t *out_n);

#endif
