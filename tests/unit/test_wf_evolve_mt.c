/*
 * test_wf_evolve_mt.c — continue-as-new and version patches end to end on SQLite with a real
 * worker pool: a chain of 100 runs under one id, each earlier run's own state, result and
 * history (aj_wf_get_run), signals after a continue reaching the new run; a history recorded
 * before a patch replaying the old path while new runs take the new one, a run that reaches
 * the patch point after the deploy taking the new path, the decision fixed per run, the
 * deprecation step and finally the patch call removed; bad arguments.
 */
#include "harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAIN 100

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

/* Which version of `evolving` the workers run: 0 before the patch, 1 patched, 2 deprecated,
 * 3 the patch call removed. */
static atomic_int version;

static long long to_ll(aj_bytes b) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)b.len, (const char *)b.data);
    return atoll(buf);
}

static int say(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    return aj_step_set_result(ctx, in.data, in.len);
}

/* Counts from its input to CHAIN, one run per number. */
static int counter(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    long long n = to_ll(input);
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%lld", n);
    AJ_TRY(aj_step(wf, "note", say, NULL, (aj_bytes){buf, (size_t)len}, NULL));
    if (n < CHAIN) {
        len = snprintf(buf, sizeof buf, "%lld", n + 1);
        return aj_wf_continue_as_new(wf, buf, (size_t)len);
    }
    if (aj_wf_continue_suggested(wf)) {
        return aj_wf_fail(wf, "a short history suggests continue-as-new");
    }
    return aj_wf_set_result(wf, buf, (size_t)len);
}

/* Waits for "next": a payload "again" continues as new, anything else is the result. */
static int looper(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_bytes sig;
    AJ_TRY(aj_wait_signal(wf, "next", -1, &sig));
    if (sig.len == 5 && memcmp(sig.data, "again", 5) == 0) {
        return aj_wf_continue_as_new(wf, "looped", 6);
    }
    return aj_wf_set_result(wf, sig.data, sig.len);
}

/* The workflow whose code changes. Input "early": the change is after the wait; else before. */
static int evolving(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    int v = atomic_load(&version);
    int early = input.len == 5 && memcmp(input.data, "early", 5) == 0;
    aj_bytes out;
    if (!early) {
        AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    }
    if (v == 0) {
        AJ_TRY(aj_step(wf, "old-way", say, NULL, (aj_bytes){"old", 3}, &out));
    } else if (v == 1) {
        int p = aj_patched(wf, "new-way");
        if (p < 0) {
            return p;
        }
        if (aj_patched(wf, "new-way") != p) {
            return aj_wf_fail(wf, "the decision changed within a run");
        }
        if (p) {
            AJ_TRY(aj_step(wf, "new-way", say, NULL, (aj_bytes){"new", 3}, &out));
        } else {
            AJ_TRY(aj_step(wf, "old-way", say, NULL, (aj_bytes){"old", 3}, &out));
        }
    } else {
        if (v == 2) {
            AJ_TRY(aj_deprecate_patch(wf, "new-way"));
        }
        AJ_TRY(aj_step(wf, "new-way", say, NULL, (aj_bytes){"new", 3}, &out));
    }
    if (early) {
        AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    }
    return aj_wf_set_result(wf, out.data, out.len);
}

/* The patched code, for replay checks: v1 without the patch call, always the new path. */
static int evolving_unpatched(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    int early = input.len == 5 && memcmp(input.data, "early", 5) == 0;
    aj_bytes out;
    if (!early) {
        AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    }
    AJ_TRY(aj_step(wf, "new-way", say, NULL, (aj_bytes){"new", 3}, &out));
    if (early) {
        AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    }
    return aj_wf_set_result(wf, out.data, out.len);
}

static int evolving_patched(aj_wf *wf, aj_bytes input, void *ud) {
    int saved = atomic_exchange(&version, 1);
    int rc = evolving(wf, input, ud);
    atomic_store(&version, saved);
    return rc;
}

/* Input "big": records side effects until continue-as-new is suggested, then continues; the
 * next run reports whether it is suggested there too. */
static int big(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    if (input.len == 3 && memcmp(input.data, "big", 3) == 0) {
        int64_t now;
        while (!aj_wf_continue_suggested(wf)) {
            AJ_TRY(aj_wf_now(wf, &now));
        }
        return aj_wf_continue_as_new(wf, "small", 5);
    }
    const char *r = aj_wf_continue_suggested(wf) ? "suggested" : "fresh";
    return aj_wf_set_result(wf, r, strlen(r));
}

/* Version 0 records a step, then waits; version 1 continues as new at once, leaving the
 * recorded step unmatched. */
static atomic_int skip_version;

static int skipper(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    if (atomic_load(&skip_version) == 1) {
        return aj_wf_continue_as_new(wf, "x", 1);
    }
    AJ_TRY(aj_step(wf, "a", say, NULL, (aj_bytes){"a", 1}, NULL));
    AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    return 0;
}

static int bad_calls(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    if (aj_patched(wf, "") != AJ_EINVAL || aj_patched(wf, "a b") != AJ_EINVAL ||
        aj_deprecate_patch(wf, "") != AJ_EINVAL ||
        aj_wf_continue_as_new(wf, "", AJ_WF_DATA_MAX + 1) != AJ_ETOOBIG) {
        return aj_wf_fail(wf, "bad input was accepted");
    }
    char id[16];
    for (int i = 0; i < AJ_WF_PATCHES_MAX; i++) {
        snprintf(id, sizeof id, "p%d", i);
        if (aj_patched(wf, id) != 1) {
            return aj_wf_fail(wf, "a new patch did not take the new path");
        }
    }
    if (aj_patched(wf, "one-too-many") != AJ_ETOOBIG) {
        return aj_wf_fail(wf, "more patch ids than the limit were accepted");
    }
    return aj_wf_set_result(wf, "ok", 2);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/wf.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "counter", counter, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "looper", looper, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "evolving", evolving, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "bad-calls", bad_calls, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "skipper", skipper, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "big", big, NULL), 0);
    atomic_store(&skip_version, 0);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
    atomic_store(&version, 0);
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

typedef struct hist {
    char last_type[40];
    char last_data[64];
    size_t n, markers, steps;
    char step[32];
} hist;

static int hist_cb(void *ud, const aj_wf_event *ev) {
    hist *h = ud;
    h->n++;
    snprintf(h->last_type, sizeof h->last_type, "%s", ev->type);
    snprintf(h->last_data, sizeof h->last_data, "%.*s", (int)ev->data.len,
             (const char *)ev->data.data);
    h->markers += strcmp(ev->type, "version_marker") == 0;
    if (strcmp(ev->type, "step_completed") == 0) {
        h->steps++;
        snprintf(h->step, sizeof h->step, "%s", ev->name);
    }
    return 0;
}

static hist history(fixture *f, const char *id, uint32_t run) {
    hist h;
    memset(&h, 0, sizeof h);
    assert_int_equal(aj_wf_history(f->e, id, run, hist_cb, &h), 0);
    return h;
}

static void test_continue_chain(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "counter", "chain", "1");
    aj_wf_info *info = aj_test_wf_finish(f->e, "chain", AJ_WF_COMPLETED);
    assert_int_equal(info->run, CHAIN);
    assert_string_equal(info->result, "100");
    assert_string_equal(info->input, "100");
    aj_wf_info_free(info);
    /* Every earlier run shows its own state and input, and ends with continued_as_new
     * carrying the next run's input. */
    for (uint32_t run = 1; run < CHAIN; run++) {
        aj_wf_info *r = NULL;
        assert_int_equal(aj_wf_get_run(f->e, "chain", run, &r), 0);
        assert_int_equal(r->run, run);
        assert_int_equal(r->state, AJ_WF_CONTINUED);
        assert_null(r->result);
        assert_null(r->error);
        char want[16];
        snprintf(want, sizeof want, "%u", run);
        assert_string_equal(r->input, want);
        assert_int_equal(r->events, 3); /* started, step, continued */
        aj_wf_info_free(r);
        hist h = history(f, "chain", run);
        assert_string_equal(h.last_type, "continued_as_new");
        snprintf(want, sizeof want, "%u", run + 1);
        assert_string_equal(h.last_data, want);
    }
    hist last = history(f, "chain", 0);
    assert_string_equal(last.last_type, "workflow_completed");
    aj_wf_info *r = NULL;
    assert_int_equal(aj_wf_get_run(f->e, "chain", 0, &r), 0);
    assert_int_equal(r->run, CHAIN);
    assert_int_equal(r->state, AJ_WF_COMPLETED);
    aj_wf_info_free(r);
    assert_int_equal(aj_wf_get_run(f->e, "chain", CHAIN + 1, &r), AJ_ENOTFOUND);
    assert_int_equal(aj_wf_get_run(f->e, "nope", 1, &r), AJ_ENOTFOUND);
    assert_string_equal(aj_wf_state_name(AJ_WF_CONTINUED), "continued");
}

static void test_continue_then_signal(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "looper", "loop", "first");
    assert_int_equal(aj_wf_signal(f->e, "loop", "next", "again", 5), 0);
    /* The next run is waiting again: a signal now reaches it. */
    for (int i = 0; i < 6000; i++) {
        aj_wf_info *info = NULL;
        assert_int_equal(aj_wf_get(f->e, "loop", &info), 0);
        uint32_t run = info->run;
        aj_wf_info_free(info);
        if (run == 2) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(aj_wf_signal(f->e, "loop", "next", "stop", 4), 0);
    aj_wf_info *info = aj_test_wf_finish(f->e, "loop", AJ_WF_COMPLETED);
    assert_int_equal(info->run, 2);
    assert_string_equal(info->input, "looped");
    assert_string_equal(info->result, "stop");
    aj_wf_info_free(info);
    aj_wf_info *r1 = NULL;
    assert_int_equal(aj_wf_get_run(f->e, "loop", 1, &r1), 0);
    assert_int_equal(r1->state, AJ_WF_CONTINUED);
    assert_string_equal(r1->input, "first");
    aj_wf_info_free(r1);
}

static void test_patch_old_and_new_runs(void **state) {
    fixture *f = *state;
    /* Recorded by the old code, waiting at its wait with the old step still ahead... */
    atomic_store(&version, 0);
    aj_test_wf_start(f->e, "evolving", "late", "");
    /* ...and one that passed the changed point with the old code before the deploy. */
    aj_test_wf_start(f->e, "evolving", "old", "early");
    aj_test_wf_wait_events(f->e, "old", 2); /* started, step_completed old-way */
    aj_test_wf_wait_events(f->e, "late", 1);
    /* Deploy the patched code. */
    atomic_store(&version, 1);
    aj_test_wf_start(f->e, "evolving", "new", "early");
    assert_int_equal(aj_wf_signal(f->e, "old", "go", "", 0), 0);
    assert_int_equal(aj_wf_signal(f->e, "new", "go", "", 0), 0);
    assert_int_equal(aj_wf_signal(f->e, "late", "go", "", 0), 0);
    aj_wf_info *info = aj_test_wf_finish(f->e, "old", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "old"); /* replayed the old path */
    aj_wf_info_free(info);
    hist h = history(f, "old", 0);
    assert_int_equal(h.markers, 0);
    assert_string_equal(h.step, "old-way");
    info = aj_test_wf_finish(f->e, "new", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "new");
    aj_wf_info_free(info);
    h = history(f, "new", 0);
    assert_int_equal(h.markers, 1); /* once, although the code asked twice */
    /* A run that had not reached the changed point takes the new path. */
    info = aj_test_wf_finish(f->e, "late", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "new");
    aj_wf_info_free(info);
    /* The replay check agrees: without the patch the old history diverges. */
    char *report = NULL;
    atomic_store(&version, 0);
    if (aj_wf_replay_check(f->e, "old", evolving_patched, NULL, &report) != 0) {
        fail_msg("the patched code does not replay the old history: %s", report);
    }
    assert_int_equal(aj_wf_replay_check(f->e, "old", evolving_unpatched, NULL, &report), AJ_ESTATE);
    assert_non_null(strstr(report, "old-way"));
    aj_free(report);
}

static void test_patch_deprecate_and_remove(void **state) {
    fixture *f = *state;
    atomic_store(&version, 1);
    aj_test_wf_start(f->e, "evolving", "v1", "early"); /* marker recorded, waiting at the end */
    aj_test_wf_wait_events(f->e, "v1", 3);
    atomic_store(&version, 2);
    aj_test_wf_start(f->e, "evolving", "v2", "early"); /* deprecated: marker recorded too */
    aj_test_wf_wait_events(f->e, "v2", 3);
    assert_int_equal(aj_wf_signal(f->e, "v1", "go", "", 0), 0);
    aj_wf_info *info = aj_test_wf_finish(f->e, "v1", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "new");
    aj_wf_info_free(info);
    /* The patch call removed: a history holding the marker still replays. */
    atomic_store(&version, 3);
    assert_int_equal(aj_wf_signal(f->e, "v2", "go", "", 0), 0);
    info = aj_test_wf_finish(f->e, "v2", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "new");
    aj_wf_info_free(info);
    hist h = history(f, "v2", 0);
    assert_int_equal(h.markers, 1);
    aj_test_wf_start(f->e, "evolving", "v3", "early");
    assert_int_equal(aj_wf_signal(f->e, "v3", "go", "", 0), 0);
    info = aj_test_wf_finish(f->e, "v3", AJ_WF_COMPLETED);
    aj_wf_info_free(info);
    h = history(f, "v3", 0);
    assert_int_equal(h.markers, 0);
}

static void test_continue_when_suggested(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "big", "big", "big");
    aj_wf_info *info = aj_test_wf_finish(f->e, "big", AJ_WF_COMPLETED);
    assert_int_equal(info->run, 2);
    assert_string_equal(info->result, "fresh");
    aj_wf_info_free(info);
    aj_wf_info *r = NULL;
    assert_int_equal(aj_wf_get_run(f->e, "big", 1, &r), 0);
    assert_int_equal(r->state, AJ_WF_CONTINUED);
    /* started, the side effects up to the suggestion, continued_as_new */
    assert_int_equal(r->events, AJ_WF_EVENTS_SUGGEST + 1);
    aj_wf_info_free(r);
}

static void test_continue_diverging_parks(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "skipper", "skip", "");
    aj_test_wf_wait_events(f->e, "skip", 2);
    atomic_store(&skip_version, 1);
    assert_int_equal(aj_wf_signal(f->e, "skip", "go", "", 0), 0);
    aj_wf_info *info = aj_test_wf_finish(f->e, "skip", AJ_WF_PARKED);
    assert_int_equal(info->run, 1); /* nothing continued */
    assert_non_null(strstr(info->error, "continued as new"));
    assert_non_null(strstr(info->error, "step_completed 'a'"));
    aj_wf_info_free(info);
}

static void test_bad_calls(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "bad-calls", "bad", "");
    aj_wf_info *info = aj_test_wf_finish(f->e, "bad", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "ok");
    aj_wf_info_free(info);
    aj_wf_info *r = NULL;
    assert_int_equal(aj_wf_get_run(f->e, NULL, 1, &r), AJ_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_continue_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_then_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_old_and_new_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_deprecate_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_when_suggested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_diverging_parks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
