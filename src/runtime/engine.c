/*
 * engine.c — the engine handle: open and close, the transaction runner that retries conflicts,
 * id allocation, and the public job calls, each one core transition inside eng_run().
 *
 * Durability: submits commit with KV_SYNC (acknowledged only after fsync in the default mode);
 * the synchronous lease calls (aj_complete, aj_fail, ...) too. Only the worker pool hands its
 * completions to the committer without waiting (worker.c).
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
    uint64_t r = aj_rng_next(&e->rng);
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
        return 0;
    }
    src->empty = 1;
    return aj__err(AJ_ECONFLICT, "the id block ran out inside a transaction; it is retried");
}

void eng_env(aj_engine *e, job_env *env, aj_counters *delta, eng_id_src *ids) {
    ids->e = e;
    ids->empty = 0;
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
                rc = eng_ids_refill(e, ENG_ID_BLOCK);
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
        next = aj_get_u64be(v);
    } else if (rc == 0) {
        return aj__err(AJ_ECORRUPT, "id counter record is corrupt");
    } else if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    uint8_t out[8];
    aj_put_u64be(out, next + r->count);
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
        uint32_t f = aj_get_u32be(v);
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
    aj_put_u32be(out, ENG_FORMAT);
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
        aj_rng_seed(&e->rng, e->opts.seed);
    } else {
        aj_rng_seed_os(&e->rng);
    }
    e->instance = aj_rng_next(&e->rng) | 1;
    int rc = aj__tz_cache_new(&e->zones);
    if (rc != 0) {
        /* nothing else is set up yet */
    } else if (kv != NULL) {
        e->kv = kv;
    } else {
        kv_open_opts ko = {e->opts.durability == AJ_RELAXED};
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
/* Submit                                                                                    */

typedef struct submit_ctx {
    const aj_job_spec *specs;
    size_t n;
    uint64_t first_id;
    uint64_t *out_ids;
    blob_hint *hints; /* hashes of the large payloads (owned) */
    size_t n_hints;
} submit_ctx;

static int submit_txn(kv_txn *t, const job_env *env0, void *ud) {
    submit_ctx *s = ud;
    job_env with_hints = *env0;
    with_hints.blob_hints = s->hints;
    with_hints.n_blob_hints = s->n_hints;
    const job_env *env = &with_hints;
    for (size_t i = 0; i < s->n; i++) {
        int created;
        const aj_job_spec *sp = &s->specs[i];
        int rc = job_submit(t, env, sp, s->first_id + i, &s->out_ids[i], &created);
        if (rc == 0 && created && sp->n_after > 0) {
            rc = deps_attach(t, env, s->out_ids[i], sp->on_dep_failure, sp->after, sp->n_after, 0,
                             0);
        }
        if (rc != 0) {
            if (s->n > 1) {
                return aj__err_wrap(rc, "job %zu of the batch", i + 1);
            }
            return rc;
        }
    }
    return 0;
}

/* Hashes the large payloads of a batch (and stages them when they are too large to write with
 * the jobs). */
static int submit_prepare(aj_engine *e, const aj_job_spec *specs, size_t n, blob_hint **hints,
                          size_t *n_hints) {
    size_t threshold = e->opts.blob_threshold;
    size_t big = 0;
    for (size_t i = 0; i < n; i++) {
        big += specs[i].payload_len > threshold;
    }
    *hints = NULL;
    *n_hints = 0;
    if (big == 0) {
        return 0;
    }
    aj_slice *data = aj__malloc(big * sizeof *data);
    if (data == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory submitting %zu jobs", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (specs[i].payload_len > threshold) {
            data[k].p = specs[i].payload;
            data[k++].n = specs[i].payload_len;
        }
    }
    int rc = eng_blob_prepare(e, data, k, hints, n_hints);
    aj__free(data);
    return rc;
}

int aj_submit_batch(aj_engine *e, const aj_job_spec *specs, size_t n, uint64_t *out_ids) {
    if (n == 0 || n > AJ_BATCH_MAX) {
        return aj__err(AJ_EINVAL, "a batch holds 1 to %d jobs", AJ_BATCH_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = job_spec_check(&specs[i]);
        if (rc != 0) {
            return n > 1 ? aj__err_wrap(rc, "job %zu of the batch", i + 1) : rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *q = specs[i].queue ? specs[i].queue : "default";
        if (i > 0) {
            const char *prev = specs[i - 1].queue ? specs[i - 1].queue : "default";
            if (strcmp(prev, q) == 0) {
                continue;
            }
        }
        int rc = eng_note_queue(e, q);
        if (rc != 0) {
            return rc;
        }
    }
    uint64_t *ids = aj__malloc(n * sizeof *ids);
    if (ids == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory submitting %zu jobs", n);
    }
    submit_ctx s = {specs, n, 0, ids, NULL, 0};
    int rc = submit_prepare(e, specs, n, &s.hints, &s.n_hints);
    if (rc == 0) {
        rc = eng_ids(e, n, &s.first_id);
    }
    if (rc == 0) {
        rc = eng_run(e, submit_txn, &s, KV_SYNC);
    }
    if (rc == 0) {
        memcpy(out_ids, ids, n * sizeof *ids);
    } else if (s.hints != NULL) {
        eng_blob_unstage(e, s.hints, s.n_hints); /* e.g. a full disk at the job's commit */
    }
    aj__free(s.hints);
    aj__free(ids);
    return rc;
}

int aj_submit(aj_engine *e, const aj_job_spec *spec, uint64_t *out_id) {
    return aj_submit_batch(e, spec, 1, out_id);
}

/* ----------------------------------------------------------------------------------------- */
/* Reads                                                                                     */

typedef struct get_ctx {
    uint64_t id;
    aj_job *job;
} get_ctx;

static int get_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    get_ctx *g = ud;
    job_rec r;
    int rc = job_read(t, g->id, &r);
    if (rc != 0) {
        return rc;
    }
    aj_job_free(g->job);
    g->job = NULL;
    rc = blob_job_public(t, &r, &g->job);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_job_get(aj_engine *e, uint64_t id, aj_job **out) {
    get_ctx g = {id, NULL};
    int rc = eng_run(e, get_txn, &g, KV_SYNC);
    if (rc == 0) {
        *out = g.job;
    } else {
        aj_job_free(g.job);
    }
    return rc;
}

typedef struct list_ctx {
    kv_txn *t;
    const aj_job_filter *f;
    aj_job **v;
    size_t n, cap;
} list_ctx;

static void list_reset(list_ctx *l) {
    for (size_t i = 0; i < l->n; i++) {
        aj_job_free(l->v[i]);
    }
    l->n = 0;
}

static int list_add(void *ud, const job_rec *r) {
    list_ctx *l = ud;
    aj_job **nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing jobs");
    }
    l->v = nv;
    aj_job *j = NULL;
    int rc = blob_job_public(l->t, r, &j);
    if (rc != 0) {
        return rc;
    }
    l->v[l->n++] = j;
    return 0;
}

static int list_txn(kv_txn *t, const job_env *env, void *ud) {
    list_ctx *l = ud;
    list_reset(l);
    l->t = t;
    int rc = job_list(t, env, l->f, list_add, l);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_job_list(aj_engine *e, const aj_job_filter *filter, aj_job ***out, size_t *n) {
    aj_job_filter none;
    memset(&none, 0, sizeof none);
    list_ctx l = {NULL, filter ? filter : &none, NULL, 0, 0};
    int rc = eng_run(e, list_txn, &l, KV_SYNC);
    if (rc != 0) {
        aj_job_list_free(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Single-job transitions                                                                     */

typedef enum op_kind {
    OP_HEARTBEAT,
    OP_COMPLETE,
    OP_FAIL,
    OP_RELEASE,
    OP_CANCEL,
    OP_REDRIVE,
    OP_PURGE,
} op_kind;

typedef struct op_ctx {
    op_kind kind;
    uint64_t id;
    uint64_t epoch;
    job_failure how;
    const char *error;
    aj_slice result;
    int64_t delay_ms;
    blob_hint *hints; /* the result's hash when it is large */
    size_t n_hints;
} op_ctx;

static int op_txn(kv_txn *t, const job_env *env0, void *ud) {
    op_ctx *o = ud;
    job_env with_hints = *env0;
    with_hints.blob_hints = o->hints;
    with_hints.n_blob_hints = o->n_hints;
    const job_env *env = &with_hints;
    switch (o->kind) {
    case OP_HEARTBEAT:
        return job_heartbeat(t, env, o->id, o->epoch);
    case OP_COMPLETE:
        return job_complete(t, env, o->id, o->epoch, o->result);
    case OP_FAIL:
        return job_fail(t, env, o->id, o->epoch, o->how, o->error, o->result);
    case OP_RELEASE:
        return job_release(t, env, o->id, o->epoch, o->delay_ms);
    case OP_CANCEL:
        return job_cancel(t, env, o->id);
    case OP_REDRIVE:
        return job_redrive(t, env, o->id);
    case OP_PURGE:
        return job_purge(t, env, o->id);
    }
    return aj__err(AJ_EINTERNAL, "unknown operation");
}

static int run_op(aj_engine *e, op_ctx *o) {
    int rc = 0;
    if (o->result.n > e->opts.blob_threshold) {
        rc = eng_blob_prepare(e, &o->result, 1, &o->hints, &o->n_hints);
    }
    if (rc == 0) {
        rc = eng_run(e, op_txn, o, KV_SYNC);
    }
    aj__free(o->hints);
    return rc;
}

int aj_heartbeat(aj_engine *e, uint64_t id, uint64_t epoch) {
    op_ctx o = {.kind = OP_HEARTBEAT, .id = id, .epoch = epoch};
    return run_op(e, &o);
}

int aj_complete(aj_engine *e, uint64_t id, uint64_t epoch, const void *result, size_t len) {
    op_ctx o = {.kind = OP_COMPLETE, .id = id, .epoch = epoch};
    o.result.p = len ? result : (const void *)"";
    o.result.n = len;
    return run_op(e, &o);
}

int aj_fail(aj_engine *e, uint64_t id, uint64_t epoch, const char *error, int permanent) {
    op_ctx o = {.kind = OP_FAIL, .id = id, .epoch = epoch};
    o.how = permanent ? JOB_FAIL_PERMANENT : JOB_FAIL_RETRYABLE;
    o.error = error;
    return run_op(e, &o);
}

int aj_fail_timeout(aj_engine *e, uint64_t id, uint64_t epoch, const char *error) {
    op_ctx o = {.kind = OP_FAIL, .id = id, .epoch = epoch, .how = JOB_FAIL_TIMEOUT};
    o.error = error;
    return run_op(e, &o);
}

int aj_release(aj_engine *e, uint64_t id, uint64_t epoch, int64_t delay_ms) {
    op_ctx o = {.kind = OP_RELEASE, .id = id, .epoch = epoch, .delay_ms = delay_ms};
    return run_op(e, &o);
}

int aj_job_cancel(aj_engine *e, uint64_t id) {
    op_ctx o = {.kind = OP_CANCEL, .id = id};
    return run_op(e, &o);
}

int aj_dlq_redrive(aj_engine *e, uint64_t id) {
    op_ctx o = {.kind = OP_REDRIVE, .id = id};
    return run_op(e, &o);
}

int aj_dlq_purge(aj_engine *e, uint64_t id) {
    op_ctx o = {.kind = OP_PURGE, .id = id};
    return run_op(e, &o);
}

/* ----------------------------------------------------------------------------------------- */
/* Claims                                                                                     */

typedef struct claim_ctx {
    aj_engine *e;
    int only_handled; /* the worker pool: claim only types with a handler here */
    const char *const *queues;
    size_t n_queues;
    const char *worker;
    const job_claim_who *who;
    size_t max;
    aj_job **jobs;
    int64_t *latency;
    size_t n;
    kv_txn *t;
} claim_ctx;

static int claim_add(void *ud, const job_rec *r, int64_t latency_us) {
    claim_ctx *c = ud;
    aj_job *j = NULL;
    int rc = blob_job_public(c->t, r, &j);
    if (rc != 0) {
        return rc;
    }
    c->latency[c->n] = latency_us;
    c->jobs[c->n++] = j;
    return 0;
}

static int has_handler(void *ud, aj_slice type) {
    claim_ctx *c = ud;
    eng_handler h;
    return eng_handler_find(c->e, type, &h) == 0;
}

static int claim_txn(kv_txn *t, const job_env *env, void *ud) {
    claim_ctx *c = ud;
    for (size_t i = 0; i < c->n; i++) {
        aj_job_free(c->jobs[i]);
    }
    c->n = 0;
    c->t = t;
    size_t got;
    int rc = job_claim(t, env, c->queues, c->n_queues, c->worker, c->who, c->max,
                       c->only_handled ? has_handler : NULL, claim_add, c, &got);
    if (rc == 0 && got == 0) {
        return ENG_READ_ONLY;
    }
    return rc;
}

typedef struct queue_names {
    char **v;
    size_t n, cap;
    int rc;
} queue_names;

static int queue_name_add(void *ud, const char *queue) {
    queue_names *q = ud;
    char **nv = aj__grow(q->v, &q->cap, q->n, sizeof *nv);
    if (nv == NULL) {
        q->rc = aj__err(AJ_ENOMEM, "out of memory listing queues");
        return 1;
    }
    q->v = nv;
    char *copy = aj__strdup(queue);
    if (copy == NULL) {
        q->rc = aj__err(AJ_ENOMEM, "out of memory listing queues");
        return 1;
    }
    q->v[q->n++] = copy;
    return 0;
}

static int queues_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    queue_names *q = ud;
    for (size_t i = 0; i < q->n; i++) {
        aj__free(q->v[i]);
    }
    q->n = 0;
    q->rc = 0;
    int rc = job_list_queues(t, queue_name_add, q);
    if (rc == 0) {
        rc = q->rc;
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

void eng_queue_names_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        aj__free(names[i]);
    }
    aj__free(names);
}

int eng_queue_names(aj_engine *e, char ***out, size_t *n) {
    queue_names q = {NULL, 0, 0, 0};
    int rc = eng_run(e, queues_txn, &q, KV_SYNC);
    if (rc != 0) {
        eng_queue_names_free(q.v, q.n);
        return rc;
    }
    *out = q.v;
    *n = q.n;
    return 0;
}

/* Claims into caller arrays of `max` entries. */
int eng_claim(aj_engine *e, const char *const *queues, size_t n_queues, const char *worker,
              const job_claim_who *who, size_t max, int only_handled, aj_job **jobs,
              int64_t *latency, size_t *n) {
    claim_ctx c = {e, only_handled, queues, n_queues, worker, who, max, jobs, latency, 0, NULL};
    /* A claim need not be durable before the job runs: it is validated and visible to every
     * process when eng_run returns, and the only way to lose it — a power loss — also stops the
     * worker, leaving the job ready to run again (at least once). Its completion is durable and
     * commits after it, so a completed job never loses its claim. */
    int rc = eng_run(e, claim_txn, &c, KV_APPLIED);
    if (rc != 0) {
        for (size_t i = 0; i < c.n; i++) {
            aj_job_free(jobs[i]);
        }
        return rc;
    }
    for (size_t i = 0; i < c.n; i++) {
        eng_count_latency(e, latency[i]);
    }
    *n = c.n;
    return 0;
}

int aj_claim(aj_engine *e, const char *const *queues, size_t n_queues, const char *worker,
             size_t max, aj_job ***out, size_t *n) {
    if (worker == NULL || worker[0] == '\0') {
        return aj__err(AJ_EINVAL, "a claim needs a worker id");
    }
    if (max == 0) {
        *out = NULL;
        *n = 0;
        return 0;
    }
    char **all = NULL;
    size_t n_all = 0;
    int rc = 0;
    if (queues == NULL || n_queues == 0) {
        rc = eng_queue_names(e, &all, &n_all);
        if (rc != 0) {
            return rc;
        }
        queues = (const char *const *)all;
        n_queues = n_all;
    }
    aj_job **jobs = aj__calloc(max, sizeof *jobs);
    int64_t *latency = aj__calloc(max, sizeof *latency);
    if (jobs == NULL || latency == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory claiming jobs");
    }
    size_t got = 0;
    if (rc == 0 && n_queues > 0) {
        rc = eng_claim(e, queues, n_queues, worker, NULL, max, 0, jobs, latency, &got);
    }
    aj__free(latency);
    eng_queue_names_free(all, n_all);
    if (rc != 0) {
        aj__free(jobs);
        return rc;
    }
    *out = jobs;
    *n = got;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Waiting                                                                                    */

int aj_job_wait(aj_engine *e, uint64_t id, int64_t timeout_ms, aj_job_state *out_state) {
    int64_t start = aj__mono_us();
    for (;;) {
        uint64_t seen = kv_change_seq(e->kv);
        aj_job *j;
        int rc = aj_job_get(e, id, &j);
        if (rc != 0) {
            return rc;
        }
        aj_job_state s = j->state;
        aj_job_free(j);
        if (aj_state_is_final(s)) {
            if (out_state != NULL) {
                *out_state = s;
            }
            return 0;
        }
        int64_t left = 1000;
        if (timeout_ms >= 0) {
            left = timeout_ms - (aj__mono_us() - start) / 1000;
            if (left <= 0) {
                return aj__err(AJ_ETIMEDOUT, "job %llu is still %s", (unsigned long long)id,
                               aj_state_name(s));
            }
        }
        kv_wait_change(e->kv, seen, left < 1000 ? left : 1000);
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Maintenance                                                                                */

int aj_backup(aj_engine *e, const char *path) {
    if (path == NULL || path[0] == '\0') {
        return aj__err(AJ_EINVAL, "backup needs a path");
    }
    if (access(path, F_OK) == 0) {
        return aj__err(AJ_EEXISTS, "backup target '%s' already exists", path);
    }
    return kv_backup(e->kv, path);
}

typedef struct check_ctx {
    void (*report)(void *ud, const char *line);
    void *ud;
    uint64_t records, problems;
} check_ctx;

static int check_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    check_ctx *c = ud;
    int rc = job_check(t, c->report, c->ud, &c->records, &c->problems);
    if (rc == 0) {
        rc = sched_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    if (rc == 0) {
        rc = qctl_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    if (rc == 0) {
        rc = act_cache_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    if (rc == 0) {
        rc = deps_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    uint64_t blob_problems = 0;
    if (rc == 0) {
        rc = blob_check(t, c->report, c->ud, &blob_problems);
        c->problems += blob_problems;
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_check(aj_engine *e, void (*report)(void *ud, const char *line), void *ud,
             uint64_t *out_records) {
    check_ctx c = {report, ud, 0, 0};
    int rc = eng_run(e, check_txn, &c, KV_SYNC);
    if (rc == AJ_ECORRUPT) {
        /* The store itself could not be read (SQLite: "database disk image is malformed"):
         * not a list of problems, which AJ_ECORRUPT means here. */
        char msg[AJ__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        return aj__err(AJ_EIO, "the store cannot be read: %s", msg);
    }
    if (rc != 0) {
        return rc;
    }
    if (out_records != NULL) {
        *out_records = c.records;
    }
    if (c.problems > 0) {
        return aj__err(AJ_ECORRUPT, "%llu problems found in %llu job records",
                       (unsigned long long)c.problems, (unsigned long long)c.records);
    }
    return 0;
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
        if (aj_slice_eq(type, e->handlers[i].type)) {
            *out = e->handlers[i];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}
