/*
 * deps.h — job dependencies and stored dependency graphs, over one storage transaction.
 *
 * A job with dependencies has a header ('T' id) and one edge per dependency ('T' id dep, with
 * the reverse 'U' dep id). While any edge is pending the job is held: scheduled at
 * AJ_RUN_AT_DEPS (jobs.h). When the last dependency completes, the job is released in the same
 * transaction as that completion (job_hooks.h calls deps_on_finished). A dependency that is
 * dead-lettered or cancelled applies the job's policy: cascade (the job becomes dead,
 * dependency_failed, and so on transitively), ignore (the edge counts as satisfied) or wait (the
 * edge stays pending until the dependency is redriven and completes; a cancelled dependency can
 * never complete, so under wait it cascades).
 *
 * A graph ('Y' graph) records its members' names. A graph too large for one transaction is
 * written "staged": its jobs are held and not released until one commit flips the graph to
 * active; the release then runs in batches (and, after a crash, in the sweep duty). A staged
 * graph never activated is discarded by its submitter on error, or by the sweep duty after
 * DEPS_STAGE_TTL_MS.
 */
#ifndef AJ_CORE_DEPS_H
#define AJ_CORE_DEPS_H

#include "core/jobs.h"

/* A staged graph older than this was abandoned (its submitter crashed): the sweep discards it. */
#define DEPS_STAGE_TTL_MS ((int64_t)60 * 60 * 1000)

/* Graph states ('Y' graph record). */
enum {
    DEPS_GRAPH_STAGED = 0,    /* being written; its jobs are held */
    DEPS_GRAPH_RELEASING = 1, /* activated; jobs with nothing pending are being released */
    DEPS_GRAPH_ACTIVE = 2,    /* activated and released */
    DEPS_GRAPH_DISCARDING = 3 /* abandoned; being deleted */
};

/* Edge states ('T' id dep). */
enum {
    DEPS_EDGE_PENDING = 0,
    DEPS_EDGE_DONE = 1,    /* the dependency completed */
    DEPS_EDGE_IGNORED = 2, /* it failed, and the policy is ignore */
};

typedef struct deps_hdr {
    aj_dep_policy policy;
    uint32_t pending;  /* edges not yet satisfied */
    uint32_t depth;    /* jobs on the longest path ending here (1: no dependencies) */
    uint64_t graph;    /* 0: not part of a submitted graph */
    int64_t run_at_ms; /* its own run-at (0: at once) for when it is released */
} deps_hdr;

/* Checks the dependency fields of a spec (policy, ids): AJ_EINVAL naming the problem. Called by
 * job_spec_check(), which validates a whole spec in one call. */
int deps_spec_check(const aj_job_spec *s);

/* Reads a job's dependency header: 0 or AJ_ENOTFOUND (no dependencies). */
int deps_read_hdr(kv_txn *t, uint64_t id, deps_hdr *out);
/* The depth of an existing job (1 when it has no dependencies); AJ_ENOTFOUND naming the id
 * when the job does not exist. */
int deps_depth(kv_txn *t, uint64_t id, uint32_t *out);

/* Makes the just-submitted job `id` wait on `after` (existing jobs) under `policy`, as a member
 * of `graph` (0: none). A staged graph's jobs stay held even with nothing pending. */
int deps_attach(kv_txn *t, const job_env *env, uint64_t id, aj_dep_policy policy,
                const uint64_t *after, size_t n_after, uint64_t graph, int staged);

/* Hooks (job_hooks.c). */
int deps_on_finished(kv_txn *t, const job_env *env, const job_rec *job);
int deps_on_redriven(kv_txn *t, const job_env *env, const job_rec *job);
/* Deletes a job's dependency records (it is being collected or purged). Dependents still
 * waiting on it can never be satisfied by it: they fail as dependency_failed. */
int deps_forget(kv_txn *t, const job_env *env, uint64_t id);

/* Graphs. */
int deps_graph_create(kv_txn *t, const job_env *env, uint64_t graph, size_t n_jobs, int staged);
int deps_graph_member(kv_txn *t, uint64_t graph, uint64_t id, const char *name);
/* Flips a staged graph to releasing: AJ_ESTATE when it is no longer staged (the sweep took it). */
int deps_graph_activate(kv_txn *t, const job_env *env, uint64_t graph);
/* Releases members after id `*cursor` whose dependencies are all satisfied: at most `limit`,
 * stopping once the transaction holds `ops_budget` writes; advances *cursor (also stored for
 * the sweep); *out_done is 1 when every member was visited (the graph is then active). */
int deps_graph_release(kv_txn *t, const job_env *env, uint64_t graph, uint64_t *cursor,
                       size_t limit, size_t ops_budget, int *out_done);
/* Deletes members (jobs and edges) of a graph that was never activated, within the same
 * bounds; *out_done is 1 when nothing is left (the graph record is then gone too). */
int deps_graph_discard(kv_txn *t, const job_env *env, uint64_t graph, size_t limit,
                       size_t ops_budget, int *out_done);
/* The periodic duty: finishes releases interrupted by a crash and discards staged graphs older
 * than DEPS_STAGE_TTL_MS, one batch of one graph per call (bounds as above); *out_n is 0 when
 * there was nothing to do, `limit` when the graph has more (call again), else 1. */
int deps_sweep(kv_txn *t, const job_env *env, size_t limit, size_t ops_budget, size_t *out_n);

/* Verifies the invariants above (pending counts against edges, reverse edges, held jobs);
 * adds the headers checked and the problems found (each described through `report`). */
int deps_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
               uint64_t *out_records, uint64_t *out_problems);

/* A job's dependency view (NULL name / empty lists for a job without dependencies). The
 * returned node owns its arrays (free with aj_dag_nodes_free(node, 1)). AJ_ENOTFOUND when
 * neither the job nor any edge naming it exists. */
int deps_node(kv_txn *t, uint64_t id, aj_dag_node *out);
/* The members of a submitted graph in id order (*out owned by the caller: aj__free). */
int deps_graph_ids(kv_txn *t, uint64_t graph, uint64_t **out, size_t *n);
/* The graph id of a job (0: none). */
uint64_t deps_node_graph(kv_txn *t, uint64_t id);

#endif
