/*
 * counters.c — the engine's counters in the store, and aj_stats_get.
 *
 * Each process adds what it counted to its own record ('C' + instance), about once a second, so
 * no key is written by every transaction (which would make every commit conflict). A record holds
 * what its process added since the record was created, not the process's running total: that lets
 * the collection duty fold the records of processes that have gone quiet (exited, or idle for
 * ENG_COUNTERS_FOLD_MS) into the base record ('C' + 0) and delete them, so the number of records
 * follows the number of live processes, not the number of processes ever opened (every `aj`
 * command is one). A folded process that counts again simply starts a new record. The store's
 * totals are the sum of all records; a process adds what it counted since its last flush.
 *
 * Record: format(1) n(varint) n counters(varint) updated_ms(varint). Format 1 records (no
 * updated_ms) are read as long quiet.
 */
#include <string.h>

#include "core/activity_cache.h"
#include "core/keys.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define COUNTERS_FORMAT 2
#define COUNTERS_FORMAT_OLD 1
#define COUNTERS_N (sizeof(aj_counters) / sizeof(uint64_t))
/* The base record, holding what folded processes counted. */
#define COUNTERS_BASE 0

static void add_to(aj_counters *to, const aj_counters *d) {
    uint64_t *t = (uint64_t *)to;
    const uint64_t *v = (const uint64_t *)d;
    for (size_t i = 0; i < COUNTERS_N; i++) {
        t[i] += v[i];
    }
}

/* a - b, field by field (b never exceeds a: counters only grow). */
static void sub_from(aj_counters *a, const aj_counters *b) {
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;
    for (size_t i = 0; i < COUNTERS_N; i++) {
        x[i] -= y[i];
    }
}

static void encode_counters(const aj_counters *c, int64_t updated_ms, aj_buf *b) {
    const uint64_t *v = (const uint64_t *)c;
    aj__buf_add_u8(b, COUNTERS_FORMAT);
    aj__buf_add_varint(b, COUNTERS_N);
    for (size_t i = 0; i < COUNTERS_N; i++) {
        aj__buf_add_varint(b, v[i]);
    }
    aj__buf_add_varint(b, (uint64_t)updated_ms);
}

static int decode_counters(const uint8_t *p, size_t len, aj_counters *out, int64_t *updated_ms) {
    aj_rd r;
    aj__rd_init(&r, p, len);
    memset(out, 0, sizeof *out);
    *updated_ms = 0;
    uint8_t format = aj__rd_u8(&r);
    if (format != COUNTERS_FORMAT && format != COUNTERS_FORMAT_OLD) {
        return AJ_ECORRUPT;
    }
    uint64_t n = aj__rd_varint(&r);
    uint64_t *v = (uint64_t *)out;
    for (uint64_t i = 0; i < n && !r.bad; i++) {
        uint64_t x = aj__rd_varint(&r);
        if (i < COUNTERS_N) {
            v[i] = x; /* fields added later are appended; older records leave them 0 */
        }
    }
    if (format == COUNTERS_FORMAT) {
        *updated_ms = (int64_t)aj__rd_varint(&r);
    }
    return r.bad ? AJ_ECORRUPT : 0;
}

/* Reads one record; a missing one reads as zero, a damaged one as zero too (it only loses
 * statistics, and is overwritten). */
static int read_record(kv_txn *t, uint64_t instance, aj_counters *out, int64_t *updated_ms) {
    akey k;
    key_counters(&k, instance);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND || (rc == 0 && decode_counters(v, n, out, updated_ms) != 0)) {
        memset(out, 0, sizeof *out);
        *updated_ms = 0;
        return 0;
    }
    return rc;
}

static int write_record(kv_txn *t, uint64_t instance, const aj_counters *c, int64_t updated_ms) {
    aj_buf b = AJ_BUF_INIT;
    encode_counters(c, updated_ms, &b);
    int rc = b.oom ? aj__err(AJ_ENOMEM, "out of memory writing counters") : 0;
    if (rc == 0) {
        akey k;
        key_counters(&k, instance);
        rc = kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj__buf_free(&b);
    return rc;
}

/* This process's counters now, with the storage figures only the backend knows. */
static void snapshot(aj_engine *e, aj_counters *out) {
    pthread_mutex_lock(&e->counters_mu);
    *out = e->counters;
    pthread_mutex_unlock(&e->counters_mu);
    kv_commit_stats(e->kv, &out->commits, &out->fsyncs, out->commit_batch_hist, AJ_HIST_BUCKETS);
}

/* 1 when nothing but storage figures changed: those change with every flush (a flush is a
 * commit), so counting them would make an idle process flush forever. */
static int only_storage_changed(const aj_counters *now, const aj_counters *then) {
    aj_counters a = *now, b = *then;
    a.commits = b.commits = 0;
    a.fsyncs = b.fsyncs = 0;
    memset(a.commit_batch_hist, 0, sizeof a.commit_batch_hist);
    memset(b.commit_batch_hist, 0, sizeof b.commit_batch_hist);
    return memcmp(&a, &b, sizeof a) == 0;
}

typedef struct flush_ctx {
    uint64_t instance;
    aj_counters delta;
} flush_ctx;

static int flush_txn(kv_txn *t, const job_env *env, void *ud) {
    flush_ctx *f = ud;
    aj_counters rec;
    int64_t updated;
    int rc = read_record(t, f->instance, &rec, &updated);
    if (rc == 0) {
        add_to(&rec, &f->delta);
        rc = write_record(t, f->instance, &rec, env->now_ms);
    }
    return rc;
}

int eng_flush_counters(aj_engine *e) {
    pthread_mutex_lock(&e->flush_mu);
    aj_counters now;
    snapshot(e, &now);
    int rc = 0;
    if (!only_storage_changed(&now, &e->flushed)) {
        flush_ctx f;
        f.instance = e->instance;
        f.delta = now;
        sub_from(&f.delta, &e->flushed);
        /* KV_APPLIED: statistics need no fsync of their own (a worker would pay one a second,
         * and every `aj` command one at exit); the next durable commit or checkpoint covers
         * them, and a power loss before that loses only counts. */
        rc = eng_run(e, flush_txn, &f, KV_APPLIED);
        if (rc == 0) {
            e->flushed = now;
        }
    }
    pthread_mutex_unlock(&e->flush_mu);
    return rc;
}

typedef struct fold_ctx {
    uint64_t self;
    int64_t quiet_before;
    aj_counters folded;
    akey keys[ENG_DUTY_BATCH];
    size_t n;
} fold_ctx;

static int fold_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)version;
    fold_ctx *f = ud;
    if (klen != 9) {
        return 0;
    }
    uint64_t instance = key_tail_id(key, klen);
    aj_counters c;
    int64_t updated;
    if (instance == COUNTERS_BASE || instance == f->self) {
        return 0;
    }
    if (decode_counters(val, vlen, &c, &updated) != 0) {
        memset(&c, 0, sizeof c); /* damaged: drop it */
    } else if (updated >= f->quiet_before) {
        return 0;
    }
    add_to(&f->folded, &c);
    memcpy(f->keys[f->n].b, key, klen);
    f->keys[f->n].n = klen;
    return ++f->n == ENG_DUTY_BATCH ? 1 : 0;
}

static int fold_txn(kv_txn *t, const job_env *env, void *ud) {
    fold_ctx *f = ud;
    memset(&f->folded, 0, sizeof f->folded);
    f->n = 0;
    f->quiet_before = env->now_ms - ENG_COUNTERS_FOLD_MS;
    akey k;
    key_prefix(&k, KEY_COUNTERS);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, fold_cb, f);
    if (rc != 0 || f->n == 0) {
        return rc != 0 ? rc : ENG_READ_ONLY;
    }
    aj_counters base;
    int64_t updated;
    rc = read_record(t, COUNTERS_BASE, &base, &updated);
    if (rc == 0) {
        add_to(&base, &f->folded);
        rc = write_record(t, COUNTERS_BASE, &base, env->now_ms);
    }
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        rc = kv_del(t, f->keys[i].b, f->keys[i].n);
    }
    return rc;
}

int eng_fold_counters(aj_engine *e) {
    fold_ctx *f = aj__calloc(1, sizeof *f);
    if (f == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory folding counters");
    }
    f->self = e->instance;
    int rc;
    do {
        rc = eng_run(e, fold_txn, f, KV_SYNC);
    } while (rc == 0 && f->n == ENG_DUTY_BATCH);
    aj__free(f);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Statistics                                                                                 */

typedef struct stats_ctx {
    aj_stats *out;
} stats_ctx;

static int sum_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t version) {
    (void)key;
    (void)version;
    stats_ctx *s = ud;
    aj_counters c;
    int64_t updated;
    if (klen != 9 || decode_counters(val, vlen, &c, &updated) != 0) {
        return 0; /* a damaged counter record only loses statistics */
    }
    add_to(&s->out->total, &c);
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
        rc = act_cache_count(t, &s->out->activity_cache_entries);
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
    stats_ctx s = {&st};
    /* The store holds this process's counts up to its last flush, and the process adds what came
     * since: no flush may fall between the scan and reading `flushed`, or its counts would be
     * summed twice. */
    pthread_mutex_lock(&e->flush_mu);
    int rc = eng_run(e, stats_txn, &s, KV_SYNC);
    if (rc == 0) {
        snapshot(e, &st.process);
        aj_counters unflushed = st.process;
        sub_from(&unflushed, &e->flushed);
        add_to(&st.total, &unflushed);
    }
    pthread_mutex_unlock(&e->flush_mu);
    if (rc == 0) {
        *out = st;
    }
    return rc;
}
