/*
 * powerloss.c — power loss at every sync point of a representative workload on SQLite.
 *
 * The workload (one engine, opened through the power-loss shim with "sqlite:PATH?vfs=aj_fault")
 * submits a job, submits one whose payload is a blob (large enough for a WAL checkpoint), claims
 * and completes the first, claims and dead-letters the second, adds a schedule and fires it, runs a
 * one-step workflow on a worker pool (which also runs the fired job), and submits a last job. Each
 * call that returned success with a durability promise (submit, complete, fail, schedule add and
 * fire, workflow start: docs/DURABILITY.md) adds a fact that must survive; a fact only observed (a
 * workflow that completed, whose task committed without an fsync of its own) must survive once a
 * later durable call returned, since that call's WAL sync covers every earlier frame.
 *
 * A first run counts the syncs (S) and, rebooted from the shim's model without a cut, must keep
 * everything. Then for sync points k in 1..S+1 and both modes (drop the unsynced writes; keep
 * them in order with the last one torn) the workload runs again with power cut at sync k, the
 * files are rebuilt as the disk would hold them, and a fresh engine (no shim) must open, find
 * aj_check clean and every promised fact present. By default at most PL_SAMPLES_PER_MODE points
 * per mode are taken, evenly spaced with the two modes offset (deterministic);
 * AJ_POWERLOSS_FULL=1 runs every point. A failure prints the point and mode.
 */
#include "harness.h"
#include "powerloss_vfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PL_SAMPLES_PER_MODE 40 /* cut points per mode in the default (CI) run */
#define PL_FACTS_MAX 16        /* facts one workload records */
#define PL_BLOB_BYTES                                                                              \
    (5 << 20) /* the blob: over the threshold, and over 1000 pages (a checkpoint) */
#define PL_BLOB_THRESHOLD AJ_BLOB_THRESHOLD_MIN
#define PL_WAIT_SLICE_MS 50        /* a workflow wait re-checks the power this often */
#define PL_WAIT_MAX_MS (60 * 1000) /* a workflow that takes longer fails the test */
#define PL_START_MS 1700000000000LL
#define PL_QUEUE "pl"

typedef enum fact_kind { F_JOB, F_DONE, F_DEAD, F_SCHED, F_WF, F_WF_DONE } fact_kind;

typedef struct fact {
    fact_kind kind;
    uint64_t id;       /* jobs */
    char name[64];     /* schedules and workflows */
    const char *bytes; /* F_JOB: the payload; F_DONE: the result */
    size_t len;
    int required; /* promised durable (else only observed so far) */
} fact;

typedef struct run {
    fact facts[PL_FACTS_MAX];
    int n;
    aj_test_clock clock;
} run;

static char blob[PL_BLOB_BYTES];
static const char small[] = "{\"n\":1}";
static const char last[] = "{\"n\":2}";
static const char done_result[] = "{\"ok\":true}";

/* A durable call returned: this fact and every one observed before it must survive. */
static void promise(run *r, fact f) {
    for (int i = 0; i < r->n; i++) {
        r->facts[i].required = 1;
    }
    f.required = 1;
    if (r->n < PL_FACTS_MAX) {
        r->facts[r->n++] = f;
    }
}

static void observe(run *r, fact f) {
    f.required = 0;
    if (r->n < PL_FACTS_MAX) {
        r->facts[r->n++] = f;
    }
}

static int step_fn(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    return aj_step_set_result(ctx, in.data, in.len);
}

static int wf_fn(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes out;
    AJ_TRY(aj_step(wf, "echo", step_fn, NULL, input, &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

static int job_fn(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    return aj_ctx_set_result(ctx, done_result, strlen(done_result));
}

static int open_engine(aj_engine **e, const char *url, run *r) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.background = 0;
    o.clock = &r->clock.clock;
    o.seed = 1;
    o.blob_threshold = PL_BLOB_THRESHOLD;
    return aj_engine_open(e, url, &o);
}

static int submit(aj_engine *e, const char *payload, size_t len, uint64_t *id) {
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.queue = PL_QUEUE;
    s.type = "t";
    s.payload = payload;
    s.payload_len = len;
    return aj_submit(e, &s, id);
}

/* Claims one job of the queue: its id and epoch, or nonzero. */
static int claim_one(aj_engine *e, uint64_t *id, uint64_t *epoch) {
    const char *q[] = {PL_QUEUE};
    aj_job **jobs = NULL;
    size_t n = 0;
    int rc = aj_claim(e, q, 1, "pl-worker", 1, &jobs, &n);
    if (rc == 0 && n == 1) {
        *id = jobs[0]->id;
        *epoch = jobs[0]->epoch;
    }
    aj_job_list_free(jobs, n);
    return rc != 0 ? rc : n == 1 ? 0 : AJ_ENOTFOUND;
}

/* Runs the workload, stopping at the first failure once power is cut. Returns 0 when it ran
 * to its end or stopped because of the cut; 1 (with a message) when it failed with power on. */
static int workload(const char *url, run *r) {
    aj_engine *e = NULL;
    int rc = 0, failed = 0;
    const char *what = "open";
    uint64_t a = 0, b = 0, c = 0, ep = 0, got = 0;
    if ((rc = open_engine(&e, url, r)) != 0) {
        goto out;
    }
    what = "submit";
    if ((rc = submit(e, small, strlen(small), &a)) != 0) {
        goto out;
    }
    promise(r, (fact){F_JOB, a, "", small, strlen(small), 1});
    what = "submit blob";
    if ((rc = submit(e, blob, sizeof blob, &b)) != 0) {
        goto out;
    }
    promise(r, (fact){F_JOB, b, "", blob, sizeof blob, 1});
    what = "claim";
    if ((rc = claim_one(e, &got, &ep)) != 0) {
        goto out;
    }
    what = "complete";
    if (got != a) {
        rc = AJ_EINTERNAL;
        goto out;
    }
    if ((rc = aj_complete(e, got, ep, done_result, strlen(done_result))) != 0) {
        goto out;
    }
    promise(r, (fact){F_DONE, a, "", done_result, strlen(done_result), 1});
    what = "claim blob";
    if ((rc = claim_one(e, &got, &ep)) != 0) {
        goto out;
    }
    what = "dead-letter";
    if ((rc = aj_fail(e, got, ep, "power loss test", 1)) != 0) {
        goto out;
    }
    promise(r, (fact){F_DEAD, got, "", NULL, 0, 1});
    what = "schedule add";
    aj_schedule_spec ss;
    aj_schedule_spec_init(&ss);
    ss.name = "pl-tick";
    ss.every_ms = 60 * AJ_SECOND;
    ss.job.queue = PL_QUEUE;
    ss.job.type = "t";
    if ((rc = aj_schedule_add(e, &ss)) != 0) {
        goto out;
    }
    promise(r, (fact){F_SCHED, 0, "pl-tick", NULL, 0, 1});
    aj_test_clock_advance(&r->clock, 61 * AJ_SECOND);
    what = "schedule fire";
    if ((rc = aj_schedules_tick(e, NULL)) != 0) {
        goto out;
    }
    aj_schedule *sc = NULL;
    if ((rc = aj_schedule_get(e, "pl-tick", &sc)) != 0) {
        goto out;
    }
    uint64_t fired = sc->last_job_id;
    aj_schedule_free(sc);
    if (fired == 0) {
        rc = AJ_EINTERNAL;
        goto out;
    }
    promise(r, (fact){F_JOB, fired, "", NULL, 0, 1});
    what = "workflow start";
    if ((rc = aj_workflow_register(e, "pl-wf", wf_fn, NULL)) != 0 ||
        (rc = aj_register(e, "t", job_fn, NULL)) != 0) {
        goto out;
    }
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = 1;
    wo.shutdown_deadline_ms = 100;
    if ((rc = aj_workers_start(e, &wo)) != 0) {
        goto out;
    }
    aj_wf_start_opts so = {"pl-w1", 0, 0};
    if ((rc = aj_wf_start(e, "pl-wf", small, strlen(small), &so, NULL)) != 0) {
        goto out;
    }
    promise(r, (fact){F_WF, 0, "pl-w1", NULL, 0, 1});
    what = "workflow task";
    aj_wf_state st = AJ_WF_RUNNING;
    for (int waited = 0; !aj_powerloss_is_cut(); waited += PL_WAIT_SLICE_MS) {
        rc = aj_wf_wait(e, "pl-w1", PL_WAIT_SLICE_MS, &st);
        if (rc != AJ_ETIMEDOUT || waited >= PL_WAIT_MAX_MS) {
            break;
        }
    }
    if (rc != 0 || st != AJ_WF_COMPLETED) {
        rc = rc != 0 ? rc : AJ_EINTERNAL;
        goto out;
    }
    observe(r, (fact){F_WF_DONE, 0, "pl-w1", NULL, 0, 0});
    aj_workers_stop(e);
    what = "last submit";
    if ((rc = submit(e, last, strlen(last), &c)) != 0) {
        goto out;
    }
    promise(r, (fact){F_JOB, c, "", last, strlen(last), 1});
out:
    if (rc != 0 && !aj_powerloss_is_cut()) {
        fprintf(stderr, "powerloss: workload step '%s' failed with power on: %s (%s)\n", what,
                aj_strerror(rc), aj_errmsg());
        failed = 1;
    }
    aj_engine_close(e);
    return failed;
}

static void report_line(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "powerloss: aj check: %s\n", line);
}

static int same(const void *a, size_t alen, const void *b, size_t blen) {
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* One fact against the rebooted store: 0, or 1 with a message. */
static int check_fact(aj_engine *e, const fact *f) {
    aj_job *j = NULL;
    aj_wf_info *w = NULL;
    aj_schedule *s = NULL;
    int bad = 0;
    switch (f->kind) {
    case F_JOB:
    case F_DONE:
    case F_DEAD:
        if (aj_job_get(e, f->id, &j) != 0) {
            fprintf(stderr, "powerloss: job %llu lost: %s\n", (unsigned long long)f->id,
                    aj_errmsg());
            return 1;
        }
        bad = (f->kind == F_JOB && f->bytes != NULL &&
               !same(j->payload, j->payload_len, f->bytes, f->len)) ||
              (f->kind == F_DONE && (j->state != AJ_STATE_COMPLETED ||
                                     !same(j->result, j->result_len, f->bytes, f->len))) ||
              (f->kind == F_DEAD && j->state != AJ_STATE_DEAD);
        if (bad) {
            fprintf(stderr,
                    "powerloss: job %llu is %s with a payload of %zu bytes, not as acknowledged\n",
                    (unsigned long long)f->id, aj_state_name(j->state), j->payload_len);
        }
        aj_job_free(j);
        return bad;
    case F_SCHED:
        if (aj_schedule_get(e, f->name, &s) != 0) {
            fprintf(stderr, "powerloss: schedule %s lost: %s\n", f->name, aj_errmsg());
            return 1;
        }
        aj_schedule_free(s);
        return 0;
    case F_WF:
    case F_WF_DONE:
        if (aj_wf_get(e, f->name, &w) != 0) {
            fprintf(stderr, "powerloss: workflow %s lost: %s\n", f->name, aj_errmsg());
            return 1;
        }
        bad = f->kind == F_WF_DONE && w->state != AJ_WF_COMPLETED;
        if (bad) {
            fprintf(stderr, "powerloss: workflow %s is %s after its completion was covered\n",
                    f->name, aj_wf_state_name(w->state));
        }
        aj_wf_info_free(w);
        return bad;
    }
    return 1;
}

/* Opens the rebooted store without the shim and checks it: 0, or 1 with messages. */
static int verify(const char *url, run *r) {
    aj_engine *e = NULL;
    int rc = open_engine(&e, url, r);
    if (rc != 0) {
        fprintf(stderr, "powerloss: the store does not open after the reboot: %s\n", aj_errmsg());
        return 1;
    }
    int bad = 0;
    uint64_t records = 0;
    rc = aj_check(e, report_line, NULL, &records);
    if (rc != 0) {
        fprintf(stderr, "powerloss: aj check: %s (%s)\n", aj_strerror(rc), aj_errmsg());
        bad = 1;
    }
    for (int i = 0; i < r->n; i++) {
        if (r->facts[i].required) {
            bad |= check_fact(e, &r->facts[i]);
        }
    }
    aj_engine_close(e);
    return bad;
}

/* One run: power cut at sync `cut_at` (0: never) in `mode`, reboot, verify. */
static int one_run(const char *dir, long cut_at, aj_powerloss_mode mode, long *syncs) {
    char url[800], plain[700];
    snprintf(plain, sizeof plain, "sqlite:%s/aj.db", dir);
    snprintf(url, sizeof url, "%s?vfs=%s", plain, AJ_POWERLOSS_VFS);
    aj_test_rmtree(dir);
    if (mkdir(dir, 0700) != 0) {
        perror("powerloss: mkdir");
        return 1;
    }
    run r = {0};
    aj_test_clock_init(&r.clock, PL_START_MS);
    if (aj_powerloss_start(cut_at, mode) != 0) {
        fprintf(stderr, "powerloss: cannot register the VFS shim\n");
        return 1;
    }
    int bad = workload(url, &r);
    *syncs = aj_powerloss_syncs();
    int was_cut = aj_powerloss_is_cut();
    bad |= aj_powerloss_reboot() != 0;
    if (cut_at > 0 && !was_cut && *syncs >= cut_at) {
        fprintf(stderr, "powerloss: sync %ld happened but power stayed on\n", cut_at);
        bad = 1;
    }
    if (!bad) {
        bad = verify(plain, &r);
    }
    if (bad) {
        fprintf(stderr, "powerloss: FAILED at sync %ld of %ld, mode %s (%d facts recorded)\n",
                cut_at, *syncs, mode == AJ_POWERLOSS_DROP ? "drop" : "tear", r.n);
    }
    return bad;
}

int main(void) {
    for (size_t i = 0; i < sizeof blob; i++) {
        blob[i] = (char)('a' + (i * 7 + i / 251) % 26);
    }
    blob[0] = '"';
    blob[sizeof blob - 1] = '"';
    char *base = aj_test_tmpdir();
    char dir[600];
    snprintf(dir, sizeof dir, "%s/store", base);
    long total = 0;
    int failures = one_run(dir, 0, AJ_POWERLOSS_DROP, &total);
    printf("powerloss: the workload asks for %ld syncs\n", total);
    const char *full = getenv("AJ_POWERLOSS_FULL");
    long points = total + 1; /* a cut at every sync, and one after the last */
    long stride = full != NULL && strcmp(full, "1") == 0
                      ? 1
                      : (points + PL_SAMPLES_PER_MODE - 1) / PL_SAMPLES_PER_MODE;
    int runs = 0;
    for (int m = 0; m < 2 && failures < 5; m++) {
        aj_powerloss_mode mode = m == 0 ? AJ_POWERLOSS_DROP : AJ_POWERLOSS_TEAR;
        /* The tear mode's points sit between the drop mode's, so together they cover more. */
        for (long k = 1 + (m == 1 ? stride / 2 : 0); k <= points && failures < 5; k += stride) {
            long syncs = 0;
            failures += one_run(dir, k, mode, &syncs);
            runs++;
        }
    }
    printf("powerloss: %d power cuts (every %ld sync%s, two modes), %d failed\n", runs, stride,
           stride == 1 ? "" : "s", failures);
    aj_test_rmtree(base);
    free(base);
    return failures == 0 ? 0 : 1;
}
