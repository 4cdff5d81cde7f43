/*
 * keys.h — the keyspace of the job engine. One prefix byte per record kind; numbers inside keys
 * are fixed-width big-endian so that key order is time or priority order. Every index entry is
 * written in the same transaction as the record it indexes.
 *
 *   'J' id                              job record (job_record.h)
 *   'R' queue 0 priority ready_us id    ready jobs, per queue, in claim order
 *   'D' run_at_ms id                    scheduled jobs by the time they become ready
 *   'L' lease_expires_ms id             running jobs by lease expiry (the reaper)
 *   'F' finished_ms id                  completed and cancelled jobs (retention)
 *   'S' dead_state id                   dead jobs (the dead-letter queue)
 *
 * Every job has exactly one of the five index entries above, chosen by its state; its value is
 * the state byte. Ready, running and scheduled jobs therefore touch one index key per transition.
 *   'I' queue 0 key                     idempotency record: id, expiry, fingerprint
 *   'X' expires_ms queue 0 key          idempotency expiry index
 *   'Q' queue                           known queues (so "every queue" can be served)
 *   'C' instance                        what one process counted (runtime/counters.c); 0: folded
 *   'M' name                            engine metadata: "format", "ids"
 *   'P' id                              a job's progress (progress.h), deleted with the job
 *   'W' wf_id                           workflow record (workflows; reserved: W E G g V N u)
 *   'E' wf_id 0 run seq                 workflow history event
 *   'G' wf_id 0 seq                     workflow inbox: signals and activity outcomes not yet
 *                                       moved into the history
 *   'g' wf_id 0 seq                     workflow wake request, until folded (wf_wakeq.h)
 *   'V' state wf_id                     workflows by state
 *   'N' finished_ms wf_id               finished workflows (retention)
 *   'u' key                             the user's own records (transactional steps)
 *   'K' name                            schedule record (schedule.h; reserved: K H O)
 *   'H' due_ms name                     active schedules by the time their next fire is due
 *   'O' name                            schedules holding a buffered fire: the job it waits on
 *   'c' 0 child_id                      a child workflow's link to its parent (child.h)
 *   'c' 1 parent_id 0 run seq           the children a parent's run started, in start order
 *   'q' queue                           queue control: paused, limits (queue_ctl.h)
 *   'z' queue                           queue usage: counted leases, recent claim times
 *   'w' worker_id                       worker registry entry (worker_registry.h)
 *   'k' 'e' scope hash [wf_id]          activity cache entry (activity_cache.h)
 *   'k' 'x' expires_ms scope hash [id]  activity cache expiry index
 *   'y' sent_ms req                     answer to a workflow update (wf_reply.h)
 *   'T' id                              a job's dependency header (deps.h): policy, pending
 *                                       count, depth, graph, its own run-at
 *   'T' id dep_id                       an edge: job id waits on dep_id; value: edge status
 *   'U' dep_id                          something waits on dep_id (read by its completion,
 *                                       written by every new edge: they conflict)
 *   'U' dep_id id                       the reverse edge (what waits on dep_id)
 *   'U' 0 graph_id                      a graph not yet fully activated (for the sweep duty)
 *   'Y' graph_id                        a submitted graph: state, creation time, size
 *   'Y' graph_id id                     a member of the graph: its local name
 *   'B' 0 hash                          blob record: a large payload or result (blob.h)
 *   'B' 1 due_ms hash                   blobs to collect (no reference left)
 *   'Z' hash index                      a blob's chunks
 */
#ifndef AJ_CORE_KEYS_H
#define AJ_CORE_KEYS_H

#include <stdint.h>

#include "aj.h"
#include "util/buf.h"

enum {
    KEY_JOB = 'J',
    KEY_STATE = 'S',
    KEY_READY = 'R',
    KEY_DELAYED = 'D',
    KEY_LEASE = 'L',
    KEY_FINISHED = 'F',
    KEY_IDEM = 'I',
    KEY_IDEM_EXPIRY = 'X',
    KEY_QUEUE = 'Q',
    KEY_COUNTERS = 'C',
    KEY_META = 'M',
    KEY_PROGRESS = 'P',
    KEY_DEPS = 'T',
    KEY_DEPS_REV = 'U',
    KEY_GRAPH = 'Y',
    KEY_BLOB = 'B',  /* blob.h */
    KEY_CHUNK = 'Z', /* blob.h */
};

/* A key built on the stack: the longest is 'I' + queue + NUL + idempotency key. */
#define KEY_MAX (2 + AJ_NAME_MAX + AJ_IDEMPOTENCY_KEY_MAX + 32)

typedef struct key_t_ {
    uint8_t b[KEY_MAX];
    size_t n;
} akey;

/* Keys gathered by one scan (kv_scan with key_batch_cb as the callback) for a caller that
 * changes them after the scan ends: collectors work in batches this size. */
#define KEY_BATCH_MAX 64
typedef struct key_batch {
    akey keys[KEY_BATCH_MAX];
    size_t n;
} key_batch;
/* A kv_scan_fn that appends each key to the key_batch `ud`; stops the scan when the batch is full
 * or a key is longer than KEY_MAX. */
int key_batch_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                 uint64_t version);

void key_job(akey *k, uint64_t id);
void key_state(akey *k, aj_job_state s, uint64_t id);
void key_state_prefix(akey *k, aj_job_state s);
void key_ready(akey *k, const char *queue, size_t qlen, uint32_t prio, int64_t ready_us,
               uint64_t id);
void key_ready_prefix(akey *k, const char *queue, size_t qlen);
void key_time_id(akey *k, uint8_t kind, int64_t t, uint64_t id);
void key_idem(akey *k, const char *queue, size_t qlen, const char *ikey, size_t ilen);
void key_idem_expiry(akey *k, int64_t expires, const char *queue, size_t qlen, const char *ikey,
                     size_t ilen);
void key_queue(akey *k, const char *queue, size_t qlen);
void key_counters(akey *k, uint64_t instance);
void key_meta(akey *k, const char *name);
void key_prefix(akey *k, uint8_t kind);

/* The id at the end of a key ending in 8 id bytes. */
uint64_t key_tail_id(const uint8_t *key, size_t klen);
/* The 8-byte time following the prefix byte of 'D', 'L', 'F' and 'X' keys. */
int64_t key_time(const uint8_t *key, size_t klen);

#endif
