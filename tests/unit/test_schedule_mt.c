/*
 * test_schedule_mt.c — schedules fired by several threads at once: two engines on one memory
 * store ticking in their own threads while the simulated clock moves, and two engines on one
 * SQLite file each running the real schedule service. In both, every fire time creates exactly
 * one job (the exactly-once argument of schedule.h under real races), and nothing is skipped.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "runtime/engine.h"
#include "store/kv.h"

int main(void);

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */
/* Clock steps of the simulated race, and how far each moves the clock. */
#define SIM_STEPS 400
#define SIM_STEP_MS 300
/* The interval of the schedules. */
#define SIM_EVERY_MS 1000
#define REAL_EVERY_MS 20
/* How long the real services run. */
#define REAL_RUN_MS 1500

static atomic_int failures;
static atomic_int stop_flag;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The scheduled_at of every job, sorted. */
static int64_t *fire_times(aj_engine *e, size_t *n) {
    aj_job **v = NULL;
    assert_int_equal(aj_job_list(e, NULL, &v, n), 0);
    int64_t *at = calloc(*n + 1, sizeof *at);
    for (size_t i = 0; i < *n; i++) {
        json_t *m = json_loads(v[i]->metadata, 0, NULL);
        assert_non_null(m);
        assert_int_equal(
            aj_time_parse(json_string_value(json_object_get(m, "scheduled_at")), &at[i]), 0);
        json_decref(m);
    }
    aj_job_list_free(v, *n);
    qsort(at, *n, sizeof *at, cmp_i64);
    return at;
}

static void add_every(aj_engine *e, const char *name, int64_t every) {
    aj_schedule_spec s;
    aj_schedule_spec_init(&s);
    s.name = name;
    s.every_ms = every;
    s.overlap = AJ_OVERLAP_ALLOW;
    s.catch_up = AJ_CATCH_UP_ALL;
    s.job.type = "echo";
    assert_int_equal(aj_schedule_add(e, &s), 0);
}

static void *ticker(void *arg) {
    aj_engine *e = arg;
    while (!atomic_load(&stop_flag)) {
        if (aj_schedules_tick(e, NULL) != 0) {
            atomic_fetch_add(&failures, 1);
        }
    }
    return NULL;
}

static void test_sim_race(void **state) {
    (void)state;
    aj_test_clock clock;
    aj_test_clock_init(&clock, T0);
    kv_store *kv = NULL;
    assert_int_equal(kv_mem_open(&kv), 0);
    aj_engine *e[2];
    for (int i = 0; i < 2; i++) {
        aj_engine_opts o;
        aj_engine_opts_init(&o);
        o.clock = &clock.clock;
        o.seed = 100 + (uint64_t)i;
        o.background = 0;
        assert_int_equal(aj__engine_open_kv(&e[i], kv, &o), 0);
    }
    add_every(e[0], "race", SIM_EVERY_MS);
    atomic_store(&stop_flag, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, ticker, e[i]), 0);
    }
    for (int s = 0; s < SIM_STEPS; s++) {
        aj_test_clock_advance(&clock, SIM_STEP_MS);
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(aj_schedules_tick(e[0], NULL), 0);
    assert_int_equal(atomic_load(&failures), 0);
    size_t n = 0;
    int64_t *at = fire_times(e[0], &n);
    assert_int_equal(n, (size_t)(SIM_STEPS * SIM_STEP_MS / SIM_EVERY_MS));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(at[i], T0 + (int64_t)(i + 1) * SIM_EVERY_MS);
    }
    free(at);
    uint64_t records = 0;
    assert_int_equal(aj_check(e[0], NULL, NULL, &records), 0);
    aj_engine_close(e[0]);
    aj_engine_close(e[1]);
    kv_close(kv);
}

static void test_two_services_on_sqlite(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/aj.db", dir);
    aj_engine *e[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(aj_engine_open(&e[i], url, NULL), 0);
    }
    add_every(e[0], "fast", REAL_EVERY_MS);
    aj_schedule *s = NULL;
    assert_int_equal(aj_schedule_get(e[0], "fast", &s), 0);
    int64_t created = s->created_ms;
    aj_schedule_free(s);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(aj_schedules_start(e[i]), 0);
    }
    assert_int_equal(aj_schedules_start(e[0]), AJ_ESTATE);
    struct timespec ts = {REAL_RUN_MS / 1000, (REAL_RUN_MS % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    aj_schedules_stop(e[0]);
    aj_schedules_stop(e[1]);
    aj_schedules_stop(e[1]); /* again: harmless */
    size_t n = 0;
    int64_t *at = fire_times(e[0], &n);
    /* Every interval from the first to the last fire, once each. */
    assert_true(n >= 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(at[i], created + (int64_t)(i + 1) * REAL_EVERY_MS);
    }
    free(at);
    uint64_t records = 0;
    assert_int_equal(aj_check(e[0], NULL, NULL, &records), 0);
    aj_engine_close(e[0]);
    aj_engine_close(e[1]);
    aj_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_race),
        cmocka_unit_test(test_two_services_on_sqlite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
