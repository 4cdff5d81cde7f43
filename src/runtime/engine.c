/*
 * engine.c — the engine handle: options, open and close, the job environment (clock, ids,
 * counters), the transaction runner that retries conflicts (eng_run), id allocation, the known
 * queues and the handler registry. The public job calls built on eng_run are in job_api.c.
 */
#include "runtime/engine.h"
#include "runtime/tz_cache.h"
#include "runtime/wf_exec.h"
#include "runtime/wf_wakeq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/activity_cache.h"
#include "core/deps.h"
#include "core/blob.h"
#include "core/keys.h"
#include "core/queue_ctl.h"
#include "core/schedule.h"
#include "core/wf_wakeq.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/hist.h"
#include "util/mem.h"

/* The engine's keyspace format (keys.h and job_record.h); a newer store is refused. */
#define ENG_FORMAT 1
/* First and longest wait between conflicting transaction attempts. */
#define ENG_BACKOFF_FIRST_US 50
#define ENG_BACKOFF_MAX_US 20000

void aj_engine_opts_init(aj_engine_opts *o) {
    memset(o, 0, sizeof *o);
    o->durability = AJ_DURABLE;
    o->retention_ms = 7 * AJ_DAY;
    o->idempotency_ttl_ms = 24 * AJ_HOUR;
    o->log_level = AJ_LOG_INFO;
    o->background = 1;
    o->blob_threshold = AJ_BLOB_THRESHOLD_DEFAULT;
}

int64_t eng_now_ms(aj_engine *e) {
    return aj__clock_now(&e->clock);
}

int64_t eng_now_us(aj_engine *e) {
    /* With the system clock, microseconds are real; a simulated clock has millisecond steps. */
    if (e->clock.now_ms == aj__system_clock.now_ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    return eng_now_ms(e) * 1000;
}

uint64_t eng_rand(aj_engine *e) {
    pthread_mutex_lock(&e->mu);
    uint64_t r = aj__rng_next(&e->rng);
    pthread_mutex_unlock(&e->mu);
    return r;
}

/* Takes one id from the engine's block for a transition inside a transaction. It never commits:
 * a commit nested inside a transaction would make the store's id counter part of every
 * transaction that creates a job. When the block is empty it marks the attempt's id source and
 * fails; eng_run (or the worker's synchronous retry) then reserves a block outside the
 * transaction and runs the attempt again. */
static int alloc_one_id(void *ud, uint64_t *out) {
    eng_id_src *src = ud;
    aj_engine *e = src->e;
    pthread_mutex_lock(&e->mu);
    int have = e->id_next < e->id_end;
    if (have) {
        *out = e->id_next++;
    }
    pthread_mutex_unlock(&e->mu);
    if (have) {
        src->used++;
        return 0;
    }
    src->empty = 1;
    return aj__err(AJ_ECONFLICT, "the id block ran out inside a transaction; it is retried");
}

void eng_env(aj_engine *e, job_env *env, aj_counters *delta, eng_id_src *ids) {
    ids->e = e;
    ids->empty = 0;
    ids->used = 0;
    env->alloc_id = alloc_one_id;
    env->alloc_ud = ids;
    env->now_us = eng_now_us(e);
    env->now_ms = env->now_us / 1000;
    env->rand = eng_rand(e);
    env->retention_ms = e->opts.retention_ms;
    env->idempotency_ttl_ms = e->opts.idempotency_ttl_ms;
    env->blob_threshold = e->opts.blob_threshold;
    env->blob_hints = NULL;
    env->n_blob_hints = 0;
    env->unreadable = eng_note_unreadable;
    env->unreadable_ud = e;
    eng_sched_hooks(e, env);
    env->lease_held = NULL;
    env->lease_held_ud = NULL;
    env->woken = NULL;
    if (delta != NULL) {
        memset(delta, 0, sizeof *delta);
    }
    env->delta = delta;
}

static void add_counters(aj_counters *to, const aj_counters *d) {
    const uint64_t *s = (const uint64_t *)d;
    uint64_t *t = (uint64_t *)to;
    for (size_t i = 0; i < sizeof *d / sizeof(uint64_t); i++) {
        t[i] += s[i];
    }
}

void eng_count(aj_engine *e, const aj_counters *delta) {
    pthread_mutex_lock(&e->counters_mu);
    add_counters(&e->counters, delta);
    pthread_mutex_unlock(&e->counters_mu);
}

void eng_count_latency(aj_engine *e, int64_t latency_us) {
    pthread_mutex_lock(&e->counters_mu);
    uint64_t v = latency_us > 0 ? (uint64_t)latency_us : 0;
    e->counters.start_latency_hist[aj__hist_bucket(v)]++;
    e->counters.start_latency_us[aj__lat_bucket(v)]++;
    pthread_mutex_unlock(&e->counters_mu);
}

/* eng_run's attempts; `woken` collects the workflows the committed attempt woke. */
static int run_attempts(aj_engine *e, eng_txn_fn fn, void *ud, kv_sync sync, wf_woken *woken) {
    int64_t wait_us = ENG_BACKOFF_FIRST_US;
    int refills = 0;
    for (int attempt = 1;; attempt++) {
        kv_txn *t;
        int rc = kv_begin(e->kv, &t);
        if (rc != 0) {
            return rc;
        }
        job_env env;
        aj_counters delta;
        eng_id_src ids;
        eng_env(e, &env, &delta, &ids);
        wf_woken_reset(woken);
        env.woken = woken;
        delta.txn_attempts = 1;
        rc = fn(t, &env, ud);
        if (rc == ENG_READ_ONLY) {
            kv_abort(t);
            return 0;
        }
        if (rc != 0) {
            kv_abort(t);
            if (ids.empty && refills < ENG_ID_REFILLS) {
                /* Ids ran out in the body: reserve a block outside the transaction and run the
                 * attempt again (not counted as a conflict). */
                refills++;
                attempt--;
                /* Room for twice what the attempt took, so that the next attempt (which repeats
                 * the body, user code included) does not run out again. */
                size_t want = 2 * (ids.used + 1);
                rc = eng_ids_refill(e, want > ENG_ID_BLOCK ? want : ENG_ID_BLOCK);
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
            return rc;
        }
        rc = kv_commit(t, sync, NULL, NULL, NULL);
        if (rc == 0) {
            eng_count(e, &delta);
            return 0;
        }
        if (rc != AJ_ECONFLICT) {
            return rc;
        }
        aj_counters c;
        memset(&c, 0, sizeof c);
        c.conflicts = 1;
        c.txn_attempts = 1;
        if (attempt == ENG_TXN_ATTEMPTS) {
            c.txn_gave_up = 1;
            eng_count(e, &c);
            return aj__err(AJ_ERETRIES, "gave up after %d conflicting transaction attempts",
                           ENG_TXN_ATTEMPTS);
        }
        c.retries = 1;
        eng_count(e, &c);
        /* Full jitter: a random wait up to the current bound, which doubles up to a cap. */
        int64_t us = (int64_t)(eng_rand(e) % (uint64_t)wait_us) + 1;
        struct timespec ts = {0, (long)us * 1000};
        nanosleep(&ts, NULL);
        if (wait_us < ENG_BACKOFF_MAX_US) {
            wait_us *= 2;
        }
    }
}

int eng_run(aj_engine *e, eng_txn_fn fn, void *ud, kv_sync sync) {
    wf_woken woken = WF_WOKEN_INIT;
    int rc = run_attempts(e, fn, ud, sync, &woken);
    if (rc == 0 && wf_woken_any(&woken)) {
        /* The arrivals are committed: wake their workflows, in transactions of their own, so
         * a conflict there never repeats the caller's (core/wf_wakeq.h). */
        aj__wf_fold_woken(e, &woken);
    }
    wf_woken_free(&woken);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Ids and queues                                                                            */

typedef struct id_reserve {
    uint64_t count;
    uint64_t first;
} id_reserve;

static int reserve_ids_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    id_reserve *r = ud;
    akey k;
    key_meta(&k, "ids");
    const uint8_t *v;
    size_t n;
    uint64_t next = 1;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == 0 && n == 8) {
        next = aj__get_u64be(v);
    } else if (rc == 0) {
        return aj__err(AJ_ECORRUPT, "id counter record is corrupt");
    } else if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    uint8_t out[8];
    aj__put_u64be(out, next + r->count);
    r->first = next;
    return kv_put(t, k.b, k.n, out, sizeof out);
}

/* Reserves `count` ids from the store's counter with a commit of their own. KV_APPLIED: the
 * reservation need not be durable by itself, because every commit that uses one of its ids comes
 * after it, and commits become durable in order — a power loss that loses the reservation loses
 * every job numbered from it too, so no id that survives is ever handed out twice. */
static int reserve_ids(aj_engine *e, uint64_t count, uint64_t *first) {
    id_reserve r = {count, 0};
    int rc = eng_run(e, reserve_ids_txn, &r, KV_APPLIED);
    if (rc == 0) {
        *first = r.first;
    }
    return rc;
}

int eng_ids_refill(aj_engine *e, size_t n) {
    uint64_t first;
    int rc = reserve_ids(e, n, &first);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    /* Take the block only if it is ahead of what we hold, so ids keep increasing. */
    if (first >= e->id_end) {
        e->id_next = first;
        e->id_end = first + n;
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int eng_ids_ensure(aj_engine *e, size_t n) {
    pthread_mutex_lock(&e->mu);
    int enough = e->id_end - e->id_next >= n;
    pthread_mutex_unlock(&e->mu);
    return enough ? 0 : eng_ids_refill(e, n > ENG_ID_BLOCK ? n : ENG_ID_BLOCK);
}

int eng_ids(aj_engine *e, size_t n, uint64_t *first) {
    pthread_mutex_lock(&e->mu);
    if (e->id_end - e->id_next >= n) {
        *first = e->id_next;
        e->id_next += n;
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    pthread_mutex_unlock(&e->mu);
    /* Reserve a fresh block outside the lock; a large batch gets its own exact block. */
    uint64_t count = n > ENG_ID_BLOCK ? n : ENG_ID_BLOCK;
    uint64_t got;
    int rc = reserve_ids(e, count, &got);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    *first = got;
    if (count > n) {
        /* Keep the rest of the block if it is ahead of what we hold, so ids keep increasing. */
        if (got + n > e->id_next) {
            e->id_next = got + n;
            e->id_end = got + count;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static int queue_known(aj_engine *e, const char *queue) {
    for (size_t i = 0; i < e->n_known; i++) {
        if (strcmp(e->known_queues[i], queue) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Registers a queue unless the store already has it: a known queue costs a read, not a commit. */
static int note_queue_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    akey k;
    key_queue(&k, ud, strlen(ud));
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc != AJ_ENOTFOUND) {
        return rc != 0 ? rc : ENG_READ_ONLY;
    }
    return job_note_queue(t, ud);
}

int eng_note_queue(aj_engine *e, const char *queue) {
    pthread_mutex_lock(&e->mu);
    int known = queue_known(e, queue);
    pthread_mutex_unlock(&e->mu);
    if (known) {
        return 0;
    }
    /* KV_APPLIED: the jobs submitted to the queue commit after it, so a durable submit makes
     * its queue durable too. */
    int rc = eng_run(e, note_queue_txn, (void *)queue, KV_APPLIED);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    if (!queue_known(e, queue)) {
        if (e->n_known == e->cap_known) {
            size_t cap = e->cap_known ? e->cap_known * 2 : 8;
            char **nq = aj__realloc(e->known_queues, cap * sizeof *nq);
            if (nq == NULL) {
                pthread_mutex_unlock(&e->mu);
                return 0; /* only a cache: the store already has the queue */
            }
            e->known_queues = nq;
            e->cap_known = cap;
        }
        char *copy = aj__strdup(queue);
        if (copy != NULL) {
            e->known_queues[e->n_known++] = copy;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Open and close                                                                            */

static int format_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    (void)ud;
    akey k;
    key_meta(&k, "format");
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == 0) {
        if (n != 4) {
            return aj__err(AJ_ECORRUPT, "engine format record is corrupt");
        }
        uint32_t f = aj__get_u32be(v);
        if (f > ENG_FORMAT) {
            return aj__err(AJ_EFORMAT,
                           "store holds engine format %u, newer than this aj supports (%d): "
                           "upgrade aj",
                           f, ENG_FORMAT);
        }
        return ENG_READ_ONLY;
    }
    if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    uint8_t out[4];
    aj__put_u32be(out, ENG_FORMAT);
    return kv_put(t, k.b, k.n, out, sizeof out);
}

static int engine_open(aj_engine **out, const char *url, kv_store *kv, const aj_engine_opts *opts) {
    aj_engine *e = aj__calloc(1, sizeof *e);
    if (e == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory opening the engine");
    }
    if (opts != NULL) {
        e->opts = *opts;
    } else {
        aj_engine_opts_init(&e->opts);
    }
    /* Bounded so that now + retention and now + TTL cannot overflow. */
    if (e->opts.retention_ms <= 0 || e->opts.idempotency_ttl_ms <= 0 ||
        e->opts.retention_ms > ENG_PERIOD_MAX || e->opts.idempotency_ttl_ms > ENG_PERIOD_MAX) {
        aj__free(e);
        return aj__err(AJ_EINVAL,
                       "retention and idempotency TTL must be positive and at most 100 years");
    }
    if (e->opts.blob_threshold == 0) {
        e->opts.blob_threshold = AJ_BLOB_THRESHOLD_DEFAULT;
    }
    if (e->opts.blob_threshold < AJ_BLOB_THRESHOLD_MIN ||
        e->opts.blob_threshold > AJ_BLOB_THRESHOLD_MAX) {
        size_t got = e->opts.blob_threshold;
        aj__free(e);
        return aj__err(AJ_EINVAL, "blob threshold is %zu bytes; it must be between %zu and %zu",
                       got, AJ_BLOB_THRESHOLD_MIN, AJ_BLOB_THRESHOLD_MAX);
    }
    e->clock = e->opts.clock != NULL ? *e->opts.clock : aj__system_clock;
    aj__hlc_init(&e->hlc, &e->clock);
    e->log.fn = e->opts.log;
    e->log.ud = e->opts.log_ud;
    e->log.level = e->opts.log_level;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->counters_mu, NULL);
    pthread_mutex_init(&e->flush_mu, NULL);
    pthread_mutex_init(&e->pool_mu, NULL);
    if (e->opts.seed != 0) {
        aj__rng_seed(&e->rng, e->opts.seed);
    } else {
        aj__rng_seed_os(&e->rng);
    }
    e->instance = aj__rng_next(&e->rng) | 1;
    int rc = aj__tz_cache_new(&e->zones);
    if (rc != 0) {
        /* nothing else is set up yet */
    } else if (kv != NULL) {
        e->kv = kv;
    } else {
        kv_open_opts ko = {.relaxed = e->opts.durability == AJ_RELAXED};
        rc = kv_open(&e->kv, url, &ko);
        e->owns_kv = 1;
    }
    if (rc == 0) {
        rc = eng_run(e, format_txn, NULL, KV_SYNC);
    }
    e->last_flush_ms = e->last_collect_ms = eng_now_ms(e);
    if (rc == 0 && e->opts.background) {
        rc = eng_ticker_start(e);
    }
    if (rc != 0) {
        if (e->owns_kv) {
            kv_close(e->kv);
        }
        aj__tz_cache_free(e->zones);
        pthread_mutex_destroy(&e->mu);
        pthread_mutex_destroy(&e->counters_mu);
        pthread_mutex_destroy(&e->flush_mu);
        pthread_mutex_destroy(&e->flush_mu);
        pthread_mutex_destroy(&e->pool_mu);
        aj__free(e);
        return rc;
    }
    char q[256];
    aj__log(&e->log, AJ_LOG_DEBUG, "msg=\"engine opened\" store=%s",
            aj__logq(q, sizeof q, url ? url : kv_backend_name(e->kv)));
    *out = e;
    return 0;
}

int aj_engine_open(aj_engine **out, const char *url, const aj_engine_opts *opts) {
    if (out == NULL || url == NULL) {
        return aj__err(AJ_EINVAL, "aj_engine_open needs an output pointer and a store URL");
    }
    return engine_open(out, url, NULL, opts);
}

int aj__engine_open_kv(aj_engine **out, kv_store *kv, const aj_engine_opts *opts) {
    return engine_open(out, NULL, kv, opts);
}

void aj_engine_close(aj_engine *e) {
    if (e == NULL) {
        return;
    }
    atomic_store(&e->closing, 1);
    eng_sched_destroy(e);
    eng_pool_destroy(e);
    eng_ticker_stop(e);
    eng_flush_counters(e);
    if (e->owns_kv) {
        kv_close(e->kv);
    }
    for (size_t i = 0; i < e->n_handlers; i++) {
        aj__free(e->handlers[i].type);
    }
    for (size_t i = 0; i < e->n_wf_types; i++) {
        aj__free(e->wf_types[i].type);
    }
    aj__wf_cache_free(e->wf_cache);
    aj__tz_cache_free(e->zones);
    for (size_t i = 0; i < e->n_known; i++) {
        aj__free(e->known_queues[i]);
    }
    aj__free(e->known_queues);
    aj__free(e->unreadable);
    aj__shell_env_free(&e->shell_env);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->counters_mu);
    pthread_mutex_destroy(&e->flush_mu);
    pthread_mutex_destroy(&e->pool_mu);
    aj__free(e);
}

/* ----------------------------------------------------------------------------------------- */
/* Handlers                                                                                   */

int aj_register(aj_engine *e, const char *type, aj_handler_fn fn, void *ud) {
    int rc = aj_name_check("type", type);
    if (rc != 0) {
        return rc;
    }
    if (fn == NULL) {
        return aj__err(AJ_EINVAL, "handler for type '%s' is NULL", type);
    }
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_handlers; i++) {
        if (strcmp(e->handlers[i].type, type) == 0) {
            e->handlers[i].fn = fn;
            e->handlers[i].ud = ud;
            pthread_mutex_unlock(&e->mu);
            return 0;
        }
    }
    if (e->n_handlers == ENG_HANDLERS_MAX) {
        pthread_mutex_unlock(&e->mu);
        return aj__err(AJ_ETOOBIG, "at most %d handler types can be registered", ENG_HANDLERS_MAX);
    }
    char *copy = aj__strdup(type);
    if (copy == NULL) {
        pthread_mutex_unlock(&e->mu);
        return aj__err(AJ_ENOMEM, "out of memory registering a handler");
    }
    e->handlers[e->n_handlers++] = (eng_handler){copy, fn, ud};
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int eng_handler_find(aj_engine *e, aj_slice type, eng_handler *out) {
    int rc = AJ_ENOTFOUND;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_handlers; i++) {
        if (aj__slice_eq(type, e->handlers[i].type)) {
            *out = e->handlers[i];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}
