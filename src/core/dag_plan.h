/*
 * dag_plan.h — the shape of a graph definition, computed without a store (dag_def.c): jobs in
 * an order where every job comes after the jobs of the graph it waits on, each job's depth
 * within the graph, and its in-graph parents by index.
 */
#ifndef AJ_CORE_DAG_PLAN_H
#define AJ_CORE_DAG_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "aj.h"

typedef struct dag_plan {
    size_t *order;        /* n job indexes, parents first */
    uint32_t *depth;      /* per job: jobs on the longest in-graph path ending at it */
    size_t *parents;      /* in-graph parents of job i: parents[first_parent[i] ..
                             first_parent[i+1]) */
    size_t *first_parent; /* n + 1 entries */
} dag_plan;

/* Checks names, self-edges, cycles ("cycle: a -> b -> a"), depth and size: 0 and a plan to
 * free with dag_plan_free(), or AJ_EINVAL naming the problem. */
int dag_plan_make(const aj_dag_job *jobs, size_t n, dag_plan *out);
void dag_plan_free(dag_plan *p);

#endif
