/*
 * job_duties.c — the periodic duties over jobs: promotion, the lease reaper and retention.
 *
 * The runtime calls these in short transactions: promote scheduled jobs whose time has come,
 * reap running jobs whose lease expired, and collect finished jobs and idempotency keys past
 * their retention.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/blob.h"
#include "core/deps.h"
#include "core/keys.h"
#include "core/progress.h"

typedef struct due_list {
    uint64_t ids[256];
    int64_t times[256];
    size_t n, cap;
    int64_t next; /* first time past the window; INT64_MAX if none */
} due_list;

static int due_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    due_list *d = ud;
    if (klen != 17) {
        return 0;
    }
    if (d->n == d->cap) {
        d->next = key_time(key, klen);
        return 1;
    }
    d->times[d->n] = key_time(key, klen);
    d->ids[d->n++] = key_tail_id(key, klen);
    return 0;
}

/* Collects up to `limit` entries of a time index with times <= upto. */
static int scan_due_from(kv_txn *t, uint8_t kind, const akey *from, int64_t upto, size_t limit,
                         due_list *d) {
    d->n = 0;
    d->cap = limit < 256 ? limit : 256;
    d->next = INT64_MAX;
    akey start = *from, end;
    key_time_id(&end, kind, upto, UINT64_MAX);
    /* One extra entry tells the time of the next one due. */
    int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, d->cap + 1, due_cb, d);
    if (rc == 0 && d->n < d->cap) {
        /* Everything due was taken: look past the window for the next time. */
        akey after;
        key_time_id(&after, kind, upto, UINT64_MAX);
        akey stop;
        key_prefix(&stop, (uint8_t)(kind + 1));
        due_list next = {.n = 0, .cap = 0, .next = INT64_MAX};
        rc = kv_scan(t, after.b, after.n, stop.b, stop.n, 0, 1, due_cb, &next);
        d->next = next.next;
    }
    return rc;
}

static int scan_due(kv_txn *t, uint8_t kind, int64_t upto, size_t limit, due_list *d) {
    akey start;
    key_prefix(&start, kind);
    return scan_due_from(t, kind, &start, upto, limit, d);
}

/* 1 while a duty has an entry at *i. When a full window of due entries ran out after skipping
 * unreadable records, the entries after it are read (up to JOB_UNREADABLE_SKIP_MAX skipped and
 * `limit` handled), so those records never hold back the ones behind them. */
static int due_next(kv_txn *t, uint8_t kind, int64_t upto, size_t room, size_t skipped, due_list *d,
                    size_t *i, int *rc) {
    if (*i < d->n) {
        return 1;
    }
    if (skipped == 0 || skipped > JOB_UNREADABLE_SKIP_MAX || room == 0 || d->n < d->cap) {
        return 0;
    }
    akey from;
    key_time_id(&from, kind, d->times[d->n - 1], d->ids[d->n - 1] + 1);
    *rc = scan_due_from(t, kind, &from, upto, room, d);
    *i = 0;
    return *rc == 0 && d->n > 0;
}

int job_promote_due(kv_txn *t, const job_env *env, size_t limit, size_t *out_n, int64_t *out_next) {
    due_list d;
    int rc = scan_due(t, KEY_DELAYED, env->now_ms, limit, &d);
    size_t done = 0, skipped = 0;
    for (size_t i = 0;
         rc == 0 && due_next(t, KEY_DELAYED, env->now_ms, limit - done, skipped, &d, &i, &rc);
         i++) {
        job_rec before, r;
        if (job_read_or_skip(t, env, d.ids[i], &before, &rc, &skipped)) {
            continue;
        }
        if (rc == 0 && (before.state != AJ_STATE_SCHEDULED || before.run_at_ms != d.times[i])) {
            rc = AJ_ECORRUPT;
        }
        if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            akey k;
            key_time_id(&k, KEY_DELAYED, d.times[i], d.ids[i]);
            rc = job_repair_index(t, k.b, k.n, d.ids[i]);
            done++;
            continue;
        }
        if (rc != 0) {
            break;
        }
        r = before;
        r.state = AJ_STATE_READY;
        r.ready_us = r.run_at_ms * 1000;
        r.updated_ms = env->now_ms;
        rc = job_transition(t, env, &before, &r);
        done++;
    }
    if (rc == 0) {
        *out_n = done;
        if (out_next != NULL) {
            *out_next = d.next;
        }
    }
    return rc;
}

int job_reap_expired(kv_txn *t, const job_env *env, size_t limit, size_t *out_n,
                     int64_t *out_next) {
    due_list d;
    /* A lease covers [claim, expiry): it is expired from its expiry time on. Until the reaper
     * takes it, a late heartbeat still renews it: the epoch, not the clock, is what fences. */
    int rc = scan_due(t, KEY_LEASE, env->now_ms, limit, &d);
    size_t done = 0, skipped = 0;
    for (size_t i = 0;
         rc == 0 && due_next(t, KEY_LEASE, env->now_ms, limit - done, skipped, &d, &i, &rc); i++) {
        job_rec before, r;
        if (job_read_or_skip(t, env, d.ids[i], &before, &rc, &skipped)) {
            continue;
        }
        if (rc == 0 &&
            (before.state != AJ_STATE_RUNNING || before.lease_expires_ms != d.times[i])) {
            rc = AJ_ECORRUPT;
        }
        if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            akey k;
            key_time_id(&k, KEY_LEASE, d.times[i], d.ids[i]);
            rc = job_repair_index(t, k.b, k.n, d.ids[i]);
            done++;
            continue;
        }
        if (rc != 0) {
            break;
        }
        if (env->lease_held != NULL &&
            env->lease_held(env->lease_held_ud, before.id, before.epoch)) {
            rc = job_heartbeat(t, env, before.id, before.epoch); /* ours and alive: renewed */
            done++;
            continue;
        }
        r = before;
        char msg[160 + AJ_NAME_MAX];
        snprintf(msg, sizeof msg, "lease expired: worker %.*s stopped heartbeating",
                 (int)(before.worker.n > 200 ? 200 : before.worker.n),
                 before.worker.p ? (const char *)before.worker.p : "?");
        r.error = aj__slice_str(msg);
        COUNT(env, lease_expired);
        job_apply_failure(env, &r, JOB_FAIL_LEASE);
        rc = job_transition(t, env, &before, &r);
        done++;
    }
    if (rc == 0) {
        *out_n = done;
        if (out_next != NULL) {
            *out_next = d.next;
        }
    }
    return rc;
}

typedef struct idem_due {
    akey keys[64];
    size_t n;
} idem_due;

static int idem_due_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    idem_due *d = ud;
    if (klen > KEY_MAX || d->n == 64) {
        return 1;
    }
    memcpy(d->keys[d->n].b, key, klen);
    d->keys[d->n].n = klen;
    d->n++;
    return 0;
}

int job_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n) {
    due_list d;
    int64_t upto = env->now_ms - env->retention_ms;
    int rc = scan_due(t, KEY_FINISHED, upto, limit, &d);
    size_t done = 0, skipped = 0;
    for (size_t i = 0;
         rc == 0 && due_next(t, KEY_FINISHED, upto, limit - done, skipped, &d, &i, &rc); i++) {
        job_rec r;
        if (job_read_or_skip(t, env, d.ids[i], &r, &rc, &skipped)) {
            continue;
        }
        if (rc == AJ_ENOTFOUND) {
            akey k;
            key_time_id(&k, KEY_FINISHED, d.times[i], d.ids[i]);
            rc = job_repair_index(t, k.b, k.n, d.ids[i]);
            done++;
            continue;
        }
        if (rc != 0) {
            break;
        }
        akey k;
        key_job(&k, r.id);
        if ((rc = job_unindex(t, &r)) == 0) {
            rc = job_del_key(t, &k);
        }
        if (rc == 0) {
            rc = progress_delete(t, r.id); /* progress goes with its job */
        }
        if (rc == 0) {
            rc = deps_forget(t, env, r.id); /* and so do its dependency edges */
        }
        if (rc == 0) {
            rc = blob_job_release(t, env, &r); /* and its large payload and result */
        }
        done++;
    }
    /* Expired idempotency keys: the X entry names the I record, which is removed only if it
     * still carries that expiry (a renewed key has a newer X entry). Batches run until none is
     * due or `limit` entries were handled. */
    size_t idem_done = 0;
    for (;;) {
        idem_due x = {.n = 0};
        if (rc == 0) {
            akey start, end;
            key_prefix(&start, KEY_IDEM_EXPIRY);
            key_time_id(&end, KEY_IDEM_EXPIRY, env->now_ms, 0);
            rc = kv_scan(t, start.b, start.n, end.b, 9, 0, 64, idem_due_cb, &x);
        }
        for (size_t i = 0; i < x.n && rc == 0; i++) {
            akey ik;
            ik.b[0] = KEY_IDEM;
            ik.n = x.keys[i].n - 8;
            memcpy(ik.b + 1, x.keys[i].b + 9, ik.n - 1);
            const uint8_t *v;
            size_t vn;
            rc = kv_get(t, ik.b, ik.n, &v, &vn);
            idem_rec ir;
            if (rc == 0 && job_idem_decode(v, vn, &ir) == 0 &&
                ir.expires == key_time(x.keys[i].b, x.keys[i].n)) {
                rc = job_del_key(t, &ik);
            } else if (rc == AJ_ENOTFOUND || rc == 0) {
                rc = 0;
            }
            if (rc == 0) {
                rc = job_del_key(t, &x.keys[i]);
            }
            idem_done++;
        }
        if (rc != 0 || x.n < 64 || idem_done >= limit) {
            break;
        }
    }
    done += idem_done;
    if (rc == 0) {
        *out_n = done;
    }
    return rc;
}
