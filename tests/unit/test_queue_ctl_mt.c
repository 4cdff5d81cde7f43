/*
 * test_queue_ctl_mt.c — the concurrency limit under contention: two engines on one SQLite file
 * (as two processes would be), four claiming threads each, claiming, holding and completing jobs
 * of a queue limited to 3. A shared counter of leases known to be held (incremented after a
 * claim commits, decremented before the completion is sent) is a lower bound of the leases in
 * the store, so it must never exceed the limit. The rate limit is checked the same way: claim
 * times of every thread, no window holding more than the rate.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIMIT 3
#define JOBS 120
#define THREADS 4
#define RATE_N 4
#define RATE_WINDOW_MS 200
#define RATE_JOBS 24

typedef struct shared {
    aj_engine *e[2];
    const char *queue;
    atomic_int held;
    atomic_int max_held;
    atomic_int done;
    int total;
    pthread_mutex_t mu;
    int64_t times[RATE_JOBS];
    int n_times;
} shared;

typedef struct worker_arg {
    shared *s;
    aj_engine *e;
    char name[32];
} worker_arg;

static void *claimer(void *p) {
    worker_arg *w = p;
    shared *s = w->s;
    const char *q[] = {s->queue};
    while (atomic_load(&s->done) < s->total) {
        aj_job **jobs;
        size_t n = 0;
        int rc = aj_claim(w->e, q, 1, w->name, 2, &jobs, &n);
        assert_int_equal(rc, 0);
        if (n == 0) {
            free(jobs);
            usleep(1000);
            continue;
        }
        int now = atomic_fetch_add(&s->held, (int)n) + (int)n;
        int m = atomic_load(&s->max_held);
        while (now > m && !atomic_compare_exchange_weak(&s->max_held, &m, now)) {
        }
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < n && s->n_times < RATE_JOBS; i++) {
            s->times[s->n_times++] = jobs[i]->started_ms;
        }
        pthread_mutex_unlock(&s->mu);
        usleep(500);
        for (size_t i = 0; i < n; i++) {
            atomic_fetch_sub(&s->held, 1);
            assert_int_equal(aj_complete(w->e, jobs[i]->id, jobs[i]->epoch, NULL, 0), 0);
            atomic_fetch_add(&s->done, 1);
        }
        aj_job_list_free(jobs, n);
    }
    return NULL;
}

static void run_claimers(shared *s) {
    pthread_t th[2 * THREADS];
    worker_arg args[2 * THREADS];
    for (int i = 0; i < 2 * THREADS; i++) {
        args[i].s = s;
        args[i].e = s->e[i % 2];
        snprintf(args[i].name, sizeof args[i].name, "w%d", i);
        assert_int_equal(pthread_create(&th[i], NULL, claimer, &args[i]), 0);
    }
    for (int i = 0; i < 2 * THREADS; i++) {
        pthread_join(th[i], NULL);
    }
}

static void submit_n(aj_engine *e, const char *queue, int n) {
    for (int i = 0; i < n; i++) {
        aj_job_spec sp;
        aj_job_spec_init(&sp);
        sp.type = "echo";
        sp.queue = queue;
        uint64_t id;
        assert_int_equal(aj_submit(e, &sp, &id), 0);
    }
}

static void test_limits_under_contention(void **state) {
    (void)state;
    char dir[] = "/tmp/aj_qctl_mt_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[128], path[96];
    snprintf(path, sizeof path, "%s/aj.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.background = 0;
    shared *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    assert_int_equal(aj_engine_open(&s->e[0], url, &o), 0);
    assert_int_equal(aj_engine_open(&s->e[1], url, &o), 0);

    assert_int_equal(aj_queue_limit(s->e[0], "lim", LIMIT, -1, 0), 0);
    submit_n(s->e[0], "lim", JOBS);
    s->queue = "lim";
    s->total = JOBS;
    run_claimers(s);
    assert_true(atomic_load(&s->max_held) <= LIMIT);
    assert_true(atomic_load(&s->max_held) >= 1);
    aj_queue_info *v;
    size_t n;
    assert_int_equal(aj_queue_list(s->e[1], &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].leases_counted, 0);
    assert_int_equal(v[0].jobs[AJ_STATE_COMPLETED], JOBS);
    aj_queue_list_free(v, n);

    assert_int_equal(aj_queue_limit(s->e[1], "paced", -1, RATE_N, RATE_WINDOW_MS), 0);
    submit_n(s->e[1], "paced", RATE_JOBS);
    s->queue = "paced";
    s->n_times = 0; /* only the claims of the rate-limited queue */
    atomic_store(&s->done, 0);
    s->total = RATE_JOBS;
    run_claimers(s);
    assert_int_equal(s->n_times, RATE_JOBS);
    for (int i = 0; i < s->n_times; i++) {
        int in_window = 0;
        for (int k = 0; k < s->n_times; k++) {
            in_window += s->times[k] >= s->times[i] && s->times[k] < s->times[i] + RATE_WINDOW_MS;
        }
        assert_true(in_window <= RATE_N);
    }
    aj_engine_close(s->e[0]);
    aj_engine_close(s->e[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_under_contention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
