/*
 * test_kv_sqlite_mt.c — group commit in the SQLite backend, from many threads: concurrent KV_SYNC
 * commits share fsyncs, a batch mixes synchronous and asynchronous commits, and done callbacks
 * (which run on the committer thread) may commit asynchronously but not synchronously.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv.h"
#include "util/clock.h"

#define THREADS 8   /* committing threads */
#define COMMITS 200 /* KV_SYNC commits per thread */

typedef struct fx {
    char *dir;
    kv_store *s;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = aj_test_tmpdir();
    char *path = aj_test_path(f->dir, "kv.db");
    char url[1100];
    snprintf(url, sizeof url, "sqlite:%s", path);
    free(path);
    assert_int_equal(kv_open(&f->s, url, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    kv_close(f->s);
    aj_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

typedef struct worker {
    kv_store *s;
    int id;
    int failed;
} worker;

static void *sync_main(void *arg) {
    worker *w = arg;
    for (int i = 0; i < COMMITS; i++) {
        char k[32];
        snprintf(k, sizeof k, "t%d/%04d", w->id, i);
        kv_txn *t;
        if (kv_begin(w->s, &t) != 0 || kv_put(t, k, strlen(k), "v", 1) != 0 ||
            kv_commit(t, KV_SYNC, NULL, NULL, NULL) != 0) {
            w->failed = 1;
            return NULL;
        }
    }
    return NULL;
}

static int count_cb(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    uint64_t ver) {
    (void)k, (void)kl, (void)v, (void)vl, (void)ver;
    (*(size_t *)ud)++;
    return 0;
}

static void test_group_commit_shares_syncs(void **state) {
    fx *f = *state;
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){f->s, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sync_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(w[i].failed);
    }
    uint64_t batches = 0, syncs = 0, hist[AJ_HIST_BUCKETS];
    kv_commit_stats(f->s, &batches, &syncs, hist, AJ_HIST_BUCKETS);
    printf("# %d KV_SYNC commits: %llu batches, %llu fsyncs; per batch:", THREADS * COMMITS,
           (unsigned long long)batches, (unsigned long long)syncs);
    for (int i = 0; i < AJ_HIST_BUCKETS; i++) {
        if (hist[i] != 0) {
            printf(" [%llu,%llu):%llu", i ? 1ULL << (i - 1) : 0ULL, 1ULL << i,
                   (unsigned long long)hist[i]);
        }
    }
    printf("\n");
    assert_true(syncs < THREADS * COMMITS);
    assert_true(syncs <= batches);
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    size_t n = 0;
    assert_int_equal(kv_scan_prefix(t, "t", 1, 0, 0, count_cb, &n), 0);
    assert_int_equal(n, THREADS * COMMITS);
    kv_abort(t);
}

typedef struct chain {
    kv_store *s;
    atomic_int done;
    atomic_int sync_refused;
    atomic_int failed;
} chain;

static void chained_done(void *ud, int rc) {
    chain *c = ud;
    if (rc != 0) {
        atomic_fetch_add(&c->failed, 1);
    }
    atomic_fetch_add(&c->done, 1);
}

/* Runs on the committer thread: commits again, asynchronously (allowed) and synchronously (it
 * would wait for itself: refused). */
static void first_done(void *ud, int rc) {
    chain *c = ud;
    kv_txn *t;
    if (rc != 0 || kv_begin(c->s, &t) != 0) {
        atomic_fetch_add(&c->failed, 1);
        return;
    }
    kv_put(t, "chained", 7, "v", 1);
    if (kv_commit(t, KV_ASYNC, chained_done, c, NULL) != 0) {
        atomic_fetch_add(&c->failed, 1);
    }
    if (kv_begin(c->s, &t) == 0) {
        kv_put(t, "refused", 7, "v", 1);
        if (kv_commit(t, KV_SYNC, NULL, NULL, NULL) == AJ_ESTATE) {
            atomic_fetch_add(&c->sync_refused, 1);
        }
    }
    atomic_fetch_add(&c->done, 1);
}

static void test_done_callbacks_commit(void **state) {
    fx *f = *state;
    chain c = {.s = f->s};
    atomic_init(&c.done, 0);
    atomic_init(&c.sync_refused, 0);
    atomic_init(&c.failed, 0);
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_put(t, "first", 5, "v", 1), 0);
    assert_int_equal(kv_commit(t, KV_ASYNC, first_done, &c, NULL), 0);
    int64_t deadline = aj__mono_us() + 10 * 1000000;
    while (atomic_load(&c.done) < 2 && aj__mono_us() < deadline) {
        aj__sleep_ms(1);
    }
    assert_int_equal(atomic_load(&c.done), 2);
    assert_int_equal(atomic_load(&c.failed), 0);
    assert_int_equal(atomic_load(&c.sync_refused), 1);
}

typedef struct mixed {
    kv_store *s;
    int id;
    atomic_int *acks;
    int failed;
} mixed;

static void ack(void *ud, int rc) {
    atomic_int *a = ud;
    atomic_fetch_add(a, rc == 0 ? 1 : 1000000);
}

static void *mixed_main(void *arg) {
    mixed *m = arg;
    for (int i = 0; i < COMMITS; i++) {
        char k[32];
        snprintf(k, sizeof k, "m%d/%04d", m->id, i);
        kv_txn *t;
        if (kv_begin(m->s, &t) != 0 || kv_put(t, k, strlen(k), k, strlen(k)) != 0) {
            m->failed = 1;
            return NULL;
        }
        kv_sync sync = i % 4 == 0 ? KV_SYNC : KV_ASYNC;
        if (kv_commit(t, sync, ack, m->acks, NULL) != 0) {
            m->failed = 1;
            return NULL;
        }
        if (sync == KV_SYNC) {
            atomic_fetch_add(m->acks, 1);
        }
    }
    return NULL;
}

static void test_mixed_sync_async(void **state) {
    fx *f = *state;
    atomic_int acks;
    atomic_init(&acks, 0);
    pthread_t th[THREADS];
    mixed m[THREADS];
    for (int i = 0; i < THREADS; i++) {
        m[i] = (mixed){f->s, i, &acks, 0};
        assert_int_equal(pthread_create(&th[i], NULL, mixed_main, &m[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(m[i].failed);
    }
    int64_t deadline = aj__mono_us() + 10 * 1000000;
    while (atomic_load(&acks) < THREADS * COMMITS && aj__mono_us() < deadline) {
        aj__sleep_ms(1);
    }
    assert_int_equal(atomic_load(&acks), THREADS * COMMITS);
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    size_t n = 0;
    assert_int_equal(kv_scan_prefix(t, "m", 1, 0, 0, count_cb, &n), 0);
    assert_int_equal(n, THREADS * COMMITS);
    kv_abort(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit_shares_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_callbacks_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_sync_async, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
