/*
 * job_claim.c — claiming ready jobs: choosing, leasing and handing them to a worker.
 *
 * A claim scans the ready index of each named queue in order of priority and age, skips jobs the
 * claimer cannot run (routing, unknown types) or queues whose concurrency gate is closed, and
 * moves each chosen job to running under a new lease epoch.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys.h"
#include "core/queue_ctl.h"
#include "util/err.h"
#include "util/mem.h"

/* Most queues one claim may name. */
#define JOB_CLAIM_QUEUES_MAX 1024
/* Ready jobs a claim looks at beyond the ones it takes, per queue, to get past jobs the
 * claimer has no handler for. */
#define JOB_CLAIM_LOOKAHEAD 64
/* Most jobs one claim may take. */
#define JOB_CLAIM_MAX 1024

typedef struct candidate {
    uint32_t prio;
    int64_t ready_us;
    uint64_t id;
    size_t q; /* index of its queue in the claim's list */
} candidate;

typedef struct cand_list {
    candidate *v;
    size_t n, cap;
    size_t prefix_len;
    size_t q;
    int more;          /* some queue held more entries than were read */
    size_t skipped;    /* unreadable records skipped by this claim */
    size_t round_skip; /* ... in the current round of candidates */
} cand_list;

static int cand_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    cand_list *c = ud;
    if (klen != c->prefix_len + 20 || c->n == c->cap) {
        return 0; /* not an entry of this queue (a longer queue name); skip */
    }
    const uint8_t *p = key + c->prefix_len;
    candidate *d = &c->v[c->n++];
    d->prio = aj__get_u32be(p);
    d->ready_us = (int64_t)aj__get_u64be(p + 4);
    d->id = aj__get_u64be(p + 12);
    d->q = c->q;
    return 0;
}

static int cand_cmp(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->prio != y->prio) {
        return x->prio < y->prio ? -1 : 1;
    }
    if (x->ready_us != y->ready_us) {
        return x->ready_us < y->ready_us ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* 1 when the claimer may take this job under its routing (a job without routing: always). */
static int claim_routed_ok(const job_env *env, const job_claim_who *who, const job_rec *r,
                           int *rc) {
    if (r->route.p == NULL) {
        return 1;
    }
    job_route route;
    *rc = 0;
    if (route_decode(r->route, &route) != 0) {
        return 0; /* damaged (aj check reports it) or newer: no claimer here may take it */
    }
    return route_allows(&route, who != NULL ? &who->id : NULL, env->now_us, r->ready_us, NULL);
}

/* Reads up to `want` entries of each open queue's ready index into c, in claim order. */
static int claim_scan(kv_txn *t, const char *const *queues, size_t n_queues, const qctl_gate *gates,
                      size_t want, cand_list *c) {
    candidate *v = aj__realloc(c->v, want * n_queues * sizeof *v);
    if (v == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory claiming jobs");
    }
    c->v = v;
    c->n = 0;
    c->more = 0;
    c->round_skip = 0;
    int rc = 0;
    for (size_t q = 0; q < n_queues && rc == 0; q++) {
        if (gates[q].allowance == 0) {
            continue;
        }
        akey k;
        key_ready_prefix(&k, queues[q], strlen(queues[q]));
        size_t had = c->n;
        c->prefix_len = k.n;
        c->q = q;
        c->cap = c->n + want;
        rc = kv_scan_prefix(t, k.b, k.n, 0, want, cand_cb, c);
        c->more |= c->n - had == want;
    }
    if (rc == 0 && c->n > 0) {
        qsort(c->v, c->n, sizeof *c->v, cand_cmp);
    }
    return rc;
}

/* 1 while the claim has a candidate at *i. When a round of candidates ran out after skipping
 * unreadable records, the queues are read again that much further down, so those records never
 * hide the jobs behind them (up to JOB_UNREADABLE_SKIP_MAX); jobs already claimed have left the
 * ready index (a scan sees the transaction's own writes). */
static int claim_next(kv_txn *t, const char *const *queues, size_t n_queues, const qctl_gate *gates,
                      size_t per_queue, cand_list *c, size_t *i, int *rc) {
    if (*i < c->n) {
        return 1;
    }
    if (c->round_skip == 0 || !c->more || c->skipped > JOB_UNREADABLE_SKIP_MAX) {
        return 0;
    }
    *rc = claim_scan(t, queues, n_queues, gates, per_queue + c->skipped, c);
    *i = 0;
    return *rc == 0 && c->n > 0;
}

int job_claim(kv_txn *t, const job_env *env, const char *const *queues, size_t n_queues,
              const char *worker, const job_claim_who *who, size_t max, job_accept_fn accept,
              job_claim_fn fn, void *ud, size_t *out_n) {
    if (max == 0 || n_queues == 0) {
        *out_n = 0;
        return 0;
    }
    if (max > JOB_CLAIM_MAX || n_queues > JOB_CLAIM_QUEUES_MAX) {
        return aj__err(AJ_EINVAL, "a claim takes at most %d jobs from at most %d queues",
                       JOB_CLAIM_MAX, JOB_CLAIM_QUEUES_MAX);
    }
    /* Each queue's head, plus room to look past jobs this claimer cannot run or may not take. */
    size_t per_queue = accept != NULL || who != NULL ? max + JOB_CLAIM_LOOKAHEAD : max;
    cand_list c = {NULL, 0, per_queue * n_queues, 0, 0, 0, 0, 0};
    c.v = aj__malloc(c.cap * sizeof *c.v);
    qctl_gate *gates = aj__calloc(n_queues, sizeof *gates);
    if (c.v == NULL || gates == NULL) {
        aj__free(c.v);
        aj__free(gates);
        return aj__err(AJ_ENOMEM, "out of memory claiming jobs");
    }
    int rc = 0;
    size_t claimed = 0, limited = 0;
    size_t max_limited = who != NULL ? who->max_limited : SIZE_MAX;
    for (size_t q = 0; q < n_queues && rc == 0; q++) {
        /* A paused queue, or one at its limits, is not even read. */
        if ((rc = qctl_gate_open(t, env, queues[q], &gates[q])) != 0 || gates[q].allowance == 0) {
            continue;
        }
        akey k;
        key_ready_prefix(&k, queues[q], strlen(queues[q]));
        c.prefix_len = k.n;
        c.q = q;
        c.cap = c.n + per_queue;
        size_t had = c.n;
        rc = kv_scan_prefix(t, k.b, k.n, 0, per_queue, cand_cb, &c);
        c.more |= c.n - had == per_queue;
    }
    if (rc == 0 && c.n > 0) {
        qsort(c.v, c.n, sizeof *c.v, cand_cmp);
    }
    for (size_t i = 0;
         claimed < max && rc == 0 && claim_next(t, queues, n_queues, gates, per_queue, &c, &i, &rc);
         i++) {
        job_rec before, r;
        qctl_gate *g = &gates[c.v[i].q];
        if (g->allowance == 0 || (g->c.concurrency > 0 && limited >= max_limited)) {
            continue; /* the queue's limits are used up for this claim */
        }
        if (job_read_or_skip(t, env, c.v[i].id, &before, &rc, &c.round_skip)) {
            c.skipped++;
            continue;
        }
        if (rc == 0 && before.state != AJ_STATE_READY) {
            rc = AJ_ECORRUPT;
        }
        if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            akey k;
            const char *queue = queues[c.v[i].q];
            key_ready(&k, queue, strlen(queue), c.v[i].prio, c.v[i].ready_us, c.v[i].id);
            rc = job_repair_index(t, k.b, k.n, c.v[i].id);
            continue;
        }
        if (rc != 0) {
            break;
        }
        if (accept != NULL && !accept(ud, before.type)) {
            continue; /* left ready for a worker that can run it */
        }
        if (!claim_routed_ok(env, who, &before, &rc)) {
            continue; /* left ready for a worker its routing allows (or rc is set) */
        }
        r = before;
        r.state = AJ_STATE_RUNNING;
        r.attempts++;
        r.epoch++;
        r.started_ms = r.updated_ms = env->now_ms;
        r.lease_expires_ms = env->now_ms + job_lease_len(r.lease_ms);
        r.worker = aj__slice_str(worker);
        if (g->c.concurrency > 0) {
            r.flags |= JOB_FLAG_SLOT;
            limited++;
        }
        qctl_gate_take(g, env->now_ms);
        if ((rc = job_transition(t, env, &before, &r)) != 0) {
            break;
        }
        int64_t latency = env->now_us - before.ready_us;
        COUNT(env, claimed);
        claimed++;
        if (fn != NULL && (rc = fn(ud, &r, latency < 0 ? 0 : latency)) != 0) {
            break;
        }
    }
    for (size_t q = 0; q < n_queues; q++) {
        if (rc == 0) {
            rc = qctl_gate_close(t, queues[q], &gates[q]);
        }
        qctl_gate_free(&gates[q]);
    }
    aj__free(gates);
    aj__free(c.v);
    if (rc == 0) {
        *out_n = claimed;
    }
    return rc;
}

typedef struct slot_walk {
    kv_txn *t;
    const job_env *env;
    const char *queue;
    uint32_t n;
    int rc;
} slot_walk;

static int slot_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    slot_walk *w = ud;
    job_rec r;
    int rc = job_read(w->t, key_tail_id(key, klen), &r);
    if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT || rc == AJ_EFORMAT) {
        return 0; /* aj check reports it; the reaper repairs it */
    }
    if (rc == 0 && r.state == AJ_STATE_RUNNING && aj__slice_eq(r.queue, w->queue)) {
        w->n++;
        if (!(r.flags & JOB_FLAG_SLOT)) {
            r.flags |= JOB_FLAG_SLOT;
            rc = job_put_rec(w->t, &r);
        }
    }
    w->rc = rc;
    return rc != 0;
}

int job_take_slots(kv_txn *t, const job_env *env, const char *queue, uint32_t *out_n) {
    akey k;
    key_prefix(&k, KEY_LEASE);
    slot_walk w = {t, env, queue, 0, 0};
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, slot_cb, &w);
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_n = w.n;
    }
    return rc;
}
