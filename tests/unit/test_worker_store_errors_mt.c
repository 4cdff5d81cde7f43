/*
 * test_worker_store_errors_mt.c — a worker pool on a store that keeps failing stops, loudly and
 * in bounded time; one on a store that fails for a while waits it out (issue 10, item 7).
 *
 * The failures are real SQLite errors, injected under SQLite by the fault VFS shim
 * (tests/harness/fault_vfs.c) on the store's -wal file: every write failing with an I/O error
 * (the COMMIT's outcome is then unknown and the handle refuses every later commit: a store error
 * that waiting does not cure), or with SQLITE_FULL (a full disk, which does pass). A busy store
 * is another connection holding the write lock past the store's busy timeout.
 *
 * A watchdog alarm bounds every case: a pool that idles instead of stopping kills the test.
 */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault_vfs.h"

#define JOBS 20
/* POOL_STORE_ERRORS_MAX: the failed claims in a row after which a pool stops (aj.h says 10). */
#define STORE_ERRORS_MAX 10
/* Longest any case may take; far above what it needs (10 claims 0.5 s apart, or one busy wait
 * of 10 s), so a loaded machine passes and a pool that never stops does not. */
#define WATCHDOG_S 240
/* Writes to fail "for ever". */
#define FAIL_FOREVER 1000000000

typedef struct fixture {
    char *dir;
    char path[600];
    char url[700];
    aj_engine *e;
    pthread_mutex_t mu;
    int retrying;    /* "claim failed; retrying" lines */
    int stopping;    /* "worker pool stopping" lines */
    int transient;   /* "claim failed" lines of errors that pass (busy, full) */
    char last[1024]; /* the last of those lines */
    atomic_int runs[JOBS + 1];
} fixture;

static void on_log(void *ud, aj_log_level level, const char *line) {
    (void)level;
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    if (strstr(line, "msg=\"claim failed; retrying\"") != NULL) {
        f->retrying++;
        snprintf(f->last, sizeof f->last, "%s", line);
    } else if (strstr(line, "msg=\"worker pool stopping: the store keeps failing\"") != NULL) {
        f->stopping++;
        snprintf(f->last, sizeof f->last, "%s", line);
    } else if (strstr(line, "msg=\"claim failed\"") != NULL) {
        f->transient++;
        snprintf(f->last, sizeof f->last, "%s", line);
    }
    pthread_mutex_unlock(&f->mu);
}

static int count(fixture *f, const int *which) {
    pthread_mutex_lock(&f->mu);
    int n = *which;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static int counting_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    fixture *f = ud;
    int n = atoi(job->payload);
    if (n >= 1 && n <= JOBS) {
        atomic_fetch_add(&f->runs[n], 1);
    }
    return aj_ctx_set_result(ctx, "1", 1);
}

static void open_engine(fixture *f) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.log = on_log;
    o.log_ud = f;
    o.log_level = AJ_LOG_INFO;
    assert_int_equal(aj_engine_open(&f->e, f->url, &o), 0);
    assert_int_equal(aj_register(f->e, "count", counting_handler, f), 0);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    snprintf(f->path, sizeof f->path, "%s/aj.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
    pthread_mutex_init(&f->mu, NULL);
    /* Every connection from here on goes through the shim; nothing fails until armed. */
    assert_int_equal(aj_fault_vfs_install("-wal"), 0);
    aj_fault_vfs_fail_writes(0);
    aj_fault_vfs_write_error(SQLITE_IOERR_WRITE);
    open_engine(f);
    aj_job_spec specs[JOBS];
    char payloads[JOBS][8];
    for (int i = 0; i < JOBS; i++) {
        aj_job_spec_init(&specs[i]);
        specs[i].type = "count";
        int len = snprintf(payloads[i], sizeof payloads[i], "%d", i + 1);
        specs[i].payload = payloads[i];
        specs[i].payload_len = (size_t)len;
    }
    uint64_t ids[JOBS];
    assert_int_equal(aj_submit_batch(f->e, specs, JOBS, ids), 0);
    alarm(WATCHDOG_S);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    alarm(0);
    aj_fault_vfs_fail_writes(0);
    aj_fault_vfs_write_error(SQLITE_IOERR_WRITE);
    aj_engine_close(f->e);
    aj_test_rmtree(f->dir);
    pthread_mutex_destroy(&f->mu);
    free(f->dir);
    free(f);
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The running pool drains the store, and every job ran exactly once. */
static void drain_runs_each_once(fixture *f) {
    assert_int_equal(aj_workers_drain(f->e, 0), 0);
    assert_int_equal(aj_workers_stop(f->e), 0);
    for (int i = 1; i <= JOBS; i++) {
        assert_int_equal(atomic_load(&f->runs[i]), 1);
    }
}

/* The pool stopped on the store's error, said so at every attempt, and lost nothing: a fresh
 * handle on the same file (what a restarted `aj worker` gets) runs every job once. */
static void expect_stopped_and_recoverable(fixture *f) {
    assert_int_equal(aj_workers_error(f->e), AJ_EIO);
    assert_non_null(strstr(aj_errmsg(), "failed 10 claims in a row"));
    assert_int_equal(count(f, &f->retrying), STORE_ERRORS_MAX - 1);
    assert_int_equal(count(f, &f->stopping), 1);
    pthread_mutex_lock(&f->mu);
    assert_non_null(strstr(f->last, "error=AJ_EIO"));
    pthread_mutex_unlock(&f->mu);
    for (int i = 1; i <= JOBS; i++) {
        assert_int_equal(atomic_load(&f->runs[i]), 0);
    }
    aj_workers_stop(f->e);
    aj_fault_vfs_fail_writes(0);
    aj_engine_close(f->e);
    open_engine(f);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    drain_runs_each_once(f);
}

/* `aj worker --drain`: the drain returns the store's error instead of waiting for ever. */
static void test_drain_stops_on_persistent_error(void **state) {
    fixture *f = *state;
    aj_fault_vfs_fail_writes(FAIL_FOREVER);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    assert_int_equal(aj_workers_drain(f->e, 0), AJ_EIO);
    assert_true(aj_fault_vfs_writes_failed() > 0);
    expect_stopped_and_recoverable(f);
}

/* A long-running `aj worker`: aj_workers_error, which it polls, turns non-zero by itself. */
static void test_pool_stops_on_persistent_error(void **state) {
    fixture *f = *state;
    aj_fault_vfs_fail_writes(FAIL_FOREVER);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    while (aj_workers_error(f->e) == 0) {
        sleep_ms(50); /* bounded by the watchdog */
    }
    expect_stopped_and_recoverable(f);
}

/* A full disk fails far more claims than STORE_ERRORS_MAX, and the pool waits: when space
 * returns it runs every job once. */
static void test_full_store_is_waited_out(void **state) {
    fixture *f = *state;
    aj_fault_vfs_write_error(SQLITE_FULL);
    int before = aj_fault_vfs_writes_failed();
    aj_fault_vfs_fail_writes(FAIL_FOREVER);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    while (aj_fault_vfs_writes_failed() - before < 3 * STORE_ERRORS_MAX) {
        sleep_ms(50);
    }
    assert_int_equal(aj_workers_error(f->e), 0);
    assert_int_equal(count(f, &f->stopping), 0);
    assert_int_equal(count(f, &f->retrying), 0);
    assert_true(count(f, &f->transient) >= 1);
    pthread_mutex_lock(&f->mu);
    assert_non_null(strstr(f->last, "full"));
    pthread_mutex_unlock(&f->mu);
    aj_fault_vfs_fail_writes(0);
    drain_runs_each_once(f);
}

/* Another process holds the write lock past the busy timeout: the claim fails with AJ_EBUSY,
 * is logged, and is tried again; the pool does not stop and runs every job once the lock goes. */
static void test_busy_store_is_waited_out(void **state) {
    fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    while (count(f, &f->transient) == 0) {
        sleep_ms(50); /* the store's busy timeout (10 s), then the claim fails */
    }
    pthread_mutex_lock(&f->mu);
    assert_non_null(strstr(f->last, "locked"));
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(aj_workers_error(f->e), 0);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    drain_runs_each_once(f);
    assert_int_equal(count(f, &f->stopping), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_drain_stops_on_persistent_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_stops_on_persistent_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_store_is_waited_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_store_is_waited_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
