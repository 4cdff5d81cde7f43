/*
 * cron.h — cron expressions: the parser and the next-fire computation.
 *
 * Accepted forms (fields separated by spaces or tabs):
 *   5 fields   minute hour day-of-month month day-of-week
 *   6 fields   second minute hour day-of-month month day-of-week
 *   7 fields   second minute hour day-of-month month day-of-week year (1970-2199)
 *   macros     @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly,
 *              @every DURATION (a fixed interval, anchored at the schedule's creation)
 * Each field is a comma-separated list of items: `*`, a value, a range `a-b`, each optionally
 * with a step `/n` (`a/n` means a to the field's maximum); `?` is `*` in the day fields. Months
 * and days of the week also take names (JAN..DEC, SUN..SAT, any case). Day of week is 0-7 with
 * both 0 and 7 meaning Sunday (Vixie numbering). Day of month also takes `L` (the last day),
 * `LW` (the last weekday) and `nW` (the weekday nearest day n, within the month); day of week
 * takes `nL` (the last weekday n of the month, `5L` = the last Friday) and `n#k` (the k-th
 * weekday n, `FRI#2`). When both day fields are restricted (neither starts with `*` or is `?`),
 * a day matching either fires (the Vixie rule); otherwise both must match.
 *
 * Fire times are computed in a time zone's local wall-clock time (tz.h): a local time that does
 * not exist fires once, at the first instant after the gap (several such times in one gap fire
 * once together); an ambiguous local time fires once, at its first occurrence.
 *
 * Pure functions; thread-safe.
 */
#ifndef AJ_CORE_CRON_H
#define AJ_CORE_CRON_H

#include <stdint.h>

#include "aj.h"
#include "core/tz.h"

/* Longest expression accepted, in bytes. */
#define CRON_EXPR_MAX AJ_CRON_EXPR_MAX
/* The year field's range; fire times are searched up to the end of CRON_YEAR_MAX. */
#define CRON_YEAR_MIN 1970
#define CRON_YEAR_MAX 2199
/* The shortest and longest @every interval. */
#define CRON_EVERY_MIN_MS AJ_SCHEDULE_EVERY_MIN_MS
#define CRON_EVERY_MAX_MS ((int64_t)100 * 366 * 86400 * 1000)

typedef enum cron_kind { CRON_FIELDS = 1, CRON_EVERY = 2 } cron_kind;

typedef struct cron_expr {
    cron_kind kind;
    int64_t every_ms; /* CRON_EVERY */
    uint64_t sec;     /* bit n: second n */
    uint64_t min;
    uint32_t hour;
    uint32_t dom;       /* bit d: day d (1..31) */
    uint32_t dom_w;     /* bit d: the weekday nearest day d */
    int dom_last;       /* L */
    int dom_last_wday;  /* LW */
    uint16_t mon;       /* bit m: month m (1..12) */
    uint8_t dow;        /* bit w: weekday w (0 Sunday..6) */
    uint8_t dow_last;   /* bit w: the last weekday w of the month */
    uint8_t dow_nth[7]; /* bit k-1 of dow_nth[w]: the k-th weekday w of the month */
    uint64_t year[4];   /* bit y-CRON_YEAR_MIN */
    int dom_star;       /* the field started with '*' or was '?' (the Vixie rule) */
    int dow_star;
} cron_expr;

/* Parses an expression. AJ_EINVAL with aj_errmsg() naming the field and the problem
 * ("cron expression '61 * * * *': minute: 61 is out of range (0-59)"). */
int cron_parse(const char *text, cron_expr *out);

/* The first fire time strictly after `after_ms` (Unix ms) in zone `z`; `anchor_ms` anchors
 * @every intervals (fires on the grid anchor + k*interval for every integer k). AJ_ENOTFOUND when
 * the expression never fires again before the end of CRON_YEAR_MAX ("0 0 30 2 *"). */
int cron_next(const cron_expr *c, const tz_zone *z, int64_t anchor_ms, int64_t after_ms,
              int64_t *out_ms);

#endif
