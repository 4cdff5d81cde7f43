/*
 * job_state.c — names of job states and dead-letter reasons, as printed and parsed by every
 * surface. The names are part of the command-line and JSON contract: never rename one.
 */
#include <string.h>

#include "aj.h"
#include "util/err.h"
#include "util/mem.h"

static const char *const state_names[AJ_STATE_COUNT] = {
    NULL, "scheduled", "ready", "running", "completed", "dead", "cancelled",
};

static const char *const reason_names[] = {
    "", "max_attempts", "permanent_failure", "timeout", "lease_expired", "dependency_failed",
};

const char *aj_state_name(aj_job_state s) {
    if ((int)s <= 0 || (int)s >= AJ_STATE_COUNT) {
        return NULL;
    }
    return state_names[s];
}

int aj_state_parse(const char *text, aj_job_state *out) {
    for (int s = 1; s < AJ_STATE_COUNT; s++) {
        if (text != NULL && strcmp(text, state_names[s]) == 0) {
            *out = (aj_job_state)s;
            return 0;
        }
    }
    return aj__err(AJ_EINVAL,
                   "unknown job state '%s' (expected scheduled, ready, running, completed, dead "
                   "or cancelled)",
                   text ? text : "");
}

int aj_state_is_final(aj_job_state s) {
    return s == AJ_STATE_COMPLETED || s == AJ_STATE_DEAD || s == AJ_STATE_CANCELLED;
}

const char *aj_dead_reason_name(aj_dead_reason r) {
    if ((int)r < 0 || (size_t)r >= sizeof reason_names / sizeof reason_names[0]) {
        return "";
    }
    return reason_names[r];
}

int aj_dead_reason_parse(const char *text, aj_dead_reason *out) {
    for (size_t r = 1; r < sizeof reason_names / sizeof reason_names[0]; r++) {
        if (text != NULL && strcmp(text, reason_names[r]) == 0) {
            *out = (aj_dead_reason)r;
            return 0;
        }
    }
    return aj__err(AJ_EINVAL,
                   "unknown dead-letter reason '%s' (expected max_attempts, permanent_failure, "
                   "timeout, lease_expired or dependency_failed)",
                   text ? text : "");
}

void aj_job_free(aj_job *job) {
    /* A job and its strings are one allocation (job_rec_to_public). */
    aj__free(job);
}

void aj_job_list_free(aj_job **jobs, size_t n) {
    if (jobs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        aj_job_free(jobs[i]);
    }
    aj__free(jobs);
}

void aj_job_spec_init(aj_job_spec *s) {
    memset(s, 0, sizeof *s);
    s->priority = AJ_PRIORITY_NORMAL;
    s->timeout_ms = 5 * AJ_MINUTE;
    s->lease_ms = 30 * AJ_SECOND;
    s->max_attempts = 3;
    aj_backoff_default(&s->backoff);
    s->prefer_wait_ms = AJ_PREFER_WAIT_DEFAULT_MS;
}
