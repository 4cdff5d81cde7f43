/*
 * jobs.h — the job lifecycle as pure functions over one storage transaction.
 *
 * Every function here reads and writes only through the kv_txn it is given, takes the time and
 * randomness it needs from job_env, and moves a record together with all of its index entries,
 * so that the caller's commit makes each transition atomic. Nothing here waits, sleeps, spawns
 * threads or reads a clock: the runtime owns retries on conflict, commits and time.
 *
 * States and their index entries (keys.h):
 *   scheduled  S + D          ready  S + R          running  S + L
 *   completed  S + F          dead   S              cancelled S + F
 */
#ifndef AJ_CORE_JOBS_H
#define AJ_CORE_JOBS_H

#include "aj.h"
#include "core/job_record.h"
#include "core/route.h"
#include "store/kv.h"

struct tz_zone;

typedef struct job_env {
    int64_t now_ms;             /* wall clock */
    int64_t now_us;             /* the same instant in microseconds */
    uint64_t rand;              /* randomness for jitter */
    int64_t retention_ms;       /* keep finished jobs this long */
    int64_t idempotency_ttl_ms; /* an idempotency key holds this long */
    aj_counters *delta;         /* counters incremented by what happened; may be NULL */
    /* Allocates a job id, for transitions that create jobs (workflow tasks and activities);
     * ids taken by a transaction that then aborts are simply skipped. It never commits (ids
     * come from a block the runtime reserved outside the transaction); when the block is
     * empty it fails and the runtime runs the transaction again after a refill. */
    int (*alloc_id)(void *ud, uint64_t *out);
    void *alloc_ud;
    /* Payloads and results longer than this are stored as blobs (blob.h); 0: the default. */
    size_t blob_threshold;
    /* Hashes of large buffers computed before the transaction (blob.h); may be NULL. */
    const struct blob_hint *blob_hints;
    size_t n_blob_hints;
    /* Told of every job record a duty or claim skipped because it cannot be decoded (a newer
     * format, or damage): `code` is AJ_EFORMAT or AJ_ECORRUPT, `why` the decoder's message.
     * Such a record and its index entries are left exactly as they are. May be NULL. */
    void (*unreadable)(void *ud, uint64_t id, int code, const char *why);
    void *unreadable_ud;
    /* Schedules (schedule.h). Time zones come parsed from the runtime's cache, since core reads
     * no files: 0 and a borrowed zone, or an error (AJ_ENOTFOUND for an unknown zone). NULL:
     * only "UTC" is known. */
    int (*zone)(void *ud, const char *name, const struct tz_zone **out);
    /* A fired job's payload as its type wants it (the runtime's `shell` type adds
     * env.AJ_SCHEDULED_AT = `when`): 0 with *out NULL keeps the template's payload, else *out
     * is the payload to use (free()). NULL: always the template's payload. */
    int (*sched_payload)(void *ud, const char *type, aj_slice payload, const char *when,
                         char **out);
    void *sched_ud;
    /* The reaper asks this (when not NULL) before expiring a lease: nonzero means this process
     * still holds the lease and renews it, so it is renewed instead (lease_keep in worker.c).
     * A process never expires its own live leases, whatever its clock or its store did. */
    int (*lease_held)(void *ud, uint64_t id, uint64_t epoch);
    void *lease_held_ud;
    /* Workflows given a wake request by this transaction (wf_wakeq.h), for its runner to fold
     * once it committed; NULL: nobody does right away, the sweep duty does. */
    struct wf_woken *woken;
} job_env;

/* env0 with the blob hashes a caller computed before its transaction (the submit, a worker's
 * outcome, an operation's result). */
static inline job_env job_env_hinted(const job_env *env0, const struct blob_hint *hints,
                                     size_t n_hints) {
    job_env e = *env0;
    e.blob_hints = hints;
    e.n_blob_hints = n_hints;
    return e;
}

/* The lease length a job gets: its own, but never under AJ_LEASE_MIN_MS (records written before
 * the floor existed may hold less). */
static inline int64_t job_lease_len(int64_t lease_ms) {
    return lease_ms < AJ_LEASE_MIN_MS ? AJ_LEASE_MIN_MS : lease_ms;
}

/* How an attempt failed. */
typedef enum job_failure {
    JOB_FAIL_RETRYABLE = 0,
    JOB_FAIL_PERMANENT = 1,
    JOB_FAIL_TIMEOUT = 2, /* ran past its execution timeout */
    JOB_FAIL_LEASE = 3,   /* its lease expired (the reaper) */
} job_failure;

/* Checks a whole spec without touching storage, its routing (route.h) and dependency (deps.h)
 * fields included: AJ_EINVAL / AJ_ETOOBIG naming the problem. */
int job_spec_check(const aj_job_spec *spec);

/* Creates a job with id `id` (or, for a live idempotency key, finds the first one: *out_id is
 * then that job's id and *out_created 0). */
int job_submit(kv_txn *t, const job_env *env, const aj_job_spec *spec, uint64_t id,
               uint64_t *out_id, int *out_created);
/* job_submit for a job a workflow waits for: `owner` is recorded in the job (see
 * job_hooks.h). */
int job_submit_owned(kv_txn *t, const job_env *env, const aj_job_spec *spec, uint64_t id,
                     aj_slice owner, uint64_t *out_id, int *out_created);
/* Records a queue name in the queue registry. */
int job_note_queue(kv_txn *t, const char *queue);
/* Calls fn for every known queue name (NUL-terminated, valid during the call). */
int job_list_queues(kv_txn *t, int (*fn)(void *ud, const char *queue), void *ud);

/* Reads one job: 0, AJ_ENOTFOUND, or a decode error. Byte fields borrow from the transaction. */
int job_read(kv_txn *t, uint64_t id, job_rec *out);

/* Called for each claimed job with its new record; `latency_us` is the time since it became
 * ready. Return nonzero to abort the claim (the error is returned). */
typedef int (*job_claim_fn)(void *ud, const job_rec *rec, int64_t latency_us);

/* Which job types a claimer can run; NULL: every type. */
typedef int (*job_accept_fn)(void *ud, aj_slice type);

/* Who claims: node and tags for routing (route.h), and the most jobs to take from queues with a
 * concurrency limit (a worker pool takes no more than it has idle threads, so that jobs claimed
 * ahead do not hold the queue's slots; SIZE_MAX: no bound). */
typedef struct job_claim_who {
    route_claimer id;
    size_t max_limited;
} job_claim_who;

/* Claims up to `max` ready jobs of the given queues in priority order, then by ready time,
 * skipping (leaving ready) jobs whose type `accept` refuses or whose routing excludes `who`
 * (NULL: an anonymous claimer), and honouring the queues' controls (queue_ctl.h). *out_n
 * receives the number claimed. */
int job_claim(kv_txn *t, const job_env *env, const char *const *queues, size_t n_queues,
              const char *worker, const job_claim_who *who, size_t max, job_accept_fn accept,
              job_claim_fn fn, void *ud, size_t *out_n);
/* Marks every running job of `queue` as holding a slot of its concurrency limit; *out_n
 * receives how many there are (queue_ctl.c, when a limit is set). */
int job_take_slots(kv_txn *t, const job_env *env, const char *queue, uint32_t *out_n);

int job_heartbeat(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch);
int job_complete(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, aj_slice result);
int job_fail(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, job_failure how,
             const char *error, aj_slice result);
int job_release(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, int64_t delay_ms);
int job_cancel(kv_txn *t, const job_env *env, uint64_t id);
int job_redrive(kv_txn *t, const job_env *env, uint64_t id);
int job_purge(kv_txn *t, const job_env *env, uint64_t id);

/* Dependencies (deps.c). A job waiting on dependencies is scheduled with run_at_ms
 * AJ_RUN_AT_DEPS. job_hold moves a ready or scheduled job there (*out_run_at: its run-at if it
 * was scheduled, else 0); job_unhold moves a waiting job to ready, or scheduled at run_at_ms if
 * that is still ahead; job_dep_fail dead-letters a waiting job as dependency_failed. The last
 * two do nothing to a job that is not waiting. job_discard deletes a job in any state with its
 * index entry and progress (a graph that was never activated). */
int job_hold(kv_txn *t, const job_env *env, uint64_t id, int64_t *out_run_at);
int job_unhold(kv_txn *t, const job_env *env, uint64_t id, int64_t run_at_ms);
int job_dep_fail(kv_txn *t, const job_env *env, uint64_t id, const char *error);
int job_discard(kv_txn *t, const job_env *env, uint64_t id);

/* Periodic duties. Each handles at most `limit` entries; *out_n receives how many it handled
 * and *out_next (may be NULL) the time of the next entry due (INT64_MAX: none). */
int job_promote_due(kv_txn *t, const job_env *env, size_t limit, size_t *out_n, int64_t *out_next);
int job_reap_expired(kv_txn *t, const job_env *env, size_t limit, size_t *out_n, int64_t *out_next);
int job_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n);

/* Exact counts of jobs in each state (indexed by aj_job_state). */
int job_count_states(kv_txn *t, uint64_t counts[AJ_STATE_COUNT]);

/* 1 when some job of the given queues (n_queues 0: any) is ready or running, or scheduled to
 * become ready before `horizon_ms`. Jobs held on dependencies are not counted. */
int job_any_pending(kv_txn *t, const char *const *queues, size_t n_queues, int64_t horizon_ms,
                    int *out_pending);

/* Calls fn for each job matching the filter, in id order (the filter's older_than_ms is
 * relative to env->now_ms). fn returns nonzero to stop. */
int job_list(kv_txn *t, const job_env *env, const aj_job_filter *f,
             int (*fn)(void *ud, const job_rec *rec), void *ud);

/* Verifies records against indexes and indexes against records. */
int job_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
              uint64_t *out_records, uint64_t *out_problems);

#endif
