/*
 * job_api.c — the public job calls: submit (one or a batch), get, list, the lease calls
 * (heartbeat, complete, fail, release), cancel and dead-letter redrive/purge, claims (aj_claim,
 * and eng_claim for the worker pool), waiting for a job to end, backup and the integrity check.
 * Each is one core transition inside eng_run() (engine.c), so a conflict retries it whole.
 *
 * Durability: submits commit with KV_SYNC (acknowledged only after fsync in the default mode);
 * the synchronous lease calls (aj_complete, aj_fail, ...) too. Only the worker pool hands its
 * completions to the committer without waiting (worker.c). Runtime layer, over core/jobs.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/activity_cache.h"
#include "core/blob.h"
#include "core/deps.h"
#include "core/keys.h"
#include "core/queue_ctl.h"
#include "core/schedule.h"
#include "runtime/engine.h"
#include "runtime/eng_wait.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Submit                                                                                    */

typedef struct submit_ctx {
    const aj_job_spec *specs;
    size_t n;
    uint64_t first_id;
    uint64_t *out_ids;
    blob_hint *hints; /* hashes of the large payloads (owned) */
    size_t n_hints;
} submit_ctx;

static int submit_txn(kv_txn *t, const job_env *env0, void *ud) {
    submit_ctx *s = ud;
    job_env with_hints = job_env_hinted(env0, s->hints, s->n_hints);
    const job_env *env = &with_hints;
    for (size_t i = 0; i < s->n; i++) {
        int created;
        const aj_job_spec *sp = &s->specs[i];
        int rc = job_submit(t, env, sp, s->first_id + i, &s->out_ids[i], &created);
        if (rc == 0 && created && sp->n_after > 0) {
            rc = deps_attach(t, env, s->out_ids[i], sp->on_dep_failure, sp->after, sp->n_after, 0,
                             0);
        }
        if (rc != 0) {
            if (s->n > 1) {
                return aj__err_wrap(rc, "job %zu of the batch", i + 1);
            }
            return rc;
        }
    }
    return 0;
}

/* Hashes the large payloads of a batch (and stages them when they are too large to write with
 * the jobs). */
static int submit_prepare(aj_engine *e, const aj_job_spec *specs, size_t n, blob_hint **hints,
                          size_t *n_hints) {
    size_t threshold = e->opts.blob_threshold;
    size_t big = 0;
    for (size_t i = 0; i < n; i++) {
        big += specs[i].payload_len > threshold;
    }
    *hints = NULL;
    *n_hints = 0;
    if (big == 0) {
        return 0;
    }
    aj_slice *data = aj__malloc(big * sizeof *data);
    if (data == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory submitting %zu jobs", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (specs[i].payload_len > threshold) {
            data[k].p = specs[i].payload;
            data[k++].n = specs[i].payload_len;
        }
    }
    int rc = eng_blob_prepare(e, data, k, hints, n_hints);
    aj__free(data);
    return rc;
}

int aj_submit_batch(aj_engine *e, const aj_job_spec *specs, size_t n, uint64_t *out_ids) {
    if (n == 0 || n > AJ_BATCH_MAX) {
        return aj__err(AJ_EINVAL, "a batch holds 1 to %d jobs", AJ_BATCH_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = job_spec_check(&specs[i]);
        if (rc != 0) {
            return n > 1 ? aj__err_wrap(rc, "job %zu of the batch", i + 1) : rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *q = specs[i].queue ? specs[i].queue : "default";
        if (i > 0) {
            const char *prev = specs[i - 1].queue ? specs[i - 1].queue : "default";
            if (strcmp(prev, q) == 0) {
                continue;
            }
        }
        int rc = eng_note_queue(e, q);
        if (rc != 0) {
            return rc;
        }
    }
    uint64_t *ids = aj__malloc(n * sizeof *ids);
    if (ids == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory submitting %zu jobs", n);
    }
    submit_ctx s = {specs, n, 0, ids, NULL, 0};
    int rc = submit_prepare(e, specs, n, &s.hints, &s.n_hints);
    if (rc == 0) {
        rc = eng_ids(e, n, &s.first_id);
    }
    if (rc == 0) {
        rc = eng_run(e, submit_txn, &s, KV_SYNC);
    }
    if (rc == 0) {
        memcpy(out_ids, ids, n * sizeof *ids);
    } else if (s.hints != NULL) {
        eng_blob_unstage(e, s.hints, s.n_hints); /* e.g. a full disk at the job's commit */
    }
    aj__free(s.hints);
    aj__free(ids);
    return rc;
}

int aj_submit(aj_engine *e, const aj_job_spec *spec, uint64_t *out_id) {
    return aj_submit_batch(e, spec, 1, out_id);
}

/* ----------------------------------------------------------------------------------------- */
/* Reads                                                                                     */

typedef struct get_ctx {
    uint64_t id;
    aj_job *job;
} get_ctx;

static int get_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    get_ctx *g = ud;
    job_rec r;
    int rc = job_read(t, g->id, &r);
    if (rc != 0) {
        return rc;
    }
    aj_job_free(g->job);
    g->job = NULL;
    rc = blob_job_public(t, &r, &g->job);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_job_get(aj_engine *e, uint64_t id, aj_job **out) {
    get_ctx g = {id, NULL};
    int rc = eng_run(e, get_txn, &g, KV_SYNC);
    if (rc == 0) {
        *out = g.job;
    } else {
        aj_job_free(g.job);
    }
    return rc;
}

typedef struct list_ctx {
    kv_txn *t;
    const aj_job_filter *f;
    aj_job **v;
    size_t n, cap;
} list_ctx;

static void list_reset(list_ctx *l) {
    for (size_t i = 0; i < l->n; i++) {
        aj_job_free(l->v[i]);
    }
    l->n = 0;
}

static int list_add(void *ud, const job_rec *r) {
    list_ctx *l = ud;
    aj_job **nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing jobs");
    }
    l->v = nv;
    aj_job *j = NULL;
    int rc = blob_job_public(l->t, r, &j);
    if (rc != 0) {
        return rc;
    }
    l->v[l->n++] = j;
    return 0;
}

static int list_txn(kv_txn *t, const job_env *env, void *ud) {
    list_ctx *l = ud;
    list_reset(l);
    l->t = t;
    int rc = job_list(t, env, l->f, list_add, l);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_job_list(aj_engine *e, const aj_job_filter *filter, aj_job ***out, size_t *n) {
    aj_job_filter none;
    memset(&none, 0, sizeof none);
    list_ctx l = {NULL, filter ? filter : &none, NULL, 0, 0};
    int rc = eng_run(e, list_txn, &l, KV_SYNC);
    if (rc != 0) {
        aj_job_list_free(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Single-job transitions                                                                     */

typedef enum op_kind {
    OP_HEARTBEAT,
    OP_COMPLETE,
    OP_FAIL,
    OP_RELEASE,
    OP_CANCEL,
    OP_REDRIVE,
    OP_PURGE,
} op_kind;

typedef struct op_ctx {
    op_kind kind;
    uint64_t id;
    uint64_t epoch;
    job_failure how;
    const char *error;
    aj_slice result;
    int64_t delay_ms;
    blob_hint *hints; /* the result's hash when it is large */
    size_t n_hints;
} op_ctx;

static int op_txn(kv_txn *t, const job_env *env0, void *ud) {
    op_ctx *o = ud;
    job_env with_hints = job_env_hinted(env0, o->hints, o->n_hints);
    const job_env *env = &with_hints;
    switch (o->kind) {
    case OP_HEARTBEAT:
        return job_heartbeat(t, env, o->id, o->epoch);
    case OP_COMPLETE:
        return job_complete(t, env, o->id, o->epoch, o->result);
    case OP_FAIL:
        return job_fail(t, env, o->id, o->epoch, o->how, o->error, o->result);
    case OP_RELEASE:
        return job_release(t, env, o->id, o->epoch, o->delay_ms);
    case OP_CANCEL:
        return job_cancel(t, env, o->id);
    case OP_REDRIVE:
        return job_redrive(t, env, o->id);
    case OP_PURGE:
        return job_purge(t, env, o->id);
    }
    return aj__err(AJ_EINTERNAL, "unknown operation");
}

static int run_op(aj_engine *e, op_ctx *o) {
    int rc = 0;
    if (o->result.n > e->opts.blob_threshold) {
        rc = eng_blob_prepare(e, &o->result, 1, &o->hints, &o->n_hints);
    }
    if (rc == 0) {
        rc = eng_run(e, op_txn, o, KV_SYNC);
    }
    aj__free(o->hints);
    return rc;
}

int aj_heartbeat(aj_engine *e, uint64_t id, uint64_t epoch) {
    op_ctx o = {.kind = OP_HEARTBEAT, .id = id, .epoch = epoch};
    return run_op(e, &o);
}

int aj_complete(aj_engine *e, uint64_t id, uint64_t epoch, const void *result, size_t len) {
    op_ctx o = {.kind = OP_COMPLETE, .id = id, .epoch = epoch};
    o.result.p = len ? result : (const void *)"";
    o.result.n = len;
    return run_op(e, &o);
}

int aj_fail(aj_engine *e, uint64_t id, uint64_t epoch, const char *error, int permanent) {
    op_ctx o = {.kind = OP_FAIL, .id = id, .epoch = epoch};
    o.how = permanent ? JOB_FAIL_PERMANENT : JOB_FAIL_RETRYABLE;
    o.error = error;
    return run_op(e, &o);
}

int aj_fail_timeout(aj_engine *e, uint64_t id, uint64_t epoch, const char *error) {
    op_ctx o = {.kind = OP_FAIL, .id = id, .epoch = epoch, .how = JOB_FAIL_TIMEOUT};
    o.error = error;
    return run_op(e, &o);
}

int aj_release(aj_engine *e, uint64_t id, uint64_t epoch, int64_t delay_ms) {
    op_ctx o = {.kind = OP_RELEASE, .id = id, .epoch = epoch, .delay_ms = delay_ms};
    return run_op(e, &o);
}

int aj_job_cancel(aj_engine *e, uint64_t id) {
    op_ctx o = {.kind = OP_CANCEL, .id = id};
    return run_op(e, &o);
}

int aj_dlq_redrive(aj_engine *e, uint64_t id) {
    op_ctx o = {.kind = OP_REDRIVE, .id = id};
    return run_op(e, &o);
}

int aj_dlq_purge(aj_engine *e, uint64_t id) {
    op_ctx o = {.kind = OP_PURGE, .id = id};
    return run_op(e, &o);
}

/* ----------------------------------------------------------------------------------------- */
/* Claims                                                                                     */

typedef struct claim_ctx {
    aj_engine *e;
    int only_handled; /* the worker pool: claim only types with a handler here */
    const char *const *queues;
    size_t n_queues;
    const char *worker;
    const job_claim_who *who;
    size_t max;
    aj_job **jobs;
    int64_t *latency;
    size_t n;
    kv_txn *t;
} claim_ctx;

static int claim_add(void *ud, const job_rec *r, int64_t latency_us) {
    claim_ctx *c = ud;
    aj_job *j = NULL;
    int rc = blob_job_public(c->t, r, &j);
    if (rc != 0) {
        return rc;
    }
    c->latency[c->n] = latency_us;
    c->jobs[c->n++] = j;
    return 0;
}

static int has_handler(void *ud, aj_slice type) {
    claim_ctx *c = ud;
    eng_handler h;
    return eng_handler_find(c->e, type, &h) == 0;
}

static int claim_txn(kv_txn *t, const job_env *env, void *ud) {
    claim_ctx *c = ud;
    for (size_t i = 0; i < c->n; i++) {
        aj_job_free(c->jobs[i]);
    }
    c->n = 0;
    c->t = t;
    size_t got;
    int rc = job_claim(t, env, c->queues, c->n_queues, c->worker, c->who, c->max,
                       c->only_handled ? has_handler : NULL, claim_add, c, &got);
    if (rc == 0 && got == 0) {
        return ENG_READ_ONLY;
    }
    return rc;
}

typedef struct queue_names {
    char **v;
    size_t n, cap;
    int rc;
} queue_names;

static int queue_name_add(void *ud, const char *queue) {
    queue_names *q = ud;
    char **nv = aj__grow(q->v, &q->cap, q->n, sizeof *nv);
    if (nv == NULL) {
        q->rc = aj__err(AJ_ENOMEM, "out of memory listing queues");
        return 1;
    }
    q->v = nv;
    char *copy = aj__strdup(queue);
    if (copy == NULL) {
        q->rc = aj__err(AJ_ENOMEM, "out of memory listing queues");
        return 1;
    }
    q->v[q->n++] = copy;
    return 0;
}

static int queues_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    queue_names *q = ud;
    for (size_t i = 0; i < q->n; i++) {
        aj__free(q->v[i]);
    }
    q->n = 0;
    q->rc = 0;
    int rc = job_list_queues(t, queue_name_add, q);
    if (rc == 0) {
        rc = q->rc;
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

void eng_queue_names_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        aj__free(names[i]);
    }
    aj__free(names);
}

int eng_queue_names(aj_engine *e, char ***out, size_t *n) {
    queue_names q = {NULL, 0, 0, 0};
    int rc = eng_run(e, queues_txn, &q, KV_SYNC);
    if (rc != 0) {
        eng_queue_names_free(q.v, q.n);
        return rc;
    }
    *out = q.v;
    *n = q.n;
    return 0;
}

/* Claims into caller arrays of `max` entries. */
int eng_claim(aj_engine *e, const char *const *queues, size_t n_queues, const char *worker,
              const job_claim_who *who, size_t max, int only_handled, aj_job **jobs,
              int64_t *latency, size_t *n) {
    claim_ctx c = {e, only_handled, queues, n_queues, worker, who, max, jobs, latency, 0, NULL};
    /* A claim need not be durable before the job runs: it is validated and visible to every
     * process when eng_run returns, and the only way to lose it — a power loss — also stops the
     * worker, leaving the job ready to run again (at least once). Its completion is durable and
     * commits after it, so a completed job never loses its claim. */
    int rc = eng_run(e, claim_txn, &c, KV_APPLIED);
    if (rc != 0) {
        for (size_t i = 0; i < c.n; i++) {
            aj_job_free(jobs[i]);
        }
        return rc;
    }
    for (size_t i = 0; i < c.n; i++) {
        eng_count_latency(e, latency[i]);
    }
    *n = c.n;
    return 0;
}

int aj_claim(aj_engine *e, const char *const *queues, size_t n_queues, const char *worker,
             size_t max, aj_job ***out, size_t *n) {
    if (worker == NULL || worker[0] == '\0') {
        return aj__err(AJ_EINVAL, "a claim needs a worker id");
    }
    if (max == 0) {
        *out = NULL;
        *n = 0;
        return 0;
    }
    char **all = NULL;
    size_t n_all = 0;
    int rc = 0;
    if (queues == NULL || n_queues == 0) {
        rc = eng_queue_names(e, &all, &n_all);
        if (rc != 0) {
            return rc;
        }
        queues = (const char *const *)all;
        n_queues = n_all;
    }
    aj_job **jobs = aj__calloc(max, sizeof *jobs);
    int64_t *latency = aj__calloc(max, sizeof *latency);
    if (jobs == NULL || latency == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory claiming jobs");
    }
    size_t got = 0;
    if (rc == 0 && n_queues > 0) {
        rc = eng_claim(e, queues, n_queues, worker, NULL, max, 0, jobs, latency, &got);
    }
    aj__free(latency);
    eng_queue_names_free(all, n_all);
    if (rc != 0) {
        aj__free(jobs);
        return rc;
    }
    *out = jobs;
    *n = got;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Waiting                                                                                    */

typedef struct job_wait_ctx {
    uint64_t id;
    aj_job_state state; /* as last read */
} job_wait_ctx;

static int job_wait_check(aj_engine *e, void *ud, eng_wait_step *step) {
    job_wait_ctx *w = ud;
    aj_job *j;
    int rc = aj_job_get(e, w->id, &j);
    if (rc != 0) {
        return rc;
    }
    w->state = j->state;
    aj_job_free(j);
    *step = aj_state_is_final(w->state) ? ENG_WAIT_DONE : ENG_WAIT_MORE;
    return 0;
}

int aj_job_wait(aj_engine *e, uint64_t id, int64_t timeout_ms, aj_job_state *out_state) {
    job_wait_ctx w = {id, AJ_STATE_READY};
    int rc = eng_wait_until(e, timeout_ms, job_wait_check, &w);
    if (rc == ENG_WAIT_TIMEOUT) {
        return aj__err(AJ_ETIMEDOUT, "job %llu is still %s", (unsigned long long)id,
                       aj_state_name(w.state));
    }
    if (rc == 0 && out_state != NULL) {
        *out_state = w.state;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Maintenance                                                                                */

int aj_backup(aj_engine *e, const char *path) {
    if (path == NULL || path[0] == '\0') {
        return aj__err(AJ_EINVAL, "backup needs a path");
    }
    if (access(path, F_OK) == 0) {
        return aj__err(AJ_EEXISTS, "backup target '%s' already exists", path);
    }
    return kv_backup(e->kv, path);
}

typedef struct check_ctx {
    void (*report)(void *ud, const char *line);
    void *ud;
    uint64_t records, problems;
} check_ctx;

static int check_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    check_ctx *c = ud;
    int rc = job_check(t, c->report, c->ud, &c->records, &c->problems);
    if (rc == 0) {
        rc = sched_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    if (rc == 0) {
        rc = qctl_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    if (rc == 0) {
        rc = act_cache_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    if (rc == 0) {
        rc = deps_check(t, c->report, c->ud, &c->records, &c->problems);
    }
    uint64_t blob_problems = 0;
    if (rc == 0) {
        rc = blob_check(t, c->report, c->ud, &blob_problems);
        c->problems += blob_problems;
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_check(aj_engine *e, void (*report)(void *ud, const char *line), void *ud,
             uint64_t *out_records) {
    check_ctx c = {report, ud, 0, 0};
    int rc = eng_run(e, check_txn, &c, KV_SYNC);
    if (rc == AJ_ECORRUPT) {
        /* The store itself could not be read (SQLite: "database disk image is malformed"):
         * not a list of problems, which AJ_ECORRUPT means here. */
        char msg[AJ__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        return aj__err(AJ_EIO, "the store cannot be read: %s", msg);
    }
    if (rc != 0) {
        return rc;
    }
    if (out_records != NULL) {
        *out_records = c.records;
    }
    if (c.problems > 0) {
        return aj__err(AJ_ECORRUPT, "%llu problems found in %llu job records",
                       (unsigned long long)c.problems, (unsigned long long)c.records);
    }
    return 0;
}
