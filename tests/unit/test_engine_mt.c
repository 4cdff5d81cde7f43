/*
 * test_engine_mt.c — the runtime with real threads on SQLite: group commit of concurrent
 * submits, the worker pool running jobs exactly once when nothing fails, cancellation and
 * timeouts reaching a running handler, graceful stop, and two engines on one file (the second
 * engine's workers notice the first one's submits through the store's change detection).
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBMITTERS 16
#define PER_SUBMITTER 25
#define POOL_JOBS 2000

typedef struct fixture {
    char *dir;
    char url[600];
    aj_engine *e;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    snprintf(f->url, sizeof f->url, "sqlite:%s/aj.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, f->url, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    aj_engine_close(f->e);
    aj_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* cmocka's asserts must run on the test's own thread: other threads count failures here. */
static atomic_int thread_failures;

static void *submitter(void *arg) {
    aj_engine *e = arg;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    for (int i = 0; i < PER_SUBMITTER; i++) {
        uint64_t id;
        if (aj_submit(e, &s, &id) != 0) {
            atomic_fetch_add(&thread_failures, 1);
        }
    }
    return NULL;
}

static void test_concurrent_submits_share_fsyncs(void **state) {
    fixture *f = *state;
    aj_stats before, after;
    assert_int_equal(aj_stats_get(f->e, &before), 0);
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_create(&th[i], NULL, submitter, f->e);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&thread_failures), 0);
    assert_int_equal(aj_stats_get(f->e, &after), 0);
    uint64_t submits = SUBMITTERS * PER_SUBMITTER;
    uint64_t fsyncs = after.process.fsyncs - before.process.fsyncs;
    printf("%llu concurrent submits used %llu fsyncs\n", (unsigned long long)submits,
           (unsigned long long)fsyncs);
    assert_int_equal(after.jobs[AJ_STATE_READY], submits);
    assert_true(fsyncs < submits);
}

static atomic_int runs[POOL_JOBS + 1];

static int counting_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    int n = atoi(job->payload);
    if (n < 1 || n > POOL_JOBS) {
        atomic_fetch_add(&thread_failures, 1);
        return aj_ctx_fail(ctx, "bad payload", 1);
    }
    atomic_fetch_add(&runs[n], 1);
    return aj_ctx_set_result(ctx, job->payload, job->payload_len);
}

static void test_pool_runs_each_job_once(void **state) {
    fixture *f = *state;
    aj_job_spec *specs = calloc(POOL_JOBS, sizeof *specs);
    char(*payloads)[16] = calloc(POOL_JOBS, 16);
    for (int i = 0; i < POOL_JOBS; i++) {
        aj_job_spec_init(&specs[i]);
        specs[i].type = "count";
        specs[i].queue = i % 2 ? "odd" : "even";
        int len = snprintf(payloads[i], 16, "%d", i + 1);
        specs[i].payload = payloads[i];
        specs[i].payload_len = (size_t)len;
    }
    uint64_t *ids = calloc(POOL_JOBS, sizeof *ids);
    assert_int_equal(aj_submit_batch(f->e, specs, POOL_JOBS, ids), 0);
    assert_int_equal(aj_register(f->e, "count", counting_handler, NULL), 0);
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    o.concurrency = 4;
    assert_int_equal(aj_workers_start(f->e, &o), 0);
    assert_int_equal(aj_workers_drain(f->e, 0), 0);
    assert_int_equal(aj_workers_stop(f->e), 0);
    assert_int_equal(atomic_load(&thread_failures), 0);
    for (int i = 1; i <= POOL_JOBS; i++) {
        assert_int_equal(atomic_load(&runs[i]), 1);
    }
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_COMPLETED], POOL_JOBS);
    aj_job *j;
    assert_int_equal(aj_job_get(f->e, ids[41], &j), 0);
    assert_string_equal(j->result, "42");
    aj_job_free(j);
    uint64_t records;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
    free(specs);
    free(payloads);
    free(ids);
}

static atomic_int started;

/* Runs until told to stop; records why it stopped through the result. */
static int patient_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    atomic_store(&started, 1);
    for (int i = 0; i < 3000 && !aj_ctx_should_stop(ctx); i++) {
        usleep(10000);
    }
    if (aj_ctx_should_stop(ctx)) {
        return aj_ctx_fail(ctx, "stopped", 0);
    }
    return 0;
}

static void wait_started(void) {
    for (int i = 0; i < 500 && !atomic_load(&started); i++) {
        usleep(10000);
    }
    assert_true(atomic_load(&started));
}

static void start_patient_pool(fixture *f, int64_t shutdown_ms) {
    atomic_store(&started, 0);
    assert_int_equal(aj_register(f->e, "patient", patient_handler, NULL), 0);
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    o.concurrency = 1;
    o.shutdown_deadline_ms = shutdown_ms;
    assert_int_equal(aj_workers_start(f->e, &o), 0);
}

static aj_job_state wait_final(fixture *f, uint64_t id) {
    aj_job_state s;
    assert_int_equal(aj_job_wait(f->e, id, 20000, &s), 0);
    return s;
}

static void test_cancel_reaches_running_handler(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "patient";
    s.lease_ms = AJ_LEASE_MIN_MS; /* heartbeats every 333 ms: the cancel is noticed quickly */
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    start_patient_pool(f, 5000);
    wait_started();
    assert_int_equal(aj_job_cancel(f->e, id), 0);
    assert_int_equal(aj_workers_stop(f->e), 0); /* returns only once the handler has returned */
    assert_int_equal(wait_final(f, id), AJ_STATE_CANCELLED);
}

static void test_timeout_reaches_running_handler(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "patient";
    s.timeout_ms = 300;
    s.max_attempts = 1;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    start_patient_pool(f, 5000);
    assert_int_equal(wait_final(f, id), AJ_STATE_DEAD);
    aj_job *j;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    assert_int_equal(j->dead_reason, AJ_DEAD_TIMEOUT);
    aj_job_free(j);
    assert_int_equal(aj_workers_stop(f->e), 0);
}

static void test_graceful_stop_releases(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "patient";
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    start_patient_pool(f, 200); /* the handler gets 200 ms, then is told to stop */
    wait_started();
    assert_int_equal(aj_workers_stop(f->e), 0);
    aj_job *j;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    assert_int_equal(j->state, AJ_STATE_READY); /* released, the attempt not counted */
    assert_int_equal(j->attempts, 0);
    aj_job_free(j);
}

static int echo_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    return aj_ctx_set_result(ctx, job->payload, job->payload_len);
}

static void test_second_engine_notices_submits(void **state) {
    fixture *f = *state;
    aj_engine *worker_side;
    assert_int_equal(aj_engine_open(&worker_side, f->url, NULL), 0);
    assert_int_equal(aj_register(worker_side, "e2", echo_handler, NULL), 0);
    assert_int_equal(aj_workers_start(worker_side, NULL), 0);
    usleep(50000);
    for (int i = 0; i < 20; i++) {
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "e2";
        s.payload = "{}";
        s.payload_len = 2;
        uint64_t id;
        assert_int_equal(aj_submit(f->e, &s, &id), 0);
        assert_int_equal(wait_final(f, id), AJ_STATE_COMPLETED);
    }
    aj_engine_close(worker_side);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_submits_share_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_runs_each_job_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_reaches_running_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_reaches_running_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_stop_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_engine_notices_submits, setup, teardown),
    };
    return cmocka_run_group_tests_name("engine_mt", tests, NULL, NULL);
}
