/*
 * worker_outcome.c — recording what a handler's run ended in (complete, fail, release): the
 * outcome transaction, handed to the committer without waiting (KV_ASYNC); the committer's
 * verdict; outcomes that failed recorded again synchronously, with backoff after store errors,
 * while the heartbeat thread keeps their leases (a settling slot); a stale epoch or a cancelled
 * job ends an outcome (fencing, logged); committed outcomes that woke workflows are folded by
 * the heartbeat thread. See worker.c for the pool's threads and locking.
 */
#include <stdio.h>
#include <string.h>

#include "runtime/worker_pool.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Outcomes                                                                                  */

static void outcome_free(outcome *o) {
    wf_woken_free(&o->woken);
    eng_progress_free(o->prog);
    aj__free(o->error);
    aj__buf_free(&o->result);
    aj__free(o->hints);
    aj__free(o);
}

static int outcome_txn(kv_txn *t, const job_env *env0, void *ud) {
    outcome *o = ud;
    job_env with_hints = job_env_hinted(env0, o->hints, o->n_hints);
    const job_env *env = &with_hints;
    aj_slice result = {NULL, 0};
    if (o->has_result) {
        result.p = o->result.p ? o->result.p : (const uint8_t *)"";
        result.n = o->result.len;
    }
    int rc = eng_progress_store(t, o->prog);
    if (rc != 0) {
        return rc;
    }
    switch (o->kind) {
    case OUTCOME_COMPLETE:
        return job_complete(t, env, o->id, o->epoch, result);
    case OUTCOME_FAIL:
        return job_fail(t, env, o->id, o->epoch, o->how, o->error, result);
    case OUTCOME_RELEASE:
    default:
        return job_release(t, env, o->id, o->epoch, 0);
    }
}

void pool_outcome_settled(aj_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->outstanding_outcomes--;
    pthread_cond_broadcast(&p->cv_freed);
    pthread_mutex_unlock(&p->mu);
}

/* Removes a slot from the settling list. Called with p->mu held. */
void pool_settling_unlink(aj_pool *p, slot *s) {
    for (slot **pp = &p->settling; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_cond_broadcast(&p->cv_freed);
}

/* The outcome is durable or no longer matters: its lease need not be kept. May run on the
 * committer's thread, so it never waits for a heartbeat in flight (that heartbeat's commit may
 * need this very thread): the heartbeat thread frees a slot it is beating. */
static void outcome_end(aj_pool *p, outcome *o) {
    slot *s = o->s;
    if (s != NULL) {
        pthread_mutex_lock(&p->mu);
        if (s->beating) {
            s->settled = 1;
            s = NULL;
        } else {
            pool_settling_unlink(p, s);
        }
        pthread_mutex_unlock(&p->mu);
        if (s != NULL) {
            pool_slot_free(s);
        }
    }
    outcome_free(o);
    pool_outcome_settled(p);
}

/* Puts an outcome on one of the pool's lists (redo, folds) and wakes their threads. */
static void outcome_push(aj_pool *p, outcome **list, outcome *o) {
    pthread_mutex_lock(&p->mu);
    o->next = *list;
    *list = o;
    pthread_cond_broadcast(&p->cv_freed);
    pthread_mutex_unlock(&p->mu);
}

/* Takes a whole list (redo, folds) off the pool. */
static outcome *outcome_take(aj_pool *p, outcome **list) {
    pthread_mutex_lock(&p->mu);
    outcome *o = *list;
    *list = NULL;
    pthread_mutex_unlock(&p->mu);
    return o;
}

/* The committer's verdict on an asynchronous outcome. */
static void outcome_done(void *ud, int rc) {
    outcome *o = ud;
    aj_pool *p = o->pool;
    if (rc == 0) {
        eng_count(p->e, &o->delta);
        if (wf_woken_any(&o->woken)) {
            /* Folded by the heartbeat thread (pool_fold_outcomes): reads and commits cannot run
             * here, on the committer's thread. Settled once folded. */
            outcome_push(p, &p->folds, o);
            return;
        }
    } else if (rc == AJ_ECONFLICT || rc == AJ_EIO || rc == AJ_EFULL || rc == AJ_EBUSY ||
               rc == AJ_EUNAVAILABLE || rc == AJ_EAMBIGUOUS || rc == AJ_ETIMEDOUT) {
        /* AJ_EAMBIGUOUS: the outcome may be recorded already; recording it again with the same
         * epoch is refused (AJ_ESTALE: the job is no longer leased), so it is never applied
         * twice. */
        o->ambiguous |= rc == AJ_EAMBIGUOUS;
        /* Retry synchronously on the dispatcher to learn whether the epoch still holds. */
        outcome_push(p, &p->redo, o);
        return;
    }
    outcome_end(p, o);
}

/* Logs an outcome the store refused because this worker no longer holds the job: fencing at
 * work, which an operator must be able to see (a stale epoch means that the job's lease expired
 * while it ran here, and it may run, or have run, again elsewhere). */
static void log_refused(aj_pool *p, const outcome *o, int rc) {
    static const char *const kinds[] = {[OUTCOME_COMPLETE] = "completion",
                                        [OUTCOME_FAIL] = "failure",
                                        [OUTCOME_RELEASE] = "release"};
    const char *why = rc == AJ_ESTALE       ? "its lease expired and was taken back (stale epoch)"
                      : rc == AJ_ECANCELLED ? "the job was cancelled"
                                            : "the job no longer exists";
    aj__log(&p->e->log, rc == AJ_ESTALE ? AJ_LOG_WARN : AJ_LOG_INFO,
            "msg=\"job outcome refused: %s\" job=%llu epoch=%llu outcome=%s", why,
            (unsigned long long)o->id, (unsigned long long)o->epoch,
            kinds[o->kind <= OUTCOME_RELEASE ? o->kind : OUTCOME_COMPLETE]);
}

/* Builds the outcome transaction once and hands it to the committer without waiting. A large
 * result is hashed first, on the handler's thread (and staged, when too large to go with the
 * outcome). */
void pool_outcome_submit(aj_pool *p, outcome *o) {
    aj_engine *e = p->e;
    kv_txn *t;
    int rc = 0;
    if (o->has_result && o->result.len > e->opts.blob_threshold) {
        aj_slice r = {o->result.p, o->result.len};
        rc = eng_blob_prepare(e, &r, 1, &o->hints, &o->n_hints);
    }
    if (rc == 0) {
        rc = kv_begin(e->kv, &t);
    }
    if (rc == 0) {
        job_env env;
        eng_id_src ids;
        eng_env(e, &env, &o->delta, &ids);
        env.woken = &o->woken;
        rc = outcome_txn(t, &env, o);
        if (rc != 0) {
            kv_abort(t);
        } else {
            /* kv_commit frees the transaction whatever it returns. */
            rc = kv_commit(t, KV_ASYNC, outcome_done, o, NULL);
            if (rc == 0) {
                return; /* outcome_done runs once with the verdict */
            }
        }
    }
    /* A stale epoch or a cancelled job: the outcome no longer matters. Anything else is retried
     * synchronously. */
    if (rc == AJ_ESTALE || rc == AJ_ECANCELLED || rc == AJ_ENOTFOUND) {
        log_refused(p, o, rc);
        outcome_end(p, o);
        return;
    }
    outcome_done(o, AJ_ECONFLICT);
}

/* Store errors after which recording an outcome is worth trying again: the store may recover
 * (space freed, a lock released), and the lease is kept meanwhile. */
static int outcome_retryable(int rc) {
    return rc == AJ_EFULL || rc == AJ_EIO || rc == AJ_EBUSY || rc == AJ_ECONFLICT ||
           rc == AJ_ERETRIES || rc == AJ_ENOMEM || rc == AJ_EUNAVAILABLE || rc == AJ_EAMBIGUOUS ||
           rc == AJ_ETIMEDOUT;
}

/* 1 when an outcome in p->redo is due for another attempt. Called with p->mu held. */
int pool_redo_due(aj_pool *p) {
    int64_t now_us = aj__mono_us();
    for (outcome *o = p->redo; o != NULL; o = o->next) {
        if (o->next_try_us <= now_us) {
            return 1;
        }
    }
    return 0;
}

/* Records outcomes whose asynchronous commit failed, synchronously, those that are due. A store
 * error puts one back with a growing wait (its lease is kept by the heartbeat thread meanwhile);
 * with give_up (the pool is stopping and its deadline passed) each gets a last attempt. Called
 * by the dispatcher, and by aj_workers_stop() once the dispatcher has stopped. */
void pool_redo_outcomes(aj_pool *p, int give_up) {
    pthread_mutex_lock(&p->mu);
    outcome *list = p->redo;
    p->redo = NULL;
    pthread_mutex_unlock(&p->mu);
    outcome *later = NULL;
    while (list != NULL) {
        outcome *o = list;
        list = o->next;
        int64_t now_us = aj__mono_us();
        if (!give_up && now_us < o->next_try_us) {
            o->next = later;
            later = o;
            continue;
        }
        int rc = eng_run(p->e, outcome_txn, o, KV_SYNC);
        o->ambiguous |= rc == AJ_EAMBIGUOUS;
        if (rc == AJ_ESTALE && o->ambiguous) {
            rc = 0; /* the ambiguous commit was applied: the job is no longer leased to us */
        }
        if (rc == 0) {
            pool_reachable(p);
        }
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "%llu", (unsigned long long)o->id);
        if (rc == 0 || rc == AJ_ESTALE || rc == AJ_ECANCELLED || rc == AJ_ENOTFOUND) {
            if (rc != 0) {
                log_refused(p, o, rc);
            }
            if (o->failures > 0) {
                aj__log(&p->e->log, AJ_LOG_INFO,
                        "msg=\"recorded a job outcome after store errors\" job=%s failures=%d "
                        "result=%s",
                        idbuf, o->failures, rc == 0 ? "recorded" : aj_err_name(rc));
            }
            outcome_end(p, o);
            continue;
        }
        if (!give_up && outcome_retryable(rc)) {
            o->failures++;
            o->backoff_ms = o->backoff_ms == 0 ? OUTCOME_RETRY_FIRST_MS : o->backoff_ms * 2;
            if (o->backoff_ms > OUTCOME_RETRY_MAX_MS) {
                o->backoff_ms = OUTCOME_RETRY_MAX_MS;
            }
            o->next_try_us = now_us + o->backoff_ms * 1000;
            if (o->failures == 1 || now_us - o->last_log_us >= OUTCOME_RETRY_LOG_MS * 1000) {
                aj__log(&p->e->log, AJ_LOG_WARN,
                        "msg=\"could not record a job outcome; keeping its lease and trying "
                        "again\" job=%s failures=%d error=\"%s\"",
                        idbuf, o->failures, aj_errmsg());
                o->last_log_us = now_us;
            }
            o->next = later;
            later = o;
            continue;
        }
        aj__log(&p->e->log, AJ_LOG_WARN,
                "msg=\"could not record a job outcome; its lease will expire and it will run "
                "again\" job=%s failures=%d error=\"%s\"",
                idbuf, o->failures, aj_errmsg());
        outcome_end(p, o);
    }
    if (later != NULL) {
        pthread_mutex_lock(&p->mu);
        outcome **tail = &later;
        while (*tail != NULL) {
            tail = &(*tail)->next;
        }
        *tail = p->redo;
        p->redo = later;
        pthread_mutex_unlock(&p->mu);
    }
}

/* Wakes the workflows of committed outcomes (core/wf_wakeq.h). Called by the heartbeat thread
 * and, when stopping, by aj_workers_stop. */
void pool_fold_outcomes(aj_pool *p) {
    outcome *list = outcome_take(p, &p->folds);
    while (list != NULL) {
        outcome *o = list;
        list = o->next;
        aj__wf_fold_woken(p->e, &o->woken);
        outcome_end(p, o);
    }
}
