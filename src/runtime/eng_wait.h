/*
 * eng_wait.h — the one wait-for-change loop of the runtime's blocking calls (aj_job_wait,
 * aj_wf_wait, aj_wf_update): check a condition, and until it holds sleep on the store's change
 * sequence, so a commit by any thread wakes the caller at once and a commit by another process
 * within ENG_WAIT_SLICE_MS.
 */
#ifndef AJ_RUNTIME_ENG_WAIT_H
#define AJ_RUNTIME_ENG_WAIT_H

#include <stdint.h>

#include "runtime/engine.h"

/* The longest single sleep: other processes' commits bump no in-process sequence, so the
 * condition is checked again at least this often. */
#define ENG_WAIT_SLICE_MS 1000

/* What one check found. */
typedef enum eng_wait_step {
    ENG_WAIT_MORE = 0, /* not yet: sleep until the store changes */
    ENG_WAIT_NOW,      /* not yet, but check again at once without sleeping */
    ENG_WAIT_DONE      /* the condition holds: the wait ends with 0 */
} eng_wait_step;

/* Checks once: 0 with *step set, or an error code that ends the wait. */
typedef int (*eng_wait_check)(aj_engine *e, void *ud, eng_wait_step *step);

/* Returned by eng_wait_until when timeout_ms passed first; positive, so it never collides with
 * an AJ_E* code that check returns. No message is set: the caller words the AJ_ETIMEDOUT error
 * in terms of what it waited for. */
#define ENG_WAIT_TIMEOUT 1

/* Calls check until it says ENG_WAIT_DONE (returns 0) or fails (returns its error), sleeping
 * between calls until the store changes. timeout_ms < 0 waits forever; otherwise, once
 * timeout_ms has passed since the call, a check that does not say done ends the wait with
 * ENG_WAIT_TIMEOUT. */
int eng_wait_until(aj_engine *e, int64_t timeout_ms, eng_wait_check check, void *ud);

#endif
