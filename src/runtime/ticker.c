/*
 * ticker.c — the engine's periodic duties: promote due delayed jobs, reap expired leases,
 * collect finished jobs past their retention and expired idempotency keys, and flush this
 * process's counters. A background thread runs them when the next one falls due or the store
 * changes; aj_engine_tick() runs them once for tests driven by a simulated clock.
 *
 * Counters: each process keeps its own record ('C' + instance) rewritten about once a second, so
 * no key is written by every transaction (which would make every commit conflict).
 */
#include <string.h>
#include <time.h>

#include "core/blob.h"
#include "core/keys.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* Longest sleep of the ticker when nothing is due. */
#define TICK_IDLE_MS 1000
/* The ticker waits in slices this long so that closing the engine is noticed quickly. */
#define TICK_SLICE_MS 20
/* Shortest interval between ticks woken by store changes (bounds the cost under load). */
#define TICK_MIN_INTERVAL_US 2000
/* Counter record format. */
#define COUNTERS_FORMAT 1

typedef struct duty_ctx {
    int which; /* 0 promote, 1 reap, 2 collect */
    size_t n;
    int64_t next;
} duty_ctx;

static int duty_txn(kv_txn *t, const job_env *env, void *ud) {
    duty_ctx *d = ud;
    d->n = 0;
    d->next = INT64_MAX;
    int rc;
    switch (d->which) {
    case 0:
        rc = job_promote_due(t, env, ENG_DUTY_BATCH, &d->n, &d->next);
        break;
    case 1:
        rc = job_reap_expired(t, env, ENG_DUTY_BATCH, &d->n, &d->next);
        break;
    default:
        rc = job_collect(t, env, ENG_DUTY_BATCH, &d->n);
        if (rc == 0) {
            size_t wn = 0;
            rc = wf_collect(t, env, ENG_DUTY_BATCH, &wn);
            d->n += wn;
        }
        if (rc == 0) {
            size_t bn = 0; /* blobs left unreferenced or staged and abandoned (blob.h) */
            rc = blob_collect(t, env, ENG_DUTY_BATCH, &bn);
            d->n += bn;
        }
        break;
    }
    if (rc == 0 && d->n == 0) {
        return ENG_READ_ONLY;
    }
    return rc;
}

/* Runs one duty until nothing more is due; returns the time the next entry falls due. */
static int run_duty(aj_engine *e, int which, int64_t *next) {
    for (;;) {
        duty_ctx d = {which, 0, INT64_MAX};
        int rc = eng_run(e, duty_txn, &d, KV_SYNC);
        if (rc != 0) {
            return rc;
        }
        if (d.n < ENG_DUTY_BATCH) {
            if (next != NULL && d.next < *next) {
                *next = d.next;
            }
            return 0;
        }
    }
}

static void encode_counters(const aj_counters *c, aj_buf *b) {
    const uint64_t *v = (const uint64_t *)c;
    size_t n = sizeof *c / sizeof(uint64_t);
    aj_buf_add_u8(b, COUNTERS_FORMAT);
    aj_buf_add_varint(b, n);
    for (size_t i = 0; i < n; i++) {
        aj_buf_add_varint(b, v[i]);
    }
}

static int decode_counters(const uint8_t *p, size_t len, aj_counters *out) {
    aj_rd r;
    aj_rd_init(&r, p, len);
    memset(out, 0, sizeof *out);
    if (aj_rd_u8(&r) != COUNTERS_FORMAT) {
        return AJ_ECORRUPT;
    }
    uint64_t n = aj_rd_varint(&r);
    uint64_t *v = (uint64_t *)out;
    size_t have = sizeof *out / sizeof(uint64_t);
    for (uint64_t i = 0; i < n && !r.bad; i++) {
        uint64_t x = aj_rd_varint(&r);
        if (i < have) {
            v[i] = x; /* fields added later are appended; older records leave them 0 */
        }
    }
    return r.bad ? AJ_ECORRUPT : 0;
}

typedef struct flush_ctx {
    aj_counters snap;
    uint64_t instance;
} flush_ctx;

static int flush_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    flush_ctx *f = ud;
    aj_buf b = AJ_BUF_INIT;
    encode_counters(&f->snap, &b);
    int rc = b.oom ? AJ_ENOMEM : 0;
    if (rc == 0) {
        akey k;
        key_counters(&k, f->instance);
        rc = kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj_buf_free(&b);
    return rc;
}

int eng_flush_counters(aj_engine *e) {
    flush_ctx f;
    f.instance = e->instance;
    pthread_mutex_lock(&e->counters_mu);
    f.snap = e->counters;
    int same = memcmp(&f.snap, &e->flushed, sizeof f.snap) == 0;
    pthread_mutex_unlock(&e->counters_mu);
    if (same) {
        return 0;
    }
    /* Storage statistics come from the backend; they change with every flush, so they are not
     * part of the "anything new?" comparison above. */
    kv_commit_stats(e->kv, &f.snap.commits, &f.snap.fsyncs, f.snap.commit_batch_hist,
                    AJ_HIST_BUCKETS);
    int rc = eng_run(e, flush_txn, &f, KV_SYNC);
    if (rc == 0) {
        pthread_mutex_lock(&e->counters_mu);
        e->flushed = f.snap;
        memcpy(e->flushed.commit_batch_hist, e->counters.commit_batch_hist,
               sizeof e->flushed.commit_batch_hist);
        e->flushed.commits = e->counters.commits;
        e->flushed.fsyncs = e->counters.fsyncs;
        pthread_mutex_unlock(&e->counters_mu);
    }
    return rc;
}

/* Runs every duty once; *next receives when the next one falls due (wall ms). */
static int tick_once(aj_engine *e, int64_t *next) {
    /* Each duty runs whatever another one reported: a failing promoter must not stop the
     * reaper. The first error is returned. */
    *next = INT64_MAX;
    int rc = run_duty(e, 0, next);
    int rc2 = run_duty(e, 1, next);
    rc = rc != 0 ? rc : rc2;
    int64_t now = eng_now_ms(e);
    if (now - e->last_collect_ms >= ENG_COLLECT_EVERY_MS) {
        rc2 = run_duty(e, 2, NULL);
        rc = rc != 0 ? rc : rc2;
        e->last_collect_ms = now;
    }
    if (now - e->last_flush_ms >= ENG_COUNTER_FLUSH_MS) {
        rc2 = eng_flush_counters(e);
        rc = rc != 0 ? rc : rc2;
        e->last_flush_ms = now;
    }
    return rc;
}

int aj_engine_tick(aj_engine *e) {
    int64_t next;
    int rc = tick_once(e, &next);
    if (rc == 0) {
        /* A test calling tick wants collection too, whatever the interval. */
        rc = run_duty(e, 2, NULL);
        e->last_collect_ms = eng_now_ms(e);
    }
    return rc;
}

static void *ticker_main(void *arg) {
    aj_engine *e = arg;
    int64_t last_error_log = 0;
    while (!atomic_load(&e->closing)) {
        uint64_t seen = kv_change_seq(e->kv);
        int64_t started = aj__mono_us();
        int64_t next;
        int rc = tick_once(e, &next);
        if (rc != 0 && rc != AJ_ECLOSED) {
            /* Keep going: the store may recover (disk full); log at most every 10 s. */
            if (started - last_error_log > 10 * 1000 * 1000) {
                aj__log(&e->log, AJ_LOG_ERROR, "msg=\"periodic duty failed\" error=\"%s\"",
                        aj_errmsg());
                last_error_log = started;
            }
            next = eng_now_ms(e) + TICK_IDLE_MS;
        }
        int64_t wait = next == INT64_MAX ? TICK_IDLE_MS : next - eng_now_ms(e);
        if (wait > TICK_IDLE_MS) {
            wait = TICK_IDLE_MS;
        }
        while (wait > 0 && !atomic_load(&e->closing) && kv_change_seq(e->kv) == seen) {
            int64_t slice = wait < TICK_SLICE_MS ? wait : TICK_SLICE_MS;
            kv_wait_change(e->kv, seen, slice);
            wait -= slice;
        }
        int64_t spent = aj__mono_us() - started;
        if (spent < TICK_MIN_INTERVAL_US) {
            struct timespec ts = {0, (long)(TICK_MIN_INTERVAL_US - spent) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int eng_ticker_start(aj_engine *e) {
    if (pthread_create(&e->ticker, NULL, ticker_main, e) != 0) {
        return aj__err(AJ_EINTERNAL, "cannot start the ticker thread");
    }
    e->ticker_started = 1;
    return 0;
}

void eng_ticker_stop(aj_engine *e) {
    if (e->ticker_started) {
        atomic_store(&e->closing, 1);
        pthread_join(e->ticker, NULL);
        e->ticker_started = 0;
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Statistics                                                                                 */

typedef struct stats_ctx {
    aj_stats *out;
    uint64_t self;
    int rc;
} stats_ctx;

static int sum_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t version) {
    (void)version;
    stats_ctx *s = ud;
    if (klen != 9 || key_tail_id(key, klen) == s->self) {
        return 0;
    }
    aj_counters c;
    if (decode_counters(val, vlen, &c) != 0) {
        return 0; /* a damaged counter record only loses statistics */
    }
    uint64_t *t = (uint64_t *)&s->out->total;
    const uint64_t *v = (const uint64_t *)&c;
    for (size_t i = 0; i < sizeof c / sizeof(uint64_t); i++) {
        t[i] += v[i];
    }
    return 0;
}

static int stats_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    stats_ctx *s = ud;
    memset(&s->out->total, 0, sizeof s->out->total);
    int rc = job_count_states(t, s->out->jobs);
    if (rc == 0) {
        rc = wf_count_states(t, s->out->workflows);
    }
    if (rc == 0) {
        akey k;
        key_prefix(&k, KEY_COUNTERS);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, sum_cb, s);
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_stats_get(aj_engine *e, aj_stats *out) {
    aj_stats st;
    memset(&st, 0, sizeof st);
    stats_ctx s = {&st, e->instance, 0};
    int rc = eng_run(e, stats_txn, &s, KV_SYNC);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&e->counters_mu);
    st.process = e->counters;
    pthread_mutex_unlock(&e->counters_mu);
    uint64_t batches = 0, syncs = 0;
    kv_commit_stats(e->kv, &batches, &syncs, st.process.commit_batch_hist, AJ_HIST_BUCKETS);
    st.process.commits = batches;
    st.process.fsyncs = syncs;
    uint64_t *t = (uint64_t *)&st.total;
    const uint64_t *v = (const uint64_t *)&st.process;
    for (size_t i = 0; i < sizeof st.process / sizeof(uint64_t); i++) {
        t[i] += v[i];
    }
    *out = st;
    return 0;
}
