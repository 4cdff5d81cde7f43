/*
 * test_blob.c — large payloads and results (core/blob.h) through the public API, on the memory
 * store and on SQLite, with a simulated clock and no background threads: chunking and exact
 * round trips (get, claim, list, results), deduplication counted in chunk records, reference
 * counts moving with submits, completions, purges and retention, the collection of blobs no job
 * refers to (at once, and by the duty for deferred and abandoned stages), staging of payloads
 * too large to write with their job (a lowered per-transaction budget, so that small payloads
 * take that path), the 64 MiB limit with nothing stored, idempotency and
 * redrive with big payloads, damaged chunks found, and aj_check agreeing throughout.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blob.h"
#include "core/keys.h"
#include "runtime/engine.h"
#include "store/kv.h"

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */
#define MIB ((size_t)1 << 20)

typedef struct fixture {
    aj_test_clock clock;
    aj_engine *e;
    char *dir;
    int sqlite;
} fixture;

static fixture *open_fixture(int sqlite, size_t threshold) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    aj_test_clock_init(&f->clock, T0);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &f->clock.clock;
    o.seed = 7;
    o.background = 0;
    if (threshold != 0) {
        o.blob_threshold = threshold;
    }
    char url[1200] = "mem:";
    f->sqlite = sqlite;
    if (sqlite) {
        f->dir = aj_test_tmpdir();
        snprintf(url, sizeof url, "sqlite:%s/blobs.db", f->dir);
    }
    assert_int_equal(aj_engine_open(&f->e, url, &o), 0);
    return f;
}

static void close_fixture(fixture *f) {
    aj_engine_close(f->e);
    if (f->dir != NULL) {
        aj_test_rmtree(f->dir);
        free(f->dir);
    }
    free(f);
}

/* Deterministic bytes that differ by seed (not JSON: payloads are opaque bytes). */
static char *make_data(size_t n, uint32_t seed) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (char)(x >> 16);
    }
    return p;
}

static uint64_t submit(fixture *f, const char *type, const void *p, size_t n) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = type;
    s.payload = p;
    s.payload_len = n;
    s.max_attempts = 1;
    uint64_t id = 0;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    return id;
}

typedef struct counter {
    uint64_t n;
} counter;

static int count_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)version;
    ((counter *)ud)->n++;
    return 0;
}

/* Chunk records actually stored (the 'Z' keys), not what the blob records claim. */
static uint64_t chunk_keys(fixture *f) {
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    counter c = {0};
    uint8_t prefix = KEY_CHUNK;
    assert_int_equal(kv_scan_prefix(t, &prefix, 1, 0, 0, count_cb, &c), 0);
    kv_abort(t);
    return c.n;
}

static uint64_t blob_keys(fixture *f) {
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    counter c = {0};
    uint8_t prefix = KEY_BLOB;
    assert_int_equal(kv_scan_prefix(t, &prefix, 1, 0, 0, count_cb, &c), 0);
    kv_abort(t);
    return c.n;
}

static aj_blob_stats stats(fixture *f) {
    aj_blob_stats s;
    assert_int_equal(aj_blob_stats_get(f->e, &s), 0);
    return s;
}

static void check_clean(fixture *f) {
    uint64_t records;
    int rc = aj_check(f->e, NULL, NULL, &records);
    if (rc != 0) {
        fail_msg("aj_check: %s", aj_errmsg());
    }
}

static aj_job *claim_one(fixture *f) {
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w1", 1, &jobs, &n), 0);
    assert_int_equal(n, 1);
    aj_job *j = jobs[0];
    free(jobs);
    return j;
}

static void expect_payload(fixture *f, uint64_t id, const char *p, size_t n) {
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    assert_int_equal(j->payload_len, n);
    assert_memory_equal(j->payload, p, n);
    assert_int_equal(((const char *)j->payload)[n], '\0');
    aj_job_free(j);
}

/* --- Dedup, round trips, references, collection: the same scenario on both backends. ------- */
/* (Sizes stay small so that sanitizer builds run it quickly; tests/integration/test_blobs.sh
 * submits 10 MiB twice and 64 MiB through the real binary.) */

static void scenario(int sqlite) {
    fixture *f = open_fixture(sqlite, 0);
    size_t n = 2 * MIB + 3;
    char *big = make_data(n, 1);

    /* The same 2 MiB submitted twice: one blob, 9 chunks, two references. */
    uint64_t a = submit(f, "t", big, n);
    uint64_t b = submit(f, "t", big, n);
    assert_int_equal(chunk_keys(f), 9);
    aj_blob_stats s = stats(f);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.chunks, 9);
    assert_int_equal(s.bytes, n);
    assert_int_equal(s.refs, 2);
    expect_payload(f, a, big, n);
    expect_payload(f, b, big, n);
    check_clean(f);

    /* A small payload stays in the record. */
    uint64_t small = submit(f, "t", "{}", 2);
    assert_int_equal(stats(f).count, 1);

    /* Claims hand the handler the whole payload. */
    aj_job *j = claim_one(f);
    assert_int_equal(j->id, a);
    assert_int_equal(j->payload_len, n);
    assert_memory_equal(j->payload, big, n);

    /* A large result becomes a blob of its own, read back exactly. */
    char *res = make_data(3 * MIB + 5, 2);
    assert_int_equal(aj_complete(f->e, a, j->epoch, res, 3 * MIB + 5), 0);
    aj_job_free(j);
    s = stats(f);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.chunks, 9 + 13);
    assert_int_equal(s.refs, 3);
    aj_job *got = NULL;
    assert_int_equal(aj_job_get(f->e, a, &got), 0);
    assert_int_equal(got->result_len, 3 * MIB + 5);
    assert_memory_equal(got->result, res, 3 * MIB + 5);
    aj_job_free(got);

    /* Listing resolves them too. */
    aj_job **list;
    size_t ln;
    aj_job_filter flt;
    memset(&flt, 0, sizeof flt);
    assert_int_equal(aj_job_list(f->e, &flt, &list, &ln), 0);
    assert_int_equal(ln, 3);
    assert_int_equal(list[1]->payload_len, n);
    assert_memory_equal(list[1]->payload, big, n);
    aj_job_list_free(list, ln);
    check_clean(f);

    /* b dies, is redriven (payload intact), dies again and is purged: one reference less. */
    j = claim_one(f);
    assert_int_equal(j->id, b);
    assert_int_equal(aj_fail(f->e, b, j->epoch, "boom", 1), 0);
    aj_job_free(j);
    assert_int_equal(aj_dlq_redrive(f->e, b), 0);
    j = claim_one(f);
    assert_int_equal(j->id, b);
    assert_memory_equal(j->payload, big, n);
    assert_int_equal(aj_fail(f->e, b, j->epoch, "boom again", 1), 0);
    aj_job_free(j);
    assert_int_equal(aj_dlq_purge(f->e, b), 0);
    s = stats(f);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.refs, 2);
    check_clean(f);

    /* Retention collects job a: its payload and result blobs go at once with it. */
    aj_test_clock_advance(&f->clock, 7 * AJ_DAY + 2 * AJ_MINUTE);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(aj_job_get(f->e, a, &got), AJ_ENOTFOUND);
    s = stats(f);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.refs, 0);
    assert_int_equal(chunk_keys(f), 0);
    assert_int_equal(blob_keys(f), 0);
    expect_payload(f, small, "{}", 2);
    check_clean(f);

    free(res);
    free(big);
    close_fixture(f);
}

static void test_scenario_mem(void **state) {
    (void)state;
    scenario(0);
}

static void test_scenario_sqlite(void **state) {
    (void)state;
    scenario(1);
}

/* --- Staging: larger than one transaction's budget. -------------------------------------- */

static void staging(int sqlite) {
    fixture *f = open_fixture(sqlite, 0);
    f->e->blob_budget = MIB;  /* as 16 MiB is to 64 MiB, with smaller numbers */
    size_t n = 3 * MIB + 123; /* four staging batches of 1 MiB */
    char *big = make_data(n, 3);
    uint64_t a = submit(f, "t", big, n);
    aj_blob_stats s = stats(f);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.refs, 1);
    assert_int_equal(s.unreferenced, 0);
    assert_int_equal(chunk_keys(f), (n + BLOB_CHUNK - 1) / BLOB_CHUNK);
    expect_payload(f, a, big, n);
    check_clean(f);
    /* Submitted again: nothing new is written, one more reference. */
    uint64_t b = submit(f, "t", big, n);
    s = stats(f);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.refs, 2);
    expect_payload(f, b, big, n);

    /* Over the limit: refused, naming size and limit, and nothing is stored. (Exactly the
     * limit is accepted by tests/integration/test_blobs.sh.) */
    char *max = calloc(1, AJ_PAYLOAD_MAX + 1);
    assert_non_null(max);
    aj_job_spec sp;
    aj_job_spec_init(&sp);
    sp.type = "t";
    sp.payload = max;
    sp.payload_len = AJ_PAYLOAD_MAX + 1;
    uint64_t id = 0;
    s = stats(f);
    uint64_t chunks_before = chunk_keys(f);
    assert_int_equal(aj_submit(f->e, &sp, &id), AJ_ETOOBIG);
    assert_non_null(strstr(aj_errmsg(), "67108865 bytes"));
    assert_non_null(strstr(aj_errmsg(), "67108864"));
    aj_blob_stats s2 = stats(f);
    assert_int_equal(s2.count, s.count);
    assert_int_equal(chunk_keys(f), chunks_before);
    uint64_t records;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
    assert_int_equal(records, 2);
    free(max);
    free(big);
    close_fixture(f);
}

static void test_staging_mem(void **state) {
    (void)state;
    staging(0);
}

static void test_staging_sqlite(void **state) {
    (void)state;
    staging(1);
}

/* --- Abandoned stages and deferred frees are collected by the duty. --------------------- */

typedef struct stage_args {
    uint8_t hash[AJ_SHA256_LEN];
    aj_slice data;
    uint32_t next;
} stage_args;

static int stage_txn(kv_txn *t, const job_env *env, void *ud) {
    stage_args *s = ud;
    return blob_stage(t, env, s->hash, s->data, MIB, &s->next);
}

static void test_abandoned_stage(void **state) {
    (void)state;
    fixture *f = open_fixture(0, 0);
    size_t n = 2 * MIB;
    char *big = make_data(n, 5);
    stage_args s = {.data = {(const uint8_t *)big, n}, .next = 0};
    aj__sha256(big, n, s.hash);
    /* Two batches, as the runtime stages it, and then the "crash": no job is ever written. */
    assert_int_equal(eng_run(f->e, stage_txn, &s, KV_SYNC), 0);
    assert_int_equal(s.next, 4);
    assert_int_equal(eng_run(f->e, stage_txn, &s, KV_SYNC), 0);
    assert_int_equal(s.next, UINT32_MAX);
    aj_blob_stats st = stats(f);
    assert_int_equal(st.count, 1);
    assert_int_equal(st.unreferenced, 1);
    check_clean(f);
    /* Within the grace period it stays (its job may be committing). */
    aj_test_clock_advance(&f->clock, BLOB_STAGE_GRACE_MS - AJ_MINUTE);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(stats(f).count, 1);
    /* A job referencing it in time keeps it: the collection entry goes. */
    uint64_t id = submit(f, "t", big, n);
    st = stats(f);
    assert_int_equal(st.unreferenced, 0);
    assert_int_equal(st.refs, 1);
    check_clean(f);
    /* Purged (dead first): collected at once. */
    aj_job *j = claim_one(f);
    assert_int_equal(aj_fail(f->e, id, j->epoch, "x", 1), 0);
    aj_job_free(j);
    assert_int_equal(aj_dlq_purge(f->e, id), 0);
    assert_int_equal(stats(f).count, 0);
    /* Staged again and abandoned: after the grace period the duty deletes everything. */
    s.next = 0;
    assert_int_equal(eng_run(f->e, stage_txn, &s, KV_SYNC), 0);
    assert_int_equal(eng_run(f->e, stage_txn, &s, KV_SYNC), 0);
    assert_int_equal(chunk_keys(f), 8);
    aj_test_clock_advance(&f->clock, BLOB_STAGE_GRACE_MS + AJ_MINUTE);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(stats(f).count, 0);
    assert_int_equal(chunk_keys(f), 0);
    assert_int_equal(blob_keys(f), 0);
    free(big);
    close_fixture(f);
}

/* A submit that fails after some of its payload's chunks were staged (a full disk: every
 * storage operation in turn fails) leaves nothing behind at once, not after the grace period;
 * and a blob that another submit staged or references is never collected this way. */
static void test_failed_submit_unstages(void **state) {
    (void)state;
    fixture *f = open_fixture(0, 0);
    f->e->blob_budget = MIB;
    size_t n = 3 * MIB + 123; /* four staging batches, then the job's commit */
    char *big = make_data(n, 11);
    aj_job_spec sp;
    aj_job_spec_init(&sp);
    sp.type = "t";
    sp.payload = big;
    sp.payload_len = n;
    uint64_t id = 0;
    int failures = 0;
    for (uint64_t at = 1;; at++) {
        kv_mem_fail_at(f->e->kv, at);
        int rc = aj_submit(f->e, &sp, &id);
        kv_mem_fail_at(f->e->kv, 0);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, AJ_EIO);
        failures++;
        assert_int_equal(stats(f).count, 0);
        assert_int_equal(chunk_keys(f), 0);
        assert_int_equal(blob_keys(f), 0);
        check_clean(f);
    }
    assert_true(failures >= 5); /* every batch and the job's commit failed once */
    expect_payload(f, id, big, n);
    /* The same content again, failing at its job's commit: the blob the first job references
     * stays whole. */
    uint64_t chunks = chunk_keys(f);
    for (uint64_t at = 1; at < 8; at++) {
        kv_mem_fail_at(f->e->kv, at);
        uint64_t other = 0;
        (void)aj_submit(f->e, &sp, &other);
        kv_mem_fail_at(f->e->kv, 0);
        assert_int_equal(chunk_keys(f), chunks);
        expect_payload(f, id, big, n);
    }
    check_clean(f);
    free(big);
    close_fixture(f);
}

/* A release in a transaction that already writes many keys defers the delete to the duty. */
typedef struct release_args {
    uint8_t ref[BLOB_REF_LEN];
    aj_slice data;
} release_args;

static int acquire_txn(kv_txn *t, const job_env *env, void *ud) {
    release_args *r = ud;
    return blob_acquire(t, env, r->data, r->ref);
}

static int busy_release_txn(kv_txn *t, const job_env *env, void *ud) {
    release_args *r = ud;
    for (uint32_t i = 0; i < BLOB_FREE_INLINE_OPS; i++) {
        uint8_t k[5] = {'u', 0, 0, 0, 0};
        aj__put_u32be(k + 1, i);
        int rc = kv_put(t, k, sizeof k, "", 0);
        if (rc != 0) {
            return rc;
        }
    }
    aj_slice ref = {r->ref, BLOB_REF_LEN};
    return blob_release(t, env, ref);
}

static void test_deferred_free(void **state) {
    (void)state;
    fixture *f = open_fixture(0, 0);
    char *big = make_data(MIB, 6);
    release_args r = {.data = {(const uint8_t *)big, MIB}};
    assert_int_equal(eng_run(f->e, acquire_txn, &r, KV_SYNC), 0);
    assert_int_equal(chunk_keys(f), 4);
    assert_int_equal(eng_run(f->e, busy_release_txn, &r, KV_SYNC), 0);
    aj_blob_stats s = stats(f);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.unreferenced, 1);
    assert_int_equal(chunk_keys(f), 4);
    /* Due at once: the next collection deletes it. */
    aj_test_clock_advance(&f->clock, 2 * AJ_MINUTE);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(stats(f).count, 0);
    assert_int_equal(chunk_keys(f), 0);
    assert_int_equal(blob_keys(f), 0);
    free(big);
    close_fixture(f);
}

/* --- Threshold option, idempotency, damage. ------------------------------------------------ */

static void test_threshold_option(void **state) {
    (void)state;
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    assert_int_equal(o.blob_threshold, 256 * 1024);
    o.background = 0;
    aj_engine *e = NULL;
    o.blob_threshold = 100;
    assert_int_equal(aj_engine_open(&e, "mem:", &o), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "blob threshold is 100 bytes"));
    o.blob_threshold = AJ_BLOB_THRESHOLD_MAX + 1;
    assert_int_equal(aj_engine_open(&e, "mem:", &o), AJ_EINVAL);

    fixture *f = open_fixture(0, 1024);
    char *p = make_data(2000, 8);
    uint64_t id = submit(f, "t", p, 1024); /* at the threshold: inline */
    assert_int_equal(stats(f).count, 0);
    id = submit(f, "t", p, 1025); /* one byte over: a blob */
    assert_int_equal(stats(f).count, 1);
    expect_payload(f, id, p, 1025);
    free(p);
    close_fixture(f);
}

static void test_idempotent_big(void **state) {
    (void)state;
    fixture *f = open_fixture(1, 0);
    char *p = make_data(MIB, 9);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    s.payload = p;
    s.payload_len = MIB;
    s.idempotency_key = "k1";
    uint64_t a = 0, b = 0;
    assert_int_equal(aj_submit(f->e, &s, &a), 0);
    assert_int_equal(aj_submit(f->e, &s, &b), 0);
    assert_int_equal(a, b);
    assert_int_equal(stats(f).refs, 1);
    p[5] ^= 1; /* another payload under the same key */
    assert_int_equal(aj_submit(f->e, &s, &b), AJ_ECONFLICT);
    assert_int_equal(stats(f).count, 1);
    check_clean(f);
    free(p);
    close_fixture(f);
}

static void collect_line(void *ud, const char *line) {
    char *buf = ud;
    size_t n = strlen(buf);
    snprintf(buf + n, 2048 - n, "%s\n", line);
}

static void test_damaged_chunk(void **state) {
    (void)state;
    fixture *f = open_fixture(0, 0);
    char *p = make_data(MIB, 10);
    uint64_t id = submit(f, "t", p, MIB);
    /* Delete one chunk behind the engine's back. */
    uint8_t hash[AJ_SHA256_LEN];
    aj__sha256(p, MIB, hash);
    uint8_t k[1 + AJ_SHA256_LEN + 4];
    k[0] = KEY_CHUNK;
    memcpy(k + 1, hash, AJ_SHA256_LEN);
    aj__put_u32be(k + 1 + AJ_SHA256_LEN, 2);
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    assert_int_equal(kv_del(t, k, sizeof k), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, id, &j), AJ_ECORRUPT);
    assert_non_null(strstr(aj_errmsg(), "chunk 2 is missing or damaged"));
    uint64_t records;
    char lines[2048] = "";
    assert_int_equal(aj_check(f->e, collect_line, lines, &records), AJ_ECORRUPT);
    assert_non_null(strstr(lines, "3 of its 4 chunks are stored"));

    /* Another job's blob record vanishes: its reference names nothing. */
    char *q = make_data(MIB, 11);
    submit(f, "t", q, MIB);
    submit(f, "t", q, MIB);
    uint8_t bk[2 + AJ_SHA256_LEN] = {KEY_BLOB, 0};
    aj__sha256(q, MIB, bk + 2);
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    assert_int_equal(kv_del(t, bk, sizeof bk), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    lines[0] = '\0';
    assert_int_equal(aj_check(f->e, collect_line, lines, &records), AJ_ECORRUPT);
    assert_non_null(strstr(lines, "referenced by jobs but not stored"));
    free(q);
    free(p);
    close_fixture(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario_mem),    cmocka_unit_test(test_scenario_sqlite),
        cmocka_unit_test(test_staging_mem),     cmocka_unit_test(test_staging_sqlite),
        cmocka_unit_test(test_abandoned_stage), cmocka_unit_test(test_failed_submit_unstages),
        cmocka_unit_test(test_deferred_free),   cmocka_unit_test(test_threshold_option),
        cmocka_unit_test(test_idempotent_big),  cmocka_unit_test(test_damaged_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
