/*
 * aj_sim.c — `aj-sim`, the deterministic simulator: several engines ("nodes") over one memory
 * store, driven from one seed on one thread, with faults, and a ledger of what the engine
 * acknowledged checked against the store after every step (docs/TESTING.md, "Deterministic
 * simulation").
 *
 * It runs the engine's own code, not a model of it: submits, claims, completions, failures,
 * heartbeats, releases, cancels, redrives, the reaper and promoter (aj_engine_tick), schedules
 * (aj_schedules_tick) and workflow tasks (aj__wf_task_run, the worker pool's task body). Nothing
 * here starts a thread: each node is an engine opened with background=0 over the shared store,
 * whose KV_ASYNC/KV_APPLIED commits the memory backend applies synchronously; time is a global
 * simulated clock that each node reads through its own skew and drift.
 *
 * Every decision comes from one PRNG seeded by --seed; every action and what it observed is
 * folded into a trace hash, so the same seed gives the same final line and a failing seed is
 * reproduced by running it again. Exit 0 when every invariant held; 1 naming the broken
 * invariant and the step; 2 for bad usage.
 *
 * Layer: a test program; it uses the public API plus three internal seams (aj__engine_open_kv,
 * aj__wf_task_run, the memory store's fault injection).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "runtime/engine.h"
#include "runtime/wf_exec.h"
#include "store/kv.h"
#include "util/hash.h"
#include "util/rand.h"

#define SIM_NODES_MAX 8            /* --nodes at most */
#define SIM_STEPS_DEFAULT 1000     /* --steps when not given */
#define SIM_STEPS_MAX 10000000     /* --steps at most */
#define SIM_INFLIGHT_MAX 32        /* jobs one node holds at once */
#define SIM_WF_MAX 4096            /* workflows one run starts at most */
#define SIM_SCHED_MAX 3            /* schedules one run creates */
#define SIM_KEYS 8                 /* idempotency keys in use per queue */
#define SIM_SWEEP_EVERY 8          /* steps between full ledger sweeps of the store */
#define SIM_CHECK_EVERY 32         /* steps between aj_check runs */
#define SIM_DRAIN_ROUNDS 400       /* rounds of the final drain before declaring something stuck */
#define SIM_START_MS 1700000000000 /* simulated Unix time at step 0 */
#define SIM_SKEW_MAX_MS 5000       /* a node's clock is off by at most this */
#define SIM_DRIFT_MAX_PPM 2000     /* and drifts by at most this */
#define SIM_LEASE_MS 10000         /* lease of user jobs */
#define SIM_DETAIL 512             /* bytes of a violation's detail */

typedef enum { WL_JOBS, WL_WORKFLOWS, WL_SCHEDULES, WL_MIXED } workload;
static const char *const WL_NAMES[] = {"jobs", "workflows", "schedules", "mixed"};

typedef enum { K_USER, K_ACT, K_TASK, K_SCHED } job_kind;

/* What the simulator knows about one job. */
typedef struct jrec {
    uint64_t id;
    job_kind kind;
    int acked;            /* a submit of it returned success */
    uint64_t max_epoch;   /* the largest epoch a claim returned (since the last power loss) */
    uint32_t completions; /* aj_complete calls that returned 0 */
    int cancel_acked;     /* aj_job_cancel returned 0 */
    int redriven;         /* an aj_dlq_redrive of it returned 0 */
    uint64_t deps[2];
    size_t n_deps;
    aj_dep_policy policy;
    int wf; /* K_ACT: the workflow it belongs to, else -1 */
} jrec;

/* A claimed job a node is working on. */
typedef struct held {
    uint64_t id, epoch;
    int task_ok; /* K_TASK: the task ran without error */
} held;

/* A simulated clock: the global time seen through this node's skew and drift. */
typedef struct sim sim;
typedef struct node {
    sim *s;
    aj_clock clock;
    aj_engine *e;
    int64_t skew_ms;
    int64_t drift_ppm;
    long partitioned_until; /* cut off from the store until this step: takes no action */
    uint32_t incarnation;
    held inflight[SIM_INFLIGHT_MAX];
    size_t n_inflight;
} node;

typedef struct wrec {
    int started;  /* aj_wf_start returned 0 */
    int maybe;    /* ... or AJ_EAMBIGUOUS: it may exist */
    int signaled; /* an aj_wf_signal returned 0 */
    uint64_t act_id;
} wrec;

struct sim {
    uint64_t seed;
    long steps;
    int n_nodes;
    workload wl;
    int trace;
    aj_rng rng;
    uint64_t hash;
    long step;
    int64_t now; /* global simulated time */
    kv_store *kv;
    node nodes[SIM_NODES_MAX];
    aj_engine **graveyard; /* engines of crashed nodes: never used again, closed at exit */
    size_t n_grave, cap_grave;
    jrec *jobs;
    size_t n_jobs, cap_jobs;
    size_t *index; /* open addressing: id -> jobs[] slot + 1 */
    size_t cap_index;
    wrec wfs[SIM_WF_MAX];
    int n_wfs;
    int n_scheds;
    int sched_maybe[SIM_SCHED_MAX]; /* its add was ambiguous: it may not exist */
    int ambiguous_submits;          /* some submit was ambiguous: unknown jobs may exist */
    uint64_t keyed[2][SIM_KEYS];    /* the id an idempotency key gave, per queue; 0: none yet */
    uint64_t submits;
    int armed; /* a store fault is armed for the current action */
    int failed;
    char violation[SIM_DETAIL + 128];
};

/* ----------------------------------------------------------------------------------------- */
/* Plumbing: randomness, trace, violations                                                   */

static uint64_t rnd(sim *s, uint64_t n) {
    return aj__rng_below(&s->rng, n);
}

static int chance(sim *s, int percent) {
    return (int)rnd(s, 100) < percent;
}

static void note(sim *s, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    s->hash = aj__fnv1a(s->hash, buf, len);
    s->hash = aj__fnv1a(s->hash, "\n", 1);
    if (s->trace) {
        printf("%ld %s\n", s->step, buf);
    }
}

/* Records the first broken invariant; the run stops at the end of the step. */
static void violated(sim *s, const char *inv, const char *fmt, ...) {
    if (s->failed) {
        return;
    }
    s->failed = 1;
    char detail[SIM_DETAIL];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(s->violation, sizeof s->violation, "invariant '%s' broken at step %ld: %s", inv,
             s->step, detail);
    note(s, "VIOLATION %s", inv);
}

static int64_t node_now(void *ud) {
    node *n = ud;
    int64_t elapsed = n->s->now - SIM_START_MS;
    return n->s->now + n->skew_ms + elapsed / 1000000 * n->drift_ppm +
           elapsed % 1000000 * n->drift_ppm / 1000000;
}

/* ----------------------------------------------------------------------------------------- */
/* The ledger                                                                                */

static jrec *find_job(sim *s, uint64_t id) {
    if (s->cap_index == 0) {
        return NULL;
    }
    for (size_t i = (size_t)(id * 0x9E3779B97F4A7C15ULL) & (s->cap_index - 1);;
         i = (i + 1) & (s->cap_index - 1)) {
        if (s->index[i] == 0) {
            return NULL;
        }
        if (s->jobs[s->index[i] - 1].id == id) {
            return &s->jobs[s->index[i] - 1];
        }
    }
}

static void index_put(sim *s, size_t slot) {
    uint64_t id = s->jobs[slot].id;
    size_t i = (size_t)(id * 0x9E3779B97F4A7C15ULL) & (s->cap_index - 1);
    while (s->index[i] != 0) {
        i = (i + 1) & (s->cap_index - 1);
    }
    s->index[i] = slot + 1;
}

/* The record of job `id`, created (as `kind`) when it is new. Exits on out of memory. */
static jrec *track_job(sim *s, uint64_t id, job_kind kind) {
    jrec *j = find_job(s, id);
    if (j != NULL) {
        return j;
    }
    if (s->n_jobs == s->cap_jobs) {
        s->cap_jobs = s->cap_jobs ? s->cap_jobs * 2 : 1024;
        s->jobs = realloc(s->jobs, s->cap_jobs * sizeof *s->jobs);
    }
    if ((s->n_jobs + 1) * 2 > s->cap_index) {
        free(s->index);
        s->cap_index = s->cap_index ? s->cap_index * 2 : 4096;
        s->index = calloc(s->cap_index, sizeof *s->index);
        if (s->index != NULL) {
            for (size_t i = 0; i < s->n_jobs; i++) {
                index_put(s, i);
            }
        }
    }
    if (s->jobs == NULL || s->index == NULL) {
        fprintf(stderr, "aj-sim: out of memory\n");
        exit(2);
    }
    j = &s->jobs[s->n_jobs];
    memset(j, 0, sizeof *j);
    j->id = id;
    j->kind = kind;
    j->wf = -1;
    index_put(s, s->n_jobs++);
    return j;
}

/* ----------------------------------------------------------------------------------------- */
/* Workflows: the one registered type                                                        */

static int wf_step(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "A%.*s", (int)in.len, (const char *)in.data);
    return aj_step_set_result(ctx, buf, (size_t)n);
}

/* A step, an activity (job sim.act on queue acts), a timer and a signal; the result names what
 * each gave, so the simulator can tell it from what it did. */
static int sim_wf(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    char in[32];
    snprintf(in, sizeof in, "%.*s", (int)input.len, (const char *)input.data);
    aj_bytes a;
    AJ_TRY(aj_step(wf, "a", wf_step, NULL, input, &a));
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.queue = "acts";
    s.type = "sim.act";
    s.payload = in;
    s.payload_len = strlen(in);
    s.max_attempts = 2;
    s.lease_ms = SIM_LEASE_MS;
    aj_bytes act = {"FAILED", 6};
    int rc = aj_activity(wf, "act", &s, &act);
    if (rc == AJ_EFAILED) {
        act = (aj_bytes){"FAILED", 6};
    } else if (rc != 0) {
        return rc;
    }
    AJ_TRY(aj_sleep(wf, (int64_t)(atoi(in + 1) % 5 + 1) * 7000));
    aj_bytes sig;
    AJ_TRY(aj_wait_signal(wf, "go", -1, &sig));
    char res[200];
    int n = snprintf(res, sizeof res, "%.*s|%.*s|%.*s", (int)a.len, (const char *)a.data,
                     (int)act.len, (const char *)act.data, (int)sig.len, (const char *)sig.data);
    return aj_wf_set_result(wf, res, (size_t)n);
}

/* ----------------------------------------------------------------------------------------- */
/* Nodes                                                                                     */

static void node_open(sim *s, node *n) {
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.background = 0;
    o.clock = &n->clock;
    o.seed = s->seed * 0x100000001B3ULL + (uint64_t)(n - s->nodes) * 7919 + n->incarnation + 1;
    o.retention_ms = ENG_PERIOD_MAX;       /* the ledger checks every job to the end */
    o.idempotency_ttl_ms = ENG_PERIOD_MAX; /* keys hold for the whole run */
    int rc = aj__engine_open_kv(&n->e, s->kv, &o);
    if (rc == 0) {
        rc = aj_workflow_register(n->e, "simwf", sim_wf, s);
    }
    if (rc != 0) {
        /* Opening over a store that only ever had the engine's own writes must work. */
        violated(s, "node restarts", "opening node %d failed: %s", (int)(n - s->nodes),
                 aj_errmsg());
    }
    note(s, "open node=%d rc=%d", (int)(n - s->nodes), rc);
}

/* A process crash: the engine is abandoned as it is (nothing it holds in memory reaches the
 * store) and a new one opens over the same store; its claimed work is forgotten. */
static void node_crash(sim *s, node *n) {
    if (s->n_grave == s->cap_grave) {
        s->cap_grave = s->cap_grave ? s->cap_grave * 2 : 16;
        s->graveyard = realloc(s->graveyard, s->cap_grave * sizeof *s->graveyard);
        if (s->graveyard == NULL) {
            fprintf(stderr, "aj-sim: out of memory\n");
            exit(2);
        }
    }
    if (n->e != NULL) {
        s->graveyard[s->n_grave++] = n->e;
    }
    n->e = NULL;
    n->n_inflight = 0;
    n->incarnation++;
    node_open(s, n);
}

static node *pick_node(sim *s) {
    return &s->nodes[rnd(s, (uint64_t)s->n_nodes)];
}

/* ----------------------------------------------------------------------------------------- */
/* Reading the store                                                                          */

/* Disarms every store fault: the action's engine call has met it, and the checks that follow
 * must read the store as it is. */
static void faults_off(sim *s) {
    if (s->armed) {
        kv_mem_fail_at(s->kv, 0);
        kv_mem_inject_conflicts(s->kv, 0);
        kv_mem_set_full(s->kv, 0);
        kv_mem_lose_outcome_at(s->kv, 0);
        s->armed = 0;
    }
}

/* The job's state, or 0 when it does not exist; -1 on a read error. */
static int job_state(sim *s, node *n, uint64_t id, aj_job **out) {
    faults_off(s);
    aj_job *j = NULL;
    int rc = aj_job_get(n->e, id, &j);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        violated(s, "reads work", "reading job %" PRIu64 ": %s", id, aj_errmsg());
        return -1;
    }
    int st = (int)j->state;
    if (out != NULL) {
        *out = j;
    } else {
        aj_job_free(j);
    }
    return st;
}

/* ----------------------------------------------------------------------------------------- */
/* Actions                                                                                    */

static void act_submit(sim *s, node *n) {
    size_t count = 1 + rnd(s, 3);
    aj_job_spec specs[3];
    char payloads[3][40], keys[3][16];
    uint64_t after[3][2];
    int keyq[3] = {-1, -1, -1}, keyk[3] = {0, 0, 0};
    for (size_t i = 0; i < count; i++) {
        aj_job_spec *sp = &specs[i];
        aj_job_spec_init(sp);
        int q = (int)rnd(s, 2);
        sp->queue = q ? "q1" : "q0";
        sp->type = "sim.job";
        sp->priority = (uint32_t)rnd(s, 3) * AJ_PRIORITY_HIGH;
        sp->delay_ms = chance(s, 30) ? (int64_t)rnd(s, 60000) : 0;
        sp->max_attempts = 1 + (uint32_t)rnd(s, 4);
        sp->lease_ms = SIM_LEASE_MS;
        if (chance(s, 20)) {
            /* Every submit with one key in one queue is identical, so each must give the id
             * of the first one acknowledged. */
            keyq[i] = q;
            keyk[i] = (int)rnd(s, SIM_KEYS);
            snprintf(keys[i], sizeof keys[i], "k%d", keyk[i]);
            sp->idempotency_key = keys[i];
            snprintf(payloads[i], sizeof payloads[i], "key-%d-%d", q, keyk[i]);
            sp->delay_ms = 0;
        } else {
            snprintf(payloads[i], sizeof payloads[i], "p%" PRIu64, ++s->submits);
            if (s->n_jobs > 0 && chance(s, 30)) {
                size_t nd = 1 + rnd(s, 2);
                size_t got = 0;
                for (size_t d = 0; d < nd; d++) {
                    jrec *dep = &s->jobs[rnd(s, s->n_jobs)];
                    if (dep->acked && dep->kind == K_USER && (got == 0 || after[i][0] != dep->id)) {
                        after[i][got++] = dep->id;
                    }
                }
                sp->after = after[i];
                sp->n_after = got;
                sp->on_dep_failure = chance(s, 30) ? AJ_DEP_IGNORE : AJ_DEP_CASCADE;
            }
        }
        sp->payload = payloads[i];
        sp->payload_len = strlen(payloads[i]);
    }
    uint64_t ids[3] = {0, 0, 0};
    int rc;
    if (count == 1 || chance(s, 50)) {
        rc = 0;
        for (size_t i = 0; i < count && rc == 0; i++) {
            rc = aj_submit(n->e, &specs[i], &ids[i]);
            if (rc != 0) {
                count = i; /* the earlier ones were acknowledged */
            }
        }
    } else {
        rc = aj_submit_batch(n->e, specs, count, ids);
        if (rc != 0) {
            count = 0;
        }
    }
    if (rc == AJ_EAMBIGUOUS) {
        s->ambiguous_submits = 1;
    }
    note(s, "submit node=%d n=%zu rc=%d", (int)(n - s->nodes), count, rc);
    for (size_t i = 0; i < count; i++) {
        note(s, "  id=%" PRIu64 " q=%s pri=%u delay=%" PRId64 " max=%u deps=%zu key=%s", ids[i],
             specs[i].queue, specs[i].priority, specs[i].delay_ms, specs[i].max_attempts,
             specs[i].n_after, specs[i].idempotency_key ? specs[i].idempotency_key : "-");
        if (keyq[i] >= 0) {
            uint64_t *first = &s->keyed[keyq[i]][keyk[i]];
            if (*first != 0 && *first != ids[i]) {
                violated(s, "idempotency keys give one job",
                         "key %s in %s gave job %" PRIu64 " after job %" PRIu64, keys[i],
                         specs[i].queue, ids[i], *first);
            }
            if (*first != 0) {
                continue;
            }
            *first = ids[i];
        }
        jrec *j = track_job(s, ids[i], K_USER);
        j->acked = 1;
        j->n_deps = specs[i].n_after;
        memcpy(j->deps, after[i], j->n_deps * sizeof *j->deps);
        j->policy = specs[i].on_dep_failure;
    }
}

static void act_wf_start(sim *s, node *n) {
    if (s->n_wfs == SIM_WF_MAX) {
        return;
    }
    int w = s->n_wfs;
    char id[16];
    snprintf(id, sizeof id, "w%d", w);
    aj_wf_start_opts o = {.id = id};
    int rc = aj_wf_start(n->e, "simwf", id, strlen(id), &o, NULL);
    note(s, "wf_start node=%d id=%s rc=%d", (int)(n - s->nodes), id, rc);
    if (rc == 0 || rc == AJ_EAMBIGUOUS) {
        s->wfs[w].started = rc == 0;
        s->wfs[w].maybe = rc != 0;
        s->n_wfs++;
    } else if (rc == AJ_EEXISTS) {
        violated(s, "workflow starts", "%s already exists though its start was refused", id);
    }
}

static void send_signal(sim *s, node *n, int w) {
    char id[16], payload[16];
    snprintf(id, sizeof id, "w%d", w);
    snprintf(payload, sizeof payload, "s%d", w);
    int rc = aj_wf_signal(n->e, id, "go", payload, strlen(payload));
    note(s, "signal node=%d id=%s rc=%d", (int)(n - s->nodes), id, rc);
    if (rc == 0) {
        s->wfs[w].signaled = 1;
    }
}

static void act_signal(sim *s, node *n) {
    if (s->n_wfs > 0) {
        send_signal(s, n, (int)rnd(s, (uint64_t)s->n_wfs));
    }
}

static void act_sched_add(sim *s, node *n) {
    if (s->n_scheds == SIM_SCHED_MAX) {
        return;
    }
    char name[16];
    snprintf(name, sizeof name, "s%d", s->n_scheds);
    aj_schedule_spec sp;
    aj_schedule_spec_init(&sp);
    sp.name = name;
    sp.every_ms = (int64_t)(1 + rnd(s, 4)) * 30000;
    sp.catch_up = AJ_CATCH_UP_ALL;
    sp.catch_up_limit = AJ_SCHEDULE_CATCH_UP_LIMIT_MAX;
    sp.overlap = AJ_OVERLAP_ALLOW;
    sp.job.queue = "sq";
    sp.job.type = "sim.sched";
    sp.job.lease_ms = SIM_LEASE_MS;
    int rc = aj_schedule_add(n->e, &sp);
    note(s, "sched_add node=%d name=%s every=%" PRId64 " rc=%d", (int)(n - s->nodes), name,
         sp.every_ms, rc);
    if (rc == 0 || rc == AJ_EAMBIGUOUS) {
        s->sched_maybe[s->n_scheds++] = rc != 0;
    }
}

/* Checks what a claim returned against the ledger. */
static void check_claimed(sim *s, node *n, const aj_job *j) {
    job_kind kind = strcmp(j->type, WF_TASK_TYPE) == 0  ? K_TASK
                    : strcmp(j->type, "sim.act") == 0   ? K_ACT
                    : strcmp(j->type, "sim.sched") == 0 ? K_SCHED
                                                        : K_USER;
    jrec *r = find_job(s, j->id);
    if (r == NULL && kind == K_USER && !s->ambiguous_submits) {
        violated(s, "only submitted jobs run", "claimed job %" PRIu64 " nobody submitted", j->id);
        return;
    }
    if (r == NULL) {
        r = track_job(s, j->id, kind);
    }
    if (kind == K_ACT && r->wf < 0 && j->payload_len > 1) {
        r->wf = atoi((const char *)j->payload + 1);
        if (r->wf >= 0 && r->wf < s->n_wfs) {
            s->wfs[r->wf].act_id = j->id;
        }
    }
    if (j->state != AJ_STATE_RUNNING) {
        violated(s, "claims lease", "claimed job %" PRIu64 " is %s", j->id,
                 aj_state_name(j->state));
    }
    if (j->epoch <= r->max_epoch) {
        violated(s, "fencing epochs grow",
                 "job %" PRIu64 " claimed with epoch %" PRIu64 " after epoch %" PRIu64, j->id,
                 j->epoch, r->max_epoch);
    }
    r->max_epoch = j->epoch;
    if (r->completions > 0) {
        violated(s, "completed jobs stay completed", "job %" PRIu64 " claimed after completing",
                 j->id);
    }
    if (r->cancel_acked) {
        violated(s, "cancelled jobs stay cancelled", "job %" PRIu64 " claimed after cancel", j->id);
    }
    if (j->attempts < 1 || j->attempts > j->max_attempts) {
        violated(s, "attempts within max_attempts", "job %" PRIu64 " claimed at attempt %u of %u",
                 j->id, j->attempts, j->max_attempts);
    }
    for (size_t d = 0; d < r->n_deps && !r->redriven; d++) {
        /* A redrive makes a dead job ready whatever its dependencies, and a dependency redriven
         * after it let this job go runs again beside it. */
        jrec *dep = find_job(s, r->deps[d]);
        if (dep != NULL && dep->redriven) {
            continue;
        }
        int st = job_state(s, n, r->deps[d], NULL);
        int ok = st == AJ_STATE_COMPLETED ||
                 (r->policy == AJ_DEP_IGNORE && (st == AJ_STATE_DEAD || st == AJ_STATE_CANCELLED));
        if (!ok && st >= 0) {
            violated(s, "dependency order",
                     "job %" PRIu64 " ran while its dependency %" PRIu64 " is %s", j->id,
                     r->deps[d], st ? aj_state_name((aj_job_state)st) : "gone");
        }
    }
}

/* Runs a claimed workflow task on the node, the way a worker's task handler would. A fault may
 * be armed for it: a commit failing in the middle is a crash before the task committed. */
static int run_task(sim *s, node *n, const aj_job *j) {
    int armed = chance(s, 10);
    if (armed) {
        faults_off(s);
        kv_mem_fail_at(s->kv, 1 + rnd(s, 8));
        s->armed = 1;
    }
    int rc = aj__wf_task_run(n->e, j->payload, j->payload_len);
    armed |= s->armed;
    faults_off(s);
    note(s, "task node=%d job=%" PRIu64 " wf=%s armed=%d rc=%d", (int)(n - s->nodes), j->id,
         (const char *)j->payload, armed, rc);
    if (rc != 0 && !armed) {
        violated(s, "workflow tasks run", "task of %s failed without a fault: %s",
                 (const char *)j->payload, aj_errmsg());
    }
    return rc;
}

static void act_claim(sim *s, node *n) {
    size_t room = SIM_INFLIGHT_MAX - n->n_inflight;
    size_t max = 1 + rnd(s, 3);
    max = max < room ? max : room;
    aj_job **got = NULL;
    size_t k = 0;
    char worker[32];
    snprintf(worker, sizeof worker, "n%d.%u", (int)(n - s->nodes), n->incarnation);
    int rc = aj_claim(n->e, NULL, 0, worker, max, &got, &k);
    note(s, "claim node=%d max=%zu rc=%d n=%zu", (int)(n - s->nodes), max, rc, rc == 0 ? k : 0);
    if (rc != 0) {
        return;
    }
    for (size_t i = 0; i < k; i++) {
        const aj_job *j = got[i];
        note(s, "  job=%" PRIu64 " type=%s epoch=%" PRIu64 " attempt=%u", j->id, j->type, j->epoch,
             j->attempts);
        check_claimed(s, n, j);
        held h = {j->id, j->epoch, 0};
        if (strcmp(j->type, WF_TASK_TYPE) == 0) {
            int trc = run_task(s, n, j);
            if (trc != 0 && chance(s, 50)) {
                /* The task died with its process: the job waits for its lease to expire. */
                aj_job_list_free(got, k);
                node_crash(s, n);
                return;
            }
            h.task_ok = trc == 0;
        }
        n->inflight[n->n_inflight++] = h;
    }
    aj_job_list_free(got, k);
}

/* Checks a job after one of its outcomes was acknowledged. */
static void check_after(sim *s, node *n, jrec *r, uint64_t epoch, const char *what,
                        int want_state) {
    aj_job *j = NULL;
    int st = job_state(s, n, r->id, &j);
    if (st <= 0) {
        if (st == 0) {
            violated(s, "no acknowledged job lost", "job %" PRIu64 " gone after %s", r->id, what);
        }
        return;
    }
    if (epoch < r->max_epoch) {
        violated(s, "stale worker refused",
                 "%s of job %" PRIu64 " with epoch %" PRIu64
                 " accepted after a claim with epoch %" PRIu64,
                 what, r->id, epoch, r->max_epoch);
    }
    if (want_state != 0 && st != want_state) {
        violated(s, "outcomes recorded", "job %" PRIu64 " is %s after %s", r->id,
                 aj_state_name(j->state), what);
    }
    aj_job_free(j);
}

static void act_finish(sim *s, node *n) {
    if (n->n_inflight == 0) {
        return;
    }
    size_t at = rnd(s, n->n_inflight);
    held h = n->inflight[at];
    jrec *r = find_job(s, h.id);
    int what = (int)rnd(s, 100);
    int rc;
    const char *name;
    int keep = 0; /* the worker still holds it afterwards */
    if (r->kind == K_TASK) {
        what = h.task_ok ? 0 : 60;
    }
    if (what < 60) {
        char res[40];
        snprintf(res, sizeof res, "r:%" PRIu64, h.id);
        name = "complete";
        if (r->kind == K_ACT && r->wf >= 0) {
            snprintf(res, sizeof res, "r:w%d", r->wf);
        }
        rc = aj_complete(n->e, h.id, h.epoch, res, strlen(res));
        if (rc == 0) {
            r->completions++;
            if (r->completions > 1) {
                violated(s, "completed at most once", "job %" PRIu64 " completed twice", h.id);
            }
            if (r->cancel_acked) {
                violated(s, "cancelled jobs stay cancelled",
                         "job %" PRIu64 " completed after its cancel", h.id);
            }
            check_after(s, n, r, h.epoch, name, AJ_STATE_COMPLETED);
        }
    } else if (what < 80) {
        /* A task that failed is retried (the pool's task handler never fails one for good:
         * its job has a million attempts). */
        int permanent = r->kind != K_TASK && chance(s, 20);
        name = permanent ? "fail-permanent" : "fail";
        rc = aj_fail(n->e, h.id, h.epoch, "simulated failure", permanent);
        if (rc == 0) {
            if (r->completions > 0 || r->cancel_acked) {
                violated(s, "finished jobs stay finished", "job %" PRIu64 " failed after ending",
                         h.id);
            }
            check_after(s, n, r, h.epoch, name, permanent ? AJ_STATE_DEAD : 0);
        }
    } else if (what < 92) {
        name = "heartbeat";
        rc = aj_heartbeat(n->e, h.id, h.epoch);
        keep = rc == 0;
        if (rc == 0) {
            check_after(s, n, r, h.epoch, name, AJ_STATE_RUNNING);
        }
    } else {
        name = "release";
        rc = aj_release(n->e, h.id, h.epoch, (int64_t)rnd(s, 5000));
        if (rc == 0) {
            check_after(s, n, r, h.epoch, name, 0);
        }
    }
    note(s, "%s node=%d job=%" PRIu64 " epoch=%" PRIu64 " rc=%d", name, (int)(n - s->nodes), h.id,
         h.epoch, rc);
    if (rc == AJ_ESTALE || rc == AJ_ECANCELLED) {
        /* Refused as stale: right only if the lease really moved on. */
        aj_job *j = NULL;
        if (job_state(s, n, h.id, &j) > 0) {
            if (j->state == AJ_STATE_RUNNING && j->epoch == h.epoch) {
                violated(s, "current lease honoured",
                         "%s of job %" PRIu64 " refused as stale while its epoch %" PRIu64
                         " is current",
                         name, h.id, h.epoch);
            }
            aj_job_free(j);
        }
    } else if (rc != 0 && rc != AJ_EIO && rc != AJ_EFULL && rc != AJ_ERETRIES &&
               rc != AJ_EAMBIGUOUS) {
        violated(s, "outcomes recorded", "%s of job %" PRIu64 ": %s", name, h.id, aj_errmsg());
    }
    if (rc == AJ_EIO || rc == AJ_EFULL || rc == AJ_ERETRIES || rc == AJ_EAMBIGUOUS) {
        keep = 1; /* the worker tries again later (an ambiguous one may then be refused) */
    }
    if (!keep) {
        n->inflight[at] = n->inflight[--n->n_inflight];
    }
}

static void act_cancel_or_redrive(sim *s, node *n) {
    if (s->n_jobs == 0) {
        return;
    }
    jrec *r = &s->jobs[rnd(s, s->n_jobs)];
    if (r->kind != K_USER) {
        return;
    }
    if (chance(s, 50)) {
        int rc = aj_job_cancel(n->e, r->id);
        note(s, "cancel node=%d job=%" PRIu64 " rc=%d", (int)(n - s->nodes), r->id, rc);
        if (rc == 0) {
            if (r->completions > 0) {
                violated(s, "completed jobs stay completed",
                         "job %" PRIu64 " cancelled after completing", r->id);
            }
            r->cancel_acked = 1;
            check_after(s, n, r, r->max_epoch, "cancel", AJ_STATE_CANCELLED);
        }
    } else {
        int rc = aj_dlq_redrive(n->e, r->id);
        note(s, "redrive node=%d job=%" PRIu64 " rc=%d", (int)(n - s->nodes), r->id, rc);
        if (rc == 0 && (r->completions > 0 || r->cancel_acked)) {
            violated(s, "finished jobs stay finished", "job %" PRIu64 " redriven", r->id);
        }
        if (rc == 0 || rc == AJ_EAMBIGUOUS) {
            r->redriven = 1;
        }
    }
}

static void act_tick(sim *s, node *n) {
    int rc = aj_engine_tick(n->e);
    int64_t next = 0;
    int rc2 = aj_schedules_tick(n->e, &next);
    note(s, "tick node=%d rc=%d sched=%d", (int)(n - s->nodes), rc, rc2);
}

/* Everything stored that was not durable is lost, and every node dies with the machine. */
static void act_power_loss(sim *s) {
    kv_mem_crash(s->kv);
    note(s, "power_loss");
    for (int i = 0; i < s->n_nodes; i++) {
        node_crash(s, &s->nodes[i]);
    }
    /* Claims commit without a sync (KV_APPLIED): one lost here may hand out its epoch again. */
    for (size_t i = 0; i < s->n_jobs; i++) {
        s->jobs[i].max_epoch = 0;
    }
}

/* One work action, chosen by the workload. */
static void act_work(sim *s, node *n) {
    int pick = (int)rnd(s, 100);
    int submits = s->wl == WL_JOBS ? 25 : s->wl == WL_SCHEDULES ? 5 : s->wl == WL_MIXED ? 12 : 0;
    int wfs = s->wl == WL_WORKFLOWS ? 12 : s->wl == WL_MIXED ? 6 : 0;
    int scheds = s->wl == WL_SCHEDULES || s->wl == WL_MIXED ? 2 : 0;
    int to_submit = submits, to_start = to_submit + wfs, to_signal = to_start + wfs / 2;
    int to_sched = to_signal + scheds;
    int rest = 100 - to_sched; /* shared by claims, outcomes, ticks, cancels and redrives */
    if (pick < to_submit) {
        act_submit(s, n);
    } else if (pick < to_start) {
        act_wf_start(s, n);
    } else if (pick < to_signal) {
        act_signal(s, n);
    } else if (pick < to_sched) {
        act_sched_add(s, n);
    } else if (pick < to_sched + rest * 35 / 100) {
        act_claim(s, n);
    } else if (pick < to_sched + rest * 75 / 100) {
        act_finish(s, n);
    } else if (pick < to_sched + rest * 93 / 100) {
        act_tick(s, n);
    } else {
        act_cancel_or_redrive(s, n);
    }
}

/* A fault armed for one work action and disarmed after it, so that the checks never meet it. */
static void act_fault(sim *s, node *n) {
    int which = (int)rnd(s, 4);
    if (which == 0) {
        kv_mem_fail_at(s->kv, 1 + rnd(s, 6));
    } else if (which == 1) {
        kv_mem_inject_conflicts(s->kv, 1 + rnd(s, 5));
    } else if (which == 2) {
        kv_mem_set_full(s->kv, 1);
    } else {
        kv_mem_lose_outcome_at(s->kv, 1 + rnd(s, 3));
    }
    s->armed = 1;
    note(s, "fault node=%d kind=%d", (int)(n - s->nodes), which);
    act_work(s, n);
    faults_off(s);
}

static void step_once(sim *s) {
    node *n = pick_node(s);
    int pick = (int)rnd(s, 1000);
    if (n->partitioned_until > s->step && pick >= 20) {
        note(s, "unreachable node=%d", (int)(n - s->nodes));
        return;
    }
    if (pick < 10) {
        /* Healed after a while: its leases may have expired meanwhile. */
        n->partitioned_until = s->step + 1 + (long)rnd(s, 100);
        note(s, "partition node=%d until=%ld", (int)(n - s->nodes), n->partitioned_until);
    } else if (pick < 20) {
        note(s, "crash node=%d", (int)(n - s->nodes));
        node_crash(s, n);
    } else if (pick < 23) {
        act_power_loss(s);
    } else if (pick < 40) {
        n->skew_ms = (int64_t)rnd(s, 2 * SIM_SKEW_MAX_MS + 1) - SIM_SKEW_MAX_MS;
        n->drift_ppm = (int64_t)rnd(s, 2 * SIM_DRIFT_MAX_PPM + 1) - SIM_DRIFT_MAX_PPM;
        note(s, "skew node=%d skew=%" PRId64 " drift=%" PRId64, (int)(n - s->nodes), n->skew_ms,
             n->drift_ppm);
    } else if (pick < 100) {
        act_fault(s, n);
    } else if (pick < 250) {
        int64_t ms = chance(s, 10) ? (int64_t)rnd(s, 300000) : (int64_t)rnd(s, 5000);
        s->now += ms;
        note(s, "advance ms=%" PRId64, ms);
    } else {
        act_work(s, n);
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Invariants over the whole store                                                           */

static void check_report(void *ud, const char *line) {
    sim *s = ud;
    violated(s, "aj check clean", "%s", line);
}

static void check_store(sim *s) {
    node *n = &s->nodes[0];
    int rc = aj_check(n->e, check_report, s, NULL);
    if (rc != 0 && !s->failed) {
        violated(s, "aj check clean", "%s", aj_errmsg());
    }
}

/* Every acknowledged job exists, and every acknowledged completion and cancel stands. */
static void sweep_jobs(sim *s, int final) {
    node *n = &s->nodes[0];
    aj_job_filter f;
    memset(&f, 0, sizeof f);
    aj_job **all = NULL;
    size_t k = 0;
    int rc = aj_job_list(n->e, &f, &all, &k);
    if (rc != 0) {
        violated(s, "reads work", "listing jobs: %s", aj_errmsg());
        return;
    }
    uint64_t h = AJ_FNV_INIT;
    size_t at = 0;
    for (size_t i = 0; i < s->n_jobs; i++) {
        jrec *r = &s->jobs[i];
        if (!r->acked) {
            continue;
        }
        /* The list is in id order; the ledger is in the order ids were learnt. */
        aj_job *j = NULL;
        size_t lo = 0, hi = k;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (all[mid]->id < r->id) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (lo < k && all[lo]->id == r->id) {
            j = all[lo];
        }
        if (j == NULL) {
            violated(s, "no acknowledged job lost", "job %" PRIu64 " is gone", r->id);
            break;
        }
        if (r->completions > 0 && j->state != AJ_STATE_COMPLETED) {
            violated(s, "acknowledged completion kept", "job %" PRIu64 " completed but is %s",
                     r->id, aj_state_name(j->state));
        }
        if (r->cancel_acked && j->state != AJ_STATE_CANCELLED) {
            violated(s, "acknowledged cancel kept", "job %" PRIu64 " cancelled but is %s", r->id,
                     aj_state_name(j->state));
        }
        if (j->attempts > j->max_attempts) {
            violated(s, "attempts within max_attempts", "job %" PRIu64 " made %u attempts of %u",
                     r->id, j->attempts, j->max_attempts);
        }
        if (final && !aj_state_is_final(j->state)) {
            violated(s, "nothing stuck", "job %" PRIu64 " is still %s at the end", r->id,
                     aj_state_name(j->state));
        }
        if (final && j->state == AJ_STATE_DEAD && j->dead_reason == AJ_DEAD_DEPENDENCY &&
            r->policy != AJ_DEP_CASCADE) {
            violated(s, "dependency policy", "job %" PRIu64 " died of a dependency it ignores",
                     r->id);
        }
        h = aj__fnv1a(h, &j->state, sizeof j->state);
        at++;
    }
    s->hash = aj__fnv1a(s->hash, &h, sizeof h);
    aj_job_list_free(all, k);
}

/* ----------------------------------------------------------------------------------------- */
/* The end: faults off, time moves on, everything must finish                                 */

static int all_final(sim *s) {
    node *n = &s->nodes[0];
    for (size_t i = 0; i < s->n_jobs; i++) {
        int st = job_state(s, n, s->jobs[i].id, NULL);
        if (st > 0 && !aj_state_is_final((aj_job_state)st)) {
            return 0;
        }
    }
    for (int w = 0; w < s->n_wfs; w++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", w);
        aj_wf_info *info = NULL;
        if (aj_wf_get(n->e, id, &info) == 0) {
            int fin = aj_wf_state_is_final(info->state) || info->state == AJ_WF_PARKED;
            aj_wf_info_free(info);
            if (!fin) {
                return 0;
            }
        }
    }
    return 1;
}

static void drain(sim *s) {
    for (int i = 0; i < s->n_nodes; i++) {
        s->nodes[i].partitioned_until = 0;
        s->nodes[i].n_inflight = 0; /* their workers are gone: leases expire */
    }
    for (int k = 0; k < s->n_scheds; k++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", k);
        int rc = aj_schedule_pause(s->nodes[0].e, name);
        note(s, "pause %s rc=%d", name, rc);
    }
    node *n = &s->nodes[0];
    for (int round = 0; round < SIM_DRAIN_ROUNDS && !s->failed; round++) {
        s->now += 60000;
        for (int i = 0; i < s->n_nodes; i++) {
            act_tick(s, &s->nodes[i]);
        }
        for (int w = 0; w < s->n_wfs; w++) {
            if (!s->wfs[w].signaled) {
                send_signal(s, n, w);
            }
        }
        for (;;) {
            aj_job **got = NULL;
            size_t k = 0;
            int rc = aj_claim(n->e, NULL, 0, "drain", 16, &got, &k);
            if (rc != 0 || k == 0) {
                aj_job_list_free(got, k);
                break;
            }
            for (size_t i = 0; i < k; i++) {
                check_claimed(s, n, got[i]);
                int trc = 0;
                if (strcmp(got[i]->type, WF_TASK_TYPE) == 0) {
                    trc = aj__wf_task_run(n->e, got[i]->payload, got[i]->payload_len);
                    if (trc != 0) {
                        violated(s, "workflow tasks run", "task of %s: %s",
                                 (const char *)got[i]->payload, aj_errmsg());
                    }
                }
                jrec *r = find_job(s, got[i]->id);
                char res[40];
                snprintf(res, sizeof res, "r:%" PRIu64, got[i]->id);
                if (r->kind == K_ACT && r->wf >= 0) {
                    snprintf(res, sizeof res, "r:w%d", r->wf);
                }
                rc = aj_complete(n->e, got[i]->id, got[i]->epoch, res, strlen(res));
                note(s, "drain job=%" PRIu64 " rc=%d", got[i]->id, rc);
                if (rc != 0) {
                    violated(s, "outcomes recorded", "drain completing %" PRIu64 ": %s", got[i]->id,
                             aj_errmsg());
                } else if (++r->completions > 1) {
                    violated(s, "completed at most once", "job %" PRIu64 " completed twice",
                             got[i]->id);
                }
            }
            aj_job_list_free(got, k);
        }
        if (all_final(s)) {
            note(s, "drained rounds=%d", round);
            return;
        }
    }
}

static void check_workflows(sim *s) {
    node *n = &s->nodes[0];
    for (int w = 0; w < s->n_wfs && !s->failed; w++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", w);
        aj_wf_info *info = NULL;
        int rc = aj_wf_get(n->e, id, &info);
        if (rc == AJ_ENOTFOUND && s->wfs[w].maybe) {
            continue; /* its ambiguous start was not applied */
        }
        if (rc != 0) {
            violated(s, "no acknowledged workflow lost", "%s: %s", id, aj_errmsg());
            continue;
        }
        int act_ok =
            s->wfs[w].act_id != 0 && job_state(s, n, s->wfs[w].act_id, NULL) == AJ_STATE_COMPLETED;
        char want[64];
        snprintf(want, sizeof want, "Aw%d|%s%s|s%d", w, act_ok ? "r:" : "FAILED", act_ok ? id : "",
                 w);
        if (info->state != AJ_WF_COMPLETED) {
            violated(s, "nothing stuck", "workflow %s is %s at the end (%s)", id,
                     aj_wf_state_name(info->state), info->error ? info->error : "");
        } else if (info->result == NULL || strcmp(info->result, want) != 0) {
            violated(s, "workflow results follow their history",
                     "workflow %s ended with '%s', expected '%s'", id,
                     info->result ? (char *)info->result : "", want);
        }
        note(s, "wf %s state=%d", id, (int)info->state);
        aj_wf_info_free(info);
        char *report = NULL;
        rc = aj_wf_replay_check(n->e, id, sim_wf, s, &report);
        if (rc != 0) {
            violated(s, "workflow histories replay", "%s: %s", id, report ? report : aj_errmsg());
        }
        aj_free(report);
    }
}

/* Each schedule's fires are made once: no nominal time twice, and as many jobs as it counts. */
static void check_schedules(sim *s) {
    node *n = &s->nodes[0];
    aj_job_filter f;
    memset(&f, 0, sizeof f);
    f.type = "sim.sched";
    aj_job **all = NULL;
    size_t k = 0;
    if (aj_job_list(n->e, &f, &all, &k) != 0) {
        violated(s, "reads work", "listing schedule jobs: %s", aj_errmsg());
        return;
    }
    for (int sc = 0; sc < s->n_scheds; sc++) {
        char name[16], tag[32];
        snprintf(name, sizeof name, "s%d", sc);
        snprintf(tag, sizeof tag, "\"schedule\":\"%s\"", name);
        size_t count = 0;
        for (size_t i = 0; i < k; i++) {
            const char *m = all[i]->metadata;
            if (m == NULL || strstr(m, tag) == NULL) {
                continue;
            }
            count++;
            const char *at = strstr(m, "\"scheduled_at\":");
            for (size_t i2 = i + 1; at != NULL && i2 < k; i2++) {
                const char *m2 = all[i2]->metadata;
                const char *at2 = m2 ? strstr(m2, "\"scheduled_at\":") : NULL;
                if (at2 != NULL && strstr(m2, tag) != NULL && strcmp(at, at2) == 0) {
                    violated(s, "schedule fires once", "%s fired twice at %s", name, at);
                }
            }
        }
        aj_schedule *sch = NULL;
        int rc = aj_schedule_get(n->e, name, &sch);
        if (rc != 0 && !(rc == AJ_ENOTFOUND && s->sched_maybe[sc])) {
            violated(s, "no acknowledged schedule lost", "%s: %s", name, aj_errmsg());
        }
        if (rc == 0) {
            if (sch->jobs_created != count) {
                violated(s, "schedule fires once", "%s counts %" PRIu64 " jobs, %zu exist", name,
                         sch->jobs_created, count);
            }
            note(s, "schedule %s jobs=%zu", name, count);
            aj_schedule_free(sch);
        }
    }
    aj_job_list_free(all, k);
}

/* ----------------------------------------------------------------------------------------- */
/* Main                                                                                      */

static int usage(const char *why) {
    fprintf(stderr,
            "aj-sim: %s\n"
            "usage: aj-sim --seed N [--steps M] [--nodes K] "
            "[--workload jobs|workflows|schedules|mixed] [--trace]\n"
            "  Runs the engine deterministically from seed N for M steps (default %d) on K "
            "nodes (1..%d, default 3).\n"
            "  The last line of output is 'seed=N steps=M hash=HEX'; exit 0 when every "
            "invariant held, 1 when one broke.\n",
            why, SIM_STEPS_DEFAULT, SIM_NODES_MAX);
    return 2;
}

static int parse_u64(const char *text, uint64_t *out) {
    char *end = NULL;
    if (text == NULL || text[0] < '0' || text[0] > '9') {
        return -1;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    static sim s;
    uint64_t v = 0;
    int have_seed = 0;
    s.steps = SIM_STEPS_DEFAULT;
    s.n_nodes = 3;
    s.wl = WL_MIXED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--trace") == 0) {
            s.trace = 1;
            continue;
        }
        if (val == NULL) {
            return usage("an option is missing its value");
        }
        i++;
        if (strcmp(a, "--seed") == 0 && parse_u64(val, &v) == 0) {
            s.seed = v;
            have_seed = 1;
        } else if (strcmp(a, "--steps") == 0 && parse_u64(val, &v) == 0 && v <= SIM_STEPS_MAX) {
            s.steps = (long)v;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(val, &v) == 0 && v >= 1 &&
                   v <= SIM_NODES_MAX) {
            s.n_nodes = (int)v;
        } else if (strcmp(a, "--workload") == 0) {
            int found = 0;
            for (int w = 0; w < 4; w++) {
                if (strcmp(val, WL_NAMES[w]) == 0) {
                    s.wl = (workload)w;
                    found = 1;
                }
            }
            if (!found) {
                return usage("--workload must be jobs, workflows, schedules or mixed");
            }
        } else {
            fprintf(stderr, "aj-sim: bad option or value: %s %s\n", a, val);
            return usage("see usage");
        }
    }
    if (!have_seed) {
        return usage("--seed is required");
    }
    aj__rng_seed(&s.rng, s.seed);
    s.hash = AJ_FNV_INIT;
    s.now = SIM_START_MS;
    if (kv_mem_open(&s.kv) != 0) {
        fprintf(stderr, "aj-sim: cannot open a memory store: %s\n", aj_errmsg());
        return 2;
    }
    note(&s, "seed=%" PRIu64 " nodes=%d workload=%s", s.seed, s.n_nodes, WL_NAMES[s.wl]);
    for (int i = 0; i < s.n_nodes; i++) {
        node *n = &s.nodes[i];
        n->s = &s;
        n->clock.now_ms = node_now;
        n->clock.ud = n;
        node_open(&s, n);
    }
    long done = 0;
    for (s.step = 1; s.step <= s.steps && !s.failed; s.step++) {
        step_once(&s);
        if (!s.failed && s.step % SIM_SWEEP_EVERY == 0) {
            sweep_jobs(&s, 0);
        }
        if (!s.failed && s.step % SIM_CHECK_EVERY == 0) {
            check_store(&s);
        }
        done = s.step;
    }
    if (!s.failed) {
        s.step = done + 1; /* the end's checks count as one more step in reports */
        sweep_jobs(&s, 0);
        drain(&s);
        if (!s.failed) {
            sweep_jobs(&s, 1);
        }
        if (!s.failed) {
            check_workflows(&s);
        }
        if (!s.failed) {
            check_schedules(&s);
        }
        if (!s.failed) {
            check_store(&s);
        }
    }
    for (int i = 0; i < s.n_nodes; i++) {
        aj_engine_close(s.nodes[i].e);
    }
    for (size_t i = 0; i < s.n_grave; i++) {
        aj_engine_close(s.graveyard[i]);
    }
    kv_close(s.kv);
    free(s.graveyard);
    free(s.jobs);
    free(s.index);
    if (s.failed) {
        printf("%s\n", s.violation);
        printf("reproduce: aj-sim --seed %" PRIu64 " --steps %ld --nodes %d --workload %s\n",
               s.seed, s.steps, s.n_nodes, WL_NAMES[s.wl]);
        fprintf(stderr, "aj-sim: %s\n", s.violation);
    }
    printf("seed=%" PRIu64 " steps=%ld hash=%016" PRIx64 "\n", s.seed, done, s.hash);
    return s.failed ? 1 : 0;
}
