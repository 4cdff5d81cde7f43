/*
 * log.c — logfmt lines handed to the user's callback (see log.h). Values are quoted when they
 * hold a space, '=', a quote, a backslash or a control byte; inside quotes every control byte
 * and DEL is escaped, so one call always makes one printable line. Layer: util.
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

/* Control bytes (0x00-0x1f) and DEL would let a value forge or split log lines (a CR rewinds a
 * terminal line, an ESC starts a terminal sequence): they are written as escapes, \n \r \t for
 * the common ones and \u00XX (as in JSON and Go's logfmt) for the rest. */
static int needs_escape(unsigned char c) {
    return c < 0x20 || c == 0x7f || c == '"' || c == '\\';
}

/* The escape of byte c into out (at most LOGQ_ESC_MAX bytes, no NUL); its length. */
#define LOGQ_ESC_MAX 6
static size_t escape_byte(unsigned char c, char *out) {
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        out[1] = (char)c;
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    default:
        out[1] = 'u';
        out[2] = '0';
        out[3] = '0';
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        return LOGQ_ESC_MAX;
    }
}

const char *aj__logq(char *buf, size_t size, const char *s) {
    if (size == 0) {
        return "";
    }
    int plain = s[0] != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++) {
        plain = !needs_escape(*p) && *p != ' ' && *p != '=';
    }
    if (!plain && size < 3) {
        buf[0] = '\0'; /* no room for even the quotes */
        return buf;
    }
    size_t o = 0;
    /* Room kept for the closing quote and the NUL; a value that does not fit is cut at a whole
     * byte or escape, never inside an escape. */
    size_t end = plain ? size - 1 : size - 2;
    if (!plain) {
        buf[o++] = '"';
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[LOGQ_ESC_MAX];
        size_t n = 1;
        if (needs_escape(*p)) {
            n = escape_byte(*p, esc);
        } else {
            esc[0] = (char)*p;
        }
        if (o + n > end) {
            break;
        }
        memcpy(buf + o, esc, n);
        o += n;
    }
    if (!plain) {
        buf[o++] = '"';
    }
    buf[o] = '\0';
    return buf;
}
