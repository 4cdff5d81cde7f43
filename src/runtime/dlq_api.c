/*
 * dlq_api.c — the public dead-letter analytics calls: aj_dlq_stats_get() and aj_dlq_analyze()
 * run the core accumulator (core/dlq.c) over the dead letters of one read-only transaction, so
 * every count in a report comes from the same snapshot. Nothing is written.
 */
#include <string.h>

#include "core/dlq.h"
#include "runtime/engine.h"
#include "util/err.h"

typedef struct dlq_call {
    const aj_job_filter *filter;
    const aj_dlq_analyze_opts *opts;
    int want_report;
    aj_dlq_stats *stats;
    aj_dlq_report *report;
} dlq_call;

static int dlq_txn(kv_txn *t, const job_env *env, void *ud) {
    dlq_call *c = ud;
    /* A body may run again after a conflict: start from nothing each time. */
    aj_dlq_stats_free(c->stats);
    aj_dlq_report_free(c->report);
    c->stats = NULL;
    c->report = NULL;
    dlq_acc *a = NULL;
    int rc = dlq_acc_new(&a, c->opts, env->now_ms);
    if (rc == 0) {
        rc = dlq_scan(t, env, c->filter, a);
    }
    if (rc == 0 && c->want_report) {
        rc = dlq_acc_report(a, &c->report);
    } else if (rc == 0) {
        rc = dlq_acc_stats(a, &c->stats);
    }
    dlq_acc_free(a);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_dlq_stats_get(aj_engine *e, const aj_job_filter *filter, aj_dlq_stats **out) {
    if (e == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "aj_dlq_stats_get needs an engine and an output pointer");
    }
    dlq_call c = {filter, NULL, 0, NULL, NULL};
    int rc = eng_run(e, dlq_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj_dlq_stats_free(c.stats);
        return rc;
    }
    *out = c.stats;
    return 0;
}

int aj_dlq_analyze(aj_engine *e, const aj_job_filter *filter, const aj_dlq_analyze_opts *opts,
                   aj_dlq_report **out) {
    if (e == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "aj_dlq_analyze needs an engine and an output pointer");
    }
    if (opts != NULL) {
        int rc = dlq_opts_check(opts);
        if (rc != 0) {
            return rc;
        }
    }
    dlq_call c = {filter, opts, 1, NULL, NULL};
    int rc = eng_run(e, dlq_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj_dlq_report_free(c.report);
        return rc;
    }
    *out = c.report;
    return 0;
}
