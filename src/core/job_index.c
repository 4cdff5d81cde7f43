/*
 * job_index.c — reading and writing job records together with their index entries.
 *
 * Invariant: a job record in state X has exactly the index entries listed for X in jobs.h, and
 * every index entry names a record in the matching state. Each transition reads the record,
 * checks the state (and for a lease holder, the epoch), and rewrites the record and its index
 * entries in the caller's transaction; job_transition() below is the one place that does so.
 * job_check() (job_check.c) verifies the invariant.
 */
#include "core/job_internal.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "core/job_hooks.h"
#include "core/keys.h"
#include "core/queue_ctl.h"
#include "util/err.h"

int job_put_rec(kv_txn *t, const job_rec *r) {
    aj_buf b = AJ_BUF_INIT;
    int rc = job_rec_encode(r, &b);
    if (rc == 0) {
        akey k;
        key_job(&k, r->id);
        rc = kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj__buf_free(&b);
    return rc;
}

/* job_read that tells a record it cannot decode (*undecodable = 1) from a storage error, which
 * can carry the same code (a damaged SQLite file is AJ_ECORRUPT too). */
int job_read_rec(kv_txn *t, uint64_t id, job_rec *out, int *undecodable) {
    akey k;
    key_job(&k, id);
    const uint8_t *v;
    size_t n;
    *undecodable = 0;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "job %llu not found", (unsigned long long)id);
    }
    if (rc != 0) {
        return rc;
    }
    rc = job_rec_decode(v, n, out);
    if (rc != 0) {
        *undecodable = 1;
        return aj__err_wrap(rc, "job %llu", (unsigned long long)id);
    }
    return 0;
}

int job_read(kv_txn *t, uint64_t id, job_rec *out) {
    int undecodable;
    return job_read_rec(t, id, out, &undecodable);
}

/* Reads a job for a claim or a duty: 1 when its record cannot be decoded. Such a record —
 * written by a newer aj during a rolling upgrade, or damaged — is not a dangling index entry:
 * deleting its entries would lose the job for good. The caller skips it, leaving the record and
 * its entries exactly as they are; the runtime logs and counts it once; aj check reports it. */
int job_read_or_skip(kv_txn *t, const job_env *env, uint64_t id, job_rec *out, int *rc,
                     size_t *skipped) {
    int undecodable;
    *rc = job_read_rec(t, id, out, &undecodable);
    if (!undecodable) {
        return 0;
    }
    if (env->unreadable != NULL) {
        env->unreadable(env->unreadable_ud, id, *rc, aj_errmsg());
    }
    (*skipped)++;
    *rc = 0;
    return 1;
}

int job_put_empty(kv_txn *t, const akey *k) {
    return kv_put(t, k->b, k->n, "", 0);
}

int job_del_key(kv_txn *t, const akey *k) {
    return kv_del(t, k->b, k->n);
}

static void ready_key(akey *k, const job_rec *r) {
    key_ready(k, (const char *)r->queue.p, r->queue.n, r->priority, r->ready_us, r->id);
}

/* Each state has exactly one index entry (keys.h); ready, running and scheduled jobs, which
 * change most often, touch one index key per transition. */
void job_index_key(akey *k, const job_rec *r) {
    switch (r->state) {
    case AJ_STATE_SCHEDULED:
        key_time_id(k, KEY_DELAYED, r->run_at_ms, r->id);
        return;
    case AJ_STATE_READY:
        ready_key(k, r);
        return;
    case AJ_STATE_RUNNING:
        key_time_id(k, KEY_LEASE, r->lease_expires_ms, r->id);
        return;
    case AJ_STATE_COMPLETED:
    case AJ_STATE_CANCELLED:
        key_time_id(k, KEY_FINISHED, r->finished_ms, r->id);
        return;
    case AJ_STATE_DEAD:
        key_state(k, AJ_STATE_DEAD, r->id);
        return;
    }
    assert(!"job state out of range");
}

/* Removes the index entry of the record's current state. */
int job_unindex(kv_txn *t, const job_rec *r) {
    akey k;
    job_index_key(&k, r);
    return job_del_key(t, &k);
}

/* Writes the index entry of the record's current state. Finished entries carry the state, so
 * completed and cancelled jobs can be counted from the one index. */
int job_index_rec(kv_txn *t, const job_rec *r) {
    akey k;
    job_index_key(&k, r);
    uint8_t state = (uint8_t)r->state;
    return kv_put(t, k.b, k.n, &state, 1);
}

/* Moves a record to its new state: `before` is the stored record, `after` the new one. Modules
 * that follow jobs (dependencies, workflows) learn of finished and redriven jobs in the same
 * transaction (job_hooks.h). */
int job_transition(kv_txn *t, const job_env *env, const job_rec *before, const job_rec *after) {
    job_rec freed;
    if ((before->flags & JOB_FLAG_SLOT) && after->state != AJ_STATE_RUNNING) {
        /* The lease that held a slot of the queue's concurrency limit ends here. */
        int src = qctl_slot_release(t, before->queue);
        if (src != 0) {
            return src;
        }
        freed = *after;
        freed.flags &= ~JOB_FLAG_SLOT;
        after = &freed;
    }
    int rc = job_unindex(t, before);
    if (rc == 0) {
        rc = job_index_rec(t, after);
    }
    if (rc == 0) {
        rc = job_put_rec(t, after);
    }
    if (rc == 0 && after->owner.p != NULL) {
        rc = job_hook_owned(t, env, before, after);
    }
    if (rc == 0 && !aj_state_is_final(before->state) && aj_state_is_final(after->state)) {
        rc = job_hook_finished(t, env, after);
    } else if (rc == 0 && before->state == AJ_STATE_DEAD && after->state != AJ_STATE_DEAD) {
        rc = job_hook_redriven(t, env, after);
    }
    return rc;
}

/* An index entry that does not match its record (damage from outside the engine, or a bug):
 * the record is the truth. The stray entry is removed and the record's own entry rewritten, so
 * one bad entry never blocks the duties that walk the index. A missing record leaves nothing to
 * index. */
int job_repair_index(kv_txn *t, const uint8_t *key, size_t klen, uint64_t id) {
    int rc = kv_del(t, key, klen);
    job_rec r;
    if (rc == 0) {
        rc = job_read(t, id, &r);
        if (rc == 0) {
            rc = job_index_rec(t, &r);
        } else if (rc == AJ_ENOTFOUND) {
            rc = 0;
        }
    }
    return rc;
}
