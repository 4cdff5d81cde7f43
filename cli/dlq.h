/*
 * dlq.h — what the `aj dlq` commands share: the filter flags (--queue, --type, --reason,
 * --error, --older-than), their help text, and the check that turns them into the filter of
 * the dead jobs they select. cmd_dlq.c (ls, show, redrive, purge, export) and cmd_dlq_stats.c
 * (stats, analyze) use them, so every dlq command filters alike.
 */
#ifndef AJ_CLI_DLQ_H
#define AJ_CLI_DLQ_H

#include "aj.h"
#include "cli.h"

#define DLQ_FILTER_HELP                                                                            \
    "  --queue Q          only jobs of queue Q\n"                                                  \
    "  --type T           only jobs of type T\n"                                                   \
    "  --reason R         only jobs dead for reason R: max_attempts, permanent_failure, "          \
    "timeout,\n"                                                                                   \
    "                     lease_expired or dependency_failed\n"                                    \
    "  --error TEXT       only jobs whose last error contains TEXT\n"                              \
    "  --older-than DUR   only jobs last changed more than DUR ago, e.g. 7d or 12h\n"

typedef struct dlq_filter_args {
    const char *queue;
    const char *type;
    const char *reason;
    const char *error;
    const char *older_than;
} dlq_filter_args;

/* The filter flags every dlq list takes, followed by `extra` and the terminator. */
#define DLQ_FILTER_FLAGS(a)                                                                        \
    {"--queue", &(a).queue, NULL}, {"--type", &(a).type, NULL}, {"--reason", &(a).reason, NULL},   \
        {"--error", &(a).error, NULL}, {                                                           \
        "--older-than", &(a).older_than, NULL                                                      \
    }

/* Checks the filter flags and builds the filter of dead jobs they select: 0, or the exit code
 * after printing the problem. */
int dlq_filter(const dlq_filter_args *a, aj_job_filter *f);
/* Parses the arguments of a dlq command that takes the filter flags alone (export, stats) into
 * *f. Returns ARGS_PROCEED, or the exit code to return at once. */
int dlq_parse_filter(cli *c, const char *cmd, const char *help, int argc, char **argv,
                     aj_job_filter *f);

#endif
