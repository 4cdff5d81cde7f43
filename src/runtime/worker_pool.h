/*
 * worker_pool.h — the worker pool's internals, shared by worker.c (threads: dispatcher, handlers,
 * heartbeats; lifecycle) and worker_outcome.c (recording what a handler's run ended in). Not
 * part of any public or runtime-wide interface: only those two files include it.
 */
#ifndef AJ_WORKER_POOL_H
#define AJ_WORKER_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aj.h"
#include "core/blob.h"
#include "core/jobs.h"
#include "runtime/engine.h"
#include "runtime/progress_buf.h"
#include "runtime/wf_wakeq.h"
#include "util/err.h"

/* Most handler threads in one pool. */
#define POOL_CONCURRENCY_MAX 1024
/* Most jobs claimed ahead of free handler threads. Claims wait for a commit; jobs claimed ahead
 * keep the threads busy meanwhile. How many are needed is measured (see claim_target). */
#define POOL_PREFETCH_MAX 256
/* Longest the dispatcher sleeps before looking at the stop flag and the store again. */
#define POOL_IDLE_WAIT_MS 100
/* Claims in a row that may fail with a store error that does not go away by waiting (a damaged
 * or unreadable file: AJ_ECORRUPT, AJ_EFORMAT, AJ_EIO) before the pool stops with that error.
 * The dispatcher waits POOL_STORE_RETRY_MS between them. Busy, conflicting and full stores are
 * waited out however long they last. */
#define POOL_STORE_ERRORS_MAX 10
#define POOL_STORE_RETRY_MS 500
/* A store server that cannot be reached (AJ_EUNAVAILABLE: restarted, failing over, cut off) is
 * waited out for as long as the pool runs: claims and outcomes are retried after a backoff from
 * POOL_UNREACHABLE_MIN_MS doubling to POOL_UNREACHABLE_MAX_MS, every failure logged. */
#define POOL_UNREACHABLE_MIN_MS 100
#define POOL_UNREACHABLE_MAX_MS 5000
/* A lease is renewed when this fraction of it has passed (1/3: two chances before expiry). */
#define POOL_HEARTBEAT_DIVISOR 3
/* How often the heartbeat thread looks at its slots. */
#define POOL_HEARTBEAT_TICK_MS 50

/* First and longest wait before recording an outcome again after a store error. */
#define OUTCOME_RETRY_FIRST_MS 100
#define OUTCOME_RETRY_MAX_MS 5000
/* An outcome still failing is logged again at most this often. */
#define OUTCOME_RETRY_LOG_MS 10000

typedef enum stop_reason {
    STOP_NONE = 0,
    STOP_TIMEOUT = 1,   /* the attempt ran past its execution timeout */
    STOP_LOST = 2,      /* the lease is gone (reaped, or the epoch is stale) */
    STOP_CANCELLED = 3, /* the job was cancelled */
    STOP_SHUTDOWN = 4,  /* the pool's shutdown deadline passed */
} stop_reason;

typedef enum slot_state {
    SLOT_QUEUED = 0,
    SLOT_RUNNING = 1,
    SLOT_FINISHING = 2,
} slot_state;

typedef struct slot {
    aj_job *job;
    int64_t deadline_us;  /* monotonic time the attempt's execution timeout passes */
    int64_t next_beat_us; /* monotonic time of the next heartbeat */
    atomic_int stop;      /* stop_reason */
    slot_state state;
    int beating; /* a heartbeat commit is in flight */
    int settled; /* settling, and its outcome ended while beating: the heartbeat thread frees it */
    /* Monotonic time the lease surely lasts until: the commit that wrote it began at or after
     * the moment this counts from. */
    int64_t lease_until_us;
    int beat_rc;           /* the last heartbeat's verdict for this slot */
    struct slot *next_due; /* in the heartbeat thread's batch */
    struct slot *next;     /* in the pool's list of all slots, or of settling ones */
    struct slot *next_queued;
    eng_progress *prog; /* the attempt's progress reports; NULL until the first */
} slot;

struct aj_job_ctx {
    slot *s;
    aj_pool *pool;
    eng_progress *prog; /* s->prog once created: the handler's thread alone reads this */
    aj_buf result;
    int has_result;
    int failed;
    int permanent;
    char *error;
};

/* What a handler's run ends in (the transaction an outcome commits). */
typedef enum outcome_kind {
    OUTCOME_COMPLETE, /* job_complete */
    OUTCOME_FAIL,     /* job_fail, retryable or not as `how` says */
    OUTCOME_RELEASE   /* job_release: back to ready, the attempt not counted */
} outcome_kind;

/* An outcome handed to the committer; kept until it is known to be committed or stale. */
typedef struct outcome {
    aj_pool *pool;
    outcome_kind kind;
    uint64_t id, epoch;
    job_failure how;
    char *error;
    aj_buf result;
    int has_result;
    aj_counters delta;
    eng_progress *prog; /* written in the outcome's transaction */
    blob_hint *hints;   /* the result's hash when it is large (blob.h) */
    size_t n_hints;
    slot *s;              /* the settling slot that keeps the lease; NULL when none */
    int failures;         /* store errors recording it so far */
    int64_t backoff_ms;   /* the last wait between attempts */
    int64_t next_try_us;  /* monotonic time of the next attempt (0: at once) */
    int64_t last_log_us;  /* monotonic time the failure was last logged */
    int ambiguous;        /* a commit of it ended AJ_EAMBIGUOUS: it may already be recorded */
    wf_woken woken;       /* workflows its asynchronous commit woke, folded after it */
    struct outcome *next; /* in p->redo or p->folds */
} outcome;

struct aj_pool {
    aj_engine *e;
    char **queues; /* NULL: every queue */
    size_t n_queues;
    uint32_t concurrency;
    int64_t shutdown_deadline_ms;
    char *worker_id;
    char *node;  /* routing: the node this pool runs on */
    char **tags; /* routing: the pool's tags */
    size_t n_tags;
    char host[128]; /* for the registry */
    int64_t started_ms;
    int64_t next_registry_us; /* monotonic time of the next registry refresh */

    pthread_t dispatcher, heartbeater;
    pthread_t *threads;
    uint32_t n_threads;

    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* handler threads wait for queued slots */
    pthread_cond_t cv_freed; /* the dispatcher and stop() wait for freed slots and outcomes */
    slot *all;
    slot *settling; /* slots whose outcome is not yet durable; not counted in inflight */
    slot *queued_head, *queued_tail;
    size_t inflight; /* slots in any state */
    size_t outstanding_outcomes;
    outcome *redo;          /* outcomes whose async commit failed, to record synchronously */
    outcome *folds;         /* outcomes committed whose workflows are still to wake */
    int64_t unreachable_ms; /* the current backoff while the store is unreachable (0: reachable) */
    int unreachable_n;      /* failures in a row against an unreachable store */
    int exiting;            /* handler threads exit when nothing is queued */
    int64_t run_us_avg;     /* moving average of handler run time */
    int64_t claim_us_avg;   /* moving average of a claim's commit time */
    int64_t stop_deadline_us;

    atomic_int stop_requested;
    atomic_int stopped; /* the dispatcher has stopped claiming */
    int store_errors;   /* claims failed in a row with a persistent store error (dispatcher) */
    atomic_int failed;  /* the error that stopped the pool (POOL_STORE_ERRORS_MAX), or 0 */
    char failed_msg[AJ__ERRMSG_MAX]; /* its message; written before `failed` is set */
};

/* worker.c */
/* Frees a slot's memory (its job, its progress buffer). */
void pool_slot_free(slot *s);
/* The store answered again after being unreachable: logs the recovery once, resets the backoff. */
void pool_reachable(aj_pool *p);

/* worker_outcome.c */
/* Builds the outcome transaction once and hands it to the committer without waiting. */
void pool_outcome_submit(aj_pool *p, outcome *o);
/* One outstanding outcome fewer (wakes those waiting for the pool to settle). */
void pool_outcome_settled(aj_pool *p);
/* Removes a slot from the settling list. Called with p->mu held. */
void pool_settling_unlink(aj_pool *p, slot *s);
/* 1 when an outcome in p->redo is due for another attempt. Called with p->mu held. */
int pool_redo_due(aj_pool *p);
/* Records again, synchronously, the outcomes whose asynchronous commit failed and are due; with
 * give_up (stopping, deadline passed) each gets a last attempt. */
void pool_redo_outcomes(aj_pool *p, int give_up);
/* Wakes the workflows of committed outcomes, then ends them. */
void pool_fold_outcomes(aj_pool *p);

#endif
