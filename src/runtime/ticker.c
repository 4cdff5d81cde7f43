/*
 * ticker.c — the engine's periodic duties: promote due delayed jobs, reap expired leases,
 * collect finished jobs past their retention and expired idempotency keys, fold workflow wake
 * requests left behind by a crash, and flush this process's counters. A background thread runs them
 * when the next one falls due or the store changes; aj_engine_tick() runs them once for tests
 * driven by a simulated clock.
 *
 * Counters (counters.c) are flushed about once a second and the records of processes gone
 * quiet are folded every collection.
 *
 * Reaping and the clock: the reaper never expires a lease this process's own pool still renews
 * (it renews it instead: eng_pool_holds), and after a forward step of the wall clock it judges
 * other leases by the clock of before the step for AJ_CLOCK_STEP_GRACE_MS, the time their
 * holders — who see the same step on this machine — get to renew them (util/clock_step.h;
 * docs/DURABILITY.md, "Clocks"). aj_engine_tick(), which tests drive with a simulated clock, reaps
 * by the clock as given.
 */
#include <string.h>
#include <time.h>

#include "core/activity_cache.h"
#include "core/deps.h"
#include "core/blob.h"
#include "core/keys.h"
#include "core/wf_reply.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_wakeq.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/clock_step.h"
#include "util/err.h"
#include "util/mem.h"

/* Longest sleep of the ticker when nothing is due. */
#define TICK_IDLE_MS 1000
/* The ticker waits in slices this long so that closing the engine is noticed quickly. */
#define TICK_SLICE_MS 20
/* Shortest interval between ticks woken by store changes (bounds the cost under load). */
#define TICK_MIN_INTERVAL_US 2000

/* The ticker's duties, each run in its own transactions. */
typedef enum duty_kind {
    DUTY_PROMOTE, /* scheduled jobs that fell due become ready */
    DUTY_REAP,    /* expired leases are taken back */
    DUTY_COLLECT  /* finished records past retention, stale caches, replies, graphs and blobs */
} duty_kind;

typedef struct duty_ctx {
    duty_kind which;
    size_t n;
    int64_t next;
    size_t ops_budget; /* writes one transaction may hold: half the store's limit */
    aj_engine *e;
    int64_t hold_ms; /* the reaper judges leases by the wall clock minus this (clock steps) */
} duty_ctx;

static int duty_txn(kv_txn *t, const job_env *env, void *ud) {
    duty_ctx *d = ud;
    d->n = 0;
    d->next = INT64_MAX;
    int rc;
    switch (d->which) {
    case DUTY_PROMOTE:
        rc = job_promote_due(t, env, ENG_DUTY_BATCH, &d->n, &d->next);
        break;
    case DUTY_REAP: {
        job_env reap = *env;
        reap.now_ms -= d->hold_ms;
        reap.now_us -= d->hold_ms * 1000;
        reap.lease_held = eng_pool_holds;
        reap.lease_held_ud = d->e;
        rc = job_reap_expired(t, &reap, ENG_DUTY_BATCH, &d->n, &d->next);
        if (d->next != INT64_MAX) {
            d->next += d->hold_ms; /* due on the clock the ticker waits by */
        }
        break;
    }
    case DUTY_COLLECT:
    default:
        rc = job_collect(t, env, ENG_DUTY_BATCH, &d->n);
        if (rc == 0) {
            size_t wn = 0;
            rc = wf_collect(t, env, ENG_DUTY_BATCH, &wn);
            d->n += wn;
        }
        if (rc == 0) {
            size_t cn = 0, yn = 0;
            rc = act_cache_collect(t, env, ENG_DUTY_BATCH, &cn);
            if (rc == 0) {
                rc = wf_reply_collect(t, env, ENG_DUTY_BATCH, &yn);
            }
            /* Each counts toward the batch, so the duty runs again while any is full. */
            d->n += cn > yn ? cn : yn;
        }
        if (rc == 0) {
            size_t dn = 0; /* graphs left staged or half-released by a crash (deps.h) */
            rc = deps_sweep(t, env, ENG_DUTY_BATCH, d->ops_budget, &dn);
            d->n += dn;
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
static int run_duty(aj_engine *e, duty_kind which, int64_t *next, int64_t hold_ms) {
    for (;;) {
        duty_ctx d = {which, 0, INT64_MAX, kv_store_limits(e->kv)->max_txn_ops / 2, e, hold_ms};
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

/* Runs every duty once; *next receives when the next one falls due (wall ms). The reaper
 * judges leases by the wall clock minus hold_ms. */
static int tick_once(aj_engine *e, int64_t *next, int64_t hold_ms) {
    /* Each duty runs whatever another one reported: a failing promoter must not stop the
     * reaper. The first error is returned. */
    *next = INT64_MAX;
    int rc = run_duty(e, DUTY_PROMOTE, next, 0);
    int rc2 = run_duty(e, DUTY_REAP, next, hold_ms);
    rc = rc != 0 ? rc : rc2;
    rc2 = aj__wf_sweep_wakes(e); /* wake requests a crash left unfolded (core/wf_wakeq.h) */
    rc = rc != 0 ? rc : rc2;
    int64_t now = eng_now_ms(e);
    if (now - e->last_collect_ms >= ENG_COLLECT_EVERY_MS) {
        rc2 = run_duty(e, DUTY_COLLECT, NULL, 0);
        rc = rc != 0 ? rc : rc2;
        rc2 = eng_fold_counters(e);
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
    int rc = tick_once(e, &next, 0);
    if (rc == 0) {
        /* A test calling tick wants collection too, whatever the interval. */
        rc = run_duty(e, DUTY_COLLECT, NULL, 0);
        if (rc == 0) {
            rc = eng_fold_counters(e);
        }
        e->last_collect_ms = eng_now_ms(e);
    }
    return rc;
}

static void *ticker_main(void *arg) {
    aj_engine *e = arg;
    int64_t last_error_log = 0;
    aj_step_hold hold;
    memset(&hold, 0, sizeof hold);
    while (!atomic_load(&e->closing)) {
        uint64_t seen = kv_change_seq(e->kv);
        int64_t started = aj__mono_us();
        int64_t step;
        int64_t hold_ms = aj__step_hold_update(&hold, eng_now_ms(e), started, &step);
        if (step != 0) {
            aj__log(&e->log, AJ_LOG_WARN,
                    "msg=\"the wall clock stepped; leases are renewed on the new clock and "
                    "judged by the old one for a while\" step_ms=%lld hold_ms=%lld grace_ms=%d",
                    (long long)step, (long long)hold_ms, AJ_CLOCK_STEP_GRACE_MS);
        }
        int64_t next;
        int rc = tick_once(e, &next, hold_ms);
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
