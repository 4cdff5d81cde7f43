/*
 * dag_api.c — the public dependency API: graph submit (aj_dag_submit), and the views behind
 * `aj job show` and `aj dag show` (aj_job_deps, aj_dag_show).
 *
 * A graph that fits in one store transaction (judged against the backend's declared limits,
 * with half of each kept as margin) is written and released in one commit. A larger one is
 * written in batches as a staged graph whose jobs are held, then activated by one small commit;
 * the members with nothing pending are then released in batches (a crash in between leaves the
 * rest to the sweep duty, deps_sweep). If a batch fails, the staged jobs are deleted before the
 * error is returned; if the process dies, the sweep deletes them after DEPS_STAGE_TTL_MS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dag_plan.h"
#include "core/deps.h"
#include "runtime/engine.h"
#include "util/err.h"
#include "util/mem.h"

/* Members released per transaction after activation. */
#define DAG_RELEASE_BATCH 1000
/* Members deleted per transaction when a staged graph is discarded. */
#define DAG_DISCARD_BATCH 1000
/* Most jobs aj_dag_show walks. */
#define DAG_SHOW_MAX (2 * AJ_DAG_JOBS_MAX)
/* Key and value bytes a job's records take besides its payload and metadata (an estimate with
 * room to spare: record fields, index entries, dependency header, name). */
#define DAG_JOB_BYTES 1024
/* Bytes per dependency edge (two keys of 17 bytes and a status byte, with room). */
#define DAG_EDGE_BYTES 64

/* ----------------------------------------------------------------------------------------- */
/* Graph submit                                                                              */

typedef struct dag_ctx {
    const aj_dag_job *jobs;
    size_t n;
    const dag_plan *plan;
    uint64_t graph;
    uint64_t first_id;
    uint64_t *ids;     /* per job: its id (or an idempotent duplicate's) */
    size_t from, to;   /* the slice of plan->order this transaction writes */
    int staged;        /* the graph is written in batches */
    uint64_t *scratch; /* dependency ids of one job */
    uint32_t *depth;   /* per job, including existing dependencies */
    uint64_t cursor;
    int done;
    size_t ops_budget; /* writes one transaction may hold (half the backend's limit) */
} dag_ctx;

static int dag_batch_txn(kv_txn *t, const job_env *env, void *ud) {
    dag_ctx *c = ud;
    int rc = 0;
    if (c->from == 0) {
        rc = deps_graph_create(t, env, c->graph, c->n, c->staged);
    }
    for (size_t k = c->from; k < c->to && rc == 0; k++) {
        size_t i = c->plan->order[k];
        const aj_dag_job *j = &c->jobs[i];
        uint64_t want = c->first_id + i, got = 0;
        int created = 0;
        rc = job_submit(t, env, &j->spec, want, &got, &created);
        if (rc != 0) {
            rc = aj__err_wrap(rc, "job '%.60s'", j->name);
            break;
        }
        c->ids[i] = got;
        if (!created) {
            continue; /* an idempotency key named an earlier job: its dependents wait on it */
        }
        size_t m = 0;
        for (size_t a = 0; a < j->spec.n_after; a++) {
            c->scratch[m++] = j->spec.after[a];
        }
        for (size_t q = c->plan->first_parent[i]; q < c->plan->first_parent[i + 1]; q++) {
            c->scratch[m++] = c->ids[c->plan->parents[q]];
        }
        rc = deps_graph_member(t, c->graph, got, j->name);
        if (rc == 0) {
            rc = deps_attach(t, env, got, j->spec.on_dep_failure, c->scratch, m, c->graph,
                             c->staged);
        }
        if (rc != 0) {
            rc = aj__err_wrap(rc, "job '%.60s'", j->name);
        }
    }
    return rc;
}

static int dag_activate_txn(kv_txn *t, const job_env *env, void *ud) {
    dag_ctx *c = ud;
    return deps_graph_activate(t, env, c->graph);
}

static int dag_release_txn(kv_txn *t, const job_env *env, void *ud) {
    dag_ctx *c = ud;
    uint64_t cursor = c->cursor;
    int rc =
        deps_graph_release(t, env, c->graph, &cursor, DAG_RELEASE_BATCH, c->ops_budget, &c->done);
    if (rc == 0) {
        c->cursor = cursor;
    }
    return rc;
}

static int dag_discard_txn(kv_txn *t, const job_env *env, void *ud) {
    dag_ctx *c = ud;
    return deps_graph_discard(t, env, c->graph, DAG_DISCARD_BATCH, c->ops_budget, &c->done);
}

/* Existing dependencies must exist; depths through them must stay within the limit. */
typedef struct depth_ctx {
    const aj_dag_job *jobs;
    size_t n;
    const dag_plan *plan;
    uint32_t *depth;
} depth_ctx;

static int dag_depth_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    depth_ctx *c = ud;
    for (size_t k = 0; k < c->n; k++) {
        size_t i = c->plan->order[k];
        const aj_dag_job *j = &c->jobs[i];
        uint32_t d = 1;
        for (size_t a = 0; a < j->spec.n_after; a++) {
            uint32_t pd = 0;
            int rc = deps_depth(t, j->spec.after[a], &pd);
            if (rc != 0) {
                return aj__err_wrap(rc, "job '%.60s'", j->name);
            }
            d = pd + 1 > d ? pd + 1 : d;
        }
        for (size_t q = c->plan->first_parent[i]; q < c->plan->first_parent[i + 1]; q++) {
            uint32_t pd = c->depth[c->plan->parents[q]];
            d = pd + 1 > d ? pd + 1 : d;
        }
        if (d > AJ_DEPS_DEPTH_MAX) {
            return aj__err(AJ_EINVAL,
                           "job '%.60s' is at depth %u: a dependency path of %u jobs ends at it, "
                           "over the limit of %d",
                           j->name, d, d, AJ_DEPS_DEPTH_MAX);
        }
        c->depth[i] = d;
    }
    return ENG_READ_ONLY;
}

static int dag_check_specs(aj_engine *e, const aj_dag_job *jobs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = job_spec_check(&jobs[i].spec);
        if (rc == 0 && jobs[i].spec.n_after + jobs[i].n_after_names > AJ_DEPS_MAX) {
            rc = aj__err(AJ_EINVAL, "it waits on more than %d jobs", AJ_DEPS_MAX);
        }
        if (rc != 0) {
            return aj__err_wrap(rc, "job '%.60s'", jobs[i].name);
        }
    }
    for (size_t i = 0; i < n; i++) {
        int rc = eng_note_queue(e, jobs[i].spec.queue ? jobs[i].spec.queue : "default");
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Deletes a staged graph after a failed batch, keeping the batch's error for the caller. */
static int dag_abandon(aj_engine *e, dag_ctx *c, int rc) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", aj_errmsg());
    c->done = 0;
    for (int guard = 0; !c->done && guard < 1000000; guard++) {
        if (eng_run(e, dag_discard_txn, c, KV_SYNC) != 0) {
            break; /* the sweep duty finishes it */
        }
    }
    return aj__err(rc, "%s", msg);
}

int aj_dag_submit(aj_engine *e, const aj_dag_job *jobs, size_t n, uint64_t *out_ids) {
    if (jobs == NULL || out_ids == NULL) {
        return aj__err(AJ_EINVAL, "jobs and out_ids are required");
    }
    dag_plan plan;
    int rc = dag_plan_make(jobs, n, &plan);
    if (rc != 0) {
        return rc;
    }
    dag_ctx c;
    memset(&c, 0, sizeof c);
    c.jobs = jobs;
    c.n = n;
    c.plan = &plan;
    c.ids = aj__calloc(n, sizeof *c.ids);
    c.depth = aj__calloc(n, sizeof *c.depth);
    size_t most = 1;
    for (size_t i = 0; i < n; i++) {
        size_t m = jobs[i].spec.n_after + (plan.first_parent[i + 1] - plan.first_parent[i]);
        most = m > most ? m : most;
    }
    c.scratch = aj__calloc(most, sizeof *c.scratch);
    if (c.ids == NULL || c.depth == NULL || c.scratch == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory submitting a graph of %zu jobs", n);
        goto done;
    }
    if ((rc = dag_check_specs(e, jobs, n)) != 0) {
        goto done;
    }
    depth_ctx dc = {jobs, n, &plan, c.depth};
    if ((rc = eng_run(e, dag_depth_txn, &dc, KV_SYNC)) != 0) {
        goto done;
    }
    uint64_t first = 0;
    if ((rc = eng_ids(e, n + 1, &first)) != 0) {
        goto done;
    }
    c.graph = first;
    c.first_id = first + 1;
    /* Batches by the backend's limits, with half of each kept as margin. */
    const kv_limits *lim = kv_store_limits(e->kv);
    size_t ops_budget = lim->max_txn_ops / 2, bytes_budget = lim->max_txn_bytes / 2;
    c.ops_budget = ops_budget;
    size_t *cut = aj__calloc(n + 1, sizeof *cut);
    size_t n_cuts = 0;
    if (cut == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory submitting a graph of %zu jobs", n);
        goto done;
    }
    size_t ops = 4, bytes = 64;
    for (size_t k = 0; k < n; k++) {
        size_t i = plan.order[k];
        size_t edges = jobs[i].spec.n_after + (plan.first_parent[i + 1] - plan.first_parent[i]);
        size_t jops = 8 + 2 * edges;
        size_t jbytes = DAG_JOB_BYTES + jobs[i].spec.payload_len + strlen(jobs[i].name) +
                        (jobs[i].spec.metadata ? strlen(jobs[i].spec.metadata) : 0) +
                        DAG_EDGE_BYTES * edges;
        if (k > 0 && (ops + jops > ops_budget || bytes + jbytes > bytes_budget)) {
            cut[n_cuts++] = k;
            ops = 4;
            bytes = 64;
        }
        ops += jops;
        bytes += jbytes;
    }
    cut[n_cuts++] = n;
    c.staged = n_cuts > 1;
    size_t from = 0;
    for (size_t b = 0; b < n_cuts && rc == 0; b++) {
        c.from = from;
        c.to = cut[b];
        rc = eng_run(e, dag_batch_txn, &c, KV_SYNC);
        from = cut[b];
        if (rc != 0 && c.staged && b > 0) {
            rc = dag_abandon(e, &c, rc);
        }
    }
    aj__free(cut);
    if (rc == 0 && c.staged) {
        rc = eng_run(e, dag_activate_txn, &c, KV_SYNC);
        if (rc != 0) {
            rc = dag_abandon(e, &c, rc);
        }
        /* Activated: the graph is committed. The release is idempotent; what a failure here
         * leaves is finished by the sweep duty. */
        c.cursor = 0;
        c.done = 0;
        while (rc == 0 && !c.done && eng_run(e, dag_release_txn, &c, KV_SYNC) == 0) {
        }
    }
    if (rc == 0) {
        memcpy(out_ids, c.ids, n * sizeof *out_ids);
    }
done:
    dag_plan_free(&plan);
    aj__free(c.ids);
    aj__free(c.depth);
    aj__free(c.scratch);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Views                                                                                     */

typedef struct node_ctx {
    uint64_t id;
    aj_dag_node *node;
} node_ctx;

static int node_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    node_ctx *c = ud;
    aj_dag_nodes_free(c->node, 1);
    c->node = aj__calloc(1, sizeof *c->node);
    if (c->node == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory reading dependencies");
    }
    int rc = deps_node(t, c->id, c->node);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_job_deps(aj_engine *e, uint64_t id, aj_dag_node **out) {
    node_ctx c = {id, NULL};
    int rc = eng_run(e, node_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj_dag_nodes_free(c.node, 1);
        return rc;
    }
    *out = c.node;
    return 0;
}

/* A set of ids (open addressing; 0 marks an empty slot, never a job id). */
typedef struct id_set {
    uint64_t *slot;
    size_t mask;
} id_set;

static int id_set_add(id_set *s, uint64_t id) {
    size_t i = (size_t)(id * 0x9e3779b97f4a7c15ULL) & s->mask;
    while (s->slot[i] != 0) {
        if (s->slot[i] == id) {
            return 0;
        }
        i = (i + 1) & s->mask;
    }
    s->slot[i] = id;
    return 1;
}

typedef struct show_ctx {
    uint64_t start;
    aj_dag_node *nodes;
    size_t n, cap;
    uint64_t graph;
} show_ctx;

static void show_reset(show_ctx *c) {
    aj_dag_nodes_free(c->nodes, c->n);
    c->nodes = NULL;
    c->n = c->cap = 0;
    c->graph = 0;
}

static int show_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    show_ctx *c = ud;
    show_reset(c);
    size_t cap = 1024;
    while (cap < DAG_SHOW_MAX * 2) {
        cap *= 2;
    }
    id_set seen = {aj__calloc(cap, sizeof(uint64_t)), cap - 1};
    int rc = seen.slot ? 0 : aj__err(AJ_ENOMEM, "out of memory reading the graph");
    if (rc == 0) {
        id_set_add(&seen, c->start);
        c->graph = deps_node_graph(t, c->start);
    }
    /* Breadth first over edges in both directions; `queue` holds ids found, in order. */
    uint64_t *queue = aj__calloc(DAG_SHOW_MAX + 1, sizeof *queue);
    size_t q_len = 0;
    if (rc == 0 && queue == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory reading the graph");
    }
    if (rc == 0) {
        queue[q_len++] = c->start;
    }
    if (rc == 0 && c->graph != 0) {
        /* A submitted graph is shown whole, even where it is not connected. */
        uint64_t *members = NULL;
        size_t n_members = 0;
        rc = deps_graph_ids(t, c->graph, &members, &n_members);
        for (size_t i = 0; i < n_members && rc == 0; i++) {
            if (id_set_add(&seen, members[i]) && q_len < DAG_SHOW_MAX) {
                queue[q_len++] = members[i];
            }
        }
        aj__free(members);
    }
    for (size_t head = 0; rc == 0 && head < q_len; head++) {
        if (c->n == c->cap) {
            size_t ncap = c->cap ? c->cap * 2 : 64;
            aj_dag_node *nv = aj__realloc(c->nodes, ncap * sizeof *nv);
            if (nv == NULL) {
                rc = aj__err(AJ_ENOMEM, "out of memory reading the graph");
                break;
            }
            c->nodes = nv;
            c->cap = ncap;
        }
        rc = deps_node(t, queue[head], &c->nodes[c->n]);
        if (rc == AJ_ENOTFOUND && head > 0) {
            c->nodes[c->n].id = queue[head]; /* collected: shown with state 0 */
            rc = 0;
        }
        if (rc != 0) {
            break;
        }
        c->n++;
        const aj_dag_node *nd = &c->nodes[c->n - 1];
        for (size_t i = 0; i < nd->n_after + nd->n_waited_by && rc == 0; i++) {
            uint64_t nb = i < nd->n_after ? nd->after[i] : nd->waited_by[i - nd->n_after];
            if (id_set_add(&seen, nb)) {
                if (q_len == DAG_SHOW_MAX) {
                    rc = aj__err(AJ_ETOOBIG, "the graph of job %llu has over %d jobs",
                                 (unsigned long long)c->start, DAG_SHOW_MAX);
                    break;
                }
                queue[q_len++] = nb;
            }
        }
    }
    aj__free(queue);
    aj__free(seen.slot);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

static int node_cmp(const void *a, const void *b) {
    uint64_t x = ((const aj_dag_node *)a)->id, y = ((const aj_dag_node *)b)->id;
    return (x > y) - (x < y);
}

int aj_dag_show(aj_engine *e, uint64_t id, aj_dag_node **out, size_t *n, uint64_t *out_graph) {
    show_ctx c;
    memset(&c, 0, sizeof c);
    c.start = id;
    int rc = eng_run(e, show_txn, &c, KV_SYNC);
    if (rc != 0) {
        show_reset(&c);
        return rc;
    }
    qsort(c.nodes, c.n, sizeof *c.nodes, node_cmp);
    *out = c.nodes;
    *n = c.n;
    if (out_graph != NULL) {
        *out_graph = c.graph;
    }
    return 0;
}
