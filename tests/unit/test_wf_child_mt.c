/*
 * test_wf_child_mt.c — child workflows end to end on SQLite with a real worker pool: start and
 * await, a failing child, a fan-out of 200+ children collected later, each parent-close policy
 * (terminate, cancel, abandon), cancellation reaching children under `cancel`, a child id that
 * is already running, the links both ways, and bad arguments.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FANOUT 210
#define WAIT_MS 60000

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

static long long to_ll(aj_bytes b) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)b.len, (const char *)b.data);
    return atoll(buf);
}

static int doubler_step(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", 2 * to_ll(in));
    return aj_step_set_result(ctx, buf, (size_t)n);
}

/* Child: doubles its input; "fail" fails. */
static int doubler(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    if (input.len == 4 && memcmp(input.data, "fail", 4) == 0) {
        return aj_wf_fail(wf, "asked to fail");
    }
    aj_bytes out;
    AJ_TRY(aj_step(wf, "double", doubler_step, NULL, input, &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

/* Child: notes the time (so a test sees it ran), then waits for signal "go" forever; a cancel
 * ends it cancelled. */
static int sigwait(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    int64_t now;
    AJ_TRY(aj_wf_now(wf, &now));
    aj_bytes sig;
    AJ_TRY(aj_wait_signal(wf, "go", -1, &sig));
    return aj_wf_set_result(wf, sig.data, sig.len);
}

/* Parent: one child, awaited; input is the child's input. */
static int parent_one(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes out;
    int rc = aj_child(wf, "kid", "doubler", input.data, input.len, NULL, &out);
    if (rc == AJ_SUSPEND) {
        return rc;
    }
    if (rc != 0) {
        return aj_wf_fail(wf, aj_errmsg());
    }
    return aj_wf_set_result(wf, out.data, out.len);
}

/* Parent: starts FANOUT children, then collects them all and sums their results. */
static int parent_fanout(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    char name[32], in[32];
    for (int i = 0; i < FANOUT; i++) {
        snprintf(name, sizeof name, "c%d", i);
        snprintf(in, sizeof in, "%d", i);
        AJ_TRY(aj_child_start(wf, name, "doubler", in, strlen(in), NULL));
    }
    long long sum = 0;
    for (int i = 0; i < FANOUT; i++) {
        snprintf(name, sizeof name, "c%d", i);
        aj_bytes out;
        AJ_TRY(aj_child_wait(wf, name, &out));
        sum += to_ll(out);
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", sum);
    return aj_wf_set_result(wf, buf, (size_t)n);
}

/* Parent: three waiting children, one per policy, then ends without waiting for them. */
static int parent_policies(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_child_opts o = {NULL, AJ_PARENT_CLOSE_TERMINATE, 0};
    AJ_TRY(aj_child_start(wf, "t", "sigwait", "", 0, &o));
    o.parent_close = AJ_PARENT_CLOSE_CANCEL;
    AJ_TRY(aj_child_start(wf, "c", "sigwait", "", 0, &o));
    o.parent_close = AJ_PARENT_CLOSE_ABANDON;
    AJ_TRY(aj_child_start(wf, "a", "sigwait", "", 0, &o));
    /* Wait until told to end (so the children surely run first). */
    AJ_TRY(aj_wait_signal(wf, "end", -1, NULL));
    return 0;
}

/* Parent: one child under `cancel`, awaited; a cancelled parent ends cancelled. */
static int parent_cancel(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_child_opts o = {NULL, AJ_PARENT_CLOSE_CANCEL, 0};
    int rc = aj_child(wf, "kid", "sigwait", "", 0, &o, NULL);
    if (rc == AJ_SUSPEND) {
        return rc;
    }
    if (rc != 0 && aj_wf_cancel_requested(wf)) {
        return AJ_ECANCELLED;
    }
    return rc == 0 ? 0 : aj_wf_fail(wf, aj_errmsg());
}

/* Parent: a child with a given id (input), which is already running. */
static int parent_dup(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    char id[64];
    snprintf(id, sizeof id, "%.*s", (int)input.len, (const char *)input.data);
    aj_child_opts o = {id, 0, 0};
    int rc = aj_child_start(wf, "dup", "sigwait", "", 0, &o);
    if (rc == AJ_SUSPEND) {
        return rc;
    }
    if (rc == AJ_EFAILED) {
        return aj_wf_set_result(wf, "refused", 7);
    }
    return aj_wf_fail(wf, "a running id started as a child");
}

/* Parent: the bad calls, each refused without recording anything. */
static int parent_bad(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    aj_child_opts bad = {NULL, (aj_parent_close)9, 0};
    if (aj_child_start(wf, "x y", "doubler", "1", 1, NULL) != AJ_EINVAL ||
        aj_child_start(wf, "k", "no type", "1", 1, NULL) != AJ_EINVAL ||
        aj_child_start(wf, "k", "doubler", "1", 1, &bad) != AJ_EINVAL ||
        aj_child_wait(wf, "never", NULL) != AJ_EINVAL ||
        aj_child_start(wf, "s", "saga", "{}", 2, NULL) != AJ_EINVAL) {
        return aj_wf_fail(wf, "bad input was accepted");
    }
    AJ_TRY(aj_child_start(wf, "k", "doubler", "1", 1, NULL));
    if (aj_child_start(wf, "k", "doubler", "2", 1, NULL) != AJ_EEXISTS) {
        return aj_wf_fail(wf, "a second child of the same name was accepted");
    }
    aj_bytes out;
    AJ_TRY(aj_child_wait(wf, "k", &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/wf.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_register_builtins(f->e), 0);
    assert_int_equal(aj_workflow_register(f->e, "doubler", doubler, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "sigwait", sigwait, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "parent-one", parent_one, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "parent-fanout", parent_fanout, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "parent-policies", parent_policies, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "parent-cancel", parent_cancel, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "parent-dup", parent_dup, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "parent-bad", parent_bad, NULL), 0);
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = 4;
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

static void expect(fixture *f, const char *id, aj_wf_state want) {
    aj_wf_info_free(aj_test_wf_finish(f->e, id, want));
}

typedef struct counts {
    size_t started, completed, failed, n;
} counts;

static int count_cb(void *ud, const aj_wf_event *ev) {
    counts *c = ud;
    c->n++;
    c->started += strcmp(ev->type, "child_started") == 0;
    c->completed += strcmp(ev->type, "child_completed") == 0;
    c->failed += strcmp(ev->type, "child_failed") == 0;
    return 0;
}

static counts history(fixture *f, const char *id) {
    counts c;
    memset(&c, 0, sizeof c);
    assert_int_equal(aj_wf_history(f->e, id, 0, count_cb, &c), 0);
    return c;
}

static void test_child_result_and_links(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "parent-one", "p1", "21");
    aj_wf_info *info = aj_test_wf_finish(f->e, "p1", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "42");
    aj_wf_info_free(info);
    counts c = history(f, "p1");
    assert_int_equal(c.started, 1);
    assert_int_equal(c.completed, 1);
    assert_int_equal(c.failed, 0);
    /* The derived child id, and the links both ways. */
    expect(f, "p1/kid", AJ_WF_COMPLETED);
    aj_wf_link parent;
    assert_int_equal(aj_wf_parent(f->e, "p1/kid", &parent), 0);
    assert_string_equal(parent.id, "p1");
    assert_string_equal(parent.name, "kid");
    assert_int_equal(parent.run, 1);
    assert_int_equal(parent.parent_close, AJ_PARENT_CLOSE_TERMINATE);
    assert_int_equal(aj_wf_parent(f->e, "p1", &parent), AJ_ENOTFOUND);
    aj_wf_link *kids = NULL;
    size_t n = 0;
    assert_int_equal(aj_wf_children(f->e, "p1", &kids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(kids[0].id, "p1/kid");
    aj_free(kids);
}

static void test_child_failure(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "parent-one", "p2", "fail");
    aj_wf_info *info = aj_test_wf_finish(f->e, "p2", AJ_WF_FAILED);
    assert_non_null(strstr(info->error, "asked to fail"));
    assert_non_null(strstr(info->error, "failed"));
    aj_wf_info_free(info);
    counts c = history(f, "p2");
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.completed, 0);
}

static void test_fanout(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "parent-fanout", "fan", "");
    aj_wf_info *info = aj_test_wf_finish(f->e, "fan", AJ_WF_COMPLETED);
    /* sum of 2*i for i < FANOUT */
    char want[32];
    snprintf(want, sizeof want, "%d", FANOUT * (FANOUT - 1));
    assert_string_equal(info->result, want);
    aj_wf_info_free(info);
    counts c = history(f, "fan");
    assert_int_equal(c.started, FANOUT);
    assert_int_equal(c.completed, FANOUT);
    aj_wf_link *kids = NULL;
    size_t n = 0;
    assert_int_equal(aj_wf_children(f->e, "fan", &kids, &n), 0);
    assert_int_equal(n, FANOUT);
    assert_string_equal(kids[0].id, "fan/c0");
    assert_string_equal(kids[FANOUT - 1].name, "c209");
    aj_free(kids);
}

static void wait_running(fixture *f, const char *id) {
    for (int i = 0; i < 6000; i++) {
        aj_wf_info *info = NULL;
        if (aj_wf_get(f->e, id, &info) == 0) {
            uint64_t events = info->events;
            aj_wf_info_free(info);
            if (events >= 2) {
                return; /* it ran at least once */
            }
        }
        usleep(10000);
    }
    fail_msg("%s never ran", id);
}

static void test_parent_close_policies(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "parent-policies", "pp", "");
    wait_running(f, "pp/t");
    wait_running(f, "pp/c");
    wait_running(f, "pp/a");
    assert_int_equal(aj_wf_signal(f->e, "pp", "end", "", 0), 0);
    expect(f, "pp", AJ_WF_COMPLETED);
    aj_wf_info *info = aj_test_wf_finish(f->e, "pp/t", AJ_WF_TERMINATED);
    assert_non_null(strstr(info->error, "parent 'pp' ended (completed)"));
    aj_wf_info_free(info);
    expect(f, "pp/c", AJ_WF_CANCELLED);
    /* The abandoned child goes on, and finishes on its own. */
    aj_wf_info *a = NULL;
    assert_int_equal(aj_wf_get(f->e, "pp/a", &a), 0);
    assert_int_equal(a->state, AJ_WF_RUNNING);
    aj_wf_info_free(a);
    assert_int_equal(aj_wf_signal(f->e, "pp/a", "go", "done", 4), 0);
    info = aj_test_wf_finish(f->e, "pp/a", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "done");
    aj_wf_info_free(info);
    /* A parent terminated by an operator applies the policies too. */
    aj_test_wf_start(f->e, "parent-policies", "pq", "");
    wait_running(f, "pq/t");
    wait_running(f, "pq/c");
    assert_int_equal(aj_wf_terminate(f->e, "pq", "operator"), 0);
    expect(f, "pq/t", AJ_WF_TERMINATED);
    expect(f, "pq/c", AJ_WF_CANCELLED);
    aj_wf_info *still = NULL;
    assert_int_equal(aj_wf_get(f->e, "pq/a", &still), 0);
    assert_false(aj_wf_state_is_final(still->state));
    aj_wf_info_free(still);
}

static void test_cancel_propagates(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "parent-cancel", "pc", "");
    wait_running(f, "pc/kid");
    assert_int_equal(aj_wf_cancel(f->e, "pc"), 0);
    expect(f, "pc/kid", AJ_WF_CANCELLED);
    expect(f, "pc", AJ_WF_CANCELLED);
    counts c = history(f, "pc");
    assert_int_equal(c.failed, 1); /* the child's outcome reached the parent */
}

static void test_running_id_refused(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "sigwait", "busy", "");
    aj_test_wf_start(f->e, "parent-dup", "pd", "busy");
    aj_wf_info *info = aj_test_wf_finish(f->e, "pd", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "refused");
    aj_wf_info_free(info);
    counts c = history(f, "pd");
    assert_int_equal(c.started, 0);
    assert_int_equal(c.failed, 1); /* recorded, so a replay refuses it again */
    /* The running workflow was left alone and has no parent. */
    aj_wf_link l;
    assert_int_equal(aj_wf_parent(f->e, "busy", &l), AJ_ENOTFOUND);
    assert_int_equal(aj_wf_terminate(f->e, "busy", NULL), 0);
}

static void test_bad_arguments(void **state) {
    fixture *f = *state;
    aj_test_wf_start(f->e, "parent-bad", "pb", "");
    aj_wf_info *info = aj_test_wf_finish(f->e, "pb", AJ_WF_COMPLETED);
    assert_string_equal(info->result, "2");
    aj_wf_info_free(info);
    counts c = history(f, "pb");
    assert_int_equal(c.started, 1);
    /* Public calls refuse bad input. */
    aj_wf_link l;
    aj_wf_link *kids = NULL;
    size_t n = 0;
    assert_int_equal(aj_wf_parent(f->e, "bad id", &l), AJ_EINVAL);
    assert_int_equal(aj_wf_children(f->e, "", &kids, &n), AJ_EINVAL);
    aj_parent_close p;
    assert_int_equal(aj_parent_close_parse("kill", &p), AJ_EINVAL);
    assert_int_equal(aj_parent_close_parse("abandon", &p), 0);
    assert_int_equal(p, AJ_PARENT_CLOSE_ABANDON);
    assert_null(aj_parent_close_name((aj_parent_close)0));
}

static void test_links_collected(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/c.db", dir);
    aj_engine_opts eo;
    aj_engine_opts_init(&eo);
    eo.retention_ms = 1;
    eo.background = 0;
    aj_engine *e = NULL;
    assert_int_equal(aj_engine_open(&e, url, &eo), 0);
    assert_int_equal(aj_workflow_register(e, "doubler", doubler, NULL), 0);
    assert_int_equal(aj_workflow_register(e, "parent-one", parent_one, NULL), 0);
    assert_int_equal(aj_workers_start(e, NULL), 0);
    aj_wf_start_opts o = {"gone", 0, 0};
    assert_int_equal(aj_wf_start(e, "parent-one", "1", 1, &o, NULL), 0);
    aj_wf_state st;
    assert_int_equal(aj_wf_wait(e, "gone", WAIT_MS, &st), 0);
    assert_int_equal(st, AJ_WF_COMPLETED);
    aj_wf_link l;
    assert_int_equal(aj_wf_parent(e, "gone/kid", &l), 0);
    /* Past the retention, both workflows go, and their links with them. */
    aj_wf_info *info = NULL;
    for (int i = 0; i < 500; i++) {
        usleep(10000);
        assert_int_equal(aj_engine_tick(e), 0);
        if (aj_wf_get(e, "gone", &info) == AJ_ENOTFOUND &&
            aj_wf_get(e, "gone/kid", &info) == AJ_ENOTFOUND) {
            break;
        }
        aj_wf_info_free(info);
        info = NULL;
    }
    assert_int_equal(aj_wf_get(e, "gone/kid", &info), AJ_ENOTFOUND);
    assert_int_equal(aj_wf_parent(e, "gone/kid", &l), AJ_ENOTFOUND);
    aj_wf_link *kids = NULL;
    size_t n = 1;
    assert_int_equal(aj_wf_children(e, "gone", &kids, &n), 0);
    assert_int_equal(n, 0);
    aj_free(kids);
    uint64_t records = 0;
    assert_int_equal(aj_check(e, NULL, NULL, &records), 0);
    aj_engine_close(e);
    aj_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_child_result_and_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_close_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_propagates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_running_id_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test(test_links_collected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
