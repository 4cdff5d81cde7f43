/*
 * wf_exec.h — the runtime's internal interface to workflow execution (wf_replay.c, wf_context.c,
 * wf_query.c and their siblings, see wf_ctx.h), used by the task handler and the public workflow
 * calls (wf_api.c), the composition calls (wf_child.c, wf_patch.c, wf_progress.c) and the
 * declarative saga (saga_builtin.c).
 */
#ifndef AJ_RUNTIME_WF_EXEC_H
#define AJ_RUNTIME_WF_EXEC_H

#include "aj.h"
#include "core/workflow.h"
#include "util/arena.h"

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
/* Runs one task of workflow `id` (len bytes, the task job's payload) on the calling thread, in
 * transactions of its own (wf_api.c): 0, or the error the task job fails with (aj_errmsg). The
 * worker pool's task handler calls it, and so does the simulator for a task it claimed. */
int aj__wf_task_run(aj_engine *e, const void *id, size_t len);
/* Parks the run with a message, in `t`. */
int aj__wf_park(kv_txn *t, const job_env *env, aj_slice id, const char *msg);
/* Replays read-only and calls the query handler `name`. *out: malloc'd. */
int aj__wf_query_run(aj_wf *wf, aj_workflow_fn fn, void *ud, const char *name, char **out,
                     size_t *out_len);
/* The declarative saga (saga_builtin.c): checks an input; registers the `saga` type. */
int aj__saga_builtin_validate(const void *input, size_t len);
int aj__saga_builtin_register(aj_engine *e);

/* Replays a loaded (query-mode) context against fn; see aj_wf_replay_check. */
int aj__wf_replay_check(aj_wf *wf, aj_workflow_fn fn, void *ud, char **out_report);

/* --- For the composition calls in their own files (wf_child.c, wf_patch.c) --- */

/* A run's decision about one patch id (wf_patch.c). */
typedef struct aj__wf_patch {
    const char *id; /* in the context's scratch arena */
    int value;      /* 1 new path, 0 old */
} aj__wf_patch;

/* Where the code first waited in this task (wf_progress.c). */
typedef struct aj__wf_wait {
    const char *kind; /* "signal", "activity", "child", "timer", "compensation"; NULL: none */
    const char *name; /* in the context's scratch arena */
    int implied;      /* the call's own command, the last one made, marks the position */
} aj__wf_wait;

/* What a durable call may look at: valid until the next call that records. */
typedef struct aj__wf_view {
    kv_txn *t;
    const job_env *env;
    const wf_rec *w;
    const wf_event *events; /* the run's history so far */
    size_t n_events;
    size_t cursor; /* events before it have been replayed (commands consumed) */
    int query_mode;
    aj_arena *scratch; /* freed with the task */
    aj__wf_patch **patches;
    size_t *n_patches;
    aj__wf_wait *wait;
} aj__wf_view;

void aj__wf_view_get(aj_wf *wf, aj__wf_view *v);
/* 1 for events the code makes in order (commands), 0 for arrivals. */
int aj__wf_is_command(const wf_event *ev);
/* The next recorded command: 1 and *out when it is `type` (or `alt`) named `name`, 0 when live,
 * negative (the run parks) when it is something else. Skips markers not asked about. */
int aj__wf_next(aj_wf *wf, uint8_t type, uint8_t alt, const char *name, const wf_event **out);
/* Records a command or arrival live, in the task's transaction. */
int aj__wf_record(aj_wf *wf, uint8_t type, const char *name, aj_bytes data, uint64_t aux,
                  uint64_t ref);
/* The arrival answering command `ref` visible at the call's position, or NULL. */
const wf_event *aj__wf_arrival(const aj_wf *wf, uint64_t ref, uint8_t type, uint8_t alt);
/* Live: submits an activity's job and records its activity_scheduled (wf_activity_async.c). */
int aj__wf_activity_schedule(aj_wf *wf, const char *name, const aj_job_spec *spec);
/* The outcome of the activity scheduled as event `seq`, as aj_activity sees it at the call's
 * position: 0 with *out, AJ_EFAILED, AJ_ECANCELLED, or AJ_SUSPEND (cancelling its job when the
 * run is being cancelled). */
int aj__wf_activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out);
/* 1 when each run in [from, to) ended by continuing as new, else 0 (wf_runs.c). */
int aj__wf_runs_continued(kv_txn *t, aj_slice id, uint32_t from, uint32_t to);
/* Returns AJ_SUSPEND (answering a pending query first). */
int aj__wf_suspend(aj_wf *wf);
/* Marks the code as diverged from its history with `msg` (the run parks); AJ_ESTATE. */
int aj__wf_diverged(aj_wf *wf, const char *msg);

/* --- Where the code waits (wf_progress.c) --- */

/* A call that waits and found nothing before its position: 1 when the next command is the
 * wait_point of this call (KIND:NAME), now consumed, so the call looks again up to the next
 * command; 0 when it is not; negative once the code diverged. */
int aj__wf_wait_marker(aj_wf *wf, const char *kind, const char *name);
/* Every call that waits suspends through here: the run diverged when recorded commands are
 * left (the code stops short of where it went on before); else the first wait of the task is
 * noted and AJ_SUSPEND returned. `implied`: the call made its own command just now (a timer,
 * an activity), so that command already marks where the code stopped. */
int aj__wf_suspend_at(aj_wf *wf, const char *kind, const char *name, int implied);
/* The function returned AJ_SUSPEND: a divergence (AJ_ESTATE, see aj__wf_diverged) when recorded
 * commands are left unconsumed; else, live, records the wait_point of the task's first wait
 * when nothing else marks it. 0 or an error. */
int aj__wf_progress_suspended(aj_wf *wf);

#endif
