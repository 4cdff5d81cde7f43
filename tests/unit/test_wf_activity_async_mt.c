/*
 * test_wf_activity_async_mt.c — activities started now and awaited later (aj_activity_start,
 * aj_activity_wait) end to end on SQLite with a real worker pool: a fan-out of 50 activities
 * awaited in order and in reverse order, one failing, a replay of the finished history giving
 * the same results, a cancel during the waits (every job cancelled, the run ends once their
 * outcomes are in), and bad input (unknown name, duplicate name, no job type).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FANOUT 50
#define BLOCKERS 3

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

static int blocked_running; /* blocking jobs currently in their handler */

static long long to_ll(const void *p, size_t n) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)n, (const char *)p);
    return atoll(buf);
}

/* Job "dbl": doubles its payload; the payload "fail" fails for good. */
static int dbl_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    if (job->payload_len == 4 && memcmp(job->payload, "fail", 4) == 0) {
        return aj_ctx_fail(ctx, "asked to fail", 1);
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", 2 * to_ll(job->payload, job->payload_len));
    return aj_ctx_set_result(ctx, buf, (size_t)n);
}

/* Job "block": runs until it is cancelled (at most a minute, so a broken cancel fails). */
static int block_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    __atomic_add_fetch(&blocked_running, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 6000 && !aj_ctx_should_stop(ctx); i++) {
        usleep(10000);
    }
    __atomic_sub_fetch(&blocked_running, 1, __ATOMIC_SEQ_CST);
    return aj_ctx_fail(ctx, "stopped", 1);
}

static void spec_of(aj_job_spec *s, const char *type, const char *payload) {
    aj_job_spec_init(s);
    s->type = type;
    s->payload = payload;
    s->payload_len = strlen(payload);
    s->max_attempts = 1;
}

/* Starts FANOUT "dbl" activities a0..a49 (payload i), then waits for each: in order, or in
 * reverse order when the input is "rev". The result is the sum; ud (may be NULL) receives it. */
static int fan(aj_wf *wf, aj_bytes input, void *ud) {
    char name[32], in[32];
    for (int i = 0; i < FANOUT; i++) {
        snprintf(name, sizeof name, "a%d", i);
        snprintf(in, sizeof in, "%d", i);
        aj_job_spec s;
        spec_of(&s, "dbl", in);
        AJ_TRY(aj_activity_start(wf, name, &s));
    }
    int rev = input.len == 3 && memcmp(input.data, "rev", 3) == 0;
    long long sum = 0;
    for (int k = 0; k < FANOUT; k++) {
        snprintf(name, sizeof name, "a%d", rev ? FANOUT - 1 - k : k);
        aj_bytes out;
        AJ_TRY(aj_activity_wait(wf, name, &out));
        sum += to_ll(out.data, out.len);
    }
    if (ud != NULL) {
        *(long long *)ud = sum;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", sum);
    return aj_wf_set_result(wf, buf, (size_t)n);
}

/* The same history read by code that starts other activities: must diverge. */
static int fan_renamed(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_job_spec s;
    spec_of(&s, "dbl", "0");
    AJ_TRY(aj_activity_start(wf, "b0", &s));
    return aj_activity_wait(wf, "b0", NULL);
}

/* Three activities, the middle one failing; the waits report each outcome. */
static int fan_fail(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    const char *payloads[3] = {"1", "fail", "3"};
    char name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "f%d", i);
        aj_job_spec s;
        spec_of(&s, "dbl", payloads[i]);
        AJ_TRY(aj_activity_start(wf, name, &s));
    }
    char report[512] = "";
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "f%d", i);
        aj_bytes out;
        int rc = aj_activity_wait(wf, name, &out);
        size_t at = strlen(report);
        if (rc == 0) {
            snprintf(report + at, sizeof report - at, "%s=%.*s;", name, (int)out.len,
                     (const char *)out.data);
        } else if (rc == AJ_EFAILED) {
            snprintf(report + at, sizeof report - at, "%s!%s;", name, aj_errmsg());
        } else {
            return rc;
        }
    }
    return aj_wf_set_result(wf, report, strlen(report));
}

/* BLOCKERS jobs that run until cancelled; every one is awaited, so a cancel of the run cancels
 * each job and the run ends once all their outcomes are in. */
static int fan_block(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    char name[16];
    for (int i = 0; i < BLOCKERS; i++) {
        snprintf(name, sizeof name, "b%d", i);
        aj_job_spec s;
        spec_of(&s, "block", "");
        AJ_TRY(aj_activity_start(wf, name, &s));
    }
    int suspended = 0, cancelled = 0, other = 0;
    for (int i = 0; i < BLOCKERS; i++) {
        snprintf(name, sizeof name, "b%d", i);
        int rc = aj_activity_wait(wf, name, NULL);
        if (rc == AJ_SUSPEND) {
            suspended = 1;
        } else if (rc == AJ_ECANCELLED) {
            cancelled = 1;
        } else if (rc != 0 && other == 0) {
            other = rc;
        }
    }
    if (other != 0 || suspended || cancelled) {
        return other != 0 ? other : suspended ? AJ_SUSPEND : AJ_ECANCELLED;
    }
    return aj_wf_set_result(wf, "all done", 8);
}

/* The bad calls, each refused without recording anything. */
static int bad(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_job_spec s;
    spec_of(&s, "dbl", "1");
    aj_job_spec none;
    aj_job_spec_init(&none);
    char long_name[600];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    if (aj_activity_start(wf, "", &s) != AJ_EINVAL ||
        aj_activity_start(wf, NULL, &s) != AJ_EINVAL ||
        aj_activity_start(wf, "a\nb", &s) != AJ_EINVAL ||
        aj_activity_start(wf, long_name, &s) != AJ_EINVAL ||
        aj_activity_start(wf, "k", NULL) != AJ_EINVAL ||
        aj_activity_start(wf, "k", &none) != AJ_EINVAL ||
        aj_activity_wait(wf, "never", NULL) != AJ_EINVAL ||
        aj_activity_wait(wf, "", NULL) != AJ_EINVAL) {
        return aj_wf_fail(wf, "bad input was accepted");
    }
    AJ_TRY(aj_activity_start(wf, "k", &s));
    if (aj_activity_start(wf, "k", &s) != AJ_EEXISTS) {
        return aj_wf_fail(wf, "a second activity of the same name was accepted");
    }
    aj_bytes out;
    AJ_TRY(aj_activity_wait(wf, "k", &out));
    /* Waiting again for a finished activity answers the same. */
    aj_bytes again;
    AJ_TRY(aj_activity_wait(wf, "k", &again));
    if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0) {
        return aj_wf_fail(wf, "a second wait answered differently");
    }
    return aj_wf_set_result(wf, out.data, out.len);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/wf.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_register(f->e, "dbl", dbl_handler, NULL), 0);
    assert_int_equal(aj_register(f->e, "block", block_handler, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "fan", fan, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "fan-fail", fan_fail, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "fan-block", fan_block, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "bad", bad, NULL), 0);
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = 8;
    assert_int_equal(aj_workers_start(f->e, &wo), 0);
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

typedef struct counts {
    size_t scheduled, completed, failed;
    size_t completed_before_last_scheduled; /* outcomes seen before every job was started */
} counts;

static int count_cb(void *ud, const aj_wf_event *ev) {
    counts *c = ud;
    if (strcmp(ev->type, "activity_scheduled") == 0) {
        c->scheduled++;
        c->completed_before_last_scheduled = c->completed + c->failed;
    }
    c->completed += strcmp(ev->type, "activity_completed") == 0;
    c->failed += strcmp(ev->type, "activity_failed") == 0;
    return 0;
}

static counts history(fixture *f, const char *id) {
    counts c;
    memset(&c, 0, sizeof c);
    assert_int_equal(aj_wf_history(f->e, id, 0, count_cb, &c), 0);
    return c;
}

static void check_fan(fixture *f, const char *id, const char *input) {
    aj_test_wf_start(f->e, "fan", id, input);
    aj_wf_info *info = aj_test_wf_finish(f->e, id, AJ_WF_COMPLETED);
    char want[32];
    snprintf(want, sizeof want, "%d", FANOUT * (FANOUT - 1)); /* sum of 2*i for i < FANOUT */
    assert_string_equal(info->result, want);
    aj_wf_info_free(info);
    counts c = history(f, id);
    assert_int_equal(c.scheduled, FANOUT);
    assert_int_equal(c.completed, FANOUT);
    assert_int_equal(c.failed, 0);
    /* Every job was started in the first task, before any outcome came in. */
    assert_int_equal(c.completed_before_last_scheduled, 0);
}

static void test_fanout_in_order(void **state) {
    check_fan(*state, "fwd", "fwd");
}

static void test_fanout_reverse(void **state) {
    check_fan(*state, "rev", "rev");
}

static void test_replay_same_results(void **state) {
    fixture *f = *state;
    check_fan(f, "r1", "rev");
    long long sum = -1;
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "r1", fan, &sum, &report), 0);
    aj_free(report);
    assert_int_equal(sum, FANOUT * (FANOUT - 1));
    /* Code that starts other activities is caught. */
    report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "r1", fan_renamed, NULL, &report), AJ_ESTATE);
    assert_non_null(report);
    assert_non_null(strstr(report, "b0"));
    aj_free(report);
}

static void test_one_failing(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "fan-fail", "ff", "");
    aj_wf_info *info = aj_test_wf_finish(f->e, "ff", AJ_WF_COMPLETED);
    assert_non_null(strstr(info->result, "f0=2;"));
    assert_non_null(strstr(info->result, "f1!activity 'f1' failed: "));
    assert_non_null(strstr(info->result, "asked to fail"));
    assert_non_null(strstr(info->result, "f2=6;"));
    aj_wf_info_free(info);
    counts c = history(f, "ff");
    assert_int_equal(c.scheduled, 3);
    assert_int_equal(c.completed, 2);
    assert_int_equal(c.failed, 1);
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "ff", fan_fail, NULL, &report), 0);
    aj_free(report);
}

static void test_cancel_during_waits(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "fan-block", "fb", "");
    for (int i = 0; i < 6000 && __atomic_load_n(&blocked_running, __ATOMIC_SEQ_CST) < BLOCKERS;
         i++) {
        usleep(10000);
    }
    assert_int_equal(__atomic_load_n(&blocked_running, __ATOMIC_SEQ_CST), BLOCKERS);
    assert_int_equal(aj_wf_cancel(f->e, "fb"), 0);
    aj_wf_info_free(aj_test_wf_finish(f->e, "fb", AJ_WF_CANCELLED));
    /* Every job's outcome reached the run before it ended: each one was cancelled. */
    counts c = history(f, "fb");
    assert_int_equal(c.scheduled, BLOCKERS);
    assert_int_equal(c.completed, 0);
    assert_true(c.failed >= BLOCKERS);
    for (int i = 0; i < 6000 && __atomic_load_n(&blocked_running, __ATOMIC_SEQ_CST) > 0; i++) {
        usleep(10000);
    }
    assert_int_equal(__atomic_load_n(&blocked_running, __ATOMIC_SEQ_CST), 0);
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "fb", fan_block, NULL, &report), 0);
    aj_free(report);
}

static void test_bad_input(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "bad", "bad", "");
    aj_wf_info *info = aj_test_wf_finish(f->e, "bad", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "2");
    aj_wf_info_free(info);
    counts c = history(f, "bad");
    assert_int_equal(c.scheduled, 1);
    assert_int_equal(c.completed, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fanout_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_reverse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_same_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_failing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
