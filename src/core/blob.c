/*
 * blob.c — large payloads and results stored content-addressed in chunks (see blob.h for the
 * keyspace and the invariants). Pure core: every function works inside the caller's
 * transaction, and reference counts change in the same transaction as the job records that
 * hold the references.
 */
#include "core/blob.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check_report.h"
#include "core/keys.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define BLOB_RECORD_FORMAT 1 /* bump with a written upgrade rule when the layout changes */
/* format, flags, refs, len, chunk size, chunks, gc_due, created */
#define BLOB_RECORD_LEN (1 + 1 + 8 + 8 + 4 + 4 + 8 + 8)
#define BLOB_COMPLETE 1 /* flag: every chunk is stored */
#define BLOB_SUB_RECORD 0
#define BLOB_SUB_GC 1

typedef struct blob_rec {
    uint8_t flags;
    uint64_t refs;
    uint64_t len;
    uint32_t chunk;
    uint32_t n_chunks;
    int64_t gc_due; /* 0: not queued for collection */
    int64_t created_ms;
} blob_rec;

/* ----------------------------------------------------------------------------------------- */
/* Keys and records                                                                          */

static void key_blob(akey *k, const uint8_t hash[AJ_SHA256_LEN]) {
    k->b[0] = KEY_BLOB;
    k->b[1] = BLOB_SUB_RECORD;
    memcpy(k->b + 2, hash, AJ_SHA256_LEN);
    k->n = 2 + AJ_SHA256_LEN;
}

static void key_blob_gc(akey *k, int64_t due, const uint8_t hash[AJ_SHA256_LEN]) {
    k->b[0] = KEY_BLOB;
    k->b[1] = BLOB_SUB_GC;
    aj__put_u64be(k->b + 2, due < 0 ? 0 : (uint64_t)due);
    memcpy(k->b + 10, hash, AJ_SHA256_LEN);
    k->n = 10 + AJ_SHA256_LEN;
}

static void key_chunk(akey *k, const uint8_t hash[AJ_SHA256_LEN], uint32_t index) {
    k->b[0] = KEY_CHUNK;
    memcpy(k->b + 1, hash, AJ_SHA256_LEN);
    aj__put_u32be(k->b + 1 + AJ_SHA256_LEN, index);
    k->n = 1 + AJ_SHA256_LEN + 4;
}

static void hex_of(const uint8_t hash[AJ_SHA256_LEN], char out[2 * AJ_SHA256_LEN + 1]) {
    aj__sha256_hex(hash, out);
}

static int rec_decode(const uint8_t *v, size_t n, blob_rec *out) {
    if (n != BLOB_RECORD_LEN || v[0] != BLOB_RECORD_FORMAT) {
        if (n > 0 && v[0] > BLOB_RECORD_FORMAT) {
            return aj__err(AJ_EFORMAT, "blob record format %u is newer than this aj supports",
                           v[0]);
        }
        return aj__err(AJ_ECORRUPT, "blob record is corrupt (%zu bytes)", n);
    }
    out->flags = v[1];
    out->refs = aj__get_u64be(v + 2);
    out->len = aj__get_u64be(v + 10);
    out->chunk = aj__get_u32be(v + 18);
    out->n_chunks = aj__get_u32be(v + 22);
    out->gc_due = (int64_t)aj__get_u64be(v + 26);
    out->created_ms = (int64_t)aj__get_u64be(v + 34);
    if (out->chunk == 0 || (uint64_t)out->n_chunks != (out->len + out->chunk - 1) / out->chunk) {
        return aj__err(AJ_ECORRUPT, "blob record is corrupt (length and chunks disagree)");
    }
    return 0;
}

static void rec_encode(const blob_rec *r, uint8_t v[BLOB_RECORD_LEN]) {
    v[0] = BLOB_RECORD_FORMAT;
    v[1] = r->flags;
    aj__put_u64be(v + 2, r->refs);
    aj__put_u64be(v + 10, r->len);
    aj__put_u32be(v + 18, r->chunk);
    aj__put_u32be(v + 22, r->n_chunks);
    aj__put_u64be(v + 26, (uint64_t)r->gc_due);
    aj__put_u64be(v + 34, (uint64_t)r->created_ms);
}

/* Reads a blob record: 0, AJ_ENOTFOUND (no message), or an error naming the blob. */
static int rec_read(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], blob_rec *out) {
    akey k;
    key_blob(&k, hash);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc != 0) {
        return rc;
    }
    rc = rec_decode(v, n, out);
    if (rc != 0) {
        char hex[2 * AJ_SHA256_LEN + 1];
        hex_of(hash, hex);
        return aj__err_wrap(rc, "blob %s", hex);
    }
    return 0;
}

static int rec_write(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], const blob_rec *r) {
    akey k;
    key_blob(&k, hash);
    uint8_t v[BLOB_RECORD_LEN];
    rec_encode(r, v);
    return kv_put(t, k.b, k.n, v, sizeof v);
}

/* Moves the blob's collection entry to `due` (0: none). */
static int set_gc(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], blob_rec *r, int64_t due) {
    akey k;
    int rc = 0;
    if (r->gc_due != 0) {
        key_blob_gc(&k, r->gc_due, hash);
        rc = kv_del(t, k.b, k.n);
    }
    if (rc == 0 && due != 0) {
        key_blob_gc(&k, due, hash);
        rc = kv_put(t, k.b, k.n, "", 0);
    }
    if (rc == 0) {
        r->gc_due = due;
    }
    return rc;
}

static blob_rec rec_new(const job_env *env, uint64_t len) {
    blob_rec r;
    memset(&r, 0, sizeof r);
    r.len = len;
    r.chunk = (uint32_t)BLOB_CHUNK;
    r.n_chunks = (uint32_t)((len + BLOB_CHUNK - 1) / BLOB_CHUNK);
    r.created_ms = env->now_ms;
    return r;
}

/* Writes chunks [from, to) of data. */
static int put_chunks(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], aj_slice data, uint32_t from,
                      uint32_t to) {
    for (uint32_t i = from; i < to; i++) {
        size_t off = (size_t)i * BLOB_CHUNK;
        size_t n = data.n - off < BLOB_CHUNK ? data.n - off : BLOB_CHUNK;
        akey k;
        key_chunk(&k, hash, i);
        int rc = kv_put(t, k.b, k.n, data.p + off, n);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Deletes a blob: its chunks, its collection entry and its record. */
static int delete_blob(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], const blob_rec *r) {
    akey k;
    int rc = 0;
    for (uint32_t i = 0; i < r->n_chunks && rc == 0; i++) {
        key_chunk(&k, hash, i);
        rc = kv_del(t, k.b, k.n);
    }
    if (rc == 0 && r->gc_due != 0) {
        key_blob_gc(&k, r->gc_due, hash);
        rc = kv_del(t, k.b, k.n);
    }
    if (rc == 0) {
        key_blob(&k, hash);
        rc = kv_del(t, k.b, k.n);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* References                                                                                */

size_t blob_threshold(const job_env *env) {
    return env->blob_threshold != 0 ? env->blob_threshold : BLOB_THRESHOLD_DEFAULT;
}

void blob_hash(const job_env *env, const void *p, size_t n, uint8_t out[AJ_SHA256_LEN]) {
    for (size_t i = 0; i < env->n_blob_hints; i++) {
        const blob_hint *h = &env->blob_hints[i];
        if (h->p == p && h->n == n) {
            memcpy(out, h->hash, AJ_SHA256_LEN);
            return;
        }
    }
    aj__sha256(p, n, out);
}

int blob_acquire(kv_txn *t, const job_env *env, aj_slice data, uint8_t ref[BLOB_REF_LEN]) {
    uint8_t hash[AJ_SHA256_LEN];
    blob_hash(env, data.p, data.n, hash);
    blob_rec r;
    int rc = rec_read(t, hash, &r);
    if (rc == 0 && r.len != data.n) {
        char hex[2 * AJ_SHA256_LEN + 1];
        hex_of(hash, hex);
        return aj__err(AJ_ECORRUPT, "blob %s records %llu bytes, not %zu", hex,
                       (unsigned long long)r.len, data.n);
    }
    if (rc == AJ_ENOTFOUND) {
        r = rec_new(env, data.n);
        rc = 0;
    } else if (rc != 0) {
        return rc;
    }
    if (!(r.flags & BLOB_COMPLETE)) {
        /* Not stored yet (or a stage left unfinished): write it with the job. */
        if ((rc = put_chunks(t, hash, data, 0, r.n_chunks)) != 0) {
            return rc;
        }
        r.flags |= BLOB_COMPLETE;
    }
    r.refs++;
    if ((rc = set_gc(t, hash, &r, 0)) != 0 || (rc = rec_write(t, hash, &r)) != 0) {
        return rc;
    }
    memcpy(ref, hash, AJ_SHA256_LEN);
    aj__put_u64be(ref + AJ_SHA256_LEN, data.n);
    return 0;
}

int blob_release(kv_txn *t, const job_env *env, aj_slice ref) {
    assert(ref.n == BLOB_REF_LEN);
    const uint8_t *hash = ref.p;
    blob_rec r;
    int rc = rec_read(t, hash, &r);
    if (rc == AJ_ENOTFOUND) {
        /* Nothing to release: damage from outside, which `aj check` reports. Deleting the
         * job must not be blocked by it. */
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (r.refs > 1) {
        r.refs--;
        return rec_write(t, hash, &r);
    }
    r.refs = 0;
    if (kv_txn_ops(t) + r.n_chunks + 2 <= BLOB_FREE_INLINE_OPS) {
        return delete_blob(t, hash, &r);
    }
    if ((rc = set_gc(t, hash, &r, env->now_ms)) != 0) {
        return rc;
    }
    return rec_write(t, hash, &r);
}

typedef struct chunk_walk {
    aj_buf *out;
    uint32_t next;
    uint32_t n_chunks;
    uint32_t chunk;
    uint64_t len;
    int bad;
} chunk_walk;

static int chunk_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)version;
    chunk_walk *w = ud;
    if (klen != 1 + AJ_SHA256_LEN + 4 || aj__get_u32be(key + 1 + AJ_SHA256_LEN) != w->next) {
        w->bad = 1;
        return 1;
    }
    uint64_t want = w->next + 1 < w->n_chunks ? w->chunk : w->len - (uint64_t)w->next * w->chunk;
    if (vlen != want) {
        w->bad = 1;
        return 1;
    }
    aj__buf_add(w->out, val, vlen);
    w->next++;
    return w->next == w->n_chunks;
}

int blob_read(kv_txn *t, aj_slice ref, aj_buf *out) {
    if (ref.n != BLOB_REF_LEN) {
        return aj__err(AJ_ECORRUPT, "blob reference is %zu bytes, not %d", ref.n, BLOB_REF_LEN);
    }
    const uint8_t *hash = ref.p;
    char hex[2 * AJ_SHA256_LEN + 1];
    hex_of(hash, hex);
    blob_rec r;
    int rc = rec_read(t, hash, &r);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ECORRUPT, "blob %s is missing", hex);
    }
    if (rc != 0) {
        return rc;
    }
    if (!(r.flags & BLOB_COMPLETE) || r.len != aj__get_u64be(ref.p + AJ_SHA256_LEN)) {
        return aj__err(AJ_ECORRUPT, "blob %s is incomplete or of another length", hex);
    }
    size_t start = out->len;
    if (r.len > SIZE_MAX - start || aj__buf_reserve(out, (size_t)r.len + 1) != 0) {
        return aj__err(AJ_ENOMEM, "out of memory reading blob %s (%llu bytes)", hex,
                       (unsigned long long)r.len);
    }
    chunk_walk w = {out, 0, r.n_chunks, r.chunk, r.len, 0};
    if (r.n_chunks > 0) {
        akey k;
        key_chunk(&k, hash, 0);
        rc = kv_scan_prefix(t, k.b, 1 + AJ_SHA256_LEN, 0, r.n_chunks, chunk_cb, &w);
        if (rc != 0) {
            return rc;
        }
    }
    if (out->oom) {
        return aj__err(AJ_ENOMEM, "out of memory reading blob %s", hex);
    }
    uint8_t got[AJ_SHA256_LEN];
    if (!w.bad && w.next == r.n_chunks && out->len - start == r.len) {
        aj__sha256(out->p + start, (size_t)r.len, got);
    }
    if (w.bad || w.next != r.n_chunks || out->len - start != r.len ||
        memcmp(got, hash, AJ_SHA256_LEN) != 0) {
        out->len = start;
        return aj__err(AJ_ECORRUPT, "blob %s: chunk %u is missing or damaged", hex, w.next);
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Job records                                                                               */

int blob_job_set_payload(kv_txn *t, const job_env *env, job_rec *r, aj_slice payload,
                         uint8_t ref[BLOB_REF_LEN]) {
    r->flags &= ~(uint32_t)JOB_FLAG_PAYLOAD_BLOB;
    r->payload = payload;
    if (payload.n <= blob_threshold(env)) {
        return 0;
    }
    int rc = blob_acquire(t, env, payload, ref);
    if (rc == 0) {
        r->payload.p = ref;
        r->payload.n = BLOB_REF_LEN;
        r->flags |= JOB_FLAG_PAYLOAD_BLOB;
    }
    return rc;
}

int blob_job_set_result(kv_txn *t, const job_env *env, job_rec *r, aj_slice result,
                        uint8_t ref[BLOB_REF_LEN]) {
    int rc = 0;
    if (r->flags & JOB_FLAG_RESULT_BLOB) {
        rc = blob_release(t, env, r->result);
    }
    r->flags &= ~(uint32_t)JOB_FLAG_RESULT_BLOB;
    r->result = result;
    if (rc != 0 || result.n <= blob_threshold(env)) {
        return rc;
    }
    rc = blob_acquire(t, env, result, ref);
    if (rc == 0) {
        r->result.p = ref;
        r->result.n = BLOB_REF_LEN;
        r->flags |= JOB_FLAG_RESULT_BLOB;
    }
    return rc;
}

int blob_job_release(kv_txn *t, const job_env *env, const job_rec *r) {
    int rc = 0;
    if (r->flags & JOB_FLAG_PAYLOAD_BLOB) {
        rc = blob_release(t, env, r->payload);
    }
    if (rc == 0 && (r->flags & JOB_FLAG_RESULT_BLOB)) {
        rc = blob_release(t, env, r->result);
    }
    return rc;
}

int blob_job_public(kv_txn *t, const job_rec *r, aj_job **out) {
    job_rec v = *r;
    aj_buf payload = AJ_BUF_INIT, result = AJ_BUF_INIT;
    int rc = 0;
    if (r->flags & JOB_FLAG_PAYLOAD_BLOB) {
        rc = blob_read(t, r->payload, &payload);
        v.payload.p = payload.p ? payload.p : (const uint8_t *)"";
        v.payload.n = payload.len;
    }
    if (rc == 0 && (r->flags & JOB_FLAG_RESULT_BLOB)) {
        rc = blob_read(t, r->result, &result);
        v.result.p = result.p ? result.p : (const uint8_t *)"";
        v.result.n = result.len;
    }
    v.flags &= ~(uint32_t)(JOB_FLAG_PAYLOAD_BLOB | JOB_FLAG_RESULT_BLOB);
    if (rc != 0) {
        rc = aj__err_wrap(rc, "job %llu", (unsigned long long)r->id);
    } else {
        *out = job_rec_to_public(&v);
        if (*out == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory reading job %llu", (unsigned long long)r->id);
        }
    }
    aj__buf_free(&payload);
    aj__buf_free(&result);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Staging and collection                                                                    */

int blob_stage(kv_txn *t, const job_env *env, const uint8_t hash[AJ_SHA256_LEN], aj_slice data,
               size_t batch_bytes, uint32_t *next) {
    blob_rec r;
    uint32_t from = *next;
    int rc = rec_read(t, hash, &r);
    if (rc == AJ_ENOTFOUND) {
        r = rec_new(env, data.n);
        from = 0; /* new, or collected since the previous batch */
        rc = set_gc(t, hash, &r, env->now_ms + BLOB_STAGE_GRACE_MS);
    } else if (rc == 0 && r.len != data.n) {
        return aj__err(AJ_ECORRUPT, "blob record disagrees with its content's length");
    } else if (rc == 0 && r.refs == 0) {
        /* Keep it through the grace period: its job is about to reference it. */
        rc = set_gc(t, hash, &r, env->now_ms + BLOB_STAGE_GRACE_MS);
    }
    if (rc != 0) {
        return rc;
    }
    if (r.flags & BLOB_COMPLETE) {
        *next = UINT32_MAX;
        return rec_write(t, hash, &r);
    }
    uint32_t per = batch_bytes < BLOB_CHUNK ? 1 : (uint32_t)(batch_bytes / BLOB_CHUNK);
    uint32_t to = r.n_chunks - from < per ? r.n_chunks : from + per;
    if ((rc = put_chunks(t, hash, data, from, to)) != 0) {
        return rc;
    }
    if (to == r.n_chunks) {
        r.flags |= BLOB_COMPLETE;
        *next = UINT32_MAX;
    } else {
        *next = to;
    }
    return rec_write(t, hash, &r);
}

int blob_unstage(kv_txn *t, const uint8_t hash[AJ_SHA256_LEN], int64_t due) {
    blob_rec r;
    int rc = rec_read(t, hash, &r);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0 || r.refs != 0 || r.gc_due != due) {
        return rc;
    }
    return delete_blob(t, hash, &r);
}

typedef struct gc_due {
    uint8_t hashes[64][AJ_SHA256_LEN];
    int64_t due[64];
    size_t n;
} gc_due;

static int gc_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                 uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    gc_due *d = ud;
    if (klen != 10 + AJ_SHA256_LEN) {
        return 0;
    }
    d->due[d->n] = (int64_t)aj__get_u64be(key + 2);
    memcpy(d->hashes[d->n++], key + 10, AJ_SHA256_LEN);
    return d->n == 64;
}

int blob_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n) {
    gc_due d = {.n = 0};
    akey start, end;
    start.b[0] = KEY_BLOB;
    start.b[1] = BLOB_SUB_GC;
    start.n = 2;
    uint8_t none[AJ_SHA256_LEN];
    memset(none, 0xff, sizeof none);
    key_blob_gc(&end, env->now_ms, none);
    size_t cap = limit < 64 ? limit : 64;
    int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, cap, gc_cb, &d);
    size_t done = 0;
    for (size_t i = 0; i < d.n && rc == 0; i++) {
        blob_rec r;
        rc = rec_read(t, d.hashes[i], &r);
        if (rc == 0 && r.refs == 0 && r.gc_due == d.due[i]) {
            rc = delete_blob(t, d.hashes[i], &r);
        } else if (rc == 0 || rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            /* A stray entry: the record moved on (referenced again, re-queued) or is gone. */
            akey k;
            key_blob_gc(&k, d.due[i], d.hashes[i]);
            rc = kv_del(t, k.b, k.n);
        }
        done++;
        if (kv_txn_ops(t) > BLOB_FREE_INLINE_OPS) {
            break;
        }
    }
    if (rc == 0) {
        *out_n = done;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Statistics and checks                                                                     */

typedef struct stats_walk {
    aj_blob_stats *s;
    int rc;
} stats_walk;

static int stats_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)key;
    (void)version;
    stats_walk *w = ud;
    blob_rec r;
    if (klen != 2 + AJ_SHA256_LEN || rec_decode(val, vlen, &r) != 0) {
        return 0; /* `aj check` reports it */
    }
    w->s->count++;
    w->s->chunks += r.n_chunks;
    w->s->bytes += r.len;
    w->s->refs += r.refs;
    if (r.refs == 0) {
        w->s->unreferenced++;
    }
    return 0;
}

int blob_stats_get(kv_txn *t, aj_blob_stats *out) {
    aj_blob_stats s;
    memset(&s, 0, sizeof s);
    stats_walk w = {&s, 0};
    uint8_t prefix[2] = {KEY_BLOB, BLOB_SUB_RECORD};
    int rc = kv_scan_prefix(t, prefix, sizeof prefix, 0, 0, stats_cb, &w);
    if (rc == 0) {
        *out = s;
    }
    return rc;
}

/* A reference found in a job record; sorted by hash, so counting is one binary search per
 * blob. `seen` marks the references of blobs that exist. */
typedef struct ref_count {
    uint8_t hash[AJ_SHA256_LEN];
    int seen;
} ref_count;

typedef struct check_walk {
    kv_txn *t;
    check_report rep;
    ref_count *v;
    size_t n, cap;
    int rc;
} check_walk;

static int add_ref(check_walk *w, aj_slice ref) {
    ref_count *nv = aj__grow(w->v, &w->cap, w->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory checking blobs");
    }
    w->v = nv;
    memcpy(w->v[w->n].hash, ref.p, AJ_SHA256_LEN);
    w->v[w->n++].seen = 0;
    return 0;
}

static int ref_cmp(const void *a, const void *b) {
    return memcmp(((const ref_count *)a)->hash, ((const ref_count *)b)->hash, AJ_SHA256_LEN);
}

/* The references to `hash` (marked seen): their number. */
static uint64_t refs_to(check_walk *w, const uint8_t *hash) {
    size_t lo = 0, hi = w->n;
    while (lo < hi) { /* the first entry >= hash */
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(w->v[mid].hash, hash, AJ_SHA256_LEN) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    uint64_t n = 0;
    for (size_t i = lo; i < w->n && memcmp(w->v[i].hash, hash, AJ_SHA256_LEN) == 0; i++) {
        w->v[i].seen = 1;
        n++;
    }
    return n;
}

static int check_job_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                        uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    check_walk *w = ud;
    job_rec r;
    if (job_rec_decode(val, vlen, &r) != 0) {
        return 0; /* job_check reports it */
    }
    if ((r.flags & JOB_FLAG_PAYLOAD_BLOB) && (w->rc = add_ref(w, r.payload)) != 0) {
        return 1;
    }
    if ((r.flags & JOB_FLAG_RESULT_BLOB) && (w->rc = add_ref(w, r.result)) != 0) {
        return 1;
    }
    return 0;
}

typedef struct chunk_count {
    uint32_t n;
    uint32_t expect;
} chunk_count;

static int count_chunk_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)version;
    chunk_count *c = ud;
    c->n++;
    return 0;
}

static int check_blob_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                         uint64_t version) {
    (void)version;
    check_walk *w = ud;
    char hex[2 * AJ_SHA256_LEN + 1];
    if (klen != 2 + AJ_SHA256_LEN) {
        check_problem(&w->rep, "a blob key of %zu bytes is malformed", klen);
        return 0;
    }
    const uint8_t *hash = key + 2;
    hex_of(hash, hex);
    blob_rec r;
    if (rec_decode(val, vlen, &r) != 0) {
        check_problem(&w->rep, "blob %s: record cannot be decoded", hex);
        return 0;
    }
    uint64_t want = refs_to(w, hash);
    if (r.refs != want) {
        check_problem(&w->rep, "blob %s: records %llu references, jobs hold %llu", hex,
                      (unsigned long long)r.refs, (unsigned long long)want);
    }
    if (want > 0 && !(r.flags & BLOB_COMPLETE)) {
        check_problem(&w->rep, "blob %s: referenced but incomplete", hex);
    }
    if ((r.refs == 0) != (r.gc_due != 0)) {
        check_problem(&w->rep, "blob %s: collection entry does not match its references", hex);
    }
    if (r.gc_due != 0) {
        akey g;
        key_blob_gc(&g, r.gc_due, hash);
        const uint8_t *gv;
        size_t gn;
        int rc = kv_get(w->t, g.b, g.n, &gv, &gn);
        if (rc == AJ_ENOTFOUND) {
            check_problem(&w->rep, "blob %s: its collection entry is missing", hex);
        } else if (rc != 0) {
            w->rc = rc;
            return 1;
        }
    }
    if (r.flags & BLOB_COMPLETE) {
        akey k;
        key_chunk(&k, hash, 0);
        chunk_count c = {0, r.n_chunks};
        int rc = kv_scan_prefix(w->t, k.b, 1 + AJ_SHA256_LEN, 0, 0, count_chunk_cb, &c);
        if (rc != 0) {
            w->rc = rc;
            return 1;
        }
        if (c.n != r.n_chunks) {
            check_problem(&w->rep, "blob %s: %u of its %u chunks are stored", hex, c.n, r.n_chunks);
        }
    }
    return 0;
}

int blob_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
               uint64_t *out_problems) {
    check_walk w = {t, {report, ud, 0}, NULL, 0, 0, 0};
    akey k;
    key_prefix(&k, KEY_JOB);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, check_job_cb, &w);
    if (rc == 0 && w.rc == 0) {
        if (w.n > 1) {
            qsort(w.v, w.n, sizeof *w.v, ref_cmp);
        }
        uint8_t prefix[2] = {KEY_BLOB, BLOB_SUB_RECORD};
        rc = kv_scan_prefix(t, prefix, sizeof prefix, 0, 0, check_blob_cb, &w);
    }
    for (size_t i = 0; i < w.n && rc == 0 && w.rc == 0; i++) {
        if (!w.v[i].seen && (i == 0 || ref_cmp(&w.v[i - 1], &w.v[i]) != 0)) {
            char hex[2 * AJ_SHA256_LEN + 1];
            hex_of(w.v[i].hash, hex);
            check_problem(&w.rep, "blob %s: referenced by jobs but not stored", hex);
        }
    }
    aj__free(w.v);
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_problems = w.rep.problems;
    }
    return rc;
}
