/*
 * test_crashpoints.c — crash-point enumeration on the memory store. For every N, a full job
 * lifecycle runs with the Nth storage operation failing (AJ_EIO); then the process "crashes"
 * (everything not yet durable is dropped) and a new engine opens the same store. Each time:
 *   - every index matches its records (aj_check);
 *   - every job whose submit was acknowledged exists;
 *   - every job acknowledged completed by a synchronous aj_complete is still completed;
 *   - nothing is stuck: after leases expire, every remaining job can be run to completion.
 * The loop ends when N passes the number of operations the lifecycle performs.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/engine.h"
#include "store/kv.h"

#define T0 ((int64_t)1767225600000)
#define MAX_IDS 16

typedef struct ledger {
    uint64_t acked[MAX_IDS];
    size_t n_acked;
    uint64_t completed[MAX_IDS];
    size_t n_completed;
} ledger;

static aj_engine *open_engine(kv_store *kv, aj_test_clock *clock) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &clock->clock;
    o.seed = 7;
    o.background = 0;
    aj_engine *e = NULL;
    int rc = aj__engine_open_kv(&e, kv, &o);
    return rc == 0 ? e : NULL;
}

static void submit_one(aj_engine *e, ledger *l, const char *key, int64_t delay) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.payload = "{\"v\":1}";
    s.payload_len = 7;
    s.idempotency_key = key;
    s.delay_ms = delay;
    s.backoff.kind = AJ_BACKOFF_FIXED;
    s.backoff.initial_ms = 100;
    uint64_t id;
    if (aj_submit(e, &s, &id) == 0 && l->n_acked < MAX_IDS) {
        l->acked[l->n_acked++] = id;
    }
}

/* One lifecycle, tolerating failures anywhere. */
static void lifecycle(aj_engine *e, aj_test_clock *clock, ledger *l) {
    submit_one(e, l, NULL, 0);
    submit_one(e, l, "k1", 0);
    submit_one(e, l, "k1", 0); /* duplicate: same id */
    submit_one(e, l, NULL, 500);
    aj_job_spec batch[2];
    for (int i = 0; i < 2; i++) {
        aj_job_spec_init(&batch[i]);
        batch[i].type = "echo";
        batch[i].queue = "q2";
    }
    uint64_t ids[2];
    if (aj_submit_batch(e, batch, 2, ids) == 0) {
        l->acked[l->n_acked++] = ids[0];
        l->acked[l->n_acked++] = ids[1];
    }
    aj_job **jobs = NULL;
    size_t n = 0;
    if (aj_claim(e, NULL, 0, "w", 3, &jobs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (i == 0) {
                if (aj_complete(e, jobs[i]->id, jobs[i]->epoch, "r", 1) == 0) {
                    l->completed[l->n_completed++] = jobs[i]->id;
                }
            } else if (i == 1) {
                aj_heartbeat(e, jobs[i]->id, jobs[i]->epoch);
                aj_fail(e, jobs[i]->id, jobs[i]->epoch, "retry me", 0);
            } else {
                aj_fail(e, jobs[i]->id, jobs[i]->epoch, "give up", 1);
                aj_dlq_redrive(e, jobs[i]->id);
            }
        }
        aj_job_list_free(jobs, n);
    }
    if (l->n_acked > 0) {
        aj_job_cancel(e, l->acked[l->n_acked - 1]);
    }
    aj_test_clock_advance(clock, 1000);
    aj_engine_tick(e);
    aj_stats st;
    aj_stats_get(e, &st);
}

/* Runs everything left to completion; fails the test if something cannot finish. */
static void finish_everything(aj_engine *e, aj_test_clock *clock) {
    for (int round = 0; round < 20; round++) {
        aj_test_clock_advance(clock, 60 * AJ_SECOND); /* past every lease and backoff */
        assert_int_equal(aj_engine_tick(e), 0);
        aj_job **jobs;
        size_t n;
        assert_int_equal(aj_claim(e, NULL, 0, "w2", 64, &jobs, &n), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(aj_complete(e, jobs[i]->id, jobs[i]->epoch, NULL, 0), 0);
        }
        aj_job_list_free(jobs, n);
        aj_stats st;
        assert_int_equal(aj_stats_get(e, &st), 0);
        if (st.jobs[AJ_STATE_READY] + st.jobs[AJ_STATE_RUNNING] + st.jobs[AJ_STATE_SCHEDULED] ==
            0) {
            return;
        }
    }
    fail_msg("jobs are stuck after recovery");
}

static void test_every_crash_point(void **state) {
    (void)state;
    uint64_t points = 0;
    for (uint64_t n = 1;; n++) {
        kv_store *kv;
        assert_int_equal(kv_mem_open(&kv), 0);
        aj_test_clock clock;
        aj_test_clock_init(&clock, T0);
        aj_engine *e = open_engine(kv, &clock);
        assert_non_null(e);
        ledger l;
        memset(&l, 0, sizeof l);
        uint64_t base = kv_mem_ops(kv);
        kv_mem_fail_at(kv, n);
        lifecycle(e, &clock, &l);
        int fired = kv_mem_ops(kv) - base >= n;
        kv_mem_fail_at(kv, 0);
        aj_engine_close(e);
        kv_mem_crash(kv);

        e = open_engine(kv, &clock);
        assert_non_null(e);
        uint64_t records;
        if (aj_check(e, NULL, NULL, &records) != 0) {
            fail_msg("crash point %llu: indexes do not match records: %s", (unsigned long long)n,
                     aj_errmsg());
        }
        for (size_t i = 0; i < l.n_acked; i++) {
            aj_job *j;
            if (aj_job_get(e, l.acked[i], &j) != 0) {
                fail_msg("crash point %llu: acknowledged job %llu was lost", (unsigned long long)n,
                         (unsigned long long)l.acked[i]);
            }
            aj_job_free(j);
        }
        for (size_t i = 0; i < l.n_completed; i++) {
            aj_job *j;
            assert_int_equal(aj_job_get(e, l.completed[i], &j), 0);
            assert_int_equal(j->state, AJ_STATE_COMPLETED);
            aj_job_free(j);
        }
        finish_everything(e, &clock);
        assert_int_equal(aj_check(e, NULL, NULL, &records), 0);
        aj_engine_close(e);
        kv_close(kv);
        points++;
        if (!fired) {
            break; /* the lifecycle finished before operation n: every point was covered */
        }
    }
    printf("crash points enumerated: %llu\n", (unsigned long long)points);
    assert_true(points > 40); /* the lifecycle spans this many storage operations */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_crash_point),
    };
    return cmocka_run_group_tests_name("crashpoints", tests, NULL, NULL);
}
