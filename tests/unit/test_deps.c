/*
 * test_deps.c — job dependencies and graphs through the public API on the memory store, with a
 * simulated clock: order in a diamond and in a 1,000-job graph written in batches (the store's
 * transaction limit lowered so that one commit could not hold it), the failure policies
 * (cascade through failure, dead-letter and cancel, transitively; ignore; wait and redrive),
 * validation (cycles, self-edges, unknown names and ids, depth, duplicates) with nothing stored
 * on error, all-or-nothing under a storage failure mid-batch, and the sweep of an abandoned
 * staged graph.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/deps.h"
#include "core/keys.h"
#include "runtime/engine.h"
#include "store/kv.h"

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */

typedef struct fixture {
    aj_test_clock clock;
    kv_store *kv;
    aj_engine *e;
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
    *state = f;
    return 0;
}

static void report(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "check: %s\n", line);
}

static int teardown(void **state) {
    fixture *f = *state;
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, report, NULL, &records), 0);
    aj_engine_close(f->e);
    kv_close(f->kv);
    free(f);
    return 0;
}

static uint64_t submit_after(fixture *f, const uint64_t *after, size_t n, aj_dep_policy p) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    s.after = after;
    s.n_after = n;
    s.on_dep_failure = p;
    uint64_t id = 0;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    return id;
}

static aj_job_state state_of(fixture *f, uint64_t id) {
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    aj_job_state s = j->state;
    aj_job_free(j);
    return s;
}

static aj_dead_reason reason_of(fixture *f, uint64_t id) {
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, id, &j), 0);
    aj_dead_reason r = j->dead_reason;
    aj_job_free(j);
    return r;
}

/* Claims every ready job (up to max), returning ids and epochs. */
static size_t claim(fixture *f, size_t max, uint64_t *ids, uint64_t *epochs) {
    aj_job **jobs = NULL;
    size_t n = 0;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w", max, &jobs, &n), 0);
    for (size_t i = 0; i < n; i++) {
        ids[i] = jobs[i]->id;
        epochs[i] = jobs[i]->epoch;
    }
    aj_job_list_free(jobs, n);
    return n;
}

static uint64_t total_jobs(fixture *f) {
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    uint64_t n = 0;
    for (int i = 0; i < AJ_STATE_COUNT; i++) {
        n += st.jobs[i];
    }
    return n;
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

static size_t keys_of(fixture *f, uint8_t kind) {
    kv_txn *t = NULL;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    size_t n = 0;
    akey k;
    key_prefix(&k, kind);
    assert_int_equal(kv_scan_prefix(t, k.b, k.n, 0, 0, count_cb, &n), 0);
    kv_abort(t);
    return n;
}

/* ----------------------------------------------------------------------------------------- */

static void test_diamond_order(void **state) {
    fixture *f = *state;
    const char *ab[] = {"a"}, *bc[] = {"b", "c"};
    aj_dag_job jobs[4];
    memset(jobs, 0, sizeof jobs);
    const char *names[] = {"d", "b", "a", "c"}; /* file order is not run order */
    for (int i = 0; i < 4; i++) {
        aj_job_spec_init(&jobs[i].spec);
        jobs[i].spec.type = "t";
        jobs[i].name = names[i];
    }
    jobs[0].after_names = bc;
    jobs[0].n_after_names = 2;
    jobs[1].after_names = ab;
    jobs[1].n_after_names = 1;
    jobs[3].after_names = ab;
    jobs[3].n_after_names = 1;
    uint64_t ids[4];
    assert_int_equal(aj_dag_submit(f->e, jobs, 4, ids), 0);
    uint64_t d = ids[0], b = ids[1], a = ids[2], c = ids[3];
    assert_int_equal(state_of(f, a), AJ_STATE_READY);
    assert_int_equal(state_of(f, b), AJ_STATE_SCHEDULED);
    assert_int_equal(state_of(f, d), AJ_STATE_SCHEDULED);

    uint64_t got[8], ep[8];
    assert_int_equal(claim(f, 8, got, ep), 1);
    assert_int_equal(got[0], a);
    assert_int_equal(aj_complete(f->e, a, ep[0], NULL, 0), 0);
    /* Released in the completing transaction: no tick needed. */
    assert_int_equal(claim(f, 8, got, ep), 2);
    assert_true((got[0] == b && got[1] == c) || (got[0] == c && got[1] == b));
    assert_int_equal(aj_complete(f->e, got[0], ep[0], NULL, 0), 0);
    assert_int_equal(state_of(f, d), AJ_STATE_SCHEDULED); /* one of two still running */
    assert_int_equal(aj_complete(f->e, got[1], ep[1], NULL, 0), 0);
    assert_int_equal(claim(f, 8, got, ep), 1);
    assert_int_equal(got[0], d);
    assert_int_equal(aj_complete(f->e, d, ep[0], NULL, 0), 0);

    aj_dag_node *nodes = NULL;
    size_t n = 0;
    uint64_t graph = 0;
    assert_int_equal(aj_dag_show(f->e, c, &nodes, &n, &graph), 0);
    assert_int_equal(n, 4);
    assert_true(graph != 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nodes[i].state, AJ_STATE_COMPLETED);
        if (nodes[i].id == d) {
            assert_string_equal(nodes[i].name, "d");
            assert_int_equal(nodes[i].n_after, 2);
        }
        if (nodes[i].id == a) {
            assert_int_equal(nodes[i].n_waited_by, 2);
        }
    }
    aj_dag_nodes_free(nodes, n);
}

/* 1,000 jobs in 10 layers of 100, each waiting on two jobs of the layer before, on a store whose
 * transaction limit is far below what one commit of the graph would need. */
#define BIG_LAYERS 10
#define BIG_WIDTH 100
#define BIG_N (BIG_LAYERS * BIG_WIDTH)

static void test_big_graph_batched_order(void **state) {
    fixture *f = *state;
    kv_limits lim = {0, 0, 400, (size_t)1 << 20};
    kv_lower_limits(f->kv, &lim);
    static char names[BIG_N][16];
    static const char *after[BIG_N][2];
    static aj_dag_job jobs[BIG_N];
    for (int i = 0; i < BIG_N; i++) {
        snprintf(names[i], sizeof names[i], "j%d", i);
    }
    for (int i = 0; i < BIG_N; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        aj_job_spec_init(&jobs[i].spec);
        jobs[i].spec.type = "t";
        jobs[i].name = names[i];
        int layer = i / BIG_WIDTH;
        if (layer > 0) {
            int base = (layer - 1) * BIG_WIDTH;
            after[i][0] = names[base + i % BIG_WIDTH];
            after[i][1] = names[base + (i * 37 + 11) % BIG_WIDTH];
            jobs[i].after_names = after[i];
            jobs[i].n_after_names = after[i][0] == after[i][1] ? 1 : 2;
        }
    }
    static uint64_t ids[BIG_N];
    /* One commit of everything is over the limit: the batches are what make this succeed. */
    assert_int_equal(aj_dag_submit(f->e, jobs, BIG_N, ids), 0);
    assert_int_equal(total_jobs(f), BIG_N);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_READY], BIG_WIDTH);
    assert_int_equal(st.jobs[AJ_STATE_SCHEDULED], BIG_N - BIG_WIDTH);
    /* Every edge ('T' id dep) has its reverse ('U' dep id); 'T' also holds one header a job,
     * 'U' one marker per job something waits on (the 900 of the first nine layers). */
    assert_int_equal(keys_of(f, KEY_DEPS_REV), keys_of(f, KEY_DEPS) - BIG_N + 900);

    /* Run everything; when a job is claimed, every job it waits on has completed. */
    static int done[BIG_N];
    size_t completed = 0;
    while (completed < BIG_N) {
        uint64_t got[64], ep[64];
        size_t n = claim(f, 64, got, ep);
        assert_true(n > 0);
        for (size_t k = 0; k < n; k++) {
            int i = (int)(got[k] - ids[0]);
            assert_true(i >= 0 && i < BIG_N && ids[i] == got[k]);
            if (i >= BIG_WIDTH) {
                int base = (i / BIG_WIDTH - 1) * BIG_WIDTH;
                assert_true(done[base + i % BIG_WIDTH]);
                assert_true(done[base + (i * 37 + 11) % BIG_WIDTH]);
            }
        }
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(aj_complete(f->e, got[k], ep[k], NULL, 0), 0);
            done[got[k] - ids[0]] = 1;
            completed++;
        }
    }
    assert_int_equal(keys_of(f, KEY_DEPS_REV), keys_of(f, KEY_DEPS) - BIG_N + 900);
}

/* A batched graph with more jobs that have nothing to wait on than one release transaction
 * takes: every one of them is released after the activation. */
static void test_batched_release_of_many_roots(void **state) {
    fixture *f = *state;
    kv_limits lim = {0, 0, 300, (size_t)1 << 20};
    kv_lower_limits(f->kv, &lim);
    enum { N = 2500 };
    static char names[N][16];
    static aj_dag_job jobs[N];
    static const char *after = "r0";
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        memset(&jobs[i], 0, sizeof jobs[i]);
        aj_job_spec_init(&jobs[i].spec);
        jobs[i].spec.type = "t";
        jobs[i].name = names[i];
    }
    jobs[N - 1].after_names = &after; /* one job that waits */
    jobs[N - 1].n_after_names = 1;
    static uint64_t ids[N];
    assert_int_equal(aj_dag_submit(f->e, jobs, N, ids), 0);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_READY], N - 1);
    assert_int_equal(st.jobs[AJ_STATE_SCHEDULED], 1);
    assert_int_equal(keys_of(f, KEY_DEPS_REV), 2); /* the edge and its marker; no sweep work */
}

static void test_batched_all_or_nothing(void **state) {
    fixture *f = *state;
    kv_limits lim = {0, 0, 200, (size_t)1 << 20};
    kv_lower_limits(f->kv, &lim);
    enum { N = 300 };
    static char names[N][16];
    static const char *after[N];
    static aj_dag_job jobs[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        memset(&jobs[i], 0, sizeof jobs[i]);
        aj_job_spec_init(&jobs[i].spec);
        jobs[i].spec.type = "t";
        jobs[i].name = names[i];
        if (i > 0) {
            after[i] = names[(i - 1) / 4]; /* a tree, depth well under 100 */
            jobs[i].after_names = &after[i];
            jobs[i].n_after_names = 1;
        }
    }
    static uint64_t ids[N];
    /* Fail storage operations at several points: each failure leaves nothing behind. */
    for (uint64_t at = 40; at < 4000; at += 397) {
        kv_mem_fail_at(f->kv, at);
        int rc = aj_dag_submit(f->e, jobs, N, ids);
        kv_mem_fail_at(f->kv, 0);
        if (rc == 0) {
            break; /* the failure point fell past the end */
        }
        assert_int_equal(total_jobs(f), 0);
        assert_int_equal(keys_of(f, KEY_DEPS), 0);
        assert_int_equal(keys_of(f, KEY_DEPS_REV), 0);
        assert_int_equal(keys_of(f, KEY_GRAPH), 0);
    }
    if (total_jobs(f) == 0) {
        assert_int_equal(aj_dag_submit(f->e, jobs, N, ids), 0);
    }
    assert_int_equal(total_jobs(f), N);
}

static void test_cascade_transitive_and_policies(void **state) {
    fixture *f = *state;
    uint64_t a = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t b = submit_after(f, &a, 1, AJ_DEP_CASCADE);
    uint64_t c = submit_after(f, &b, 1, AJ_DEP_CASCADE);
    uint64_t ig = submit_after(f, &a, 1, AJ_DEP_IGNORE);
    uint64_t w = submit_after(f, &a, 1, AJ_DEP_WAIT);
    uint64_t wc = submit_after(f, &w, 1, AJ_DEP_CASCADE);
    uint64_t got[8], ep[8];
    assert_int_equal(claim(f, 8, got, ep), 1);
    assert_int_equal(aj_fail(f->e, a, ep[0], "boom", 1), 0);
    assert_int_equal(state_of(f, a), AJ_STATE_DEAD);
    assert_int_equal(state_of(f, b), AJ_STATE_DEAD);
    assert_int_equal(reason_of(f, b), AJ_DEAD_DEPENDENCY);
    assert_int_equal(state_of(f, c), AJ_STATE_DEAD); /* transitively */
    assert_int_equal(reason_of(f, c), AJ_DEAD_DEPENDENCY);
    assert_int_equal(state_of(f, ig), AJ_STATE_READY);
    assert_int_equal(state_of(f, w), AJ_STATE_SCHEDULED);
    assert_int_equal(state_of(f, wc), AJ_STATE_SCHEDULED);

    /* wait: the dependency is redriven and completes. */
    assert_int_equal(aj_dlq_redrive(f->e, a), 0);
    assert_int_equal(state_of(f, w), AJ_STATE_SCHEDULED);
    size_t n = claim(f, 8, got, ep);
    assert_int_equal(n, 2); /* a and ig */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(aj_complete(f->e, got[i], ep[i], NULL, 0), 0);
    }
    assert_int_equal(state_of(f, w), AJ_STATE_READY);

    /* Under cascade, a job that died of a dependency still dead is refused a redrive (it would
     * wait forever), naming that dependency; nothing changes. */
    assert_int_equal(state_of(f, b), AJ_STATE_DEAD);
    assert_int_equal(aj_dlq_redrive(f->e, c), AJ_ESTATE);
    assert_non_null(strstr(aj_errmsg(), "it depends on is dead; redrive"));
    assert_int_equal(state_of(f, c), AJ_STATE_DEAD);
    assert_int_equal(reason_of(f, c), AJ_DEAD_DEPENDENCY);
    assert_int_equal(aj_dlq_redrive(f->e, b), 0); /* a completed since: b may run */
    assert_int_equal(state_of(f, b), AJ_STATE_READY);
    /* Once the dependency is redriven, the dependent may be: it waits again, and runs once the
     * dependency completes. */
    assert_int_equal(aj_dlq_redrive(f->e, c), 0);
    assert_int_equal(state_of(f, c), AJ_STATE_SCHEDULED);
    n = claim(f, 8, got, ep); /* w and b */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(aj_complete(f->e, got[i], ep[i], NULL, 0), 0);
    }
    assert_int_equal(state_of(f, b), AJ_STATE_COMPLETED);
    assert_int_equal(state_of(f, c), AJ_STATE_READY);
}

static void test_dead_letter_and_cancel_cascade(void **state) {
    fixture *f = *state;
    /* Dead-lettered after its last attempt. */
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    s.max_attempts = 1;
    uint64_t a = 0;
    assert_int_equal(aj_submit(f->e, &s, &a), 0);
    uint64_t b = submit_after(f, &a, 1, AJ_DEP_CASCADE);
    uint64_t c = submit_after(f, &b, 1, AJ_DEP_WAIT);
    uint64_t got[4], ep[4];
    assert_int_equal(claim(f, 4, got, ep), 1);
    assert_int_equal(aj_fail(f->e, a, ep[0], "retryable", 0), 0);
    assert_int_equal(state_of(f, a), AJ_STATE_DEAD);
    assert_int_equal(reason_of(f, a), AJ_DEAD_MAX_ATTEMPTS);
    assert_int_equal(state_of(f, b), AJ_STATE_DEAD);
    assert_int_equal(state_of(f, c), AJ_STATE_SCHEDULED); /* wait: b may be redriven */

    /* Cancelled: counts as failed, transitively; under wait too (it can never complete). */
    uint64_t x = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t y = submit_after(f, &x, 1, AJ_DEP_CASCADE);
    uint64_t z = submit_after(f, &y, 1, AJ_DEP_CASCADE);
    uint64_t zw = submit_after(f, &x, 1, AJ_DEP_WAIT);
    uint64_t zi = submit_after(f, &x, 1, AJ_DEP_IGNORE);
    assert_int_equal(aj_job_cancel(f->e, x), 0);
    assert_int_equal(state_of(f, y), AJ_STATE_DEAD);
    assert_int_equal(reason_of(f, y), AJ_DEAD_DEPENDENCY);
    assert_int_equal(state_of(f, z), AJ_STATE_DEAD);
    assert_int_equal(state_of(f, zw), AJ_STATE_DEAD);
    assert_int_equal(state_of(f, zi), AJ_STATE_READY);
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, y, &j), 0);
    assert_non_null(strstr(j->error, "was cancelled"));
    aj_job_free(j);
}

static void test_finished_dependency_applied_at_submit(void **state) {
    fixture *f = *state;
    uint64_t a = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t got[2], ep[2];
    assert_int_equal(claim(f, 2, got, ep), 1);
    assert_int_equal(aj_complete(f->e, a, ep[0], NULL, 0), 0);
    uint64_t b = submit_after(f, &a, 1, AJ_DEP_CASCADE);
    assert_int_equal(state_of(f, b), AJ_STATE_READY);

    uint64_t x = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    assert_int_equal(aj_job_cancel(f->e, x), 0);
    uint64_t dead = submit_after(f, &x, 1, AJ_DEP_CASCADE);
    assert_int_equal(state_of(f, dead), AJ_STATE_DEAD);
    assert_int_equal(reason_of(f, dead), AJ_DEAD_DEPENDENCY);
    uint64_t ok = submit_after(f, &x, 1, AJ_DEP_IGNORE);
    assert_int_equal(state_of(f, ok), AJ_STATE_READY);

    /* A delay still applies once the dependencies are done. */
    uint64_t p = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    s.after = &p;
    s.n_after = 1;
    s.delay_ms = AJ_HOUR;
    uint64_t later = 0;
    assert_int_equal(aj_submit(f->e, &s, &later), 0);
    uint64_t all[8], eps[8];
    size_t more = claim(f, 8, all, eps);
    assert_int_equal(more, 3); /* b, ok and p; not `later` */
    for (size_t i = 0; i < more; i++) {
        got[0] = all[i];
        ep[0] = eps[i];
        assert_true(all[i] != later);
        if (got[0] == p) {
            assert_int_equal(aj_complete(f->e, p, ep[0], NULL, 0), 0);
        }
    }
    aj_job *j = NULL;
    assert_int_equal(aj_job_get(f->e, later, &j), 0);
    assert_int_equal(j->state, AJ_STATE_SCHEDULED);
    assert_int_equal(j->run_at_ms, T0 + AJ_HOUR);
    aj_job_free(j);
}

static void expect_dag_error(fixture *f, const aj_dag_job *jobs, size_t n, int code,
                             const char *text) {
    uint64_t before = total_jobs(f);
    uint64_t ids[8];
    assert_int_equal(aj_dag_submit(f->e, jobs, n, ids), code);
    if (strstr(aj_errmsg(), text) == NULL) {
        fail_msg("message '%s' lacks '%s'", aj_errmsg(), text);
    }
    assert_int_equal(total_jobs(f), before);
    assert_int_equal(keys_of(f, KEY_GRAPH), 0);
}

static void test_validation(void **state) {
    fixture *f = *state;
    aj_dag_job jobs[4];
    memset(jobs, 0, sizeof jobs);
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        aj_job_spec_init(&jobs[i].spec);
        jobs[i].spec.type = "t";
        jobs[i].name = names[i];
    }
    const char *wa[] = {"a"}, *wb[] = {"b"}, *wc[] = {"c"}, *wx[] = {"x"};
    /* cycle a -> b -> c -> a (b waits on a, c on b, a on c) */
    jobs[0].after_names = wc;
    jobs[0].n_after_names = 1;
    jobs[1].after_names = wa;
    jobs[1].n_after_names = 1;
    jobs[2].after_names = wb;
    jobs[2].n_after_names = 1;
    expect_dag_error(f, jobs, 4, AJ_EINVAL, "cycle: a -> b -> c -> a");
    jobs[0].after_names = wa; /* self-edge */
    expect_dag_error(f, jobs, 4, AJ_EINVAL, "job 'a' depends on itself");
    jobs[0].after_names = wx;
    expect_dag_error(f, jobs, 4, AJ_EINVAL, "job 'a' waits on unknown job 'x'");
    jobs[0].n_after_names = 0;
    jobs[3].name = "b";
    expect_dag_error(f, jobs, 4, AJ_EINVAL, "duplicate job name 'b'");
    jobs[3].name = "d";
    uint64_t missing = 999999;
    jobs[3].spec.after = &missing;
    jobs[3].spec.n_after = 1;
    expect_dag_error(f, jobs, 4, AJ_ENOTFOUND, "999999");
    jobs[3].spec.n_after = 0;
    jobs[3].spec.type = NULL;
    expect_dag_error(f, jobs, 4, AJ_EINVAL, "job 'd'");

    /* Depth: 101 jobs on a path. */
    enum { D = 101 };
    static char dn[D][8];
    static const char *dafter[D];
    static aj_dag_job chain[D];
    for (int i = 0; i < D; i++) {
        snprintf(dn[i], sizeof dn[i], "s%d", i);
        memset(&chain[i], 0, sizeof chain[i]);
        aj_job_spec_init(&chain[i].spec);
        chain[i].spec.type = "t";
        chain[i].name = dn[i];
        if (i > 0) {
            dafter[i] = dn[i - 1];
            chain[i].after_names = &dafter[i];
            chain[i].n_after_names = 1;
        }
    }
    static uint64_t cids[D];
    assert_int_equal(aj_dag_submit(f->e, chain, D, cids), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "'s100' is at depth 101"));
    assert_int_equal(total_jobs(f), 0);
    assert_int_equal(aj_dag_submit(f->e, chain, D - 1, cids), 0); /* 100 is allowed */
    /* ... and one more through --after-style submit is not. */
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    s.after = &cids[D - 2];
    s.n_after = 1;
    uint64_t id = 0;
    uint64_t before = total_jobs(f);
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "over the limit of 100"));
    s.after = &missing;
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_ENOTFOUND);
    s.after = &cids[0];
    s.on_dep_failure = (aj_dep_policy)9;
    assert_int_equal(aj_submit(f->e, &s, &id), AJ_EINVAL);
    assert_int_equal(total_jobs(f), before);
}

static void test_abandoned_stage_is_swept(void **state) {
    fixture *f = *state;
    /* What a submitter that died mid-batch leaves: a staged graph with held jobs. */
    kv_txn *t = NULL;
    job_env env;
    eng_id_src ids;
    eng_env(f->e, &env, NULL, &ids);
    uint64_t first = 0;
    assert_int_equal(eng_ids(f->e, 3, &first), 0);
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(deps_graph_create(t, &env, first, 2, 1), 0);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    uint64_t out = 0;
    int created = 0;
    assert_int_equal(job_submit(t, &env, &s, first + 1, &out, &created), 0);
    assert_int_equal(deps_graph_member(t, first, first + 1, "a"), 0);
    assert_int_equal(deps_attach(t, &env, first + 1, AJ_DEP_CASCADE, NULL, 0, first, 1), 0);
    assert_int_equal(job_submit(t, &env, &s, first + 2, &out, &created), 0);
    assert_int_equal(deps_graph_member(t, first, first + 2, "b"), 0);
    uint64_t dep = first + 1;
    assert_int_equal(deps_attach(t, &env, first + 2, AJ_DEP_CASCADE, &dep, 1, first, 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);

    assert_int_equal(state_of(f, first + 1), AJ_STATE_SCHEDULED); /* held: staged */
    uint64_t got[2], ep[2];
    assert_int_equal(claim(f, 2, got, ep), 0);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(total_jobs(f), 2); /* not yet abandoned */
    aj_test_clock_advance(&f->clock, DEPS_STAGE_TTL_MS + 1);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(total_jobs(f), 0);
    assert_int_equal(keys_of(f, KEY_DEPS), 0);
    assert_int_equal(keys_of(f, KEY_DEPS_REV), 0);
    assert_int_equal(keys_of(f, KEY_GRAPH), 0);
}

/* A completion and a new dependent of the same job, racing: the memory store does not
 * validate scanned ranges, so only the 'U' marker makes them conflict. Without it the
 * completion would commit without seeing the new edge, and the dependent would wait forever. */
static void test_attach_races_completion(void **state) {
    fixture *f = *state;
    uint64_t a = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t other = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t got[2], ep[2];
    assert_int_equal(claim(f, 1, got, ep), 1);
    assert_int_equal(got[0], a);
    job_env env;
    eng_id_src ids;
    eng_env(f->e, &env, NULL, &ids);
    kv_txn *done = NULL;
    assert_int_equal(kv_begin(f->kv, &done), 0);
    aj_slice none = {NULL, 0};
    assert_int_equal(job_complete(done, &env, a, ep[0], none), 0); /* scans 'U' a: empty */
    uint64_t b = submit_after(f, &a, 1, AJ_DEP_CASCADE);           /* commits an edge to a */
    assert_int_equal(kv_commit(done, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
    assert_int_equal(state_of(f, b), AJ_STATE_SCHEDULED);
    assert_int_equal(aj_complete(f->e, a, ep[0], NULL, 0), 0); /* the retry sees the edge */
    assert_int_equal(state_of(f, b), AJ_STATE_READY);
    (void)other;
}

/* What a submitter that died right after the activation commit leaves: an activated graph
 * whose members are still held. The sweep releases them, in several transactions (the limit
 * is lowered) that resume where the last one stopped. */
static void test_interrupted_release_is_swept(void **state) {
    fixture *f = *state;
    kv_limits lim = {0, 0, 200, (size_t)1 << 20};
    kv_lower_limits(f->kv, &lim);
    enum { N = 600, PER_TXN = 20 };
    job_env env;
    eng_id_src ids;
    eng_env(f->e, &env, NULL, &ids);
    uint64_t first = 0;
    assert_int_equal(eng_ids(f->e, N + 1, &first), 0);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    for (int b = 0; b < N / PER_TXN; b++) {
        kv_txn *t = NULL;
        assert_int_equal(kv_begin(f->kv, &t), 0);
        if (b == 0) {
            assert_int_equal(deps_graph_create(t, &env, first, N, 1), 0);
        }
        for (int i = b * PER_TXN; i < (b + 1) * PER_TXN; i++) {
            uint64_t id = first + 1 + (uint64_t)i, out = 0;
            int created = 0;
            assert_int_equal(job_submit(t, &env, &s, id, &out, &created), 0);
            assert_int_equal(deps_graph_member(t, first, id, "m"), 0);
            assert_int_equal(deps_attach(t, &env, id, AJ_DEP_CASCADE, NULL, 0, first, 1), 0);
        }
        assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    }
    kv_txn *t = NULL;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(deps_graph_activate(t, &env, first), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    aj_stats st;
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_SCHEDULED], N);
    int trc = aj_engine_tick(f->e);
    if (trc != 0) {
        fail_msg("tick: %s", aj_errmsg());
    }
    assert_int_equal(aj_stats_get(f->e, &st), 0);
    assert_int_equal(st.jobs[AJ_STATE_READY], N);
    assert_int_equal(keys_of(f, KEY_DEPS_REV), 0); /* nothing left for the sweep */
}

static void test_collect_and_purge(void **state) {
    fixture *f = *state;
    uint64_t a = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t b = submit_after(f, &a, 1, AJ_DEP_CASCADE);
    uint64_t got[2], ep[2];
    assert_int_equal(claim(f, 2, got, ep), 1);
    assert_int_equal(aj_complete(f->e, a, ep[0], NULL, 0), 0);
    aj_test_clock_advance(&f->clock, 8 * AJ_DAY);
    assert_int_equal(aj_engine_tick(f->e), 0); /* a is collected (retention 7 days) */
    aj_dag_node *nd = NULL;
    assert_int_equal(aj_job_deps(f->e, b, &nd), 0);
    assert_int_equal(nd->n_after, 1);
    assert_int_equal(nd->after[0], a);
    assert_int_equal(nd->after_state[0], 0); /* collected */
    aj_dag_nodes_free(nd, 1);

    /* A purged dead dependency can never complete: its waiting dependents fail. */
    uint64_t x = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t w = submit_after(f, &x, 1, AJ_DEP_WAIT);
    size_t n = claim(f, 2, got, ep);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(aj_fail(f->e, got[i], ep[i], "no", 1), 0);
    }
    assert_int_equal(state_of(f, x), AJ_STATE_DEAD);
    assert_int_equal(state_of(f, w), AJ_STATE_SCHEDULED);
    assert_int_equal(aj_dlq_purge(f->e, x), 0);
    assert_int_equal(state_of(f, w), AJ_STATE_DEAD);
}

/* `aj check` covers the dependency records: a pending count that disagrees with the edges, and
 * a missing reverse edge, are each reported. */
/* A spec's dependency fields are checked by the one call that checks the whole spec
 * (job_spec_check), with the same messages through aj_submit and aj_submit_batch, and after the
 * other fields (a spec wrong in two places names the same problem as before). */
static void test_spec_check_covers_deps(void **state) {
    fixture *f = *state;
    static uint64_t many[AJ_DEPS_MAX + 1];
    uint64_t zero = 0, one = 1;
    char too_many[100];
    snprintf(too_many, sizeof too_many, "a job may wait on at most %d jobs, not %d", AJ_DEPS_MAX,
             AJ_DEPS_MAX + 1);
    for (size_t i = 0; i < AJ_DEPS_MAX + 1; i++) {
        many[i] = i + 1;
    }
    struct {
        aj_dep_policy policy;
        const uint64_t *after;
        size_t n_after;
        const char *msg;
    } bad[] = {
        {(aj_dep_policy)7, NULL, 0, "unknown dependency failure policy 7"},
        {AJ_DEP_CASCADE, many, AJ_DEPS_MAX + 1, too_many},
        {AJ_DEP_CASCADE, NULL, 2, "after is NULL but n_after is 2"},
        {AJ_DEP_IGNORE, &zero, 1, "dependency id 0 is not a job id"},
    };
    uint64_t before = total_jobs(f);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aj_job_spec s[2];
        aj_job_spec_init(&s[0]);
        s[0].type = "t";
        s[0].on_dep_failure = bad[i].policy;
        s[0].after = bad[i].after;
        s[0].n_after = bad[i].n_after;
        assert_int_equal(job_spec_check(&s[0]), AJ_EINVAL);
        assert_string_equal(aj_errmsg(), bad[i].msg);
        uint64_t ids[2];
        assert_int_equal(aj_submit(f->e, &s[0], ids), AJ_EINVAL);
        assert_string_equal(aj_errmsg(), bad[i].msg);
        aj_job_spec_init(&s[1]);
        s[1].type = "t";
        s[1].after = &one;
        s[1].n_after = 1;
        aj_job_spec tmp = s[0];
        s[0] = s[1];
        s[1] = tmp;
        assert_int_equal(aj_submit_batch(f->e, s, 2, ids), AJ_EINVAL);
        char want[200];
        snprintf(want, sizeof want, "job 2 of the batch: %s", bad[i].msg);
        assert_string_equal(aj_errmsg(), want);
        /* The other fields are checked first. */
        tmp.avoid_node = "n";
        tmp.prefer_node = "n";
        assert_int_equal(job_spec_check(&tmp), AJ_EINVAL);
        assert_string_equal(aj_errmsg(), "node 'n' is both preferred and avoided");
    }
    assert_int_equal(total_jobs(f), before);
}

static void test_check_finds_damage(void **state) {
    fixture *f = *state;
    uint64_t a = submit_after(f, NULL, 0, AJ_DEP_CASCADE);
    uint64_t b = submit_after(f, &a, 1, AJ_DEP_CASCADE);
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
    kv_txn *t = NULL;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    uint8_t rev[17];
    rev[0] = KEY_DEPS_REV;
    aj__put_u64be(rev + 1, a);
    aj__put_u64be(rev + 9, b);
    assert_int_equal(kv_del(t, rev, sizeof rev), 0);
    deps_hdr h;
    assert_int_equal(deps_read_hdr(t, b, &h), 0);
    assert_int_equal(h.pending, 1);
    uint8_t hk[9];
    hk[0] = KEY_DEPS;
    aj__put_u64be(hk + 1, b);
    const uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(kv_get(t, hk, sizeof hk, &v, &n), 0);
    uint8_t damaged[64];
    memcpy(damaged, v, n);
    aj__put_u32be(damaged + 2, 0); /* pending 0 while the edge is pending */
    assert_int_equal(kv_put(t, hk, sizeof hk, damaged, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), AJ_ECORRUPT);
    /* Undo, so the teardown's check passes. */
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_put(t, rev, sizeof rev, "", 0), 0);
    aj__put_u32be(damaged + 2, 1);
    assert_int_equal(kv_put(t, hk, sizeof hk, damaged, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
}

static void test_parse(void **state) {
    (void)state;
    aj_dag *d = NULL;
    const char *good =
        "{\"jobs\":[{\"name\":\"a\",\"run\":[\"true\"]},"
        "{\"name\":\"b\",\"after\":[\"a\",7],\"type\":\"echo\",\"payload\":{\"x\":1},"
        "\"queue\":\"q\",\"priority\":\"high\",\"max_attempts\":5,\"timeout\":\"1m\","
        "\"lease\":\"10s\",\"on_dep_failure\":\"ignore\",\"metadata\":{\"k\":\"v\"}}]}";
    assert_int_equal(aj_dag_parse(good, strlen(good), &d), 0);
    assert_int_equal(d->n, 2);
    assert_string_equal(d->jobs[0].spec.type, "shell");
    assert_memory_equal(d->jobs[0].spec.payload, "{\"argv\":[\"true\"]}", 17);
    assert_int_equal(d->jobs[1].n_after_names, 1);
    assert_int_equal(d->jobs[1].spec.n_after, 1);
    assert_int_equal(d->jobs[1].spec.after[0], 7);
    assert_int_equal(d->jobs[1].spec.priority, AJ_PRIORITY_HIGH);
    assert_int_equal(d->jobs[1].spec.max_attempts, 5);
    assert_int_equal(d->jobs[1].spec.lease_ms, 10 * AJ_SECOND);
    assert_int_equal(d->jobs[1].spec.on_dep_failure, AJ_DEP_IGNORE);
    assert_string_equal(d->jobs[1].spec.metadata, "{\"k\":\"v\"}");
    assert_int_equal(aj_dag_check(d->jobs, d->n), 0);
    aj_dag_free(d);

    struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"{\"jobs\":[", "not valid JSON"},
        {"[]", "must be an object"},
        {"{}", "no \"jobs\""},
        {"{\"jobs\":[],\"x\":1}", "unknown field \"x\""},
        {"{\"jobs\":[]}", "non-empty array"},
        {"{\"jobs\":[{\"run\":[\"a\"]}]}", "job 1 has no \"name\""},
        {"{\"jobs\":[{\"name\":\"a\"}]}", "needs \"run\""},
        {"{\"jobs\":[{\"name\":\"a\",\"run\":\"x\"}]}", "\"run\" must be a non-empty array"},
        {"{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"],\"colour\":1}]}", "unknown field \"colour\""},
        {"{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"],\"after\":[true]}]}", "\"after\" item 1"},
        {"{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"],\"timeout\":\"soon\"}]}", "not a duration"},
        {"{\"jobs\":[{\"name\":\"a\",\"run\":[\"x\"],\"on_dep_failure\":\"maybe\"}]}",
         "cascade, ignore or wait"},
        {"{\"jobs\":[{\"name\":\"a\",\"type\":\"bad name\"}]}", "job 1 ('a')"},
        {"{\"jobs\":[{\"name\":\"\",\"type\":\"t\"}]}", "1 to 200 bytes"},
        {"{\"jobs\":[{\"name\":\"a\",\"type\":\"t\"},{\"name\":\"b c\",\"type\":\"t\"}]}",
         "job 2: \"name\" may not hold whitespace"},
        {"{\"jobs\":[{\"name\":\"a\\tb\",\"type\":\"t\"}]}", "may not hold whitespace"},
        {"{\"jobs\":[{\"name\":\"a\",\"type\":\"t\"},{\"name\":\"a\",\"type\":\"t\"}]}", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = NULL;
        int rc = aj_dag_parse(bad[i].text, strlen(bad[i].text), &d);
        if (bad[i].msg == NULL) { /* parses; the shape check rejects it */
            assert_int_equal(rc, 0);
            assert_int_equal(aj_dag_check(d->jobs, d->n), AJ_EINVAL);
            assert_non_null(strstr(aj_errmsg(), "duplicate job name 'a'"));
            aj_dag_free(d);
            continue;
        }
        assert_int_equal(rc, AJ_EINVAL);
        if (strstr(aj_errmsg(), bad[i].msg) == NULL) {
            fail_msg("case %zu: message '%s' lacks '%s'", i, aj_errmsg(), bad[i].msg);
        }
    }
    /* The library's check refuses such names too (a graph built without the parser). */
    aj_dag_job j[2];
    memset(j, 0, sizeof j);
    j[0].name = "a";
    j[1].name = "b c";
    aj_job_spec_init(&j[0].spec);
    aj_job_spec_init(&j[1].spec);
    j[0].spec.type = j[1].spec.type = "t";
    assert_int_equal(aj_dag_check(j, 2), AJ_EINVAL);
    assert_non_null(
        strstr(aj_errmsg(), "job 2: a name must be 1 to 200 bytes, without whitespace"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_diamond_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_graph_batched_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_release_of_many_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cascade_transitive_and_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_and_cancel_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finished_dependency_applied_at_submit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_stage_is_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_races_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_release_is_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_check_covers_deps, setup, teardown),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests_name("deps", tests, NULL, NULL);
}
