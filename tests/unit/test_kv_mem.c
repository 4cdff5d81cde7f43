/*
 * test_kv_mem.c — the memory backend's own promises: fault injection (fail the Nth operation, a
 * crash that drops only asynchronous commits, injected conflicts), multi-version snapshots and
 * garbage collection under churn, and scale.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include "store/kv.h"
#include "util/mem.h"

static int setup(void **state) {
    kv_store *s;
    assert_int_equal(kv_open(&s, "mem:", NULL), 0);
    *state = s;
    return 0;
}

static int teardown(void **state) {
    kv_close(*state);
    return 0;
}

static int put(kv_store *s, const char *k, const char *v, kv_sync sync) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(v != NULL ? kv_put(t, k, strlen(k), v, strlen(v)) : kv_del(t, k, strlen(k)),
                     0);
    return kv_commit(t, sync, NULL, NULL, NULL);
}

static int get(kv_store *s, const char *k, char *buf, size_t size) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    const uint8_t *v;
    size_t vl;
    int rc = kv_get(t, k, strlen(k), &v, &vl);
    if (rc == 0) {
        assert_true(vl < size);
        memcpy(buf, v, vl);
        buf[vl] = '\0';
    }
    kv_abort(t);
    return rc;
}

static int count_cb(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    uint64_t ver) {
    (void)k, (void)kl, (void)v, (void)vl, (void)ver;
    (*(size_t *)ud)++;
    return 0;
}

static void test_fail_at(void **state) {
    kv_store *s = *state;
    char buf[16];
    assert_int_equal(put(s, "k", "1", KV_SYNC), 0);
    uint64_t ops = kv_mem_ops(s);
    assert_true(ops >= 1);

    /* The next operation (a read) fails, the one after works. */
    kv_mem_fail_at(s, 1);
    assert_int_equal(get(s, "k", buf, sizeof buf), AJ_EIO);
    assert_non_null(strstr(aj_errmsg(), "injected"));
    assert_int_equal(get(s, "k", buf, sizeof buf), 0);
    assert_int_equal(kv_mem_ops(s), ops + 2);

    /* A failed commit writes nothing. */
    kv_mem_fail_at(s, 1);
    assert_int_equal(put(s, "k", "2", KV_SYNC), AJ_EIO);
    assert_int_equal(get(s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "1");

    /* Scans count too; the third operation of this transaction fails. */
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    kv_mem_fail_at(s, 3);
    const uint8_t *v;
    size_t vl, n = 0;
    assert_int_equal(kv_get(t, "k", 1, &v, &vl), 0);
    assert_int_equal(kv_scan(t, NULL, 0, NULL, 0, 0, 0, count_cb, &n), 0);
    assert_int_equal(kv_get(t, "j", 1, &v, &vl), AJ_EIO);
    kv_abort(t);

    /* Disarmed: nothing fails. */
    kv_mem_fail_at(s, 2);
    kv_mem_fail_at(s, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(s, "k", buf, sizeof buf), 0);
    }
}

static void test_crash_drops_async_only(void **state) {
    kv_store *s = *state;
    char buf[16];
    assert_int_equal(put(s, "a", "1", KV_SYNC), 0);
    assert_int_equal(put(s, "c", "1", KV_SYNC), 0);
    assert_int_equal(put(s, "b", "async", KV_ASYNC), 0);
    assert_int_equal(put(s, "a", "2", KV_ASYNC), 0);
    assert_int_equal(put(s, "a", "3", KV_ASYNC), 0);
    assert_int_equal(put(s, "c", NULL, KV_ASYNC), 0);
    assert_int_equal(get(s, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "3");
    uint64_t seq = kv_change_seq(s);
    kv_mem_crash(s);
    assert_true(kv_change_seq(s) != seq);
    assert_int_equal(get(s, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "1");
    assert_int_equal(get(s, "b", buf, sizeof buf), AJ_ENOTFOUND);
    assert_int_equal(get(s, "c", buf, sizeof buf), 0);
    assert_string_equal(buf, "1");

    /* A synchronous commit makes the asynchronous ones before it durable. */
    assert_int_equal(put(s, "x", "async", KV_ASYNC), 0);
    assert_int_equal(put(s, "y", "sync", KV_SYNC), 0);
    assert_int_equal(put(s, "z", "async", KV_ASYNC), 0);
    kv_mem_crash(s);
    assert_int_equal(get(s, "x", buf, sizeof buf), 0);
    assert_int_equal(get(s, "y", buf, sizeof buf), 0);
    assert_int_equal(get(s, "z", buf, sizeof buf), AJ_ENOTFOUND);

    /* KV_APPLIED commits are visible at once but durable only with the next KV_SYNC one. */
    assert_int_equal(put(s, "p", "applied", KV_APPLIED), 0);
    assert_int_equal(get(s, "p", buf, sizeof buf), 0);
    kv_mem_crash(s);
    assert_int_equal(get(s, "p", buf, sizeof buf), AJ_ENOTFOUND);
    assert_int_equal(put(s, "p", "applied", KV_APPLIED), 0);
    assert_int_equal(put(s, "q", "sync", KV_SYNC), 0);
    kv_mem_crash(s);
    assert_int_equal(get(s, "p", buf, sizeof buf), 0);

    /* Versions never go back after a crash. */
    kv_txn *t;
    uint64_t v0 = 0, v1 = 0;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_put(t, "w", 1, "0", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, &v0), 0);
    assert_int_equal(put(s, "w", "dropped", KV_ASYNC), 0); /* gets version v0 + 1 */
    kv_mem_crash(s);
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_put(t, "w", 1, "2", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, &v1), 0);
    assert_true(v1 > v0 + 1);
}

static void test_inject_conflicts(void **state) {
    kv_store *s = *state;
    kv_mem_inject_conflicts(s, 2);
    assert_int_equal(put(s, "k", "1", KV_SYNC), AJ_ECONFLICT);
    assert_int_equal(put(s, "k", "2", KV_SYNC), AJ_ECONFLICT);
    assert_int_equal(put(s, "k", "3", KV_SYNC), 0);
    char buf[8];
    assert_int_equal(get(s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "3");
}

/* A lost outcome: the second write from now is applied but reported AJ_EAMBIGUOUS. */
static void test_lose_outcome(void **state) {
    kv_store *s = *state;
    kv_mem_lose_outcome_at(s, 2);
    assert_int_equal(put(s, "k", "1", KV_SYNC), 0);
    assert_int_equal(put(s, "k", "2", KV_SYNC), AJ_EAMBIGUOUS);
    char buf[8];
    assert_int_equal(get(s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "2");
    assert_int_equal(put(s, "k", "3", KV_SYNC), 0);
    kv_mem_lose_outcome_at(s, 1);
    kv_mem_lose_outcome_at(s, 0); /* disarmed */
    assert_int_equal(put(s, "k", "4", KV_SYNC), 0);
}

static void test_snapshot_under_churn(void **state) {
    kv_store *s = *state;
    char k[32], v[32], buf[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        assert_int_equal(put(s, k, "orig", KV_SYNC), 0);
    }
    kv_txn *old;
    assert_int_equal(kv_begin(s, &old), 0);
    const uint8_t *val;
    size_t vl;
    assert_int_equal(kv_get(old, "key000", 6, &val, &vl), 0);
    /* Many commits rewrite and delete every key while the old snapshot stays open. */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(k, sizeof k, "key%03d", i);
            snprintf(v, sizeof v, "r%d", round);
            assert_int_equal(put(s, k, round % 3 == 2 ? NULL : v, round % 2 ? KV_ASYNC : KV_SYNC),
                             0);
        }
    }
    size_t n = 0;
    assert_int_equal(kv_scan_prefix(old, "key", 3, 0, 0, count_cb, &n), 0);
    assert_int_equal(n, 100);
    assert_int_equal(kv_get(old, "key099", 6, &val, &vl), 0);
    assert_memory_equal(val, "orig", 4);
    kv_abort(old);
    /* Round 49 wrote "r49" everywhere. */
    assert_int_equal(get(s, "key050", buf, sizeof buf), 0);
    assert_string_equal(buf, "r49");
    /* Deleting everything and collecting leaves an empty, working store. */
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        assert_int_equal(put(s, k, NULL, KV_SYNC), 0);
    }
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    n = 0;
    assert_int_equal(kv_scan(t, NULL, 0, NULL, 0, 1, 0, count_cb, &n), 0);
    assert_int_equal(n, 0);
    kv_abort(t);
}

static void test_scale(void **state) {
    kv_store *s = *state;
    enum { KEYS = 200000, PER_TXN = 10000 };
    for (int base = 0; base < KEYS; base += PER_TXN) {
        kv_txn *t;
        assert_int_equal(kv_begin(s, &t), 0);
        for (int i = base; i < base + PER_TXN; i++) {
            /* Scrambled order: the skip list, not the input, must sort. */
            uint32_t x = (uint32_t)i * 2654435761u;
            uint8_t k[5] = {'s', (uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8),
                            (uint8_t)x};
            assert_int_equal(kv_put(t, k, sizeof k, k, sizeof k), 0);
        }
        assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    }
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    size_t n = 0;
    assert_int_equal(kv_scan_prefix(t, "s", 1, 0, 0, count_cb, &n), 0);
    assert_int_equal(n, KEYS);
    n = 0;
    assert_int_equal(kv_scan_prefix(t, "s", 1, 1, 0, count_cb, &n), 0);
    assert_int_equal(n, KEYS);
    kv_abort(t);
}

/* One small workload; every step may fail with AJ_ENOMEM, and nothing may crash or leak. */
static int workload(void) {
    kv_store *s;
    int rc = kv_open(&s, "mem:", NULL);
    if (rc != 0) {
        return rc;
    }
    for (int round = 0; round < 3 && rc == 0; round++) {
        kv_txn *t;
        rc = kv_begin(s, &t);
        if (rc != 0) {
            break;
        }
        const uint8_t *v;
        size_t vl, n = 0;
        for (int i = 0; i < 40 && rc == 0; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%02d", (i * 7 + round) % 40);
            rc = kv_put(t, k, strlen(k), k, strlen(k));
        }
        if (rc == 0) {
            rc = kv_del(t, "k05", 3);
        }
        if (rc == 0) {
            rc = kv_get(t, "k07", 3, &v, &vl);
        }
        if (rc == 0 || rc == AJ_ENOTFOUND) {
            rc = kv_scan_prefix(t, "k", 1, round % 2, 0, count_cb, &n);
        }
        if (rc != 0) {
            kv_abort(t);
            break;
        }
        rc = kv_commit(t, round == 1 ? KV_ASYNC : KV_SYNC, NULL, NULL, NULL);
    }
    kv_close(s);
    return rc;
}

static void test_alloc_failures(void **state) {
    (void)state;
    int ok = 0;
    for (unsigned long n = 1; n < 2000 && !ok; n++) {
        aj__mem_fail_at(n);
        int rc = workload();
        aj__mem_fail_at(0);
        assert_true(rc == 0 || rc == AJ_ENOMEM);
        ok = rc == 0;
    }
    assert_true(ok); /* past the last allocation the workload succeeds */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fail_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_drops_async_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inject_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lose_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_under_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
