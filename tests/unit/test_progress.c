/*
 * test_progress.c — job progress without threads: the hybrid logical clock (util/hlc.h); the
 * progress state of core/progress.h — its merge checked for commutativity, associativity and
 * idempotence on random states from a seeded PRNG, the semantics of each register, the bounds,
 * the encoding; the pipe's line protocol; and, through a "mem:" engine with a simulated clock,
 * that progress is deleted with its job (collection after retention, purge) and read back by
 * aj_job_progress().
 *
 * A failing property prints its seed; AJ_TEST_SEED=N replays that one seed.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "runtime/engine.h"
#include "util/buf.h"
#include "util/hlc.h"
#include "util/rand.h"

#define T0 ((int64_t)1767225600000) /* 2026-01-01T00:00:00Z */
/* Random cases per property run. */
#define PROPERTY_CASES 400
/* Distinct step names and counter names the generator draws from: more than the limits, so
 * that merges must truncate. */
#define GEN_STEP_NAMES 100
#define GEN_COUNTER_NAMES 48
/* Writers the generator uses: more than PROGRESS_WRITERS_MAX. */
#define GEN_WRITERS 24

/* --- HLC ------------------------------------------------------------------------------------ */

static void test_hlc_monotone(void **state) {
    (void)state;
    aj_test_clock c;
    aj_test_clock_init(&c, 1000);
    aj_hlc h;
    aj__hlc_init(&h, &c.clock);
    aj_hlc_ts a = aj__hlc_now(&h);
    assert_int_equal(a.ms, 1000);
    assert_int_equal(a.logical, 0);
    aj_hlc_ts b = aj__hlc_now(&h); /* same millisecond: the counter breaks the tie */
    assert_int_equal(b.ms, 1000);
    assert_int_equal(b.logical, 1);
    c.now = 900; /* the wall clock steps back: the HLC does not */
    aj_hlc_ts d = aj__hlc_now(&h);
    assert_true(aj__hlc_cmp(d, b) > 0);
    assert_int_equal(d.ms, 1000);
    c.now = 2000;
    aj_hlc_ts e = aj__hlc_now(&h);
    assert_int_equal(e.ms, 2000);
    assert_int_equal(e.logical, 0);
}

static void test_hlc_observe(void **state) {
    (void)state;
    aj_test_clock c;
    aj_test_clock_init(&c, 1000);
    aj_hlc h;
    aj__hlc_init(&h, &c.clock);
    aj__hlc_now(&h);
    /* A stamp from a process whose clock runs ahead: what we stamp next comes after it. */
    aj_hlc_ts remote = {5000, 7};
    aj__hlc_observe(&h, remote);
    aj_hlc_ts n = aj__hlc_now(&h);
    assert_true(aj__hlc_cmp(n, remote) > 0);
    assert_int_equal(n.ms, 5000);
    /* An older stamp changes nothing. */
    aj_hlc_ts old = {10, 0};
    aj__hlc_observe(&h, old);
    assert_true(aj__hlc_cmp(aj__hlc_now(&h), n) > 0);
    /* Counter overflow spills into the next millisecond. */
    aj_hlc_ts top = {77, UINT32_MAX};
    aj_hlc_ts next = aj__hlc_next(top, 10);
    assert_int_equal(next.ms, 78);
    assert_int_equal(next.logical, 0);
    aj_hlc_ts m = aj__hlc_merge(top, remote, 10);
    assert_true(aj__hlc_cmp(m, remote) > 0 && aj__hlc_cmp(m, top) > 0);
}

/* --- random states -------------------------------------------------------------------------- */

static void gen_name(aj_rng *r, const char *prefix, unsigned pool, char *out, size_t size) {
    snprintf(out, size, "%s%u", prefix, (unsigned)aj__rng_below(r, pool));
}

static aj_hlc_ts gen_ts(aj_rng *r) {
    /* A small range, so that equal stamps from different writers happen. */
    aj_hlc_ts ts = {1 + (int64_t)aj__rng_below(r, 50), (uint32_t)aj__rng_below(r, 3)};
    return ts;
}

/* A state built from random operations of a few writers. */
static void gen_ops(aj_rng *r, progress_state *s) {
    progress_init(s);
    unsigned n = (unsigned)aj__rng_below(r, 120);
    for (unsigned i = 0; i < n; i++) {
        uint64_t w = 1 + aj__rng_below(r, GEN_WRITERS);
        aj_hlc_ts ts = gen_ts(r);
        char name[32];
        switch (aj__rng_below(r, 6)) {
        case 0:
            progress_op_percent(s, ts, (uint32_t)aj__rng_below(r, PROGRESS_PERCENT_MAX + 1));
            break;
        case 1:
            gen_name(r, "msg ", 20, name, sizeof name);
            progress_op_message(s, ts, w, name, strlen(name));
            break;
        case 2:
            gen_name(r, "step", GEN_STEP_NAMES, name, sizeof name);
            progress_op_step(s, ts, w, name, strlen(name));
            break;
        case 3:
            gen_name(r, "c", GEN_COUNTER_NAMES, name, sizeof name);
            (void)progress_op_count(s, ts, w, name, strlen(name), aj__rng_below(r, 1000));
            break;
        case 4:
            progress_op_malformed(s, ts, w);
            break;
        default:
            progress_op_complete(s, ts, w);
            break;
        }
    }
}

/* A state that is the merge of a few op-built states (so that truncation has happened). */
static void gen_state(aj_rng *r, progress_state *s) {
    progress_state *part = malloc(sizeof *part);
    assert_non_null(part);
    gen_ops(r, s);
    unsigned parts = (unsigned)aj__rng_below(r, 4);
    for (unsigned i = 0; i < parts; i++) {
        gen_ops(r, part);
        progress_merge(s, part);
    }
    free(part);
}

static uint64_t base_seed(void) {
    const char *env = getenv("AJ_TEST_SEED");
    return env != NULL ? strtoull(env, NULL, 10) : 20260101;
}

static int cases(void) {
    return getenv("AJ_TEST_SEED") != NULL ? 1 : PROPERTY_CASES;
}

/* Encodes, decodes and checks that nothing changed (and that the state is canonical). */
static void check_round_trip(const progress_state *s, uint64_t seed) {
    aj_buf b = AJ_BUF_INIT;
    assert_int_equal(progress_encode(s, &b), 0);
    progress_state *back = malloc(sizeof *back);
    assert_non_null(back);
    int rc = progress_decode(b.p, b.len, back);
    if (rc != 0 || !progress_equal(s, back)) {
        fail_msg("seed %llu: state does not survive encode/decode (%s)", (unsigned long long)seed,
                 rc != 0 ? aj_errmsg() : "different");
    }
    free(back);
    aj__buf_free(&b);
}

typedef struct trio {
    progress_state a, b, c, x, y;
} trio;

static void test_merge_properties(void **state) {
    (void)state;
    trio *t = malloc(sizeof *t);
    assert_non_null(t);
    uint64_t base = base_seed();
    for (int i = 0; i < cases(); i++) {
        uint64_t seed = base + (uint64_t)i;
        aj_rng r;
        aj__rng_seed(&r, seed);
        gen_state(&r, &t->a);
        gen_state(&r, &t->b);
        gen_state(&r, &t->c);
        check_round_trip(&t->a, seed);

        /* Commutative: a ⊔ b = b ⊔ a. */
        t->x = t->a;
        progress_merge(&t->x, &t->b);
        t->y = t->b;
        progress_merge(&t->y, &t->a);
        if (!progress_equal(&t->x, &t->y)) {
            fail_msg("seed %llu: merge is not commutative", (unsigned long long)seed);
        }
        check_round_trip(&t->x, seed);

        /* Associative: (a ⊔ b) ⊔ c = a ⊔ (b ⊔ c). */
        progress_merge(&t->x, &t->c);
        t->y = t->b;
        progress_merge(&t->y, &t->c);
        progress_state *left = &t->x;
        progress_state *right = malloc(sizeof *right);
        assert_non_null(right);
        *right = t->a;
        progress_merge(right, &t->y);
        if (!progress_equal(left, right)) {
            fail_msg("seed %llu: merge is not associative", (unsigned long long)seed);
        }
        free(right);

        /* Idempotent: a ⊔ a = a, and (a ⊔ b) ⊔ b = a ⊔ b (a re-sent state changes nothing). */
        t->x = t->a;
        progress_merge(&t->x, &t->a);
        if (!progress_equal(&t->x, &t->a)) {
            fail_msg("seed %llu: merge is not idempotent", (unsigned long long)seed);
        }
        t->x = t->a;
        progress_merge(&t->x, &t->b);
        t->y = t->x;
        progress_merge(&t->y, &t->b);
        progress_merge(&t->y, &t->a);
        if (!progress_equal(&t->x, &t->y)) {
            fail_msg("seed %llu: merging a part again changed the state", (unsigned long long)seed);
        }
    }
    free(t);
}

/* --- semantics ------------------------------------------------------------------------------- */

static aj_hlc_ts ts_at(int64_t ms) {
    aj_hlc_ts ts = {ms, 0};
    return ts;
}

static void op_step(progress_state *s, int64_t ms, uint64_t w, const char *name) {
    progress_op_step(s, ts_at(ms), w, name, strlen(name));
}

static void test_registers(void **state) {
    (void)state;
    progress_state *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    progress_init(a);
    progress_init(b);
    /* Percent is a max-register. */
    progress_op_percent(a, ts_at(1), 4000);
    progress_op_percent(a, ts_at(2), 3000);
    assert_int_equal(a->percent, 4000);
    progress_op_percent(b, ts_at(3), 8000);
    progress_merge(a, b);
    assert_int_equal(a->percent, 8000);

    /* Step: last writer wins by stamp; a writer's previous step is completed. */
    progress_init(a);
    progress_init(b);
    op_step(a, 10, 1, "extract");
    op_step(a, 20, 1, "load");
    assert_int_equal(a->n_done, 1);
    assert_string_equal(a->done[0].name, "extract");
    op_step(b, 15, 2, "other");
    progress_merge(b, a);
    assert_string_equal(b->step.text, "load"); /* stamp 20 beats 15 */
    op_step(b, 25, 2, "later");
    progress_merge(a, b);
    assert_string_equal(a->step.text, "later");
    /* Completing the job completes the step its writer is at; another writer's is left. */
    progress_op_complete(a, ts_at(30), 1);
    assert_int_equal(a->n_done, 1);
    progress_op_complete(a, ts_at(31), 2);
    assert_int_equal(a->n_done, 2);
    assert_string_equal(a->done[1].name, "later");

    /* Counters: per writer, summed; re-merging a writer's state counts nothing twice. */
    progress_init(a);
    progress_init(b);
    assert_int_equal(progress_op_count(a, ts_at(1), 1, "rows", 4, 5), 0);
    assert_int_equal(progress_op_count(a, ts_at(2), 1, "rows", 4, 3), 0);
    assert_int_equal(progress_op_count(b, ts_at(3), 2, "rows", 4, 4), 0);
    progress_merge(b, a);
    progress_merge(b, a);
    assert_int_equal(b->n_counters, 1);
    assert_int_equal(progress_gcounter_value(&b->counters[0].g), 12);

    /* Message: last writer wins; equal stamps are decided by writer, the same everywhere. */
    progress_init(a);
    progress_init(b);
    progress_op_message(a, ts_at(5), 1, "from one", 8);
    progress_op_message(b, ts_at(5), 2, "from two", 8);
    progress_state *c = malloc(sizeof *c);
    assert_non_null(c);
    *c = *a;
    progress_merge(c, b);
    progress_merge(b, a);
    assert_string_equal(c->message.text, "from two");
    assert_string_equal(b->message.text, "from two");
    free(c);
    free(a);
    free(b);
}

static void test_bounds(void **state) {
    (void)state;
    progress_state *s = malloc(sizeof *s);
    assert_non_null(s);
    progress_init(s);
    /* Steps: the first AJ_PROGRESS_STEPS_MAX to complete are kept. */
    char name[32];
    for (int i = 0; i <= AJ_PROGRESS_STEPS_MAX + 10; i++) {
        snprintf(name, sizeof name, "s%03d", i);
        op_step(s, 100 + i, 1, name);
    }
    assert_int_equal(s->n_done, AJ_PROGRESS_STEPS_MAX);
    aj_progress *p = progress_to_public(s, 9);
    assert_non_null(p);
    assert_int_equal(p->n_steps_done, AJ_PROGRESS_STEPS_MAX);
    assert_string_equal(p->steps_done[0], "s000");
    assert_string_equal(p->steps_done[AJ_PROGRESS_STEPS_MAX - 1], "s063");
    aj_progress_free(p);

    /* Counters: a new name past the limit is refused by the writer. */
    progress_init(s);
    for (int i = 0; i < AJ_PROGRESS_COUNTERS_MAX; i++) {
        snprintf(name, sizeof name, "c%02d", i);
        assert_int_equal(progress_op_count(s, ts_at(1), 1, name, strlen(name), 1), 0);
    }
    assert_int_equal(progress_op_count(s, ts_at(1), 1, "zzz", 3, 1), AJ_ETOOBIG);
    assert_int_equal(progress_op_count(s, ts_at(1), 1, "c00", 3, 1), 0); /* an old name: fine */

    /* Writers: only the latest PROGRESS_WRITERS_MAX attempts are remembered per counter. */
    progress_init(s);
    for (uint64_t w = 1; w <= PROGRESS_WRITERS_MAX + 4; w++) {
        assert_int_equal(progress_op_count(s, ts_at(1), w, "rows", 4, 1), 0);
    }
    assert_int_equal(s->counters[0].g.n, PROGRESS_WRITERS_MAX);
    assert_int_equal(s->counters[0].g.w[0].writer, 5);

    /* Names and messages. */
    char longname[AJ_PROGRESS_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(progress_name_check("step", longname, strlen(longname), 0), AJ_EINVAL);
    assert_int_equal(progress_name_check("step", "", 0, 0), AJ_EINVAL);
    assert_int_equal(progress_name_check("step", "a\x01", 2, 0), AJ_EINVAL);
    assert_int_equal(progress_name_check("step", "\xff", 1, 0), AJ_EINVAL);
    assert_int_equal(progress_name_check("step", "load data", 9, 0), 0);
    assert_int_equal(progress_name_check("counter", "two words", 9, 1), AJ_EINVAL);
    /* A message is cut at its limit, never inside a character. */
    char msg[AJ_PROGRESS_MESSAGE_MAX + 8];
    memset(msg, 'a', AJ_PROGRESS_MESSAGE_MAX - 1);
    memcpy(msg + AJ_PROGRESS_MESSAGE_MAX - 1, "\xc3\xa9tail", 6); /* é straddles the limit */
    size_t keep = 0;
    assert_int_equal(progress_message_check(msg, AJ_PROGRESS_MESSAGE_MAX + 5, &keep), 0);
    assert_int_equal(keep, AJ_PROGRESS_MESSAGE_MAX - 1);
    assert_int_equal(progress_message_check("tab\tok", 6, &keep), 0);
    assert_int_equal(progress_message_check("nl\nno", 5, &keep), AJ_EINVAL);
    free(s);
}

static void test_decode_rejects(void **state) {
    (void)state;
    progress_state *s = malloc(sizeof *s), *out = malloc(sizeof *out);
    assert_non_null(s);
    assert_non_null(out);
    progress_init(s);
    op_step(s, 10, 1, "a");
    op_step(s, 11, 1, "b");
    assert_int_equal(progress_op_count(s, ts_at(12), 1, "rows", 4, 3), 0);
    aj_buf b = AJ_BUF_INIT;
    assert_int_equal(progress_encode(s, &b), 0);
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_equal(progress_decode(b.p, cut, out), AJ_ECORRUPT);
    }
    uint8_t *extra = malloc(b.len + 1);
    assert_non_null(extra);
    memcpy(extra, b.p, b.len);
    extra[b.len] = 0;
    assert_int_equal(progress_decode(extra, b.len + 1, out), AJ_ECORRUPT);
    extra[0] = PROGRESS_FORMAT + 1;
    assert_int_equal(progress_decode(extra, b.len, out), AJ_EFORMAT);
    free(extra);
    aj__buf_free(&b);
    /* Not canonical: two completed steps out of order. */
    progress_init(s);
    s->n_done = 2;
    memcpy(s->done[0].name, "b", 2);
    s->done[0].len = 1;
    memcpy(s->done[1].name, "a", 2);
    s->done[1].len = 1;
    assert_int_equal(progress_encode(s, &b), 0);
    assert_int_equal(progress_decode(b.p, b.len, out), AJ_ECORRUPT);
    aj__buf_free(&b);
    free(s);
    free(out);
}

/* --- line protocol --------------------------------------------------------------------------- */

static void test_line_protocol(void **state) {
    (void)state;
    static const struct {
        const char *line;
        int ok;
        progress_line_kind kind;
        uint32_t percent;
        const char *text;
        uint64_t n;
    } cases_[] = {
        {"progress 40", 1, PROGRESS_LINE_PERCENT, 4000, NULL, 0},
        {"progress 40.5 loading rows", 1, PROGRESS_LINE_PERCENT, 4050, "loading rows", 0},
        {"  progress\t0.25   spaced  out \r", 1, PROGRESS_LINE_PERCENT, 25, "spaced  out", 0},
        {"progress 100", 1, PROGRESS_LINE_PERCENT, 10000, NULL, 0},
        {"step load data", 1, PROGRESS_LINE_STEP, 0, "load data", 0},
        {"count rows 1200", 1, PROGRESS_LINE_COUNT, 0, "rows", 1200},
        {"count rows 18446744073709551615", 1, PROGRESS_LINE_COUNT, 0, "rows",
         18446744073709551615ull},
        {"", 1, PROGRESS_LINE_BLANK, 0, NULL, 0},
        {"   \t", 1, PROGRESS_LINE_BLANK, 0, NULL, 0},
        {"progress", 0, 0, 0, NULL, 0},
        {"progress 101", 0, 0, 0, NULL, 0},
        {"progress -1", 0, 0, 0, NULL, 0},
        {"progress 1.234", 0, 0, 0, NULL, 0},
        {"progress 5.", 0, 0, 0, NULL, 0},
        {"progress abc", 0, 0, 0, NULL, 0},
        {"progress 5 \x01", 0, 0, 0, NULL, 0},
        {"PROGRESS 5", 0, 0, 0, NULL, 0},
        {"step", 0, 0, 0, NULL, 0},
        {"count rows", 0, 0, 0, NULL, 0},
        {"count rows -3", 0, 0, 0, NULL, 0},
        {"count rows 3 extra", 0, 0, 0, NULL, 0},
        {"count rows 18446744073709551616", 0, 0, 0, NULL, 0},
        {"hello", 0, 0, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++) {
        progress_line pl;
        int rc = progress_line_parse(cases_[i].line, strlen(cases_[i].line), &pl);
        if (!cases_[i].ok) {
            if (rc != AJ_EINVAL) {
                fail_msg("line '%s' should be malformed", cases_[i].line);
            }
            assert_true(aj_errmsg()[0] != '\0');
            continue;
        }
        if (rc != 0) {
            fail_msg("line '%s': %s", cases_[i].line, aj_errmsg());
        }
        assert_int_equal(pl.kind, cases_[i].kind);
        assert_int_equal(pl.percent, cases_[i].percent);
        assert_true(pl.n == cases_[i].n);
        if (cases_[i].text == NULL) {
            assert_null(pl.text);
        } else {
            assert_int_equal(pl.text_len, strlen(cases_[i].text));
            assert_memory_equal(pl.text, cases_[i].text, pl.text_len);
        }
    }
    /* Over the line limit: malformed, whatever it says. */
    char *big = malloc(AJ_PROGRESS_LINE_MAX + 2);
    assert_non_null(big);
    memcpy(big, "step ", 5);
    memset(big + 5, 'x', AJ_PROGRESS_LINE_MAX - 4);
    progress_line pl;
    assert_int_equal(progress_line_parse(big, AJ_PROGRESS_LINE_MAX + 1, &pl), AJ_EINVAL);
    free(big);
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

typedef struct put_ctx {
    uint64_t id;
    progress_state *st;
} put_ctx;

static int put_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    put_ctx *p = ud;
    progress_state *scratch = malloc(sizeof *scratch);
    assert_non_null(scratch);
    int rc = progress_merge_into_store(t, p->id, p->st, scratch);
    free(scratch);
    return rc;
}

static int found_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    put_ctx *p = ud;
    int found = 0;
    int rc = progress_read(t, p->id, p->st, &found);
    return rc != 0 ? rc : (found ? ENG_READ_ONLY : AJ_ENOTFOUND);
}

/* Stores a little progress for job id, as a worker's flush would. */
static void put_progress(fixture *f, uint64_t id) {
    put_ctx p = {id, malloc(sizeof(progress_state))};
    assert_non_null(p.st);
    progress_init(p.st);
    progress_op_percent(p.st, ts_at(T0), 5000);
    op_step(p.st, T0, 1, "load");
    assert_int_equal(eng_run(f->e, put_txn, &p, KV_SYNC), 0);
    free(p.st);
}

static int has_progress(fixture *f, uint64_t id) {
    put_ctx p = {id, malloc(sizeof(progress_state))};
    assert_non_null(p.st);
    int rc = eng_run(f->e, found_txn, &p, KV_SYNC);
    free(p.st);
    assert_true(rc == 0 || rc == AJ_ENOTFOUND);
    return rc == 0;
}

static uint64_t submit_and_claim(fixture *f, aj_job **out) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.type = "t";
    s.max_attempts = 1;
    uint64_t id;
    assert_int_equal(aj_submit(f->e, &s, &id), 0);
    aj_job **jobs;
    size_t n;
    assert_int_equal(aj_claim(f->e, NULL, 0, "w", 1, &jobs, &n), 0);
    assert_int_equal(n, 1);
    *out = jobs[0];
    free(jobs);
    return id;
}

static void test_read_and_collect(void **state) {
    fixture *f = *state;
    aj_progress *p = NULL;
    assert_int_equal(aj_job_progress(f->e, 4242, &p), AJ_ENOTFOUND);

    aj_job *j;
    uint64_t id = submit_and_claim(f, &j);
    assert_int_equal(aj_job_progress(f->e, id, &p), 0);
    assert_int_equal(p->reported, 0);
    assert_int_equal(p->has_percent, 0);
    assert_null(p->step);
    aj_progress_free(p);

    put_progress(f, id);
    assert_int_equal(aj_job_progress(f->e, id, &p), 0);
    assert_int_equal(p->reported, 1);
    assert_true(p->percent == 50.0);
    assert_string_equal(p->step, "load");
    assert_int_equal(p->updated_ms, T0);
    aj_progress_free(p);

    /* Completed, then collected after the retention period: the progress goes with it. */
    assert_int_equal(aj_complete(f->e, id, j->epoch, "", 0), 0);
    aj_job_free(j);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_true(has_progress(f, id));
    aj_test_clock_advance(&f->clock, 7 * AJ_DAY + AJ_MINUTE * 2);
    assert_int_equal(aj_engine_tick(f->e), 0);
    assert_int_equal(aj_job_get(f->e, id, &j), AJ_ENOTFOUND);
    assert_false(has_progress(f, id));

    /* Purged from the dead-letter queue: the progress goes too. */
    id = submit_and_claim(f, &j);
    put_progress(f, id);
    assert_int_equal(aj_fail(f->e, id, j->epoch, "boom", 1), 0);
    aj_job_free(j);
    assert_true(has_progress(f, id));
    assert_int_equal(aj_dlq_purge(f->e, id), 0);
    assert_false(has_progress(f, id));
    uint64_t records;
    assert_int_equal(aj_check(f->e, NULL, NULL, &records), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hlc_monotone),
        cmocka_unit_test(test_hlc_observe),
        cmocka_unit_test(test_merge_properties),
        cmocka_unit_test(test_registers),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_line_protocol),
        cmocka_unit_test_setup_teardown(test_read_and_collect, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
