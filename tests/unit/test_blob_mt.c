/*
 * test_blob_mt.c — large results through worker threads and workflows: an activity whose
 * result is over the blob threshold (stored as a blob) is delivered to its workflow whole; one
 * over the workflow data limit (AJ_WF_DATA_MAX) fails the activity with a message naming both
 * sizes, rather than reaching the history. Also a handler's 3 MiB result through the worker
 * pool's asynchronous completion, read back exactly.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    char *dir;
    aj_engine *e;
} fixture;

/* Returns as many bytes as its payload (a decimal) says: 'a'..'z' repeated. */
static int sized_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    size_t n = (size_t)strtoull(job->payload, NULL, 10);
    char *p = malloc(n ? n : 1);
    if (p == NULL) {
        return aj_ctx_fail(ctx, "out of memory", 1);
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (char)('a' + i % 26);
    }
    int rc = aj_ctx_set_result(ctx, p, n);
    free(p);
    return rc != 0 ? aj_ctx_fail(ctx, aj_errmsg(), 1) : 0;
}

static int big_activity(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "sized";
    s.queue = "acts";
    s.payload = input.data;
    s.payload_len = input.len;
    s.max_attempts = 1;
    aj_bytes out;
    int rc = aj_activity(wf, "make", &s, &out);
    if (rc != 0) {
        return rc == AJ_SUSPEND ? rc : aj_wf_fail(wf, "activity failed");
    }
    char len[32];
    snprintf(len, sizeof len, "%zu", out.len);
    for (size_t i = 0; i < out.len; i++) {
        if (((const char *)out.data)[i] != (char)('a' + i % 26)) {
            return aj_wf_fail(wf, "activity result damaged");
        }
    }
    return aj_wf_set_result(wf, len, strlen(len));
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = aj_test_tmpdir();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/blob.db", f->dir);
    assert_int_equal(aj_engine_open(&f->e, url, NULL), 0);
    assert_int_equal(aj_register(f->e, "sized", sized_handler, NULL), 0);
    assert_int_equal(aj_workflow_register(f->e, "big", big_activity, NULL), 0);
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

static void test_handler_result(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "sized";
    s.payload = "3145733";
    s.payload_len = 7;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_job_state st;
    assert_int_equal(aj_job_wait(f->e, id, 60000, &st), 0);
    assert_int_equal(st, AJ_STATE_COMPLETED);
    aj_job *j;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    assert_int_equal(j->result_len, 3145733);
    for (size_t i = 0; i < j->result_len; i += 4099) {
        assert_int_equal(((const char *)j->result)[i], (char)('a' + i % 26));
    }
    aj_job_free(j);
    aj_blob_stats b;
    assert_int_equal(aj_blob_stats_get(f->e, &b), 0);
    assert_int_equal(b.count, 1);
    assert_int_equal(b.refs, 1);
}

static void run_wf(fixture *f, const char *id, const char *size, aj_wf_state want,
                   const char *want_text) {
    aj_wf_start_opts o = {id, 0, 0};
    assert_int_equal(aj_wf_start(f->e, "big", size, strlen(size), &o, NULL), 0);
    aj_wf_state st;
    assert_int_equal(aj_wf_wait(f->e, id, 60000, &st), 0);
    aj_wf_info *info;
    assert_int_equal(aj_wf_get(f->e, id, &info), 0);
    if (st != want) {
        fail_msg("workflow %s ended %s (%s)", id, aj_wf_state_name(st),
                 info->error ? info->error : "");
    }
    const char *text = want == AJ_WF_COMPLETED ? info->result : info->error;
    assert_non_null(text);
    assert_non_null(strstr(text, want_text));
    aj_wf_info_free(info);
}

static int find_failure(void *ud, const aj_wf_event *ev) {
    if (strcmp(ev->type, "activity_failed") == 0 && ev->data.len < 256) {
        char text[256];
        memcpy(text, ev->data.data, ev->data.len);
        text[ev->data.len] = '\0';
        if (strstr(text, "activity result is 2097152 bytes, over the 1048576-byte limit of "
                         "workflow data") != NULL) {
            *(int *)ud = 1;
        }
    }
    return 0;
}

static void test_workflow_activity(void **state) {
    fixture *f = *state;
    /* 600 KiB: over the blob threshold, within the workflow data limit. */
    run_wf(f, "big-1", "614400", AJ_WF_COMPLETED, "614400");
    /* 2 MiB: the activity fails; its history event names the sizes. */
    run_wf(f, "big-2", "2097152", AJ_WF_FAILED, "activity failed");
    int found = 0;
    assert_int_equal(aj_wf_history(f->e, "big-2", 0, find_failure, &found), 0);
    assert_true(found);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handler_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_activity, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
