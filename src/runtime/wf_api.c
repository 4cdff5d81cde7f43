/*
 * wf_api.c — the public workflow calls: registering types, the task handler that the worker
 * pool runs for them, and start, signal, cancel, terminate, resume, query, get, list, wait and
 * history. Each call is one core transition inside eng_run() (see engine.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/history.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/eng_wait.h"
#include "runtime/sm_def.h"
#include "runtime/wf_exec.h"
#include "util/err.h"
#include "util/mem.h"

/* How long aj_wf_query waits for a worker to answer a routed query. */
#define WF_QUERY_TIMEOUT_MS (10 * AJ_SECOND)

int eng_wf_find(aj_engine *e, aj_slice type, eng_wf_type *out) {
    int rc = AJ_ENOTFOUND;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_wf_types; i++) {
        if (aj__slice_eq(type, e->wf_types[i].type)) {
            *out = e->wf_types[i];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Tasks                                                                                      */

typedef struct task_ctx {
    aj_engine *e;
    aj_slice id;
    char *parked; /* owned */
    aj_wf *wf;    /* the last attempt's context, cached once its transaction committed */
} task_ctx;

static int task_txn(kv_txn *t, const job_env *env, void *ud) {
    task_ctx *c = ud;
    aj__free(c->parked);
    c->parked = NULL;
    aj__wf_free(c->wf);
    c->wf = NULL;
    wf_rec w;
    int rc = wf_read(t, c->id, &w);
    if (rc == AJ_ENOTFOUND) {
        return ENG_READ_ONLY; /* collected, or never existed: nothing to run */
    }
    if (rc != 0) {
        return rc;
    }
    if (aj_wf_state_is_final(w.state) || w.state == AJ_WF_PARKED) {
        return ENG_READ_ONLY;
    }
    eng_wf_type h;
    if (eng_wf_find(c->e, w.type, &h) != 0) {
        return aj__err(AJ_ENOTFOUND, "workflow type '%.*s' is not registered in this process",
                       (int)w.type.n, (const char *)w.type.p);
    }
    return aj__wf_advance(c->e, t, env, c->id, h.fn, h.ud, &c->parked, &c->wf);
}

typedef struct park_ctx {
    aj_slice id;
    const char *msg;
} park_ctx;

static int park_txn(kv_txn *t, const job_env *env, void *ud) {
    park_ctx *p = ud;
    return aj__wf_park(t, env, p->id, p->msg);
}

/* Runs one workflow task (the run `id`) on the calling thread: the task handler's body, and what
 * the simulator (tests/sim) calls for a task job it claimed itself, so both run the same code. */
int aj__wf_task_run(aj_engine *e, const void *id, size_t len) {
    task_ctx c = {e, {id, len}, NULL, NULL};
    /* The task runs the workflow's code, inline steps included: ids that ran out inside it
     * would repeat them, so the block is topped up first. */
    int rc = eng_ids_ensure(e, ENG_TASK_IDS);
    if (rc == 0) {
        rc = eng_run(e, task_txn, &c, KV_SYNC);
    }
    if (rc == 0 && c.wf != NULL) {
        aj__wf_task_done(e, c.wf);
        c.wf = NULL;
    }
    aj__wf_free(c.wf);
    if (rc == AJ_ESTATE && c.parked != NULL) {
        park_ctx p = {c.id, c.parked};
        char q[AJ_NAME_MAX * 2 + 8];
        aj__log(&e->log, AJ_LOG_WARN, "msg=\"workflow parked\" workflow=%s reason=%s",
                aj__logq(q, sizeof q, (const char *)id), c.parked);
        rc = eng_run(e, park_txn, &p, KV_SYNC);
        if (rc == 0) {
            aj_counters d;
            memset(&d, 0, sizeof d);
            d.wf_parked = 1;
            eng_count(e, &d);
        }
    }
    aj__free(c.parked);
    return rc;
}

/* The handler of workflow task jobs. */
static int task_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    int rc = aj__wf_task_run(ud, job->payload, job->payload_len);
    if (rc != 0) {
        return aj_ctx_fail(ctx, aj_errmsg(), 0);
    }
    return 0;
}

/* A query routed to this worker: payload "NAME\nID"; the result is the answer. */
static int query_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    aj_engine *e = ud;
    const char *nl = memchr(job->payload, '\n', job->payload_len);
    if (nl == NULL) {
        return aj_ctx_fail(ctx, "malformed query job", 1);
    }
    char name[AJ_NAME_MAX + 1];
    size_t nlen = (size_t)(nl - (const char *)job->payload);
    if (nlen > AJ_NAME_MAX) {
        return aj_ctx_fail(ctx, "malformed query job", 1);
    }
    memcpy(name, job->payload, nlen);
    name[nlen] = '\0';
    char *out = NULL;
    size_t len = 0;
    int rc = aj_wf_query(e, nl + 1, name, &out, &len);
    if (rc != 0) {
        return aj_ctx_fail(ctx, aj_errmsg(), 1);
    }
    rc = aj_ctx_set_result(ctx, out, len);
    free(out);
    return rc;
}

int aj_workflow_register(aj_engine *e, const char *type, aj_workflow_fn fn, void *ud) {
    int rc = wf_type_check(type);
    if (rc != 0) {
        return rc;
    }
    if (fn == NULL) {
        return aj__err(AJ_EINVAL, "workflow function for '%s' is NULL", type);
    }
    if ((rc = aj_register(e, WF_TASK_TYPE, task_handler, e)) != 0 ||
        (rc = aj_register(e, WF_QUERY_TYPE, query_handler, e)) != 0) {
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_wf_types; i++) {
        if (strcmp(e->wf_types[i].type, type) == 0) {
            e->wf_types[i].fn = fn;
            e->wf_types[i].ud = ud;
            pthread_mutex_unlock(&e->mu);
            return 0;
        }
    }
    if (e->n_wf_types == ENG_HANDLERS_MAX) {
        pthread_mutex_unlock(&e->mu);
        return aj__err(AJ_ETOOBIG, "at most %d workflow types can be registered", ENG_HANDLERS_MAX);
    }
    char *copy = aj__strdup(type);
    if (copy == NULL) {
        pthread_mutex_unlock(&e->mu);
        return aj__err(AJ_ENOMEM, "out of memory registering a workflow type");
    }
    e->wf_types[e->n_wf_types++] = (eng_wf_type){copy, fn, ud};
    pthread_mutex_unlock(&e->mu);
    /* Workers serving "every queue" find the task queue through the registry. */
    char queue[AJ_NAME_MAX + 1];
    snprintf(queue, sizeof queue, "%s%s", WF_QUEUE_PREFIX, type);
    return eng_note_queue(e, queue);
}

/* ----------------------------------------------------------------------------------------- */
/* Start, signal, cancel, terminate, resume                                                   */

typedef struct start_ctx {
    const char *type;
    const char *id;
    aj_slice input;
    const aj_wf_start_opts *opts;
    const char *signal; /* signal-with-start: the signal to send after starting if needed */
    aj_slice payload;
} start_ctx;

static int start_txn(kv_txn *t, const job_env *env, void *ud) {
    start_ctx *s = ud;
    if (s->signal != NULL) {
        wf_rec w;
        int rc = wf_read(t, aj__slice_str(s->id), &w);
        if (rc != 0 && rc != AJ_ENOTFOUND) {
            return rc;
        }
        if (rc == AJ_ENOTFOUND || aj_wf_state_is_final(w.state)) {
            aj_wf_start_opts o = {s->id, 1, 0};
            if ((rc = wf_start(t, env, s->type, s->id, s->input, &o)) != 0) {
                return rc;
            }
        }
        return wf_signal(t, env, s->id, s->signal, s->payload);
    }
    return wf_start(t, env, s->type, s->id, s->input, s->opts);
}

static char *new_id(aj_engine *e) {
    uint64_t a = eng_rand(e), b = eng_rand(e);
    char *id = aj__malloc(37);
    if (id != NULL) {
        snprintf(id, 37, "%08llx-%04llx-4%03llx-%04llx-%012llx", (unsigned long long)(a >> 32),
                 (unsigned long long)((a >> 16) & 0xffff), (unsigned long long)(a & 0xfff),
                 (unsigned long long)(((b >> 48) & 0x3fff) | 0x8000),
                 (unsigned long long)(b & 0xffffffffffffULL));
    }
    return id;
}

int aj_wf_start(aj_engine *e, const char *type, const void *input, size_t len,
                const aj_wf_start_opts *opts, char **out_id) {
    if (type == NULL) {
        return aj__err(AJ_EINVAL, "a workflow needs a type");
    }
    if (strcmp(type, "saga") == 0) {
        /* The built-in saga interprets its input: refuse a bad one before anything is stored. */
        int rc = aj__saga_builtin_validate(input ? input : "", len);
        if (rc != 0) {
            return rc;
        }
    }
    if (strcmp(type, "statemachine") == 0) {
        int rc = aj__sm_validate(input ? input : "", len); /* the same for the state machine */
        if (rc != 0) {
            return rc;
        }
    }
    char *id = opts && opts->id ? aj__strdup(opts->id) : new_id(e);
    if (id == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory starting a workflow");
    }
    start_ctx s = {type, id, {input, len}, opts, NULL, {NULL, 0}};
    if (input == NULL) {
        s.input = aj__slice_str("");
    }
    int rc = eng_run(e, start_txn, &s, KV_SYNC);
    if (rc == 0 && out_id != NULL) {
        *out_id = id;
    } else {
        aj__free(id);
    }
    return rc;
}

int aj_wf_signal_with_start(aj_engine *e, const char *type, const char *id, const void *input,
                            size_t input_len, const char *name, const void *payload, size_t len) {
    if (type == NULL || id == NULL || name == NULL) {
        return aj__err(AJ_EINVAL, "signal-with-start needs a type, an id and a signal name");
    }
    start_ctx s = {type, id,   {input ? input : "", input_len},
                   NULL, name, {payload ? payload : "", len}};
    return eng_run(e, start_txn, &s, KV_SYNC);
}

/* The operations on a running workflow that run_op carries out. */
typedef enum wf_op_kind { WF_OP_SIGNAL, WF_OP_CANCEL, WF_OP_TERMINATE, WF_OP_RESUME } wf_op_kind;

typedef struct op_ctx {
    wf_op_kind kind;
    const char *id;
    const char *name;
    aj_slice payload;
} op_ctx;

static int op_txn(kv_txn *t, const job_env *env, void *ud) {
    op_ctx *o = ud;
    switch (o->kind) {
    case WF_OP_SIGNAL:
        return wf_signal(t, env, o->id, o->name, o->payload);
    case WF_OP_CANCEL:
        return wf_cancel(t, env, o->id);
    case WF_OP_TERMINATE:
        return wf_terminate(t, env, o->id, o->name);
    case WF_OP_RESUME:
    default:
        return wf_resume(t, env, o->id);
    }
}

static int run_op(aj_engine *e, wf_op_kind kind, const char *id, const char *name,
                  const void *payload, size_t len) {
    if (id == NULL) {
        return aj__err(AJ_EINVAL, "a workflow id is needed");
    }
    int rc = wf_id_check(id);
    if (rc != 0) {
        return rc;
    }
    op_ctx o = {kind, id, name, {payload ? payload : "", len}};
    return eng_run(e, op_txn, &o, KV_SYNC);
}

int aj_wf_signal(aj_engine *e, const char *id, const char *name, const void *payload, size_t len) {
    if (name == NULL) {
        return aj__err(AJ_EINVAL, "a signal needs a name");
    }
    return run_op(e, WF_OP_SIGNAL, id, name, payload, len);
}

int aj_wf_cancel(aj_engine *e, const char *id) {
    return run_op(e, WF_OP_CANCEL, id, NULL, NULL, 0);
}

int aj_wf_terminate(aj_engine *e, const char *id, const char *reason) {
    return run_op(e, WF_OP_TERMINATE, id, reason ? reason : "terminated by an operator", NULL, 0);
}

int aj_wf_resume(aj_engine *e, const char *id) {
    return run_op(e, WF_OP_RESUME, id, NULL, NULL, 0);
}

/* ----------------------------------------------------------------------------------------- */
/* Reads                                                                                      */

typedef struct get_ctx {
    const char *id;
    aj_wf_info *info;
} get_ctx;

static int get_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    get_ctx *g = ud;
    wf_rec w;
    int rc = wf_read(t, aj__slice_str(g->id), &w);
    if (rc != 0) {
        return rc;
    }
    aj_wf_info_free(g->info);
    g->info = wf_rec_to_public(&w);
    return g->info ? ENG_READ_ONLY : aj__err(AJ_ENOMEM, "out of memory reading a workflow");
}

int aj_wf_get(aj_engine *e, const char *id, aj_wf_info **out) {
    if (id == NULL) {
        return aj__err(AJ_EINVAL, "a workflow id is needed");
    }
    get_ctx g = {id, NULL};
    int rc = eng_run(e, get_txn, &g, KV_SYNC);
    if (rc == 0) {
        *out = g.info;
    } else {
        aj_wf_info_free(g.info);
    }
    return rc;
}

typedef struct list_ctx {
    const aj_wf_filter *f;
    aj_wf_info **v;
    size_t n, cap;
} list_ctx;

static int list_add(void *ud, const wf_rec *w) {
    list_ctx *l = ud;
    aj_wf_info **nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing workflows");
    }
    l->v = nv;
    aj_wf_info *i = wf_rec_to_public(w);
    if (i == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing workflows");
    }
    l->v[l->n++] = i;
    return 0;
}

static int list_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    list_ctx *l = ud;
    for (size_t i = 0; i < l->n; i++) {
        aj_wf_info_free(l->v[i]);
    }
    l->n = 0;
    int rc = wf_list(t, l->f, list_add, l);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_wf_list(aj_engine *e, const aj_wf_filter *f, aj_wf_info ***out, size_t *n) {
    aj_wf_filter none;
    memset(&none, 0, sizeof none);
    list_ctx l = {f ? f : &none, NULL, 0, 0};
    int rc = eng_run(e, list_txn, &l, KV_SYNC);
    if (rc != 0) {
        aj_wf_list_free(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

typedef struct wf_wait_ctx {
    const char *id;
    aj_wf_state state; /* as last read */
} wf_wait_ctx;

static int wf_wait_check(aj_engine *e, void *ud, eng_wait_step *step) {
    wf_wait_ctx *w = ud;
    aj_wf_info *info = NULL;
    int rc = aj_wf_get(e, w->id, &info);
    if (rc != 0) {
        return rc;
    }
    w->state = info->state;
    aj_wf_info_free(info);
    int settled = aj_wf_state_is_final(w->state) || w->state == AJ_WF_PARKED;
    *step = settled ? ENG_WAIT_DONE : ENG_WAIT_MORE;
    return 0;
}

int aj_wf_wait(aj_engine *e, const char *id, int64_t timeout_ms, aj_wf_state *out_state) {
    wf_wait_ctx w = {id, AJ_WF_RUNNING};
    int rc = eng_wait_until(e, timeout_ms, wf_wait_check, &w);
    if (rc == ENG_WAIT_TIMEOUT) {
        return aj__err(AJ_ETIMEDOUT, "workflow '%s' is still %s", id, aj_wf_state_name(w.state));
    }
    if (rc == 0 && out_state != NULL) {
        *out_state = w.state;
    }
    return rc;
}

typedef struct hist_ctx {
    const char *id;
    uint32_t run;
    int (*fn)(void *ud, const aj_wf_event *ev);
    void *ud;
} hist_ctx;

static int hist_cb(void *ud, const wf_event *ev) {
    hist_ctx *h = ud;
    char name[AJ_NAME_MAX * 2 + 1];
    snprintf(name, sizeof name, "%.*s", (int)ev->name.n, (const char *)ev->name.p);
    aj_wf_event pub = {
        ev->seq,     wf_event_name(ev->type),  name,   hlc_ms(ev->hlc), ev->hlc, ev->id,
        ev->prev_id, {ev->data.p, ev->data.n}, ev->aux};
    return h->fn(h->ud, &pub);
}

static int hist_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    hist_ctx *h = ud;
    wf_rec w;
    int rc = wf_read(t, aj__slice_str(h->id), &w);
    if (rc != 0) {
        return rc;
    }
    uint32_t run = h->run == 0 ? w.run : h->run;
    if (run > w.run) {
        return aj__err(AJ_ENOTFOUND, "workflow '%s' has no run %u (latest is %u)", h->id, run,
                       w.run);
    }
    rc = hist_read(t, w.id, run, 1, run == w.run ? w.seq : 0, 0, hist_cb, h);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_wf_history(aj_engine *e, const char *id, uint32_t run,
                  int (*fn)(void *ud, const aj_wf_event *ev), void *ud) {
    if (id == NULL || fn == NULL) {
        return aj__err(AJ_EINVAL, "history needs a workflow id and a callback");
    }
    hist_ctx h = {id, run, fn, ud};
    return eng_run(e, hist_txn, &h, KV_SYNC);
}

/* ----------------------------------------------------------------------------------------- */
/* Queries                                                                                    */

typedef struct query_ctx {
    aj_engine *e;
    const char *id;
    const char *name;
    char *out;
    size_t len;
    int local; /* the type is registered here */
    char type[AJ_NAME_MAX + 1];
} query_ctx;

static int query_txn(kv_txn *t, const job_env *env, void *ud) {
    query_ctx *q = ud;
    free(q->out);
    q->out = NULL;
    wf_rec w;
    int rc = wf_read(t, aj__slice_str(q->id), &w);
    if (rc != 0) {
        return rc;
    }
    snprintf(q->type, sizeof q->type, "%.*s", (int)w.type.n, (const char *)w.type.p);
    eng_wf_type h;
    if (eng_wf_find(q->e, w.type, &h) != 0) {
        q->local = 0;
        return ENG_READ_ONLY;
    }
    q->local = 1;
    aj_wf *wf;
    rc = aj__wf_load(q->e, t, env, aj__slice_str(q->id), 1, &wf);
    if (rc == 0) {
        rc = aj__wf_query_run(wf, h.fn, h.ud, q->name, &q->out, &q->len);
        aj__wf_free(wf);
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_wf_query(aj_engine *e, const char *id, const char *name, char **out, size_t *out_len) {
    if (id == NULL || name == NULL) {
        return aj__err(AJ_EINVAL, "a query needs a workflow id and a name");
    }
    int rc = aj_name_check("query name", name);
    if (rc != 0) {
        return rc;
    }
    query_ctx q = {e, id, name, NULL, 0, 0, ""};
    rc = eng_run(e, query_txn, &q, KV_SYNC);
    if (rc != 0) {
        free(q.out);
        return rc;
    }
    if (q.local) {
        *out = q.out;
        *out_len = q.len;
        return 0;
    }
    /* Route it to a worker that registered the type, as a job on the type's task queue. */
    char queue[AJ_NAME_MAX + 1];
    snprintf(queue, sizeof queue, "%s%.*s", WF_QUEUE_PREFIX, (int)WF_TYPE_MAX, q.type);
    size_t plen = strlen(name) + 1 + strlen(id);
    char *payload = aj__malloc(plen + 1);
    if (payload == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory routing a query");
    }
    snprintf(payload, plen + 1, "%s\n%s", name, id);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.queue = queue;
    s.type = WF_QUERY_TYPE;
    s.payload = payload;
    s.payload_len = plen;
    s.priority = AJ_PRIORITY_CRITICAL;
    s.max_attempts = 1;
    s.timeout_ms = WF_QUERY_TIMEOUT_MS;
    uint64_t job;
    rc = aj_submit(e, &s, &job);
    aj__free(payload);
    aj_job_state st;
    if (rc == 0) {
        rc = aj_job_wait(e, job, WF_QUERY_TIMEOUT_MS, &st);
        if (rc == AJ_ETIMEDOUT) {
            aj_job_cancel(e, job);
            return aj__err(AJ_ETIMEDOUT,
                           "no worker for workflow type '%s' answered the query within %d s",
                           q.type, (int)(WF_QUERY_TIMEOUT_MS / 1000));
        }
    }
    aj_job *j = NULL;
    if (rc == 0) {
        rc = aj_job_get(e, job, &j);
    }
    if (rc == 0 && st != AJ_STATE_COMPLETED) {
        rc = aj__err(st == AJ_STATE_DEAD ? AJ_EFAILED : AJ_ECANCELLED, "query failed: %s",
                     j->error ? j->error : aj_state_name(st));
    }
    if (rc == 0) {
        *out = malloc(j->result_len + 1);
        if (*out == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory answering a query");
        } else {
            memcpy(*out, j->result ? j->result : "", j->result_len);
            (*out)[j->result_len] = '\0';
            *out_len = j->result_len;
        }
    }
    aj_job_free(j);
    return rc;
}

int aj_wf_type_known(aj_engine *e, const char *type) {
    if (type == NULL) {
        return 0;
    }
    if (strcmp(type, "saga") == 0 || strcmp(type, "statemachine") == 0) {
        return 1;
    }
    char queue[AJ_NAME_MAX + 1];
    snprintf(queue, sizeof queue, "%s%s", WF_QUEUE_PREFIX, type);
    char **names = NULL;
    size_t n = 0;
    int known = 0;
    if (eng_queue_names(e, &names, &n) == 0) {
        for (size_t i = 0; i < n && !known; i++) {
            known = strcmp(names[i], queue) == 0;
        }
    }
    eng_queue_names_free(names, n);
    return known;
}

typedef struct check_ctx {
    aj_engine *e;
    const char *id;
    aj_workflow_fn fn;
    void *ud;
    char *report;
} check_ctx;

static int check_txn(kv_txn *t, const job_env *env, void *ud) {
    check_ctx *c = ud;
    aj__free(c->report);
    c->report = NULL;
    aj_wf *wf;
    int rc = aj__wf_load(c->e, t, env, aj__slice_str(c->id), 1, &wf);
    if (rc == 0) {
        rc = aj__wf_replay_check(wf, c->fn, c->ud, &c->report);
        aj__wf_free(wf);
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_wf_replay_check(aj_engine *e, const char *id, aj_workflow_fn fn, void *ud,
                       char **out_report) {
    if (id == NULL || fn == NULL) {
        return aj__err(AJ_EINVAL, "a replay check needs a workflow id and a function");
    }
    check_ctx c = {e, id, fn, ud, NULL};
    int rc = eng_run(e, check_txn, &c, KV_SYNC);
    if (rc == AJ_ESTATE && c.report != NULL) {
        aj__err(AJ_ESTATE, "%s", c.report);
        if (out_report != NULL) {
            *out_report = c.report;
            c.report = NULL;
        }
    }
    aj__free(c.report);
    return rc;
}
