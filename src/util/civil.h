/*
 * civil.h — proleptic Gregorian calendar arithmetic on day numbers (days since 1970-01-01), the
 * one copy shared by the RFC 3339 parser and formatter (util/parse.c) and by time zones and cron
 * (core/tz.c, core/cron.c). Pure integer arithmetic: no libc time functions, no TZ, no locale.
 */
#ifndef AJ_UTIL_CIVIL_H
#define AJ_UTIL_CIVIL_H

#include <stdint.h>

/* Days since 1970-01-01 of year y, month m (1..12), day d (H. Hinnant's days_from_civil; exact
 * for any year whose day number fits in int64_t). */
int64_t aj__days_from_civil(int64_t y, int m, int d);
/* The inverse of aj__days_from_civil. */
void aj__civil_from_days(int64_t days, int64_t *y, int *m, int *d);
int aj__is_leap_year(int64_t y);
/* Days in month m (1..12) of year y. */
int aj__days_in_month(int64_t y, int m);
/* a / b rounded toward negative infinity (b != 0), for splitting times before 1970 into days. */
int64_t aj__floor_div(int64_t a, int64_t b);

#endif
