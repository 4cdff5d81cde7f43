/*
 * route.h — affinity and routing of jobs to workers (issue 4 §7).
 *
 * A job may require a worker tag, prefer a node (others may take it once it has waited
 * `prefer_wait_ms` since it became ready) and avoid a node. The routing travels inside the job
 * record as one opaque optional field (job_rec.route), encoded here, so a job without routing
 * costs nothing. A claimer states who it is (job_claim_who in jobs.h); route_allows() is the
 * pure decision, used by job_claim() for every candidate that carries routing.
 */
#ifndef AJ_CORE_ROUTE_H
#define AJ_CORE_ROUTE_H

#include <stdint.h>

#include "aj.h"
#include "core/job_record.h"
#include "util/buf.h"

#define ROUTE_FORMAT 1

/* A decoded routing field. Strings borrow from the record; NULL slices are absent. */
typedef struct job_route {
    aj_slice require_tag;
    aj_slice prefer_node;
    int64_t prefer_wait_ms;
    aj_slice avoid_node;
} job_route;

/* Checks the routing fields of a spec: AJ_EINVAL naming the field. Called by job_spec_check(),
 * which validates a whole spec in one call. */
int route_spec_check(const aj_job_spec *s);
/* 1 when the spec asks for any routing. */
int route_spec_has(const aj_job_spec *s);
/* Encodes the spec's routing into b (appending). */
int route_encode(const aj_job_spec *s, aj_buf *b);
/* Decodes an encoded routing field; AJ_ECORRUPT when malformed, AJ_EFORMAT when newer. */
int route_decode(aj_slice enc, job_route *out);

/* Who is claiming: node NULL and no tags for an anonymous claimer (aj_claim). */
typedef struct route_claimer {
    const char *node;
    const char *const *tags;
    size_t n_tags;
} route_claimer;

/* 1 when the claimer may take a job with this routing now (ready since `ready_us`). When it may
 * not only because of a preferred node's wait, *wait_until_ms (if not NULL) is lowered to the
 * time it may. */
int route_allows(const job_route *r, const route_claimer *who, int64_t now_us, int64_t ready_us,
                 int64_t *wait_until_ms);

#endif
