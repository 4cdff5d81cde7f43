/*
 * workflow.h — workflow records and the transitions that happen outside a workflow's own code:
 * start, signal, cancel, terminate, resume, activity outcomes, wake-ups and collection. Pure
 * logic over one transaction, like jobs.h.
 *
 * Keys (keys.h): 'W' id → record; 'V' state id → index; 'N' finished_ms id → retention;
 * 'G' id 0 0 → wake marker (the id of the ready task job, so wake-ups do not pile up tasks);
 * 'G' id 0 1 seq → inbox entry: an activity outcome, a signal or a cancel request not yet moved
 * into the history. Only workflow tasks and terminate/resume write the record; signals, cancels
 * and activity outcomes only add inbox entries, so they never conflict with a running task.
 *
 * A workflow task is a job of type AJ_WF_TASK_TYPE on queue "aj.wf/TYPE" whose payload is the
 * workflow id: workers that registered TYPE claim it, replay the workflow and advance it.
 */
#ifndef AJ_CORE_WORKFLOW_H
#define AJ_CORE_WORKFLOW_H

#include "aj.h"
#include "core/history.h"
#include "core/jobs.h"

#define WF_RECORD_FORMAT 1
#define WF_TASK_TYPE "aj.wf"          /* job type of workflow tasks */
#define WF_QUERY_TYPE "aj.wf.query"   /* job type of queries routed to a worker */
#define WF_QUEUE_PREFIX "aj.wf/"      /* task queue: prefix + workflow type */
#define WF_TYPE_MAX (AJ_NAME_MAX - 6) /* so that the task queue name fits */
/* Events a run may hold beyond AJ_WF_EVENTS_MAX, reserved for the events that end it. */
#define WF_EVENTS_FINAL_RESERVE 16
/* Bit in an activity_failed event's aux marking the last attempt (the job is dead). */
#define WF_AUX_FINAL ((uint64_t)1 << 63)

enum {
    WF_FLAG_CANCEL_REQUESTED = 1,
    WF_FLAG_SAGA = 2, /* the run registered a compensation (counted as a saga) */
    /* Every task of the run that ran its code recorded where the code waited (wait_point
     * events, runtime/wf_progress.c). Runs recorded by an older aj lack it until their next
     * task; until then nothing tells how far their code got. */
    WF_FLAG_WAIT_POINTS = 4,
};

typedef struct wf_rec {
    aj_slice id;
    aj_slice type;
    uint32_t run;
    aj_wf_state state;
    uint32_t flags;
    uint64_t seq;     /* events in the current run */
    uint64_t last_id; /* id of event `seq` */
    uint64_t hlc;     /* stamp of event `seq` */
    int64_t created_ms, updated_ms, finished_ms, deadline_ms;
    aj_slice input, result, error;
} wf_rec;

int wf_rec_encode(const wf_rec *w, aj_buf *b);
int wf_rec_decode(const uint8_t *p, size_t n, wf_rec *out);

/* Checks a workflow id (a name, aj_name_check). */
int wf_id_check(const char *id);
/* A workflow type: a name (aj_name_check) of at most WF_TYPE_MAX bytes. */
int wf_type_check(const char *type);

int wf_read(kv_txn *t, aj_slice id, wf_rec *out);
/* Like wf_read, without joining the read set (kv_peek): for arrivals that may act on a
 * slightly stale record (wf_wakeq.h). */
int wf_peek(kv_txn *t, aj_slice id, wf_rec *out);
/* wf_peek, plus the record's state index entry in the read set: the commit conflicts only when
 * the workflow changed state meanwhile (ended, parked, resumed), not with its every task. For
 * arrivals whose caller must learn that the workflow has finished (signals, updates, cancels). */
int wf_peek_state(kv_txn *t, aj_slice id, wf_rec *out);
/* Writes the record and moves its index entries from `before` (NULL: new) to `after`. */
int wf_write(kv_txn *t, const wf_rec *before, const wf_rec *after);
/* Appends an event to the current run, advancing w's seq, last_id and hlc (the caller then
 * writes w). `final` events may use the reserve past AJ_WF_EVENTS_MAX. */
int wf_append(kv_txn *t, const job_env *env, wf_rec *w, uint8_t type, aj_slice name, aj_slice data,
              uint64_t aux, uint64_t ref, int final);

/* Makes sure a task will run the workflow: at once (run_at_ms 0) — reusing a task job that is
 * still ready — or at run_at_ms (a timer). */
int wf_wake(kv_txn *t, const job_env *env, aj_slice id, aj_slice type, int64_t run_at_ms);
/* wf_wake at once, for arrivals that committed before this transaction began: a task still
 * ready in this snapshot will see them, so it is not read into the read set (a claim of it
 * does not conflict). Used by the fold of wake requests (wf_wakeq.h). */
int wf_wake_settled(kv_txn *t, const job_env *env, aj_slice id, aj_slice type);

int wf_start(kv_txn *t, const job_env *env, const char *type, const char *id, aj_slice input,
             const aj_wf_start_opts *opts);
int wf_signal(kv_txn *t, const job_env *env, const char *id, const char *name, aj_slice payload);
/* Queues update request `req` (inbox entry: ref = now_ms, aux = req); *out_run: the run. */
int wf_update_request(kv_txn *t, const job_env *env, const char *id, const char *name,
                      aj_slice payload, uint64_t req, uint32_t *out_run);
int wf_cancel(kv_txn *t, const job_env *env, const char *id);
int wf_terminate(kv_txn *t, const job_env *env, const char *id, const char *reason);
int wf_resume(kv_txn *t, const job_env *env, const char *id);

/* An inbox entry, as read by a task. */
typedef struct wf_inbox_entry {
    uint8_t
        type; /* EV_ACTIVITY_STARTED/COMPLETED/FAILED, EV_SIGNAL_RECEIVED, EV_CANCEL_REQUESTED */
    uint32_t run;
    uint64_t ref;
    uint64_t aux;
    aj_slice name, data;
} wf_inbox_entry;

/* Adds an inbox entry for the run in e->run of workflow w; with `wake`, also a wake request
 * (wf_wakeq.h), which env->woken's owner folds once this transaction committed (and a duty
 * folds if it does not). Blind writes only: arrivals conflict neither with each other nor with
 * the workflow's tasks, so the transaction writing one never repeats because of it. */
int wf_inbox_add(kv_txn *t, const job_env *env, const wf_rec *w, const wf_inbox_entry *e, int wake);
/* Calls fn for each inbox entry in arrival order and deletes it (in this transaction). */
int wf_inbox_drain(kv_txn *t, aj_slice id, int (*fn)(void *ud, const wf_inbox_entry *e), void *ud);

/* The job hook: a job owned by a workflow changed state. */
int wf_on_job_transition(kv_txn *t, const job_env *env, const job_rec *before,
                         const job_rec *after);
/* Builds the owner tag of an activity job (wf id, run, the seq of its activity_scheduled). */
void wf_owner(aj_buf *b, aj_slice id, uint32_t run, uint64_t seq);

/* Collects finished workflows older than the retention, with all their events. */
int wf_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n);
/* Exact counts by state. */
int wf_count_states(kv_txn *t, uint64_t counts[AJ_WF_STATE_COUNT]);
/* Calls fn for each workflow matching the filter, in id order. */
int wf_list(kv_txn *t, const aj_wf_filter *f, int (*fn)(void *ud, const wf_rec *w), void *ud);
/* 1 when some workflow has a task ready or running (the drain check uses it). */
aj_wf_info *wf_rec_to_public(const wf_rec *w);

#endif
