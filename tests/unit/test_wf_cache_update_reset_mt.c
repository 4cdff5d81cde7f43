/*
 * test_wf_cache_update_reset_mt.c — the activity result cache (hits recorded as executions and
 * replayed, also after the entry expired; workflow and global scope; counters and collection),
 * workflow updates (accepted ones recorded and replayed, rejected ones leaving no trace, failing
 * handlers, bad input) and reset (completed steps before the reset point not run again, the rest
 * run again; a running run terminated; bad reset points refused). SQLite, a real worker pool and
 * a simulated clock, moved only to expire cache entries.
 */
#include "harness.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct fixture {
    char *dir;
    aj_engine *e;
    aj_test_clock clock;
} fixture;

static atomic_int job_runs;
static atomic_int runs_one, runs_two, runs_three;

static aj_bytes str_bytes(const char *s) {
    aj_bytes b = {s, strlen(s)};
    return b;
}

/* The activity job: echoes its payload, counting runs. */
static int counting_echo(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    atomic_fetch_add(&job_runs, 1);
    return aj_ctx_set_result(ctx, job->payload, job->payload_len);
}

/* Input "SCOPE VERSION PAYLOAD": one cached activity, then waits for signal "go". */
static int cached(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    char scope[8] = "", version[32] = "", payload[64] = "";
    char in[128];
    snprintf(in, sizeof in, "%.*s", (int)input.len, (const char *)input.data);
    if (sscanf(in, "%7s %31s %63s", scope, version, payload) != 3) {
        return aj_wf_fail(wf, "bad input");
    }
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "counting-echo";
    s.queue = "acts";
    s.payload = payload;
    s.payload_len = strlen(payload);
    /* Version "ttl0" asks for an invalid TTL. */
    aj_activity_cache c = {version, scope[0] == 'g', strcmp(version, "ttl0") == 0 ? 0 : AJ_HOUR};
    aj_bytes out;
    AJ_TRY(aj_activity_cached(wf, "fetch", &s, &c, &out));
    AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    return aj_wf_set_result(wf, out.data, out.len);
}

/* Updates: "add" adds a number to a total (the validator refuses what is not a positive
 * number; the handler fails on 13); "done" ends the run with the total. */
typedef struct tally {
    long total;
} tally;

static int add_validate(void *ud, aj_bytes arg, char **out_error) {
    (void)ud;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)arg.len, (const char *)arg.data);
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    if (end == buf || *end != '\0' || v <= 0) {
        *out_error = strdup("the amount must be a positive number");
        return AJ_EINVAL;
    }
    return 0;
}

static int add_handler(void *ud, aj_bytes arg, char **out, size_t *len) {
    tally *t = ud;
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)arg.len, (const char *)arg.data);
    long v = atol(buf);
    if (v == 13) {
        return AJ_EINVAL; /* an unlucky amount: the update fails, and is recorded as failed */
    }
    t->total += v;
    *out = malloc(32);
    *len = (size_t)snprintf(*out, 32, "%ld", t->total);
    return 0;
}

static int total_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)arg;
    tally *t = ud;
    *out = malloc(32);
    *len = (size_t)snprintf(*out, 32, "%ld", t->total);
    return 0;
}

static int updatable(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    tally t = {0};
    AJ_TRY(aj_wf_set_update(wf, "add", add_validate, add_handler, &t));
    AJ_TRY(aj_wf_set_query(wf, "total", total_query, &t));
    AJ_TRY(aj_wait_signal(wf, "done", -1, NULL));
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld", t.total);
    return aj_wf_set_result(wf, buf, (size_t)n);
}

static int count_step(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    atomic_fetch_add((atomic_int *)ud, 1);
    return aj_step_set_result(ctx, in.data, in.len);
}

/* Three steps, then (input "wait") a signal. */
static int stepper(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    AJ_TRY(aj_step(wf, "one", count_step, &runs_one, str_bytes("1"), NULL));
    AJ_TRY(aj_step(wf, "two", count_step, &runs_two, str_bytes("2"), NULL));
    if (input.len == 4 && memcmp(input.data, "wait", 4) == 0) {
        AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    }
    AJ_TRY(aj_step(wf, "three", count_step, &runs_three, str_bytes("3"), NULL));
    return aj_wf_set_result(wf, "done", 4);
}

static atomic_int release_blocker;

/* A job that runs until the test releases it (at most 20 s). */
static int blocker(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    for (int i = 0; i < 4000 && !atomic_load(&release_blocker); i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return aj_ctx_set_result(ctx, "released", 8);
}

/* A step, then an activity that blocks. */
static int blocked(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(aj_step(wf, "one", count_step, &runs_one, str_bytes("1"), NULL));
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "blocker";
    s.queue = "acts";
    aj_bytes out;
    AJ_TRY(aj_activity(wf, "block", &s, &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    aj_test_clock_init(&f->clock, (int64_t)time(NULL) * 1000);
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/wf.db", f->dir);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &f->clock.clock;
    assert_int_equal(aj_engine_open(&f->e, url, &o), 0);
    assert_int_equal(aj_register(f->e, "counting-echo", counting_echo, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "cached", cached, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "updatable", updatable, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "stepper", stepper, NULL), 0);
    assert_int_equal(aj_register(f->e, "blocker", blocker, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "blocked", blocked, NULL), 0);
    atomic_store(&release_blocker, 0);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    atomic_store(&job_runs, 0);
    atomic_store(&runs_one, 0);
    atomic_store(&runs_two, 0);
    atomic_store(&runs_three, 0);
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

static void start(fixture *f, const char *type, const char *id, const char *input, int rerun) {
    aj_wf_start_opts o = {id, rerun, 0};
    if (aj_wf_start(f->e, type, input, strlen(input), &o, NULL) != 0) {
        fail_msg("start %s: %s", id, aj_errmsg());
    }
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

static void finish_with(fixture *f, const char *id, const char *result) {
    aj_wf_info *info = finish(f, id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, result);
    aj_wf_info_free(info);
}

typedef struct events {
    size_t n;
    char types[64][32];
    char names[64][32];
    uint64_t aux[64];
} events;

static int collect(void *ud, const aj_wf_event *ev) {
    events *x = ud;
    if (x->n < 64) {
        snprintf(x->types[x->n], 32, "%s", ev->type);
        snprintf(x->names[x->n], 32, "%s", ev->name);
        x->aux[x->n] = ev->aux;
    }
    x->n++;
    return 0;
}

static events history(fixture *f, const char *id, uint32_t run) {
    events x;
    memset(&x, 0, sizeof x);
    assert_int_equal(aj_wf_history(f->e, id, run, collect, &x), 0);
    return x;
}

static size_t count_type(const events *x, const char *type) {
    size_t n = 0;
    for (size_t i = 0; i < x->n && i < 64; i++) {
        n += strcmp(x->types[i], type) == 0;
    }
    return n;
}

/* 1 when the history has an activity_completed served from the cache. */
static int cached_completion(const events *x) {
    for (size_t i = 0; i < x->n && i < 64; i++) {
        if (strcmp(x->types[i], "activity_completed") == 0 && (x->aux[i] & AJ_WF_EVENT_CACHED)) {
            return 1;
        }
    }
    return 0;
}

/* Waits until the run has recorded `type` (the workflow reached a point). */
static void wait_for_event(fixture *f, const char *id, const char *type) {
    for (int i = 0; i < 2000; i++) {
        events x = history(f, id, 0);
        if (count_type(&x, type) > 0) {
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("workflow %s never recorded %s", id, type);
}

/* This process's counters are added right after the transaction that counted commits, so a
 * reader that saw the commit may look before they are: wait until the counter gets there. */
static uint64_t counter(fixture *f, size_t offset, uint64_t want) {
    uint64_t v = 0;
    for (int i = 0; i < 2000; i++) {
        aj_stats st;
        assert_int_equal(aj_stats_get(f->e, &st), 0);
        memcpy(&v, (const char *)&st.process + offset, sizeof v);
        if (v >= want) {
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return v;
}
#define COUNTER(f, field, want) counter(f, offsetof(aj_counters, field), want)

static void run_to_end(fixture *f, const char *id, const char *result) {
    wait_for_event(f, id, "activity_completed");
    assert_int_equal(aj_wf_signal(f->e, id, "go", "", 0), 0);
    finish_with(f, id, result);
}

static void test_cache_hit_recorded_and_replayed(void **state) {
    fixture *f = *state;
    /* A miss runs the job and fills the entry with its completion. */
    start(f, "cached", "c-1", "w v1 abc", 0);
    run_to_end(f, "c-1", "abc");
    assert_int_equal(atomic_load(&job_runs), 1);
    events x = history(f, "c-1", 0);
    assert_int_equal(count_type(&x, "activity_started"), 1);
    assert_false(cached_completion(&x));
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.activity_cache_entries, 1);
    assert_int_equal(COUNTER(f, activity_cache_misses, 1), 1);
    assert_int_equal(COUNTER(f, activity_cache_fills, 1), 1);

    /* A new run of the same id hits: no job, the hit recorded like an execution. */
    start(f, "cached", "c-1", "w v1 abc", 1);
    wait_for_event(f, "c-1", "activity_completed");
    assert_int_equal(atomic_load(&job_runs), 1);
    x = history(f, "c-1", 0);
    assert_int_equal(count_type(&x, "activity_scheduled"), 1);
    assert_int_equal(count_type(&x, "activity_started"), 0);
    assert_true(cached_completion(&x));
    assert_int_equal(COUNTER(f, activity_cache_hits, 1), 1);

    /* The entry expires and is collected while the run waits; its replay still answers from
     * the history, without running the job. */
    aj_test_clock_advance(&f->clock, 2 * AJ_HOUR);
    for (int i = 0; i < 4000; i++) { /* the engine's collector runs within about a second */
        assert_int_equal(aj_stats_get(f->e, &st), 0);
        if (st.activity_cache_entries == 0) {
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(st.activity_cache_entries, 0);
    assert_int_equal(COUNTER(f, activity_cache_expired, 1), 1);
    assert_int_equal(aj_wf_signal(f->e, "c-1", "go", "", 0), 0);
    finish_with(f, "c-1", "abc");
    assert_int_equal(atomic_load(&job_runs), 1);
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "c-1", cached, NULL, &report), 0);
    assert_null(report);

    /* After expiry the next run misses again. */
    start(f, "cached", "c-1", "w v1 abc", 1);
    run_to_end(f, "c-1", "abc");
    assert_int_equal(atomic_load(&job_runs), 2);
}

static void test_cache_scopes(void **state) {
    fixture *f = *state;
    /* Workflow scope: another id does not see c-a's entry. */
    start(f, "cached", "c-a", "w v1 xyz", 0);
    run_to_end(f, "c-a", "xyz");
    start(f, "cached", "c-b", "w v1 xyz", 0);
    run_to_end(f, "c-b", "xyz");
    assert_int_equal(atomic_load(&job_runs), 2);
    /* Global scope: the second id hits. */
    start(f, "cached", "g-a", "g v1 xyz", 0);
    run_to_end(f, "g-a", "xyz");
    assert_int_equal(atomic_load(&job_runs), 3);
    start(f, "cached", "g-b", "g v1 xyz", 0);
    run_to_end(f, "g-b", "xyz");
    assert_int_equal(atomic_load(&job_runs), 3);
    events x = history(f, "g-b", 0);
    assert_true(cached_completion(&x));
    /* Another declared version or another input is another entry. */
    start(f, "cached", "g-c", "g v2 xyz", 0);
    run_to_end(f, "g-c", "xyz");
    start(f, "cached", "g-d", "g v1 xyzw", 0);
    run_to_end(f, "g-d", "xyzw");
    assert_int_equal(atomic_load(&job_runs), 5);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.activity_cache_entries, 5);
    assert_int_equal(COUNTER(f, activity_cache_hits, 1), 1);
    assert_int_equal(COUNTER(f, activity_cache_misses, 5), 5);
    /* Every entry has its expiry index entry and the reverse. */
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
}

static void test_cache_bad_input(void **state) {
    fixture *f = *state;
    /* A zero TTL fails the run with a message naming it; nothing runs, nothing is cached. */
    start(f, "cached", "c-bad", "w ttl0 abc", 0);
    aj_wf_info *info = finish(f, "c-bad", AJ_WF_FAILED);
    assert_non_null(strstr(info->error, "cache TTL must be positive"));
    aj_wf_info_free(info);
    assert_int_equal(atomic_load(&job_runs), 0);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.activity_cache_entries, 0);
}

static void test_updates(void **state) {
    fixture *f = *state;
    start(f, "updatable", "u-1", "null", 0);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(aj_wf_update(f->e, "u-1", "add", "5", 1, 20000, &out, &len), 0);
    assert_string_equal(out, "5");
    aj_free(out);
    assert_int_equal(aj_wf_update(f->e, "u-1", "add", "3", 1, 20000, &out, &len), 0);
    assert_string_equal(out, "8");
    aj_free(out);
    events before = history(f, "u-1", 0);
    assert_int_equal(count_type(&before, "update_accepted"), 2);
    assert_int_equal(count_type(&before, "update_completed"), 2);

    /* Rejected by the validator, or with no handler: the caller gets the message, and the
     * history does not change at all. */
    out = NULL;
    assert_int_equal(aj_wf_update(f->e, "u-1", "add", "-1", 2, 20000, &out, &len), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "the amount must be a positive number"));
    assert_null(out);
    assert_int_equal(aj_wf_update(f->e, "u-1", "remove", "1", 1, 20000, &out, &len), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "no update handler 'remove'"));
    events after = history(f, "u-1", 0);
    assert_int_equal(after.n, before.n);

    /* A handler that fails: recorded (accepted, then completed with the error). */
    assert_int_equal(aj_wf_update(f->e, "u-1", "add", "13", 2, 20000, &out, &len), AJ_EFAILED);
    after = history(f, "u-1", 0);
    assert_int_equal(count_type(&after, "update_accepted"), 3);

    /* A query replays the updates; so does the task that ends the run. */
    assert_int_equal(aj_wf_query(f->e, "u-1", "total", &out, &len), 0);
    assert_string_equal(out, "8");
    free(out);
    assert_int_equal(aj_wf_signal(f->e, "u-1", "done", "", 0), 0);
    finish_with(f, "u-1", "8");
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "u-1", updatable, NULL, &report), 0);

    /* Bad input and wrong states. */
    assert_int_equal(aj_wf_update(f->e, "u-1", "add", "1", 1, 20000, &out, &len), AJ_ESTATE);
    assert_int_equal(aj_wf_update(f->e, "nobody", "add", "1", 1, 20000, &out, &len), AJ_ENOTFOUND);
    assert_int_equal(aj_wf_update(f->e, "u-1", "bad name", "1", 1, 20000, &out, &len), AJ_EINVAL);
    assert_int_equal(aj_wf_update(f->e, NULL, "add", "1", 1, 20000, &out, &len), AJ_EINVAL);
    assert_int_equal(aj_wf_update(f->e, "u-1", "add", NULL, 3, 20000, &out, &len), AJ_EINVAL);
}

static void test_reset(void **state) {
    fixture *f = *state;
    start(f, "stepper", "r-1", "null", 0);
    finish_with(f, "r-1", "done");
    events x = history(f, "r-1", 0);
    assert_string_equal(x.types[1], "step_completed");
    assert_string_equal(x.names[1], "one");

    /* From step one: one is not run again, two and three are. */
    uint32_t run = 0;
    assert_int_equal(aj_wf_reset(f->e, "r-1", 2, "test", &run), 0);
    assert_int_equal(run, 2);
    finish_with(f, "r-1", "done");
    assert_int_equal(atomic_load(&runs_one), 1);
    assert_int_equal(atomic_load(&runs_two), 2);
    assert_int_equal(atomic_load(&runs_three), 2);
    x = history(f, "r-1", 2);
    assert_string_equal(x.types[0], "workflow_started");
    assert_string_equal(x.types[1], "step_completed");
    assert_string_equal(x.types[2], "workflow_reset");
    assert_string_equal(x.names[3], "two");
    events old = history(f, "r-1", 1);
    assert_string_equal(old.types[old.n - 1], "workflow_completed");

    /* Bad reset points, with messages naming why. */
    assert_int_equal(aj_wf_reset(f->e, "r-1", 0, NULL, NULL), AJ_EINVAL);
    assert_int_equal(aj_wf_reset(f->e, "r-1", 999, NULL, NULL), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "there is no event 999"));
    assert_int_equal(aj_wf_reset(f->e, "r-1", 3, NULL, NULL), AJ_EINVAL); /* workflow_reset */
    assert_non_null(strstr(aj_errmsg(), "is workflow_reset"));
    assert_int_equal(aj_wf_reset(f->e, "nobody", 1, NULL, NULL), AJ_ENOTFOUND);
    assert_int_equal(aj_wf_reset(f->e, "bad id", 1, NULL, NULL), AJ_EINVAL);

    /* A running run is terminated; the new one continues from the start. */
    start(f, "stepper", "r-2", "wait", 0);
    wait_for_event(f, "r-2", "step_completed");
    assert_int_equal(aj_wf_reset(f->e, "r-2", 1, "again", &run), 0);
    old = history(f, "r-2", 1);
    assert_string_equal(old.types[old.n - 1], "workflow_terminated");
    wait_for_event(f, "r-2", "step_completed");
    assert_int_equal(aj_wf_signal(f->e, "r-2", "go", "", 0), 0);
    finish_with(f, "r-2", "done");
    x = history(f, "r-2", 0);
    assert_int_equal(count_type(&x, "step_completed"), 3);
}

/* The old run's job still running at the reset is cancelled; the new run runs its own. */
static void test_reset_cancels_old_jobs(void **state) {
    fixture *f = *state;
    start(f, "blocked", "r-3", "null", 0);
    wait_for_event(f, "r-3", "activity_scheduled");
    events x = history(f, "r-3", 0);
    assert_string_equal(x.types[2], "activity_scheduled");
    uint64_t old_job = x.aux[2];
    aj_job *j = NULL;
    for (int i = 0; i < 4000; i++) { /* until a worker runs it */
        assert_int_equal(aj_job_get(f->e, old_job, &j), 0);
        aj_job_state st = j->state;
        aj_job_free(j);
        if (st == AJ_STATE_RUNNING) {
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    uint32_t run = 0;
    assert_int_equal(aj_wf_reset(f->e, "r-3", 2, "stuck", &run), 0);
    assert_int_equal(aj_job_get(f->e, old_job, &j), 0);
    assert_int_equal(j->state, AJ_STATE_CANCELLED);
    aj_job_free(j);
    wait_for_event(f, "r-3", "activity_scheduled");
    atomic_store(&release_blocker, 1);
    finish_with(f, "r-3", "released");
    assert_int_equal(atomic_load(&runs_one), 1);
    x = history(f, "r-3", 2);
    assert_int_equal(count_type(&x, "activity_completed"), 1);
    assert_true(x.aux[3] != old_job); /* after workflow_reset: the new run's own job */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_hit_recorded_and_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_cancels_old_jobs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
