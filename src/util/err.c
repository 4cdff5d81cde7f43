/*
 * err.c — the error table and the per-thread error message (see err.h). The message lives in
 * thread-local storage so that one engine can be used from many threads without locking.
 */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg[AJ__ERRMSG_MAX];

const char *aj_strerror(int code) {
    switch (code) {
    case AJ_OK:
        return "success";
#define AJ__ERRNO_TEXT(name, c, text)                                                              \
    case c:                                                                                        \
        return text;
        AJ_ERRNO_MAP(AJ__ERRNO_TEXT)
#undef AJ__ERRNO_TEXT
    default:
        return "unknown error";
    }
}

const char *aj_err_name(int code) {
    switch (code) {
    case AJ_OK:
        return "AJ_OK";
#define AJ__ERRNO_NAME(name, c, text)                                                              \
    case c:                                                                                        \
        return "AJ_E" #name;
        AJ_ERRNO_MAP(AJ__ERRNO_NAME)
#undef AJ__ERRNO_NAME
    default:
        return "AJ_EUNKNOWN";
    }
}

const char *aj_errmsg(void) {
    return errmsg;
}

int aj__err(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int aj__err_wrap(int code, const char *fmt, ...) {
    char prev[AJ__ERRMSG_MAX];
    memcpy(prev, errmsg, sizeof prev);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof errmsg && prev[0] != '\0') {
        /* Append ": previous", cut to fit: the context matters more than the tail. */
        size_t at = (size_t)n;
        errmsg[at++] = ':';
        errmsg[at++] = ' ';
        size_t room = sizeof errmsg - at - 1;
        size_t len = strnlen(prev, sizeof prev);
        memcpy(errmsg + at, prev, len < room ? len : room);
        errmsg[at + (len < room ? len : room)] = '\0';
    }
    return code;
}

void aj__err_clear(void) {
    errmsg[0] = '\0';
}
