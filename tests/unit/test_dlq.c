/*
 * test_dlq.c — dead-letter analytics (core/dlq.h, aj_dlq_* in aj.h): error grouping; the
 * accumulator over hand-made dead records, where each finding (stale, repeated_redrive,
 * dominant_error, dominant_type) is made to appear and then to disappear, by the data and by
 * its option; the counts, ages and redrive figures of a report; and the same through a "mem:"
 * engine with a simulated clock, with filters, and after redrives and purges.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dlq.h"

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */

/* --- grouping -------------------------------------------------------------------------------- */

static void expect_group(const char *error, const char *want) {
    char buf[AJ_DLQ_GROUP_MAX + 1];
    size_t n = aj_dlq_error_group(error, buf, sizeof buf);
    if (strcmp(buf, want) != 0 || n != strlen(want)) {
        fail_msg("group of '%s' is '%s', want '%s'", error ? error : "(null)", buf, want);
    }
}

static void test_error_groups(void **state) {
    (void)state;
    expect_group("timeout after 31s", "timeout after <n>s");
    expect_group("timeout after 32s", "timeout after <n>s");
    expect_group("exit status 3", "exit status <n>");
    expect_group("job 42 failed", "job <n> failed");
    expect_group("request 9f86d081884c7d65 failed", "request <id> failed");
    expect_group("id 550e8400-e29b-41d4-a716-446655440000", "id <id>-<n>-<n>-<n>-<id>");
    expect_group("bad pointer 0x7ffd", "bad pointer <n>");
    expect_group("utf8 decode", "utf<n> decode");
    expect_group("took 1.5s", "took <n>.<n>s");
    expect_group("  many   spaces\n\tand lines  ", "many spaces and lines");
    expect_group("dead beef cafe", "dead beef cafe"); /* hex-looking words without digits stay */
    expect_group("", "(no error)");
    expect_group("   ", "(no error)");
    expect_group(NULL, "(no error)");
    /* Cut to AJ_DLQ_GROUP_MAX bytes, never inside a character. */
    char long_err[AJ_DLQ_GROUP_MAX + 16];
    memset(long_err, 'a', AJ_DLQ_GROUP_MAX - 1);
    memcpy(long_err + AJ_DLQ_GROUP_MAX - 1, "\xc3\xa9xyz", 6);
    char buf[AJ_DLQ_GROUP_MAX + 1];
    assert_int_equal(aj_dlq_error_group(long_err, buf, sizeof buf), AJ_DLQ_GROUP_MAX - 1);
    /* A small buffer gets a prefix, NUL-terminated. */
    char small[8];
    assert_int_equal(aj_dlq_error_group("timeout after 31s", small, sizeof small), 7);
    assert_string_equal(small, "timeout");
}

/* --- the accumulator over hand-made records --------------------------------------------------- */

typedef struct recs {
    job_rec v[64];
    size_t n;
} recs;

/* A dead letter that died `age_ms` before T0. */
static void dead(recs *r, const char *queue, const char *type, const char *error, int64_t age_ms,
                 uint32_t redrives) {
    assert_true(r->n < 64);
    job_rec *x = &r->v[r->n];
    memset(x, 0, sizeof *x);
    x->id = 100 + r->n;
    x->state = AJ_STATE_DEAD;
    x->dead_reason = redrives > 0 ? AJ_DEAD_MAX_ATTEMPTS : AJ_DEAD_PERMANENT;
    x->queue = aj__slice_str(queue);
    x->type = aj__slice_str(type);
    x->error = aj__slice_str(error);
    x->dead_ms = x->updated_ms = T0 - age_ms;
    x->redrives = redrives;
    r->n++;
}

static aj_dlq_report *analyze(const recs *r, const aj_dlq_analyze_opts *o) {
    dlq_acc *a = NULL;
    assert_int_equal(dlq_acc_new(&a, o, T0), 0);
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(dlq_acc_add(a, &r->v[i]), 0);
    }
    aj_dlq_report *rep = NULL;
    assert_int_equal(dlq_acc_report(a, &rep), 0);
    dlq_acc_free(a);
    return rep;
}

static const aj_dlq_finding *finding(const aj_dlq_report *rep, aj_dlq_finding_kind kind) {
    for (size_t i = 0; i < rep->n_findings; i++) {
        if (rep->findings[i].kind == kind) {
            return &rep->findings[i];
        }
    }
    return NULL;
}

static void expect_cites(const aj_dlq_finding *f, const char *text) {
    assert_non_null(f);
    if (strstr(f->message, text) == NULL) {
        fail_msg("finding %s says '%s', which does not cite '%s'", aj_dlq_finding_name(f->kind),
                 f->message, text);
    }
    assert_true(f->recommendation != NULL && f->recommendation[0] != '\0');
}

static void test_stale(void **state) {
    (void)state;
    recs r = {.n = 0};
    dead(&r, "q", "a", "boom 1", 8 * AJ_DAY, 0);
    dead(&r, "q", "b", "other", AJ_HOUR, 0);
    dead(&r, "q", "c", "third", AJ_MINUTE, 0);
    aj_dlq_report *rep = analyze(&r, NULL);
    const aj_dlq_finding *f = finding(rep, AJ_DLQ_FINDING_STALE);
    expect_cites(f, "1 of 3 dead letters are older than 7d");
    assert_int_equal(f->count, 1);
    assert_int_equal(f->total, 3);
    assert_int_equal(f->threshold, 7 * AJ_DAY);
    assert_int_equal(f->example_id, 100);
    assert_non_null(strstr(f->recommendation, "--older-than 7d"));
    aj_dlq_report_free(rep);

    /* A longer threshold: gone. */
    aj_dlq_analyze_opts o;
    aj_dlq_analyze_opts_init(&o);
    o.stale_after_ms = 9 * AJ_DAY;
    rep = analyze(&r, &o);
    assert_null(finding(rep, AJ_DLQ_FINDING_STALE));
    aj_dlq_report_free(rep);

    /* A shorter one: more of them. */
    o.stale_after_ms = 30 * AJ_MINUTE;
    rep = analyze(&r, &o);
    expect_cites(finding(rep, AJ_DLQ_FINDING_STALE), "2 of 3 dead letters are older than 30m");
    aj_dlq_report_free(rep);

    /* Only fresh dead letters: gone. */
    r.v[0].dead_ms = T0 - AJ_SECOND;
    rep = analyze(&r, NULL);
    assert_null(finding(rep, AJ_DLQ_FINDING_STALE));
    aj_dlq_report_free(rep);
}

static void test_repeated_redrive(void **state) {
    (void)state;
    recs r = {.n = 0};
    dead(&r, "q", "a", "e1", AJ_HOUR, 3);
    dead(&r, "q", "b", "e2", AJ_HOUR, 2);
    dead(&r, "q", "c", "e3", AJ_HOUR, 1);
    dead(&r, "q", "d", "e4", AJ_HOUR, 0);
    aj_dlq_report *rep = analyze(&r, NULL);
    const aj_dlq_finding *f = finding(rep, AJ_DLQ_FINDING_REPEATED_REDRIVE);
    expect_cites(f, "2 of 4 dead letters died again after 2 or more redrives");
    expect_cites(f, "job 100: 3 redrives");
    assert_int_equal(f->example_id, 100);
    assert_int_equal(rep->redriven, 3);
    assert_int_equal(rep->redrives, 6);
    assert_int_equal(rep->redrives_max, 3);
    assert_int_equal(rep->redrive_hist[0], 1);
    assert_int_equal(rep->redrive_hist[1], 1);
    assert_int_equal(rep->redrive_hist[2], 1);
    assert_int_equal(rep->redrive_hist[3], 1);
    aj_dlq_report_free(rep);

    aj_dlq_analyze_opts o;
    aj_dlq_analyze_opts_init(&o);
    o.redrive_threshold = 4;
    rep = analyze(&r, &o);
    assert_null(finding(rep, AJ_DLQ_FINDING_REPEATED_REDRIVE));
    aj_dlq_report_free(rep);

    r.v[0].redrives = 1;
    r.v[1].redrives = 0;
    rep = analyze(&r, NULL);
    assert_null(finding(rep, AJ_DLQ_FINDING_REPEATED_REDRIVE));
    aj_dlq_report_free(rep);
}

static void test_dominant_error(void **state) {
    (void)state;
    recs r = {.n = 0};
    static char errs[5][32]; /* the records borrow their text */
    for (int i = 0; i < 5; i++) {
        snprintf(errs[i], sizeof errs[i], "timeout after %ds", 30 + i);
        dead(&r, "q", i % 2 ? "a" : "b", errs[i], AJ_HOUR - i, 0);
    }
    dead(&r, "q", "c", "exit status 1", AJ_HOUR, 0);
    dead(&r, "q", "d", "exit status 2", AJ_HOUR, 0);
    dead(&r, "q", "e", "no such file", AJ_HOUR, 0);
    aj_dlq_report *rep = analyze(&r, NULL);
    const aj_dlq_finding *f = finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR);
    expect_cites(f, "5 of 8 dead letters (62%) failed with the same error: timeout after <n>s");
    assert_string_equal(f->subject, "timeout after <n>s");
    assert_int_equal(f->example_id, 104); /* the newest of the group */
    assert_non_null(strstr(f->recommendation, "--error 'timeout after'"));
    assert_int_equal(rep->error_groups, 3);
    assert_string_equal(rep->top_errors[0].group, "timeout after <n>s");
    assert_int_equal(rep->top_errors[0].count, 5);
    assert_string_equal(rep->top_errors[0].example, "timeout after 34s");
    assert_string_equal(rep->top_errors[1].group, "exit status <n>");
    assert_int_equal(rep->top_errors[1].count, 2);
    aj_dlq_report_free(rep);

    /* A higher bar for the share or the count: gone. */
    aj_dlq_analyze_opts o;
    aj_dlq_analyze_opts_init(&o);
    o.dominant_percent = 70;
    rep = analyze(&r, &o);
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    aj_dlq_report_free(rep);
    aj_dlq_analyze_opts_init(&o);
    o.dominant_min = 6;
    rep = analyze(&r, &o);
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    aj_dlq_report_free(rep);

    /* Three more other errors: 5 of 11 is under half, gone. */
    dead(&r, "q", "f", "disk full", AJ_HOUR, 0);
    dead(&r, "q", "g", "disk full", AJ_HOUR, 0);
    dead(&r, "q", "h", "permission denied", AJ_HOUR, 0);
    rep = analyze(&r, NULL);
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    aj_dlq_report_free(rep);

    /* Too few to matter, even at 100%. */
    recs few = {.n = 0};
    for (int i = 0; i < 4; i++) {
        dead(&few, "q", "t", "same", AJ_HOUR, 0);
    }
    rep = analyze(&few, NULL);
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_TYPE));
    aj_dlq_report_free(rep);
}

static void test_dominant_type(void **state) {
    (void)state;
    recs r = {.n = 0};
    const char *errs[] = {"error kind a", "error kind b", "error kind c",
                          "error kind d", "error kind e", "error kind f"};
    for (int i = 0; i < 6; i++) {
        dead(&r, "q", "resize", errs[i], AJ_HOUR, 0); /* no dominant error */
    }
    dead(&r, "q", "mail", "x", AJ_HOUR, 0);
    dead(&r, "q", "mail", "y", AJ_HOUR, 0);
    aj_dlq_report *rep = analyze(&r, NULL);
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    const aj_dlq_finding *f = finding(rep, AJ_DLQ_FINDING_DOMINANT_TYPE);
    expect_cites(f, "6 of 8 dead letters (75%) are jobs of type resize");
    assert_string_equal(f->subject, "resize");
    assert_non_null(strstr(f->recommendation, "--type resize"));
    aj_dlq_report_free(rep);

    const char *types[] = {"t0", "t1", "t2", "t3", "t4"};
    for (int i = 0; i < 5; i++) {
        dead(&r, "q", types[i], "z", AJ_HOUR, 0);
    }
    rep = analyze(&r, NULL); /* 6 of 13 */
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_TYPE));
    aj_dlq_report_free(rep);
}

static void test_counts_and_ages(void **state) {
    (void)state;
    recs r = {.n = 0};
    aj_dlq_report *rep = analyze(&r, NULL);
    assert_int_equal(rep->stats.total, 0);
    assert_int_equal(rep->n_findings, 0);
    assert_int_equal(rep->oldest_id, 0);
    assert_int_equal(rep->n_top_errors, 0);
    aj_dlq_report_free(rep);

    dead(&r, "mail", "send", "e", 3 * AJ_HOUR, 0);
    dead(&r, "mail", "send", "e", 1 * AJ_HOUR, 0);
    dead(&r, "img", "resize", "e", 2 * AJ_HOUR, 0);
    r.v[2].dead_reason = AJ_DEAD_TIMEOUT;
    /* A job in another state is not a dead letter. */
    dead(&r, "img", "resize", "e", 9 * AJ_DAY, 0);
    r.v[3].state = AJ_STATE_COMPLETED;
    rep = analyze(&r, NULL);
    assert_int_equal(rep->stats.total, 3);
    assert_int_equal(rep->oldest_id, 100);
    assert_int_equal(rep->oldest_ms, T0 - 3 * AJ_HOUR);
    assert_int_equal(rep->newest_id, 101);
    assert_int_equal(rep->average_age_ms, 2 * AJ_HOUR);
    assert_int_equal(rep->stats.n_queues, 2);
    assert_string_equal(rep->stats.by_queue[0].name, "mail");
    assert_int_equal(rep->stats.by_queue[0].count, 2);
    assert_string_equal(rep->stats.by_queue[1].name, "img");
    assert_int_equal(rep->stats.n_reasons, 2);
    assert_string_equal(rep->stats.by_reason[0].name, "permanent_failure");
    assert_string_equal(rep->stats.by_reason[1].name, "timeout");
    assert_null(finding(rep, AJ_DLQ_FINDING_STALE));
    aj_dlq_report_free(rep);

    /* Options out of range. */
    aj_dlq_analyze_opts o;
    aj_dlq_analyze_opts_init(&o);
    o.dominant_percent = 101;
    dlq_acc *a = NULL;
    assert_int_equal(dlq_acc_new(&a, &o, T0), AJ_EINVAL);
    aj_dlq_analyze_opts_init(&o);
    o.stale_after_ms = -1;
    assert_int_equal(dlq_acc_new(&a, &o, T0), AJ_EINVAL);
}

static void test_many_names(void **state) {
    (void)state;
    dlq_acc *a = NULL;
    assert_int_equal(dlq_acc_new(&a, NULL, T0), 0);
    job_rec x;
    memset(&x, 0, sizeof x);
    x.state = AJ_STATE_DEAD;
    x.dead_ms = T0;
    char q[32], err[64];
    for (int i = 0; i < AJ_DLQ_NAMES_MAX + 50; i++) {
        snprintf(q, sizeof q, "q%d", i);
        snprintf(err, sizeof err, "error %c%c%c", 'a' + i % 26, 'a' + i / 26 % 26,
                 'a' + i / 676 % 26);
        x.id = (uint64_t)i + 1;
        x.queue = aj__slice_str(q);
        x.type = aj__slice_str("t");
        x.error = aj__slice_str(err);
        assert_int_equal(dlq_acc_add(a, &x), 0);
    }
    aj_dlq_stats *s = NULL;
    assert_int_equal(dlq_acc_stats(a, &s), 0);
    assert_int_equal(s->n_queues, AJ_DLQ_NAMES_MAX + 1);
    assert_string_equal(s->by_queue[0].name, "(other)");
    assert_int_equal(s->by_queue[0].count, 50);
    aj_dlq_stats_free(s);
    dlq_acc_free(a);
}

/* --- through the engine ---------------------------------------------------------------------- */

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

/* Submits a job and fails its one attempt with `error`; returns its id. */
static uint64_t kill_job(fixture *f, const char *queue, const char *type, const char *error) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.queue = queue;
    s.type = type;
    s.max_attempts = 1;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_job **jobs;
    size_t n;
    const char *qs[] = {queue};
    assert_int_equal(aj_claim(f->e, qs, 1, "w", 1, &jobs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jobs[0]->id, id);
    assert_int_equal(aj_fail(f->e, id, jobs[0]->epoch, error, 0), 0);
    aj_job_list_free(jobs, n);
    return id;
}

/* Redrives a dead job and lets it die again. */
static void redrive_and_kill(fixture *f, uint64_t id, const char *queue) {
    assert_int_equal(aj_dlq_redrive(f->e, id), 0);
    aj_job **jobs;
    size_t n;
    const char *qs[] = {queue};
    assert_int_equal(aj_claim(f->e, qs, 1, "w", 1, &jobs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(aj_fail(f->e, id, jobs[0]->epoch, "again", 0), 0);
    aj_job_list_free(jobs, n);
}

static void test_through_engine(void **state) {
    fixture *f = *state;
    aj_dlq_report *rep = NULL;
    assert_int_equal(aj_dlq_analyze(f->e, NULL, NULL, &rep), 0);
    assert_int_equal(rep->stats.total, 0);
    aj_dlq_report_free(rep);

    uint64_t old = kill_job(f, "mail", "send", "smtp timeout after 30s");
    aj_test_clock_advance(&f->clock, 8 * AJ_DAY);
    char err[64];
    for (int i = 0; i < 5; i++) {
        snprintf(err, sizeof err, "smtp timeout after %ds", 31 + i);
        kill_job(f, "mail", "send", err);
    }
    uint64_t r1 = kill_job(f, "img", "resize", "out of memory");
    redrive_and_kill(f, r1, "img");
    redrive_and_kill(f, r1, "img");

    aj_dlq_stats *s = NULL;
    assert_int_equal(aj_dlq_stats_get(f->e, NULL, &s), 0);
    assert_int_equal(s->total, 7);
    assert_string_equal(s->by_type[0].name, "send");
    assert_int_equal(s->by_type[0].count, 6);
    aj_dlq_stats_free(s);

    assert_int_equal(aj_dlq_analyze(f->e, NULL, NULL, &rep), 0);
    assert_int_equal(rep->stats.total, 7);
    assert_int_equal(rep->oldest_id, old);
    expect_cites(finding(rep, AJ_DLQ_FINDING_STALE), "1 of 7");
    expect_cites(finding(rep, AJ_DLQ_FINDING_REPEATED_REDRIVE), "1 of 7");
    expect_cites(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR), "6 of 7");
    expect_cites(finding(rep, AJ_DLQ_FINDING_DOMINANT_TYPE), "6 of 7");
    assert_int_equal(rep->n_findings, 4);
    aj_dlq_report_free(rep);

    /* Filters: the img queue alone has none of the mail findings. */
    aj_job_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.queue = "img";
    assert_int_equal(aj_dlq_analyze(f->e, &flt, NULL, &rep), 0);
    assert_int_equal(rep->stats.total, 1);
    assert_non_null(finding(rep, AJ_DLQ_FINDING_REPEATED_REDRIVE));
    assert_null(finding(rep, AJ_DLQ_FINDING_STALE));
    assert_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    aj_dlq_report_free(rep);
    memset(&flt, 0, sizeof flt);
    flt.error_contains = "timeout";
    flt.older_than_ms = AJ_DAY;
    assert_int_equal(aj_dlq_stats_get(f->e, &flt, &s), 0);
    assert_int_equal(s->total, 1);
    aj_dlq_stats_free(s);

    /* Purging the old one and redriving the repeated one: those findings disappear. */
    assert_int_equal(aj_dlq_purge(f->e, old), 0);
    assert_int_equal(aj_dlq_redrive(f->e, r1), 0);
    assert_int_equal(aj_dlq_analyze(f->e, NULL, NULL, &rep), 0);
    assert_int_equal(rep->stats.total, 5);
    assert_null(finding(rep, AJ_DLQ_FINDING_STALE));
    assert_null(finding(rep, AJ_DLQ_FINDING_REPEATED_REDRIVE));
    assert_non_null(finding(rep, AJ_DLQ_FINDING_DOMINANT_ERROR));
    aj_dlq_report_free(rep);

    aj_dlq_analyze_opts o;
    aj_dlq_analyze_opts_init(&o);
    o.dominant_percent = 0;
    assert_int_equal(aj_dlq_analyze(f->e, NULL, &o, &rep), AJ_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_groups),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_repeated_redrive),
        cmocka_unit_test(test_dominant_error),
        cmocka_unit_test(test_dominant_type),
        cmocka_unit_test(test_counts_and_ages),
        cmocka_unit_test(test_many_names),
        cmocka_unit_test_setup_teardown(test_through_engine, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
