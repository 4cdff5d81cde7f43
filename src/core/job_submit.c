/*
 * job_submit.c — creating a job: a checked spec becomes a stored record in its first state.
 *
 * The spec is validated (job_spec.c), an idempotency key is honoured (job_idem.c), large payloads
 * go to blobs, and the record is written with its index entries in the caller's transaction.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <string.h>

#include "core/blob.h"
#include "core/keys.h"

int job_submit(kv_txn *t, const job_env *env, const aj_job_spec *s, uint64_t id, uint64_t *out_id,
               int *out_created) {
    aj_slice none = {NULL, 0};
    return job_submit_owned(t, env, s, id, none, out_id, out_created);
}

int job_submit_owned(kv_txn *t, const job_env *env, const aj_job_spec *s, uint64_t id,
                     aj_slice owner, uint64_t *out_id, int *out_created) {
    int rc = job_spec_check(s);
    if (rc != 0) {
        return rc;
    }
    const char *queue = s->queue ? s->queue : "default";
    uint8_t fp[AJ_SHA256_LEN] = {0};
    int64_t old_expiry = -1;
    if (s->idempotency_key != NULL) {
        uint64_t existing;
        job_fingerprint(s->type, s->payload, s->payload_len, fp);
        rc = job_idem_lookup(t, env, s, queue, fp, &existing, &old_expiry);
        if (rc != 0) {
            return rc;
        }
        if (existing != 0) {
            *out_id = existing;
            *out_created = 0;
            return 0;
        }
    }
    job_rec r;
    memset(&r, 0, sizeof r);
    r.id = id;
    r.priority = s->priority;
    r.max_attempts = s->max_attempts;
    r.timeout_ms = s->timeout_ms;
    r.lease_ms = s->lease_ms;
    r.backoff = s->backoff;
    r.created_ms = r.updated_ms = env->now_ms;
    r.run_at_ms = s->run_at_ms > 0 ? s->run_at_ms : env->now_ms + s->delay_ms;
    if (r.run_at_ms > env->now_ms) {
        r.state = AJ_STATE_SCHEDULED;
    } else {
        r.state = AJ_STATE_READY;
        r.run_at_ms = env->now_ms;
        r.ready_us = env->now_us;
    }
    r.queue = aj__slice_str(queue);
    r.type = aj__slice_str(s->type);
    aj_slice payload = {s->payload_len ? s->payload : (const void *)"", s->payload_len};
    uint8_t ref[BLOB_REF_LEN]; /* a large payload's reference (blob.h) */
    if ((rc = blob_job_set_payload(t, env, &r, payload, ref)) != 0) {
        return rc;
    }
    r.idem_key = aj__slice_str(s->idempotency_key);
    r.metadata = aj__slice_str(s->metadata);
    r.owner = owner;
    aj_buf route = AJ_BUF_INIT;
    if (route_spec_has(s)) {
        if ((rc = route_encode(s, &route)) != 0) {
            aj__buf_free(&route);
            return rc;
        }
        r.route.p = route.p;
        r.route.n = route.len;
    }
    rc = job_index_rec(t, &r);
    if (rc == 0) {
        rc = job_put_rec(t, &r);
    }
    aj__buf_free(&route);
    if (rc != 0) {
        return rc;
    }
    if (s->idempotency_key != NULL &&
        (rc = job_idem_store(t, env, s, queue, fp, id, old_expiry)) != 0) {
        return rc;
    }
    COUNT(env, submitted);
    *out_id = id;
    *out_created = 1;
    return 0;
}

int job_note_queue(kv_txn *t, const char *queue) {
    akey k;
    key_queue(&k, queue, strlen(queue));
    return job_put_empty(t, &k);
}
