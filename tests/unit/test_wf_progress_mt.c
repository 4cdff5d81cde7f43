/*
 * test_wf_progress_mt.c — a run remembers how far its code got (the `wait_point` command), end
 * to end on SQLite with a real worker pool (issue 9, items 1 and 2).
 *
 * Item 1: V1 of a workflow makes step `a`, then waits at a call that records nothing (a signal
 * without a timeout, aj_activity_wait, aj_child_wait), then step `b`. V2 inserts
 * `if (aj_patched(wf, "p1")) step new` just before that wait. A run that reached the wait under
 * V1 and is woken under V2 must keep to the old path (no `new`, no version_marker); a run
 * started under V2 takes the new path. A run recorded by an aj that wrote no wait points (built
 * here with the core calls, as the old version wrote it) keeps to the old path too.
 *
 * Item 2: `start x; step B; wait x` changed to `start x; wait x; step B` parks the run with both
 * calls named, and aj_wf_replay_check reports it (also for two signal waits swapped).
 */
#include "harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/workflow.h"
#include "runtime/engine.h"

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

/* The version of `mover` the workers run: 1 or 2. */
static atomic_int version;
/* Jobs of type "hold" finish once this is set. */
static atomic_int released;

static int say(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    return aj_step_set_result(ctx, in.data, in.len);
}

static int step(aj_wf *wf, const char *name) {
    aj_bytes in = {name, strlen(name)};
    return aj_step(wf, name, say, NULL, in, NULL);
}

/* Job "hold": waits for `released` (a minute at most), then completes. */
static int hold_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    for (int i = 0; i < 6000 && !atomic_load(&released); i++) {
        usleep(10000);
    }
    return aj_ctx_set_result(ctx, "held", 4);
}

/* Child type "kid": waits for signal "finish", then completes. */
static int kid(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(aj_wait_signal(wf, "finish", -1, NULL));
    return aj_wf_set_result(wf, "kid", 3);
}

/* Starts the thing the run then waits for: nothing for a signal, an activity or a child. */
static int start_waited(aj_wf *wf, const char *kind) {
    if (strcmp(kind, "activity") == 0) {
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "hold";
        s.max_attempts = 1;
        return aj_activity_start(wf, "x", &s);
    }
    if (strcmp(kind, "child") == 0) {
        return aj_child_start(wf, "c", "kid", "", 0, NULL);
    }
    return 0;
}

static int wait_waited(aj_wf *wf, const char *kind) {
    if (strcmp(kind, "activity") == 0) {
        return aj_activity_wait(wf, "x", NULL);
    }
    if (strcmp(kind, "child") == 0) {
        return aj_child_wait(wf, "c", NULL);
    }
    return aj_wait_signal(wf, "go", -1, NULL);
}

/* Input: signal, activity or child. V1: a; start; wait; b. V2: a; start; patch; wait; b. The
 * result names the path taken. */
static int mover(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    char kind[16];
    snprintf(kind, sizeof kind, "%.*s", (int)input.len, (const char *)input.data);
    AJ_TRY(step(wf, "a"));
    AJ_TRY(start_waited(wf, kind));
    const char *path = "old";
    if (atomic_load(&version) == 2) {
        int p = aj_patched(wf, "p1");
        if (p < 0) {
            return p;
        }
        if (p) {
            AJ_TRY(step(wf, "new"));
            path = "new";
        }
    }
    AJ_TRY(wait_waited(wf, kind));
    AJ_TRY(step(wf, "b"));
    return aj_wf_set_result(wf, path, strlen(path));
}

/* V1: start x; step B; wait x. V2: start x; wait x; step B. */
static int reorder(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(start_waited(wf, "activity"));
    if (atomic_load(&version) == 1) {
        AJ_TRY(step(wf, "B"));
        AJ_TRY(wait_waited(wf, "activity"));
    } else {
        AJ_TRY(wait_waited(wf, "activity"));
        AJ_TRY(step(wf, "B"));
    }
    return aj_wf_set_result(wf, "done", 4);
}

static int reorder_v2(aj_wf *wf, aj_bytes input, void *ud) {
    int saved = atomic_exchange(&version, 2);
    int rc = reorder(wf, input, ud);
    atomic_store(&version, saved);
    return rc;
}

/* Two signal waits: "one" then "two" (the order swapped by swapped()). */
static int pair(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(aj_wait_signal(wf, "one", -1, NULL));
    AJ_TRY(aj_wait_signal(wf, "two", -1, NULL));
    return aj_wf_set_result(wf, "ok", 2);
}

static int swapped(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(aj_wait_signal(wf, "two", -1, NULL));
    AJ_TRY(aj_wait_signal(wf, "one", -1, NULL));
    return aj_wf_set_result(wf, "ok", 2);
}

/* Step "b" runs this many times. */
static atomic_int b_runs;

static int count_b(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    atomic_fetch_add(&b_runs, 1);
    return aj_step_set_result(ctx, in.data, in.len);
}

static int stage_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)arg;
    const char *stage = *(const char **)ud;
    *out = strdup(stage);
    *len = strlen(stage);
    return *out != NULL ? 0 : AJ_ENOMEM;
}

/* a; start x; wait x; b; wait for "go". Query "stage" names the wait it is at. */
static int stages(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    const char *stage = "start";
    AJ_TRY(aj_wf_set_query(wf, "stage", stage_query, &stage));
    AJ_TRY(step(wf, "a"));
    AJ_TRY(start_waited(wf, "activity"));
    stage = "activity";
    AJ_TRY(wait_waited(wf, "activity"));
    stage = "signal";
    aj_bytes in = {"b", 1};
    AJ_TRY(aj_step(wf, "b", count_b, NULL, in, NULL));
    AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    return aj_wf_set_result(wf, "done", 4);
}

/* Continues as new once; the next run asks about a patch at once. */
static int cont(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    if (input.len == 5 && memcmp(input.data, "first", 5) == 0) {
        return aj_wf_continue_as_new(wf, "second", 6);
    }
    int p = aj_patched(wf, "p1");
    if (p < 0) {
        return p;
    }
    return aj_wf_set_result(wf, p ? "new" : "old", 3);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/wf.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "mover", mover, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "reorder", reorder, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "pair", pair, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "kid", kid, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "stages", stages, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "cont", cont, NULL), 0);
    atomic_store(&b_runs, 0);
    assert_int_equal(aj_register(f->e, "hold", hold_handler, NULL), 0);
    atomic_store(&version, 1);
    atomic_store(&released, 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    atomic_store(&released, 1);
    aj_engine_close(f->e);
    aj_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

typedef struct hist {
    size_t markers, wait_points, news;
    char wait_point[64];
} hist;

static int hist_cb(void *ud, const aj_wf_event *ev) {
    hist *h = ud;
    h->markers += strcmp(ev->type, "version_marker") == 0;
    h->news += strcmp(ev->type, "step_completed") == 0 && strcmp(ev->name, "new") == 0;
    if (strcmp(ev->type, "wait_point") == 0) {
        h->wait_points++;
        snprintf(h->wait_point, sizeof h->wait_point, "%s", ev->name);
    }
    return 0;
}

static hist history(fixture *f, const char *id) {
    hist h;
    memset(&h, 0, sizeof h);
    assert_int_equal(aj_wf_history(f->e, id, 0, hist_cb, &h), 0);
    return h;
}

/* Lets the waited-for thing of `kind` happen for run `id`. */
static void release(fixture *f, const char *kind, const char *id) {
    if (strcmp(kind, "activity") == 0) {
        atomic_store(&released, 1);
    } else if (strcmp(kind, "child") == 0) {
        char child[128];
        snprintf(child, sizeof child, "%s/c", id);
        assert_int_equal(aj_wf_signal(f->e, child, "finish", "", 0), 0);
    } else {
        assert_int_equal(aj_wf_signal(f->e, id, "go", "", 0), 0);
    }
}

/* Item 1 for one kind of wait. */
static void patch_after_wait_reached(fixture *f, const char *kind) {
    char old_id[64], new_id[64];
    snprintf(old_id, sizeof old_id, "old-%s", kind);
    snprintf(new_id, sizeof new_id, "new-%s", kind);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    /* V1 reaches the wait: started, a (and the activity or child started). */
    aj_test_wf_start(f->e, "mover", old_id, kind);
    aj_test_wf_wait_events(f->e, old_id, strcmp(kind, "signal") == 0 ? 2 : 3);
    /* Deploy V2, then let the wait end. */
    atomic_store(&version, 2);
    release(f, kind, old_id);
    aj_wf_info *info = aj_test_wf_finish(f->e, old_id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "old");
    aj_wf_info_free(info);
    hist h = history(f, old_id);
    assert_int_equal(h.markers, 0);
    assert_int_equal(h.news, 0);
    /* Where V1 waited was written with that task's own events. */
    assert_int_equal(h.wait_points, 1);
    char want[64];
    snprintf(want, sizeof want, "%s:%s", kind,
             strcmp(kind, "signal") == 0  ? "go"
             : strcmp(kind, "child") == 0 ? "c"
                                          : "x");
    assert_string_equal(h.wait_point, want);
    /* The old history still replays against V2 (the old path), read-only. */
    char *report = NULL;
    if (aj_wf_replay_check(f->e, old_id, mover, NULL, &report) != 0) {
        fail_msg("V2 does not replay the V1 history: %s", report);
    }
    /* A run started under V2 takes the new path. */
    atomic_store(&released, 0);
    aj_test_wf_start(f->e, "mover", new_id, kind);
    aj_test_wf_wait_events(f->e, new_id, strcmp(kind, "signal") == 0 ? 4 : 5);
    release(f, kind, new_id);
    info = aj_test_wf_finish(f->e, new_id, AJ_WF_COMPLETED);
    assert_string_equal(info->result, "new");
    aj_wf_info_free(info);
    h = history(f, new_id);
    assert_int_equal(h.markers, 1);
    assert_int_equal(h.news, 1);
}

static void test_patch_signal(void **state) {
    patch_after_wait_reached(*state, "signal");
}

static void test_patch_activity_wait(void **state) {
    patch_after_wait_reached(*state, "activity");
}

static void test_patch_child_wait(void **state) {
    patch_after_wait_reached(*state, "child");
}

/* Builds what the previous aj version stored for a V1 `mover` run waiting for "go" after step
 * a: workflow_started, step_completed a, and no wait point. */
static int legacy_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)ud;
    int rc = wf_start(t, env, "mover", "legacy", aj__slice_str("signal"), NULL);
    wf_rec before, w;
    if (rc == 0) {
        rc = wf_read(t, aj__slice_str("legacy"), &before);
    }
    if (rc == 0) {
        w = before;
        w.flags &= ~(uint32_t)WF_FLAG_WAIT_POINTS;
        rc = wf_append(t, env, &w, EV_STEP_COMPLETED, aj__slice_str("a"), aj__slice_str("a"), 0, 0,
                       0);
    }
    return rc != 0 ? rc : wf_write(t, &before, &w);
}

static void test_patch_legacy_history(void **state) {
    fixture *f = *state;
    assert_int_equal(eng_run(f->e, legacy_txn, NULL, KV_SYNC), 0);
    assert_int_equal(aj_wf_signal(f->e, "legacy", "go", "", 0), 0);
    atomic_store(&version, 2);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    aj_wf_info *info = aj_test_wf_finish(f->e, "legacy", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "old");
    aj_wf_info_free(info);
    hist h = history(f, "legacy");
    assert_int_equal(h.markers, 0);
    assert_int_equal(h.news, 0);
}

static void test_moved_wait_parks(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    aj_test_wf_start(f->e, "reorder", "moved", "");
    aj_test_wf_wait_events(f->e, "moved", 3); /* started, activity_scheduled x, step_completed B */
    /* The replay check sees the drift before any worker runs the changed code. */
    char *report = NULL;
    assert_int_equal(aj_wf_replay_check(f->e, "moved", reorder_v2, NULL, &report), AJ_ESTATE);
    assert_non_null(strstr(report, "activity 'x'"));
    assert_non_null(strstr(report, "step_completed 'B'"));
    aj_free(report);
    atomic_store(&version, 2);
    atomic_store(&released, 1);
    aj_wf_info *info = aj_test_wf_finish(f->e, "moved", AJ_WF_PARKED);
    assert_non_null(info->error);
    assert_non_null(strstr(info->error, "activity 'x'"));
    assert_non_null(strstr(info->error, "step_completed 'B'"));
    aj_wf_info_free(info);
    /* Two waits for signals swapped: the run waits at "one"; the new code waits at "two". */
    aj_test_wf_start(f->e, "pair", "pair", "");
    aj_test_wf_wait_events(f->e, "pair", 2);
    assert_int_equal(aj_wf_replay_check(f->e, "pair", pair, NULL, &report), 0);
    assert_int_equal(aj_wf_replay_check(f->e, "pair", swapped, NULL, &report), AJ_ESTATE);
    assert_non_null(strstr(report, "signal 'two'"));
    assert_non_null(strstr(report, "signal:one"));
    aj_free(report);
}

static uint64_t events_of(fixture *f, const char *id) {
    aj_wf_info *info = NULL;
    assert_int_equal(aj_wf_get(f->e, id, &info), 0);
    uint64_t n = info->events;
    aj_wf_info_free(info);
    return n;
}

static void query_is(fixture *f, const char *id, const char *want) {
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(aj_wf_query(f->e, id, "stage", &out, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
    aj_free(out);
}

static int completed_seq_cb(void *ud, const aj_wf_event *ev) {
    if (strcmp(ev->type, "activity_completed") == 0) {
        *(uint64_t *)ud = ev->seq;
    }
    return 0;
}

/* Queries replay through wait points without writing; a reset copies them and the new run
 * replays through them to its reset point, then goes on live. */
static void test_query_and_reset(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    aj_test_wf_start(f->e, "stages", "st", "");
    aj_test_wf_wait_events(f->e, "st", 4); /* started, a, activity_scheduled, wait_point */
    uint64_t n = events_of(f, "st");
    query_is(f, "st", "activity");
    query_is(f, "st", "activity");
    assert_int_equal(events_of(f, "st"), n); /* read-only */
    atomic_store(&released, 1);
    for (int i = 0; i < 6000 && atomic_load(&b_runs) == 0; i++) {
        usleep(10000);
    }
    hist h;
    for (int i = 0; i < 6000; i++) {
        h = history(f, "st");
        if (strcmp(h.wait_point, "signal:go") == 0) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(h.wait_points, 2);
    assert_string_equal(h.wait_point, "signal:go");
    query_is(f, "st", "signal");
    uint64_t completed = 0;
    assert_int_equal(aj_wf_history(f->e, "st", 0, completed_seq_cb, &completed), 0);
    assert_true(completed > 0);
    uint32_t run = 0;
    assert_int_equal(aj_wf_reset(f->e, "st", completed, "b again", &run), 0);
    assert_int_equal(run, 2);
    for (int i = 0; i < 6000 && atomic_load(&b_runs) < 2; i++) {
        usleep(10000);
    }
    assert_int_equal(atomic_load(&b_runs), 2); /* b ran again, a did not */
    for (int i = 0; i < 6000; i++) {
        h = history(f, "st");
        if (h.wait_points == 2 && strcmp(h.wait_point, "signal:go") == 0) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(h.wait_points, 2); /* the copied activity:x, and signal:go */
    query_is(f, "st", "signal");
    assert_int_equal(aj_wf_signal(f->e, "st", "go", "", 0), 0);
    aj_wf_info *info = aj_test_wf_finish(f->e, "st", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "done");
    assert_int_equal(info->run, 2);
    aj_wf_info_free(info);
}

/* A run started by continue-as-new is this version's own: a patch takes the new path. */
static void test_continued_run_takes_new_path(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    aj_test_wf_start(f->e, "cont", "cont", "first");
    aj_wf_info *info = aj_test_wf_finish(f->e, "cont", AJ_WF_COMPLETED);
    assert_int_equal(info->run, 2);
    assert_string_equal(info->result, "new");
    aj_wf_info_free(info);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_patch_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_activity_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_child_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_legacy_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_wait_parks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continued_run_takes_new_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
