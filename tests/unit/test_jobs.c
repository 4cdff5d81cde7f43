/*
 * test_jobs.c — the job lifecycle through the public API on the memory store, driven by a
 * simulated clock and a seeded PRNG (no background threads: the test calls aj_engine_tick), so
 * every lease expiry, retry delay and retention is exact and repeatable.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys.h"
#include "runtime/engine.h"
#include "store/kv.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/sha256.h"

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */

typedef struct fixture {
    aj_test_clock clock;
    aj_engine *e;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    aj_test_clock_init(&f->clock, T0);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &f->clock.clock;
    o.seed = 42;
    o.background = 0;
    assert_int_equal(aj_engine_open(&f->e, "mem:", &o), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    aj_engine_close(f->e);
    free(f);
    return 0;
}

static uint64_t submit(fixture *f, const char *type, const char *payload, uint32_t prio) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = type;
    s.payload = payload;
    s.payload_len = strlen(payload);
    s.priority = prio;
    uint64_t id = 0;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    assert_true(id > 0);
    return id;
}

static aj_job *get(fixture *f, uint64_t id) {
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    return j;
}

static aj_job_state state_of(fixture *f, uint64_t id) {
    aj_job *j = get(f, id);
    aj_job_state s = j->state;
    aj_job_free(j);
    return s;
}

/* Claims exactly one job and returns it (owned). */
static aj_job *claim_one(fixture *f) {
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w1", 1, &jobs, &n), 0);
    assert_int_equal(n, 1);
    aj_job *j = jobs[0];
    free(jobs);
    return j;
}

static size_t claim_none(fixture *f) {
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w1", 8, &jobs, &n), 0);
    aj_job_list_free(jobs, n);
    return n;
}

static void check_consistent(fixture *f) {
    uint64_t records;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
}

static void test_submit_defaults(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{\"a\":1}", AJ_PRIORITY_NORMAL);
    aj_job *j = get(f, id);
    assert_string_equal(j->queue, "default");
    assert_string_equal(j->type, "echo");
    assert_int_equal(j->state, AJ_STATE_READY);
    assert_int_equal(j->attempts, 0);
    assert_int_equal(j->max_attempts, 3);
    assert_int_equal(j->timeout_ms, 5 * AJ_MINUTE);
    assert_int_equal(j->lease_ms, 30 * AJ_SECOND);
    assert_int_equal(j->backoff.kind, AJ_BACKOFF_EXP);
    assert_memory_equal(j->payload, "{\"a\":1}", 7);
    assert_int_equal(j->payload_len, 7);
    assert_null(j->result);
    assert_int_equal(j->created_ms, T0);
    aj_job_free(j);
    assert_int_equal(aj_job_get(f->e, id + 1000, &j), AJ_ENOTFOUND);
    check_consistent(f);
}

static void test_priority_then_fifo(void **state) {
    fixture *f = *state;
    uint64_t low = submit(f, "echo", "1", AJ_PRIORITY_LOW);
    uint64_t n1 = submit(f, "echo", "2", AJ_PRIORITY_NORMAL);
    aj_test_clock_advance(&f->clock, 1);
    uint64_t n2 = submit(f, "echo", "3", AJ_PRIORITY_NORMAL);
    uint64_t crit = submit(f, "echo", "4", AJ_PRIORITY_CRITICAL);
    uint64_t high = submit(f, "echo", "5", AJ_PRIORITY_HIGH);
    uint64_t want[] = {crit, high, n1, n2, low};
    for (size_t i = 0; i < 5; i++) {
        aj_job *j = claim_one(f);
        assert_int_equal(j->id, want[i]);
        assert_int_equal(j->state, AJ_STATE_RUNNING);
        assert_int_equal(j->attempts, 1);
        aj_job_free(j);
    }
    assert_int_equal(claim_none(f), 0);
    check_consistent(f);
}

static void test_delay_and_promotion(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.delay_ms = 10 * AJ_SECOND;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    assert_int_equal(state_of(f, id), AJ_STATE_SCHEDULED);
    assert_int_equal(claim_none(f), 0);
    aj_test_clock_advance(&f->clock, 9999);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(state_of(f, id), AJ_STATE_SCHEDULED);
    aj_test_clock_advance(&f->clock, 1);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(state_of(f, id), AJ_STATE_READY);
    aj_job *j = claim_one(f);
    assert_int_equal(j->id, id);
    aj_job_free(j);
    check_consistent(f);
}

static void test_retry_backoff_then_dead(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL); /* exp:1s:2:5m, 3 attempts */
    int64_t expect_delay[] = {1000, 2000};
    for (int attempt = 1; attempt <= 3; attempt++) {
        aj_job *j = claim_one(f);
        assert_int_equal(j->attempts, attempt);
        assert_int_equal(aj_fail(f->e, id, j->epoch, "boom", 0), 0);
        aj_job_free(j);
        j = get(f, id);
        assert_string_equal(j->error, "boom");
        if (attempt < 3) {
            assert_int_equal(j->state, AJ_STATE_SCHEDULED);
            /* Within [delay, delay + 10%]: jitter only ever adds. */
            int64_t d = j->run_at_ms - f->clock.now;
            assert_true(d >= expect_delay[attempt - 1]);
            assert_true(d <= expect_delay[attempt - 1] * 11 / 10);
            assert_int_equal(claim_none(f), 0); /* not ready before its time */
            aj_test_clock_advance(&f->clock, d);
            assert_int_equal(aj_engine_tick(f->e), 0);
        } else {
            assert_int_equal(j->state, AJ_STATE_DEAD);
            assert_int_equal(j->dead_reason, AJ_DEAD_MAX_ATTEMPTS);
            assert_int_equal(j->attempts, 3);
            assert_true(j->dead_ms > 0);
        }
        aj_job_free(j);
    }
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_DEAD], 1);
    assert_int_equal(st.process.failed, 3);
    assert_int_equal(st.process.retried, 2);
    assert_int_equal(st.process.dead_lettered, 1);
    check_consistent(f);
}

static void test_permanent_failure(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    assert_int_equal(aj_fail(f->e, id, j->epoch, "bad input", 1), 0);
    aj_job_free(j);
    j = get(f, id);
    assert_int_equal(j->state, AJ_STATE_DEAD);
    assert_int_equal(j->dead_reason, AJ_DEAD_PERMANENT);
    assert_int_equal(j->attempts, 1);
    aj_job_free(j);
}

static void test_fencing_after_lease_expiry(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *stalled = claim_one(f);
    uint64_t e1 = stalled->epoch;
    aj_test_clock_advance(&f->clock, 30 * AJ_SECOND - 1);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(state_of(f, id), AJ_STATE_RUNNING); /* not yet expired */
    aj_test_clock_advance(&f->clock, 1);
    assert_int_equal(aj_engine_tick(f->e), 0);
    aj_job *j = get(f, id);
    assert_int_equal(j->state, AJ_STATE_SCHEDULED); /* retry with backoff */
    assert_non_null(strstr(j->error, "lease expired"));
    aj_job_free(j);
    /* The stalled worker wakes up: everything it does is refused. */
    assert_int_equal(aj_complete(f->e, id, e1, "late", 4), AJ_ESTALE);
    assert_int_equal(aj_heartbeat(f->e, id, e1), AJ_ESTALE);
    assert_int_equal(aj_fail(f->e, id, e1, "late", 0), AJ_ESTALE);
    aj_test_clock_advance(&f->clock, 2 * AJ_SECOND);
    assert_int_equal(aj_engine_tick(f->e), 0);
    aj_job *fresh = claim_one(f);
    assert_true(fresh->epoch > e1);
    assert_int_equal(aj_complete(f->e, id, e1, "late", 4), AJ_ESTALE);
    assert_int_equal(aj_complete(f->e, id, fresh->epoch, "ok", 2), 0);
    j = get(f, id);
    assert_int_equal(j->state, AJ_STATE_COMPLETED);
    assert_string_equal(j->result, "ok");
    assert_int_equal(j->attempts, 2);
    aj_job_free(j);
    aj_job_free(fresh);
    aj_job_free(stalled);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.process.lease_expired, 1);
    check_consistent(f);
}

static void test_lease_expiry_exhausts_attempts(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.max_attempts = 1;
    s.lease_ms = 5 * AJ_SECOND;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_job *j = claim_one(f);
    aj_job_free(j);
    aj_test_clock_advance(&f->clock, 5 * AJ_SECOND);
    assert_int_equal(aj_engine_tick(f->e), 0);
    j = get(f, id);
    assert_int_equal(j->state, AJ_STATE_DEAD);
    assert_int_equal(j->dead_reason, AJ_DEAD_LEASE_EXPIRED);
    aj_job_free(j);
}

static void test_heartbeat_extends_lease(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    for (int i = 0; i < 5; i++) {
        aj_test_clock_advance(&f->clock, 20 * AJ_SECOND);
        assert_int_equal(aj_heartbeat(f->e, id, j->epoch), 0);
        assert_int_equal(aj_engine_tick(f->e), 0);
        assert_int_equal(state_of(f, id), AJ_STATE_RUNNING);
    }
    assert_int_equal(aj_complete(f->e, id, j->epoch, NULL, 0), 0);
    aj_job_free(j);
    check_consistent(f);
}

static void test_timeout_reason(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.max_attempts = 1;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_job *j = claim_one(f);
    assert_int_equal(aj_fail_timeout(f->e, id, j->epoch, "timed out after 5m"), 0);
    aj_job_free(j);
    j = get(f, id);
    assert_int_equal(j->dead_reason, AJ_DEAD_TIMEOUT);
    aj_job_free(j);
}

static void test_release_does_not_count(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    assert_int_equal(aj_release(f->e, id, j->epoch, 0), 0);
    aj_job_free(j);
    aj_job *again = claim_one(f);
    assert_int_equal(again->attempts, 1);
    assert_int_equal(aj_release(f->e, id, again->epoch, 5000), 0);
    assert_int_equal(state_of(f, id), AJ_STATE_SCHEDULED);
    aj_job_free(again);
    check_consistent(f);
}

static void test_idempotency(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.payload = "{\"n\":1}";
    s.payload_len = 7;
    s.idempotency_key = "order-17";
    uint64_t a, b, c, d;
    assert_int_equal(aj_submit(f->e, &s, &a), 0);
    assert_int_equal(aj_submit(f->e, &s, &b), 0);
    assert_int_equal(a, b);
    s.payload = "{\"n\":2}";
    assert_int_equal(aj_submit(f->e, &s, &c), AJ_ECONFLICT);
    assert_non_null(strstr(aj_errmsg(), "order-17"));
    s.queue = "other";
    assert_int_equal(aj_submit(f->e, &s, &c), 0);
    assert_true(c != a);
    s.queue = NULL;
    s.payload = "{\"n\":1}";
    aj_test_clock_advance(&f->clock, 24 * AJ_HOUR);
    assert_int_equal(aj_submit(f->e, &s, &d), 0);
    assert_true(d != a); /* the key expired: a new job */
    assert_int_equal(aj_engine_tick(f->e), 0);
    check_consistent(f);
}

/* Keys are refused, as names are, when they are not printable text: nothing is created. */
static void test_idempotency_key_bytes(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    uint64_t id = 0;
    const char *bad[] = {"a\xff", "\xc3",    "\xe0\x80\xaf", "tab\there",
                         "nl\n",  "del\x7f", "c1\xc2\x85"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.idempotency_key = bad[i];
        assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
        assert_non_null(strstr(aj_errmsg(), "idempotency key '"));
        assert_null(strchr(aj_errmsg(), '\n'));
        assert_int_equal(aj_idempotency_key_check(bad[i]), AJ_EINVAL);
    }
    s.idempotency_key = "a\xff";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "'a\\xff' is not valid UTF-8 (at byte 2)"));
    s.idempotency_key = "x\x01";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "'x\\x01' contains a control character (at byte 2)"));
    aj_job **jobs = NULL;
    size_t n = 99;
    aj_job_filter jf;
    memset(&jf, 0, sizeof jf);
    assert_int_equal(aj_job_list(f->e, &jf, &jobs, &n), 0);
    assert_int_equal(n, 0);
    aj_job_list_free(jobs, n);
    /* Printable UTF-8 is fine. */
    s.idempotency_key = "commande-\xc3\xa9t\xc3\xa9-\xe2\x82\xac";
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    check_consistent(f);
}

/* Writes an idempotency record for key `ikey` in queue default behind the engine's back. */
static void put_idem(fixture *f, const char *ikey, const uint8_t *v, size_t n) {
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    akey k;
    key_idem(&k, "default", 7, ikey, strlen(ikey));
    assert_int_equal(kv_put(t, k.b, k.n, v, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
}

/* Fingerprints are SHA-256 (format 2); format 1 records (FNV-1a) written by an older aj keep
 * working until they expire; a newer format is refused. */
static void test_idempotency_fingerprint_formats(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.payload = "{\"n\":1}";
    s.payload_len = 7;
    s.idempotency_key = "new";
    uint64_t a;
    assert_int_equal(aj_submit(f->e, &s, &a), 0);
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    akey k;
    key_idem(&k, "default", 7, "new", 3);
    const uint8_t *v;
    size_t n;
    assert_int_equal(kv_get(t, k.b, k.n, &v, &n), 0);
    assert_int_equal(n, 1 + 8 + 8 + AJ_SHA256_LEN);
    assert_int_equal(v[0], 2);
    uint8_t want[AJ_SHA256_LEN];
    aj_sha256 c;
    aj__sha256_init(&c);
    aj__sha256_update(&c, "echo", 5);
    aj__sha256_update(&c, s.payload, s.payload_len);
    aj__sha256_final(&c, want);
    assert_memory_equal(v + 17, want, AJ_SHA256_LEN);
    kv_abort(t);

    /* A format 1 record: id, expiry, FNV-1a of type and payload. */
    uint8_t old[24];
    aj__put_u64be(old, 777);
    aj__put_u64be(old + 8, (uint64_t)(T0 + AJ_HOUR));
    uint64_t fnv = aj__fnv1a(aj__fnv1a(AJ_FNV_INIT, "echo", 5), s.payload, s.payload_len);
    aj__put_u64be(old + 16, fnv);
    put_idem(f, "old", old, sizeof old);
    s.idempotency_key = "old";
    uint64_t b;
    assert_int_equal(aj_submit(f->e, &s, &b), 0);
    assert_int_equal(b, 777);
    s.payload = "{\"n\":2}";
    assert_int_equal(aj_submit(f->e, &s, &b), AJ_ECONFLICT);

    /* A record from a newer aj. */
    uint8_t newer[1 + 8 + 8 + AJ_SHA256_LEN + 8] = {3};
    put_idem(f, "newer", newer, sizeof newer);
    s.idempotency_key = "newer";
    assert_int_equal(aj_submit(f->e, &s, &b), AJ_EFORMAT);
    assert_non_null(strstr(aj_errmsg(), "format 3"));
}

static void test_cancel(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.delay_ms = AJ_HOUR;
    uint64_t delayed;
    assert_int_equal(aj_submit(f->e, &s, &delayed), 0);
    assert_int_equal(aj_job_cancel(f->e, delayed), 0);
    assert_int_equal(state_of(f, delayed), AJ_STATE_CANCELLED);
    assert_int_equal(aj_job_cancel(f->e, delayed), AJ_ESTATE);
    uint64_t running = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    assert_int_equal(aj_job_cancel(f->e, running), 0);
    assert_int_equal(aj_heartbeat(f->e, running, j->epoch), AJ_ECANCELLED);
    assert_int_equal(aj_complete(f->e, running, j->epoch, NULL, 0), AJ_ECANCELLED);
    aj_job_free(j);
    assert_int_equal(aj_job_cancel(f->e, 99999), AJ_ENOTFOUND);
    check_consistent(f);
}

static void test_redrive_and_purge(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    assert_int_equal(aj_fail(f->e, id, j->epoch, "bad", 1), 0);
    aj_job_free(j);
    assert_int_equal(aj_dlq_redrive(f->e, id), 0);
    j = get(f, id);
    assert_int_equal(j->state, AJ_STATE_READY);
    assert_int_equal(j->attempts, 0);
    assert_int_equal(j->redrives, 1);
    assert_int_equal(j->dead_reason, AJ_DEAD_NONE);
    aj_job_free(j);
    assert_int_equal(aj_dlq_redrive(f->e, id), AJ_ESTATE);
    j = claim_one(f);
    assert_int_equal(j->id, id);
    assert_int_equal(aj_fail(f->e, id, j->epoch, "bad again", 1), 0);
    aj_job_free(j);
    aj_job_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.state = AJ_STATE_DEAD;
    flt.error_contains = "again";
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_job_list(f->e, &flt, &jobs, &n), 0);
    assert_int_equal(n, 1);
    aj_job_list_free(jobs, n);
    assert_int_equal(aj_dlq_purge(f->e, id), 0);
    assert_int_equal(aj_job_get(f->e, id, &j), AJ_ENOTFOUND);
    check_consistent(f);
}

static void test_retention(void **state) {
    fixture *f = *state;
    uint64_t done = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    assert_int_equal(aj_complete(f->e, done, j->epoch, NULL, 0), 0);
    aj_job_free(j);
    uint64_t dead = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    j = claim_one(f);
    assert_int_equal(aj_fail(f->e, dead, j->epoch, "x", 1), 0);
    aj_job_free(j);
    aj_test_clock_advance(&f->clock, 7 * AJ_DAY - 1);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(state_of(f, done), AJ_STATE_COMPLETED);
    aj_test_clock_advance(&f->clock, 2);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(aj_job_get(f->e, done, &j), AJ_ENOTFOUND);
    /* Dead letters wait for an operator. */
    assert_int_equal(state_of(f, dead), AJ_STATE_DEAD);
    check_consistent(f);
}

static void test_stats_counts(void **state) {
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    }
    aj_job *j = claim_one(f);
    assert_int_equal(aj_complete(f->e, j->id, j->epoch, NULL, 0), 0);
    aj_job_free(j);
    j = claim_one(f);
    aj_job_free(j);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_READY], 3);
    assert_int_equal(st.jobs[AJ_STATE_RUNNING], 1);
    assert_int_equal(st.jobs[AJ_STATE_COMPLETED], 1);
    assert_int_equal(st.process.submitted, 5);
    assert_int_equal(st.process.claimed, 2);
    assert_int_equal(st.process.completed, 1);
}

static void test_batch_all_or_nothing(void **state) {
    fixture *f = *state;
    aj_job_spec s[3];
    for (int i = 0; i < 3; i++) {
        aj_job_spec_init(&s[i]);
        s[i].type = "echo";
    }
    s[2].queue = "bad queue";
    uint64_t ids[3];
    assert_int_equal(aj_submit_batch(f->e, s, 3, ids), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "job 3"));
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    for (int i = 1; i < AJ_STATE_COUNT; i++) {
        assert_int_equal(st.jobs[i], 0);
    }
    s[2].queue = "good";
    assert_int_equal(aj_submit_batch(f->e, s, 3, ids), 0);
    assert_true(ids[0] < ids[1] && ids[1] < ids[2]);
}

static void test_bad_specs(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    uint64_t id;
    aj_job_spec_init(&s);
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL); /* no type */
    s.type = "-x";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    s.type = "echo";
    s.max_attempts = 0;
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    s.max_attempts = 3;
    s.payload_len = AJ_PAYLOAD_MAX + 1;
    s.payload = calloc(1, s.payload_len);
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_ETOOBIG);
    free((void *)s.payload);
    s.payload = NULL;
    s.payload_len = 0;
    s.metadata = "[1]";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    s.metadata = "{\"trace\":\"abc\"}";
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_job *j = get(f, id);
    assert_string_equal(j->metadata, "{\"trace\":\"abc\"}");
    aj_job_free(j);
}

static void test_check_finds_damage(void **state) {
    fixture *f = *state;
    uint64_t id = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    check_consistent(f);
    /* Behind the engine's back: a dead-letter index entry for a job that does not exist. */
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    uint8_t key[10] = {'S', AJ_STATE_DEAD};
    uint64_t ghost = id + 1000;
    for (int i = 0; i < 8; i++) {
        key[2 + i] = (uint8_t)(ghost >> (56 - 8 * i));
    }
    uint8_t dead = AJ_STATE_DEAD;
    assert_int_equal(kv_put(t, key, sizeof key, &dead, 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    uint64_t records;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), AJ_ECORRUPT);
}

/* Rewrites a job record's format byte behind the engine's back, as a newer aj would write it. */
static void make_newer(fixture *f, uint64_t id) {
    kv_txn *t;
    uint8_t key[9] = {'J'};
    for (int i = 0; i < 8; i++) {
        key[1 + i] = (uint8_t)(id >> (56 - 8 * i));
    }
    const uint8_t *v;
    size_t n;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    assert_int_equal(kv_get(t, key, sizeof key, &v, &n), 0);
    uint8_t *copy = malloc(n);
    memcpy(copy, v, n);
    copy[0] = 9;
    assert_int_equal(kv_put(t, key, sizeof key, copy, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    free(copy);
}

/* More unreadable records at the head of a queue than one claim reads: a claim of one job
 * still finds the good job behind them, and leaves them ready (issue 10, item 1). */
static void test_claim_skips_unreadable(void **state) {
    fixture *f = *state;
    uint64_t bad[100];
    for (size_t i = 0; i < 100; i++) {
        bad[i] = submit(f, "echo", "{}", AJ_PRIORITY_HIGH);
        make_newer(f, bad[i]);
    }
    uint64_t good = submit(f, "echo", "{}", AJ_PRIORITY_NORMAL);
    aj_job *j = claim_one(f);
    assert_int_equal(j->id, good);
    aj_job_free(j);
    assert_int_equal(claim_none(f), 0);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_READY], 100);
    assert_int_equal(st.process.jobs_unreadable, 100);
    uint64_t records;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), AJ_ECORRUPT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_skips_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_then_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_and_promotion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_backoff_then_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fencing_after_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry_exhausts_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_extends_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_does_not_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_fingerprint_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redrive_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_damage, setup, teardown),
    };
    return cmocka_run_group_tests_name("jobs", tests, NULL, NULL);
}
