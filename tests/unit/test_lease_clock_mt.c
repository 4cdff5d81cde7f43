/*
 * test_lease_clock_mt.c — leases and timeouts against wall clock steps and store outages, with
 * real threads: the engine runs on a clock that is the real wall clock plus an offset the test
 * steps (as an operator or NTP steps CLOCK_REALTIME; the monotonic clock does not move), over a
 * memory store whose disk can be made "full".
 *
 * Each case runs one job under a live worker pool whose ticker reaps leases, with max_attempts 1
 * where a second attempt would show: a healthy job must run once and complete — never be
 * dead-lettered lease_expired or timeout because the clock jumped (+45 s, +2 h, -5 min and back)
 * or because its outcome could not be written for a while (full disk). The clock-step detector
 * and the reapers' hold are also checked on invented readings.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/engine.h"
#include "store/kv.h"
#include "util/clock.h"
#include "util/clock_step.h"

/* The engine's clock: the real wall clock plus a step the test sets. */
static atomic_llong clock_offset_ms;

static int64_t stepped_now(void *ud) {
    (void)ud;
    return aj__wall_ms() + (int64_t)atomic_load(&clock_offset_ms);
}

typedef struct fixture {
    kv_store *kv;
    aj_engine *e;
    aj_clock clock;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    atomic_store(&clock_offset_ms, 0);
    f->clock.now_ms = stepped_now;
    assert_int_equal(kv_mem_open(&f->kv), 0);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &f->clock;
    o.log_level = AJ_LOG_DEBUG;
    assert_int_equal(aj__engine_open_kv(&f->e, f->kv, &o), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    aj_engine_close(f->e);
    kv_close(f->kv);
    free(f);
    return 0;
}

/* What the handler does: sleeps run_ms in slices (stopping early when told to), and on its
 * first run may fill the disk before returning. */
static atomic_int runs;
static atomic_int stopped_early;
static int handler_run_ms;
static _Atomic(kv_store *) fill_disk_of; /* non-NULL: the first run makes this store full */

static int sleepy_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    int n = atomic_fetch_add(&runs, 1) + 1;
    for (int waited = 0; waited < handler_run_ms; waited += 20) {
        if (aj_ctx_should_stop(ctx)) {
            atomic_fetch_add(&stopped_early, 1);
            return aj_ctx_fail(ctx, "told to stop", 0);
        }
        aj__sleep_ms(20);
    }
    kv_store *kv = atomic_load(&fill_disk_of);
    if (n == 1 && kv != NULL) {
        kv_mem_set_full(kv, 1);
    }
    return 0;
}

static uint64_t start_one(fixture *f, int64_t lease_ms, int64_t timeout_ms, uint32_t attempts,
                          int run_ms) {
    atomic_store(&runs, 0);
    atomic_store(&stopped_early, 0);
    handler_run_ms = run_ms;
    assert_int_equal(aj_register(f->e, "sleepy", sleepy_handler, NULL), 0);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "sleepy";
    s.lease_ms = lease_ms;
    s.timeout_ms = timeout_ms;
    s.max_attempts = attempts;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    o.concurrency = 1;
    assert_int_equal(aj_workers_start(f->e, &o), 0);
    return id;
}

static void wait_running(void) {
    for (int i = 0; i < 500 && atomic_load(&runs) == 0; i++) {
        aj__sleep_ms(10);
    }
    assert_int_equal(atomic_load(&runs), 1);
}

/* Waits for the job to end and checks it ran once and completed. */
static void expect_completed_once(fixture *f, uint64_t id) {
    aj_job_state st;
    assert_int_equal(aj_job_wait(f->e, id, 60 * AJ_SECOND, &st), 0);
    aj_job *j;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    if (j->state != AJ_STATE_COMPLETED) {
        fprintf(stderr, "job %llu is %s (%s): %s\n", (unsigned long long)id,
                aj_state_name(j->state), aj_dead_reason_name(j->dead_reason),
                j->error ? j->error : "");
    }
    assert_int_equal(j->state, AJ_STATE_COMPLETED);
    assert_int_equal(j->attempts, 1);
    aj_job_free(j);
    assert_int_equal(atomic_load(&stopped_early), 0);
    assert_int_equal(aj_workers_stop(f->e), 0);
    assert_int_equal(atomic_load(&runs), 1);
}

/* +45 s under a 30 s lease: every stored expiry is suddenly in the past, long before the
 * next heartbeat is due (every 10 s), and the ticker looks at least every second. */
static void test_step_forward_keeps_lease(void **state) {
    fixture *f = *state;
    uint64_t id = start_one(f, 30 * AJ_SECOND, 5 * AJ_MINUTE, 1, 2500);
    wait_running();
    aj__sleep_ms(300);
    atomic_fetch_add(&clock_offset_ms, 45 * AJ_SECOND);
    expect_completed_once(f, id);
}

/* +2 h under a one-minute execution timeout: the job has run well under a minute. */
static void test_step_forward_does_not_time_out(void **state) {
    fixture *f = *state;
    uint64_t id = start_one(f, 3 * AJ_SECOND, AJ_MINUTE, 1, 2500);
    wait_running();
    aj__sleep_ms(300);
    atomic_fetch_add(&clock_offset_ms, 2 * AJ_HOUR);
    expect_completed_once(f, id);
}

/* -5 min, then back: a heartbeat in between (every 2 s under a 6 s lease) writes an expiry on
 * the clock of 5 minutes ago, and the step back comes a second before the next one. */
static void test_step_back_and_forth(void **state) {
    fixture *f = *state;
    uint64_t id = start_one(f, 6 * AJ_SECOND, 5 * AJ_MINUTE, 1, 4500);
    wait_running();
    aj__sleep_ms(300);
    atomic_fetch_add(&clock_offset_ms, -5 * AJ_MINUTE);
    aj__sleep_ms(2000);
    atomic_fetch_add(&clock_offset_ms, 5 * AJ_MINUTE);
    expect_completed_once(f, id);
}

/* A full disk for three leases: the outcome cannot be written, the lease is kept, and once
 * there is space again the job is completed — not run a second time. */
static void test_full_disk_keeps_outcome(void **state) {
    fixture *f = *state;
    atomic_store(&fill_disk_of, f->kv);
    uint64_t id = start_one(f, AJ_LEASE_MIN_MS, 5 * AJ_MINUTE, 3, 100);
    wait_running();
    aj__sleep_ms(3 * AJ_LEASE_MIN_MS);
    atomic_store(&fill_disk_of, NULL);
    kv_mem_set_full(f->kv, 0);
    expect_completed_once(f, id);
}

/* Shorter leases are refused with a message naming the floor. */
static void test_lease_floor(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.lease_ms = AJ_LEASE_MIN_MS - 1;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "lease must be at least 1000ms"));
    s.lease_ms = AJ_LEASE_MIN_MS;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
}

/* The detector on invented readings: slewing and jitter are not steps; steps are signed. */
static void test_step_detector(void **state) {
    (void)state;
    aj_clock_step d = {0, 0};
    int64_t mono = 5000000;                                       /* µs */
    assert_int_equal(aj__clock_step_check(&d, 1000000, mono), 0); /* first reading */
    mono += 1000000;
    assert_int_equal(aj__clock_step_check(&d, 1001000, mono), 0);
    /* 0.5 ms per second of slew for a long time adds up to nothing. */
    int64_t wall = 1001000;
    for (int i = 0; i < 2000; i++) {
        mono += 1000000;
        wall += 1000 + (i % 2);
        assert_int_equal(aj__clock_step_check(&d, wall, mono), 0);
    }
    mono += 50000;
    wall += 50 + AJ_CLOCK_STEP_MIN_MS - 1;
    assert_int_equal(aj__clock_step_check(&d, wall, mono), 0);
    mono += 50000;
    wall += 50 + 45000;
    assert_int_equal(aj__clock_step_check(&d, wall, mono), 45000);
    mono += 50000;
    wall += 50 - 300000;
    assert_int_equal(aj__clock_step_check(&d, wall, mono), -300000);
}

/* The reapers' hold: forward steps add up within the grace period, a step back does not
 * cancel them, and the hold ends AJ_CLOCK_STEP_GRACE_MS after the last forward step. */
static void test_step_hold(void **state) {
    (void)state;
    aj_step_hold h;
    memset(&h, 0, sizeof h);
    int64_t mono = 1000000, wall = 1700000000000;
    int64_t step;
    assert_int_equal(aj__step_hold_update(&h, wall, mono, &step), 0);
    mono += 100000;
    wall += 100 - 300000; /* back 5 minutes: no hold */
    assert_int_equal(aj__step_hold_update(&h, wall, mono, &step), 0);
    assert_int_equal(step, -300000);
    mono += 100000;
    wall += 100 + 300000; /* and forward again: leases written meanwhile are 5 min behind */
    assert_int_equal(aj__step_hold_update(&h, wall, mono, &step), 300000);
    mono += 100000;
    wall += 100 + 45000;
    assert_int_equal(aj__step_hold_update(&h, wall, mono, NULL), 345000);
    mono += (int64_t)AJ_CLOCK_STEP_GRACE_MS * 1000 - 1000;
    wall += AJ_CLOCK_STEP_GRACE_MS - 1;
    assert_int_equal(aj__step_hold_update(&h, wall, mono, NULL), 345000);
    mono += 1000;
    wall += 1;
    assert_int_equal(aj__step_hold_update(&h, wall, mono, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_detector),
        cmocka_unit_test(test_step_hold),
        cmocka_unit_test_setup_teardown(test_lease_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_forward_keeps_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_forward_does_not_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_back_and_forth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_keeps_outcome, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
