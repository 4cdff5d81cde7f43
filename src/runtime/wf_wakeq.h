/*
 * wf_wakeq.h — the runtime's side of wake requests (core/wf_wakeq.h): who folds them, when.
 *
 * A transaction run by eng_run has the workflows it woke folded by eng_run right after its
 * commit, in the caller's thread. The worker pool's outcomes commit asynchronously; their
 * workflows are folded by the pool's heartbeat thread once the committer reports success
 * (worker.c), since the committer's callback must not make a KV_SYNC commit nor read. The
 * ticker's sweep folds whatever a crash left. Not part of the public API.
 */
#ifndef AJ_RUNTIME_WF_WAKEQ_H
#define AJ_RUNTIME_WF_WAKEQ_H

#include "core/wf_wakeq.h"
#include "runtime/engine.h"

/* Folds the requests of the workflows in `w` (all requests, when it overflowed), each in a
 * transaction of its own. A failure is logged, not returned: the request stays and the sweep
 * folds it later. */
void aj__wf_fold_woken(aj_engine *e, const wf_woken *w);
/* The periodic sweep of requests older than WF_WAKEQ_SWEEP_AGE_MS (a crash's leftovers). */
int aj__wf_sweep_wakes(aj_engine *e);

#endif
