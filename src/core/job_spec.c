/*
 * job_spec.c — validating a job spec before anything is stored.
 *
 * job_spec_check() is the one place that decides whether an aj_job_spec is acceptable: names,
 * sizes, times, attempts, metadata, and (through route.c and deps.c, which own those fields)
 * routing and dependencies. The runtime calls it once per spec; every error names the field at
 * fault.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "core/deps.h"
#include "util/err.h"

/* Latest run-at time accepted (9999-12-31), so that adding any delay stays in range. */
#define JOB_TIME_MAX ((int64_t)253402300799999)
/* Most attempts a job may be given. */
#define JOB_ATTEMPTS_MAX 1000000u

int job_spec_check(const aj_job_spec *s) {
    int rc;
    if (s->queue != NULL && (rc = aj_name_check("queue", s->queue)) != 0) {
        return rc;
    }
    if (s->type == NULL) {
        return aj__err(AJ_EINVAL, "a job needs a type");
    }
    if ((rc = aj_name_check("type", s->type)) != 0) {
        return rc;
    }
    if (s->payload_len > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "payload is %zu bytes, over the %zu-byte limit", s->payload_len,
                       AJ_PAYLOAD_MAX);
    }
    if (s->payload_len > 0 && s->payload == NULL) {
        return aj__err(AJ_EINVAL, "payload is NULL but payload_len is %zu", s->payload_len);
    }
    if (s->delay_ms < 0 || s->delay_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "delay must be between 0 and 100 years");
    }
    if (s->delay_ms > 0 && s->run_at_ms > 0) {
        return aj__err(AJ_EINVAL, "give a delay or a run-at time, not both");
    }
    if (s->run_at_ms < 0 || s->run_at_ms > JOB_TIME_MAX) {
        return aj__err(AJ_EINVAL, "run-at time must be between 1970 and 9999");
    }
    if (s->timeout_ms <= 0 || s->timeout_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "timeout must be positive and at most 100 years");
    }
    if (s->lease_ms < AJ_LEASE_MIN_MS || s->lease_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL,
                       "lease must be at least %dms (AJ_LEASE_MIN_MS: a shorter one can expire "
                       "during an ordinary commit) and at most 100 years",
                       AJ_LEASE_MIN_MS);
    }
    if (s->max_attempts < 1 || s->max_attempts > JOB_ATTEMPTS_MAX) {
        return aj__err(AJ_EINVAL, "max attempts must be between 1 and %u", JOB_ATTEMPTS_MAX);
    }
    if (s->backoff.kind > AJ_BACKOFF_LIST ||
        (s->backoff.kind == AJ_BACKOFF_LIST &&
         (s->backoff.n_delays < 1 || s->backoff.n_delays > AJ_BACKOFF_LIST_MAX))) {
        return aj__err(AJ_EINVAL, "invalid backoff policy");
    }
    if (s->idempotency_key != NULL && (rc = aj_idempotency_key_check(s->idempotency_key)) != 0) {
        return rc;
    }
    if ((rc = route_spec_check(s)) != 0) {
        return rc;
    }
    if (s->metadata != NULL) {
        size_t n = strlen(s->metadata);
        if (n > AJ_METADATA_MAX) {
            return aj__err(AJ_ETOOBIG, "metadata is %zu bytes, over the %zu-byte limit", n,
                           AJ_METADATA_MAX);
        }
        json_error_t jerr;
        json_t *m = json_loadb(s->metadata, n, 0, &jerr);
        int is_obj = m != NULL && json_is_object(m);
        json_decref(m);
        if (!is_obj) {
            return aj__err(AJ_EINVAL, "metadata must be a JSON object%s%s", m ? "" : ": ",
                           m ? "" : jerr.text);
        }
    }
    return deps_spec_check(s);
}
