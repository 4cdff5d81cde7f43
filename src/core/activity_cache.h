/*
 * activity_cache.h — the activity result cache: memoized activity results keyed by a content
 * hash of (activity type, declared version, input), scoped to one workflow id or global, each
 * with an expiry. Pure logic over one transaction, like workflow.h.
 *
 * Keys (prefix 'k', see keys.h):
 *   'k' 'e' 'g' hash(16)          a global entry
 *   'k' 'e' 'w' hash(16) wf_id    an entry of one workflow id (every run of it)
 *   'k' 'x' expires_ms(8) rest    expiry index: rest is the entry key after "ke"
 * Entry value: format(1) expires_ms(8) result. An expired entry is a miss at once and is deleted
 * by the collection duty (act_cache_collect).
 *
 * An activity that missed carries a descriptor (act_cache_desc_*) as the data of its
 * activity_scheduled event; when its job completes, wf_on_job_transition fills the entry in the
 * same transaction (act_cache_on_complete).
 */
#ifndef AJ_CORE_ACTIVITY_CACHE_H
#define AJ_CORE_ACTIVITY_CACHE_H

#include "aj.h"
#include "core/jobs.h"
#include "core/keys.h"
#include "store/kv.h"

#define ACT_CACHE_HASH 16
#define ACT_CACHE_DESC_MAX 128

typedef struct act_cache_ref {
    int global;
    aj_slice wf_id; /* the scope of a workflow-scoped entry */
    uint8_t hash[ACT_CACHE_HASH];
} act_cache_ref;

/* The content hash of (type, version, input): two independent 64-bit FNV-1a lanes over the
 * length-prefixed fields. It tells inputs apart; it is not meant to resist an attacker. */
void act_cache_hash(const char *type, const char *version, aj_slice input,
                    uint8_t out[ACT_CACHE_HASH]);

/* 0 with *out (borrowed from the transaction) for a live entry; AJ_ENOTFOUND when there is none
 * or it has expired. */
int act_cache_get(kv_txn *t, const job_env *env, const act_cache_ref *r, aj_slice *out);
/* Writes (or replaces) an entry expiring at now + ttl_ms, with its index entry. */
int act_cache_put(kv_txn *t, const job_env *env, const act_cache_ref *r, int64_t ttl_ms,
                  aj_slice result);
/* Deletes up to `limit` expired entries. */
int act_cache_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n);
/* Entries stored, expired or not. */
int act_cache_count(kv_txn *t, uint64_t *out);

/* Verifies that every entry has its index entry and the reverse (aj check). */
int act_cache_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
                    uint64_t *out_records, uint64_t *out_problems);

/* The descriptor an activity_scheduled event carries, as JSON text:
 * {"cache":"HEX","scope":"workflow"|"global","ttl_ms":N}. Returns its length. */
size_t act_cache_desc_format(char *buf, size_t size, int global, const uint8_t hash[ACT_CACHE_HASH],
                             int64_t ttl_ms);
/* 1 when `data` is a descriptor (filling *global, hash and *ttl_ms), else 0. */
int act_cache_desc_parse(aj_slice data, int *global, uint8_t hash[ACT_CACHE_HASH], int64_t *ttl_ms);
/* A cached activity's job completed: fills its entry (nothing when `sched_data` carries no
 * descriptor). */
int act_cache_on_complete(kv_txn *t, const job_env *env, aj_slice wf_id, aj_slice sched_data,
                          aj_slice result);

#endif
