/*
 * dlq.h — dead-letter analytics: a streaming accumulator that takes dead job records one at a
 * time and produces the counts (aj_dlq_stats) and the report with findings (aj_dlq_report) of
 * aj.h. It is pure over the records it is given — no store, no clock: the caller passes `now` —
 * so tests feed it hand-made records; dlq_scan() feeds it the dead letters of one transaction.
 *
 * Memory is bounded by the number of distinct queues, types and error groups, each capped at
 * AJ_DLQ_NAMES_MAX (the rest count as "(other)"), not by the number of dead letters.
 */
#ifndef AJ_CORE_DLQ_H
#define AJ_CORE_DLQ_H

#include "aj.h"
#include "core/jobs.h"
#include "store/kv.h"

typedef struct dlq_acc dlq_acc;

/* Checks analysis options: AJ_EINVAL naming the problem. */
int dlq_opts_check(const aj_dlq_analyze_opts *opts);
/* A new accumulator measuring ages from now_ms; opts NULL: the defaults (copied). */
int dlq_acc_new(dlq_acc **out, const aj_dlq_analyze_opts *opts, int64_t now_ms);
void dlq_acc_free(dlq_acc *a);
/* Adds one dead letter (a record in state dead; others are ignored). AJ_ENOMEM. */
int dlq_acc_add(dlq_acc *a, const job_rec *r);
/* The counts so far (owned by the caller: aj_dlq_stats_free). */
int dlq_acc_stats(const dlq_acc *a, aj_dlq_stats **out);
/* The report so far, findings included (owned by the caller: aj_dlq_report_free). */
int dlq_acc_report(const dlq_acc *a, aj_dlq_report **out);

/* Adds every dead letter matching the filter (NULL: all; state forced to dead, after_id and
 * limit ignored) that transaction t sees. */
int dlq_scan(kv_txn *t, const job_env *env, const aj_job_filter *filter, dlq_acc *a);

#endif
