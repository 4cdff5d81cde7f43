/*
 * test_progress_mt.c — job progress through the worker pool: a handler's reports reach the store
 * while it runs (flushed by the heartbeat thread) and with its outcome; thousands of reports cost
 * a handful of commits, not one each; reports of a retried job merge across attempts (counters
 * add up, the later attempt's step wins); malformed pipe lines are counted and never fatal; a
 * shell job reports through $AJ_PROGRESS_FD.
 */
#include "harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

/* How long a test waits for something that should happen soon, in ms. */
#define WAIT_MS 10000
/* Reports made by the busy handler. */
#define BUSY_REPORTS 20000

typedef struct gate {
    atomic_int seen; /* the test saw the running job's progress */
} gate;

static aj_engine *open_engine(void) {
    aj_engine *e = NULL;
    assert_int_equal(aj_engine_open(&e, "mem:", NULL), 0);
    return e;
}

static void start(aj_engine *e) {
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = 2;
    assert_int_equal(aj_workers_start(e, &wo), 0);
}

static uint64_t submit(aj_engine *e, const char *type, const char *payload, uint32_t attempts) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = type;
    s.payload = payload;
    s.payload_len = payload != NULL ? strlen(payload) : 0;
    s.max_attempts = attempts;
    aj_backoff_parse("none", &s.backoff);
    uint64_t id;
    assert_int_equal(aj_submit(e, &s, &id), 0);
    return id;
}

static void wait_final(aj_engine *e, uint64_t id, aj_job_state want) {
    aj_job_state st;
    int rc = aj_job_wait(e, id, WAIT_MS, &st);
    if (rc != 0) {
        fail_msg("job %llu: %s", (unsigned long long)id, aj_errmsg());
    }
    assert_int_equal(st, want);
}

static aj_progress *progress(aj_engine *e, uint64_t id) {
    aj_progress *p = NULL;
    assert_int_equal(aj_job_progress(e, id, &p), 0);
    return p;
}

static uint64_t counter(const aj_progress *p, const char *name) {
    for (size_t i = 0; i < p->n_counters; i++) {
        if (strcmp(p->counters[i].name, name) == 0) {
            return p->counters[i].value;
        }
    }
    return 0;
}

/* Reports, then waits until the test has seen the report in the store, then completes. */
static int visible_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    gate *g = ud;
    /* cmocka's asserts belong to the test's thread: a failed call fails the job instead. */
    if (aj_ctx_step(ctx, "extract") != 0 || aj_ctx_progress(ctx, 40, "reading") != 0 ||
        aj_ctx_count(ctx, "rows", 10) != 0) {
        return aj_ctx_fail(ctx, aj_errmsg(), 1);
    }
    for (int i = 0; i < WAIT_MS && !atomic_load(&g->seen); i++) {
        aj__sleep_ms(1);
    }
    if (aj_ctx_step(ctx, "load") != 0 || aj_ctx_count(ctx, "rows", 5) != 0 ||
        aj_ctx_progress(ctx, 100, NULL) != 0) {
        return aj_ctx_fail(ctx, aj_errmsg(), 1);
    }
    return 0;
}

static void test_visible_while_running(void **state) {
    (void)state;
    aj_engine *e = open_engine();
    gate g;
    atomic_init(&g.seen, 0);
    assert_int_equal(aj_register(e, "visible", visible_handler, &g), 0);
    start(e);
    uint64_t id = submit(e, "visible", NULL, 1);
    int64_t t0 = aj__mono_us();
    for (;;) {
        aj_progress *p = progress(e, id);
        int ok = p->reported && p->has_percent && p->percent == 40.0;
        if (ok) {
            assert_string_equal(p->step, "extract");
            assert_string_equal(p->message, "reading");
            assert_int_equal(counter(p, "rows"), 10);
            assert_int_equal(p->n_steps_done, 0);
        }
        aj_progress_free(p);
        if (ok) {
            break;
        }
        if (aj__mono_us() - t0 > WAIT_MS * 1000) {
            fail_msg("the running job's progress never reached the store");
        }
        aj__sleep_ms(10);
    }
    atomic_store(&g.seen, 1);
    wait_final(e, id, AJ_STATE_COMPLETED);
    aj_progress *p = progress(e, id);
    assert_true(p->percent == 100.0);
    assert_string_equal(p->message, "reading");
    assert_string_equal(p->step, "load");
    assert_int_equal(p->n_steps_done, 2); /* extract, then load when the job completed */
    assert_string_equal(p->steps_done[0], "extract");
    assert_string_equal(p->steps_done[1], "load");
    assert_int_equal(counter(p, "rows"), 15);
    aj_progress_free(p);
    assert_int_equal(aj_workers_stop(e), 0);
    aj_engine_close(e);
}

static int busy_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    for (int i = 0; i < BUSY_REPORTS; i++) {
        aj_ctx_progress(ctx, (double)i * 100 / BUSY_REPORTS, NULL);
        aj_ctx_count(ctx, "items", 1);
        if (i % 4000 == 0) {
            aj__sleep_ms(60); /* long enough for the heartbeat thread to flush meanwhile */
        }
    }
    return 0;
}

static void test_batched(void **state) {
    (void)state;
    aj_engine *e = open_engine();
    assert_int_equal(aj_register(e, "busy", busy_handler, NULL), 0);
    aj_stats before;
    assert_int_equal(aj_stats_get(e, &before), 0);
    start(e);
    uint64_t id = submit(e, "busy", NULL, 1);
    wait_final(e, id, AJ_STATE_COMPLETED);
    assert_int_equal(aj_workers_stop(e), 0);
    aj_stats after;
    assert_int_equal(aj_stats_get(e, &after), 0);
    aj_progress *p = progress(e, id);
    assert_int_equal(counter(p, "items"), BUSY_REPORTS);
    assert_true(p->percent > 99.0);
    aj_progress_free(p);
    /* Submit, claim, a few flushes, the outcome: nowhere near one commit per report. */
    uint64_t commits = after.process.commits - before.process.commits;
    if (commits > 40) {
        fail_msg("%llu commits for %d progress reports", (unsigned long long)commits, BUSY_REPORTS);
    }
    aj_engine_close(e);
}

/* Attempt 1 counts 5 rows at step "first" and fails; attempt 2 counts 7 at step "second". */
static int retry_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    if (aj_ctx_attempt(ctx) == 1) {
        aj_ctx_step(ctx, "first");
        aj_ctx_count(ctx, "rows", 5);
        aj_ctx_progress(ctx, 60, "attempt one");
        return aj_ctx_fail(ctx, "try again", 0);
    }
    aj_ctx_step(ctx, "second");
    aj_ctx_count(ctx, "rows", 7);
    aj_ctx_progress(ctx, 30, "attempt two");
    /* Malformed lines are counted, never fatal; good ones still apply. */
    const char *lines[] = {"bogus", "progress 200", "count rows", "count rows 1", ""};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        aj_ctx_progress_line(ctx, lines[i], strlen(lines[i]));
    }
    return 0;
}

static void test_attempts_merge(void **state) {
    (void)state;
    aj_engine *e = open_engine();
    assert_int_equal(aj_register(e, "retry", retry_handler, NULL), 0);
    start(e);
    uint64_t id = submit(e, "retry", NULL, 2);
    wait_final(e, id, AJ_STATE_COMPLETED);
    aj_progress *p = progress(e, id);
    assert_int_equal(counter(p, "rows"), 13); /* 5 + 7 + 1: a G-counter per attempt */
    assert_true(p->percent == 60.0);          /* a max-register */
    assert_string_equal(p->step, "second");   /* the later attempt's stamp wins */
    assert_string_equal(p->message, "attempt two");
    assert_int_equal(p->malformed, 3);
    assert_int_equal(p->n_steps_done, 1);
    assert_string_equal(p->steps_done[0], "second");
    aj_progress_free(p);
    assert_int_equal(aj_workers_stop(e), 0);
    aj_engine_close(e);
}

static void test_shell_progress_fd(void **state) {
    (void)state;
    aj_engine *e = open_engine();
    assert_int_equal(aj_register_builtins(e), 0);
    start(e);
    const char *pl =
        "{\"argv\":[\"sh\",\"-c\",\"test \\\"$AJ_PROGRESS_FD\\\" = 3 || exit 9; "
        "echo 'step fetch' >&3; echo 'progress 25 fetching' >&3; echo 'count files 4' >&3; "
        "echo 'not a progress line' >&3; echo 'step unpack' >&3; echo 'count files 2' >&3; "
        "printf 'progress 75.5 almost' >&3; echo output\"]}";
    uint64_t id = submit(e, "shell", pl, 1);
    wait_final(e, id, AJ_STATE_COMPLETED);
    aj_progress *p = progress(e, id);
    assert_true(p->percent == 75.5); /* a last line without a newline counts too */
    assert_string_equal(p->message, "almost");
    assert_string_equal(p->step, "unpack");
    assert_int_equal(counter(p, "files"), 6);
    assert_int_equal(p->malformed, 1);
    assert_int_equal(p->n_steps_done, 2);
    aj_progress_free(p);
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(e, id, &j), 0);
    assert_string_equal((const char *)j->result,
                        "{\"exit_code\":0,\"signal\":0,\"output\":\"output\\n\"}");
    aj_job_free(j);
    assert_int_equal(aj_workers_stop(e), 0);
    aj_engine_close(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_visible_while_running),
        cmocka_unit_test(test_batched),
        cmocka_unit_test(test_attempts_merge),
        cmocka_unit_test(test_shell_progress_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
