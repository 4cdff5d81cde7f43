/*
 * test_queue_ctl.c — queue controls (issue 4 §8) through the public API on the memory store with
 * a simulated clock: pause and resume, the concurrency limit across every way a lease ends, a
 * limit set while jobs run, claimers that bound what they take from limited queues, the
 * sliding-window rate limit (strict on the maximum), the rate parser, and persistence across a
 * reopen of an SQLite store.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/engine.h"

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
    o.seed = 3;
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

static uint64_t submit_q(fixture *f, const char *queue) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.queue = queue;
    s.lease_ms = 10 * AJ_SECOND;
    s.backoff.kind = AJ_BACKOFF_NONE;
    uint64_t id = 0;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    return id;
}

/* Claims up to max from `queue`; fills out (may be NULL) with the jobs (owned). */
static size_t claim_q(fixture *f, const char *queue, size_t max, aj_job **out) {
    aj_job **jobs;
    size_t n;
    const char *q[] = {queue};
    assert_int_equal(aj_claim(f->e, q, 1, "w1", max, &jobs, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (out != NULL) {
            out[i] = jobs[i];
        } else {
            aj_job_free(jobs[i]);
        }
    }
    free(jobs);
    return n;
}

static aj_queue_info find_queue(fixture *f, const char *name) {
    aj_queue_info *v = NULL;
    size_t n = 0;
    assert_int_equal(aj_queue_list(f->e, &v, &n), 0);
    aj_queue_info found;
    memset(&found, 0, sizeof found);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0) {
            found = v[i];
            found.name = NULL;
            seen = 1;
        }
    }
    aj_queue_list_free(v, n);
    assert_true(seen);
    return found;
}

static void test_pause_resume(void **state) {
    fixture *f = *state;
    /* A queue without jobs may be paused; submits still work; nothing is claimed. */
    assert_int_equal(aj_queue_pause(f->e, "mail"), 0);
    assert_int_equal(aj_queue_pause(f->e, "mail"), 0); /* again: no change */
    submit_q(f, "mail");
    submit_q(f, "mail");
    submit_q(f, "other");
    assert_int_equal(claim_q(f, "mail", 10, NULL), 0);
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w1", 10, &jobs, &n), 0);
    assert_int_equal(n, 1); /* only the other queue's job */
    assert_string_equal(jobs[0]->queue, "other");
    aj_job_list_free(jobs, n);
    aj_queue_info q = find_queue(f, "mail");
    assert_true(q.paused);
    assert_int_equal(q.jobs[AJ_STATE_READY], 2);
    assert_int_equal(aj_queue_resume(f->e, "mail"), 0);
    q = find_queue(f, "mail");
    assert_false(q.paused);
    assert_int_equal(claim_q(f, "mail", 10, NULL), 2);
    q = find_queue(f, "mail");
    assert_int_equal(q.jobs[AJ_STATE_RUNNING], 2);
    /* Bad names are refused. */
    assert_int_equal(aj_queue_pause(f->e, "a b"), AJ_EINVAL);
    assert_int_equal(aj_queue_resume(f->e, ""), AJ_EINVAL);
}

static void test_concurrency_every_lease_end(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_queue_limit(f->e, "q", 2, -1, 0), 0);
    for (int i = 0; i < 8; i++) {
        submit_q(f, "q");
    }
    aj_job *j[8];
    assert_int_equal(claim_q(f, "q", 8, j), 2);
    assert_int_equal(claim_q(f, "q", 8, NULL), 0);
    assert_int_equal(find_queue(f, "q").leases_counted, 2);
    /* complete */
    assert_int_equal(aj_complete(f->e, j[0]->id, j[0]->epoch, NULL, 0), 0);
    assert_int_equal(find_queue(f, "q").leases_counted, 1);
    assert_int_equal(claim_q(f, "q", 8, &j[2]), 1);
    /* fail (retried later: back to scheduled) */
    assert_int_equal(aj_fail(f->e, j[1]->id, j[1]->epoch, "boom", 0), 0);
    assert_int_equal(claim_q(f, "q", 8, &j[3]), 1);
    /* release */
    assert_int_equal(aj_release(f->e, j[2]->id, j[2]->epoch, 0), 0);
    assert_int_equal(claim_q(f, "q", 8, &j[4]), 1);
    /* cancel a running job */
    assert_int_equal(aj_job_cancel(f->e, j[3]->id), 0);
    assert_int_equal(claim_q(f, "q", 8, &j[5]), 1);
    assert_int_equal(find_queue(f, "q").leases_counted, 2);
    assert_int_equal(find_queue(f, "q").jobs[AJ_STATE_RUNNING], 2);
    /* lease expiry (the reaper) */
    aj_test_clock_advance(&f->clock, 11 * AJ_SECOND);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(find_queue(f, "q").leases_counted, 0);
    assert_int_equal(claim_q(f, "q", 8, NULL), 2);
    /* Removing the limit: claims take everything; ending leases still count down. */
    assert_int_equal(aj_queue_limit(f->e, "q", 0, -1, 0), 0);
    assert_true(claim_q(f, "q", 8, NULL) > 0);
    aj_queue_info q = find_queue(f, "q");
    assert_int_equal(q.concurrency, 0);
    for (int i = 0; i < 6; i++) {
        aj_job_free(j[i]);
    }
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
}

static void test_limit_counts_running_jobs(void **state) {
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        submit_q(f, "q");
    }
    aj_job *j[5];
    assert_int_equal(claim_q(f, "q", 3, j), 3); /* no limit yet */
    assert_int_equal(aj_queue_limit(f->e, "q", 2, -1, 0), 0);
    assert_int_equal(find_queue(f, "q").leases_counted, 3);
    assert_int_equal(claim_q(f, "q", 5, NULL), 0);
    assert_int_equal(aj_complete(f->e, j[0]->id, j[0]->epoch, NULL, 0), 0);
    assert_int_equal(claim_q(f, "q", 5, NULL), 0); /* 2 still hold leases */
    assert_int_equal(aj_complete(f->e, j[1]->id, j[1]->epoch, NULL, 0), 0);
    assert_int_equal(claim_q(f, "q", 5, NULL), 1);
    /* Setting the limit again recounts, never double counts. */
    assert_int_equal(aj_queue_limit(f->e, "q", 3, -1, 0), 0);
    assert_int_equal(find_queue(f, "q").leases_counted, 2);
    for (int i = 0; i < 3; i++) {
        aj_job_free(j[i]);
    }
}

static void collect_line(void *ud, const char *line) {
    snprintf(ud, 512, "%s", line);
}

static void test_check_finds_wrong_count(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_queue_limit(f->e, "q", 2, -1, 0), 0);
    submit_q(f, "q");
    assert_int_equal(claim_q(f, "q", 5, NULL), 1);
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
    /* Damage from outside the engine: the usage record says 5 leases. */
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    const uint8_t key[] = {'z', 'q'}, val[] = {1, 5, 0};
    assert_int_equal(kv_put(t, key, sizeof key, val, sizeof val), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    char line[512] = "";
    assert_int_equal(aj_check(f->e, collect_line, line, &records), AJ_ECORRUPT);
    assert_non_null(strstr(line, "queue 'q': 5 leases counted"));
    assert_non_null(strstr(line, "but 1 running"));
    assert_int_equal(claim_q(f, "q", 5, NULL), 0); /* the damage only makes claims shy */
    /* Setting the limit recounts. */
    assert_int_equal(aj_queue_limit(f->e, "q", 2, -1, 0), 0);
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
    submit_q(f, "q");
    assert_int_equal(claim_q(f, "q", 5, NULL), 1);
}

static void put_raw(fixture *f, const char *key, const void *val, size_t n) {
    kv_txn *t;
    assert_int_equal(kv_begin(f->e->kv, &t), 0);
    assert_int_equal(kv_put(t, key, strlen(key), val, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
}

static void count_lines(void *ud, const char *line) {
    (void)line;
    (*(int *)ud)++;
}

static void test_damaged_records_stay_local(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_queue_limit(f->e, "q", 3, -1, 0), 0);
    submit_q(f, "q");
    aj_job *j[2];
    assert_int_equal(claim_q(f, "q", 5, j), 1);
    submit_q(f, "q");
    submit_q(f, "other");
    put_raw(f, "qq", "\x01\xff", 2);     /* control: truncated */
    put_raw(f, "zq", "\x01\x05\x09", 3); /* usage: says 9 times, holds none */
    /* The damaged queue is skipped; the claimer's other queues are not blocked. */
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w1", 10, &jobs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0]->queue, "other");
    aj_job_list_free(jobs, n);
    /* The running job's outcome is not blocked either. */
    assert_int_equal(aj_complete(f->e, j[0]->id, j[0]->epoch, NULL, 0), 0);
    aj_job_free(j[0]);
    aj_queue_info *v;
    assert_int_equal(aj_queue_list(f->e, &v, &n), 0); /* listing still works */
    aj_queue_list_free(v, n);
    int lines = 0;
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, count_lines, &lines, &records), AJ_ECORRUPT);
    assert_int_equal(lines, 2);
    /* The operator's command rewrites both. */
    assert_int_equal(aj_queue_limit(f->e, "q", 3, -1, 0), 0);
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
    assert_int_equal(claim_q(f, "q", 5, NULL), 1);
    put_raw(f, "qq", "\x01", 1);
    assert_int_equal(aj_queue_pause(f->e, "q"), 0);
    assert_true(find_queue(f, "q").paused);
    /* A control written by a newer aj is not overwritten, and blocks only its queue. */
    put_raw(f, "qq", "\x07", 1);
    assert_int_equal(aj_queue_resume(f->e, "q"), AJ_EFORMAT);
    submit_q(f, "other");
    assert_int_equal(claim_q(f, "other", 5, NULL), 1);
    assert_int_equal(claim_q(f, "q", 5, NULL), 0);
}

static void test_claimer_bound_on_limited_queues(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_queue_limit(f->e, "lim", 10, -1, 0), 0);
    for (int i = 0; i < 4; i++) {
        submit_q(f, "lim");
        submit_q(f, "free");
    }
    const char *q[] = {"lim", "free"};
    job_claim_who who = {{"n1", NULL, 0}, 1}; /* one idle thread */
    aj_job *jobs[16];
    int64_t lat[16];
    size_t n = 0;
    assert_int_equal(eng_claim(f->e, q, 2, "w", &who, 16, 0, jobs, lat, &n), 0);
    size_t lim = 0;
    for (size_t i = 0; i < n; i++) {
        lim += strcmp(jobs[i]->queue, "lim") == 0;
        aj_job_free(jobs[i]);
    }
    assert_int_equal(lim, 1);
    assert_int_equal(n, 5); /* the unlimited queue's jobs are prefetched as before */
    who.max_limited = 0;    /* no idle thread: nothing from limited queues */
    assert_int_equal(eng_claim(f->e, q, 2, "w", &who, 16, 0, jobs, lat, &n), 0);
    assert_int_equal(n, 0);
}

static void test_rate_sliding_window(void **state) {
    fixture *f = *state;
    assert_int_equal(aj_queue_limit(f->e, "r", -1, 3, AJ_SECOND), 0);
    for (int i = 0; i < 20; i++) {
        submit_q(f, "r");
    }
    int64_t times[20];
    size_t n_claims = 0;
    /* Claim greedily every 100 ms for 5 s; record each claim's time. */
    for (int step = 0; step <= 50; step++) {
        aj_job *j[20];
        size_t n = claim_q(f, "r", 20, j);
        for (size_t i = 0; i < n; i++) {
            times[n_claims++] = j[i]->started_ms;
            aj_job_free(j[i]);
        }
        aj_test_clock_advance(&f->clock, 100);
    }
    /* 3 per window: at 0, 1000, 2000, 3000, 4000, 5000 ms: 18 claims. */
    assert_int_equal(n_claims, 18);
    for (size_t i = 0; i < n_claims; i++) {
        size_t in_window = 0;
        for (size_t k = 0; k < n_claims; k++) {
            in_window += times[k] >= times[i] && times[k] < times[i] + AJ_SECOND;
        }
        assert_true(in_window <= 3);
    }
    aj_queue_info q = find_queue(f, "r");
    assert_int_equal(q.rate_n, 3);
    assert_int_equal(q.rate_window_ms, AJ_SECOND);
    /* Lowering the rate keeps the latest claims; removing it frees the queue. */
    assert_int_equal(aj_queue_limit(f->e, "r", -1, 1, AJ_MINUTE), 0);
    assert_int_equal(claim_q(f, "r", 5, NULL), 0);
    assert_int_equal(aj_queue_limit(f->e, "r", -1, 0, 0), 0);
    assert_int_equal(claim_q(f, "r", 5, NULL), 2);
}

static void test_rate_and_concurrency_bad_input(void **state) {
    fixture *f = *state;
    uint32_t n = 9;
    int64_t w = 9;
    assert_int_equal(aj_rate_parse("10/1s", &n, &w), 0);
    assert_int_equal(n, 10);
    assert_int_equal(w, AJ_SECOND);
    assert_int_equal(aj_rate_parse("100/1m", &n, &w), 0);
    assert_int_equal(w, AJ_MINUTE);
    assert_int_equal(aj_rate_parse("none", &n, &w), 0);
    assert_int_equal(n, 0);
    assert_int_equal(aj_rate_parse("0", &n, &w), 0);
    assert_int_equal(n, 0);
    const char *bad[] = {"",
                         "10",
                         "/1s",
                         "0/1s",
                         "-1/1s",
                         "10/",
                         "10/1x",
                         "10/0s",
                         "x/1s",
                         "1001/1s",
                         "10/2d",
                         "1 0/1s",
                         "99999999999999999999/1s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(aj_rate_parse(bad[i], &n, &w), AJ_EINVAL);
        assert_true(strlen(aj_errmsg()) > 0);
    }
    assert_int_equal(aj_queue_limit(f->e, "q", AJ_QUEUE_CONCURRENCY_MAX + 1, -1, 0), AJ_EINVAL);
    assert_int_equal(aj_queue_limit(f->e, "q", -1, 5, 0), AJ_EINVAL);
    assert_int_equal(aj_queue_limit(f->e, "q", -1, AJ_QUEUE_RATE_MAX + 1, 1000), AJ_EINVAL);
    assert_int_equal(aj_queue_limit(f->e, "bad name", 1, -1, 0), AJ_EINVAL);
    aj_queue_info *v;
    size_t nq;
    assert_int_equal(aj_queue_list(f->e, &v, &nq), 0);
    assert_int_equal(nq, 0); /* nothing was stored */
    aj_queue_list_free(v, nq);
}

static void test_controls_survive_reopen(void **state) {
    (void)state;
    char path[] = "/tmp/aj_test_qctl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s", path);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.background = 0;
    aj_engine *e;
    assert_int_equal(aj_engine_open(&e, url, &o), 0);
    assert_int_equal(aj_queue_pause(e, "p"), 0);
    assert_int_equal(aj_queue_limit(e, "p", 4, 7, AJ_MINUTE), 0);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "echo";
    s.queue = "p";
    uint64_t id;
    assert_int_equal(aj_submit(e, &s, &id), 0);
    aj_engine_close(e);
    assert_int_equal(aj_engine_open(&e, url, &o), 0);
    aj_job **jobs;
    size_t n;
    const char *q[] = {"p"};
    assert_int_equal(aj_claim(e, q, 1, "w", 5, &jobs, &n), 0);
    assert_int_equal(n, 0);
    free(jobs);
    aj_queue_info *v;
    size_t nq;
    assert_int_equal(aj_queue_list(e, &v, &nq), 0);
    assert_int_equal(nq, 1);
    assert_true(v[0].paused);
    assert_int_equal(v[0].concurrency, 4);
    assert_int_equal(v[0].rate_n, 7);
    assert_int_equal(v[0].rate_window_ms, AJ_MINUTE);
    aj_queue_list_free(v, nq);
    assert_int_equal(aj_queue_resume(e, "p"), 0);
    assert_int_equal(aj_claim(e, q, 1, "w", 5, &jobs, &n), 0);
    assert_int_equal(n, 1);
    aj_job_list_free(jobs, n);
    aj_engine_close(e);
    char side[160];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency_every_lease_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_counts_running_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claimer_bound_on_limited_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_wrong_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_records_stay_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_sliding_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_and_concurrency_bad_input, setup, teardown),
        cmocka_unit_test(test_controls_survive_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
