/*
 * tz.h — IANA time zones read from the system's TZif files (RFC 8536), never through the
 * process-wide TZ variable or localtime(), which are not thread-safe and cannot hold two zones at
 * once.
 *
 * A zone is its table of transitions (each the instant the UTC offset changes and the offset
 * after it) plus the POSIX TZ rule of the file's footer, which gives the transitions after the
 * table's last one (every year, forever). Times here are Unix seconds; "local" seconds are the
 * same count for the wall clock read as if it were UTC.
 *
 * Thread-safety: a loaded tz_zone is immutable; any number of threads may read it at once.
 */
#ifndef AJ_CORE_TZ_H
#define AJ_CORE_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "aj.h"

/* Longest zone name ("America/Argentina/ComodRivadavia" is 32 bytes). */
#define TZ_NAME_MAX AJ_TZ_NAME_MAX
/* Largest TZif file read (the largest shipped is under 4 KiB). */
#define TZ_FILE_MAX ((size_t)256 << 10)
/* Most transitions and local time types a zone may have. */
#define TZ_TRANSITIONS_MAX 8192
#define TZ_TYPES_MAX 256
/* Largest magnitude of a UTC offset TZif allows (25:59:59). */
#define TZ_OFFSET_MAX_S 93599
/* Longest POSIX TZ footer string read. */
#define TZ_POSIX_MAX 256

/* One rule date of a POSIX TZ string: Jn, n or Mm.w.d, and the local time of day it applies. */
typedef enum tz_rule_kind {
    TZ_RULE_JULIAN1 = 1,
    TZ_RULE_JULIAN0 = 2,
    TZ_RULE_MWD = 3
} tz_rule_kind;

typedef struct tz_rule {
    tz_rule_kind kind;
    int day;      /* Jn: 1..365; n: 0..365; Mm.w.d: weekday 0 (Sunday)..6 */
    int week;     /* Mm.w.d: 1..5 (5: the last) */
    int month;    /* Mm.w.d: 1..12 */
    int32_t time; /* seconds after local midnight, -167h..167h */
} tz_rule;

/* A POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3". */
typedef struct tz_posix {
    int32_t std_off; /* seconds east of UTC (the string's sign is the other way round) */
    int32_t dst_off;
    int has_dst;
    tz_rule start, end; /* when daylight time starts and ends, in local standard/daylight time */
} tz_posix;

typedef struct tz_zone {
    char name[TZ_NAME_MAX + 1];
    size_t n;          /* transitions */
    int64_t *at;       /* instants, increasing */
    int32_t *off;      /* the offset from each instant on */
    int32_t first_off; /* the offset before the first transition */
    int has_rule;      /* the footer gives the offsets after the last transition */
    tz_posix rule;
} tz_zone;

/* Checks a zone name: 1..TZ_NAME_MAX bytes of letters, digits and "/_+-", no "..", no leading
 * '/' or '-'. AJ_EINVAL naming the problem. */
int tz_name_check(const char *name);

/* Parses the bytes of a TZif file (version 2 or later); `name` is only copied. */
int tz_parse(const char *name, const uint8_t *data, size_t len, tz_zone **out);
/* The built-in UTC zone. */
int tz_utc(tz_zone **out);
void tz_free(tz_zone *z);

/* Parses a POSIX TZ string (the TZif footer). AJ_EINVAL naming the problem. */
int tz_posix_parse(const char *text, tz_posix *out);

/* The UTC offset in seconds in force at instant t. */
int32_t tz_offset_at(const tz_zone *z, int64_t t);
/* The first instant after t at which the offset changes, or INT64_MAX when it never does. */
int64_t tz_next_change(const tz_zone *z, int64_t t);
/* The local time of instant t. */
int64_t tz_to_local(const tz_zone *z, int64_t t);
/* The first instant whose local time is `local` or later. For a local time that occurs once
 * that is the instant it names; for an ambiguous one (clocks turned back) its first occurrence;
 * for one that does not exist (clocks turned forward over it) the first instant after the gap,
 * which is the instant of the change. Never decreases as `local` increases. */
int64_t tz_from_local(const tz_zone *z, int64_t local);

/* The weekday of a day number (util/civil.h has the rest of the calendar): 0 (Sunday) .. 6
 * (Saturday). */
int tz_weekday(int64_t days);

#endif
