/*
 * check_report.h — how the store's integrity checks (job records and indexes, blobs,
 * dependencies, schedules, queue controls, the activity cache) report what they find: each problem
 * is counted and handed, as one line of text, to the reporter the caller of `aj check` passed in.
 */
#ifndef AJ_CORE_CHECK_REPORT_H
#define AJ_CORE_CHECK_REPORT_H

#include <stdint.h>

/* The longest problem line; a longer one is cut (lines name keys and ids, never payloads). */
#define CHECK_LINE_MAX 512

typedef struct check_report {
    void (*fn)(void *ud, const char *line); /* NULL: count only */
    void *ud;
    uint64_t problems;
} check_report;

/* Counts one problem and reports it as the formatted line. */
void check_problem(check_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
