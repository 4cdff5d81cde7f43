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
 *
 * Every arrival goes this way (wf_inbox_add): a child's end, a signal, an update or cancel
 * request, an activity's outcome. The writer learns which workflows to fold from the
 * transaction's env->woken (wf_woken below), filled by wf_inbox_add and read by whoever ran the
 * transaction once it committed (runtime: eng_run, and the worker pool for outcomes it commits
 * asynchronously).
 */
#ifndef AJ_CORE_WF_WAKEQ_H
#define AJ_CORE_WF_WAKEQ_H

#include "core/jobs.h"
#include "util/buf.h"

/* Workflows whose requests the sweep folds per transaction. */
#define WF_WAKEQ_SWEEP_BATCH 32
/* Requests younger than this are left to the writer's own fold (the sweep is for crashes). */
#define WF_WAKEQ_SWEEP_AGE_MS 2000

/* Distinct workflows a transaction's runner remembers to fold; a transaction waking more (a
 * duty reaping many activities) has every request folded instead. */
#define WF_WOKEN_MAX 32

/* The workflows one transaction wrote wake requests for (job_env.woken). Not thread-safe: it
 * belongs to the transaction's runner. */
typedef struct wf_woken {
    aj_buf ids;   /* each id as aj__buf_add_bytes: varint length, bytes */
    size_t n;     /* distinct ids in `ids` */
    int overflow; /* more than WF_WOKEN_MAX (or out of memory): fold every request instead */
} wf_woken;

#define WF_WOKEN_INIT                                                                              \
    { AJ_BUF_INIT, 0, 0 }

/* Notes workflow `id` (once, however often it is woken). `w` may be NULL: nobody folds right
 * after the commit, the sweep does. */
void wf_woken_note(wf_woken *w, aj_slice id);
/* Forgets every id (a new attempt of the transaction); keeps the memory. */
void wf_woken_reset(wf_woken *w);
void wf_woken_free(wf_woken *w);
/* 1 when there is anything to fold. */
int wf_woken_any(const wf_woken *w);
/* The id at *pos (start at 0), advancing *pos: 1, or 0 at the end. Valid while `w` is. */
int wf_woken_next(const wf_woken *w, size_t *pos, aj_slice *id);

/* Records a wake request for workflow `id` (a blind write; seq makes the key unique) and notes
 * the workflow in env->woken. */
int wf_wakeq_add(kv_txn *t, const job_env *env, aj_slice id, uint64_t seq);
/* Folds the wake requests of workflow `id`: makes sure a task will run it and deletes them.
 * *out_n: requests folded (0: nothing to do, nothing written). */
int wf_wakeq_fold(kv_txn *t, const job_env *env, aj_slice id, size_t *out_n);
/* The duty: folds the requests of at most `limit` (and WF_WAKEQ_SWEEP_BATCH) workflows that
 * have one at least `min_age_ms` old (WF_WAKEQ_SWEEP_AGE_MS for the periodic sweep; 0 after a
 * transaction that woke more than WF_WOKEN_MAX). *out_n: requests folded. */
int wf_wakeq_sweep(kv_txn *t, const job_env *env, int64_t min_age_ms, size_t limit, size_t *out_n);

#endif
