/*
 * deps.c — job dependencies and stored graphs (see deps.h).
 *
 * Invariants: a header's pending count equals its edges in state DEPS_EDGE_PENDING; every 'T'
 * edge has its 'U' reverse; a held job (scheduled at AJ_RUN_AT_DEPS) has a header with pending
 * edges, or belongs to a graph that is still staged. Every change happens inside the caller's
 * transaction, together with the job transition that caused it.
 */
#include "core/deps.h"

#include <stdio.h>
#include <string.h>

#include "core/check_report.h"
#include "core/keys.h"
#include "util/err.h"
#include "util/mem.h"

#define DEPS_HDR_FORMAT 1
#define DEPS_HDR_LEN 26
#define DEPS_GRAPH_FORMAT 1
#define DEPS_GRAPH_LEN 14
/* Graphs the sweep looks at per run. */
#define DEPS_SWEEP_GRAPHS 16

static void key_pair(akey *k, uint8_t kind, uint64_t a, uint64_t b, int with_b) {
    k->b[0] = kind;
    aj__put_u64be(k->b + 1, a);
    k->n = 9;
    if (with_b) {
        aj__put_u64be(k->b + 9, b);
        k->n = 17;
    }
}

/* Point reads and writes of one dependency record, keyed as key_pair lays it out. */
static int get_pair(kv_txn *t, uint8_t kind, uint64_t a, uint64_t b, int with_b, const uint8_t **v,
                    size_t *n) {
    akey k;
    key_pair(&k, kind, a, b, with_b);
    return kv_get(t, k.b, k.n, v, n);
}

static int put_pair(kv_txn *t, uint8_t kind, uint64_t a, uint64_t b, int with_b, const void *v,
                    size_t n) {
    akey k;
    key_pair(&k, kind, a, b, with_b);
    return kv_put(t, k.b, k.n, v, n);
}

const char *aj_dep_policy_name(aj_dep_policy p) {
    switch (p) {
    case AJ_DEP_CASCADE:
        return "cascade";
    case AJ_DEP_IGNORE:
        return "ignore";
    case AJ_DEP_WAIT:
        return "wait";
    }
    return NULL;
}

int aj_dep_policy_parse(const char *text, aj_dep_policy *out) {
    const aj_dep_policy all[] = {AJ_DEP_CASCADE, AJ_DEP_IGNORE, AJ_DEP_WAIT};
    for (size_t i = 0; text != NULL && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(text, aj_dep_policy_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return aj__err(AJ_EINVAL, "unknown dependency failure policy '%s' (cascade, ignore or wait)",
                   text ? text : "");
}

int deps_spec_check(const aj_job_spec *s) {
    if (aj_dep_policy_name(s->on_dep_failure) == NULL) {
        return aj__err(AJ_EINVAL, "unknown dependency failure policy %d", (int)s->on_dep_failure);
    }
    if (s->n_after > AJ_DEPS_MAX) {
        return aj__err(AJ_EINVAL, "a job may wait on at most %d jobs, not %zu", AJ_DEPS_MAX,
                       s->n_after);
    }
    if (s->n_after > 0 && s->after == NULL) {
        return aj__err(AJ_EINVAL, "after is NULL but n_after is %zu", s->n_after);
    }
    for (size_t i = 0; i < s->n_after; i++) {
        if (s->after[i] == 0) {
            return aj__err(AJ_EINVAL, "dependency id 0 is not a job id");
        }
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Records                                                                                   */

int deps_read_hdr(kv_txn *t, uint64_t id, deps_hdr *out) {
    const uint8_t *v;
    size_t n;
    int rc = get_pair(t, KEY_DEPS, id, 0, 0, &v, &n);
    if (rc != 0) {
        return rc;
    }
    if (n != DEPS_HDR_LEN || v[0] != DEPS_HDR_FORMAT || v[1] > AJ_DEP_WAIT) {
        return aj__err(AJ_ECORRUPT, "dependency record of job %llu is corrupt",
                       (unsigned long long)id);
    }
    out->policy = (aj_dep_policy)v[1];
    out->pending = aj__get_u32be(v + 2);
    out->depth = aj__get_u32be(v + 6);
    out->graph = aj__get_u64be(v + 10);
    out->run_at_ms = (int64_t)aj__get_u64be(v + 18);
    return 0;
}

static int put_hdr(kv_txn *t, uint64_t id, const deps_hdr *h) {
    uint8_t v[DEPS_HDR_LEN];
    v[0] = DEPS_HDR_FORMAT;
    v[1] = (uint8_t)h->policy;
    aj__put_u32be(v + 2, h->pending);
    aj__put_u32be(v + 6, h->depth);
    aj__put_u64be(v + 10, h->graph);
    aj__put_u64be(v + 18, (uint64_t)h->run_at_ms);
    return put_pair(t, KEY_DEPS, id, 0, 0, v, sizeof v);
}

/* Reads an edge's state: 0, or AJ_ENOTFOUND. */
static int get_edge(kv_txn *t, uint64_t id, uint64_t dep, uint8_t *out) {
    const uint8_t *v;
    size_t n;
    int rc = get_pair(t, KEY_DEPS, id, dep, 1, &v, &n);
    if (rc == 0) {
        *out = n == 1 ? v[0] : DEPS_EDGE_PENDING;
    }
    return rc;
}

static int put_edge(kv_txn *t, uint64_t id, uint64_t dep, uint8_t state) {
    return put_pair(t, KEY_DEPS, id, dep, 1, &state, 1);
}

typedef struct graph_rec {
    int state;
    int64_t created_ms;
    uint32_t n_jobs;
} graph_rec;

static int read_graph(kv_txn *t, uint64_t graph, graph_rec *out) {
    const uint8_t *v;
    size_t n;
    int rc = get_pair(t, KEY_GRAPH, graph, 0, 0, &v, &n);
    if (rc != 0) {
        return rc;
    }
    if (n != DEPS_GRAPH_LEN || v[0] != DEPS_GRAPH_FORMAT || v[1] > DEPS_GRAPH_DISCARDING) {
        return aj__err(AJ_ECORRUPT, "graph record %llu is corrupt", (unsigned long long)graph);
    }
    out->state = v[1];
    out->created_ms = (int64_t)aj__get_u64be(v + 2);
    out->n_jobs = aj__get_u32be(v + 10);
    return 0;
}

static int put_graph(kv_txn *t, uint64_t graph, const graph_rec *g) {
    uint8_t v[DEPS_GRAPH_LEN];
    v[0] = DEPS_GRAPH_FORMAT;
    v[1] = (uint8_t)g->state;
    aj__put_u64be(v + 2, (uint64_t)g->created_ms);
    aj__put_u32be(v + 10, g->n_jobs);
    return put_pair(t, KEY_GRAPH, graph, 0, 0, v, sizeof v);
}

/* The sweep's work list: 'U' 0 graph. */
static int mark_unfinished(kv_txn *t, uint64_t graph, int on) {
    akey k;
    key_pair(&k, KEY_DEPS_REV, 0, graph, 1);
    return on ? kv_put(t, k.b, k.n, "", 0) : kv_del(t, k.b, k.n);
}

/* 'U' dep (9 bytes) marks a job that something waits on. Attaching a dependent writes it and
 * a finishing job reads it, so the two conflict even on a backend that does not validate
 * scanned ranges (a completion that scanned 'U' dep before a new edge was committed must not
 * commit as if the edge did not exist: it would never release the dependent). It also lets a
 * job with no dependents finish with one point read instead of a scan. */
static int touch_dependents(kv_txn *t, uint64_t dep) {
    return put_pair(t, KEY_DEPS_REV, dep, 0, 0, "", 0);
}

static int has_dependents(kv_txn *t, uint64_t dep, int *out) {
    const uint8_t *v;
    size_t n;
    int rc = get_pair(t, KEY_DEPS_REV, dep, 0, 0, &v, &n);
    *out = rc == 0;
    return rc == AJ_ENOTFOUND ? 0 : rc;
}

/* 1 when a job of `graph` may be released (graph 0: not in a graph). */
static int graph_released(kv_txn *t, uint64_t graph, int *out) {
    *out = 1;
    if (graph == 0) {
        return 0;
    }
    graph_rec g;
    int rc = read_graph(t, graph, &g);
    if (rc == AJ_ENOTFOUND) {
        return 0; /* the graph record went with its last member */
    }
    if (rc == 0) {
        *out = g.state == DEPS_GRAPH_RELEASING || g.state == DEPS_GRAPH_ACTIVE;
    }
    return rc;
}

/* A list of ids gathered from a scan of 17-byte keys (the second id of each). */
typedef struct id_list {
    uint64_t *v;
    size_t n, cap;
    size_t limit; /* 0: none */
    int rc;
} id_list;

static int id_list_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    id_list *l = ud;
    if (klen != 17) {
        return 0;
    }
    uint64_t *nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        l->rc = aj__err(AJ_ENOMEM, "out of memory reading dependencies");
        return 1;
    }
    l->v = nv;
    l->v[l->n++] = aj__get_u64be(key + 9);
    return l->limit != 0 && l->n >= l->limit;
}

/* Collects the second ids of keys `kind` `first` * after `after` (0: from the start). */
static int scan_ids(kv_txn *t, uint8_t kind, uint64_t first, uint64_t after, size_t limit,
                    id_list *l) {
    akey start, end;
    /* From `kind first after` plus one byte (just past `after`), or from `kind first 0`: past
     * the 9-byte record or marker that shares the prefix, which must not use up `limit`. */
    key_pair(&start, kind, first, after, 1);
    if (after != 0) {
        start.b[start.n++] = 0;
    }
    key_pair(&end, kind, first + 1, 0, 0);
    memset(l, 0, sizeof *l);
    l->limit = limit;
    int rc = kv_scan(t, start.b, start.n, first == UINT64_MAX ? NULL : end.b, end.n, 0, limit,
                     id_list_cb, l);
    if (rc == 0) {
        rc = l->rc;
    }
    if (rc != 0) {
        aj__free(l->v);
        l->v = NULL;
        l->n = 0;
    }
    return rc;
}

int deps_depth(kv_txn *t, uint64_t id, uint32_t *out) {
    deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
    int rc = deps_read_hdr(t, id, &h);
    if (rc == 0) {
        *out = h.depth;
        return 0;
    }
    if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    job_rec r;
    rc = job_read(t, id, &r);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "dependency %llu: no such job", (unsigned long long)id);
    }
    if (rc == 0) {
        *out = 1;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Attach                                                                                    */

/* A failed dependency's effect under a policy: an edge state, or -1 for "fail the job". */
static int failed_edge(aj_dep_policy policy, aj_job_state dep_state) {
    if (policy == AJ_DEP_IGNORE) {
        return DEPS_EDGE_IGNORED;
    }
    if (policy == AJ_DEP_WAIT && dep_state == AJ_STATE_DEAD) {
        return DEPS_EDGE_PENDING;
    }
    return -1;
}

static void fail_text(char *buf, size_t size, uint64_t dep, aj_job_state st) {
    snprintf(buf, size, "dependency %llu %s", (unsigned long long)dep,
             st == AJ_STATE_CANCELLED ? "was cancelled" : "failed (dead-lettered)");
}

int deps_attach(kv_txn *t, const job_env *env, uint64_t id, aj_dep_policy policy,
                const uint64_t *after, size_t n_after, uint64_t graph, int staged) {
    if (n_after == 0 && graph == 0) {
        return 0;
    }
    if (aj_dep_policy_name(policy) == NULL) {
        return aj__err(AJ_EINVAL, "unknown dependency failure policy %d", (int)policy);
    }
    if (n_after > AJ_DEPS_MAX) {
        return aj__err(AJ_EINVAL, "job names %zu dependencies, over the limit of %d", n_after,
                       AJ_DEPS_MAX);
    }
    deps_hdr h = {policy, 0, 1, graph, 0};
    int rc = job_hold(t, env, id, &h.run_at_ms);
    char why[96] = "";
    for (size_t i = 0; i < n_after && rc == 0; i++) {
        uint64_t dep = after[i];
        uint8_t seen;
        if (dep == id) {
            return aj__err(AJ_EINVAL, "job %llu cannot depend on itself", (unsigned long long)id);
        }
        if (get_edge(t, id, dep, &seen) == 0) {
            continue; /* named twice */
        }
        uint32_t d = 0;
        if ((rc = deps_depth(t, dep, &d)) != 0) {
            break;
        }
        if (d + 1 > h.depth) {
            h.depth = d + 1;
        }
        if (h.depth > AJ_DEPS_DEPTH_MAX) {
            return aj__err(AJ_EINVAL,
                           "dependency %llu is at depth %u: the job would make a path of %u jobs, "
                           "over the limit of %d",
                           (unsigned long long)dep, d, h.depth, AJ_DEPS_DEPTH_MAX);
        }
        job_rec r;
        if ((rc = job_read(t, dep, &r)) != 0) {
            break;
        }
        int edge = DEPS_EDGE_PENDING;
        if (r.state == AJ_STATE_COMPLETED) {
            edge = DEPS_EDGE_DONE;
        } else if (r.state == AJ_STATE_DEAD || r.state == AJ_STATE_CANCELLED) {
            edge = failed_edge(policy, r.state);
            if (edge < 0) {
                if (why[0] == '\0') {
                    fail_text(why, sizeof why, dep, r.state);
                }
                edge = DEPS_EDGE_PENDING; /* failed, as cascade leaves it */
            }
        }
        if (edge == DEPS_EDGE_PENDING) {
            h.pending++;
        }
        akey k;
        key_pair(&k, KEY_DEPS_REV, dep, id, 1);
        if ((rc = put_edge(t, id, dep, (uint8_t)edge)) == 0 &&
            (rc = kv_put(t, k.b, k.n, "", 0)) == 0) {
            rc = touch_dependents(t, dep);
        }
    }
    if (rc == 0) {
        rc = put_hdr(t, id, &h);
    }
    if (rc == 0 && why[0] != '\0') {
        rc = job_dep_fail(t, env, id, why);
    } else if (rc == 0 && h.pending == 0 && !staged) {
        rc = job_unhold(t, env, id, h.run_at_ms);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Hooks                                                                                     */

/* Releases a held job whose dependencies are all satisfied, unless its graph is staged. */
static int maybe_release(kv_txn *t, const job_env *env, uint64_t id, const deps_hdr *h) {
    if (h->pending != 0) {
        return 0;
    }
    int ok = 0;
    int rc = graph_released(t, h->graph, &ok);
    if (rc == 0 && ok) {
        rc = job_unhold(t, env, id, h->run_at_ms);
    }
    return rc;
}

int deps_on_finished(kv_txn *t, const job_env *env, const job_rec *job) {
    int any = 0;
    int rc = has_dependents(t, job->id, &any);
    if (rc != 0 || !any) {
        return rc;
    }
    id_list kids;
    rc = scan_ids(t, KEY_DEPS_REV, job->id, 0, 0, &kids);
    for (size_t i = 0; i < kids.n && rc == 0; i++) {
        uint64_t c = kids.v[i];
        uint8_t edge;
        deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
        rc = get_edge(t, c, job->id, &edge);
        if (rc == AJ_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0 || edge != DEPS_EDGE_PENDING) {
            continue;
        }
        if ((rc = deps_read_hdr(t, c, &h)) != 0) {
            rc = rc == AJ_ENOTFOUND ? 0 : rc;
            continue;
        }
        int next = DEPS_EDGE_DONE;
        if (job->state != AJ_STATE_COMPLETED) {
            next = failed_edge(h.policy, job->state);
        }
        if (next == DEPS_EDGE_PENDING) {
            continue; /* wait: until it is redriven and completes */
        }
        if (next < 0) {
            char why[96];
            fail_text(why, sizeof why, job->id, job->state);
            rc = job_dep_fail(t, env, c, why); /* its own hook cascades further */
            continue;
        }
        if (h.pending > 0) {
            h.pending--;
        }
        if ((rc = put_edge(t, c, job->id, (uint8_t)next)) == 0 && (rc = put_hdr(t, c, &h)) == 0) {
            rc = maybe_release(t, env, c, &h);
        }
    }
    aj__free(kids.v);
    return rc;
}

/* Under cascade, the dependent of a dead, cancelled or deleted job is dead: redriving it while
 * such a dependency's edge is still pending would hold it forever. AJ_ESTATE naming the first
 * such dependency. */
static int cascade_redrive_check(kv_txn *t, uint64_t id) {
    id_list l;
    int rc = scan_ids(t, KEY_DEPS, id, 0, 0, &l);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        uint8_t edge = DEPS_EDGE_DONE;
        if ((rc = get_edge(t, id, l.v[i], &edge)) != 0 || edge != DEPS_EDGE_PENDING) {
            rc = rc == AJ_ENOTFOUND ? 0 : rc;
            continue;
        }
        job_rec r;
        rc = job_read(t, l.v[i], &r);
        unsigned long long dep = (unsigned long long)l.v[i];
        if (rc == AJ_ENOTFOUND) {
            rc = aj__err(AJ_ESTATE,
                         "job %llu died because job %llu it depends on was deleted; it can never "
                         "complete",
                         (unsigned long long)id, dep);
        } else if (rc == 0 && r.state == AJ_STATE_DEAD) {
            rc = aj__err(AJ_ESTATE,
                         "job %llu died because job %llu it depends on is dead; redrive %llu first",
                         (unsigned long long)id, dep, dep);
        } else if (rc == 0 && r.state == AJ_STATE_CANCELLED) {
            rc = aj__err(AJ_ESTATE,
                         "job %llu died because job %llu it depends on was cancelled; it can never "
                         "complete",
                         (unsigned long long)id, dep);
        }
    }
    aj__free(l.v);
    return rc;
}

int deps_on_redriven(kv_txn *t, const job_env *env, const job_rec *job) {
    deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
    int rc = deps_read_hdr(t, job->id, &h);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0 || h.pending == 0) {
        return rc;
    }
    if (h.policy == AJ_DEP_CASCADE && (rc = cascade_redrive_check(t, job->id)) != 0) {
        return rc;
    }
    /* Redriven while a dependency is still unsatisfied (it failed and cascaded): wait again. */
    int64_t run_at = 0;
    rc = job_hold(t, env, job->id, &run_at);
    if (rc == 0) {
        h.run_at_ms = 0;
        rc = put_hdr(t, job->id, &h);
    }
    return rc;
}

int deps_forget(kv_txn *t, const job_env *env, uint64_t id) {
    deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
    int rc = deps_read_hdr(t, id, &h);
    int has_hdr = rc == 0;
    if (rc != 0 && rc != AJ_ENOTFOUND) {
        return rc;
    }
    akey k;
    id_list l;
    /* Its own edges, and their reverses. */
    if ((rc = scan_ids(t, KEY_DEPS, id, 0, 0, &l)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        key_pair(&k, KEY_DEPS, id, l.v[i], 1);
        if ((rc = kv_del(t, k.b, k.n)) == 0) {
            key_pair(&k, KEY_DEPS_REV, l.v[i], id, 1);
            rc = kv_del(t, k.b, k.n);
        }
    }
    aj__free(l.v);
    if (rc == 0 && has_hdr) {
        key_pair(&k, KEY_DEPS, id, 0, 0);
        rc = kv_del(t, k.b, k.n);
        if (rc == 0 && h.graph != 0) {
            key_pair(&k, KEY_GRAPH, h.graph, id, 1);
            rc = kv_del(t, k.b, k.n);
        }
    }
    /* What waits on it: a dependent still waiting on it can no longer be satisfied by it. The
     * dependents keep their edge, so they still show what they waited on. */
    if (rc == 0) {
        key_pair(&k, KEY_DEPS_REV, id, 0, 0);
        rc = kv_del(t, k.b, k.n);
    }
    if (rc == 0 && (rc = scan_ids(t, KEY_DEPS_REV, id, 0, 0, &l)) == 0) {
        for (size_t i = 0; i < l.n && rc == 0; i++) {
            uint8_t edge;
            key_pair(&k, KEY_DEPS_REV, id, l.v[i], 1);
            rc = kv_del(t, k.b, k.n);
            if (rc == 0 && get_edge(t, l.v[i], id, &edge) == 0 && edge == DEPS_EDGE_PENDING) {
                char why[96];
                snprintf(why, sizeof why, "dependency %llu was deleted before it completed",
                         (unsigned long long)id);
                rc = job_dep_fail(t, env, l.v[i], why);
            }
        }
        aj__free(l.v);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Graphs                                                                                    */

int deps_graph_create(kv_txn *t, const job_env *env, uint64_t graph, size_t n_jobs, int staged) {
    graph_rec g = {staged ? DEPS_GRAPH_STAGED : DEPS_GRAPH_ACTIVE, env->now_ms, (uint32_t)n_jobs};
    int rc = put_graph(t, graph, &g);
    if (rc == 0 && staged) {
        rc = mark_unfinished(t, graph, 1);
    }
    return rc;
}

int deps_graph_member(kv_txn *t, uint64_t graph, uint64_t id, const char *name) {
    akey k;
    key_pair(&k, KEY_GRAPH, graph, id, 1);
    return kv_put(t, k.b, k.n, name, strlen(name));
}

int deps_graph_activate(kv_txn *t, const job_env *env, uint64_t graph) {
    (void)env;
    graph_rec g;
    int rc = read_graph(t, graph, &g);
    if (rc == AJ_ENOTFOUND || (rc == 0 && g.state != DEPS_GRAPH_STAGED)) {
        return aj__err(AJ_ESTATE,
                       "graph %llu was abandoned before it was activated (staged longer than "
                       "the %lld-minute limit)",
                       (unsigned long long)graph, (long long)(DEPS_STAGE_TTL_MS / 60000));
    }
    if (rc == 0) {
        g.state = DEPS_GRAPH_RELEASING;
        rc = put_graph(t, graph, &g);
    }
    return rc;
}

/* The sweep's cursor for a releasing graph: the last member it released ('U' 0 graph). */
static uint64_t release_cursor(kv_txn *t, uint64_t graph) {
    akey k;
    key_pair(&k, KEY_DEPS_REV, 0, graph, 1);
    const uint8_t *v;
    size_t n;
    return kv_get(t, k.b, k.n, &v, &n) == 0 && n == 8 ? aj__get_u64be(v) : 0;
}

int deps_graph_release(kv_txn *t, const job_env *env, uint64_t graph, uint64_t *cursor,
                       size_t limit, size_t ops_budget, int *out_done) {
    id_list l;
    int rc = scan_ids(t, KEY_GRAPH, graph, *cursor, limit, &l);
    size_t i = 0;
    for (; i < l.n && rc == 0 && kv_txn_ops(t) < ops_budget; i++) {
        deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
        rc = deps_read_hdr(t, l.v[i], &h);
        if (rc == AJ_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0 && h.pending == 0) {
            rc = job_unhold(t, env, l.v[i], h.run_at_ms);
        }
    }
    int done = i == l.n && l.n < limit;
    uint64_t next = i > 0 ? l.v[i - 1] : *cursor;
    aj__free(l.v);
    if (rc == 0 && done) {
        graph_rec g;
        rc = read_graph(t, graph, &g);
        if (rc == 0) {
            g.state = DEPS_GRAPH_ACTIVE;
            rc = put_graph(t, graph, &g);
        } else if (rc == AJ_ENOTFOUND) {
            rc = 0;
        }
        if (rc == 0) {
            rc = mark_unfinished(t, graph, 0);
        }
    } else if (rc == 0) {
        /* Where the sweep resumes if this process stops here. */
        uint8_t v[8];
        aj__put_u64be(v, next);
        akey k;
        key_pair(&k, KEY_DEPS_REV, 0, graph, 1);
        rc = kv_put(t, k.b, k.n, v, sizeof v);
    }
    if (rc == 0) {
        *cursor = next;
        *out_done = done;
    }
    return rc;
}

int deps_graph_discard(kv_txn *t, const job_env *env, uint64_t graph, size_t limit,
                       size_t ops_budget, int *out_done) {
    graph_rec g;
    int rc = read_graph(t, graph, &g);
    if (rc == 0 && g.state != DEPS_GRAPH_DISCARDING) {
        if (g.state != DEPS_GRAPH_STAGED) {
            return aj__err(AJ_ESTATE, "graph %llu is active", (unsigned long long)graph);
        }
        g.state = DEPS_GRAPH_DISCARDING; /* an activation racing with this one now fails */
        rc = put_graph(t, graph, &g);
    } else if (rc == AJ_ENOTFOUND) {
        rc = 0;
    }
    id_list l;
    if (rc == 0) {
        rc = scan_ids(t, KEY_GRAPH, graph, 0, limit, &l);
    }
    if (rc != 0) {
        return rc;
    }
    size_t i = 0;
    for (; i < l.n && rc == 0 && kv_txn_ops(t) < ops_budget; i++) {
        akey k;
        key_pair(&k, KEY_GRAPH, graph, l.v[i], 1);
        /* Its dependents are members too (a graph is submitted whole): no cascade needed. */
        if ((rc = job_discard(t, env, l.v[i])) == 0 && (rc = deps_forget(t, env, l.v[i])) == 0) {
            rc = kv_del(t, k.b, k.n);
        }
    }
    int done = i == l.n && l.n < limit;
    aj__free(l.v);
    if (rc == 0 && done) {
        akey k;
        key_pair(&k, KEY_GRAPH, graph, 0, 0);
        if ((rc = kv_del(t, k.b, k.n)) == 0) {
            rc = mark_unfinished(t, graph, 0);
        }
    }
    if (rc == 0) {
        *out_done = done;
    }
    return rc;
}

int deps_sweep(kv_txn *t, const job_env *env, size_t limit, size_t ops_budget, size_t *out_n) {
    id_list graphs;
    int rc = scan_ids(t, KEY_DEPS_REV, 0, 0, DEPS_SWEEP_GRAPHS, &graphs);
    size_t handled = 0;
    for (size_t i = 0; i < graphs.n && rc == 0 && handled == 0; i++) {
        uint64_t gid = graphs.v[i];
        graph_rec g;
        int done = 0;
        rc = read_graph(t, gid, &g);
        if (rc == AJ_ENOTFOUND) {
            rc = mark_unfinished(t, gid, 0);
            continue;
        }
        if (rc != 0) {
            break;
        }
        /* One graph per transaction: each reports work done, so the duty runs again. */
        if (g.state == DEPS_GRAPH_RELEASING) {
            uint64_t cursor = release_cursor(t, gid);
            rc = deps_graph_release(t, env, gid, &cursor, limit, ops_budget, &done);
            handled = done ? 1 : limit; /* `limit`: more to do, the duty runs again at once */
        } else if (g.state == DEPS_GRAPH_DISCARDING ||
                   (g.state == DEPS_GRAPH_STAGED &&
                    g.created_ms + DEPS_STAGE_TTL_MS <= env->now_ms)) {
            rc = deps_graph_discard(t, env, gid, limit, ops_budget, &done);
            handled = done ? 1 : limit;
        } else if (g.state == DEPS_GRAPH_ACTIVE) {
            rc = mark_unfinished(t, gid, 0);
        }
    }
    aj__free(graphs.v);
    if (rc == 0) {
        *out_n = handled;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Consistency check                                                                         */

typedef struct dcheck {
    kv_txn *t;
    check_report rep;
    uint64_t records;
    uint64_t cur;          /* the job whose header was seen last */
    uint32_t cur_pending;  /* its pending count */
    uint32_t seen_pending; /* pending edges seen after it */
    int have_cur;
    int rc;
} dcheck;

static void dcheck_close(dcheck *c) {
    if (c->have_cur && c->cur_pending != c->seen_pending) {
        check_problem(&c->rep, "job %llu: its dependency header counts %u pending, its edges %u",
                      (unsigned long long)c->cur, c->cur_pending, c->seen_pending);
    }
    c->have_cur = 0;
}

static int dcheck_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                     uint64_t version) {
    (void)version;
    dcheck *c = ud;
    uint64_t id = klen >= 9 ? aj__get_u64be(key + 1) : 0;
    if (klen == 9) {
        dcheck_close(c);
        c->records++;
        deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
        if (deps_read_hdr(c->t, id, &h) != 0) {
            check_problem(&c->rep, "job %llu: its dependency header cannot be read",
                          (unsigned long long)id);
            return 0;
        }
        c->cur = id;
        c->cur_pending = h.pending;
        c->seen_pending = 0;
        c->have_cur = 1;
        return 0;
    }
    if (klen != 17 || vlen != 1) {
        check_problem(&c->rep, "a dependency entry is malformed");
        return 0;
    }
    uint64_t dep = aj__get_u64be(key + 9);
    if (!c->have_cur || c->cur != id) {
        check_problem(&c->rep, "job %llu: an edge to %llu without a dependency header",
                      (unsigned long long)id, (unsigned long long)dep);
    } else if (val[0] == DEPS_EDGE_PENDING) {
        c->seen_pending++;
    }
    akey k;
    key_pair(&k, KEY_DEPS_REV, dep, id, 1);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(c->t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        /* A dependency that was collected keeps no reverse edge: only a live one must. */
        job_rec r;
        if (job_read(c->t, dep, &r) == 0) {
            check_problem(&c->rep, "job %llu waits on %llu, but the reverse edge is missing",
                          (unsigned long long)id, (unsigned long long)dep);
        }
    } else if (rc != 0) {
        c->rc = rc;
        return 1;
    }
    return 0;
}

/* Every held job has a header with something pending, or belongs to a staged graph. */
static int dcheck_held_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    dcheck *c = ud;
    if (klen != 17) {
        return 0;
    }
    uint64_t id = aj__get_u64be(key + 9);
    deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
    int released = 1;
    if (deps_read_hdr(c->t, id, &h) != 0) {
        check_problem(&c->rep, "job %llu waits on dependencies but has no dependency header",
                      (unsigned long long)id);
    } else if (h.pending == 0 && (graph_released(c->t, h.graph, &released) != 0 || released)) {
        check_problem(&c->rep, "job %llu waits on dependencies that are all satisfied",
                      (unsigned long long)id);
    }
    return 0;
}

int deps_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
               uint64_t *out_records, uint64_t *out_problems) {
    dcheck c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.rep.fn = report;
    c.rep.ud = ud;
    akey k, end;
    key_prefix(&k, KEY_DEPS);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, dcheck_cb, &c);
    dcheck_close(&c);
    if (rc == 0 && c.rc == 0) {
        key_time_id(&k, KEY_DELAYED, AJ_RUN_AT_DEPS, 0);
        key_prefix(&end, KEY_DELAYED + 1);
        rc = kv_scan(t, k.b, k.n, end.b, end.n, 0, 0, dcheck_held_cb, &c);
    }
    if (rc == 0) {
        rc = c.rc;
    }
    if (rc == 0) {
        *out_records += c.records;
        *out_problems += c.rep.problems;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Queries                                                                                   */

int deps_graph_ids(kv_txn *t, uint64_t graph, uint64_t **out, size_t *n) {
    id_list l;
    int rc = scan_ids(t, KEY_GRAPH, graph, 0, 0, &l);
    if (rc == 0) {
        *out = l.v;
        *n = l.n;
    }
    return rc;
}

uint64_t deps_node_graph(kv_txn *t, uint64_t id) {
    deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
    return deps_read_hdr(t, id, &h) == 0 ? h.graph : 0;
}

int deps_node(kv_txn *t, uint64_t id, aj_dag_node *out) {
    memset(out, 0, sizeof *out);
    out->id = id;
    job_rec r;
    int rc = job_read(t, id, &r);
    if (rc == 0) {
        out->state = r.state;
    } else if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    deps_hdr h = {AJ_DEP_CASCADE, 0, 0, 0, 0};
    int has_hdr = 0;
    rc = deps_read_hdr(t, id, &h);
    if (rc == 0) {
        has_hdr = 1;
        out->policy = h.policy;
        out->pending = h.pending;
    } else if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    id_list after, kids;
    memset(&kids, 0, sizeof kids);
    rc = scan_ids(t, KEY_DEPS, id, 0, 0, &after);
    if (rc == 0) {
        rc = scan_ids(t, KEY_DEPS_REV, id, 0, 0, &kids);
    }
    if (rc == 0 && out->state == 0 && !has_hdr && after.n == 0 && kids.n == 0) {
        rc = aj__err(AJ_ENOTFOUND, "job %llu not found", (unsigned long long)id);
    }
    if (rc == 0 && after.n > 0) {
        out->after_state = aj__calloc(after.n, sizeof *out->after_state);
        if (out->after_state == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory reading dependencies");
        }
        for (size_t i = 0; i < after.n && rc == 0; i++) {
            job_rec d;
            int drc = job_read(t, after.v[i], &d);
            if (drc == 0) {
                out->after_state[i] = d.state;
            } else if (drc != AJ_ENOTFOUND) {
                rc = drc;
            }
        }
    }
    if (rc == 0 && has_hdr && h.graph != 0) {
        akey k;
        key_pair(&k, KEY_GRAPH, h.graph, id, 1);
        const uint8_t *v;
        size_t n;
        if (kv_get(t, k.b, k.n, &v, &n) == 0) {
            out->name = aj__malloc(n + 1);
            if (out->name == NULL) {
                rc = aj__err(AJ_ENOMEM, "out of memory reading dependencies");
            } else {
                memcpy(out->name, v, n);
                out->name[n] = '\0';
            }
        }
    }
    if (rc != 0) {
        aj__free(after.v);
        aj__free(kids.v);
        aj__free(out->after_state);
        aj__free(out->name);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->after = after.v;
    out->n_after = after.n;
    out->waited_by = kids.v;
    out->n_waited_by = kids.n;
    return 0;
}

void aj_dag_nodes_free(aj_dag_node *nodes, size_t n) {
    if (nodes == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        aj__free(nodes[i].name);
        aj__free(nodes[i].after);
        aj__free(nodes[i].after_state);
        aj__free(nodes[i].waited_by);
    }
    aj__free(nodes);
}
