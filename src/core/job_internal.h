/*
 * job_internal.h — what the job_*.c files share with one another, and nothing outside them.
 *
 * The job lifecycle (jobs.h) is split by concept over job_index.c (records and their index
 * entries), job_spec.c, job_idem.c, job_submit.c, job_claim.c, job_lease.c, job_ops.c,
 * job_hold.c, job_duties.c, job_list.c and job_check.c. Every state change goes through
 * job_transition(), which keeps the invariant stated in job_index.c. Other modules use jobs.h.
 */
#ifndef AJ_CORE_JOB_INTERNAL_H
#define AJ_CORE_JOB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/jobs.h"
#include "core/keys.h"
#include "util/sha256.h"

/* Unreadable job records (a newer format, or damage) one claim or duty transaction looks past:
 * beyond this many at the head of an index, what lies behind waits for a newer aj or a repair. */
#define JOB_UNREADABLE_SKIP_MAX 4096
/* Longest time a job may be delayed or backed off (about 100 years), so times stay in range. */
#define JOB_DELAY_MAX ((int64_t)100 * 365 * AJ_DAY)

#define COUNT(env, field)                                                                          \
    do {                                                                                           \
        if ((env)->delta != NULL) {                                                                \
            (env)->delta->field++;                                                                 \
        }                                                                                          \
    } while (0)

/* Record I/O and index entries (job_index.c). */
int job_put_rec(kv_txn *t, const job_rec *r);
int job_read_rec(kv_txn *t, uint64_t id, job_rec *out, int *undecodable);
int job_read_or_skip(kv_txn *t, const job_env *env, uint64_t id, job_rec *out, int *rc,
                     size_t *skipped);
int job_put_empty(kv_txn *t, const akey *k);
int job_del_key(kv_txn *t, const akey *k);
void job_index_key(akey *k, const job_rec *r);
int job_index_rec(kv_txn *t, const job_rec *r);
int job_unindex(kv_txn *t, const job_rec *r);
int job_transition(kv_txn *t, const job_env *env, const job_rec *before, const job_rec *after);
int job_repair_index(kv_txn *t, const uint8_t *key, size_t klen, uint64_t id);

/* Idempotency records (job_idem.c). */
typedef struct idem_rec {
    uint64_t id;
    int64_t expires;
    int format;
    const uint8_t *fp; /* format 2: AJ_SHA256_LEN bytes; format 1: 8 bytes */
} idem_rec;

void job_fingerprint(const char *type, const void *payload, size_t len, uint8_t out[AJ_SHA256_LEN]);
int job_idem_decode(const uint8_t *v, size_t n, idem_rec *out);
int job_idem_lookup(kv_txn *t, const job_env *env, const aj_job_spec *s, const char *queue,
                    const uint8_t *fp, uint64_t *out_id, int64_t *out_old_expiry);
int job_idem_store(kv_txn *t, const job_env *env, const aj_job_spec *s, const char *queue,
                   const uint8_t *fp, uint64_t id, int64_t old_expiry);

/* Shared by the lease holder's fail and the reaper (job_lease.c). */
void job_apply_failure(const job_env *env, job_rec *r, job_failure how);
aj_slice job_error_slice(const char *error);

#endif
