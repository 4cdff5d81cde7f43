/*
 * test_counters.c — counters in the store: every process adds to its own record, the store's
 * totals are the sum, and the records of processes gone quiet are folded into one base record
 * without changing any total (so `aj stats` does not slow down with every `aj` command ever run).
 * A shared memory store stands for the file; engines open and close on it like processes.
 */
#include "harness.h"

#include <string.h>

#include "core/keys.h"
#include "runtime/engine.h"
#include "store/kv.h"

#define T0 ((int64_t)1767225600000)

static aj_engine *open_engine(kv_store *kv, aj_test_clock *clock) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &clock->clock;
    o.background = 0;
    aj_engine *e = NULL;
    assert_int_equal(aj__engine_open_kv(&e, kv, &o), 0);
    return e;
}

static void submit(aj_engine *e, int n) {
    for (int i = 0; i < n; i++) {
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "echo";
        uint64_t id;
        assert_int_equal(aj_submit(e, &s, &id), 0);
    }
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

static size_t counter_records(kv_store *kv) {
    kv_txn *t;
    assert_int_equal(kv_begin(kv, &t), 0);
    akey k;
    key_prefix(&k, KEY_COUNTERS);
    size_t n = 0;
    assert_int_equal(kv_scan_prefix(t, k.b, k.n, 0, 0, count_cb, &n), 0);
    kv_abort(t);
    return n;
}

static uint64_t total_submitted(aj_engine *e) {
    aj_stats st;
    assert_int_equal(aj_stats_get(e, &st), 0);
    return st.total.submitted;
}

static void test_fold_keeps_totals(void **state) {
    (void)state;
    kv_store *kv;
    assert_int_equal(kv_open(&kv, "mem:", NULL), 0);
    aj_test_clock clock;
    aj_test_clock_init(&clock, T0);

    /* Ten short-lived "commands", each submitting and closing: ten records. */
    for (int i = 1; i <= 10; i++) {
        aj_engine *e = open_engine(kv, &clock);
        submit(e, i);
        aj_engine_close(e);
        aj_test_clock_advance(&clock, 1000);
    }
    assert_int_equal(counter_records(kv), 10);

    /* A long-lived process: it sees every total, its own unflushed counts included. */
    aj_engine *live = open_engine(kv, &clock);
    submit(live, 5);
    assert_int_equal(total_submitted(live), 55 + 5);
    aj_test_clock_advance(&clock, ENG_COUNTER_FLUSH_MS);
    assert_int_equal(aj_engine_tick(live), 0); /* flushes; nothing quiet long enough yet */
    assert_int_equal(counter_records(kv), 11);
    assert_int_equal(total_submitted(live), 60);

    /* Ten minutes later the exited processes' records fold into one base record. */
    aj_test_clock_advance(&clock, ENG_COUNTERS_FOLD_MS + 1);
    assert_int_equal(aj_engine_tick(live), 0);
    assert_int_equal(counter_records(kv), 2); /* the base and the live process */
    assert_int_equal(total_submitted(live), 60);

    /* Another process folds the quiet live one too; when that one counts again it starts a new
     * record, and nothing is counted twice. */
    aj_test_clock_advance(&clock, ENG_COUNTERS_FOLD_MS + 1);
    aj_engine *other = open_engine(kv, &clock);
    assert_int_equal(aj_engine_tick(other), 0);
    assert_int_equal(counter_records(kv), 1);
    assert_int_equal(total_submitted(other), 60);
    submit(live, 2);
    assert_int_equal(aj_engine_tick(live), 0);
    assert_int_equal(counter_records(kv), 2);
    assert_int_equal(total_submitted(other), 62);
    assert_int_equal(total_submitted(live), 62);
    aj_engine_close(other);
    aj_engine_close(live);

    aj_engine *last = open_engine(kv, &clock);
    assert_int_equal(total_submitted(last), 62);
    aj_engine_close(last);
    kv_close(kv);
}

/* A damaged record only loses its own statistics: it is skipped by totals and dropped by the
 * fold. */
static void test_damaged_record(void **state) {
    (void)state;
    kv_store *kv;
    assert_int_equal(kv_open(&kv, "mem:", NULL), 0);
    aj_test_clock clock;
    aj_test_clock_init(&clock, T0);
    aj_engine *e = open_engine(kv, &clock);
    submit(e, 3);
    aj_engine_close(e);
    kv_txn *t;
    assert_int_equal(kv_begin(kv, &t), 0);
    akey k;
    key_counters(&k, 12345);
    assert_int_equal(kv_put(t, k.b, k.n, "\x07garbage", 8), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    e = open_engine(kv, &clock);
    assert_int_equal(total_submitted(e), 3);
    aj_test_clock_advance(&clock, ENG_COUNTERS_FOLD_MS + 1);
    assert_int_equal(aj_engine_tick(e), 0);
    assert_int_equal(counter_records(kv), 2); /* the base, and e's own (its transactions) */
    assert_int_equal(total_submitted(e), 3);
    aj_engine_close(e);
    kv_close(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_keeps_totals),
        cmocka_unit_test(test_damaged_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
