/*
 * test_ids.c — job ids taken inside a transaction (job_env.alloc_id) come from the engine's
 * block without any commit of their own; an empty block makes the attempt run again after a
 * refill outside the transaction; ids stay unique and increasing within the process.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/engine.h"
#include "store/kv.h"

static uint64_t batches(aj_engine *e) {
    uint64_t b = 0, s = 0;
    kv_commit_stats(e->kv, &b, &s, NULL, 0);
    return b;
}

static void empty_block(aj_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->id_next = e->id_end;
    pthread_mutex_unlock(&e->mu);
}

static aj_engine *open_mem(void) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.background = 0;
    o.seed = 7;
    aj_engine *e = NULL;
    assert_int_equal(aj_engine_open(&e, "mem:", &o), 0);
    return e;
}

/* Inside a transaction, an empty block is reported, not refilled with a nested commit. */
static void test_alloc_never_commits(void **state) {
    (void)state;
    aj_engine *e = open_mem();
    empty_block(e);
    kv_txn *t = NULL;
    assert_int_equal(kv_begin(e->kv, &t), 0);
    job_env env;
    eng_id_src ids;
    eng_env(e, &env, NULL, &ids);
    uint64_t before = batches(e);
    uint64_t id = 0;
    assert_int_not_equal(env.alloc_id(env.alloc_ud, &id), 0);
    assert_true(ids.empty);
    assert_int_equal(batches(e), before);
    kv_abort(t);
    aj_engine_close(e);
}

typedef struct take_ctx {
    size_t n;
    uint64_t got[3 * ENG_ID_BLOCK];
    int runs;
} take_ctx;

static int take_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)t;
    take_ctx *c = ud;
    c->runs++;
    for (size_t i = 0; i < c->n; i++) {
        int rc = env->alloc_id(env->alloc_ud, &c->got[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* eng_run refills outside the transaction and runs the body again; ids increase. */
static void test_refill_and_retry(void **state) {
    (void)state;
    aj_engine *e = open_mem();
    uint64_t first = 0;
    assert_int_equal(eng_ids(e, 1, &first), 0);
    empty_block(e);
    take_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->n = 3;
    assert_int_equal(eng_run(e, take_txn, c, KV_SYNC), 0);
    assert_int_equal(c->runs, 2);
    assert_true(c->got[0] > first);
    assert_true(c->got[1] > c->got[0] && c->got[2] > c->got[1]);
    /* A body that takes more than what is left of the block gets a fresh one. */
    uint64_t last = c->got[2];
    c->n = ENG_ID_BLOCK;
    c->runs = 0;
    assert_int_equal(eng_run(e, take_txn, c, KV_SYNC), 0);
    assert_int_equal(c->runs, 2);
    assert_true(c->got[0] > last);
    for (size_t i = 1; i < c->n; i++) {
        assert_true(c->got[i] > c->got[i - 1]);
    }
    /* Submits keep going up after ids taken inside transactions. */
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    uint64_t id = 0;
    assert_int_equal(aj_submit(e, &s, &id), 0);
    assert_true(id > c->got[c->n - 1]);
    free(c);
    aj_engine_close(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_never_commits),
        cmocka_unit_test(test_refill_and_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
