/*
 * worker.c — the worker pool: a dispatcher thread that claims jobs in batches, handler threads
 * that run them, and a heartbeat thread that renews leases and notices lost ones.
 *
 * Flow of one job: the dispatcher claims it (a KV_SYNC commit, so two workers never run the same
 * epoch) and queues a slot; a handler thread runs the handler; the outcome is handed to the
 * committer with KV_ASYNC (a crash before the fsync re-runs the job, which at-least-once allows)
 * and the slot moves to the `settling` list at once, freeing its place in the pool. A settling
 * slot keeps its lease: the heartbeat thread renews it until the outcome is durable or known
 * stale, so an outcome that waits (a busy store, a full disk) never lets its lease lapse. An
 * asynchronous outcome that fails is retried synchronously by the dispatcher, which then learns
 * the truth (a stale epoch drops it); a store error (disk full, I/O, busy) is retried with
 * backoff until the store recovers or the pool stops.
 *
 * Time: everything the pool decides by itself — when to heartbeat, how long its leases surely
 * last, when an execution timeout passes — is measured on the monotonic clock, which a wall
 * clock step does not move. The wall clock only goes into the store (lease expiries), and a
 * step of it (seen by util/clock_step.h) makes the heartbeat thread renew every lease at once.
 *
 * An outcome that woke workflows (an activity's end: core/wf_wakeq.h) has them folded by the
 * heartbeat thread once the committer reports success (the committer's callback must not make a
 * KV_SYNC commit), which it is woken for at once: no wait for the sweep.
 *
 * Locking: `mu` guards the slot lists, counts and flags; `cv` wakes handler threads (work) and
 * the dispatcher (a slot freed). A slot's heartbeat and its outcome's building never overlap:
 * the heartbeat thread marks a slot busy while it commits, and a finishing handler waits for
 * that to end, so the outcome transaction reads the record the heartbeat wrote. Only an outcome
 * still unrecorded a third of a lease later meets a heartbeat of its settling slot; one of the
 * two then conflicts and is retried (the heartbeat finds the job finished and is ignored; the
 * outcome is recorded again). A slot is freed by whoever finishes with it last: the outcome's
 * end (which may run on the committer's thread and so never waits), or the heartbeat thread.
 *
 * Shutdown: a stop request (async-signal-safe: one atomic store) stops claims; queued jobs are
 * released; running handlers get the shutdown deadline, then are told to stop; their jobs are
 * released unless they completed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/queue_ctl.h"
#include "core/worker_registry.h"
#include "core/workflow.h"
#include "core/blob.h"
#include "runtime/engine.h"
#include "runtime/progress_buf.h"
#include "runtime/wf_wakeq.h"
#include "runtime/worker_pool.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/clock_step.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Handler context (public)                                                                  */

int aj_ctx_set_result(aj_job_ctx *ctx, const void *data, size_t len) {
    if (len > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "result is %zu bytes, over the %zu-byte limit", len,
                       AJ_PAYLOAD_MAX);
    }
    aj__buf_reset(&ctx->result);
    aj__buf_add(&ctx->result, data, len);
    if (ctx->result.oom) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a result");
    }
    ctx->has_result = 1;
    return 0;
}

int aj_ctx_fail(aj_job_ctx *ctx, const char *error, int permanent) {
    ctx->failed = 1;
    ctx->permanent = permanent != 0;
    aj__free(ctx->error);
    ctx->error = aj__strdup(error ? error : "failed");
    return permanent ? AJ_EINVAL : AJ_EIO;
}

int aj_ctx_should_stop(const aj_job_ctx *ctx) {
    return atomic_load(&ctx->s->stop) != STOP_NONE;
}

int64_t aj_ctx_deadline(const aj_job_ctx *ctx) {
    /* Timed on the monotonic clock; reported on the wall clock of the moment of asking, so a
     * caller comparing it with the wall clock sees the same time left. */
    int64_t d = ctx->s->deadline_us;
    if (d == INT64_MAX) {
        return INT64_MAX;
    }
    return eng_now_ms(ctx->pool->e) + (d - aj__mono_us()) / 1000;
}

uint32_t aj_ctx_attempt(const aj_job_ctx *ctx) {
    return ctx->s->job->attempts;
}

eng_progress *eng_ctx_progress(aj_job_ctx *ctx) {
    if (ctx->prog != NULL) {
        return ctx->prog;
    }
    aj_pool *p = ctx->pool;
    slot *s = ctx->s;
    pthread_mutex_lock(&p->mu); /* the heartbeat thread reads s->prog under it */
    if (s->prog == NULL) {
        s->prog = eng_progress_new(p->e, s->job->id, s->job->epoch);
    }
    ctx->prog = s->prog;
    pthread_mutex_unlock(&p->mu);
    return ctx->prog;
}

void aj_worker_opts_init(aj_worker_opts *o) {
    memset(o, 0, sizeof *o);
    o->concurrency = 4;
    o->shutdown_deadline_ms = 30 * AJ_SECOND;
}

/* ----------------------------------------------------------------------------------------- */
/* Slots                                                                                      */

static void slot_unlink(aj_pool *p, slot *s) {
    for (slot **pp = &p->all; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    p->inflight--;
    pthread_cond_broadcast(&p->cv_freed);
}

void pool_slot_free(slot *s) {
    eng_progress_free(s->prog);
    aj_job_free(s->job);
    aj__free(s);
}

/* Hands the slot's outcome to the committer and frees the slot. */
static void finish_slot(aj_pool *p, slot *s, outcome_kind kind, job_failure how, aj_job_ctx *ctx) {
    pthread_mutex_lock(&p->mu);
    while (s->beating) {
        pthread_cond_wait(&p->cv_freed, &p->mu);
    }
    s->state = SLOT_FINISHING;
    p->outstanding_outcomes++;
    eng_progress *prog = s->prog; /* no flush is in flight (s->beating is 0), and none starts */
    s->prog = NULL;
    pthread_mutex_unlock(&p->mu);

    outcome *o = aj__calloc(1, sizeof *o);
    if (o != NULL) {
        /* The slot leaves the pool's count (its thread is free) but keeps its lease until the
         * outcome is durable (outcome_end). */
        pthread_mutex_lock(&p->mu);
        slot_unlink(p, s);
        s->next = p->settling;
        p->settling = s;
        pthread_mutex_unlock(&p->mu);
        o->s = s;
        o->pool = p;
        o->kind = kind;
        o->id = s->job->id;
        o->epoch = s->job->epoch;
        o->how = how;
        if (kind == OUTCOME_COMPLETE) {
            eng_progress_complete(prog);
        }
        o->prog = prog;
        if (ctx != NULL) {
            o->error = ctx->error;
            ctx->error = NULL;
            o->result = ctx->result;
            memset(&ctx->result, 0, sizeof ctx->result);
            o->has_result = ctx->has_result;
        }
        pool_outcome_submit(p, o);
    } else {
        /* Out of memory: the lease expires and the job runs again. */
        eng_progress_free(prog);
        pool_outcome_settled(p);
        pthread_mutex_lock(&p->mu);
        slot_unlink(p, s);
        pthread_mutex_unlock(&p->mu);
        pool_slot_free(s);
    }
}

/* Folds a sample into a moving average (weight 1/8). */
static void average_in(int64_t *avg, int64_t sample) {
    *avg = *avg == 0 ? sample : *avg + (sample - *avg) / 8;
}

/* Jobs to hold (running and queued) so that threads stay busy while a claim commits: each
 * thread needs claim time / run time jobs ahead of it. Short jobs (echo) get large batches,
 * which also share each fsync; long jobs (shell) get about one spare per thread, so a worker
 * does not hoard jobs that others could run. */
static size_t claim_target(aj_pool *p) {
    int64_t run = p->run_us_avg > 0 ? p->run_us_avg : 1;
    int64_t ahead = p->concurrency * (p->claim_us_avg / run + 1);
    size_t target = (size_t)p->concurrency + (size_t)ahead;
    if (target > p->concurrency + POOL_PREFETCH_MAX) {
        target = p->concurrency + POOL_PREFETCH_MAX;
    }
    return target;
}

/* Frees a slot without recording any outcome. */
static void drop_slot(aj_pool *p, slot *s) {
    pthread_mutex_lock(&p->mu);
    while (s->beating) {
        pthread_cond_wait(&p->cv_freed, &p->mu);
    }
    slot_unlink(p, s);
    pthread_mutex_unlock(&p->mu);
    pool_slot_free(s);
}

static void run_slot(aj_pool *p, slot *s) {
    aj_engine *e = p->e;
    int64_t started_us = aj__mono_us();
    aj_job *job = s->job;
    stop_reason before = (stop_reason)atomic_load(&s->stop);
    if (before == STOP_SHUTDOWN) {
        finish_slot(p, s, OUTCOME_RELEASE, JOB_FAIL_RETRYABLE, NULL);
        return;
    }
    int64_t lease_ms = job_lease_len(s->job->lease_ms);
    pthread_mutex_lock(&p->mu);
    int64_t lease_left = (s->lease_until_us - aj__mono_us()) / 1000;
    pthread_mutex_unlock(&p->mu);
    if (before != STOP_LOST && before != STOP_CANCELLED &&
        lease_left < lease_ms / POOL_HEARTBEAT_DIVISOR) {
        /* Little of the lease is left (the heartbeat thread is behind): renew before starting,
         * so the reaper does not hand the job to another worker while it runs here. None left
         * by this pool's reckoning (its heartbeats failed: a full disk) is renewed too, and
         * a store error is then waited out: the epoch, not the clock, fences, so a renewal that
         * succeeds proves no one else has the job, while dropping it would leave the reaper to
         * expire an attempt that never ran (dead-lettered as lease_expired). */
        int64_t before_us = aj__mono_us();
        int rc = aj_heartbeat(e, s->job->id, s->job->epoch);
        int64_t wait_ms = OUTCOME_RETRY_FIRST_MS;
        while (lease_left <= 0 && rc != 0 && rc != AJ_ESTALE && rc != AJ_ECANCELLED &&
               rc != AJ_ENOTFOUND && !atomic_load(&p->stop_requested) &&
               !atomic_load(&e->closing) && atomic_load(&s->stop) == STOP_NONE) {
            if (wait_ms == OUTCOME_RETRY_FIRST_MS) {
                aj__log(&e->log, AJ_LOG_WARN,
                        "msg=\"could not renew the lease of a job before starting it; keeping it "
                        "and trying again\" job=%llu error=\"%s\"",
                        (unsigned long long)s->job->id, aj_errmsg());
            }
            aj__sleep_ms(wait_ms);
            wait_ms = wait_ms * 2 > OUTCOME_RETRY_MAX_MS ? OUTCOME_RETRY_MAX_MS : wait_ms * 2;
            before_us = aj__mono_us();
            rc = aj_heartbeat(e, s->job->id, s->job->epoch);
        }
        pthread_mutex_lock(&p->mu);
        if (rc == 0) {
            s->lease_until_us = before_us + lease_ms * 1000;
            lease_left = lease_ms;
        } else if (rc == AJ_ESTALE || rc == AJ_ECANCELLED || rc == AJ_ENOTFOUND) {
            lease_left = 0;
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (before == STOP_LOST || before == STOP_CANCELLED || lease_left <= 0) {
        /* The lease is gone (or about to be taken by the reaper): another worker may already
         * run this job, so it must not start here. Nothing is written; the store decides. */
        drop_slot(p, s);
        return;
    }
    /* The execution timeout counts from here, not from the claim: a job claimed ahead waits
     * for a free thread without using up its time. */
    pthread_mutex_lock(&p->mu);
    s->deadline_us = aj__mono_us() + s->job->timeout_ms * 1000;
    pthread_mutex_unlock(&p->mu);
    aj_job_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.s = s;
    ctx.pool = p;
    eng_handler h;
    int rc;
    if (eng_handler_find(e, (aj_slice){(const uint8_t *)job->type, strlen(job->type)}, &h) != 0) {
        char msg[64 + AJ_NAME_MAX];
        snprintf(msg, sizeof msg, "no handler for job type '%s' in this worker", job->type);
        aj_ctx_fail(&ctx, msg, 0);
        rc = AJ_ENOTFOUND;
    } else {
        rc = h.fn(&ctx, job, h.ud);
        if (rc != 0 && !ctx.failed) {
            char msg[128];
            snprintf(msg, sizeof msg, "handler returned %s", aj_err_name(rc));
            aj_ctx_fail(&ctx, msg, 0);
        }
    }
    int64_t ran_us = aj__mono_us() - started_us;
    pthread_mutex_lock(&p->mu);
    average_in(&p->run_us_avg, ran_us);
    pthread_mutex_unlock(&p->mu);
    stop_reason why = (stop_reason)atomic_load(&s->stop);
    if (!ctx.failed) {
        finish_slot(p, s, OUTCOME_COMPLETE, JOB_FAIL_RETRYABLE, &ctx);
    } else if (why == STOP_SHUTDOWN) {
        finish_slot(p, s, OUTCOME_RELEASE, JOB_FAIL_RETRYABLE, &ctx);
    } else if (why == STOP_TIMEOUT || aj__mono_us() >= s->deadline_us) {
        finish_slot(p, s, OUTCOME_FAIL, JOB_FAIL_TIMEOUT, &ctx);
    } else {
        finish_slot(p, s, OUTCOME_FAIL, ctx.permanent ? JOB_FAIL_PERMANENT : JOB_FAIL_RETRYABLE,
                    &ctx);
    }
    aj__free(ctx.error);
    aj__buf_free(&ctx.result);
}

static void *handler_main(void *arg) {
    aj_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->queued_head == NULL && !p->exiting) {
            pthread_cond_wait(&p->cv_work, &p->mu);
        }
        if (p->queued_head == NULL) {
            break;
        }
        slot *s = p->queued_head;
        p->queued_head = s->next_queued;
        if (p->queued_head == NULL) {
            p->queued_tail = NULL;
        }
        s->state = SLOT_RUNNING;
        pthread_mutex_unlock(&p->mu);
        run_slot(p, s);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ----------------------------------------------------------------------------------------- */
/* Heartbeats                                                                                 */

static int64_t beat_interval_us(const aj_job *j) {
    return job_lease_len(j->lease_ms) * 1000 / POOL_HEARTBEAT_DIVISOR;
}

/* 1 while the pool renews this slot's lease: it is not lost or cancelled, and (running) not
 * more than one lease past its execution timeout — a handler that ignores a stop request loses
 * its lease. Called with p->mu held. */
static int slot_renewing(const slot *s, int64_t now_us) {
    stop_reason why = (stop_reason)atomic_load(&s->stop);
    if (s->settled || why == STOP_LOST || why == STOP_CANCELLED) {
        return 0;
    }
    return s->deadline_us == INT64_MAX ||
           now_us - job_lease_len(s->job->lease_ms) * 1000 < s->deadline_us;
}

int eng_pool_holds(void *ud, uint64_t id, uint64_t epoch) {
    aj_engine *e = ud;
    int held = 0;
    pthread_mutex_lock(&e->pool_mu);
    aj_pool *p = e->pool;
    if (p != NULL) {
        pthread_mutex_lock(&p->mu);
        int64_t now_us = aj__mono_us();
        slot *lists[2] = {p->all, p->settling};
        for (int l = 0; l < 2 && !held; l++) {
            for (slot *s = lists[l]; s != NULL; s = s->next) {
                if (s->job->id == id && s->job->epoch == epoch) {
                    held = slot_renewing(s, now_us);
                    break;
                }
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&e->pool_mu);
    return held;
}

/* Most leases renewed in one heartbeat transaction. */
#define POOL_HEARTBEAT_BATCH 256

typedef struct beat_batch {
    slot *list;
    int64_t now_ms; /* the transaction's time: the new expiry is now_ms + lease_ms */
} beat_batch;

/* Adds a slot to the heartbeat batch. Called with p->mu held. */
static void beat_add(beat_batch *b, slot *s) {
    s->beating = 1;
    s->next_due = b->list;
    b->list = s;
}

/* Renews every lease of the batch in one transaction (one fsync however many jobs the pool
 * holds). A lease that is lost or cancelled is noted on its slot and skipped, so one stale job
 * does not hold up the others' renewals. */
static int beat_txn(kv_txn *t, const job_env *env, void *ud) {
    beat_batch *b = ud;
    b->now_ms = env->now_ms;
    for (slot *s = b->list; s != NULL; s = s->next_due) {
        int rc = job_heartbeat(t, env, s->job->id, s->job->epoch);
        if (rc != 0 && rc != AJ_ESTALE && rc != AJ_ECANCELLED && rc != AJ_ENOTFOUND) {
            return rc;
        }
        s->beat_rc = rc;
    }
    return 0;
}

/* Writes the progress that running jobs reported, in one transaction, for the jobs whose last
 * flush was AJ_PROGRESS_FLUSH_MS ago or more. Called and returns with p->mu held; marks the
 * slots busy meanwhile, like a heartbeat, so their outcome waits for it. */
static void flush_progress(aj_pool *p) {
    eng_progress *batch[POOL_HEARTBEAT_BATCH];
    slot *slots[POOL_HEARTBEAT_BATCH];
    size_t n = 0;
    int64_t now_us = aj__mono_us();
    for (slot *s = p->all; s != NULL && n < POOL_HEARTBEAT_BATCH; s = s->next) {
        if (s->state == SLOT_RUNNING && s->prog != NULL && !s->beating &&
            eng_progress_due(s->prog, now_us)) {
            s->beating = 1;
            batch[n] = s->prog;
            slots[n++] = s;
        }
    }
    if (n == 0) {
        return;
    }
    pthread_mutex_unlock(&p->mu);
    eng_progress_flush(p->e, batch, n);
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        slots[i]->beating = 0;
    }
    pthread_cond_broadcast(&p->cv_freed);
}

/* Writes, refreshes or deletes this pool's worker registry entry. A failure is
 * logged and retried at the next refresh: the registry informs operators, routing does not
 * depend on it. */
static void registry_op(aj_pool *p, eng_registry_action op) {
    wreg_entry w = {p->worker_id, p->node,           p->host,      (const char *const *)p->tags,
                    p->n_tags,    (int64_t)getpid(), p->started_ms};
    int rc = eng_registry_op(p->e, &w, op);
    p->next_registry_us = aj__mono_us() + AJ_WORKER_BEAT_MS * 1000;
    if (rc != 0) {
        aj__log(&p->e->log, AJ_LOG_WARN, "msg=\"worker registry update failed\" error=\"%s\"",
                aj_errmsg());
    }
}

static void *heartbeat_main(void *arg) {
    aj_pool *p = arg;
    aj_engine *e = p->e;
    aj_clock_step clock_watch = {0, 0};
    pthread_mutex_lock(&p->mu);
    while (!(p->exiting && p->inflight == 0 && p->settling == NULL)) {
        if (p->folds != NULL) {
            pthread_mutex_unlock(&p->mu);
            pool_fold_outcomes(p);
            pthread_mutex_lock(&p->mu);
        }
        flush_progress(p);
        if (aj__mono_us() >= p->next_registry_us) {
            pthread_mutex_unlock(&p->mu);
            registry_op(p, ENG_REGISTRY_REFRESH);
            pthread_mutex_lock(&p->mu);
        }
        int64_t now_us = aj__mono_us();
        /* A wall clock step moves every lease expiry already stored against the new clock (a
         * forward step makes them look expired to every reaper on this machine): renew them all
         * now, on the new clock. Reapers hold off meanwhile (AJ_CLOCK_STEP_GRACE_MS). */
        int stepped = aj__clock_step_check(&clock_watch, eng_now_ms(e), now_us) != 0;
        beat_batch b = {NULL, 0};
        size_t n = 0;
        for (slot *s = p->all; s != NULL && n < POOL_HEARTBEAT_BATCH; s = s->next) {
            if (s->state == SLOT_FINISHING || s->beating) {
                continue;
            }
            if (s->state == SLOT_RUNNING && now_us >= s->deadline_us &&
                atomic_load(&s->stop) == STOP_NONE) {
                atomic_store(&s->stop, STOP_TIMEOUT);
            }
            /* Past its deadline (plus one lease of grace for the handler to stop), a job's lease
             * is left to expire, so a handler that ignores stop requests loses it. */
            if (!slot_renewing(s, now_us)) {
                continue;
            }
            if (stepped || now_us >= s->next_beat_us) {
                beat_add(&b, s);
                n++;
            }
        }
        /* Settling slots: their outcome is on its way to the store; the lease must outlast it. */
        for (slot *s = p->settling; s != NULL && n < POOL_HEARTBEAT_BATCH; s = s->next) {
            if (!s->beating && !s->settled && (stepped || now_us >= s->next_beat_us)) {
                beat_add(&b, s);
                n++;
            }
        }
        if (n == 0) {
            if (p->folds != NULL) {
                continue; /* arrived while this pass ran: no sleep before folding them */
            }
            struct timespec ts;
            aj__deadline_ts(&ts, POOL_HEARTBEAT_TICK_MS);
            pthread_cond_timedwait(&p->cv_freed, &p->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        int64_t before_us = aj__mono_us();
        int rc = eng_run(e, beat_txn, &b, KV_SYNC);
        pthread_mutex_lock(&p->mu);
        int64_t after_us = aj__mono_us();
        slot *done = NULL; /* settled while beating: freed here */
        for (slot *s = b.list, *next; s != NULL; s = next) {
            next = s->next_due;
            s->beating = 0;
            if (s->settled) {
                pool_settling_unlink(p, s);
                s->next_due = done;
                done = s;
                continue;
            }
            if (rc != 0) {
                /* The store is unavailable: try again soon; the leases may still hold. */
                s->next_beat_us = after_us + POOL_HEARTBEAT_TICK_MS * 1000 * 4;
                continue;
            }
            s->next_beat_us = after_us + beat_interval_us(s->job);
            if (s->beat_rc == 0) {
                s->lease_until_us = before_us + job_lease_len(s->job->lease_ms) * 1000;
            } else if (s->state == SLOT_FINISHING) {
                /* A settling slot: its outcome was recorded (or will learn it is stale). */
            } else if (s->beat_rc == AJ_ECANCELLED) {
                atomic_store(&s->stop, STOP_CANCELLED);
            } else {
                atomic_store(&s->stop, STOP_LOST);
            }
        }
        pthread_cond_broadcast(&p->cv_freed);
        pthread_mutex_unlock(&p->mu);
        while (done != NULL) {
            slot *s = done;
            done = s->next_due;
            pool_slot_free(s);
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Notes a failure against an unreachable store: logs it and sets the next backoff. Returns the
 * backoff in ms. The caller holds nothing. */
static int64_t pool_unreachable(aj_pool *p, const char *what) {
    pthread_mutex_lock(&p->mu);
    p->unreachable_ms = p->unreachable_ms == 0 ? POOL_UNREACHABLE_MIN_MS : p->unreachable_ms * 2;
    if (p->unreachable_ms > POOL_UNREACHABLE_MAX_MS) {
        p->unreachable_ms = POOL_UNREACHABLE_MAX_MS;
    }
    int64_t wait_ms = p->unreachable_ms;
    int n = ++p->unreachable_n;
    pthread_mutex_unlock(&p->mu);
    aj__log(&p->e->log, AJ_LOG_ERROR,
            "msg=\"store unreachable; retrying\" op=%s failures=%d retry_in_ms=%lld detail=\"%s\"",
            what, n, (long long)wait_ms, aj_errmsg());
    return wait_ms;
}

void pool_reachable(aj_pool *p) {
    pthread_mutex_lock(&p->mu);
    if (p->unreachable_n > 0) {
        aj__log(&p->e->log, AJ_LOG_INFO, "msg=\"store reachable again\" failures=%d",
                p->unreachable_n);
    }
    p->unreachable_ms = 0;
    p->unreachable_n = 0;
    pthread_mutex_unlock(&p->mu);
}

/* ----------------------------------------------------------------------------------------- */
/* Dispatcher                                                                                 */

/* Queues claimed jobs; claim_us is the monotonic time the claim's commit began. */
static void queue_slots(aj_pool *p, aj_job **jobs, size_t n, int64_t claim_us) {
    int64_t now_us = aj__mono_us();
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        slot *s = aj__calloc(1, sizeof *s);
        if (s == NULL) {
            aj_job_free(jobs[i]); /* its lease expires and it runs again */
            continue;
        }
        s->job = jobs[i];
        s->deadline_us = INT64_MAX; /* set when the handler starts (run_slot) */
        s->next_beat_us = now_us + beat_interval_us(s->job);
        s->lease_until_us = claim_us + job_lease_len(s->job->lease_ms) * 1000;
        s->state = SLOT_QUEUED;
        s->next = p->all;
        p->all = s;
        if (p->queued_tail != NULL) {
            p->queued_tail->next_queued = s;
        } else {
            p->queued_head = s;
        }
        p->queued_tail = s;
        p->inflight++;
    }
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
}

/* Claims up to `want` jobs; returns how many were claimed (0 on error, logged). */
/* The queues the pool serves: the ones it was given, or every registered queue except the task
 * queues of workflow types this process cannot run. *names (free with eng_queue_names_free)
 * holds the list when it had to be built. */
static int served_queues(aj_pool *p, char ***names, size_t *n_names, const char *const **queues,
                         size_t *nq) {
    *names = NULL;
    *n_names = 0;
    if (p->queues != NULL) {
        *queues = (const char *const *)p->queues;
        *nq = p->n_queues;
        return 0;
    }
    int rc = eng_queue_names(p->e, names, n_names);
    size_t kept = 0;
    size_t plen = strlen(WF_QUEUE_PREFIX);
    for (size_t i = 0; rc == 0 && i < *n_names; i++) {
        eng_wf_type h;
        char *q = (*names)[i];
        if (strncmp(q, WF_QUEUE_PREFIX, plen) == 0 &&
            eng_wf_find(p->e, aj__slice_str(q + plen), &h)) {
            aj__free(q);
            continue;
        }
        (*names)[kept++] = q;
    }
    if (rc == 0) {
        *n_names = kept;
    }
    *queues = (const char *const *)*names;
    *nq = *n_names;
    return rc;
}

/* 1 for a store error that waiting does not cure: the file is damaged, of an unknown format,
 * or cannot be read or written (AJ_EIO). Busy (another process's lock), conflicts, a full disk
 * and running out of memory pass. */
static int store_error_persists(int rc) {
    return rc == AJ_ECORRUPT || rc == AJ_EFORMAT || rc == AJ_EIO;
}

/* A claim failed with a persistent store error: every one is logged (an operator must see a
 * worker that cannot work), and after POOL_STORE_ERRORS_MAX in a row the pool stops with it,
 * so `aj worker` exits 1 instead of idling with jobs ready. */
static void pool_store_error(aj_pool *p, int rc) {
    aj_engine *e = p->e;
    p->store_errors++;
    if (p->store_errors < POOL_STORE_ERRORS_MAX) {
        aj__log(&e->log, AJ_LOG_ERROR,
                "msg=\"claim failed; retrying\" attempt=%d of=%d error=%s detail=\"%s\"",
                p->store_errors, POOL_STORE_ERRORS_MAX, aj_err_name(rc), aj_errmsg());
        struct timespec ts = {POOL_STORE_RETRY_MS / 1000, (POOL_STORE_RETRY_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    snprintf(p->failed_msg, sizeof p->failed_msg, "the store failed %d claims in a row: %s",
             POOL_STORE_ERRORS_MAX, aj_errmsg());
    aj__log(&e->log, AJ_LOG_ERROR,
            "msg=\"worker pool stopping: the store keeps failing\" error=%s detail=\"%s\"",
            aj_err_name(rc), p->failed_msg);
    atomic_store(&p->failed, rc);
    atomic_store(&p->stop_requested, 1);
}

static size_t claim_some(aj_pool *p, size_t want, int64_t *last_error_log) {
    aj_engine *e = p->e;
    char **names;
    size_t n_names;
    const char *const *queues;
    size_t nq;
    int rc = served_queues(p, &names, &n_names, &queues, &nq);
    aj_job *jobs[256];
    int64_t latency[256];
    size_t got = 0;
    if (want > 256) {
        want = 256;
    }
    /* Jobs of queues with a concurrency limit are taken only for idle threads: one claimed
     * ahead would hold a slot of the limit while it waits here. */
    pthread_mutex_lock(&p->mu);
    size_t idle = p->inflight < p->concurrency ? p->concurrency - p->inflight : 0;
    pthread_mutex_unlock(&p->mu);
    job_claim_who who = {{p->node, (const char *const *)p->tags, p->n_tags}, idle};
    int64_t t0 = aj__mono_us();
    if (rc == 0 && nq > 0) {
        rc = eng_claim(e, queues, nq, p->worker_id, &who, want, 1, jobs, latency, &got);
        if (rc == 0 && got > 0) {
            pthread_mutex_lock(&p->mu);
            average_in(&p->claim_us_avg, aj__mono_us() - t0);
            pthread_mutex_unlock(&p->mu);
        }
    }
    eng_queue_names_free(names, n_names);
    if (rc != 0 && store_error_persists(rc)) {
        pool_store_error(p, rc);
        return 0;
    }
    if (rc == AJ_EUNAVAILABLE || rc == AJ_EAMBIGUOUS) {
        /* Not a damaged store: its server is away for a while. Never a reason to stop. (A claim
         * of unknown outcome leaves jobs leased to nobody here: they run after their lease.) */
        int64_t until = aj__mono_us() + pool_unreachable(p, "claim") * 1000;
        while (aj__mono_us() < until && !atomic_load(&p->stop_requested) &&
               !atomic_load(&e->closing)) {
            aj__sleep_ms(POOL_IDLE_WAIT_MS);
        }
        return 0;
    }
    if (rc != 0) {
        int64_t now = aj__mono_us();
        if (now - *last_error_log > 10 * 1000 * 1000) {
            aj__log(&e->log, AJ_LOG_ERROR, "msg=\"claim failed\" error=\"%s\"", aj_errmsg());
            *last_error_log = now;
        }
        return 0;
    }
    p->store_errors = 0;
    pool_reachable(p);
    queue_slots(p, jobs, got, t0);
    return got;
}

/* Releases every queued (not yet started) slot. */
static void release_queued(aj_pool *p) {
    pthread_mutex_lock(&p->mu);
    slot *list = p->queued_head;
    p->queued_head = p->queued_tail = NULL;
    for (slot *s = list; s != NULL; s = s->next_queued) {
        s->state = SLOT_RUNNING; /* owned by us now */
    }
    pthread_mutex_unlock(&p->mu);
    while (list != NULL) {
        slot *s = list;
        list = s->next_queued;
        finish_slot(p, s, OUTCOME_RELEASE, JOB_FAIL_RETRYABLE, NULL);
    }
}

static void *dispatcher_main(void *arg) {
    aj_pool *p = arg;
    aj_engine *e = p->e;
    int64_t last_error_log = 0;
    while (!atomic_load(&p->stop_requested) && !atomic_load(&e->closing)) {
        pool_redo_outcomes(p, 0);
        pthread_mutex_lock(&p->mu);
        size_t target = claim_target(p);
        size_t free_slots = p->inflight < target ? target - p->inflight : 0;
        pthread_mutex_unlock(&p->mu);
        if (free_slots == 0) {
            pthread_mutex_lock(&p->mu);
            if (p->inflight >= claim_target(p) && !pool_redo_due(p)) {
                struct timespec ts;
                aj__deadline_ts(&ts, POOL_IDLE_WAIT_MS);
                pthread_cond_timedwait(&p->cv_freed, &p->mu, &ts);
            }
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        uint64_t seen = kv_change_seq(e->kv);
        size_t got = claim_some(p, free_slots, &last_error_log);
        if (got == 0) {
            kv_wait_change(e->kv, seen, POOL_IDLE_WAIT_MS);
        }
    }
    atomic_store(&p->stopped, 1);
    release_queued(p);
    return NULL;
}

/* ----------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                  */

static void pool_free(aj_pool *p) {
    for (size_t i = 0; i < p->n_queues; i++) {
        aj__free(p->queues[i]);
    }
    aj__free(p->queues);
    aj__free(p->worker_id);
    aj__free(p->node);
    for (size_t i = 0; i < p->n_tags; i++) {
        aj__free(p->tags[i]);
    }
    aj__free(p->tags);
    aj__free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_freed);
    aj__free(p);
}

/* Checks the routing identity and the worker id (the registry's key). */
static int pool_check_routing(const aj_worker_opts *o) {
    int rc;
    if (o->worker_id != NULL && (o->worker_id[0] == '\0' || strlen(o->worker_id) > AJ_NAME_MAX)) {
        return aj__err(AJ_EINVAL, "worker id must be 1 to %d bytes", AJ_NAME_MAX);
    }
    if (o->node != NULL && (rc = aj_name_check("node", o->node)) != 0) {
        return rc;
    }
    if (o->n_tags > AJ_WORKER_TAGS_MAX) {
        return aj__err(AJ_EINVAL, "a worker may have at most %d tags", AJ_WORKER_TAGS_MAX);
    }
    if (o->n_tags > 0 && o->tags == NULL) {
        return aj__err(AJ_EINVAL, "tags is NULL but n_tags is %zu", o->n_tags);
    }
    for (size_t i = 0; i < o->n_tags; i++) {
        if ((rc = aj_name_check("tag", o->tags[i])) != 0) {
            return rc;
        }
    }
    return 0;
}

/* Copies the routing identity into the pool: node (default: the host name) and tags. */
static int pool_set_routing(aj_pool *p, const aj_worker_opts *o) {
    gethostname(p->host, sizeof p->host - 1);
    if (p->host[0] == '\0' || aj_name_check(NULL, p->host) != 0) {
        snprintf(p->host, sizeof p->host, "localhost");
    }
    p->node = aj__strdup(o->node != NULL ? o->node : p->host);
    if (p->node == NULL) {
        return AJ_ENOMEM;
    }
    if (o->n_tags > 0) {
        p->tags = aj__calloc(o->n_tags, sizeof *p->tags);
        if (p->tags == NULL) {
            return AJ_ENOMEM;
        }
        for (size_t i = 0; i < o->n_tags; i++) {
            p->tags[i] = aj__strdup(o->tags[i]);
            if (p->tags[i] == NULL) {
                return AJ_ENOMEM;
            }
            p->n_tags = i + 1;
        }
    }
    return 0;
}

int aj_workers_start(aj_engine *e, const aj_worker_opts *opts) {
    aj_worker_opts o;
    if (opts != NULL) {
        o = *opts;
    } else {
        aj_worker_opts_init(&o);
    }
    if (e->pool != NULL) {
        return aj__err(AJ_ESTATE, "the worker pool is already running");
    }
    if (o.concurrency < 1 || o.concurrency > POOL_CONCURRENCY_MAX) {
        return aj__err(AJ_EINVAL, "concurrency must be between 1 and %d", POOL_CONCURRENCY_MAX);
    }
    if (o.shutdown_deadline_ms < 0 || o.shutdown_deadline_ms > ENG_PERIOD_MAX) {
        return aj__err(AJ_EINVAL, "shutdown deadline must be between 0 and 100 years");
    }
    for (size_t i = 0; i < o.n_queues; i++) {
        int rc = aj_name_check("queue", o.queues[i]);
        if (rc != 0) {
            return rc;
        }
    }
    int vrc = pool_check_routing(&o);
    if (vrc != 0) {
        return vrc;
    }
    aj_pool *p = aj__calloc(1, sizeof *p);
    if (p == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory starting workers");
    }
    p->e = e;
    p->concurrency = o.concurrency;
    p->shutdown_deadline_ms = o.shutdown_deadline_ms;
    pthread_mutex_init(&p->mu, NULL);
    /* Timed waits count on the monotonic clock (aj__deadline_ts): a wall clock step back must
     * not stall the heartbeat thread for the size of the step. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv_work, &ca);
    pthread_cond_init(&p->cv_freed, &ca);
    pthread_condattr_destroy(&ca);
    int rc = 0;
    if (o.queues != NULL && o.n_queues > 0) {
        /* The named queues, plus the task queues of the workflow types registered here: a
         * worker that runs a workflow type serves its tasks whatever queues it was given. */
        pthread_mutex_lock(&e->mu);
        size_t n_wf = e->n_wf_types;
        p->queues = aj__calloc(o.n_queues + n_wf, sizeof *p->queues);
        if (p->queues == NULL) {
            rc = AJ_ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < o.n_queues + n_wf; i++) {
            if (i < o.n_queues) {
                p->queues[i] = aj__strdup(o.queues[i]);
            } else {
                size_t n = strlen(WF_QUEUE_PREFIX) + strlen(e->wf_types[i - o.n_queues].type) + 1;
                p->queues[i] = aj__malloc(n);
                if (p->queues[i] != NULL) {
                    snprintf(p->queues[i], n, "%s%s", WF_QUEUE_PREFIX,
                             e->wf_types[i - o.n_queues].type);
                }
            }
            if (p->queues[i] == NULL) {
                rc = AJ_ENOMEM;
            }
            p->n_queues = i + 1;
        }
        pthread_mutex_unlock(&e->mu);
    }
    if (o.worker_id != NULL) {
        p->worker_id = aj__strdup(o.worker_id);
    } else {
        char host[128] = "host";
        gethostname(host, sizeof host - 1);
        char id[256];
        snprintf(id, sizeof id, "%s:%d:%04llx", host, (int)getpid(),
                 (unsigned long long)(eng_rand(e) & 0xffff));
        p->worker_id = aj__strdup(id);
    }
    if (rc == 0) {
        rc = pool_set_routing(p, &o);
    }
    p->started_ms = eng_now_ms(e);
    p->threads = aj__calloc(o.concurrency, sizeof *p->threads);
    if (rc != 0 || p->worker_id == NULL || p->threads == NULL) {
        pool_free(p);
        return aj__err(AJ_ENOMEM, "out of memory starting workers");
    }
    pthread_mutex_lock(&e->pool_mu);
    e->pool = p;
    pthread_mutex_unlock(&e->pool_mu);
    registry_op(p, ENG_REGISTRY_WRITE); /* visible to `aj workers` before the first claim */
    for (uint32_t i = 0; i < o.concurrency; i++) {
        if (pthread_create(&p->threads[i], NULL, handler_main, p) != 0) {
            break;
        }
        p->n_threads++;
    }
    int ok = p->n_threads == o.concurrency &&
             pthread_create(&p->heartbeater, NULL, heartbeat_main, p) == 0;
    if (ok && pthread_create(&p->dispatcher, NULL, dispatcher_main, p) != 0) {
        ok = 0;
        pthread_mutex_lock(&p->mu);
        p->exiting = 1;
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->heartbeater, NULL);
    }
    if (!ok) {
        pthread_mutex_lock(&p->mu);
        p->exiting = 1;
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
        for (uint32_t i = 0; i < p->n_threads; i++) {
            pthread_join(p->threads[i], NULL);
        }
        registry_op(p, ENG_REGISTRY_DELETE);
        pthread_mutex_lock(&e->pool_mu);
        e->pool = NULL;
        pthread_mutex_unlock(&e->pool_mu);
        pool_free(p);
        return aj__err(AJ_EINTERNAL, "cannot start worker threads");
    }
    char q[256];
    char qn[256];
    aj__log(&e->log, AJ_LOG_INFO,
            "msg=\"workers started\" worker=%s node=%s tags=%zu concurrency=%u",
            aj__logq(q, sizeof q, p->worker_id), aj__logq(qn, sizeof qn, p->node), p->n_tags,
            o.concurrency);
    return 0;
}

void aj_workers_request_stop(aj_engine *e) {
    aj_pool *p = e->pool;
    if (p != NULL) {
        atomic_store(&p->stop_requested, 1);
    }
}

int aj_workers_stop(aj_engine *e) {
    aj_pool *p = e->pool;
    if (p == NULL) {
        return 0;
    }
    atomic_store(&p->stop_requested, 1);
    pthread_join(p->dispatcher, NULL);
    /* Running handlers get the shutdown deadline, then are told to stop. */
    int64_t deadline = aj__mono_us() + p->shutdown_deadline_ms * 1000;
    pthread_mutex_lock(&p->mu);
    p->exiting = 1;
    pthread_cond_broadcast(&p->cv_work);
    int told = 0;
    while (p->inflight > 0) {
        if (!told && aj__mono_us() >= deadline) {
            for (slot *s = p->all; s != NULL; s = s->next) {
                atomic_store(&s->stop, STOP_SHUTDOWN);
            }
            told = 1;
            aj__log(&e->log, AJ_LOG_WARN,
                    "msg=\"shutdown deadline passed; telling running jobs to stop\" running=%zu",
                    p->inflight);
        }
        struct timespec ts;
        aj__deadline_ts(&ts, 50);
        pthread_cond_timedwait(&p->cv_freed, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    /* Wait for the committer's verdicts, record again those that failed (until the shutdown
     * deadline; then each gets one last attempt) and wake the workflows of the others. The
     * heartbeat thread keeps their leases meanwhile. */
    pthread_mutex_lock(&p->mu);
    while (p->outstanding_outcomes > 0) {
        int give_up = aj__mono_us() >= deadline;
        if (p->folds != NULL || (p->redo != NULL && (give_up || pool_redo_due(p)))) {
            pthread_mutex_unlock(&p->mu);
            pool_redo_outcomes(p, give_up);
            pool_fold_outcomes(p);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        struct timespec ts;
        aj__deadline_ts(&ts, 50);
        pthread_cond_timedwait(&p->cv_freed, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->heartbeater, NULL);
    registry_op(p, ENG_REGISTRY_DELETE);
    aj__log(&e->log, AJ_LOG_INFO, "msg=\"workers stopped\"");
    pthread_mutex_lock(&e->pool_mu);
    e->pool = NULL;
    pthread_mutex_unlock(&e->pool_mu);
    pool_free(p);
    return 0;
}

void eng_pool_destroy(aj_engine *e) {
    aj_workers_stop(e);
}

typedef struct drain_ctx {
    aj_pool *p;
    int64_t horizon_ms;
    int pending;
} drain_ctx;

static int drain_txn(kv_txn *t, const job_env *env, void *ud) {
    drain_ctx *d = ud;
    char **names;
    size_t n_names;
    const char *const *queues;
    size_t nq;
    /* Only the queues this pool serves count: a task of a workflow type that no process here
     * can run must not hold `--drain` forever. */
    int rc = served_queues(d->p, &names, &n_names, &queues, &nq);
    d->pending = 0;
    /* Nor does a paused queue: nothing of it can be claimed until an operator resumes it. */
    const char **open = rc == 0 && nq > 0 ? aj__calloc(nq, sizeof *open) : NULL;
    size_t n_open = 0;
    if (rc == 0 && nq > 0 && open == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory draining");
    }
    for (size_t i = 0; rc == 0 && i < nq; i++) {
        qctl c;
        rc = qctl_read(t, queues[i], &c, NULL);
        if (rc == 0 && !c.paused) {
            open[n_open++] = queues[i];
        }
    }
    if (rc == 0 && n_open > 0) {
        rc = job_any_pending(t, open, n_open, env->now_ms + d->horizon_ms, &d->pending);
    }
    aj__free(open);
    eng_queue_names_free(names, n_names);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_workers_error(aj_engine *e) {
    aj_pool *p = e->pool;
    int failed = p != NULL ? atomic_load(&p->failed) : 0;
    return failed != 0 ? aj__err(failed, "%s", p->failed_msg) : 0;
}

int aj_workers_drain(aj_engine *e, int64_t horizon_ms) {
    aj_pool *p = e->pool;
    if (p == NULL) {
        return aj__err(AJ_ESTATE, "no worker pool is running");
    }
    while (!atomic_load(&p->stop_requested)) {
        uint64_t seen = kv_change_seq(e->kv);
        pthread_mutex_lock(&p->mu);
        int idle = p->inflight == 0 && p->outstanding_outcomes == 0;
        pthread_mutex_unlock(&p->mu);
        if (idle) {
            drain_ctx d = {p, horizon_ms, 1};
            int rc = eng_run(e, drain_txn, &d, KV_SYNC);
            if (rc != 0) {
                return rc;
            }
            if (!d.pending) {
                return 0;
            }
        }
        kv_wait_change(e->kv, seen, POOL_IDLE_WAIT_MS);
    }
    int failed = atomic_load(&p->failed);
    if (failed != 0) {
        return aj__err(failed, "%s", p->failed_msg);
    }
    return aj__err(AJ_ECANCELLED, "the worker pool was asked to stop before draining");
}
