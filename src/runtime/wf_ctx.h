/*
 * wf_ctx.h — the workflow context (struct aj_wf) and the replay primitives shared by the files
 * that run a workflow task and implement its durable calls: wf_context.c (history in memory,
 * loading, the replay cursor), wf_history_cache.c, wf_replay.c (the task), wf_steps.c,
 * wf_activity.c, wf_timers.c, wf_signals.c, wf_side_effect.c, wf_saga_api.c, wf_continue.c,
 * wf_query.c and wf_update_handlers.c. Only those files include it: the rest of the runtime
 * reaches a context through wf_exec.h (aj__wf_view and the aj__wf_* calls).
 *
 * Invariant: events before `cursor` have been replayed; a live command is consumed as it is
 * made; a call sees an arrival only before its horizon (wfx_horizon).
 */
#ifndef AJ_RUNTIME_WF_CTX_H
#define AJ_RUNTIME_WF_CTX_H

#include "aj.h"
#include "core/history.h"
#include "core/workflow.h"
#include "runtime/wf_exec.h"
#include "util/arena.h"
#include "util/buf.h"

/* Most query handlers one workflow may set. */
#define WF_QUERIES_MAX 16
/* Most compensations one saga may hold. */
#define WF_SAGA_MAX 256
/* Attempts of an inline compensation. */
#define WF_COMPENSATION_ATTEMPTS 10
/* Largest key of the user's own records. */
#define WF_USER_KEY_MAX 512

typedef struct saga_entry {
    const char *name;
    aj_step_fn fn; /* NULL: a job compensation */
    void *ud;
    aj_bytes data;
    aj_job_spec spec; /* job compensations: strings copied into the arena */
} saga_entry;

typedef struct query_entry {
    const char *name;
    aj_query_fn fn;
    void *ud;
} query_entry;

/* Most update handlers one workflow may set. */
#define WF_UPDATES_MAX 16

typedef struct update_entry {
    const char *name;
    aj_update_validate_fn validate;
    aj_update_fn handler;
    void *ud;
} update_entry;

/* An update request taken from the inbox by this task, not yet answered. */
typedef struct update_req {
    const char *name;
    aj_bytes data;
    uint64_t req;
    int64_t sent_ms;
} update_req;

struct aj_wf {
    aj_engine *e;
    kv_txn *t;
    const job_env *env;
    wf_rec w;
    aj_arena arena;    /* event bytes: kept with the history in the cache */
    aj_arena scratch;  /* everything else a task allocates: freed with the task */
    wf_event *events;  /* the run's history, including what this task appended */
    uint8_t *consumed; /* signals consumed so far, by event index */
    size_t n_events, cap_events;
    size_t cursor; /* index of the next event to examine for commands */
    int query_mode;
    int nondeterminism;
    char *park_msg;
    aj_bytes result;
    int has_result;
    char *error;
    saga_entry saga[WF_SAGA_MAX];
    size_t n_saga;
    int compensated; /* 1: compensations ran and all completed; 2: one failed */
    query_entry queries[WF_QUERIES_MAX];
    size_t n_queries;
    /* Query mode: the handler runs at the first point where the code waits or ends (see
     * answer_query), while the function's locals the handler reads are still alive. */
    const char *query_name;
    int cache_hit;
    size_t loaded;  /* events the task found in the history */
    int64_t run_us; /* time the workflow code ran */
    int query_answered;
    int query_rc;
    char *query_out;
    size_t query_len;
    /* Composition and evolution (wf_child.c, wf_patch.c, continue-as-new below). */
    int continue_as_new;
    aj_bytes continue_input; /* in scratch */
    aj__wf_patch *patches;   /* the run's patch decisions, in scratch */
    size_t n_patches;
    aj__wf_wait wait; /* where the code first waited in this task (wf_progress.c) */
    /* Updates (see "Updates" below). */
    update_entry updates[WF_UPDATES_MAX];
    size_t n_updates;
    update_req *pending; /* requests drained from the inbox, in arrival order */
    size_t n_pending, cap_pending, next_pending;
    size_t ucursor; /* index of the first event not yet looked at for update_accepted */
};

struct aj_step_ctx {
    aj_wf *wf;
    aj_buf result;
    int failed, permanent;
    char *error;
    /* Writes of this attempt to the user's records, applied only when it succeeds. */
    aj_buf writes; /* records: op(1) klen(varint) key vlen(varint) val */
};

typedef struct wf_cache_entry {
    char *id;
    uint32_t run;
    uint64_t seq, last_id;
    wf_event *events;
    uint8_t *consumed;
    size_t n, cap;
    aj_arena arena;
    uint64_t used; /* LRU stamp */
} wf_cache_entry;

static inline aj_bytes wfx_bytes_of(aj_slice s) {
    aj_bytes b = {s.p, s.n};
    return b;
}

/* --- History in memory and replay (wf_context.c) --- */

/* 1 for commands (events the code makes in order), 0 for arrivals. */
int wfx_is_command(const wf_event *ev);
/* Appends a new event (live) and keeps it in memory; `final` ends the run. */
int wfx_record(aj_wf *wf, uint8_t type, const char *name, aj_bytes data, uint64_t aux, uint64_t ref,
               int final);
/* The seq before which arrivals are visible to the call being made (UINT64_MAX: live). */
uint64_t wfx_horizon(const aj_wf *wf);
/* Every durable call that cannot finish now returns through here (AJ_SUSPEND or an error). */
int wfx_suspend(aj_wf *wf);
/* Parks the run: the code and its history disagree. AJ_ESTATE. */
int wfx_diverged(aj_wf *wf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The next command: 1 and *out replaying, 0 live, negative when it does not match. */
int wfx_next_command(aj_wf *wf, uint8_t type, uint8_t alt, const char *name, const wf_event **out);
/* The arrival answering command `ref` of one of the given types, visible before `before`. */
const wf_event *wfx_find_arrival(const aj_wf *wf, uint64_t ref, uint8_t type, uint8_t alt,
                                 int final_only, uint64_t before);
/* 1 when a cancel request precedes `before`. */
int wfx_cancel_visible(const aj_wf *wf, uint64_t before);

/* --- The history cache (wf_history_cache.c) --- */

/* The engine's cache, made on first use; NULL when out of memory. */
aj__wf_cache *wfx_cache_of(aj_engine *e);
/* Removes and returns the entry of a workflow (0 when there is none). */
int wfx_cache_take(aj__wf_cache *c, aj_slice id, wf_cache_entry *out);
void wfx_cache_entry_free(wf_cache_entry *c);

/* --- The durable calls' shared parts --- */

/* In query mode: calls the query handler once, where the code waits or ends (wf_query.c). */
void wfx_answer_query(aj_wf *wf);
/* Runs a step function with retries (wf_steps.c); *err: the last error, malloc'd. */
int wfx_run_inline(aj_wf *wf, const aj_step_policy *p, aj_step_fn fn, void *ud, aj_bytes input,
                   aj_bytes *out, char **err);
/* Submits the job of an activity or job compensation in the task's transaction (wf_activity.c). */
int wfx_schedule_job(aj_wf *wf, const aj_job_spec *spec, uint64_t *out_job);
/* Schedules (or replays) a timer (wf_timers.c). */
int wfx_timer(aj_wf *wf, const char *name, int64_t fire_at, uint64_t *out_seq,
              uint64_t *out_fired_seq);
/* Ends the run by continuing as new and starts the next one (wf_continue.c). */
int wfx_continue_run(aj_wf *wf, const wf_rec *before);

/* --- Updates, the run's side (wf_update_handlers.c) --- */

/* Keeps an update request drained from the inbox until the code waits. */
int wfx_pending_add(aj_wf *wf, const wf_inbox_entry *e);
/* Re-runs the handlers of the updates recorded before `before` not yet applied. */
int wfx_updates_replay(aj_wf *wf, uint64_t before);
/* Where the code waits or ends: recorded updates up to its position, then pending ones live. */
int wfx_updates_at_wait(aj_wf *wf);
/* Answers the requests the code did not reach. */
int wfx_updates_gone(aj_wf *wf, const char *why);

#endif
