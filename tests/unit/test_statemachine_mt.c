/*
 * test_statemachine_mt.c — the built-in `statemachine` workflow type through the library: a run
 * through several states with typed jobs (echo, and a job type that fails permanently), its
 * result report and activity names, a failed terminal state, the `status` query after the end,
 * and a bad definition refused by aj_wf_start with nothing stored. Workers run in threads.
 */
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void);

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

static int fail_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    return aj_ctx_fail(ctx, "refused on purpose", 1);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/sm.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_register_builtins(f->e), 0);
    assert_int_equal(aj_register(f->e, "fail", fail_handler, NULL), 0);
    assert_int_equal(aj_workers_start(f->e, NULL), 0);
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

static void start(fixture *f, const char *id, const char *def) {
    aj_wf_start_opts o = {id, 0, 0};
    int rc = aj_wf_start(f->e, "statemachine", def, strlen(def), &o, NULL);
    if (rc != 0) {
        fail_msg("start %s: %s", id, aj_errmsg());
    }
}

static aj_wf_info *wait_end(fixture *f, const char *id, aj_wf_state want) {
    aj_wf_state st = AJ_WF_RUNNING;
    assert_int_equal(aj_wf_wait(f->e, id, 60000, &st), 0);
    aj_wf_info *info = NULL;
    assert_int_equal(aj_wf_get(f->e, id, &info), 0);
    if (st != want) {
        fail_msg("%s ended %s (%s)", id, aj_wf_state_name(st), info->error ? info->error : "");
    }
    return info;
}

static char *path_of(json_t *report) {
    static char buf[256];
    buf[0] = '\0';
    json_t *p = json_object_get(report, "path");
    for (size_t i = 0; i < json_array_size(p); i++) {
        strncat(buf, i ? "," : "", sizeof buf - strlen(buf) - 1);
        strncat(buf, json_string_value(json_array_get(p, i)), sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

typedef struct names {
    char list[512];
} names;

static int completed_names(void *ud, const aj_wf_event *ev) {
    names *n = ud;
    if (strcmp(ev->type, "activity_completed") == 0) {
        strncat(n->list, n->list[0] ? "," : "", sizeof n->list - strlen(n->list) - 1);
        strncat(n->list, ev->name, sizeof n->list - strlen(n->list) - 1);
    }
    return 0;
}

#define DEF_OK                                                                                     \
    "{\"initial\":\"a\",\"states\":{"                                                              \
    "\"a\":{\"jobs\":[{\"name\":\"x\",\"type\":\"echo\",\"payload\":{\"n\":1}},"                   \
    "{\"name\":\"y\",\"type\":\"fail\"}],"                                                         \
    "\"on\":{\"success_rate\":{\"at_least\":0.5,\"then\":\"b\",\"else\":\"bad\"}}},"               \
    "\"b\":{\"jobs\":[{\"name\":\"z\",\"type\":\"echo\",\"payload\":2}],"                          \
    "\"on\":{\"outcome\":{\"z\":{\"completed\":\"done\",\"dead\":\"bad\"}}}},"                     \
    "\"done\":{\"terminal\":\"completed\"},\"bad\":{\"terminal\":\"failed\"}}}"

static void test_runs_to_completed(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_wf_type_known(f->e, "statemachine"), 1);
    start(f, "sm-ok", DEF_OK);
    aj_wf_info *info = wait_end(f, "sm-ok", AJ_WF_COMPLETED);
    json_t *r = json_loadb(info->result, info->result_len, 0, NULL);
    assert_non_null(r);
    assert_string_equal(path_of(r), "a,b,done");
    assert_string_equal(json_string_value(json_object_get(r, "terminal")), "completed");
    json_t *v0 = json_array_get(json_object_get(r, "visits"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v0, "jobs"), "y")),
                        "dead");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v0, "errors"), "y")),
                        "refused on purpose");
    assert_string_equal(json_string_value(json_object_get(v0, "rule")), "success_rate");
    json_t *res = json_object_get(json_object_get(r, "results"), "a");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "x"), "n")), 1);
    json_decref(r);
    aj_wf_info_free(info);
    names n = {{0}};
    assert_int_equal(aj_wf_history(f->e, "sm-ok", 0, completed_names, &n), 0);
    assert_string_equal(n.list, "a/x,b/z");
    /* The status query answers the same report after the end. */
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(aj_wf_query(f->e, "sm-ok", "status", &out, &len), 0);
    json_t *q = json_loadb(out, len, 0, NULL);
    assert_non_null(q);
    assert_string_equal(path_of(q), "a,b,done");
    json_decref(q);
    aj_free(out);
}

static void test_failed_terminal(void **state) {
    fixture *f = *state;
    start(f, "sm-bad",
          "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"y\",\"type\":\"fail\"}],"
          "\"on\":{\"all_success\":\"done\",\"any_failure\":\"broken\"}},"
          "\"done\":{\"terminal\":\"completed\"},\"broken\":{\"terminal\":\"failed\"}}}");
    aj_wf_info *info = wait_end(f, "sm-bad", AJ_WF_FAILED);
    assert_non_null(info->error);
    const char *prefix = "reached terminal state 'broken' (failed): ";
    assert_int_equal(strncmp(info->error, prefix, strlen(prefix)), 0);
    json_t *r = json_loads(info->error + strlen(prefix), 0, NULL);
    assert_non_null(r);
    assert_string_equal(path_of(r), "a,broken");
    json_decref(r);
    aj_wf_info_free(info);
}

static void test_bad_definition_stores_nothing(void **state) {
    fixture *f = *state;
    aj_wf_start_opts o = {"sm-never", 0, 0};
    const char *def = "{\"initial\":\"a\",\"states\":{\"a\":{\"terminal\":\"done\"}}}";
    assert_int_equal(aj_wf_start(f->e, "statemachine", def, strlen(def), &o, NULL), AJ_EINVAL);
    assert_string_equal(aj_errmsg(), "statemachine input: states.a: \"terminal\" must be "
                                     "\"completed\" or \"failed\"");
    aj_wf_info *info = NULL;
    assert_int_equal(aj_wf_get(f->e, "sm-never", &info), AJ_ENOTFOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_to_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_definition_stores_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
