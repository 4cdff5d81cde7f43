/*
 * engine.h — the engine handle's internals, shared by the runtime's files (engine.c, txn.c,
 * worker.c, ticker.c). Not part of the public API.
 *
 * Threads: the engine owns a ticker thread (promotes due jobs, reaps expired leases, collects old
 * records, flushes counters) and, once started, a worker pool (worker.c). `mu` guards the id
 * block, the PRNG, the handler table and the queue cache; `counters_mu` guards the counters.
 */
#ifndef AJ_RUNTIME_ENGINE_H
#define AJ_RUNTIME_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "aj.h"
#include "core/jobs.h"
#include "runtime/shell.h"
#include "store/kv.h"
#include "util/hlc.h"
#include "util/log.h"
#include "util/rand.h"

/* Ids reserved from the store at a time; ids are increasing within a process. */
#define ENG_ID_BLOCK 1000
/* Times one eng_run refills an id block that ran out inside its transaction body (a body needs
 * at most ENG_ID_BLOCK ids, so one refill is enough unless other threads drain the block). */
#define ENG_ID_REFILLS 8
/* Ids a workflow task finds in the block before it starts (eng_ids_ensure): a task that creates
 * more jobs than this (activities, children, timers' jobs) in one go may run out of ids and
 * repeat its inline steps once, with a block then sized to what it took. */
#define ENG_TASK_IDS 256
/* Transaction attempts before giving up on repeated conflicts (AJ_ERETRIES). */
#define ENG_TXN_ATTEMPTS 64
/* Most handler types one engine can register. */
#define ENG_HANDLERS_MAX 256
/* A process's counter record untouched this long is folded into the base record. */
#define ENG_COUNTERS_FOLD_MS (10 * 60 * AJ_SECOND)
/* How often counters are flushed to the store. */
#define ENG_COUNTER_FLUSH_MS 1000
/* How often finished jobs and expired idempotency keys are collected. */
#define ENG_COLLECT_EVERY_MS (60 * AJ_SECOND)
/* Longest retention, idempotency TTL or shutdown deadline: 100 years. */
#define ENG_PERIOD_MAX ((int64_t)36500 * AJ_DAY)
/* Entries one periodic duty handles per transaction. */
#define ENG_DUTY_BATCH 256
/* Unreadable job records a process remembers having logged (unreadable.c). */
#define ENG_UNREADABLE_REMEMBERED 65536

typedef struct eng_handler {
    char *type;
    aj_handler_fn fn;
    void *ud;
} eng_handler;

typedef struct eng_wf_type {
    char *type;
    aj_workflow_fn fn;
    void *ud;
} eng_wf_type;

typedef struct aj_pool aj_pool;
typedef struct aj__wf_cache aj__wf_cache;

struct aj_engine {
    kv_store *kv;
    int owns_kv; /* 0 when a test handed the store in (aj__engine_open_kv) */
    aj_engine_opts opts;
    aj_clock clock;
    aj_logger log;
    uint64_t instance; /* this process's counters record */

    pthread_mutex_t mu;
    aj_rng rng;
    uint64_t id_next, id_end;
    aj_hlc hlc; /* stamps job progress (progress_buf.c) */
    eng_handler handlers[ENG_HANDLERS_MAX];
    size_t n_handlers;
    eng_wf_type wf_types[ENG_HANDLERS_MAX];
    size_t n_wf_types;
    char **known_queues; /* queues this process has registered in the store */
    size_t n_known, cap_known;

    pthread_mutex_t counters_mu;
    pthread_mutex_t flush_mu; /* a flush's commit and `flushed` change together (counters.c) */
    aj_counters counters;
    aj_counters flushed;  /* this process's counters as of its last flush (counters.c) */
    uint64_t *unreadable; /* sorted ids of unreadable job records already logged */
    size_t n_unreadable, cap_unreadable;
    int unreadable_full; /* ENG_UNREADABLE_REMEMBERED reached, and said so */

    pthread_t ticker;
    int ticker_started;
    atomic_int closing;
    int64_t last_collect_ms;
    int64_t last_flush_ms;

    aj_pool *pool;
    pthread_mutex_t pool_mu;    /* guards `pool` for readers on other threads (the reaper) */
    struct aj_sched_svc *sched; /* the schedule service (scheduler.c), or NULL */
    aj__wf_cache *wf_cache;     /* recently run workflow histories (wf_history_cache.c) */
    struct aj__tz_cache *zones; /* parsed time zones for schedules (tz_cache.c) */
    size_t blob_budget;         /* bytes of new blobs per transaction; 0: BLOB_TXN_BYTES (tests
                                   lower it to exercise staging with small payloads) */
    aj__shell_env shell_env;    /* what `shell` jobs get of the environment (builtins.c) */
};

/* Opens an engine over an existing store, which the engine does not close (tests use it to
 * "restart" over a memory store after a simulated crash). */
int aj__engine_open_kv(aj_engine **out, kv_store *kv, const aj_engine_opts *opts);

/* job_env.unreadable: logs and counts an unreadable job record once per process. */
void eng_note_unreadable(void *ud, uint64_t id, int code, const char *why);
/* Where a transaction attempt takes the ids of jobs it creates (job_env.alloc_id): the engine's
 * block, without any I/O; `empty` is set when the block ran out, and the attempt must then be
 * run again after eng_ids_refill(). */
typedef struct eng_id_src {
    aj_engine *e;
    int empty;   /* the block ran out during the attempt */
    size_t used; /* ids the attempt took, to size the refill after it ran out */
} eng_id_src;
/* Fills a job_env for one transaction attempt; `ids` must live as long as the attempt. */
void eng_env(aj_engine *e, job_env *env, aj_counters *delta, eng_id_src *ids);
/* Adds a transaction's counter delta to the engine's counters. */
void eng_count(aj_engine *e, const aj_counters *delta);
void eng_count_latency(aj_engine *e, int64_t latency_us);
/* A transaction body: runs inside one attempt; must reset any output it fills at its start. */
typedef int (*eng_txn_fn)(kv_txn *t, const job_env *env, void *ud);
/* Runs fn in a transaction and commits it, retrying conflicts with bounded backoff and jitter.
 * A body that only reads may return ENG_READ_ONLY to skip the commit. Workflows the committed
 * transaction woke (env->woken) are then folded before eng_run returns (runtime/wf_wakeq.h). */
#define ENG_READ_ONLY 1
int eng_run(aj_engine *e, eng_txn_fn fn, void *ud, kv_sync sync);
/* Reserves n consecutive ids (outside any transaction: it may commit a new block). */
int eng_ids(aj_engine *e, size_t n, uint64_t *first);
/* Replaces the engine's id block with a fresh one of n ids (outside any transaction). */
int eng_ids_refill(aj_engine *e, size_t n);
/* Makes sure the block holds at least n ids, refilling it (outside any transaction) when it does
 * not: called before a transaction whose body runs user code, which a refill would repeat. */
int eng_ids_ensure(aj_engine *e, size_t n);
/* Makes sure the queue is registered in the store. */
int eng_note_queue(aj_engine *e, const char *queue);
int64_t eng_now_ms(aj_engine *e);
int64_t eng_now_us(aj_engine *e);
uint64_t eng_rand(aj_engine *e);
/* Looks up a handler; 0 when found. */
int eng_handler_find(aj_engine *e, aj_slice type, eng_handler *out);
/* Looks up a workflow type (wf_api.c); 0 when found. */
int eng_wf_find(aj_engine *e, aj_slice type, eng_wf_type *out);

/* Every queue registered in the store (free with eng_queue_names_free). */
int eng_queue_names(aj_engine *e, char ***out, size_t *n);
void eng_queue_names_free(char **names, size_t n);
/* Claims up to max jobs into caller arrays (jobs owned by the caller afterwards); with
 * only_handled, only jobs whose type has a handler registered here. `who` (may be NULL) gives
 * the claimer's node and tags for routing (jobs.h). */
int eng_claim(aj_engine *e, const char *const *queues, size_t n_queues, const char *worker,
              const job_claim_who *who, size_t max, int only_handled, aj_job **jobs,
              int64_t *latency, size_t *n);

/* queue_api.c: what eng_registry_op does to the worker pool's registry entry. */
typedef enum eng_registry_action {
    ENG_REGISTRY_WRITE,   /* writes it */
    ENG_REGISTRY_REFRESH, /* refreshes it (and collects entries of pools long gone) */
    ENG_REGISTRY_DELETE   /* deletes it */
} eng_registry_action;
struct wreg_entry;
int eng_registry_op(aj_engine *e, const struct wreg_entry *w, eng_registry_action op);

/* blob_api.c: hashes the data over the blob threshold (hints for the transaction's env, owned:
 * aj__free) and stages it in transactions of its own when it is too large to write with its
 * jobs. */
struct blob_hint;
int eng_blob_prepare(aj_engine *e, const aj_slice *data, size_t n, struct blob_hint **out_hints,
                     size_t *out_n);
/* blob_api.c: collects at once the blobs eng_blob_prepare() staged, when the submit they were
 * for failed. Keeps the caller's aj_errmsg(). */
void eng_blob_unstage(aj_engine *e, const struct blob_hint *h, size_t n);
/* Bytes of new blobs written with a job's transaction; more are staged first. */
size_t eng_blob_budget(aj_engine *e);

/* sched_hooks.c: the schedule core's time zones and the shell type's payload (job_env). */
struct tz_zone;
void eng_sched_hooks(aj_engine *e, job_env *env);
/* A zone from the engine's cache (tz_cache.h), borrowed until the engine closes. */
int eng_zone(aj_engine *e, const char *name, const struct tz_zone **out);
/* What a schedule spec needs beyond sched_spec_check: its zone exists, a shell template's
 * payload can take AJ_SCHEDULED_AT. */
int eng_sched_spec_check(aj_engine *e, const aj_schedule_spec *s);

/* ticker.c */
int eng_ticker_start(aj_engine *e);
void eng_ticker_stop(aj_engine *e);
int eng_flush_counters(aj_engine *e);
/* Folds the counter records of processes quiet for ENG_COUNTERS_FOLD_MS into the shared base
 * record (counters.c). */
int eng_fold_counters(aj_engine *e);

/* worker.c */
void eng_pool_destroy(aj_engine *e);
/* job_env.lease_held for the reaper (ud: the engine): 1 when this process's worker pool holds
 * the lease (id, epoch) and is renewing it — running, claimed ahead, or waiting for its outcome
 * to be recorded. */
int eng_pool_holds(void *ud, uint64_t id, uint64_t epoch);

/* scheduler.c: stops the schedule service and frees it. */
void eng_sched_destroy(aj_engine *e);

#endif
