/*
 * log.h — logfmt logging through the user's callback. The library never prints.
 * Payloads and secrets are never logged.
 */
#ifndef AJ_UTIL_LOG_H
#define AJ_UTIL_LOG_H

#include "aj.h"

typedef struct aj_logger {
    aj_log_fn fn;
    void *ud;
    aj_log_level level;
} aj_logger;

/* Logs `msg=...` followed by the formatted key=value pairs (the caller quotes values that may
 * hold spaces with %q-style care; aj__logq quotes one string). */
void aj__log(const aj_logger *lg, aj_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes s as a logfmt value (quoted and escaped when needed) into buf. */
const char *aj__logq(char *buf, size_t size, const char *s);

#endif
