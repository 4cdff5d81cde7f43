/*
 * test_routing.c — affinity and routing (issue 4 §7): the pure decision (route.c), the routing
 * a job carries through submit and aj_job_get, claims by claimers with different nodes and tags
 * on the memory store with a simulated clock, and the worker registry's expiry and collection.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/route.h"
#include "core/worker_registry.h"
#include "runtime/engine.h"
#include "util/buf.h"

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
    o.seed = 7;
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

static uint64_t submit_routed(fixture *f, const char *require, const char *prefer, int64_t wait_ms,
                              const char *avoid) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.require_tag = require;
    s.prefer_node = prefer;
    if (wait_ms >= 0) {
        s.prefer_wait_ms = wait_ms;
    }
    s.avoid_node = avoid;
    uint64_t id = 0;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    return id;
}

/* Claims up to `max` jobs as a claimer on `node` with `tags`; returns how many, and the first
 * id in *first (0 when none). */
static size_t claim_as(fixture *f, const char *node, const char *const *tags, size_t n_tags,
                       size_t max, uint64_t *first) {
    job_claim_who who = {{node, tags, n_tags}, SIZE_MAX};
    aj_job *jobs[16];
    int64_t lat[16];
    size_t n = 0;
    assert_true(max <= 16);
    assert_int_equal(eng_claim(f->e, NULL, 0, "w", &who, max, 0, jobs, lat, &n), 0);
    if (first != NULL) {
        *first = n > 0 ? jobs[0]->id : 0;
    }
    for (size_t i = 0; i < n; i++) {
        aj_job_free(jobs[i]);
    }
    return n;
}

/* eng_claim with an empty queue list claims nothing; name the default queue. */
static size_t claim_default(fixture *f, const char *node, const char *const *tags, size_t n_tags,
                            uint64_t *first) {
    const char *q[] = {"default"};
    job_claim_who who = {{node, tags, n_tags}, SIZE_MAX};
    aj_job *jobs[16];
    int64_t lat[16];
    size_t n = 0;
    assert_int_equal(eng_claim(f->e, q, 1, "w", &who, 16, 0, jobs, lat, &n), 0);
    if (first != NULL) {
        *first = n > 0 ? jobs[0]->id : 0;
    }
    for (size_t i = 0; i < n; i++) {
        aj_job_free(jobs[i]);
    }
    return n;
}

static void test_route_pure(void **state) {
    (void)state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.require_tag = "gpu";
    s.prefer_node = "n1";
    s.prefer_wait_ms = 5000;
    s.avoid_node = "n9";
    aj_buf b = AJ_BUF_INIT;
    assert_int_equal(route_encode(&s, &b), 0);
    aj_slice enc = {b.p, b.len};
    job_route r;
    assert_int_equal(route_decode(enc, &r), 0);
    assert_true(aj__slice_eq(r.require_tag, "gpu"));
    assert_true(aj__slice_eq(r.prefer_node, "n1"));
    assert_int_equal(r.prefer_wait_ms, 5000);
    assert_true(aj__slice_eq(r.avoid_node, "n9"));

    const char *gpu[] = {"ssd", "gpu"};
    const char *ssd[] = {"ssd"};
    route_claimer n1_gpu = {"n1", gpu, 2}, n2_gpu = {"n2", gpu, 2}, n1_ssd = {"n1", ssd, 1},
                  n9_gpu = {"n9", gpu, 2};
    int64_t ready = 1000000, until = INT64_MAX;
    assert_true(route_allows(&r, &n1_gpu, ready, ready, &until));
    assert_false(route_allows(&r, &n1_ssd, ready + 10000000, ready, NULL));  /* tag missing */
    assert_false(route_allows(&r, NULL, ready + 10000000, ready, NULL));     /* anonymous */
    assert_false(route_allows(&r, &n9_gpu, ready + 10000000, ready, NULL));  /* avoided node */
    assert_false(route_allows(&r, &n2_gpu, ready + 4999000, ready, &until)); /* still waiting */
    assert_int_equal(until, 1000 + 5000);
    assert_true(route_allows(&r, &n2_gpu, ready + 5000000, ready, NULL)); /* wait over */

    /* Damaged encodings are refused, never read past their end. */
    for (size_t cut = 0; cut < b.len; cut++) {
        aj_slice part = {b.p, cut};
        assert_int_equal(route_decode(part, &r), AJ_ECORRUPT);
    }
    uint8_t newer[] = {9, 0};
    aj_slice nv = {newer, sizeof newer};
    assert_int_equal(route_decode(nv, &r), AJ_EFORMAT);
    aj__buf_free(&b);
}

static void test_bad_routing_refused(void **state) {
    fixture *f = *state;
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    uint64_t id = 0;
    s.require_tag = "has space";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "tag"));
    s.require_tag = NULL;
    s.prefer_node = "n1";
    s.prefer_wait_ms = -1;
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "prefer wait"));
    s.prefer_wait_ms = 1000;
    s.avoid_node = "n1";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "both preferred and avoided"));
    s.avoid_node = "";
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_READY], 0); /* nothing stored */
}

static void test_job_shows_routing(void **state) {
    fixture *f = *state;
    uint64_t id = submit_routed(f, "gpu", "n1", 2500, "n2");
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    assert_string_equal(j->require_tag, "gpu");
    assert_string_equal(j->prefer_node, "n1");
    assert_int_equal(j->prefer_wait_ms, 2500);
    assert_string_equal(j->avoid_node, "n2");
    aj_job_free(j);
    uint64_t plain = submit_routed(f, NULL, NULL, -1, NULL);
    assert_int_equal(aj_job_get(f->e, plain, &j), 0);
    assert_null(j->require_tag);
    assert_null(j->prefer_node);
    assert_null(j->avoid_node);
    aj_job_free(j);
}

static void test_require_tag(void **state) {
    fixture *f = *state;
    uint64_t id = submit_routed(f, "gpu", NULL, -1, NULL);
    const char *ssd[] = {"ssd"};
    const char *gpu[] = {"ssd", "gpu"};
    uint64_t got = 0;
    assert_int_equal(claim_default(f, "n1", NULL, 0, &got), 0);
    assert_int_equal(claim_default(f, "n1", ssd, 1, &got), 0);
    /* The anonymous public claim never takes it either. */
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "anon", 4, &jobs, &n), 0);
    assert_int_equal(n, 0);
    free(jobs);
    assert_int_equal(claim_default(f, "n2", gpu, 2, &got), 1);
    assert_int_equal(got, id);
}

static void test_avoid_node(void **state) {
    fixture *f = *state;
    uint64_t id = submit_routed(f, NULL, NULL, -1, "n1");
    uint64_t got = 0;
    assert_int_equal(claim_default(f, "n1", NULL, 0, &got), 0);
    aj_test_clock_advance(&f->clock, AJ_HOUR); /* avoiding never expires */
    assert_int_equal(claim_default(f, "n1", NULL, 0, &got), 0);
    assert_int_equal(claim_default(f, "n2", NULL, 0, &got), 1);
    assert_int_equal(got, id);
}

static void test_prefer_node_then_fallback(void **state) {
    fixture *f = *state;
    uint64_t a = submit_routed(f, NULL, "n1", 10 * AJ_SECOND, NULL);
    uint64_t b = submit_routed(f, NULL, "n1", 10 * AJ_SECOND, NULL);
    uint64_t got = 0;
    /* Another node waits for the preferred one. */
    assert_int_equal(claim_default(f, "n2", NULL, 0, &got), 0);
    aj_test_clock_advance(&f->clock, 9999);
    assert_int_equal(claim_default(f, "n2", NULL, 0, &got), 0);
    /* The preferred node takes one at once. */
    const char *q[] = {"default"};
    job_claim_who n1 = {{"n1", NULL, 0}, SIZE_MAX};
    aj_job *jobs[2];
    int64_t lat[2];
    size_t n = 0;
    assert_int_equal(eng_claim(f->e, q, 1, "w1", &n1, 1, 0, jobs, lat, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0]->id, a);
    aj_job_free(jobs[0]);
    /* After the wait, any node may take the other. */
    aj_test_clock_advance(&f->clock, 1);
    assert_int_equal(claim_default(f, "n2", NULL, 0, &got), 1);
    assert_int_equal(got, b);
    /* The default wait is 30 s. */
    aj_job_spec s;
    aj_job_spec_init(&s);
    assert_int_equal(s.prefer_wait_ms, 30 * AJ_SECOND);
}

static void test_routing_skips_to_later_jobs(void **state) {
    fixture *f = *state;
    /* A head of jobs this claimer may not take does not hide the job behind it. */
    for (int i = 0; i < 20; i++) {
        submit_routed(f, "gpu", NULL, -1, NULL);
    }
    uint64_t plain = submit_routed(f, NULL, NULL, -1, NULL);
    uint64_t got = 0;
    assert_int_equal(claim_as(f, "n1", NULL, 0, 1, &got), 0); /* no queues named: none */
    assert_int_equal(claim_default(f, "n1", NULL, 0, &got), 1);
    assert_int_equal(got, plain);
}

static void check_line(void *ud, const char *line) {
    snprintf(ud, 512, "%s", line);
}

static void test_damaged_routing_skipped_and_reported(void **state) {
    fixture *f = *state;
    uint64_t bad = submit_routed(f, "gpu", NULL, -1, NULL);
    uint64_t good = submit_routed(f, NULL, NULL, -1, NULL);
    /* Damage the stored routing field of the first job from outside the engine. */
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    uint8_t key[9] = {'J'};
    aj__put_u64be(key + 1, bad);
    const uint8_t *v;
    size_t n;
    assert_int_equal(kv_get(t, key, sizeof key, &v, &n), 0);
    job_rec r;
    assert_int_equal(job_rec_decode(v, n, &r), 0);
    static const uint8_t garbage[] = {1, 1, 9, 'g'};
    r.route.p = garbage;
    r.route.n = sizeof garbage;
    aj_buf b = AJ_BUF_INIT;
    assert_int_equal(job_rec_encode(&r, &b), 0);
    assert_int_equal(kv_put(t, key, sizeof key, b.p, b.len), 0);
    aj__buf_free(&b);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    /* Claims skip it (it stays ready) and still take the next job. */
    const char *gpu[] = {"gpu"};
    uint64_t got = 0;
    assert_int_equal(claim_default(f, "n1", gpu, 1, &got), 1);
    assert_int_equal(got, good);
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, bad, &j), 0);
    assert_int_equal(j->state, AJ_STATE_READY);
    assert_null(j->require_tag); /* shown as absent */
    aj_job_free(j);
    char line[512] = "";
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, check_line, line, &records), AJ_ECORRUPT);
    assert_non_null(strstr(line, "routing cannot be decoded"));
}

static void test_registry_expiry_and_collection(void **state) {
    fixture *f = *state;
    const char *tags[] = {"gpu", "ssd"};
    wreg_entry a = {"wa", "n1", "host1", tags, 2, 11, T0};
    wreg_entry b = {"wb", "n2", "host2", NULL, 0, 12, T0};
    assert_int_equal(eng_registry_op(f->e, &a, 0), 0);
    assert_int_equal(eng_registry_op(f->e, &b, 0), 0);
    aj_worker_info *v = NULL;
    size_t n = 0;
    assert_int_equal(aj_worker_list(f->e, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "wa");
    assert_string_equal(v[0].node, "n1");
    assert_string_equal(v[0].host, "host1");
    assert_int_equal(v[0].n_tags, 2);
    assert_string_equal(v[0].tags[1], "ssd");
    assert_int_equal(v[0].pid, 11);
    assert_int_equal(v[0].seen_ms, T0);
    assert_true(v[0].alive);
    assert_int_equal(v[1].n_tags, 0);
    aj_worker_list_free(v, n);

    /* b keeps refreshing; a stops: after the expiry it is listed as lost... */
    aj_test_clock_advance(&f->clock, AJ_WORKER_EXPIRY_MS);
    assert_int_equal(eng_registry_op(f->e, &b, 1), 0);
    assert_int_equal(aj_worker_list(f->e, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_false(v[0].alive);
    assert_true(v[1].alive);
    assert_int_equal(v[1].seen_ms, T0 + AJ_WORKER_EXPIRY_MS);
    aj_worker_list_free(v, n);
    /* ...and once not seen for the collection age, b's refresh deletes it. */
    aj_test_clock_advance(&f->clock, AJ_WORKER_COLLECT_MS - AJ_WORKER_EXPIRY_MS - 1);
    assert_int_equal(eng_registry_op(f->e, &b, 1), 0);
    assert_int_equal(aj_worker_list(f->e, &v, &n), 0);
    assert_int_equal(n, 2);
    aj_worker_list_free(v, n);
    aj_test_clock_advance(&f->clock, 1);
    assert_int_equal(eng_registry_op(f->e, &b, 1), 0);
    assert_int_equal(aj_worker_list(f->e, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "wb");
    aj_worker_list_free(v, n);
    /* A stopping pool deletes its own entry. */
    assert_int_equal(eng_registry_op(f->e, &b, 2), 0);
    assert_int_equal(aj_worker_list(f->e, &v, &n), 0);
    assert_int_equal(n, 0);
    aj_worker_list_free(v, n);
}

static void test_worker_opts_checked(void **state) {
    fixture *f = *state;
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    o.node = "bad node";
    assert_int_equal(aj_workers_start(f->e, &o), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "node"));
    o.node = "n1";
    const char *tags[] = {"ok", ""};
    o.tags = tags;
    o.n_tags = 2;
    assert_int_equal(aj_workers_start(f->e, &o), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "tag"));
    o.n_tags = AJ_WORKER_TAGS_MAX + 1;
    assert_int_equal(aj_workers_start(f->e, &o), AJ_EINVAL);
    o.n_tags = 1;
    char long_id[AJ_NAME_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    o.worker_id = long_id;
    assert_int_equal(aj_workers_start(f->e, &o), AJ_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_pure),
        cmocka_unit_test_setup_teardown(test_bad_routing_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_shows_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_avoid_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefer_node_then_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing_skips_to_later_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_routing_skipped_and_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_expiry_and_collection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_opts_checked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
