/*
 * job_list.c — read-only queries over jobs: queue names, counts per state, whether any job is
 * pending, and filtered listing.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys.h"
#include "util/err.h"
#include "util/mem.h"

typedef struct queue_walk {
    int (*fn)(void *ud, const char *queue);
    void *ud;
} queue_walk;

static int queue_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    queue_walk *w = ud;
    char name[AJ_NAME_MAX + 1];
    size_t n = klen - 1;
    if (n > AJ_NAME_MAX) {
        return 0;
    }
    memcpy(name, key + 1, n);
    name[n] = '\0';
    return w->fn(w->ud, name);
}

int job_list_queues(kv_txn *t, int (*fn)(void *ud, const char *queue), void *ud) {
    akey k;
    key_prefix(&k, KEY_QUEUE);
    queue_walk w = {fn, ud};
    return kv_scan_prefix(t, k.b, k.n, 0, 0, queue_cb, &w);
}

/* The index holding jobs of each state (finished states share one). */
static uint8_t state_index(aj_job_state st) {
    switch (st) {
    case AJ_STATE_SCHEDULED:
        return KEY_DELAYED;
    case AJ_STATE_READY:
        return KEY_READY;
    case AJ_STATE_RUNNING:
        return KEY_LEASE;
    case AJ_STATE_COMPLETED:
    case AJ_STATE_CANCELLED:
        return KEY_FINISHED;
    case AJ_STATE_DEAD:
        return KEY_STATE;
    }
    return 0;
}

static void index_range(uint8_t kind, akey *start, akey *end) {
    if (kind == KEY_STATE) {
        key_state_prefix(start, AJ_STATE_DEAD);
        key_state_prefix(end, (aj_job_state)(AJ_STATE_DEAD + 1));
    } else {
        key_prefix(start, kind);
        key_prefix(end, (uint8_t)(kind + 1));
    }
}

typedef struct count_walk {
    uint64_t *counts;
    aj_job_state state; /* for indexes that hold one state */
} count_walk;

static int count_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    count_walk *w = ud;
    aj_job_state st = w->state;
    if (st == 0) { /* the finished index: its value names the state */
        st = vlen == 1 && (val[0] == AJ_STATE_COMPLETED || val[0] == AJ_STATE_CANCELLED)
                 ? (aj_job_state)val[0]
                 : AJ_STATE_COMPLETED;
    }
    w->counts[st]++;
    return 0;
}

int job_count_states(kv_txn *t, uint64_t counts[AJ_STATE_COUNT]) {
    for (int s = 0; s < AJ_STATE_COUNT; s++) {
        counts[s] = 0;
    }
    const aj_job_state one[] = {AJ_STATE_SCHEDULED, AJ_STATE_READY, AJ_STATE_RUNNING, AJ_STATE_DEAD,
                                0};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        akey start, end;
        index_range(one[i] ? state_index(one[i]) : KEY_FINISHED, &start, &end);
        count_walk w = {counts, one[i]};
        int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, count_cb, &w);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

typedef struct pending_walk {
    kv_txn *t;
    const char *const *queues;
    size_t n_queues;
    int found;
    int rc;
} pending_walk;

static int queue_served(const pending_walk *w, aj_slice queue) {
    if (w->n_queues == 0) {
        return 1;
    }
    for (size_t i = 0; i < w->n_queues; i++) {
        if (aj__slice_eq(queue, w->queues[i])) {
            return 1;
        }
    }
    return 0;
}

/* For each id in an index: is that job one of the served queues? A record this process cannot
 * decode does not count: it cannot run it, so it must not hold a drain forever (the claims that
 * skip it log it). */
static int pending_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    pending_walk *w = ud;
    job_rec r;
    int undecodable;
    int rc = job_read_rec(w->t, key_tail_id(key, klen), &r, &undecodable);
    if (undecodable) {
        return 0;
    }
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    if (queue_served(w, r.queue)) {
        w->found = 1;
        return 1;
    }
    return 0;
}

int job_any_pending(kv_txn *t, const char *const *queues, size_t n_queues, int64_t horizon_ms,
                    int *out_pending) {
    pending_walk w = {t, queues, n_queues, 0, 0};
    akey k, end;
    int rc = 0;
    /* Ready jobs: the per-queue index answers directly. */
    if (n_queues > 0) {
        for (size_t i = 0; i < n_queues && !w.found && rc == 0; i++) {
            key_ready_prefix(&k, queues[i], strlen(queues[i]));
            pending_walk any = {t, NULL, 0, 0, 0};
            rc = kv_scan_prefix(t, k.b, k.n, 0, 0, pending_cb, &any);
            w.found = any.found;
        }
    } else {
        key_prefix(&k, KEY_READY);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, pending_cb, &w);
    }
    if (rc == 0 && !w.found && w.rc == 0) {
        key_prefix(&k, KEY_LEASE);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, pending_cb, &w);
    }
    if (rc == 0 && !w.found && w.rc == 0) {
        key_prefix(&k, KEY_DELAYED);
        key_time_id(&end, KEY_DELAYED, horizon_ms, UINT64_MAX);
        rc = kv_scan(t, k.b, k.n, end.b, end.n, 0, 0, pending_cb, &w);
    }
    /* Jobs held on dependencies (run_at AJ_RUN_AT_DEPS) do not count: one is released only in
     * the transaction that finishes a job it waits on, and that job is counted above (ready,
     * running or due) whenever it can finish. */
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_pending = w.found;
    }
    return rc;
}

typedef struct list_walk {
    kv_txn *t;
    const job_env *env;
    const aj_job_filter *f;
    int (*fn)(void *ud, const job_rec *rec);
    void *ud;
    size_t emitted;
    int rc;
    uint64_t *ids; /* ids collected from a state's index */
    size_t n_ids, cap_ids;
} list_walk;

static int slice_contains(aj_slice hay, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0) {
        return 1;
    }
    if (hay.p == NULL || hay.n < n) {
        return 0;
    }
    for (size_t i = 0; i + n <= hay.n; i++) {
        if (memcmp(hay.p + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int list_matches(const list_walk *w, const job_rec *r) {
    const aj_job_filter *f = w->f;
    return r->id > f->after_id && (f->queue == NULL || aj__slice_eq(r->queue, f->queue)) &&
           (f->type == NULL || aj__slice_eq(r->type, f->type)) &&
           (f->state == 0 || r->state == f->state) &&
           (f->dead_reason == AJ_DEAD_NONE || r->dead_reason == f->dead_reason) &&
           (f->error_contains == NULL || slice_contains(r->error, f->error_contains)) &&
           (f->older_than_ms == 0 || r->updated_ms < w->env->now_ms - f->older_than_ms);
}

/* Emits one record; returns nonzero to stop the walk. */
static int list_emit(list_walk *w, const job_rec *r) {
    if (!list_matches(w, r)) {
        return 0;
    }
    int rc = w->fn(w->ud, r);
    if (rc != 0) {
        w->rc = rc > 0 ? 0 : rc;
        return 1;
    }
    w->emitted++;
    return w->f->limit != 0 && w->emitted >= w->f->limit;
}

static int list_record_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)version;
    list_walk *w = ud;
    job_rec r;
    int rc = job_rec_decode(val, vlen, &r);
    if (rc != 0) {
        /* Named, as a read of that one job names it: the operator must find the record. */
        w->rc = aj__err_wrap(rc, "job %llu", (unsigned long long)key_tail_id(key, klen));
        return 1;
    }
    return list_emit(w, &r);
}

static int list_id_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)version;
    list_walk *w = ud;
    if (vlen == 1 && val[0] != (uint8_t)w->f->state) {
        return 0; /* the finished index holds completed and cancelled jobs */
    }
    uint64_t id = key_tail_id(key, klen);
    if (id <= w->f->after_id) {
        return 0;
    }
    if (w->n_ids == w->cap_ids) {
        size_t cap = w->cap_ids ? w->cap_ids * 2 : 256;
        uint64_t *nv = aj__realloc(w->ids, cap * sizeof *nv);
        if (nv == NULL) {
            w->rc = aj__err(AJ_ENOMEM, "out of memory listing jobs");
            return 1;
        }
        w->ids = nv;
        w->cap_ids = cap;
    }
    w->ids[w->n_ids++] = id;
    return 0;
}

static int id_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int job_list(kv_txn *t, const job_env *env, const aj_job_filter *f,
             int (*fn)(void *ud, const job_rec *rec), void *ud) {
    list_walk w = {t, env, f, fn, ud, 0, 0, NULL, 0, 0};
    akey start, end;
    int rc;
    if (f->state == 0) {
        /* Every job: walk the records in id order. */
        key_job(&start, f->after_id == UINT64_MAX ? f->after_id : f->after_id + 1);
        key_prefix(&end, KEY_JOB + 1);
        rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, list_record_cb, &w);
        return rc != 0 ? rc : w.rc;
    }
    /* One state: collect its ids from the state's index, then read them in id order. */
    index_range(state_index(f->state), &start, &end);
    rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, list_id_cb, &w);
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0 && w.n_ids > 0) {
        qsort(w.ids, w.n_ids, sizeof *w.ids, id_cmp);
        for (size_t i = 0; i < w.n_ids && rc == 0; i++) {
            job_rec r;
            rc = job_read(t, w.ids[i], &r);
            if (rc == 0 && list_emit(&w, &r)) {
                rc = w.rc;
                break;
            }
        }
    }
    aj__free(w.ids);
    return rc;
}
