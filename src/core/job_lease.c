/*
 * job_lease.c — what a lease holder may do: heartbeat, complete, fail and release a job.
 *
 * Each operation is fenced by the lease epoch: a holder whose lease was lost (reaped, cancelled,
 * re-claimed) gets AJ_ELEASE and changes nothing. Failure applies the retry policy or moves the
 * job to the dead letter state.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <string.h>

#include "core/blob.h"
#include "util/err.h"

/* Reads a running job and checks that `epoch` still holds its lease. */
static int read_leased(kv_txn *t, uint64_t id, uint64_t epoch, job_rec *out) {
    int rc = job_read(t, id, out);
    if (rc != 0) {
        return rc;
    }
    if (out->state == AJ_STATE_RUNNING && out->epoch == epoch) {
        return 0;
    }
    if (out->state == AJ_STATE_CANCELLED) {
        return aj__err(AJ_ECANCELLED, "job %llu was cancelled", (unsigned long long)id);
    }
    return aj__err(AJ_ESTALE, "lease epoch %llu of job %llu is stale (job is %s, epoch %llu)",
                   (unsigned long long)epoch, (unsigned long long)id, aj_state_name(out->state),
                   (unsigned long long)out->epoch);
}

int job_heartbeat(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch) {
    job_rec before, r;
    int rc = read_leased(t, id, epoch, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.lease_expires_ms = env->now_ms + job_lease_len(r.lease_ms);
    r.updated_ms = env->now_ms;
    if (r.lease_expires_ms == before.lease_expires_ms) {
        return job_put_rec(t, &r);
    }
    return job_transition(t, env, &before, &r);
}

/* A worker finishing a job (complete or fail) hands in a result within the limit and must hold
 * the lease. */
static int read_finishing(kv_txn *t, uint64_t id, uint64_t epoch, aj_slice result, job_rec *out) {
    if (result.n > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "result is %zu bytes, over the %zu-byte limit", result.n,
                       AJ_PAYLOAD_MAX);
    }
    return read_leased(t, id, epoch, out);
}

int job_complete(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, aj_slice result) {
    job_rec before, r;
    int rc = read_finishing(t, id, epoch, result, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.state = AJ_STATE_COMPLETED;
    r.finished_ms = r.updated_ms = env->now_ms;
    r.lease_expires_ms = 0;
    uint8_t ref[BLOB_REF_LEN]; /* a large result's reference (blob.h) */
    rc = blob_job_set_result(t, env, &r, result.p ? result : aj__slice_str(""), ref);
    if (rc != 0) {
        return rc;
    }
    COUNT(env, completed);
    return job_transition(t, env, &before, &r);
}

static aj_dead_reason dead_reason_for(job_failure how) {
    switch (how) {
    case JOB_FAIL_PERMANENT:
        return AJ_DEAD_PERMANENT;
    case JOB_FAIL_TIMEOUT:
        return AJ_DEAD_TIMEOUT;
    case JOB_FAIL_LEASE:
        return AJ_DEAD_LEASE_EXPIRED;
    case JOB_FAIL_RETRYABLE:
        break;
    }
    return AJ_DEAD_MAX_ATTEMPTS;
}

/* The delay before the next attempt, with up to 10% jitter. */
static int64_t retry_delay(const job_env *env, const job_rec *r) {
    int64_t d = aj_backoff_delay(&r->backoff, r->attempts);
    if (d < 0) {
        d = 0;
    }
    if (d > JOB_DELAY_MAX) {
        d = JOB_DELAY_MAX;
    }
    int64_t jitter_max = d / 10;
    if (jitter_max > 0) {
        d += (int64_t)(env->rand % (uint64_t)(jitter_max + 1));
    }
    return d;
}

/* Applies a failed attempt to `r` (a copy of the running record). */
void job_apply_failure(const job_env *env, job_rec *r, job_failure how) {
    r->updated_ms = env->now_ms;
    r->lease_expires_ms = 0;
    COUNT(env, failed);
    if (how == JOB_FAIL_PERMANENT || r->attempts >= r->max_attempts) {
        r->state = AJ_STATE_DEAD;
        r->dead_reason = dead_reason_for(how);
        r->dead_ms = r->finished_ms = env->now_ms;
        COUNT(env, dead_lettered);
        return;
    }
    int64_t delay = retry_delay(env, r);
    COUNT(env, retried);
    r->run_at_ms = env->now_ms + delay;
    if (delay == 0) {
        r->state = AJ_STATE_READY;
        r->ready_us = env->now_us;
    } else {
        r->state = AJ_STATE_SCHEDULED;
    }
}

/* Keeps at most AJ_ERROR_MAX bytes of an error message, cut at a UTF-8 character boundary. */
aj_slice job_error_slice(const char *error) {
    aj_slice s = aj__slice_str(error ? error : "failed");
    if (s.n > AJ_ERROR_MAX) {
        s.n = AJ_ERROR_MAX;
        while (s.n > 0 && (s.p[s.n] & 0xc0) == 0x80) {
            s.n--;
        }
    }
    return s;
}

int job_fail(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, job_failure how,
             const char *error, aj_slice result) {
    job_rec before, r;
    int rc = read_finishing(t, id, epoch, result, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.error = job_error_slice(error);
    uint8_t ref[BLOB_REF_LEN]; /* a large result's reference (blob.h) */
    if (result.p != NULL && (rc = blob_job_set_result(t, env, &r, result, ref)) != 0) {
        return rc;
    }
    job_apply_failure(env, &r, how);
    return job_transition(t, env, &before, &r);
}

int job_release(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, int64_t delay_ms) {
    if (delay_ms < 0 || delay_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "release delay must be between 0 and 100 years");
    }
    job_rec before, r;
    int rc = read_leased(t, id, epoch, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    if (r.attempts > 0) {
        r.attempts--; /* a released attempt does not count */
    }
    r.updated_ms = env->now_ms;
    r.lease_expires_ms = 0;
    r.run_at_ms = env->now_ms + delay_ms;
    if (delay_ms == 0) {
        r.state = AJ_STATE_READY;
        r.ready_us = env->now_us;
    } else {
        r.state = AJ_STATE_SCHEDULED;
    }
    return job_transition(t, env, &before, &r);
}
