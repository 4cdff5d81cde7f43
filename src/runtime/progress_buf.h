/*
 * progress_buf.h — the worker side of job progress: each running attempt keeps its reports in
 * memory (an eng_progress, holding the attempt's own CRDT state) and the worker writes them in
 * batches — by the heartbeat thread at most every AJ_PROGRESS_FLUSH_MS, and finally inside the
 * job's outcome transaction — never one commit per report.
 *
 * Because the state is a join-semilattice (core/progress.h), a flush sends the attempt's whole
 * state and merges it into the stored one: a flush that fails, or one that is repeated, loses
 * and doubles nothing; the next one carries everything.
 *
 * Stamps come from the engine's HLC (engine.h). Before an attempt's first report the stored
 * progress's latest stamp is observed, so a new attempt's step and message supersede those of
 * earlier attempts even when the earlier worker's clock ran ahead.
 *
 * Thread-safety: an eng_progress may be reported to from its handler thread while the heartbeat
 * thread flushes it; its own mutex guards its state. Freeing it is its owner's job (the slot,
 * then the outcome), once no flush is in flight.
 */
#ifndef AJ_RUNTIME_PROGRESS_BUF_H
#define AJ_RUNTIME_PROGRESS_BUF_H

#include "runtime/engine.h"

typedef struct eng_progress eng_progress;

/* A buffer for one attempt of job `job_id`, writing as `writer` (its lease epoch). NULL when
 * out of memory. */
eng_progress *eng_progress_new(aj_engine *e, uint64_t job_id, uint64_t writer);
void eng_progress_free(eng_progress *p);
/* 1 when reports wait to be written and the last flush was AJ_PROGRESS_FLUSH_MS ago or more. */
int eng_progress_due(eng_progress *p, int64_t now_mono_us);
/* Writes the pending reports of n attempts in one transaction. Failures are logged and left
 * pending for the next flush. */
void eng_progress_flush(aj_engine *e, eng_progress *const *v, size_t n);
/* Merges the attempt's reports into the store inside transaction t (the outcome's). p may be
 * NULL. */
int eng_progress_store(kv_txn *t, eng_progress *p);
/* The attempt completed its job: its current step is completed too. */
void eng_progress_complete(eng_progress *p);

/* worker.c: the progress buffer of the attempt a handler context runs, created on first use;
 * NULL when out of memory. */
eng_progress *eng_ctx_progress(aj_job_ctx *ctx);

#endif
