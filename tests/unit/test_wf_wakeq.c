/*
 * test_wf_wakeq.c — wake requests (core/wf_wakeq.h): arrivals written as wake requests never
 * conflict with each other, and requests a crash left unfolded are folded by the sweep duty
 * once they are old enough, so no arrival stays without a task.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys.h"
#include "core/wf_wakeq.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "store/kv.h"

#define T0 1700000000000LL

typedef struct fixture {
    aj_test_clock clock;
    kv_store *kv;
    aj_engine *e;
    eng_id_src ids; /* job ids for the transactions the tests run by hand */
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    aj_test_clock_init(&f->clock, T0);
    assert_int_equal(kv_mem_open(&f->kv), 0);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &f->clock.clock;
    o.seed = 7;
    o.background = 0;
    assert_int_equal(aj__engine_open_kv(&f->e, f->kv, &o), 0);
    assert_int_equal(eng_ids_refill(f->e, 64), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    aj_engine_close(f->e);
    kv_close(f->kv);
    free(f);
    return 0;
}

static int count_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)version;
    (*(size_t *)ud)++;
    return 0;
}

static size_t keys_with(fixture *f, const char *prefix) {
    kv_txn *t = NULL;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    size_t n = 0;
    assert_int_equal(kv_scan_prefix(t, prefix, strlen(prefix), 0, 0, count_cb, &n), 0);
    kv_abort(t);
    return n;
}

/* An arrival for workflow "w" in its own transaction, not yet committed: woken at once in that
 * transaction (`now`: wf_wake, as every arrival did before wake requests) or by a request. */
static kv_txn *arrival(fixture *f, job_env *env, int now, uint64_t rand) {
    kv_txn *t = NULL;
    eng_env(f->e, env, NULL, &f->ids);
    env->rand = rand;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    wf_rec w;
    assert_int_equal(wf_peek(t, aj__slice_str("w"), &w), 0);
    wf_inbox_entry e = {EV_SIGNAL_RECEIVED, w.run, 0, 0, aj__slice_str("s"), aj__slice_str("")};
    assert_int_equal(wf_inbox_add(t, env, &w, &e, !now), 0);
    if (now) {
        assert_int_equal(wf_wake(t, env, w.id, w.type, 0), 0);
    }
    return t;
}

static void test_deferred_arrivals_do_not_conflict(void **state) {
    fixture *f = *state;
    kv_txn *t = NULL;
    job_env env;
    eng_env(f->e, &env, NULL, &f->ids);
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(wf_start(t, &env, "p", "w", aj__slice_str(""), NULL), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    /* The start's task is ready: wake-ups that read it and the marker find it. Make it not
     * ready (as when a worker has claimed it) by deleting the marker: now each immediate
     * wake-up writes a marker, and two of them conflict. */
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_del(t, "Gw\0\0", 4), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    job_env e1, e2;
    kv_txn *a = arrival(f, &e1, 1, 1);
    kv_txn *b = arrival(f, &e2, 1, 2);
    assert_int_equal(kv_commit(a, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(kv_commit(b, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_del(t, "Gw\0\0", 4), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    size_t jobs = keys_with(f, "J");

    /* Deferred: blind writes only, whatever commits in between. */
    a = arrival(f, &e1, 0, 3);
    b = arrival(f, &e2, 0, 4);
    assert_int_equal(kv_commit(a, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(kv_commit(b, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(keys_with(f, "gw"), 2);
    assert_int_equal(keys_with(f, "J"), jobs); /* no task yet: the writer folds */

    /* The writer "crashed" before folding: the sweep leaves young requests to their writers,
     * then folds them into one new task. */
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(keys_with(f, "gw"), 2);
    aj_test_clock_advance(&f->clock, WF_WAKEQ_SWEEP_AGE_MS + 1);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(keys_with(f, "gw"), 0);
    assert_int_equal(keys_with(f, "J"), jobs + 1);
    assert_int_equal(keys_with(f, "Gw"), 3 + 1); /* three signals and the new marker */
}

/* Folding requests of a workflow that ended (or was collected) just removes them. */
static void test_fold_of_a_gone_workflow(void **state) {
    fixture *f = *state;
    kv_txn *t = NULL;
    job_env env;
    eng_env(f->e, &env, NULL, &f->ids);
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(wf_wakeq_add(t, &env, aj__slice_str("nobody"), 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    size_t jobs = keys_with(f, "J");
    assert_int_equal(kv_begin(f->kv, &t), 0);
    size_t n = 0;
    assert_int_equal(wf_wakeq_fold(t, &env, aj__slice_str("nobody"), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(keys_with(f, "g"), 0);
    assert_int_equal(keys_with(f, "J"), jobs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deferred_arrivals_do_not_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fold_of_a_gone_workflow, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
