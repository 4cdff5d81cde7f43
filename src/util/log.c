/*
 * log.c — logfmt lines handed to the user's callback (see log.h).
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *level_name(aj_log_level l) {
    switch (l) {
    case AJ_LOG_DEBUG:
        return "debug";
    case AJ_LOG_INFO:
        return "info";
    case AJ_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void aj__log(const aj_logger *lg, aj_log_level level, const char *fmt, ...) {
    if (lg == NULL || lg->fn == NULL || level < lg->level) {
        return;
    }
    char line[1024];
    int n = snprintf(line, sizeof line, "level=%s ", level_name(level));
    if (n < 0 || (size_t)n >= sizeof line) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    lg->fn(lg->ud, level, line);
}

const char *aj__logq(char *buf, size_t size, const char *s) {
    if (size == 0) {
        return "";
    }
    int plain = s[0] != '\0' && strpbrk(s, " =\"\\\n\t") == NULL;
    size_t o = 0;
    if (!plain && o + 1 < size) {
        buf[o++] = '"';
    }
    for (; *s && o + 3 < size; s++) {
        if (*s == '"' || *s == '\\') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    if (!plain && o + 1 < size) {
        buf[o++] = '"';
    }
    buf[o] = '\0';
    return buf;
}
