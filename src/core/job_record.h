/*
 * job_record.h — the stored form of a job and its compact binary encoding.
 *
 * A record is a format byte (JOB_RECORD_FORMAT) followed by fixed-order fields: numbers as
 * varints, strings and payloads as varint-length-prefixed bytes. Binary rather than JSON because
 * claims and completions decode and re-encode a record on the hot path (measured: see
 * docs/ARCHITECTURE.md). A decoded record borrows its byte fields from the buffer it was decoded
 * from; a caller that replaces a field points it at memory that outlives the encode.
 */
#ifndef AJ_CORE_JOB_RECORD_H
#define AJ_CORE_JOB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "aj.h"
#include "util/buf.h"

/* Bump with a written upgrade rule when the layout changes. Format 2 is the layout of format 1
 * with flag bits in `flags` and the optional routing field (HAS_ROUTE); a record without either
 * is still written as format 1, so older versions refuse only the records they could not read
 * correctly. */
#define JOB_RECORD_FORMAT 2
#define JOB_RECORD_FORMAT_PLAIN 1
/* `flags` bits. The payload or result field holds a blob reference (blob.h), not the bytes: */
#define JOB_FLAG_PAYLOAD_BLOB 1u
#define JOB_FLAG_RESULT_BLOB 2u
/* Running and counted against its queue's concurrency limit (queue_ctl.h): */
#define JOB_FLAG_SLOT 4u
#define JOB_FLAGS_KNOWN (JOB_FLAG_PAYLOAD_BLOB | JOB_FLAG_RESULT_BLOB | JOB_FLAG_SLOT)
/* Bytes of a blob reference: SHA-256 and length (blob.h). */
#define JOB_BLOB_REF_LEN 40

typedef struct aj_slice {
    const uint8_t *p; /* NULL: absent */
    size_t n;
} aj_slice;

static inline aj_slice aj__slice_str(const char *s);

typedef struct job_rec {
    uint64_t id;
    aj_job_state state;
    aj_dead_reason dead_reason;
    uint32_t priority;
    uint32_t attempts;
    uint32_t max_attempts;
    uint32_t redrives;
    uint32_t flags; /* JOB_FLAG_*; 0 in format 1 */
    uint64_t epoch;
    int64_t timeout_ms;
    int64_t lease_ms;
    int64_t created_ms;
    int64_t run_at_ms;
    int64_t ready_us; /* when it last became ready (wall µs): ready-index order and latency */
    int64_t started_ms;
    int64_t finished_ms;
    int64_t updated_ms;
    int64_t lease_expires_ms;
    int64_t dead_ms;
    aj_backoff backoff;
    aj_slice queue;
    aj_slice type;
    aj_slice payload;
    aj_slice result;
    aj_slice worker;
    aj_slice error;
    aj_slice idem_key;
    aj_slice metadata;
    aj_slice owner; /* the workflow that waits for this job (workflow.h), or absent */
    aj_slice route; /* routing, encoded by route.h, or absent */
} job_rec;

/* Encodes into b (appending). Returns AJ_ENOMEM if b ran out of memory. */
int job_rec_encode(const job_rec *r, aj_buf *b);
/* Decodes; AJ_ECORRUPT (with a message naming the id) when malformed, AJ_EFORMAT when newer. */
int job_rec_decode(const uint8_t *p, size_t n, job_rec *out);

/* Pieces of the record codecs that schedule, route and worker registry records share. */
/* A varint-prefixed byte string: "" (not NULL) when empty, so a present field stays present;
 * NULL only when the input is bad (r->bad is then set). */
aj_slice job_rd_slice(aj_rd *r);
/* A retry policy: kind, initial, factor, max and the explicit delays. */
void job_backoff_encode(aj_buf *b, const aj_backoff *bo);
/* The inverse of job_backoff_encode; a delay list longer than AJ_BACKOFF_LIST_MAX sets r->bad. */
void job_backoff_decode(aj_rd *r, aj_backoff *bo);
/* Copies a record into one owned public aj_job allocation (free with aj_job_free). */
aj_job *job_rec_to_public(const job_rec *r);

static inline aj_slice aj__slice_str(const char *s) {
    aj_slice v = {(const uint8_t *)s, 0};
    if (s != NULL) {
        const char *e = s;
        while (*e) {
            e++;
        }
        v.n = (size_t)(e - s);
    }
    return v;
}

/* 1 when the slice equals the C string. */
int aj__slice_eq(aj_slice a, const char *s);
/* Copies a slice as a NUL-terminated string at *cursor and advances it (NULL for an absent
 * slice): how the public snapshots (jobs, workflows, schedules) lay their strings out in one
 * allocation after the struct. */
char *aj__slice_place(char **cursor, aj_slice s);

#endif
