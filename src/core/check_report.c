/*
 * check_report.c — check_problem (check_report.h): the one way an integrity check counts and
 * reports a problem.
 */
#include "core/check_report.h"

#include <stdarg.h>
#include <stdio.h>

void check_problem(check_report *r, const char *fmt, ...) {
    char line[CHECK_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->problems++;
    if (r->fn != NULL) {
        r->fn(r->ud, line);
    }
}
