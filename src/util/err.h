/*
 * err.h — error codes and the per-thread error message.
 *
 * Every failing library function sets a one-line message naming the problem through aj__err()
 * and returns the code, so callers write `return aj__err(AJ_EINVAL, "bad %s", x);`.
 */
#ifndef AJ_UTIL_ERR_H
#define AJ_UTIL_ERR_H

#include "aj.h"

#define AJ__ERRMSG_MAX 512 /* bytes of one error message, including the NUL */

/* Sets the calling thread's error message and returns `code`. */
int aj__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message: "context: previous message". Returns `code`. */
int aj__err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the calling thread's error message. */
void aj__err_clear(void);

#endif
