/*
 * blob.h — large payloads and results, stored content-addressed in chunks.
 *
 * A job's payload or result longer than the engine's threshold (job_env.blob_threshold, 256 KiB
 * by default) is not kept in the job record. It is stored once per distinct content as a blob:
 *
 *   'B' 0x00 hash                 blob record: references, length, chunks, state (below)
 *   'B' 0x01 due_ms hash          blob to collect at due_ms (no reference left, or staged and
 *                                 never referenced)
 *   'Z' hash index                chunk `index` (u32, big-endian) of the blob: BLOB_CHUNK bytes,
 *                                 the last one shorter
 *
 * where `hash` is the SHA-256 of the whole content. The job record holds a reference instead
 * of the bytes (BLOB_REF_LEN bytes: hash and length) and a flag (JOB_FLAG_PAYLOAD_BLOB,
 * JOB_FLAG_RESULT_BLOB, job_record.h). The unit of deduplication is the whole content: the
 * same 10 MiB submitted twice is one blob with two references and one set of chunks.
 *
 * Invariants:
 *  1. A blob record's `refs` equals the number of job records that reference it; it changes in
 *     the same transaction as the job record that gains or drops the reference.
 *  2. A complete blob has all of its chunks; chunks are written before (or with) the record
 *     that makes the blob complete, and deleted with the blob record.
 *  3. A blob with refs 0 has a collection entry ('B' 0x01) whose time is the record's gc_due;
 *     a blob with refs > 0 has none.
 * When refs drop to 0 the blob and its chunks are deleted in the same transaction, unless that
 * transaction already writes many keys (BLOB_FREE_INLINE_OPS): then the collection duty
 * (blob_collect) deletes them.
 *
 * Writing: data up to the transaction budget is written with the job (blob_job_set_payload and
 * blob_job_set_result write the chunks when the blob is not stored yet). Larger data is staged
 * first by the runtime in transactions of its own (blob_stage), with a collection entry
 * BLOB_STAGE_GRACE_MS ahead; the job's transaction then only adds the reference. A stage that
 * never reaches its job (a crash) is collected after the grace period.
 */
#ifndef AJ_CORE_BLOB_H
#define AJ_CORE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "aj.h"
#include "core/job_record.h"
#include "core/jobs.h"
#include "store/kv.h"
#include "util/sha256.h"

/* Bytes per chunk: one SQLite row of modest size (a few overflow pages), many per transaction. */
#define BLOB_CHUNK ((size_t)256 << 10)
/* Default threshold: payloads and results longer than this are stored as blobs. */
#define BLOB_THRESHOLD_DEFAULT ((size_t)256 << 10)
/* Smallest and largest threshold an engine accepts. */
#define BLOB_THRESHOLD_MIN ((size_t)1 << 10)
#define BLOB_THRESHOLD_MAX ((size_t)16 << 20)
/* Most new chunk bytes written with a job, and per staging transaction. */
#define BLOB_TXN_BYTES ((size_t)16 << 20)
/* How long a staged blob that no job references yet is kept. */
#define BLOB_STAGE_GRACE_MS (60 * AJ_MINUTE)
/* An unreferenced blob is deleted at once while its transaction writes fewer keys than this;
 * otherwise by the collection duty. */
#define BLOB_FREE_INLINE_OPS 8192
/* Bytes of a reference in a job record: the SHA-256 and the length (u64, big-endian). */
#define BLOB_REF_LEN JOB_BLOB_REF_LEN
_Static_assert(BLOB_REF_LEN == AJ_SHA256_LEN + 8, "a reference is a hash and a length");

/* A hash computed outside the transaction, so that retries do not hash again: a blob_hint for
 * buffer (p, n) is used when the data given to the functions below is that same buffer. */
typedef struct blob_hint {
    const void *p;
    size_t n;
    uint8_t hash[AJ_SHA256_LEN];
    int64_t staged_due; /* the runtime staged it: the collection time its last batch set; 0: no
                           batch of it committed (blob_unstage) */
} blob_hint;

/* The threshold in effect for env (the default when env leaves it 0). */
size_t blob_threshold(const job_env *env);
/* The hash of data, from env's hints when one matches, else computed. */
void blob_hash(const job_env *env, const void *p, size_t n, uint8_t out[AJ_SHA256_LEN]);

/* Adds a reference to the blob holding `data` (writing it first when it is not stored), and
 * writes the reference into ref (BLOB_REF_LEN bytes). */
int blob_acquire(kv_txn *t, const job_env *env, aj_slice data, uint8_t ref[BLOB_REF_LEN]);
/* Drops one reference; at zero the blob is deleted (or queued for the duty). */
int blob_release(kv_txn *t, const job_env *env, aj_slice ref);
/* Appends the content a reference names to `out`, checking lengths and the hash:
 * AJ_ECORRUPT naming the blob when something is missing or wrong. */
int blob_read(kv_txn *t, aj_slice ref, aj_buf *out);

/* For the job_*.c files: sets a new record's payload (a reference when it is over the
 * threshold). `ref` is storage for the reference that must outlive the record's encoding. */
int blob_job_set_payload(kv_txn *t, const job_env *env, job_rec *r, aj_slice payload,
                         uint8_t ref[BLOB_REF_LEN]);
/* For the job_*.c files: replaces r's result (r a copy of the stored record), dropping the
 * reference of the old one and taking one for the new. */
int blob_job_set_result(kv_txn *t, const job_env *env, job_rec *r, aj_slice result,
                        uint8_t ref[BLOB_REF_LEN]);
/* For the job_*.c files: drops the references of a record that is being deleted. */
int blob_job_release(kv_txn *t, const job_env *env, const job_rec *r);
/* The public snapshot of a record, with blob references replaced by their content. */
int blob_job_public(kv_txn *t, const job_rec *r, aj_job **out);

/* Staging (runtime): writes chunks of `data` (hash given) starting at chunk *next, at most
 * batch_bytes of them (at least one chunk), creating the blob record when missing. *next receives
 * the chunk to continue from, or UINT32_MAX once the blob is complete (also when it already was). A
 * blob that disappeared between two batches starts again from chunk 0. */
int blob_stage(kv_txn *t, const job_env *env, const uint8_t hash[AJ_SHA256_LEN], aj_slice data,
               size_t batch_bytes, uint32_t *next);

/* Collects a staged blob at once when the submit it was staged for failed: deletes it when no
 * job references it and its collection time is still `due` (the one its staging set; a later
 * stage of the same content by another submit moves it, and then the blob stays for that one).
 * Nothing to do is not an error. */
int blob_unstage(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], int64_t due);

/* The collection duty: deletes blobs whose collection time has passed, at most `limit` of
 * them. */
int blob_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n);

/* Counts blobs, their chunks and bytes; `unreferenced` counts blobs waiting for collection. */
int blob_stats_get(kv_txn *t, aj_blob_stats *out);

/* Verifies every blob against the job records: references counted, records complete, chunks
 * present. Reports each problem. */
int blob_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
               uint64_t *out_problems);

#endif
