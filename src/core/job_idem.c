/*
 * job_idem.c — idempotency keys: the record that maps (queue, key) to the job it created.
 *
 * A submit with a key that a live record already holds returns that job instead of creating a
 * new one, provided the fingerprint (type and payload) matches. Records expire after the
 * idempotency TTL; job_collect() (job_duties.c) deletes expired ones.
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <string.h>

#include "core/keys.h"
#include "util/err.h"
#include "util/hash.h"

/* The fingerprint that tells whether a repeated idempotency key names the same job: SHA-256 of
 * the type (with its NUL) and the payload, so two different jobs never share one (a 64-bit
 * FNV-1a, the format 1 fingerprint, could collide and hand back the old job's id). */
void job_fingerprint(const char *type, const void *payload, size_t len,
                     uint8_t out[AJ_SHA256_LEN]) {
    aj_sha256 c;
    aj__sha256_init(&c);
    aj__sha256_update(&c, type, strlen(type) + 1);
    aj__sha256_update(&c, payload, len);
    aj__sha256_final(&c, out);
}

/* The format 1 fingerprint, only to compare with records written before format 2. */
static uint64_t job_fingerprint_v1(const char *type, const void *payload, size_t len) {
    uint64_t h = aj__fnv1a(AJ_FNV_INIT, type, strlen(type) + 1);
    return aj__fnv1a(h, payload, len);
}

/* Idempotency record. Format 2: format byte, id, expiry, SHA-256 fingerprint. Format 1 (no
 * format byte, told apart by its length): id, expiry, FNV-1a fingerprint. Upgrade rule: format 1
 * records are read and compared with the old fingerprint until they expire (one TTL); every
 * record written is format 2; a longer record with a newer format byte is refused (AJ_EFORMAT). */
#define IDEM_FORMAT 2
#define IDEM_REC_LEN (1 + 8 + 8 + AJ_SHA256_LEN)
#define IDEM_REC_LEN_V1 24

int job_idem_decode(const uint8_t *v, size_t n, idem_rec *out) {
    if (n == IDEM_REC_LEN_V1) {
        out->format = 1;
        out->id = aj__get_u64be(v);
        out->expires = (int64_t)aj__get_u64be(v + 8);
        out->fp = v + 16;
        return 0;
    }
    if (n >= 1 && v[0] > IDEM_FORMAT) {
        return aj__err(AJ_EFORMAT,
                       "idempotency record has format %u, newer than this aj reads (%d)", v[0],
                       IDEM_FORMAT);
    }
    if (n != IDEM_REC_LEN || v[0] != IDEM_FORMAT) {
        return AJ_ECORRUPT;
    }
    out->format = IDEM_FORMAT;
    out->id = aj__get_u64be(v + 1);
    out->expires = (int64_t)aj__get_u64be(v + 9);
    out->fp = v + 17;
    return 0;
}

/* 1 when a record's fingerprint is the spec's. */
static int idem_same_job(const idem_rec *r, const aj_job_spec *s, const uint8_t *fp) {
    if (r->format == 1) {
        return aj__get_u64be(r->fp) == job_fingerprint_v1(s->type, s->payload, s->payload_len);
    }
    return memcmp(r->fp, fp, AJ_SHA256_LEN) == 0;
}

/* Looks the key up: *out_id is nonzero when a live record names a job. */
int job_idem_lookup(kv_txn *t, const job_env *env, const aj_job_spec *s, const char *queue,
                    const uint8_t *fp, uint64_t *out_id, int64_t *out_old_expiry) {
    akey k;
    key_idem(&k, queue, strlen(queue), s->idempotency_key, strlen(s->idempotency_key));
    const uint8_t *v;
    size_t n;
    *out_id = 0;
    *out_old_expiry = -1;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    idem_rec r;
    if ((rc = job_idem_decode(v, n, &r)) != 0) {
        return rc == AJ_EFORMAT ? rc
                                : aj__err(AJ_ECORRUPT, "idempotency record for key '%s' is corrupt",
                                          s->idempotency_key);
    }
    *out_old_expiry = r.expires;
    if (r.expires <= env->now_ms) {
        return 0;
    }
    if (!idem_same_job(&r, s, fp)) {
        return aj__err(AJ_ECONFLICT,
                       "idempotency key '%s' in queue '%s' was used for job %llu with a different "
                       "type or payload",
                       s->idempotency_key, queue, (unsigned long long)r.id);
    }
    *out_id = r.id;
    return 0;
}

int job_idem_store(kv_txn *t, const job_env *env, const aj_job_spec *s, const char *queue,
                   const uint8_t *fp, uint64_t id, int64_t old_expiry) {
    size_t qlen = strlen(queue), ilen = strlen(s->idempotency_key);
    akey k;
    int rc;
    if (old_expiry >= 0) {
        key_idem_expiry(&k, old_expiry, queue, qlen, s->idempotency_key, ilen);
        if ((rc = job_del_key(t, &k)) != 0) {
            return rc;
        }
    }
    int64_t expires = env->now_ms + env->idempotency_ttl_ms;
    uint8_t v[IDEM_REC_LEN];
    v[0] = IDEM_FORMAT;
    aj__put_u64be(v + 1, id);
    aj__put_u64be(v + 9, (uint64_t)expires);
    memcpy(v + 17, fp, AJ_SHA256_LEN);
    key_idem(&k, queue, qlen, s->idempotency_key, ilen);
    if ((rc = kv_put(t, k.b, k.n, v, sizeof v)) != 0) {
        return rc;
    }
    key_idem_expiry(&k, expires, queue, qlen, s->idempotency_key, ilen);
    return job_put_empty(t, &k);
}
