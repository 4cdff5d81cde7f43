/*
 * test_schedule.c — schedules through the public API on the memory store with a simulated clock
 * and a seeded PRNG (no background threads: the test calls aj_schedules_tick), so every fire,
 * catch-up, overlap decision and jitter is exact and repeatable: firing and the job a fire
 * creates (metadata, shell env), catch-up skip/once/all with a limit, overlap
 * skip/buffer/allow/cancel, pause/resume, trigger, backfill, one-shot times, jitter bounds,
 * daylight-saving time, bad input, the template's routing (and records written before it
 * existed), and two engines on one store firing each time exactly once
 * (interleaved, with injected conflicts; the threaded race is in test_schedule_mt.c). After
 * every test the store's indexes are checked against its records.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/schedule.h"
#include "runtime/engine.h"
#include "store/kv.h"
#include "util/buf.h"
#include "util/mem.h"

int main(void);

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z, a Thursday */
/* Fires checked in the jitter test and in the two-engine test. */
#define JITTER_FIRES 200
#define TWO_ENGINE_FIRES 300
/* Most crash points tried (a catch-up of four fires takes far fewer storage operations). */
#define CRASH_POINTS_MAX 1000
/* Most allocation failure points tried, and clean runs in a row that end the loop. */
#define OOM_POINTS_MAX 5000
#define OOM_CLEAN_STREAK 50

typedef struct fixture {
    aj_test_clock clock;
    kv_store *kv;
    aj_engine *e;
    aj_engine *e2; /* a second "process" on the same store, when a test opens it */
} fixture;

static aj_engine *open_on(fixture *f, uint64_t seed) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.clock = &f->clock.clock;
    o.seed = seed;
    o.background = 0;
    aj_engine *e = NULL;
    assert_int_equal(aj__engine_open_kv(&e, f->kv, &o), 0);
    return e;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    aj_test_clock_init(&f->clock, T0);
    assert_int_equal(kv_mem_open(&f->kv), 0);
    f->e = open_on(f, 42);
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
    int rc = aj_check(f->e, report, NULL, &records);
    aj_engine_close(f->e2);
    aj_engine_close(f->e);
    kv_close(f->kv);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

static void advance(fixture *f, int64_t ms) {
    aj_test_clock_advance(&f->clock, ms);
}

static void tick(fixture *f) {
    int64_t next = 0;
    int rc = aj_schedules_tick(f->e, &next);
    if (rc != 0) {
        fail_msg("tick failed: %s", aj_errmsg());
    }
}

static void add_spec(fixture *f, const aj_schedule_spec *s) {
    int rc = aj_schedule_add(f->e, s);
    if (rc != 0) {
        fail_msg("add '%s' failed: %s", s->name, aj_errmsg());
    }
}

/* A spec for an echo job with the given timing; the caller fills the rest. */
static aj_schedule_spec spec(const char *name, const char *cron, int64_t every_ms) {
    aj_schedule_spec s;
    aj_schedule_spec_init(&s);
    s.name = name;
    s.cron = cron;
    s.every_ms = every_ms;
    s.job.type = "echo";
    s.job.payload = "{\"n\":1}";
    s.job.payload_len = strlen("{\"n\":1}");
    return s;
}

static aj_schedule *get(fixture *f, const char *name) {
    aj_schedule *s = NULL;
    int rc = aj_schedule_get(f->e, name, &s);
    if (rc != 0) {
        fail_msg("get '%s' failed: %s", name, aj_errmsg());
    }
    return s;
}

static int64_t ms(const char *rfc3339) {
    int64_t v = 0;
    assert_int_equal(aj_time_parse(rfc3339, &v), 0);
    return v;
}

/* Every job, in id order. */
typedef struct jobs {
    aj_job **v;
    size_t n;
} jobs;

static jobs all_jobs(aj_engine *e) {
    jobs j = {NULL, 0};
    assert_int_equal(aj_job_list(e, NULL, &j.v, &j.n), 0);
    return j;
}

static void jobs_free(jobs *j) {
    aj_job_list_free(j->v, j->n);
}

/* A string field of a job's metadata (static buffer). */
static const char *meta(const aj_job *job, const char *key) {
    static char buf[256];
    json_t *m = json_loads(job->metadata != NULL ? job->metadata : "{}", 0, NULL);
    assert_non_null(m);
    const char *v = json_string_value(json_object_get(m, key));
    snprintf(buf, sizeof buf, "%s", v != NULL ? v : "(none)");
    json_decref(m);
    return buf;
}

/* The scheduled_at of every job, in id order, joined with spaces (static buffer). */
static const char *fired(aj_engine *e) {
    static char buf[8192];
    buf[0] = '\0';
    jobs j = all_jobs(e);
    for (size_t i = 0; i < j.n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s%s", i ? " " : "", meta(j.v[i], "scheduled_at"));
    }
    jobs_free(&j);
    return buf;
}

static void expect_fired(aj_engine *e, const char *want) {
    const char *got = fired(e);
    if (strcmp(got, want) != 0) {
        fail_msg("jobs fired for:\n  %s\nexpected:\n  %s", got, want);
    }
}

/* Runs the single job of a claim to completion. */
static void complete_one(fixture *f) {
    aj_job **v = NULL;
    size_t n = 0;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w", 1, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(aj_complete(f->e, v[0]->id, v[0]->epoch, "", 0), 0);
    aj_job_list_free(v, n);
}

/* ----------------------------------------------------------------------------------------- */

static void test_add_get_list(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("reports", "*/5 * * * *", 0);
    s.job.queue = "batch";
    s.job.priority = 7;
    s.job.metadata = "{\"team\":\"ops\"}";
    add_spec(f, &s);
    assert_int_equal(aj_schedule_add(f->e, &s), AJ_EEXISTS);
    assert_non_null(strstr(aj_errmsg(), "schedule 'reports' already exists"));
    aj_schedule *g = get(f, "reports");
    assert_string_equal(g->name, "reports");
    assert_int_equal(g->kind, AJ_SCHEDULE_CRON);
    assert_string_equal(g->cron, "*/5 * * * *");
    assert_string_equal(g->tz, "UTC");
    assert_int_equal(g->next_ms, T0 + 5 * AJ_MINUTE);
    assert_int_equal(g->next_due_ms, g->next_ms);
    assert_int_equal(g->catch_up, AJ_CATCH_UP_ONCE);
    assert_int_equal(g->catch_up_limit, AJ_SCHEDULE_CATCH_UP_LIMIT_DEFAULT);
    assert_int_equal(g->overlap, AJ_OVERLAP_SKIP);
    assert_string_equal(g->queue, "batch");
    assert_string_equal(g->type, "echo");
    assert_int_equal(g->priority, 7);
    assert_string_equal(g->metadata, "{\"team\":\"ops\"}");
    assert_int_equal(g->payload_len, 7);
    assert_false(g->paused);
    aj_schedule_free(g);
    aj_schedule_spec s2 = spec("alpha", NULL, 90 * AJ_SECOND);
    add_spec(f, &s2);
    aj_schedule **list = NULL;
    size_t n = 0;
    assert_int_equal(aj_schedule_list(f->e, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->name, "alpha");
    assert_int_equal(list[0]->kind, AJ_SCHEDULE_EVERY);
    assert_int_equal(list[0]->next_ms, T0 + 90 * AJ_SECOND);
    assert_string_equal(list[1]->name, "reports");
    aj_schedule_list_free(list, n);
    assert_int_equal(aj_schedule_get(f->e, "nope", &g), AJ_ENOTFOUND);
    assert_int_equal(aj_schedule_remove(f->e, "alpha"), 0);
    assert_int_equal(aj_schedule_remove(f->e, "alpha"), AJ_ENOTFOUND);
    assert_int_equal(aj_schedule_get(f->e, "alpha", &g), AJ_ENOTFOUND);
}

static void bad_add(fixture *f, const aj_schedule_spec *s, int want, const char *msg) {
    int rc = aj_schedule_add(f->e, s);
    if (rc != want) {
        fail_msg("add returned %d (%s), expected %d", rc, aj_errmsg(), want);
    }
    if (strstr(aj_errmsg(), msg) == NULL) {
        fail_msg("message '%s' lacks '%s'", aj_errmsg(), msg);
    }
}

static void test_bad_input(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("x", "61 * * * *", 0);
    bad_add(f, &s, AJ_EINVAL, "minute field: 61 is out of range");
    s = spec("x", "* * * * *", 0);
    s.tz = "Mars/Base";
    bad_add(f, &s, AJ_ENOTFOUND, "unknown time zone 'Mars/Base'");
    s.tz = "../../etc/passwd";
    bad_add(f, &s, AJ_EINVAL, "time zone name");
    s = spec("x", "* * * * *", AJ_MINUTE);
    bad_add(f, &s, AJ_EINVAL, "exactly one of");
    s = spec("x", NULL, 0);
    bad_add(f, &s, AJ_EINVAL, "exactly one of");
    s = spec("x", NULL, 5);
    bad_add(f, &s, AJ_EINVAL, "interval must be from 10ms");
    s = spec("x", NULL, AJ_MINUTE);
    s.tz = "UTC";
    bad_add(f, &s, AJ_EINVAL, "only to cron schedules");
    s = spec("bad name", NULL, AJ_MINUTE);
    bad_add(f, &s, AJ_EINVAL, "schedule name");
    s = spec("x", NULL, AJ_MINUTE);
    s.jitter_ms = AJ_DAY + 1;
    bad_add(f, &s, AJ_EINVAL, "jitter");
    s = spec("x", NULL, AJ_MINUTE);
    s.catch_up_limit = 0;
    bad_add(f, &s, AJ_EINVAL, "catch-up limit");
    s = spec("x", NULL, AJ_MINUTE);
    s.catch_up = (aj_catch_up)9;
    bad_add(f, &s, AJ_EINVAL, "catch-up policy");
    s = spec("x", NULL, AJ_MINUTE);
    s.overlap = (aj_overlap)0;
    bad_add(f, &s, AJ_EINVAL, "overlap policy");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.idempotency_key = "k";
    bad_add(f, &s, AJ_EINVAL, "idempotency key");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.delay_ms = 5;
    bad_add(f, &s, AJ_EINVAL, "delay or run-at");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.type = "shell";
    s.job.payload = "[1]";
    s.job.payload_len = 3;
    bad_add(f, &s, AJ_EINVAL, "payload must be a JSON object");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.type = NULL;
    bad_add(f, &s, AJ_EINVAL, "a job needs a type");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.metadata = "[]";
    bad_add(f, &s, AJ_EINVAL, "metadata must be a JSON object");
    s = spec("x", "0 0 30 2 *", 0);
    bad_add(f, &s, AJ_EINVAL, "never fires");
    s = spec("x", NULL, 0);
    s.at_ms = -5;
    bad_add(f, &s, AJ_EINVAL, "one-shot time");
    /* Nothing was stored. */
    aj_schedule **list = NULL;
    size_t n = 9;
    assert_int_equal(aj_schedule_list(f->e, &list, &n), 0);
    assert_int_equal(n, 0);
    aj_schedule_list_free(list, n);
    /* Calls on unknown or bad names. */
    assert_int_equal(aj_schedule_pause(f->e, "none"), AJ_ENOTFOUND);
    assert_int_equal(aj_schedule_resume(f->e, "none"), AJ_ENOTFOUND);
    assert_int_equal(aj_schedule_trigger(f->e, "none", NULL), AJ_ENOTFOUND);
    assert_int_equal(aj_schedule_backfill(f->e, "none", T0, T0 + 1, NULL, NULL), AJ_ENOTFOUND);
    assert_int_equal(aj_schedule_pause(f->e, "a b"), AJ_EINVAL);
    assert_int_equal(aj_schedule_pause(f->e, NULL), AJ_EINVAL);
    int64_t times[4];
    assert_int_equal(aj_schedule_preview(f->e, "none", T0, 4, times, &n), AJ_ENOTFOUND);
    assert_int_equal(aj_cron_preview("* * * * *", NULL, T0, 0, times, &n), AJ_EINVAL);
    assert_int_equal(aj_cron_preview("* * * * *", NULL, T0, AJ_SCHEDULE_PREVIEW_MAX + 1, times, &n),
                     AJ_EINVAL);
    assert_int_equal(aj_cron_preview("bogus", NULL, T0, 1, times, &n), AJ_EINVAL);
}

/* The routing of a template reaches every job the schedule creates: by a fire, a trigger and a
 * backfill; a schedule without routing creates jobs without it. */
static void test_routing(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("gpu", NULL, AJ_MINUTE);
    s.job.require_tag = "gpu";
    s.job.prefer_node = "n1";
    s.job.prefer_wait_ms = 5 * AJ_SECOND;
    s.job.avoid_node = "n2";
    add_spec(f, &s);
    aj_schedule_spec plain = spec("plain", NULL, AJ_MINUTE);
    add_spec(f, &plain);
    aj_schedule *g = get(f, "gpu");
    assert_string_equal(g->require_tag, "gpu");
    assert_string_equal(g->prefer_node, "n1");
    assert_int_equal(g->prefer_wait_ms, 5 * AJ_SECOND);
    assert_string_equal(g->avoid_node, "n2");
    aj_schedule_free(g);
    g = get(f, "plain");
    assert_null(g->require_tag);
    assert_null(g->prefer_node);
    assert_null(g->avoid_node);
    aj_schedule_free(g);
    advance(f, AJ_MINUTE);
    tick(f);
    assert_int_equal(aj_schedule_trigger(f->e, "gpu", NULL), 0);
    assert_int_equal(
        aj_schedule_backfill(f->e, "gpu", T0 + 5 * AJ_MINUTE, T0 + 5 * AJ_MINUTE + 1, NULL, NULL),
        0);
    jobs j = all_jobs(f->e);
    assert_int_equal(j.n, 4); /* gpu's and plain's fires, the trigger, the backfill */
    size_t routed = 0;
    for (size_t i = 0; i < j.n; i++) {
        const aj_job *job = j.v[i];
        if (strcmp(meta(job, "schedule"), "plain") == 0) {
            assert_null(job->require_tag);
            assert_null(job->prefer_node);
            assert_null(job->avoid_node);
            continue;
        }
        routed++;
        assert_string_equal(job->require_tag, "gpu");
        assert_string_equal(job->prefer_node, "n1");
        assert_int_equal(job->prefer_wait_ms, 5 * AJ_SECOND);
        assert_string_equal(job->avoid_node, "n2");
    }
    assert_int_equal(routed, 3);
    jobs_free(&j);
    /* The routing is enforced: a claimer without the tag gets only plain's job. */
    aj_job **v = NULL;
    size_t n = 0;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w", 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(meta(v[0], "schedule"), "plain");
    aj_job_list_free(v, n);
}

static void test_routing_bad_input(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("x", NULL, AJ_MINUTE);
    s.job.require_tag = "a,b";
    bad_add(f, &s, AJ_EINVAL, "required tag");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.prefer_node = "n";
    s.job.avoid_node = "n";
    bad_add(f, &s, AJ_EINVAL, "node 'n' is both preferred and avoided");
    s = spec("x", NULL, AJ_MINUTE);
    s.job.prefer_node = "n";
    s.job.prefer_wait_ms = -1;
    bad_add(f, &s, AJ_EINVAL, "prefer wait");
    uint64_t after = 1;
    s = spec("x", NULL, AJ_MINUTE);
    s.job.after = &after;
    s.job.n_after = 1;
    bad_add(f, &s, AJ_EINVAL, "cannot wait on other jobs");
    aj_schedule **list = NULL;
    size_t n = 9;
    assert_int_equal(aj_schedule_list(f->e, &list, &n), 0);
    assert_int_equal(n, 0);
    aj_schedule_list_free(list, n);
}

/* A record of format 1 (written before templates had routing) still reads and fires, with no
 * routing; its next write is format 2. */
static void test_old_record_format(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("old", NULL, AJ_MINUTE);
    add_spec(f, &s);
    uint8_t key[8] = {KEY_SCHEDULE, 'o', 'l', 'd'};
    kv_txn *t = NULL;
    const uint8_t *val = NULL;
    size_t n = 0;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_get(t, key, 4, &val, &n), 0);
    /* Format 2 ends with the "no routing" byte; format 1 is the same without it. */
    assert_int_equal(val[0], 2);
    assert_int_equal(val[n - 1], 0);
    uint8_t *old = malloc(n);
    memcpy(old, val, n);
    old[0] = 1;
    assert_int_equal(kv_put(t, key, 4, old, n - 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    free(old);
    aj_schedule *g = get(f, "old");
    assert_int_equal(g->every_ms, AJ_MINUTE);
    assert_int_equal(g->next_ms, T0 + AJ_MINUTE);
    assert_null(g->require_tag);
    aj_schedule_free(g);
    advance(f, AJ_MINUTE);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:01:00Z");
    jobs j = all_jobs(f->e);
    assert_null(j.v[0]->require_tag);
    jobs_free(&j);
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_get(t, key, 4, &val, &n), 0);
    assert_int_equal(val[0], 2);
    kv_abort(t);
    /* A format newer than this code is refused, not misread. */
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_get(t, key, 4, &val, &n), 0);
    uint8_t *newer = malloc(n);
    memcpy(newer, val, n);
    newer[0] = 3;
    assert_int_equal(kv_put(t, key, 4, newer, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    g = NULL;
    assert_int_equal(aj_schedule_get(f->e, "old", &g), AJ_EFORMAT);
    assert_non_null(strstr(aj_errmsg(), "format 3 is newer"));
    /* Restore it, so that the teardown's check passes. */
    newer[0] = 2;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_put(t, key, 4, newer, n), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    free(newer);
}

/* Zones are read once per engine by the runtime (src/runtime/tz_cache.c) and handed to core
 * parsed: a schedule keeps firing after its zone file is gone (a step used to read the file
 * every time, inside core). */
static void test_zone_read_once(void **state) {
    fixture *f = *state;
    char dir[] = "/tmp/aj-tz.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/Test' && cp /usr/share/zoneinfo/Europe/Berlin '%s/Test/Zone'", dir, dir);
    assert_int_equal(system(cmd), 0);
    const char *old = getenv("TZDIR");
    char *saved = old != NULL ? strdup(old) : NULL;
    setenv("TZDIR", dir, 1);
    aj_schedule_spec s = spec("zoned", "0 * * * *", 0);
    s.tz = "Test/Zone";
    s.overlap = AJ_OVERLAP_ALLOW;
    int add_rc = aj_schedule_add(f->e, &s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    int tick_rc = 0;
    for (int i = 0; i < 3 && tick_rc == 0; i++) {
        advance(f, AJ_HOUR);
        int64_t next = 0;
        tick_rc = aj_schedules_tick(f->e, &next);
    }
    /* Another engine (a new process) has no cached zone: the file is really gone. */
    aj_schedule_spec t = spec("zoned2", "0 * * * *", 0);
    t.tz = "Test/Zone";
    f->e2 = open_on(f, 43);
    int add2_rc = aj_schedule_add(f->e2, &t);
    if (saved != NULL) {
        setenv("TZDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TZDIR");
    }
    assert_int_equal(add_rc, 0);
    assert_int_equal(tick_rc, 0);
    expect_fired(f->e, "2026-01-01T01:00:00Z 2026-01-01T02:00:00Z 2026-01-01T03:00:00Z");
    assert_int_equal(add2_rc, AJ_ENOTFOUND);
}

static void test_fires_once_each(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("tick", NULL, AJ_MINUTE);
    s.job.metadata = "{\"team\":\"ops\"}";
    add_spec(f, &s);
    tick(f);
    expect_fired(f->e, "");
    advance(f, AJ_MINUTE - 1);
    tick(f);
    expect_fired(f->e, "");
    advance(f, 1);
    tick(f);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:01:00Z");
    jobs j = all_jobs(f->e);
    assert_string_equal(meta(j.v[0], "schedule"), "tick");
    assert_string_equal(meta(j.v[0], "team"), "ops");
    assert_string_equal(j.v[0]->type, "echo");
    assert_string_equal(j.v[0]->payload, "{\"n\":1}");
    assert_int_equal(j.v[0]->state, AJ_STATE_READY);
    aj_schedule *g = get(f, "tick");
    assert_int_equal(g->last_job_id, j.v[0]->id);
    assert_int_equal(g->last_fire_ms, T0 + AJ_MINUTE);
    assert_int_equal(g->next_ms, T0 + 2 * AJ_MINUTE);
    assert_int_equal(g->jobs_created, 1);
    aj_schedule_free(g);
    jobs_free(&j);
    /* Late by less than the grace period: every fire still gets its job. */
    complete_one(f);
    advance(f, AJ_MINUTE + AJ_SCHEDULE_GRACE_MS / 2);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z");
}

static void test_shell_job_and_fractions(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("sh", NULL, 1500);
    s.job.type = "shell";
    s.job.payload = "{\"argv\":[\"true\"],\"env\":{\"A\":\"b\"}}";
    s.job.payload_len = strlen(s.job.payload);
    s.overlap = AJ_OVERLAP_ALLOW;
    add_spec(f, &s);
    advance(f, 3000);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:00:01.500Z 2026-01-01T00:00:03Z");
    jobs j = all_jobs(f->e);
    json_t *p = json_loads(j.v[0]->payload, 0, NULL);
    assert_non_null(p);
    json_t *env = json_object_get(p, "env");
    assert_string_equal(json_string_value(json_object_get(env, "AJ_SCHEDULED_AT")),
                        "2026-01-01T00:00:01.500Z");
    assert_string_equal(json_string_value(json_object_get(env, "A")), "b");
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "argv"), 0)), "true");
    json_decref(p);
    jobs_free(&j);
}

static void catch_up_case(fixture *f, const char *name, aj_catch_up mode, uint32_t limit,
                          const char *want, uint64_t want_skipped) {
    aj_schedule_spec s = spec(name, NULL, AJ_MINUTE);
    s.catch_up = mode;
    s.catch_up_limit = limit;
    s.overlap = AJ_OVERLAP_ALLOW;
    s.job.queue = name;
    add_spec(f, &s);
    /* Ten fires missed (10m30s with nothing running), then the service comes back. */
    advance(f, 10 * AJ_MINUTE + 30 * AJ_SECOND);
    tick(f);
    expect_fired(f->e, want);
    aj_schedule *g = get(f, name);
    assert_int_equal(g->next_ms, T0 + 11 * AJ_MINUTE);
    assert_int_equal(g->fires_skipped, want_skipped);
    aj_schedule_free(g);
    /* Afterwards it fires normally. */
    advance(f, 30 * AJ_SECOND);
    tick(f);
    g = get(f, name);
    assert_int_equal(g->last_fire_ms, T0 + 11 * AJ_MINUTE);
    aj_schedule_free(g);
}

static void test_catch_up_skip(void **state) {
    catch_up_case(*state, "c", AJ_CATCH_UP_SKIP, 100, "", 10);
}

static void test_catch_up_once(void **state) {
    catch_up_case(*state, "c", AJ_CATCH_UP_ONCE, 100, "2026-01-01T00:10:00Z", 9);
}

static void test_catch_up_all(void **state) {
    catch_up_case(*state, "c", AJ_CATCH_UP_ALL, 100,
                  "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z 2026-01-01T00:03:00Z "
                  "2026-01-01T00:04:00Z 2026-01-01T00:05:00Z 2026-01-01T00:06:00Z "
                  "2026-01-01T00:07:00Z 2026-01-01T00:08:00Z 2026-01-01T00:09:00Z "
                  "2026-01-01T00:10:00Z",
                  0);
}

static void test_catch_up_all_limited(void **state) {
    catch_up_case(*state, "c", AJ_CATCH_UP_ALL, 3,
                  "2026-01-01T00:08:00Z 2026-01-01T00:09:00Z 2026-01-01T00:10:00Z", 7);
}

static void test_catch_up_long_downtime(void **state) {
    fixture *f = *state;
    /* A per-second cron missed for a year: catching up costs a few passes, not 31 million. */
    aj_schedule_spec s = spec("dense", "* * * * * *", 0);
    s.catch_up = AJ_CATCH_UP_ALL;
    s.catch_up_limit = 5;
    s.overlap = AJ_OVERLAP_ALLOW;
    add_spec(f, &s);
    advance(f, 365 * AJ_DAY);
    tick(f);
    expect_fired(f->e, "2026-12-31T23:59:56Z 2026-12-31T23:59:57Z 2026-12-31T23:59:58Z "
                       "2026-12-31T23:59:59Z 2027-01-01T00:00:00Z");
    aj_schedule *g = get(f, "dense");
    assert_int_equal(g->fires_skipped, 100000 - 5); /* counted up to 100000 */
    aj_schedule_free(g);
}

static void test_overlap_skip(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("o", NULL, AJ_MINUTE);
    add_spec(f, &s);
    advance(f, AJ_MINUTE);
    tick(f);
    advance(f, AJ_MINUTE);
    tick(f); /* the first job has not run: skipped */
    expect_fired(f->e, "2026-01-01T00:01:00Z");
    complete_one(f);
    advance(f, AJ_MINUTE);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:01:00Z 2026-01-01T00:03:00Z");
    aj_schedule *g = get(f, "o");
    assert_int_equal(g->fires_skipped, 1);
    assert_int_equal(g->jobs_created, 2);
    aj_schedule_free(g);
}

static void test_overlap_buffer(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("o", NULL, AJ_MINUTE);
    s.overlap = AJ_OVERLAP_BUFFER;
    add_spec(f, &s);
    advance(f, AJ_MINUTE);
    tick(f);
    advance(f, AJ_MINUTE);
    tick(f); /* buffered */
    advance(f, AJ_MINUTE);
    tick(f); /* the buffer holds one: dropped */
    expect_fired(f->e, "2026-01-01T00:01:00Z");
    aj_schedule *g = get(f, "o");
    assert_int_equal(g->buffered_ms, T0 + 2 * AJ_MINUTE);
    assert_int_equal(g->fires_skipped, 1);
    aj_schedule_free(g);
    advance(f, 10 * AJ_SECOND);
    complete_one(f);
    tick(f); /* the buffered fire runs as soon as the previous job finished */
    expect_fired(f->e, "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z");
    g = get(f, "o");
    assert_int_equal(g->buffered_ms, 0);
    assert_int_equal(g->next_ms, T0 + 4 * AJ_MINUTE);
    aj_schedule_free(g);
    /* Paused, a buffered fire waits for the resume. */
    advance(f, 50 * AJ_SECOND);
    tick(f); /* 00:04 buffered behind the 00:02 job */
    assert_int_equal(aj_schedule_pause(f->e, "o"), 0);
    complete_one(f);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z");
    assert_int_equal(aj_schedule_resume(f->e, "o"), 0);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z 2026-01-01T00:04:00Z");
}

static void test_overlap_allow_and_cancel(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("allow", NULL, AJ_MINUTE);
    s.overlap = AJ_OVERLAP_ALLOW;
    s.job.queue = "qa";
    add_spec(f, &s);
    s = spec("cancel", NULL, AJ_MINUTE);
    s.overlap = AJ_OVERLAP_CANCEL;
    s.job.queue = "qc";
    add_spec(f, &s);
    for (int i = 0; i < 3; i++) {
        advance(f, AJ_MINUTE);
        tick(f);
    }
    aj_job_filter fl;
    memset(&fl, 0, sizeof fl);
    fl.queue = "qa";
    aj_job **v = NULL;
    size_t n = 0;
    assert_int_equal(aj_job_list(f->e, &fl, &v, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i]->state, AJ_STATE_READY);
    }
    aj_job_list_free(v, n);
    fl.queue = "qc";
    assert_int_equal(aj_job_list(f->e, &fl, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0]->state, AJ_STATE_CANCELLED);
    assert_int_equal(v[1]->state, AJ_STATE_CANCELLED);
    assert_int_equal(v[2]->state, AJ_STATE_READY);
    assert_string_equal(meta(v[2], "scheduled_at"), "2026-01-01T00:03:00Z");
    aj_job_list_free(v, n);
}

static void test_pause_resume(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("p", NULL, AJ_MINUTE);
    s.overlap = AJ_OVERLAP_ALLOW;
    s.catch_up = AJ_CATCH_UP_ALL;
    add_spec(f, &s);
    assert_int_equal(aj_schedule_pause(f->e, "p"), 0);
    assert_int_equal(aj_schedule_pause(f->e, "p"), AJ_ESTATE);
    assert_non_null(strstr(aj_errmsg(), "already paused"));
    aj_schedule *g = get(f, "p");
    assert_true(g->paused);
    assert_int_equal(g->next_ms, 0);
    aj_schedule_free(g);
    advance(f, 5 * AJ_MINUTE + 10 * AJ_SECOND);
    tick(f);
    expect_fired(f->e, "");
    assert_int_equal(aj_schedule_resume(f->e, "p"), 0);
    assert_int_equal(aj_schedule_resume(f->e, "p"), AJ_ESTATE);
    assert_non_null(strstr(aj_errmsg(), "is not paused"));
    g = get(f, "p");
    assert_false(g->paused);
    assert_int_equal(g->next_ms, T0 + 6 * AJ_MINUTE); /* no catch-up of the paused fires */
    assert_int_equal(g->fires_skipped, 5);
    aj_schedule_free(g);
    tick(f);
    expect_fired(f->e, "");
    advance(f, 50 * AJ_SECOND);
    tick(f);
    expect_fired(f->e, "2026-01-01T00:06:00Z");
}

static void test_trigger(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("t", "0 0 * * *", 0);
    add_spec(f, &s);
    advance(f, 90 * AJ_SECOND + 250);
    uint64_t id = 0;
    assert_int_equal(aj_schedule_trigger(f->e, "t", &id), 0);
    assert_true(id > 0);
    expect_fired(f->e, "2026-01-01T00:01:30.250Z");
    aj_schedule *g = get(f, "t");
    assert_int_equal(g->last_job_id, id);
    assert_int_equal(g->next_ms, T0 + AJ_DAY); /* unchanged */
    aj_schedule_free(g);
    /* A paused schedule can still be triggered. */
    assert_int_equal(aj_schedule_pause(f->e, "t"), 0);
    assert_int_equal(aj_schedule_trigger(f->e, "t", NULL), 0);
    jobs j = all_jobs(f->e);
    assert_int_equal(j.n, 2);
    jobs_free(&j);
}

static void test_backfill(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("b", "0 * * * *", 0);
    add_spec(f, &s);
    uint64_t *ids = NULL;
    size_t n = 0;
    /* [from, to): 2025-12-31 21:00, 22:00, 23:00; 2026-01-01T00:00 is excluded. */
    assert_int_equal(aj_schedule_backfill(f->e, "b", ms("2025-12-31T20:30:00Z"), T0, &ids, &n), 0);
    assert_int_equal(n, 3);
    expect_fired(f->e, "2025-12-31T21:00:00Z 2025-12-31T22:00:00Z 2025-12-31T23:00:00Z");
    jobs j = all_jobs(f->e);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], j.v[i]->id);
    }
    jobs_free(&j);
    aj_free(ids);
    /* Exactly on a fire time: included at from. */
    assert_int_equal(aj_schedule_backfill(f->e, "b", ms("2025-12-31T10:00:00Z"),
                                          ms("2025-12-31T10:00:00.001Z"), NULL, &n),
                     0);
    assert_int_equal(n, 1);
    /* An empty range, a range with no fire time, and too many. */
    assert_int_equal(aj_schedule_backfill(f->e, "b", T0, T0, NULL, &n), AJ_EINVAL);
    assert_int_equal(aj_schedule_backfill(f->e, "b", T0 + 1, T0 + 1000, NULL, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(aj_schedule_backfill(f->e, "b", T0 - 2 * 366 * AJ_DAY, T0, NULL, &n),
                     AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "more than 10000 fire times"));
    aj_schedule *g = get(f, "b");
    assert_int_equal(g->jobs_created, 4);
    assert_int_equal(g->last_job_id, 0); /* backfills are not "the previous run" */
    aj_schedule_free(g);
}

static void test_one_shot(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("once", NULL, 0);
    s.at_ms = T0 + 30 * AJ_SECOND;
    add_spec(f, &s);
    s = spec("late", NULL, 0); /* in the past, with catch-up skip: never fires */
    s.at_ms = T0 - AJ_HOUR;
    s.catch_up = AJ_CATCH_UP_SKIP;
    s.job.queue = "late";
    add_spec(f, &s);
    s = spec("late2", NULL, 0); /* in the past, catch-up once: fires at once */
    s.at_ms = T0 - AJ_HOUR;
    s.job.queue = "late2";
    add_spec(f, &s);
    tick(f);
    expect_fired(f->e, "2025-12-31T23:00:00Z");
    advance(f, 30 * AJ_SECOND);
    tick(f);
    expect_fired(f->e, "2025-12-31T23:00:00Z 2026-01-01T00:00:30Z");
    aj_schedule *g = get(f, "once");
    assert_int_equal(g->next_ms, 0);
    assert_int_equal(g->kind, AJ_SCHEDULE_AT);
    assert_int_equal(g->at_ms, T0 + 30 * AJ_SECOND);
    aj_schedule_free(g);
    g = get(f, "late");
    assert_int_equal(g->next_ms, 0);
    assert_int_equal(g->fires_skipped, 1);
    aj_schedule_free(g);
    advance(f, AJ_DAY);
    tick(f);
    expect_fired(f->e, "2025-12-31T23:00:00Z 2026-01-01T00:00:30Z");
    int64_t times[3];
    size_t n = 9;
    assert_int_equal(aj_schedule_preview(f->e, "once", T0, 3, times, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(times[0], T0 + 30 * AJ_SECOND);
}

static void test_jitter_bounds(void **state) {
    fixture *f = *state;
    const int64_t jit = 20 * AJ_SECOND;
    aj_schedule_spec s = spec("j", NULL, AJ_MINUTE);
    s.jitter_ms = jit;
    s.overlap = AJ_OVERLAP_ALLOW;
    add_spec(f, &s);
    int64_t min_seen = jit, max_seen = 0;
    for (int i = 1; i <= JITTER_FIRES; i++) {
        aj_schedule *g = get(f, "j");
        int64_t nominal = g->next_ms, due = g->next_due_ms;
        aj_schedule_free(g);
        assert_int_equal(nominal, T0 + i * AJ_MINUTE);
        assert_true(due >= nominal && due <= nominal + jit);
        min_seen = due - nominal < min_seen ? due - nominal : min_seen;
        max_seen = due - nominal > max_seen ? due - nominal : max_seen;
        /* Not before its due time... */
        f->clock.now = due - 1;
        tick(f);
        g = get(f, "j");
        assert_int_equal(g->jobs_created, (uint64_t)(i - 1));
        aj_schedule_free(g);
        /* ...then at it, with the nominal time as scheduled_at. */
        f->clock.now = due;
        tick(f);
        g = get(f, "j");
        assert_int_equal(g->jobs_created, (uint64_t)i);
        assert_int_equal(g->last_fire_ms, nominal);
        aj_schedule_free(g);
    }
    /* The jitter spreads over its range. */
    assert_true(min_seen < jit / 10);
    assert_true(max_seen > jit - jit / 10);
    int64_t times[2];
    size_t n = 0;
    assert_int_equal(aj_schedule_preview(f->e, "j", T0, 2, times, &n), 0);
    assert_int_equal(times[0], T0 + AJ_MINUTE); /* preview: no jitter */
}

static void test_dst_schedule(void **state) {
    fixture *f = *state;
    f->clock.now = ms("2026-03-07T00:00:00Z");
    aj_schedule_spec s = spec("ny", "30 2 * * *", 0);
    s.tz = "America/New_York";
    s.overlap = AJ_OVERLAP_ALLOW;
    add_spec(f, &s);
    int64_t times[3];
    size_t n = 0;
    assert_int_equal(aj_schedule_preview(f->e, "ny", f->clock.now, 3, times, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(times[0], ms("2026-03-07T07:30:00Z"));
    assert_int_equal(times[1], ms("2026-03-08T07:00:00Z")); /* 02:30 does not exist */
    assert_int_equal(times[2], ms("2026-03-09T06:30:00Z"));
    for (int i = 0; i < 3; i++) {
        f->clock.now = times[i];
        tick(f);
    }
    expect_fired(f->e, "2026-03-07T07:30:00Z 2026-03-08T07:00:00Z 2026-03-09T06:30:00Z");
    assert_int_equal(
        aj_cron_preview("30 1 * * *", "Europe/Berlin", ms("2026-10-24T12:00:00Z"), 2, times, &n),
        0);
    assert_int_equal(times[0], ms("2026-10-24T23:30:00Z"));
    assert_int_equal(times[1], ms("2026-10-26T00:30:00Z"));
}

typedef struct lines {
    int n;
    char last[512];
} lines;

static void count_line(void *ud, const char *line) {
    lines *l = ud;
    l->n++;
    snprintf(l->last, sizeof l->last, "%s", line);
}

/* aj_check finds a schedule whose due-index entry went missing, and a stray entry. */
static void test_check_finds_index_damage(void **state) {
    fixture *f = *state;
    aj_schedule_spec s = spec("chk", NULL, AJ_MINUTE);
    add_spec(f, &s);
    aj_schedule *g = get(f, "chk");
    int64_t due = g->next_due_ms;
    aj_schedule_free(g);
    uint8_t key[64] = {'H'};
    aj__put_u64be(key + 1, (uint64_t)due);
    memcpy(key + 9, "chk", 3);
    kv_txn *t = NULL;
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_del(t, key, 12), 0);
    memcpy(key + 9, "gone", 4);
    assert_int_equal(kv_put(t, key, 13, "", 0), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    lines l = {0, ""};
    uint64_t records = 0;
    assert_int_equal(aj_check(f->e, count_line, &l, &records), AJ_ECORRUPT);
    assert_int_equal(l.n, 2);
    assert_non_null(strstr(l.last, "names schedule 'gone', which does not exist"));
    /* Repair, so that the teardown's check passes. */
    assert_int_equal(kv_begin(f->kv, &t), 0);
    assert_int_equal(kv_del(t, key, 13), 0);
    memcpy(key + 9, "chk", 3);
    assert_int_equal(kv_put(t, key, 12, "", 0), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
}

/* Crash points: for every N, the Nth storage operation of a catch-up fails and the store
 * "crashes"; a new engine then finishes the work. Every fire time ends with exactly one job. */
static void test_crash_points(void **state) {
    (void)state;
    int clean_run = 0;
    uint64_t tried = 0;
    for (uint64_t n = 1; n < CRASH_POINTS_MAX && !clean_run; n++) {
        fixture f;
        memset(&f, 0, sizeof f);
        aj_test_clock_init(&f.clock, T0);
        assert_int_equal(kv_mem_open(&f.kv), 0);
        f.e = open_on(&f, 42);
        aj_schedule_spec s = spec("cp", NULL, AJ_MINUTE);
        s.overlap = AJ_OVERLAP_ALLOW;
        s.catch_up = AJ_CATCH_UP_ALL;
        add_spec(&f, &s);
        advance(&f, 4 * AJ_MINUTE + 30 * AJ_SECOND);
        uint64_t base = kv_mem_ops(f.kv);
        kv_mem_fail_at(f.kv, n);
        int rc = aj_schedules_tick(f.e, NULL);
        clean_run = kv_mem_ops(f.kv) - base < n;
        assert_true(rc == 0 || !clean_run);
        tried = n;
        kv_mem_fail_at(f.kv, 0);
        aj_engine_close(f.e);
        kv_mem_crash(f.kv);
        f.e = open_on(&f, 43);
        assert_int_equal(aj_schedules_tick(f.e, NULL), 0);
        expect_fired(f.e, "2026-01-01T00:01:00Z 2026-01-01T00:02:00Z 2026-01-01T00:03:00Z "
                          "2026-01-01T00:04:00Z");
        uint64_t records = 0;
        assert_int_equal(aj_check(f.e, report, NULL, &records), 0);
        aj_engine_close(f.e);
        kv_close(f.kv);
    }
    assert_true(clean_run); /* the loop passed every operation of the catch-up */
    assert_true(tried > 10);
}

/* Every allocation of add, get, list, a catch-up tick, trigger and backfill fails in turn, each
 * time on a fresh store: every call fails cleanly with AJ_ENOMEM (or succeeds, where a failed
 * allocation only costs a cache), nothing crashes or leaks (ASan), and the store stays
 * consistent. The loop ends after OOM_CLEAN_STREAK clean runs in a row: past the last
 * allocation. */
static void test_out_of_memory(void **state) {
    (void)state;
    int streak = 0;
    unsigned long n = 1;
    for (; n < OOM_POINTS_MAX && streak < OOM_CLEAN_STREAK; n++) {
        fixture f;
        memset(&f, 0, sizeof f);
        aj_test_clock_init(&f.clock, T0);
        assert_int_equal(kv_mem_open(&f.kv), 0);
        f.e = open_on(&f, 42);
        aj_schedule_spec s = spec("m", "*/1 * * * *", 0);
        s.tz = "Europe/Berlin";
        s.catch_up = AJ_CATCH_UP_ALL;
        s.overlap = AJ_OVERLAP_ALLOW;
        aj__mem_fail_at(n);
        int rc = aj_schedule_add(f.e, &s);
        aj_schedule *g = NULL;
        if (rc == 0) {
            rc = aj_schedule_get(f.e, "m", &g);
        }
        aj_schedule **list = NULL;
        size_t len = 0;
        if (rc == 0) {
            rc = aj_schedule_list(f.e, &list, &len);
        }
        if (rc == 0) {
            advance(&f, 10 * AJ_MINUTE);
            rc = aj_schedules_tick(f.e, NULL);
        }
        if (rc == 0) {
            rc = aj_schedule_trigger(f.e, "m", NULL);
        }
        uint64_t *ids = NULL;
        if (rc == 0) {
            size_t n_ids = 0;
            rc = aj_schedule_backfill(f.e, "m", T0 - 3 * AJ_MINUTE, T0, &ids, &n_ids);
        }
        aj__mem_fail_at(0);
        aj_free(ids);
        aj_schedule_free(g);
        aj_schedule_list_free(list, len);
        if (rc != 0 && rc != AJ_ENOMEM) {
            fail_msg("allocation %lu: %d (%s)", n, rc, aj_errmsg());
        }
        streak = rc == 0 ? streak + 1 : 0;
        uint64_t records = 0;
        assert_int_equal(aj_check(f.e, report, NULL, &records), 0);
        aj_engine_close(f.e);
        kv_close(f.kv);
    }
    assert_true(streak == OOM_CLEAN_STREAK);
    assert_true(n > 100); /* the flow makes hundreds of allocations */
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Two engines on one store: each fire time creates exactly one job, whichever engine fires it,
 * also when commits conflict. */
static void test_two_engines_exactly_once(void **state) {
    fixture *f = *state;
    f->e2 = open_on(f, 43);
    aj_schedule_spec s = spec("both", NULL, 10 * AJ_SECOND);
    s.overlap = AJ_OVERLAP_ALLOW;
    s.catch_up = AJ_CATCH_UP_ALL;
    add_spec(f, &s);
    for (int i = 0; i < TWO_ENGINE_FIRES; i++) {
        advance(f, 7 * AJ_SECOND);
        if (i % 7 == 3) {
            kv_mem_inject_conflicts(f->kv, 2);
        }
        aj_engine *first = (i % 2) ? f->e : f->e2;
        aj_engine *second = (i % 2) ? f->e2 : f->e;
        assert_int_equal(aj_schedules_tick(first, NULL), 0);
        assert_int_equal(aj_schedules_tick(second, NULL), 0);
    }
    int64_t end = f->clock.now;
    jobs j = all_jobs(f->e);
    size_t want = (size_t)((end - T0) / (10 * AJ_SECOND));
    assert_int_equal(j.n, want);
    /* Ids come from two engines' blocks, so order by fire time: one job for each. */
    int64_t *at = calloc(j.n, sizeof *at);
    for (size_t i = 0; i < j.n; i++) {
        at[i] = ms(meta(j.v[i], "scheduled_at"));
    }
    qsort(at, j.n, sizeof *at, cmp_i64);
    for (size_t i = 0; i < j.n; i++) {
        assert_int_equal(at[i], T0 + (int64_t)(i + 1) * 10 * AJ_SECOND);
    }
    free(at);
    jobs_free(&j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_get_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_record_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fires_once_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zone_read_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shell_job_and_fractions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_all_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_long_downtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlap_allow_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backfill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_shot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jitter_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dst_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_engines_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_index_damage, setup, teardown),
        cmocka_unit_test(test_crash_points),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
