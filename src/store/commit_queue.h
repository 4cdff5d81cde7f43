/*
 * commit_queue.h — group commit shared by the backends that have one committer (SQLite,
 * PostgreSQL): a bounded queue of commit requests, one committer thread that takes every queued
 * request (up to a batch limit) and hands the batch to the backend, and the hand-back of each
 * request's result to its caller.
 *
 * KV_SYNC and KV_APPLIED callers sleep until their batch is done; KV_ASYNC callers return at once
 * and are told through `done` on the committer thread. The queue applies backpressure: callers
 * wait while queue_max requests are queued, except the committer thread itself (a `done`
 * callback that commits again), for which the ring grows instead.
 *
 * What a batch means — one SQLite transaction, one PostgreSQL transaction — is the backend's:
 * the queue only calls `run` with the batch, on the committer thread, without holding its lock.
 *
 * Layer: src/store, used by backends below kv.c.
 */
#ifndef AJ_COMMIT_QUEUE_H
#define AJ_COMMIT_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "store/kv.h"

#define KV_CQ_NAME_MAX 256 /* bytes of the store's name in messages (kv_cq_config.what) */

typedef struct kv_cq kv_cq;
typedef struct kv_cq_waiter kv_cq_waiter;

/* One queued commit, as the backend's batch function sees it. */
typedef struct kv_cq_req {
    kv_commit_req *c;
    kv_cq_waiter *w; /* NULL: KV_ASYNC */
    size_t bytes;    /* key and value bytes written */
    int rc;          /* the result the batch function sets */
    char *msg;       /* detail of a failure other than a conflict (owned), or NULL */
} kv_cq_req;

/* Commits one batch: sets every request's rc (kv_cq_req_fail keeps the message of a failure)
 * and, for accepted KV_SYNC ones, c->out_version. Returns 1 when writes were committed, and sets
 * *synced when that commit was durable (counted in the statistics). */
typedef int (*kv_cq_run_fn)(void *ud, kv_cq_req *reqs, size_t n, int *synced);
/* Called on the committer thread after a batch that wrote, before its callers are told. */
typedef void (*kv_cq_wrote_fn)(void *ud);

typedef struct kv_cq_config {
    size_t batch_max;   /* requests in one batch */
    size_t batch_bytes; /* bytes one batch writes (a batch holds at least one request) */
    size_t queue_max;   /* queued requests before callers wait */
    /* Wait briefly for the KV_SYNC callers the last batch released to commit again, so that
     * they share the next durable commit (needs kv_cq_note_commit_us). */
    int gather;
    kv_cq_run_fn run;
    kv_cq_wrote_fn wrote; /* may be NULL */
    void *ud;
    const char *what; /* names the store in "… is closing" (copied) */
} kv_cq_config;

/* Creates the queue and starts its committer thread. */
int kv_cq_start(kv_cq **out, const kv_cq_config *cfg);
/* Refuses new requests, lets the committer finish every queued one, joins it and frees the
 * queue. Accepts NULL. */
void kv_cq_stop(kv_cq *q);
/* Queues a commit: KV_ASYNC returns once queued, the others once their batch is done (the
 * request's result, with its message). AJ_ESTATE for a waiting commit from the committer
 * thread (a done callback would wait for itself), AJ_ECLOSED when stopping. */
int kv_cq_commit(kv_cq *q, kv_commit_req *c);
/* Whether kv_cq_stop was called (a batch function gives up waiting for a server then). */
int kv_cq_stopping(kv_cq *q);
/* Whether the calling thread is the committer. */
int kv_cq_is_committer(kv_cq *q);
/* Statistics: batches, durable commits, and a histogram of requests per batch. */
void kv_cq_stats(kv_cq *q, uint64_t *batches, uint64_t *syncs, uint64_t *hist, size_t n_hist);
/* Records how long a durable commit took (committer thread; the gather window follows it). */
void kv_cq_note_commit_us(kv_cq *q, int64_t us);

/* Records a request's failure; the calling thread's message is kept for it (not for a
 * conflict, whose message is always the same). */
void kv_cq_req_fail(kv_cq_req *r, int rc);
void kv_cq_fail_all(kv_cq_req *reqs, size_t n, int rc);

#endif /* AJ_COMMIT_QUEUE_H */
