/*
 * commit_queue.c — group commit shared by the SQLite and PostgreSQL backends (commit_queue.h).
 *
 * Invariants: the ring holds q_n requests from q_head; `batch` is used only by the committer
 * thread; a waiter lives on its caller's stack and is touched by the committer only until it
 * sets `done` (under mu), after which caller and commit may be gone. Requests queued before
 * kv_cq_stop are all run before the committer exits. The lock (mu) is never held while a batch
 * runs or a done callback is called.
 *
 * Layer: src/store, below kv.c; used by backends.
 */
#include "store/commit_queue.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/err.h"
#include "util/hist.h"
#include "util/mem.h"

#define CQ_GATHER_MAX_US 2000 /* longest a batch waits for the callers the last one released */
#define CQ_GATHER_MIN_US 20   /* commits faster than 4x this are not worth waiting for */

/* A waiting (KV_SYNC, KV_APPLIED) caller; lives on the caller's stack. */
struct kv_cq_waiter {
    int done;
    int rc;
    char msg[AJ__ERRMSG_MAX];
};

struct kv_cq {
    kv_cq_config cfg;
    char what[KV_CQ_NAME_MAX];

    pthread_mutex_t mu;      /* everything below */
    pthread_cond_t queue_cv; /* the committer waits for requests */
    pthread_cond_t done_cv;  /* waiting callers wait for their batch */
    pthread_cond_t space_cv; /* callers wait for room in the queue */
    kv_cq_req *q;            /* ring */
    size_t q_cap, q_head, q_n;
    int stopping;
    pthread_t committer;
    kv_cq_req *batch;      /* the committer's batch, batch_max entries */
    size_t released;       /* waiting callers the last batch woke up */
    size_t gather_target;  /* queue length once they all committed again */
    int64_t released_us;   /* when they were woken */
    int64_t avg_commit_us; /* moving average of a durable commit (committer thread only) */
    uint64_t batches, syncs, hist[AJ_HIST_BUCKETS];
};

void kv_cq_req_fail(kv_cq_req *r, int rc) {
    r->rc = rc;
    aj__free(r->msg);
    r->msg = rc != AJ_ECONFLICT ? aj__strdup(aj_errmsg()) : NULL;
}

void kv_cq_fail_all(kv_cq_req *reqs, size_t n, int rc) {
    for (size_t i = 0; i < n; i++) {
        kv_cq_req_fail(&reqs[i], rc);
    }
}

/* Waits briefly (the caller holds mu) for the waiting callers the last batch released to commit
 * again, so that they share the next durable commit. Without this, callers settle into two
 * groups that alternate between "in the batch" and "queued behind it", halving the transactions
 * per commit. The wait is bounded by a quarter of a commit, so when they do not come back, the
 * requests already queued lose little. */
static void gather(kv_cq *q) {
    if (!q->cfg.gather || q->released == 0) {
        return;
    }
    int64_t window = q->avg_commit_us / 4;
    if (window > CQ_GATHER_MAX_US) {
        window = CQ_GATHER_MAX_US;
    }
    size_t target = q->gather_target;
    q->released = 0;
    if (window < CQ_GATHER_MIN_US || q->q_n >= target) {
        return;
    }
    int64_t left = q->released_us + window - aj__mono_us();
    if (left <= 0) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(left % 1000000) * 1000L;
    ts.tv_sec += (time_t)(left / 1000000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    while (q->q_n < target && !q->stopping) {
        if (pthread_cond_timedwait(&q->queue_cv, &q->mu, &ts) != 0) {
            break;
        }
    }
}

/* Tells the batch's callers their results (the caller holds mu; returns with it held). */
static void hand_back(kv_cq *q, size_t n) {
    int n_async = 0;
    q->released = 0;
    for (size_t i = 0; i < n; i++) {
        kv_cq_req *r = &q->batch[i];
        if (r->w == NULL) {
            n_async++;
            continue;
        }
        q->released++;
        r->w->rc = r->rc;
        if (r->msg != NULL) {
            snprintf(r->w->msg, sizeof r->w->msg, "%s", r->msg);
        }
        r->w->done = 1; /* from here on the waiter (and its commit) may be gone */
        aj__free(r->msg);
        r->msg = NULL;
    }
    q->gather_target = q->q_n + q->released;
    q->released_us = aj__mono_us();
    pthread_cond_broadcast(&q->done_cv);
    if (n_async == 0) {
        return;
    }
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        kv_cq_req *r = &q->batch[i];
        if (r->w != NULL) {
            continue;
        }
        if (r->rc == AJ_ECONFLICT) {
            aj__err(r->rc, "a key read by the transaction changed before commit");
        } else if (r->rc != 0) {
            aj__err(r->rc, "%s", r->msg != NULL ? r->msg : aj_strerror(r->rc));
        }
        aj__free(r->msg);
        r->msg = NULL;
        if (r->c->done != NULL) {
            r->c->done(r->c->done_ud, r->rc);
        }
    }
    pthread_mutex_lock(&q->mu);
}

static void *committer_main(void *arg) {
    kv_cq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->q_n == 0 && !q->stopping) {
            pthread_cond_wait(&q->queue_cv, &q->mu);
        }
        if (q->q_n == 0) {
            break; /* stopping, and every queued request is done */
        }
        gather(q);
        size_t n = 0, bytes = 0;
        while (n < q->cfg.batch_max && q->q_n > 0) {
            kv_cq_req *r = &q->q[q->q_head];
            if (n > 0 && bytes + r->bytes > q->cfg.batch_bytes) {
                break;
            }
            bytes += r->bytes;
            q->batch[n++] = *r;
            q->q_head = (q->q_head + 1) % q->q_cap;
            q->q_n--;
        }
        pthread_cond_broadcast(&q->space_cv);
        pthread_mutex_unlock(&q->mu);

        int synced = 0;
        int wrote = q->cfg.run(q->cfg.ud, q->batch, n, &synced);
        if (wrote && q->cfg.wrote != NULL) {
            q->cfg.wrote(q->cfg.ud);
        }

        pthread_mutex_lock(&q->mu);
        q->batches++;
        q->syncs += wrote && synced;
        q->hist[aj__hist_bucket(n)]++;
        hand_back(q, n);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int kv_cq_is_committer(kv_cq *q) {
    return pthread_equal(pthread_self(), q->committer);
}

/* Makes room for one more request (the caller holds mu). */
static int queue_room(kv_cq *q) {
    int self = kv_cq_is_committer(q);
    /* Backpressure, except for the committer itself (a done callback), which must not wait for
     * itself: the ring grows for it instead. */
    while (!self && q->q_n >= q->cfg.queue_max && !q->stopping) {
        pthread_cond_wait(&q->space_cv, &q->mu);
    }
    if (q->stopping && !self) {
        return aj__err(AJ_ECLOSED, "%s is closing", q->what);
    }
    if (q->q_n < q->q_cap) {
        return 0;
    }
    size_t cap = q->q_cap * 2;
    kv_cq_req *ring = aj__malloc(cap * sizeof *ring);
    if (ring == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory queueing a commit");
    }
    for (size_t i = 0; i < q->q_n; i++) {
        ring[i] = q->q[(q->q_head + i) % q->q_cap];
    }
    aj__free(q->q);
    q->q = ring;
    q->q_cap = cap;
    q->q_head = 0;
    return 0;
}

int kv_cq_commit(kv_cq *q, kv_commit_req *c) {
    if (c->sync != KV_ASYNC && kv_cq_is_committer(q)) {
        return aj__err(AJ_ESTATE, "a waiting commit from a commit callback would wait for itself");
    }
    size_t bytes = 0;
    for (size_t i = 0; i < c->n_writes; i++) {
        bytes += c->writes[i].klen + c->writes[i].vlen;
    }
    kv_cq_waiter w;
    w.done = 0;
    w.rc = 0;
    w.msg[0] = '\0';
    pthread_mutex_lock(&q->mu);
    int rc = q->stopping ? aj__err(AJ_ECLOSED, "%s is closing", q->what) : 0;
    if (rc == 0) {
        rc = queue_room(q);
    }
    if (rc != 0) {
        pthread_mutex_unlock(&q->mu);
        return rc;
    }
    q->q[(q->q_head + q->q_n) % q->q_cap] =
        (kv_cq_req){c, c->sync != KV_ASYNC ? &w : NULL, bytes, 0, NULL};
    q->q_n++;
    pthread_cond_signal(&q->queue_cv);
    if (c->sync == KV_ASYNC) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    while (!w.done) {
        pthread_cond_wait(&q->done_cv, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    if (w.rc == AJ_ECONFLICT) {
        return aj__err(AJ_ECONFLICT, "a key read by the transaction changed before commit");
    }
    if (w.rc != 0) {
        return aj__err(w.rc, "%s", w.msg);
    }
    return 0;
}

int kv_cq_stopping(kv_cq *q) {
    pthread_mutex_lock(&q->mu);
    int stopping = q->stopping;
    pthread_mutex_unlock(&q->mu);
    return stopping;
}

void kv_cq_stats(kv_cq *q, uint64_t *batches, uint64_t *syncs, uint64_t *hist, size_t n_hist) {
    pthread_mutex_lock(&q->mu);
    if (batches != NULL) {
        *batches = q->batches;
    }
    if (syncs != NULL) {
        *syncs = q->syncs;
    }
    for (size_t i = 0; hist != NULL && i < n_hist; i++) {
        hist[i] = i < AJ_HIST_BUCKETS ? q->hist[i] : 0;
    }
    pthread_mutex_unlock(&q->mu);
}

void kv_cq_note_commit_us(kv_cq *q, int64_t us) {
    assert(kv_cq_is_committer(q));
    q->avg_commit_us = (q->avg_commit_us * 7 + us) / 8;
}

static void cq_free(kv_cq *q) {
    pthread_cond_destroy(&q->queue_cv);
    pthread_cond_destroy(&q->done_cv);
    pthread_cond_destroy(&q->space_cv);
    pthread_mutex_destroy(&q->mu);
    aj__free(q->q);
    aj__free(q->batch);
    aj__free(q);
}

int kv_cq_start(kv_cq **out, const kv_cq_config *cfg) {
    assert(cfg->batch_max > 0 && cfg->queue_max > 0 && cfg->run != NULL);
    kv_cq *q = aj__calloc(1, sizeof *q);
    if (q == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory starting a committer");
    }
    q->cfg = *cfg;
    snprintf(q->what, sizeof q->what, "%s", cfg->what != NULL ? cfg->what : "the store");
    q->cfg.what = q->what;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* gather's deadline is monotonic */
    pthread_cond_init(&q->queue_cv, &ca);
    pthread_cond_init(&q->done_cv, &ca);
    pthread_cond_init(&q->space_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&q->mu, NULL);
    q->q_cap = cfg->queue_max;
    q->q = aj__malloc(q->q_cap * sizeof *q->q);
    q->batch = aj__malloc(cfg->batch_max * sizeof *q->batch);
    if (q->q == NULL || q->batch == NULL) {
        cq_free(q);
        return aj__err(AJ_ENOMEM, "out of memory starting a committer");
    }
    int e = pthread_create(&q->committer, NULL, committer_main, q);
    if (e != 0) {
        cq_free(q);
        return aj__err(AJ_EIO, "cannot start the committer thread: %s", strerror(e));
    }
    *out = q;
    return 0;
}

void kv_cq_stop(kv_cq *q) {
    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->queue_cv);
    pthread_cond_broadcast(&q->space_cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->committer, NULL);
    cq_free(q);
}
