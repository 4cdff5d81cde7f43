/*
 * test_workflow_mt.c — durable workflows end to end on SQLite with a real worker pool: steps,
 * activities, timers, signals, replay without re-execution, non-determinism parking and resume,
 * cancel, terminate, sagas, transactional steps, queries and the history's chain.
 */
#include "harness.h"

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

static atomic_int step_runs;
static atomic_int flip; /* changes the code of `changing` between runs */
static char order[64];
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;

static void note(char c) {
    pthread_mutex_lock(&order_mu);
    size_t n = strlen(order);
    if (n + 1 < sizeof order) {
        order[n] = c;
        order[n + 1] = '\0';
    }
    pthread_mutex_unlock(&order_mu);
}

static int add_one(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    atomic_fetch_add(&step_runs, 1);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", atoll(in.data ? in.data : "0") + 1);
    return aj_step_set_result(ctx, buf, (size_t)n);
}

static aj_bytes str_bytes(const char *s) {
    aj_bytes b = {s, strlen(s)};
    return b;
}

/* Copies step output into a NUL-terminated buffer. */
static const char *cstr(aj_bytes b, char *buf, size_t size) {
    snprintf(buf, size, "%.*s", (int)b.len, (const char *)b.data);
    return buf;
}

static int three_steps(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a, b, c;
    char t1[32], t2[32];
    AJ_TRY(aj_step(wf, "one", add_one, NULL, input, &a));
    AJ_TRY(aj_step(wf, "two", add_one, NULL, str_bytes(cstr(a, t1, sizeof t1)), &b));
    AJ_TRY(aj_step(wf, "three", add_one, NULL, str_bytes(cstr(b, t2, sizeof t2)), &c));
    return aj_wf_set_result(wf, c.data, c.len);
}

static int with_activity(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.queue = "acts";
    s.payload = input.data;
    s.payload_len = input.len;
    aj_bytes out;
    AJ_TRY(aj_activity(wf, "echo-it", &s, &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

static int sleepy(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a, b;
    AJ_TRY(aj_step(wf, "before", add_one, NULL, input, &a));
    AJ_TRY(aj_sleep(wf, 200));
    char t[32];
    AJ_TRY(aj_step(wf, "after", add_one, NULL, str_bytes(cstr(a, t, sizeof t)), &b));
    return aj_wf_set_result(wf, b.data, b.len);
}

static int do_step(aj_step_ctx *ctx, aj_bytes in, void *ud);

/* A saga whose compensation is a job (the echo built-in on queue "acts"). */
static int job_saga(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_job_spec s;
    aj_job_spec_init(&s);
    if (aj_saga_push_job(wf, NULL, &s) != AJ_EINVAL || aj_saga_push_job(wf, "x", &s) != AJ_EINVAL) {
        return aj_wf_fail(wf, "bad compensations accepted");
    }
    AJ_TRY(aj_step(wf, "A", do_step, NULL, str_bytes("A"), NULL));
    s.type = "echo";
    s.queue = "acts";
    s.payload = "\"undo-A\"";
    s.payload_len = strlen(s.payload);
    AJ_TRY(aj_saga_push_job(wf, "undo-A", &s));
    int rc = aj_step(wf, "C", do_step, NULL, str_bytes("C"), NULL);
    if (rc == AJ_SUSPEND) {
        return rc;
    }
    AJ_TRY(aj_saga_compensate(wf));
    return aj_wf_fail(wf, "step C failed");
}

static int waiter(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    int64_t timeout = atoll(input.data);
    aj_bytes sig;
    int rc = aj_wait_signal(wf, "go", timeout, &sig);
    if (rc == AJ_ETIMEDOUT) {
        return aj_wf_set_result(wf, "timeout", 7);
    }
    AJ_TRY(rc);
    return aj_wf_set_result(wf, sig.data, sig.len);
}

static int changing(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a;
    AJ_TRY(aj_step(wf, atomic_load(&flip) ? "renamed" : "original", add_one, NULL, input, &a));
    AJ_TRY(aj_wait_signal(wf, "continue", -1, NULL));
    return aj_wf_set_result(wf, a.data, a.len);
}

static int undo(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ctx;
    (void)ud;
    note(((const char *)in.data)[0]);
    return 0;
}

static int do_step(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    if (((const char *)in.data)[0] == 'C') {
        return aj_step_fail(ctx, "no stock", 1);
    }
    return 0;
}

static int saga(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    const char *steps[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) {
        int rc = aj_step(wf, steps[i], do_step, NULL, str_bytes(steps[i]), NULL);
        if (rc == AJ_SUSPEND) {
            return rc;
        }
        if (rc != 0) {
            AJ_TRY(aj_saga_compensate(wf));
            return aj_wf_fail(wf, "step failed");
        }
        char name[16];
        snprintf(name, sizeof name, "undo-%s", steps[i]);
        AJ_TRY(aj_saga_push(wf, name, undo, NULL, str_bytes(steps[i])));
    }
    return 0;
}

static int put_record(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    return aj_step_put(ctx, "balance", 7, in.data, in.len);
}

static int get_record(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)in;
    (void)ud;
    aj_bytes v;
    AJ_TRY(aj_step_get(ctx, "balance", 7, &v));
    return aj_step_set_result(ctx, v.data, v.len);
}

static int transactional(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes out;
    AJ_TRY(aj_step(wf, "put", put_record, NULL, input, NULL));
    AJ_TRY(aj_step(wf, "get", get_record, NULL, str_bytes(""), &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

typedef struct status {
    int stage;
} status;

static int status_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)arg;
    status *s = ud;
    *out = malloc(32);
    *len = (size_t)snprintf(*out, 32, "stage %d", s->stage);
    return 0;
}

static int queried(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    status s = {0};
    AJ_TRY(aj_wf_set_query(wf, "status", status_query, &s));
    AJ_TRY(aj_step(wf, "first", add_one, NULL, input, NULL));
    s.stage = 1;
    AJ_TRY(aj_wait_signal(wf, "finish", -1, NULL));
    s.stage = 2;
    return 0;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/wf.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_register_builtins(f->e), 0);
    assert_int_equal(aj_workflow_register(f->e, "three", three_steps, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "activity", with_activity, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "sleepy", sleepy, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "waiter", waiter, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "changing", changing, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "my-saga", saga, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "job-saga", job_saga, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "tx", transactional, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "queried", queried, NULL), 0);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    atomic_store(&step_runs, 0);
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

static char *start(fixture *f, const char *type, const char *id, const char *input) {
    aj_wf_start_opts o = {id, 0, 0};
    char *out = NULL;
    int rc = aj_wf_start(f->e, type, input, strlen(input), &o, &out);
    if (rc != 0) {
        fail_msg("start %s: %s", type, aj_errmsg());
    }
    return out;
}

static aj_wf_info *finish(fixture *f, const char *id, aj_wf_state want) {
    aj_wf_state st;
    assert_int_equal(aj_wf_wait(f->e, id, 20000, &st), 0);
    aj_wf_info *info;
    assert_int_equal(aj_wf_get(f->e, id, &info), 0);
    if (st != want) {
        fail_msg("workflow %s ended %s (%s), wanted %s", id, aj_wf_state_name(st),
                 info->error ? info->error : "", aj_wf_state_name(want));
    }
    return info;
}

typedef struct events {
    char types[64][32];
    char names[64][32];
    size_t n;
    uint64_t prev;
    int chain_ok;
} events;

static int collect(void *ud, const aj_wf_event *ev) {
    events *x = ud;
    if (ev->prev_id != x->prev || ev->seq != x->n + 1) {
        x->chain_ok = 0;
    }
    x->prev = ev->id;
    if (x->n < 64) {
        snprintf(x->types[x->n], 32, "%s", ev->type);
        snprintf(x->names[x->n], 32, "%s", ev->name);
    }
    x->n++;
    return 0;
}

static events history(fixture *f, const char *id) {
    events x;
    memset(&x, 0, sizeof x);
    x.chain_ok = 1;
    assert_int_equal(aj_wf_history(f->e, id, 0, collect, &x), 0);
    assert_true(x.chain_ok);
    return x;
}

static size_t count_type(const events *x, const char *type) {
    size_t n = 0;
    for (size_t i = 0; i < x->n && i < 64; i++) {
        n += strcmp(x->types[i], type) == 0;
    }
    return n;
}

static void test_three_steps(void **state) {
    fixture *f = *state;
    char *id = start(f, "three", "w-three", "0");
    assert_string_equal(id, "w-three");
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "3");
    aj_wf_info_free(info);
    events x = history(f, id);
    assert_int_equal(x.n, 5);
    assert_string_equal(x.types[0], "workflow_started");
    assert_string_equal(x.types[1], "step_completed");
    assert_string_equal(x.names[1], "one");
    assert_string_equal(x.types[4], "workflow_completed");
    assert_int_equal(atomic_load(&step_runs), 3);
    /* The same id cannot start again unless asked. */
    aj_wf_start_opts o = {"w-three", 0, 0};
    assert_int_equal(aj_wf_start(f->e, "three", "0", 1, &o, NULL), AJ_EEXISTS);
    o.allow_rerun = 1;
    assert_int_equal(aj_wf_start(f->e, "three", "5", 1, &o, NULL), 0);
    info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "8");
    assert_int_equal(info->run, 2);
    aj_wf_info_free(info);
    free(id);
}

static void test_activity(void **state) {
    fixture *f = *state;
    char *id = start(f, "activity", NULL, "{\"x\":1}");
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "{\"x\":1}");
    aj_wf_info_free(info);
    events x = history(f, id);
    assert_int_equal(count_type(&x, "activity_scheduled"), 1);
    assert_int_equal(count_type(&x, "activity_started"), 1);
    assert_int_equal(count_type(&x, "activity_completed"), 1);
    free(id);
}

/* This process's counters once field `off` of them reached `want` (counts are added just after
 * the commit a waiter may already have seen), or as they are after 5 s. */
static aj_counters counters_at_least(fixture *f, size_t off, uint64_t want) {
    aj_stats st;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(aj_stats_get(f->e, &st), 0);
        uint64_t v;
        memcpy(&v, (const char *)&st.process + off, sizeof v);
        if (v >= want) {
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return st.process;
}

static uint64_t hist_total(const uint64_t *h) {
    uint64_t n = 0;
    for (int i = 0; i < AJ_HIST_BUCKETS; i++) {
        n += h[i];
    }
    return n;
}

static void test_timer_no_reexecution(void **state) {
    fixture *f = *state;
    char *id = start(f, "sleepy", "w-sleepy", "10");
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "12");
    aj_wf_info_free(info);
    events x = history(f, id);
    assert_int_equal(count_type(&x, "timer_scheduled"), 1);
    assert_int_equal(count_type(&x, "timer_fired"), 1);
    aj_counters c = counters_at_least(f, offsetof(aj_counters, wf_timers_fired), 1);
    assert_int_equal(c.wf_timers_scheduled, 1);
    assert_int_equal(c.wf_timers_fired, 1);
    assert_int_equal(hist_total(c.wf_timer_lag_hist), 1);
    assert_true(c.txn_attempts > 0);
    /* The first step ran once although the workflow ran again after the timer. */
    assert_int_equal(atomic_load(&step_runs), 2);
    free(id);
}

static void test_signal_and_timeout(void **state) {
    fixture *f = *state;
    char *id = start(f, "waiter", "w-sig", "10000");
    usleep(100000);
    assert_int_equal(aj_wf_signal(f->e, id, "go", "\"hello\"", 7), 0);
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "\"hello\"");
    aj_wf_info_free(info);
    events x = history(f, id);
    assert_int_equal(count_type(&x, "signal_received"), 1);
    assert_int_equal(count_type(&x, "timer_cancelled"), 1);
    free(id);
    id = start(f, "waiter", "w-timeout", "100");
    info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "timeout");
    aj_wf_info_free(info);
    assert_int_equal(aj_wf_signal(f->e, id, "go", "1", 1), AJ_ESTATE);
    assert_int_equal(aj_wf_signal(f->e, "nobody", "go", "1", 1), AJ_ENOTFOUND);
    free(id);
}

static void test_nondeterminism_parks(void **state) {
    fixture *f = *state;
    atomic_store(&flip, 0);
    char *id = start(f, "changing", "w-change", "1");
    /* Wait until the first step is recorded, then change the code. */
    for (int i = 0; i < 200; i++) {
        aj_wf_info *info;
        assert_int_equal(aj_wf_get(f->e, id, &info), 0);
        uint64_t n = info->events;
        aj_wf_info_free(info);
        if (n >= 2) {
            break;
        }
        usleep(10000);
    }
    atomic_store(&flip, 1);
    assert_int_equal(aj_wf_signal(f->e, id, "continue", "", 0), 0);
    aj_wf_info *info = finish(f, id, AJ_WF_PARKED);
    assert_non_null(strstr(info->error, "original"));
    assert_non_null(strstr(info->error, "renamed"));
    aj_wf_info_free(info);
    atomic_store(&flip, 0); /* the code is fixed */
    assert_int_equal(aj_wf_resume(f->e, id), 0);
    info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "2");
    aj_wf_info_free(info);
    assert_int_equal(aj_wf_resume(f->e, id), AJ_ESTATE);
    free(id);
}

static void test_cancel_and_terminate(void **state) {
    fixture *f = *state;
    char *id = start(f, "waiter", "w-cancel", "-1");
    usleep(100000);
    assert_int_equal(aj_wf_cancel(f->e, id), 0);
    aj_wf_info *info = finish(f, id, AJ_WF_CANCELLED);
    aj_wf_info_free(info);
    free(id);
    id = start(f, "waiter", "w-term", "-1");
    assert_int_equal(aj_wf_terminate(f->e, id, "operator said so"), 0);
    info = finish(f, id, AJ_WF_TERMINATED);
    assert_string_equal(info->error, "operator said so");
    aj_wf_info_free(info);
    assert_int_equal(aj_wf_terminate(f->e, id, NULL), AJ_ESTATE);
    free(id);
}

static void test_saga_compensates_in_reverse(void **state) {
    fixture *f = *state;
    order[0] = '\0';
    char *id = start(f, "my-saga", "w-saga", "");
    aj_wf_info *info = finish(f, id, AJ_WF_COMPENSATED);
    aj_wf_info_free(info);
    assert_string_equal(order, "BA");
    events x = history(f, id);
    assert_int_equal(count_type(&x, "compensation_started"), 2);
    assert_int_equal(count_type(&x, "compensation_completed"), 2);
    assert_int_equal(count_type(&x, "step_failed"), 1);
    aj_counters c = counters_at_least(f, offsetof(aj_counters, wf_sagas_compensated), 1);
    assert_int_equal(c.wf_sagas_started, 1);
    assert_int_equal(c.wf_sagas_compensated, 1);
    assert_int_equal(c.wf_sagas_completed, 0);
    assert_int_equal(c.wf_compensation_failures, 0);
    free(id);
}

static void test_saga_job_compensation(void **state) {
    fixture *f = *state;
    char *id = start(f, "job-saga", "w-job-saga", "");
    aj_wf_info *info = finish(f, id, AJ_WF_COMPENSATED);
    aj_wf_info_free(info);
    events x = history(f, id);
    assert_int_equal(count_type(&x, "compensation_started"), 1);
    assert_int_equal(count_type(&x, "compensation_completed"), 1);
    aj_counters c = counters_at_least(f, offsetof(aj_counters, wf_sagas_compensated), 1);
    assert_int_equal(c.wf_sagas_started, 1);
    free(id);
}

static void test_transactional_step(void **state) {
    fixture *f = *state;
    char *id = start(f, "tx", "w-tx", "42");
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "42");
    aj_wf_info_free(info);
    free(id);
}

static void test_query(void **state) {
    fixture *f = *state;
    char *id = start(f, "queried", "w-query", "1");
    char *out = NULL;
    size_t len = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(aj_wf_query(f->e, id, "status", &out, &len), 0);
        if (strcmp(out, "stage 1") == 0) {
            break;
        }
        free(out);
        out = NULL;
        usleep(10000);
    }
    assert_non_null(out);
    assert_string_equal(out, "stage 1");
    free(out);
    assert_int_equal(aj_wf_query(f->e, id, "nope", &out, &len), AJ_ENOTFOUND);
    assert_int_equal(aj_wf_signal(f->e, id, "finish", "", 0), 0);
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    aj_wf_info_free(info);
    free(id);
}

static int sleepy_renamed(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a;
    AJ_TRY(aj_step(wf, "before", add_one, NULL, input, &a));
    AJ_TRY(aj_sleep(wf, 200));
    AJ_TRY(aj_step(wf, "afterwards", add_one, NULL, a, NULL)); /* was "after" */
    return 0;
}

static int sleepy_shorter(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    return aj_step(wf, "before", add_one, NULL, input, NULL);
}

static void test_replay_check(void **state) {
    fixture *f = *state;
    char *id = start(f, "sleepy", "w-check", "1");
    aj_wf_info_free(finish(f, id, AJ_WF_COMPLETED));
    int runs = atomic_load(&step_runs);
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, id, sleepy, NULL, &report), 0);
    assert_null(report);
    assert_int_equal(aj_wf_replay_check(f->e, id, sleepy_renamed, NULL, &report), AJ_ESTATE);
    assert_non_null(strstr(report, "'after'"));
    assert_non_null(strstr(report, "'afterwards'"));
    aj_free(report);
    assert_int_equal(aj_wf_replay_check(f->e, id, sleepy_shorter, NULL, &report), AJ_ESTATE);
    assert_non_null(strstr(report, "the code returned"));
    aj_free(report);
    assert_int_equal(atomic_load(&step_runs), runs); /* replay ran no step */
    free(id);
}

static void test_timeout_and_signal_with_start(void **state) {
    fixture *f = *state;
    aj_wf_start_opts o = {"w-slow", 0, 200};
    assert_int_equal(aj_wf_start(f->e, "waiter", "-1", 2, &o, NULL), 0);
    aj_wf_info *info = finish(f, "w-slow", AJ_WF_TIMED_OUT);
    aj_wf_info_free(info);
    /* Signal-with-start: starts the workflow and delivers the signal in one call. */
    assert_int_equal(
        aj_wf_signal_with_start(f->e, "waiter", "w-sws", "10000", 5, "go", "\"hi\"", 4), 0);
    info = finish(f, "w-sws", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "\"hi\"");
    aj_wf_info_free(info);
}

static void test_bad_input(void **state) {
    fixture *f = *state;
    aj_wf_start_opts o = {"bad id", 0, 0};
    assert_int_equal(aj_wf_start(f->e, "three", "1", 1, &o, NULL), AJ_EINVAL);
    o.id = "ok";
    assert_int_equal(aj_wf_start(f->e, "-bad", "1", 1, &o, NULL), AJ_EINVAL);
    char *big = calloc(1, AJ_WF_DATA_MAX + 1);
    assert_int_equal(aj_wf_start(f->e, "three", big, AJ_WF_DATA_MAX + 1, &o, NULL), AJ_ETOOBIG);
    free(big);
    aj_wf_info *info;
    assert_int_equal(aj_wf_get(f->e, "ok", &info), AJ_ENOTFOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_no_reexecution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nondeterminism_parks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saga_compensates_in_reverse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saga_job_compensation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactional_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_signal_with_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests_name("workflow", tests, NULL, NULL);
}
