/*
 * wf_wakeq.c — wake requests and their fold (see wf_wakeq.h).
 *
 * Invariant: a request 'g' id 0 seq is written in the same transaction as an inbox entry of
 * workflow id, and deleted only by a fold that made sure a task will run id after that entry
 * committed (wf_wake_settled) — or found the workflow gone or ended. So no arrival is left
 * without a task, whichever process folds it and whenever.
 */
#include "core/wf_wakeq.h"

#include <assert.h>
#include <string.h>

#include "core/keys.h"
#include "core/workflow.h"
#include "util/err.h"

/* 'g' id 0 [seq] */
static void key_request(akey *k, aj_slice id, int with_seq, uint64_t seq) {
    k->b[0] = 'g';
    memcpy(k->b + 1, id.p, id.n);
    k->b[1 + id.n] = 0;
    k->n = 2 + id.n;
    if (with_seq) {
        aj__put_u64be(k->b + k->n, seq);
        k->n += 8;
    }
}

void wf_woken_note(wf_woken *w, aj_slice id) {
    if (w == NULL || w->overflow) {
        return;
    }
    size_t pos = 0;
    aj_slice seen;
    while (wf_woken_next(w, &pos, &seen)) {
        if (seen.n == id.n && memcmp(seen.p, id.p, id.n) == 0) {
            return;
        }
    }
    if (w->n == WF_WOKEN_MAX) {
        w->overflow = 1;
        return;
    }
    aj__buf_add_bytes(&w->ids, id.p, id.n);
    w->overflow = w->ids.oom;
    w->n += !w->ids.oom;
}

void wf_woken_reset(wf_woken *w) {
    aj__buf_reset(&w->ids);
    w->ids.oom = 0;
    w->n = 0;
    w->overflow = 0;
}

void wf_woken_free(wf_woken *w) {
    aj__buf_free(&w->ids);
    w->n = 0;
    w->overflow = 0;
}

int wf_woken_any(const wf_woken *w) {
    return w->n > 0 || w->overflow;
}

int wf_woken_next(const wf_woken *w, size_t *pos, aj_slice *id) {
    if (*pos >= w->ids.len || w->ids.oom) {
        return 0;
    }
    aj_rd r;
    aj__rd_init(&r, w->ids.p + *pos, w->ids.len - *pos);
    id->p = aj__rd_bytes(&r, &id->n);
    assert(!r.bad); /* written by wf_woken_note alone */
    *pos += r.off;
    return 1;
}

int wf_wakeq_add(kv_txn *t, const job_env *env, aj_slice id, uint64_t seq) {
    akey k;
    key_request(&k, id, 1, seq);
    int rc = kv_put(t, k.b, k.n, "", 0);
    if (rc == 0) {
        wf_woken_note(env->woken, id);
    }
    return rc;
}

typedef struct fold_walk {
    kv_txn *t;
    size_t n;
    int rc;
} fold_walk;

static int fold_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    fold_walk *w = ud;
    int rc = kv_del(w->t, key, klen);
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    w->n++;
    return 0;
}

int wf_wakeq_fold(kv_txn *t, const job_env *env, aj_slice id, size_t *out_n) {
    akey k;
    key_request(&k, id, 0, 0);
    fold_walk w = {t, 0, 0};
    /* Peeked and deleted blindly: every request seen here committed before this transaction
     * began, so the wake-up below covers it whoever else folds it too; folds of one workflow
     * then conflict only when both create a task (on the wake marker). */
    int rc = kv_peek_prefix(t, k.b, k.n, 0, fold_cb, &w);
    rc = rc != 0 ? rc : w.rc;
    if (rc != 0 || w.n == 0) {
        *out_n = 0;
        return rc;
    }
    /* The record only tells the task's queue and whether anyone still listens: peeked, so a
     * task of the workflow committing meanwhile does not make this fold conflict (a run that
     * ended meanwhile gets a task that finds nothing to do). */
    wf_rec r;
    rc = wf_peek(t, id, &r);
    if (rc == 0 && !aj_wf_state_is_final(r.state) && r.state != AJ_WF_PARKED) {
        rc = wf_wake_settled(t, env, r.id, r.type);
    } else if (rc == 0 || rc == AJ_ENOTFOUND) {
        rc = 0; /* ended, parked (resume wakes it) or collected: the requests just go */
        aj__err_clear();
    }
    if (rc == 0) {
        *out_n = w.n;
    }
    return rc;
}

typedef struct sweep_walk {
    int64_t cutoff_us;
    akey ids[WF_WAKEQ_SWEEP_BATCH]; /* distinct workflows with an old request, as 'g' id 0 */
    size_t n_ids, max_ids;
} sweep_walk;

static int sweep_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    sweep_walk *w = ud;
    if (klen < 11 || klen - 8 > KEY_MAX || key[klen - 9] != 0) {
        return 0; /* not a request this version writes: left alone */
    }
    int64_t at_us = (int64_t)(aj__get_u64be(key + klen - 8) >> 10);
    size_t plen = klen - 8;
    if (at_us > w->cutoff_us) {
        return 0;
    }
    if (w->n_ids > 0 && w->ids[w->n_ids - 1].n == plen &&
        memcmp(w->ids[w->n_ids - 1].b, key, plen) == 0) {
        return 0; /* the same workflow as the previous request (keys are in order) */
    }
    if (w->n_ids == w->max_ids) {
        return 1;
    }
    memcpy(w->ids[w->n_ids].b, key, plen);
    w->ids[w->n_ids].n = plen;
    w->n_ids++;
    return 0;
}

int wf_wakeq_sweep(kv_txn *t, const job_env *env, int64_t min_age_ms, size_t limit, size_t *out_n) {
    sweep_walk w;
    w.cutoff_us = env->now_us - min_age_ms * 1000;
    w.n_ids = 0;
    w.max_ids = limit < WF_WAKEQ_SWEEP_BATCH ? limit : WF_WAKEQ_SWEEP_BATCH;
    uint8_t p = 'g';
    /* Unbounded: young requests are skipped, and there are few (their writers fold them). */
    int rc = kv_scan_prefix(t, &p, 1, 0, 0, sweep_cb, &w);
    size_t total = 0;
    for (size_t i = 0; i < w.n_ids && rc == 0; i++) {
        aj_slice id = {w.ids[i].b + 1, w.ids[i].n - 2};
        size_t n = 0;
        rc = wf_wakeq_fold(t, env, id, &n);
        total += n;
    }
    if (rc == 0) {
        *out_n = total;
    }
    return rc;
}
