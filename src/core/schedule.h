/*
 * schedule.h — schedules as pure functions over one storage transaction (the rules are in
 * aj.h, "Schedules").
 *
 * Keys (keys.h): 'K' name holds the record (schedule_record.h); 'H' due_ms name indexes active
 * schedules (not paused, with a next fire) by the time their next fire is due; 'O' name holds
 * the id of the job a buffered fire waits for. Every index entry is written in the same
 * transaction as its record.
 *
 * Exactly once: every function that fires reads the schedule record (so it joins the read set)
 * and rewrites it with the fire's effects and the job it created. Two processes that race for
 * the same fire cannot both commit: the second one's read of the record is stale, its commit
 * conflicts, and its retry finds the fire done. Nothing here waits, sleeps or reads a clock:
 * the time comes from job_env, ids for new jobs come from the caller.
 */
#ifndef AJ_CORE_SCHEDULE_H
#define AJ_CORE_SCHEDULE_H

#include "aj.h"
#include "core/jobs.h"
#include "core/schedule_record.h"
#include "store/kv.h"

/* Key prefixes (keys.h). */
enum {
    KEY_SCHEDULE = 'K',
    KEY_SCHEDULE_DUE = 'H',
    KEY_SCHEDULE_WAIT = 'O',
};

/* Checks a spec without touching storage: AJ_EINVAL, AJ_ETOOBIG. Whether its zone exists and
 * what a type needs of its payload are the runtime's checks (eng_sched_spec_check); sched_add
 * also meets an unknown zone through env->zone (AJ_ENOTFOUND). */
int sched_spec_check(const aj_schedule_spec *spec);

/* Creates a schedule: AJ_EEXISTS when the name is taken. */
int sched_add(kv_txn *t, const job_env *env, const aj_schedule_spec *spec);
/* Reads one record: 0, AJ_ENOTFOUND, or a decode error. Byte fields borrow from the txn. */
int sched_read(kv_txn *t, const char *name, sched_rec *out);
/* Calls fn for every schedule in name order; fn returns nonzero to stop. */
int sched_list(kv_txn *t, int (*fn)(void *ud, const sched_rec *r), void *ud);
int sched_pause(kv_txn *t, const job_env *env, const char *name);
int sched_resume(kv_txn *t, const job_env *env, const char *name);
int sched_remove(kv_txn *t, const job_env *env, const char *name);
/* Creates a job now with id `id`. */
int sched_trigger(kv_txn *t, const job_env *env, const char *name, uint64_t id);
/* Creates one job per fire time in [from_ms, to_ms), with ids first_id, first_id + 1, ...;
 * at most `max` (AJ_EINVAL beyond). *out_n receives the number created. */
int sched_backfill(kv_txn *t, const job_env *env, const char *name, int64_t from_ms, int64_t to_ms,
                   uint64_t first_id, size_t max, size_t *out_n);

/* The nominal fire times of a record strictly after after_ms (no jitter), at most `max`; the
 * zone comes through env->zone. */
int sched_fire_times(const job_env *env, const sched_rec *r, int64_t after_ms, int64_t before_ms,
                     size_t max, int64_t *out, size_t *out_n);

/* What one sched_step() did. */
typedef struct sched_step_out {
    int progressed;   /* wrote something: commit, and call again */
    int used_id;      /* created a job with the id given */
    int64_t next_due; /* when the schedule is due next (INT64_MAX: not) */
} sched_step_out;

/* Does the next thing a schedule needs at env->now_ms: creates a buffered fire's job once the
 * job it waits for finished, or handles the due fire (catch-up, overlap, jitter for the next).
 * Creates at most one job, with id `id`. A schedule that is gone, paused or not due is left
 * alone (progressed 0). */
int sched_step(kv_txn *t, const job_env *env, const char *name, uint64_t id, sched_step_out *out);

/* Calls fn with the name of each schedule due at `now` (at most `limit`), then with each whose
 * buffered fire's job has finished. *out_next receives the due time of the first schedule not
 * yet due (INT64_MAX: none). */
int sched_poll(kv_txn *t, int64_t now, size_t limit, int (*fn)(void *ud, const char *name),
               void *ud, int64_t *out_next);

/* Verifies records against the 'H' and 'O' indexes and back. */
int sched_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
                uint64_t *out_records, uint64_t *out_problems);

#endif
