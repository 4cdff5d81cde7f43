/*
 * jobs.c — the job lifecycle over one storage transaction (see jobs.h).
 *
 * Invariant: a job record in state X has exactly the index entries listed for X in jobs.h, and
 * every index entry names a record in the matching state. Each transition reads the record,
 * checks the state (and for a lease holder, the epoch), and rewrites the record and its index
 * entries in the caller's transaction. job_check() verifies the invariant.
 */
#include "core/jobs.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/deps.h"
#include "core/blob.h"
#include "core/job_hooks.h"
#include "core/keys.h"
#include "core/progress.h"
#include "core/queue_ctl.h"
#include "core/route.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"
#include "util/sha256.h"

/* Most queues one claim may name. */
#define JOB_CLAIM_QUEUES_MAX 1024
/* Ready jobs a claim looks at beyond the ones it takes, per queue, to get past jobs the
 * claimer has no handler for. */
#define JOB_CLAIM_LOOKAHEAD 64
/* Most jobs one claim may take. */
#define JOB_CLAIM_MAX 1024
/* Unreadable job records (a newer format, or damage) one claim or duty transaction looks past:
 * beyond this many at the head of an index, what lies behind waits for a newer aj or a repair. */
#define JOB_UNREADABLE_SKIP_MAX 4096
/* Longest time a job may be delayed or backed off (about 100 years), so times stay in range. */
#define JOB_DELAY_MAX ((int64_t)100 * 365 * AJ_DAY)
/* Latest run-at time accepted (9999-12-31), so that adding any delay stays in range. */
#define JOB_TIME_MAX ((int64_t)253402300799999)
/* Most attempts a job may be given. */
#define JOB_ATTEMPTS_MAX 1000000u

#define COUNT(env, field)                                                                          \
    do {                                                                                           \
        if ((env)->delta != NULL) {                                                                \
            (env)->delta->field++;                                                                 \
        }                                                                                          \
    } while (0)

/* ----------------------------------------------------------------------------------------- */
/* Record I/O                                                                                */

static int put_rec(kv_txn *t, const job_rec *r) {
    aj_buf b = AJ_BUF_INIT;
    int rc = job_rec_encode(r, &b);
    if (rc == 0) {
        akey k;
        key_job(&k, r->id);
        rc = kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj_buf_free(&b);
    return rc;
}

/* job_read that tells a record it cannot decode (*undecodable = 1) from a storage error, which
 * can carry the same code (a damaged SQLite file is AJ_ECORRUPT too). */
static int read_job(kv_txn *t, uint64_t id, job_rec *out, int *undecodable) {
    akey k;
    key_job(&k, id);
    const uint8_t *v;
    size_t n;
    *undecodable = 0;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "job %llu not found", (unsigned long long)id);
    }
    if (rc != 0) {
        return rc;
    }
    rc = job_rec_decode(v, n, out);
    if (rc != 0) {
        *undecodable = 1;
        return aj__err_wrap(rc, "job %llu", (unsigned long long)id);
    }
    return 0;
}

int job_read(kv_txn *t, uint64_t id, job_rec *out) {
    int undecodable;
    return read_job(t, id, out, &undecodable);
}

/* Reads a job for a claim or a duty: 1 when its record cannot be decoded. Such a record —
 * written by a newer aj during a rolling upgrade, or damaged — is not a dangling index entry:
 * deleting its entries would lose the job for good. The caller skips it, leaving the record and
 * its entries exactly as they are; the runtime logs and counts it once; aj check reports it. */
static int read_or_skip(kv_txn *t, const job_env *env, uint64_t id, job_rec *out, int *rc,
                        size_t *skipped) {
    int undecodable;
    *rc = read_job(t, id, out, &undecodable);
    if (!undecodable) {
        return 0;
    }
    if (env->unreadable != NULL) {
        env->unreadable(env->unreadable_ud, id, *rc, aj_errmsg());
    }
    (*skipped)++;
    *rc = 0;
    return 1;
}

static int put_empty(kv_txn *t, const akey *k) {
    return kv_put(t, k->b, k->n, "", 0);
}

static void index_key(akey *k, const job_rec *r);

static int del_key(kv_txn *t, const akey *k) {
    return kv_del(t, k->b, k->n);
}

static void ready_key(akey *k, const job_rec *r) {
    key_ready(k, (const char *)r->queue.p, r->queue.n, r->priority, r->ready_us, r->id);
}

/* Each state has exactly one index entry (keys.h); ready, running and scheduled jobs, which
 * change most often, touch one index key per transition. */
static void index_key(akey *k, const job_rec *r) {
    switch (r->state) {
    case AJ_STATE_SCHEDULED:
        key_time_id(k, KEY_DELAYED, r->run_at_ms, r->id);
        return;
    case AJ_STATE_READY:
        ready_key(k, r);
        return;
    case AJ_STATE_RUNNING:
        key_time_id(k, KEY_LEASE, r->lease_expires_ms, r->id);
        return;
    case AJ_STATE_COMPLETED:
    case AJ_STATE_CANCELLED:
        key_time_id(k, KEY_FINISHED, r->finished_ms, r->id);
        return;
    case AJ_STATE_DEAD:
        key_state(k, AJ_STATE_DEAD, r->id);
        return;
    }
    assert(!"job state out of range");
}

/* Removes the index entry of the record's current state. */
static int unindex(kv_txn *t, const job_rec *r) {
    akey k;
    index_key(&k, r);
    return del_key(t, &k);
}

/* Writes the index entry of the record's current state. Finished entries carry the state, so
 * completed and cancelled jobs can be counted from the one index. */
static int index_rec(kv_txn *t, const job_rec *r) {
    akey k;
    index_key(&k, r);
    uint8_t state = (uint8_t)r->state;
    return kv_put(t, k.b, k.n, &state, 1);
}

/* Moves a record to its new state: `before` is the stored record, `after` the new one. Modules
 * that follow jobs (dependencies, workflows) learn of finished and redriven jobs in the same
 * transaction (job_hooks.h). */
static int transition(kv_txn *t, const job_env *env, const job_rec *before, const job_rec *after) {
    job_rec freed;
    if ((before->flags & JOB_FLAG_SLOT) && after->state != AJ_STATE_RUNNING) {
        /* The lease that held a slot of the queue's concurrency limit ends here. */
        int src = qctl_slot_release(t, before->queue);
        if (src != 0) {
            return src;
        }
        freed = *after;
        freed.flags &= ~JOB_FLAG_SLOT;
        after = &freed;
    }
    int rc = unindex(t, before);
    if (rc == 0) {
        rc = index_rec(t, after);
    }
    if (rc == 0) {
        rc = put_rec(t, after);
    }
    if (rc == 0 && after->owner.p != NULL) {
        rc = job_hook_owned(t, env, before, after);
    }
    if (rc == 0 && !aj_state_is_final(before->state) && aj_state_is_final(after->state)) {
        rc = job_hook_finished(t, env, after);
    } else if (rc == 0 && before->state == AJ_STATE_DEAD && after->state != AJ_STATE_DEAD) {
        rc = job_hook_redriven(t, env, after);
    }
    return rc;
}

/* An index entry that does not match its record (damage from outside the engine, or a bug):
 * the record is the truth. The stray entry is removed and the record's own entry rewritten, so
 * one bad entry never blocks the duties that walk the index. A missing record leaves nothing to
 * index. */
static int repair_index(kv_txn *t, const uint8_t *key, size_t klen, uint64_t id) {
    int rc = kv_del(t, key, klen);
    job_rec r;
    if (rc == 0) {
        rc = job_read(t, id, &r);
        if (rc == 0) {
            rc = index_rec(t, &r);
        } else if (rc == AJ_ENOTFOUND) {
            rc = 0;
        }
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Submit                                                                                    */

int job_spec_check(const aj_job_spec *s) {
    int rc;
    if (s->queue != NULL && (rc = aj_name_check("queue", s->queue)) != 0) {
        return rc;
    }
    if (s->type == NULL) {
        return aj__err(AJ_EINVAL, "a job needs a type");
    }
    if ((rc = aj_name_check("type", s->type)) != 0) {
        return rc;
    }
    if (s->payload_len > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "payload is %zu bytes, over the %zu-byte limit", s->payload_len,
                       AJ_PAYLOAD_MAX);
    }
    if (s->payload_len > 0 && s->payload == NULL) {
        return aj__err(AJ_EINVAL, "payload is NULL but payload_len is %zu", s->payload_len);
    }
    if (s->delay_ms < 0 || s->delay_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "delay must be between 0 and 100 years");
    }
    if (s->delay_ms > 0 && s->run_at_ms > 0) {
        return aj__err(AJ_EINVAL, "give a delay or a run-at time, not both");
    }
    if (s->run_at_ms < 0 || s->run_at_ms > JOB_TIME_MAX) {
        return aj__err(AJ_EINVAL, "run-at time must be between 1970 and 9999");
    }
    if (s->timeout_ms <= 0 || s->timeout_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "timeout must be positive and at most 100 years");
    }
    if (s->lease_ms < AJ_LEASE_MIN_MS || s->lease_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL,
                       "lease must be at least %dms (AJ_LEASE_MIN_MS: a shorter one can expire "
                       "during an ordinary commit) and at most 100 years",
                       AJ_LEASE_MIN_MS);
    }
    if (s->max_attempts < 1 || s->max_attempts > JOB_ATTEMPTS_MAX) {
        return aj__err(AJ_EINVAL, "max attempts must be between 1 and %u", JOB_ATTEMPTS_MAX);
    }
    if (s->backoff.kind > AJ_BACKOFF_LIST ||
        (s->backoff.kind == AJ_BACKOFF_LIST &&
         (s->backoff.n_delays < 1 || s->backoff.n_delays > AJ_BACKOFF_LIST_MAX))) {
        return aj__err(AJ_EINVAL, "invalid backoff policy");
    }
    if (s->idempotency_key != NULL && (rc = aj_idempotency_key_check(s->idempotency_key)) != 0) {
        return rc;
    }
    if ((rc = route_spec_check(s)) != 0) {
        return rc;
    }
    if (s->metadata != NULL) {
        size_t n = strlen(s->metadata);
        if (n > AJ_METADATA_MAX) {
            return aj__err(AJ_ETOOBIG, "metadata is %zu bytes, over the %zu-byte limit", n,
                           AJ_METADATA_MAX);
        }
        json_error_t jerr;
        json_t *m = json_loadb(s->metadata, n, 0, &jerr);
        int is_obj = m != NULL && json_is_object(m);
        json_decref(m);
        if (!is_obj) {
            return aj__err(AJ_EINVAL, "metadata must be a JSON object%s%s", m ? "" : ": ",
                           m ? "" : jerr.text);
        }
    }
    return 0;
}

/* The fingerprint that tells whether a repeated idempotency key names the same job: SHA-256 of
 * the type (with its NUL) and the payload, so two different jobs never share one (a 64-bit
 * FNV-1a, the format 1 fingerprint, could collide and hand back the old job's id). */
static void job_fingerprint(const char *type, const void *payload, size_t len,
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

typedef struct idem_rec {
    uint64_t id;
    int64_t expires;
    int format;
    const uint8_t *fp; /* format 2: AJ_SHA256_LEN bytes; format 1: 8 bytes */
} idem_rec;

static int idem_decode(const uint8_t *v, size_t n, idem_rec *out) {
    if (n == IDEM_REC_LEN_V1) {
        out->format = 1;
        out->id = aj_get_u64be(v);
        out->expires = (int64_t)aj_get_u64be(v + 8);
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
    out->id = aj_get_u64be(v + 1);
    out->expires = (int64_t)aj_get_u64be(v + 9);
    out->fp = v + 17;
    return 0;
}

/* 1 when a record's fingerprint is the spec's. */
static int idem_same_job(const idem_rec *r, const aj_job_spec *s, const uint8_t *fp) {
    if (r->format == 1) {
        return aj_get_u64be(r->fp) == job_fingerprint_v1(s->type, s->payload, s->payload_len);
    }
    return memcmp(r->fp, fp, AJ_SHA256_LEN) == 0;
}

/* Looks the key up: *out_id is nonzero when a live record names a job. */
static int idem_lookup(kv_txn *t, const job_env *env, const aj_job_spec *s, const char *queue,
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
    if ((rc = idem_decode(v, n, &r)) != 0) {
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

static int idem_store(kv_txn *t, const job_env *env, const aj_job_spec *s, const char *queue,
                      const uint8_t *fp, uint64_t id, int64_t old_expiry) {
    size_t qlen = strlen(queue), ilen = strlen(s->idempotency_key);
    akey k;
    int rc;
    if (old_expiry >= 0) {
        key_idem_expiry(&k, old_expiry, queue, qlen, s->idempotency_key, ilen);
        if ((rc = del_key(t, &k)) != 0) {
            return rc;
        }
    }
    int64_t expires = env->now_ms + env->idempotency_ttl_ms;
    uint8_t v[IDEM_REC_LEN];
    v[0] = IDEM_FORMAT;
    aj_put_u64be(v + 1, id);
    aj_put_u64be(v + 9, (uint64_t)expires);
    memcpy(v + 17, fp, AJ_SHA256_LEN);
    key_idem(&k, queue, qlen, s->idempotency_key, ilen);
    if ((rc = kv_put(t, k.b, k.n, v, sizeof v)) != 0) {
        return rc;
    }
    key_idem_expiry(&k, expires, queue, qlen, s->idempotency_key, ilen);
    return put_empty(t, &k);
}

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
        rc = idem_lookup(t, env, s, queue, fp, &existing, &old_expiry);
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
    r.queue = aj_slice_str(queue);
    r.type = aj_slice_str(s->type);
    aj_slice payload = {s->payload_len ? s->payload : (const void *)"", s->payload_len};
    uint8_t ref[BLOB_REF_LEN]; /* a large payload's reference (blob.h) */
    if ((rc = blob_job_set_payload(t, env, &r, payload, ref)) != 0) {
        return rc;
    }
    r.idem_key = aj_slice_str(s->idempotency_key);
    r.metadata = aj_slice_str(s->metadata);
    r.owner = owner;
    aj_buf route = AJ_BUF_INIT;
    if (route_spec_has(s)) {
        if ((rc = route_encode(s, &route)) != 0) {
            aj_buf_free(&route);
            return rc;
        }
        r.route.p = route.p;
        r.route.n = route.len;
    }
    rc = index_rec(t, &r);
    if (rc == 0) {
        rc = put_rec(t, &r);
    }
    aj_buf_free(&route);
    if (rc != 0) {
        return rc;
    }
    if (s->idempotency_key != NULL &&
        (rc = idem_store(t, env, s, queue, fp, id, old_expiry)) != 0) {
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
    return put_empty(t, &k);
}

typedef struct queue_walk {
    int (*fn)(void *ud, const char *queue);
    void *ud;
} queue_walk;

static int queue_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    queue_walk *w = ud;
    char name[AJ_NAME_MAX + 1];
    size_t n = klen - 1;
    if (n > AJ_NAME_MAX) {
        return 0;
    }
    memcpy(name, key + 1, n);
    name[n] = '\0';
    return w->fn(w->ud, name);
}

int job_list_queues(kv_txn *t, int (*fn)(void *ud, const char *queue), void *ud) {
    akey k;
    key_prefix(&k, KEY_QUEUE);
    queue_walk w = {fn, ud};
    return kv_scan_prefix(t, k.b, k.n, 0, 0, queue_cb, &w);
}

/* ----------------------------------------------------------------------------------------- */
/* Claim                                                                                     */

typedef struct candidate {
    uint32_t prio;
    int64_t ready_us;
    uint64_t id;
    size_t q; /* index of its queue in the claim's list */
} candidate;

typedef struct cand_list {
    candidate *v;
    size_t n, cap;
    size_t prefix_len;
    size_t q;
    int more;          /* some queue held more entries than were read */
    size_t skipped;    /* unreadable records skipped by this claim */
    size_t round_skip; /* ... in the current round of candidates */
} cand_list;

static int cand_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    cand_list *c = ud;
    if (klen != c->prefix_len + 20 || c->n == c->cap) {
        return 0; /* not an entry of this queue (a longer queue name); skip */
    }
    const uint8_t *p = key + c->prefix_len;
    candidate *d = &c->v[c->n++];
    d->prio = aj_get_u32be(p);
    d->ready_us = (int64_t)aj_get_u64be(p + 4);
    d->id = aj_get_u64be(p + 12);
    d->q = c->q;
    return 0;
}

static int cand_cmp(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->prio != y->prio) {
        return x->prio < y->prio ? -1 : 1;
    }
    if (x->ready_us != y->ready_us) {
        return x->ready_us < y->ready_us ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* 1 when the claimer may take this job under its routing (a job without routing: always). */
static int claim_routed_ok(const job_env *env, const job_claim_who *who, const job_rec *r,
                           int *rc) {
    if (r->route.p == NULL) {
        return 1;
    }
    job_route route;
    *rc = 0;
    if (route_decode(r->route, &route) != 0) {
        return 0; /* damaged (aj check reports it) or newer: no claimer here may take it */
    }
    return route_allows(&route, who != NULL ? &who->id : NULL, env->now_us, r->ready_us, NULL);
}

/* Reads up to `want` entries of each open queue's ready index into c, in claim order. */
static int claim_scan(kv_txn *t, const char *const *queues, size_t n_queues, const qctl_gate *gates,
                      size_t want, cand_list *c) {
    candidate *v = aj__realloc(c->v, want * n_queues * sizeof *v);
    if (v == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory claiming jobs");
    }
    c->v = v;
    c->n = 0;
    c->more = 0;
    c->round_skip = 0;
    int rc = 0;
    for (size_t q = 0; q < n_queues && rc == 0; q++) {
        if (gates[q].allowance == 0) {
            continue;
        }
        akey k;
        key_ready_prefix(&k, queues[q], strlen(queues[q]));
        size_t had = c->n;
        c->prefix_len = k.n;
        c->q = q;
        c->cap = c->n + want;
        rc = kv_scan_prefix(t, k.b, k.n, 0, want, cand_cb, c);
        c->more |= c->n - had == want;
    }
    if (rc == 0 && c->n > 0) {
        qsort(c->v, c->n, sizeof *c->v, cand_cmp);
    }
    return rc;
}

/* 1 while the claim has a candidate at *i. When a round of candidates ran out after skipping
 * unreadable records, the queues are read again that much further down, so those records never
 * hide the jobs behind them (up to JOB_UNREADABLE_SKIP_MAX); jobs already claimed have left the
 * ready index (a scan sees the transaction's own writes). */
static int claim_next(kv_txn *t, const char *const *queues, size_t n_queues, const qctl_gate *gates,
                      size_t per_queue, cand_list *c, size_t *i, int *rc) {
    if (*i < c->n) {
        return 1;
    }
    if (c->round_skip == 0 || !c->more || c->skipped > JOB_UNREADABLE_SKIP_MAX) {
        return 0;
    }
    *rc = claim_scan(t, queues, n_queues, gates, per_queue + c->skipped, c);
    *i = 0;
    return *rc == 0 && c->n > 0;
}

int job_claim(kv_txn *t, const job_env *env, const char *const *queues, size_t n_queues,
              const char *worker, const job_claim_who *who, size_t max, job_accept_fn accept,
              job_claim_fn fn, void *ud, size_t *out_n) {
    if (max == 0 || n_queues == 0) {
        *out_n = 0;
        return 0;
    }
    if (max > JOB_CLAIM_MAX || n_queues > JOB_CLAIM_QUEUES_MAX) {
        return aj__err(AJ_EINVAL, "a claim takes at most %d jobs from at most %d queues",
                       JOB_CLAIM_MAX, JOB_CLAIM_QUEUES_MAX);
    }
    /* Each queue's head, plus room to look past jobs this claimer cannot run or may not take. */
    size_t per_queue = accept != NULL || who != NULL ? max + JOB_CLAIM_LOOKAHEAD : max;
    cand_list c = {NULL, 0, per_queue * n_queues, 0, 0, 0, 0, 0};
    c.v = aj__malloc(c.cap * sizeof *c.v);
    qctl_gate *gates = aj__calloc(n_queues, sizeof *gates);
    if (c.v == NULL || gates == NULL) {
        aj__free(c.v);
        aj__free(gates);
        return aj__err(AJ_ENOMEM, "out of memory claiming jobs");
    }
    int rc = 0;
    size_t claimed = 0, limited = 0;
    size_t max_limited = who != NULL ? who->max_limited : SIZE_MAX;
    for (size_t q = 0; q < n_queues && rc == 0; q++) {
        /* A paused queue, or one at its limits, is not even read. */
        if ((rc = qctl_gate_open(t, env, queues[q], &gates[q])) != 0 || gates[q].allowance == 0) {
            continue;
        }
        akey k;
        key_ready_prefix(&k, queues[q], strlen(queues[q]));
        c.prefix_len = k.n;
        c.q = q;
        c.cap = c.n + per_queue;
        size_t had = c.n;
        rc = kv_scan_prefix(t, k.b, k.n, 0, per_queue, cand_cb, &c);
        c.more |= c.n - had == per_queue;
    }
    if (rc == 0 && c.n > 0) {
        qsort(c.v, c.n, sizeof *c.v, cand_cmp);
    }
    for (size_t i = 0;
         claimed < max && rc == 0 && claim_next(t, queues, n_queues, gates, per_queue, &c, &i, &rc);
         i++) {
        job_rec before, r;
        qctl_gate *g = &gates[c.v[i].q];
        if (g->allowance == 0 || (g->c.concurrency > 0 && limited >= max_limited)) {
            continue; /* the queue's limits are used up for this claim */
        }
        if (read_or_skip(t, env, c.v[i].id, &before, &rc, &c.round_skip)) {
            c.skipped++;
            continue;
        }
        if (rc == 0 && before.state != AJ_STATE_READY) {
            rc = AJ_ECORRUPT;
        }
        if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            akey k;
            const char *queue = queues[c.v[i].q];
            key_ready(&k, queue, strlen(queue), c.v[i].prio, c.v[i].ready_us, c.v[i].id);
            rc = repair_index(t, k.b, k.n, c.v[i].id);
            continue;
        }
        if (rc != 0) {
            break;
        }
        if (accept != NULL && !accept(ud, before.type)) {
            continue; /* left ready for a worker that can run it */
        }
        if (!claim_routed_ok(env, who, &before, &rc)) {
            continue; /* left ready for a worker its routing allows (or rc is set) */
        }
        r = before;
        r.state = AJ_STATE_RUNNING;
        r.attempts++;
        r.epoch++;
        r.started_ms = r.updated_ms = env->now_ms;
        r.lease_expires_ms = env->now_ms + job_lease_len(r.lease_ms);
        r.worker = aj_slice_str(worker);
        if (g->c.concurrency > 0) {
            r.flags |= JOB_FLAG_SLOT;
            limited++;
        }
        qctl_gate_take(g, env->now_ms);
        if ((rc = transition(t, env, &before, &r)) != 0) {
            break;
        }
        int64_t latency = env->now_us - before.ready_us;
        COUNT(env, claimed);
        claimed++;
        if (fn != NULL && (rc = fn(ud, &r, latency < 0 ? 0 : latency)) != 0) {
            break;
        }
    }
    for (size_t q = 0; q < n_queues; q++) {
        if (rc == 0) {
            rc = qctl_gate_close(t, queues[q], &gates[q]);
        }
        qctl_gate_free(&gates[q]);
    }
    aj__free(gates);
    aj__free(c.v);
    if (rc == 0) {
        *out_n = claimed;
    }
    return rc;
}

typedef struct slot_walk {
    kv_txn *t;
    const job_env *env;
    const char *queue;
    uint32_t n;
    int rc;
} slot_walk;

static int slot_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    slot_walk *w = ud;
    job_rec r;
    int rc = job_read(w->t, key_tail_id(key, klen), &r);
    if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT || rc == AJ_EFORMAT) {
        return 0; /* aj check reports it; the reaper repairs it */
    }
    if (rc == 0 && r.state == AJ_STATE_RUNNING && aj_slice_eq(r.queue, w->queue)) {
        w->n++;
        if (!(r.flags & JOB_FLAG_SLOT)) {
            r.flags |= JOB_FLAG_SLOT;
            rc = put_rec(w->t, &r);
        }
    }
    w->rc = rc;
    return rc != 0;
}

int job_take_slots(kv_txn *t, const job_env *env, const char *queue, uint32_t *out_n) {
    akey k;
    key_prefix(&k, KEY_LEASE);
    slot_walk w = {t, env, queue, 0, 0};
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, slot_cb, &w);
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_n = w.n;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Lease holders: heartbeat, complete, fail, release                                         */

/* Reads a running job and checks that `epoch` still holds its lease. */
static int read_leased(kv_txn *t, uint64_t id, uint64_t epoch, job_rec *out) {
    int rc = job_read(t, id, out);
    if (rc != 0) {
        return rc;
    }
    if (out->state == AJ_STATE_RUNNING && out->epoch == epoch) {
        return 0;
    }
    if (out->state == AJ_STATE_CANCELLED) {
        return aj__err(AJ_ECANCELLED, "job %llu was cancelled", (unsigned long long)id);
    }
    return aj__err(AJ_ESTALE, "lease epoch %llu of job %llu is stale (job is %s, epoch %llu)",
                   (unsigned long long)epoch, (unsigned long long)id, aj_state_name(out->state),
                   (unsigned long long)out->epoch);
}

int job_heartbeat(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch) {
    job_rec before, r;
    int rc = read_leased(t, id, epoch, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.lease_expires_ms = env->now_ms + job_lease_len(r.lease_ms);
    r.updated_ms = env->now_ms;
    if (r.lease_expires_ms == before.lease_expires_ms) {
        return put_rec(t, &r);
    }
    return transition(t, env, &before, &r);
}

int job_complete(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, aj_slice result) {
    if (result.n > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "result is %zu bytes, over the %zu-byte limit", result.n,
                       AJ_PAYLOAD_MAX);
    }
    job_rec before, r;
    int rc = read_leased(t, id, epoch, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.state = AJ_STATE_COMPLETED;
    r.finished_ms = r.updated_ms = env->now_ms;
    r.lease_expires_ms = 0;
    uint8_t ref[BLOB_REF_LEN]; /* a large result's reference (blob.h) */
    rc = blob_job_set_result(t, env, &r, result.p ? result : aj_slice_str(""), ref);
    if (rc != 0) {
        return rc;
    }
    COUNT(env, completed);
    return transition(t, env, &before, &r);
}

static aj_dead_reason dead_reason_for(job_failure how) {
    switch (how) {
    case JOB_FAIL_PERMANENT:
        return AJ_DEAD_PERMANENT;
    case JOB_FAIL_TIMEOUT:
        return AJ_DEAD_TIMEOUT;
    case JOB_FAIL_LEASE:
        return AJ_DEAD_LEASE_EXPIRED;
    case JOB_FAIL_RETRYABLE:
        break;
    }
    return AJ_DEAD_MAX_ATTEMPTS;
}

/* The delay before the next attempt, with up to 10% jitter. */
static int64_t retry_delay(const job_env *env, const job_rec *r) {
    int64_t d = aj_backoff_delay(&r->backoff, r->attempts);
    if (d < 0) {
        d = 0;
    }
    if (d > JOB_DELAY_MAX) {
        d = JOB_DELAY_MAX;
    }
    int64_t jitter_max = d / 10;
    if (jitter_max > 0) {
        d += (int64_t)(env->rand % (uint64_t)(jitter_max + 1));
    }
    return d;
}

/* Applies a failed attempt to `r` (a copy of the running record). */
static void apply_failure(const job_env *env, job_rec *r, job_failure how) {
    r->updated_ms = env->now_ms;
    r->lease_expires_ms = 0;
    COUNT(env, failed);
    if (how == JOB_FAIL_PERMANENT || r->attempts >= r->max_attempts) {
        r->state = AJ_STATE_DEAD;
        r->dead_reason = dead_reason_for(how);
        r->dead_ms = r->finished_ms = env->now_ms;
        COUNT(env, dead_lettered);
        return;
    }
    int64_t delay = retry_delay(env, r);
    COUNT(env, retried);
    r->run_at_ms = env->now_ms + delay;
    if (delay == 0) {
        r->state = AJ_STATE_READY;
        r->ready_us = env->now_us;
    } else {
        r->state = AJ_STATE_SCHEDULED;
    }
}

/* Keeps at most AJ_ERROR_MAX bytes of an error message, cut at a UTF-8 character boundary. */
static aj_slice error_slice(const char *error) {
    aj_slice s = aj_slice_str(error ? error : "failed");
    if (s.n > AJ_ERROR_MAX) {
        s.n = AJ_ERROR_MAX;
        while (s.n > 0 && (s.p[s.n] & 0xc0) == 0x80) {
            s.n--;
        }
    }
    return s;
}

int job_fail(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, job_failure how,
             const char *error, aj_slice result) {
    if (result.n > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "result is %zu bytes, over the %zu-byte limit", result.n,
                       AJ_PAYLOAD_MAX);
    }
    job_rec before, r;
    int rc = read_leased(t, id, epoch, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.error = error_slice(error);
    uint8_t ref[BLOB_REF_LEN]; /* a large result's reference (blob.h) */
    if (result.p != NULL && (rc = blob_job_set_result(t, env, &r, result, ref)) != 0) {
        return rc;
    }
    apply_failure(env, &r, how);
    return transition(t, env, &before, &r);
}

int job_release(kv_txn *t, const job_env *env, uint64_t id, uint64_t epoch, int64_t delay_ms) {
    if (delay_ms < 0 || delay_ms > JOB_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "release delay must be between 0 and 100 years");
    }
    job_rec before, r;
    int rc = read_leased(t, id, epoch, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    if (r.attempts > 0) {
        r.attempts--; /* a released attempt does not count */
    }
    r.updated_ms = env->now_ms;
    r.lease_expires_ms = 0;
    r.run_at_ms = env->now_ms + delay_ms;
    if (delay_ms == 0) {
        r.state = AJ_STATE_READY;
        r.ready_us = env->now_us;
    } else {
        r.state = AJ_STATE_SCHEDULED;
    }
    return transition(t, env, &before, &r);
}

/* ----------------------------------------------------------------------------------------- */
/* Operators: cancel, redrive, purge                                                         */

int job_cancel(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0) {
        return rc;
    }
    if (aj_state_is_final(before.state)) {
        return aj__err(AJ_ESTATE, "job %llu is already %s", (unsigned long long)id,
                       aj_state_name(before.state));
    }
    r = before;
    r.state = AJ_STATE_CANCELLED;
    r.finished_ms = r.updated_ms = env->now_ms;
    r.lease_expires_ms = 0;
    COUNT(env, cancelled);
    return transition(t, env, &before, &r);
}

int job_redrive(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0) {
        return rc;
    }
    if (before.state != AJ_STATE_DEAD) {
        return aj__err(AJ_ESTATE, "job %llu is %s, not dead", (unsigned long long)id,
                       aj_state_name(before.state));
    }
    r = before;
    r.state = AJ_STATE_READY;
    r.attempts = 0;
    r.redrives++;
    r.dead_reason = AJ_DEAD_NONE;
    r.dead_ms = r.finished_ms = 0;
    r.run_at_ms = r.updated_ms = env->now_ms;
    r.ready_us = env->now_us;
    COUNT(env, redriven);
    return transition(t, env, &before, &r);
}

int job_purge(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec r;
    int rc = job_read(t, id, &r);
    if (rc != 0) {
        return rc;
    }
    if (r.state != AJ_STATE_DEAD) {
        return aj__err(AJ_ESTATE, "job %llu is %s, not dead", (unsigned long long)id,
                       aj_state_name(r.state));
    }
    akey k;
    key_job(&k, id);
    if ((rc = unindex(t, &r)) != 0 || (rc = progress_delete(t, id)) != 0 ||
        (rc = deps_forget(t, env, id)) != 0 || (rc = blob_job_release(t, env, &r)) != 0) {
        return rc;
    }
    return del_key(t, &k);
}

/* ----------------------------------------------------------------------------------------- */
/* Dependencies (deps.h): holding a job until what it waits on has finished                  */

/* A job held for its dependencies is scheduled at AJ_RUN_AT_DEPS, past any real time, so the
 * promoter never takes it; deps.c keeps its own run-at in the dependency header. */
static int job_waiting(const job_rec *r) {
    return r->state == AJ_STATE_SCHEDULED && r->run_at_ms == AJ_RUN_AT_DEPS;
}

int job_hold(kv_txn *t, const job_env *env, uint64_t id, int64_t *out_run_at) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0) {
        return rc;
    }
    if (job_waiting(&before)) {
        *out_run_at = 0;
        return 0;
    }
    if (before.state != AJ_STATE_READY && before.state != AJ_STATE_SCHEDULED) {
        return aj__err(AJ_ESTATE, "job %llu is %s and cannot wait on dependencies",
                       (unsigned long long)id, aj_state_name(before.state));
    }
    r = before;
    *out_run_at = before.state == AJ_STATE_SCHEDULED ? before.run_at_ms : 0;
    r.state = AJ_STATE_SCHEDULED;
    r.run_at_ms = AJ_RUN_AT_DEPS;
    r.updated_ms = env->now_ms;
    return transition(t, env, &before, &r);
}

int job_unhold(kv_txn *t, const job_env *env, uint64_t id, int64_t run_at_ms) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0 || !job_waiting(&before)) {
        return rc;
    }
    r = before;
    r.updated_ms = env->now_ms;
    if (run_at_ms > env->now_ms) {
        r.state = AJ_STATE_SCHEDULED;
        r.run_at_ms = run_at_ms;
    } else {
        r.state = AJ_STATE_READY;
        r.run_at_ms = env->now_ms;
        r.ready_us = env->now_us;
    }
    return transition(t, env, &before, &r);
}

int job_dep_fail(kv_txn *t, const job_env *env, uint64_t id, const char *error) {
    job_rec before, r;
    int rc = job_read(t, id, &before);
    if (rc != 0 || !job_waiting(&before)) {
        return rc;
    }
    r = before;
    r.state = AJ_STATE_DEAD;
    r.dead_reason = AJ_DEAD_DEPENDENCY;
    r.dead_ms = r.finished_ms = r.updated_ms = env->now_ms;
    r.error = error_slice(error);
    COUNT(env, dead_lettered);
    return transition(t, env, &before, &r);
}

int job_discard(kv_txn *t, const job_env *env, uint64_t id) {
    job_rec r;
    int rc = job_read(t, id, &r);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    akey k;
    key_job(&k, id);
    if (rc != 0 || (rc = unindex(t, &r)) != 0 || (rc = progress_delete(t, id)) != 0 ||
        (rc = blob_job_release(t, env, &r)) != 0) {
        return rc;
    }
    return del_key(t, &k);
}

/* ----------------------------------------------------------------------------------------- */
/* Periodic duties                                                                           */

typedef struct due_list {
    uint64_t ids[256];
    int64_t times[256];
    size_t n, cap;
    int64_t next; /* first time past the window; INT64_MAX if none */
} due_list;

static int due_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    due_list *d = ud;
    if (klen != 17) {
        return 0;
    }
    if (d->n == d->cap) {
        d->next = key_time(key, klen);
        return 1;
    }
    d->times[d->n] = key_time(key, klen);
    d->ids[d->n++] = key_tail_id(key, klen);
    return 0;
}

/* Collects up to `limit` entries of a time index with times <= upto. */
static int scan_due_from(kv_txn *t, uint8_t kind, const akey *from, int64_t upto, size_t limit,
                         due_list *d) {
    d->n = 0;
    d->cap = limit < 256 ? limit : 256;
    d->next = INT64_MAX;
    akey start = *from, end;
    key_time_id(&end, kind, upto, UINT64_MAX);
    /* One extra entry tells the time of the next one due. */
    int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, d->cap + 1, due_cb, d);
    if (rc == 0 && d->n < d->cap) {
        /* Everything due was taken: look past the window for the next time. */
        akey after;
        key_time_id(&after, kind, upto, UINT64_MAX);
        akey stop;
        key_prefix(&stop, (uint8_t)(kind + 1));
        due_list next = {.n = 0, .cap = 0, .next = INT64_MAX};
        rc = kv_scan(t, after.b, after.n, stop.b, stop.n, 0, 1, due_cb, &next);
        d->next = next.next;
    }
    return rc;
}

static int scan_due(kv_txn *t, uint8_t kind, int64_t upto, size_t limit, due_list *d) {
    akey start;
    key_prefix(&start, kind);
    return scan_due_from(t, kind, &start, upto, limit, d);
}

/* 1 while a duty has an entry at *i. When a full window of due entries ran out after skipping
 * unreadable records, the entries after it are read (up to JOB_UNREADABLE_SKIP_MAX skipped and
 * `limit` handled), so those records never hold back the ones behind them. */
static int due_next(kv_txn *t, uint8_t kind, int64_t upto, size_t room, size_t skipped, due_list *d,
                    size_t *i, int *rc) {
    if (*i < d->n) {
        return 1;
    }
    if (skipped == 0 || skipped > JOB_UNREADABLE_SKIP_MAX || room == 0 || d->n < d->cap) {
        return 0;
    }
    akey from;
    key_time_id(&from, kind, d->times[d->n - 1], d->ids[d->n - 1] + 1);
    *rc = scan_due_from(t, kind, &from, upto, room, d);
    *i = 0;
    return *rc == 0 && d->n > 0;
}

int job_promote_due(kv_txn *t, const job_env *env, size_t limit, size_t *out_n, int64_t *out_next) {
    due_list d;
    int rc = scan_due(t, KEY_DELAYED, env->now_ms, limit, &d);
    size_t done = 0, skipped = 0;
    for (size_t i = 0;
         rc == 0 && due_next(t, KEY_DELAYED, env->now_ms, limit - done, skipped, &d, &i, &rc);
         i++) {
        job_rec before, r;
        if (read_or_skip(t, env, d.ids[i], &before, &rc, &skipped)) {
            continue;
        }
        if (rc == 0 && (before.state != AJ_STATE_SCHEDULED || before.run_at_ms != d.times[i])) {
            rc = AJ_ECORRUPT;
        }
        if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            akey k;
            key_time_id(&k, KEY_DELAYED, d.times[i], d.ids[i]);
            rc = repair_index(t, k.b, k.n, d.ids[i]);
            done++;
            continue;
        }
        if (rc != 0) {
            break;
        }
        r = before;
        r.state = AJ_STATE_READY;
        r.ready_us = r.run_at_ms * 1000;
        r.updated_ms = env->now_ms;
        rc = transition(t, env, &before, &r);
        done++;
    }
    if (rc == 0) {
        *out_n = done;
        if (out_next != NULL) {
            *out_next = d.next;
        }
    }
    return rc;
}

int job_reap_expired(kv_txn *t, const job_env *env, size_t limit, size_t *out_n,
                     int64_t *out_next) {
    due_list d;
    /* A lease covers [claim, expiry): it is expired from its expiry time on. Until the reaper
     * takes it, a late heartbeat still renews it: the epoch, not the clock, is what fences. */
    int rc = scan_due(t, KEY_LEASE, env->now_ms, limit, &d);
    size_t done = 0, skipped = 0;
    for (size_t i = 0;
         rc == 0 && due_next(t, KEY_LEASE, env->now_ms, limit - done, skipped, &d, &i, &rc); i++) {
        job_rec before, r;
        if (read_or_skip(t, env, d.ids[i], &before, &rc, &skipped)) {
            continue;
        }
        if (rc == 0 &&
            (before.state != AJ_STATE_RUNNING || before.lease_expires_ms != d.times[i])) {
            rc = AJ_ECORRUPT;
        }
        if (rc == AJ_ENOTFOUND || rc == AJ_ECORRUPT) {
            akey k;
            key_time_id(&k, KEY_LEASE, d.times[i], d.ids[i]);
            rc = repair_index(t, k.b, k.n, d.ids[i]);
            done++;
            continue;
        }
        if (rc != 0) {
            break;
        }
        if (env->lease_held != NULL &&
            env->lease_held(env->lease_held_ud, before.id, before.epoch)) {
            rc = job_heartbeat(t, env, before.id, before.epoch); /* ours and alive: renewed */
            done++;
            continue;
        }
        r = before;
        char msg[160 + AJ_NAME_MAX];
        snprintf(msg, sizeof msg, "lease expired: worker %.*s stopped heartbeating",
                 (int)(before.worker.n > 200 ? 200 : before.worker.n),
                 before.worker.p ? (const char *)before.worker.p : "?");
        r.error = aj_slice_str(msg);
        COUNT(env, lease_expired);
        apply_failure(env, &r, JOB_FAIL_LEASE);
        rc = transition(t, env, &before, &r);
        done++;
    }
    if (rc == 0) {
        *out_n = done;
        if (out_next != NULL) {
            *out_next = d.next;
        }
    }
    return rc;
}

typedef struct idem_due {
    akey keys[64];
    size_t n;
} idem_due;

static int idem_due_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    idem_due *d = ud;
    if (klen > KEY_MAX || d->n == 64) {
        return 1;
    }
    memcpy(d->keys[d->n].b, key, klen);
    d->keys[d->n].n = klen;
    d->n++;
    return 0;
}

int job_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n) {
    due_list d;
    int64_t upto = env->now_ms - env->retention_ms;
    int rc = scan_due(t, KEY_FINISHED, upto, limit, &d);
    size_t done = 0, skipped = 0;
    for (size_t i = 0;
         rc == 0 && due_next(t, KEY_FINISHED, upto, limit - done, skipped, &d, &i, &rc); i++) {
        job_rec r;
        if (read_or_skip(t, env, d.ids[i], &r, &rc, &skipped)) {
            continue;
        }
        if (rc == AJ_ENOTFOUND) {
            akey k;
            key_time_id(&k, KEY_FINISHED, d.times[i], d.ids[i]);
            rc = repair_index(t, k.b, k.n, d.ids[i]);
            done++;
            continue;
        }
        if (rc != 0) {
            break;
        }
        akey k;
        key_job(&k, r.id);
        if ((rc = unindex(t, &r)) == 0) {
            rc = del_key(t, &k);
        }
        if (rc == 0) {
            rc = progress_delete(t, r.id); /* progress goes with its job */
        }
        if (rc == 0) {
            rc = deps_forget(t, env, r.id); /* and so do its dependency edges */
        }
        if (rc == 0) {
            rc = blob_job_release(t, env, &r); /* and its large payload and result */
        }
        done++;
    }
    /* Expired idempotency keys: the X entry names the I record, which is removed only if it
     * still carries that expiry (a renewed key has a newer X entry). Batches run until none is
     * due or `limit` entries were handled. */
    size_t idem_done = 0;
    for (;;) {
        idem_due x = {.n = 0};
        if (rc == 0) {
            akey start, end;
            key_prefix(&start, KEY_IDEM_EXPIRY);
            key_time_id(&end, KEY_IDEM_EXPIRY, env->now_ms, 0);
            rc = kv_scan(t, start.b, start.n, end.b, 9, 0, 64, idem_due_cb, &x);
        }
        for (size_t i = 0; i < x.n && rc == 0; i++) {
            akey ik;
            ik.b[0] = KEY_IDEM;
            ik.n = x.keys[i].n - 8;
            memcpy(ik.b + 1, x.keys[i].b + 9, ik.n - 1);
            const uint8_t *v;
            size_t vn;
            rc = kv_get(t, ik.b, ik.n, &v, &vn);
            idem_rec ir;
            if (rc == 0 && idem_decode(v, vn, &ir) == 0 &&
                ir.expires == key_time(x.keys[i].b, x.keys[i].n)) {
                rc = del_key(t, &ik);
            } else if (rc == AJ_ENOTFOUND || rc == 0) {
                rc = 0;
            }
            if (rc == 0) {
                rc = del_key(t, &x.keys[i]);
            }
            idem_done++;
        }
        if (rc != 0 || x.n < 64 || idem_done >= limit) {
            break;
        }
    }
    done += idem_done;
    if (rc == 0) {
        *out_n = done;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Queries                                                                                   */

/* The index holding jobs of each state (finished states share one). */
static uint8_t state_index(aj_job_state st) {
    switch (st) {
    case AJ_STATE_SCHEDULED:
        return KEY_DELAYED;
    case AJ_STATE_READY:
        return KEY_READY;
    case AJ_STATE_RUNNING:
        return KEY_LEASE;
    case AJ_STATE_COMPLETED:
    case AJ_STATE_CANCELLED:
        return KEY_FINISHED;
    case AJ_STATE_DEAD:
        return KEY_STATE;
    }
    return 0;
}

static void index_range(uint8_t kind, akey *start, akey *end) {
    if (kind == KEY_STATE) {
        key_state_prefix(start, AJ_STATE_DEAD);
        key_state_prefix(end, (aj_job_state)(AJ_STATE_DEAD + 1));
    } else {
        key_prefix(start, kind);
        key_prefix(end, (uint8_t)(kind + 1));
    }
}

typedef struct count_walk {
    uint64_t *counts;
    aj_job_state state; /* for indexes that hold one state */
} count_walk;

static int count_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    count_walk *w = ud;
    aj_job_state st = w->state;
    if (st == 0) { /* the finished index: its value names the state */
        st = vlen == 1 && (val[0] == AJ_STATE_COMPLETED || val[0] == AJ_STATE_CANCELLED)
                 ? (aj_job_state)val[0]
                 : AJ_STATE_COMPLETED;
    }
    w->counts[st]++;
    return 0;
}

int job_count_states(kv_txn *t, uint64_t counts[AJ_STATE_COUNT]) {
    for (int s = 0; s < AJ_STATE_COUNT; s++) {
        counts[s] = 0;
    }
    const aj_job_state one[] = {AJ_STATE_SCHEDULED, AJ_STATE_READY, AJ_STATE_RUNNING, AJ_STATE_DEAD,
                                0};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        akey start, end;
        index_range(one[i] ? state_index(one[i]) : KEY_FINISHED, &start, &end);
        count_walk w = {counts, one[i]};
        int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, count_cb, &w);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

typedef struct pending_walk {
    kv_txn *t;
    const char *const *queues;
    size_t n_queues;
    int found;
    int rc;
} pending_walk;

static int queue_served(const pending_walk *w, aj_slice queue) {
    if (w->n_queues == 0) {
        return 1;
    }
    for (size_t i = 0; i < w->n_queues; i++) {
        if (aj_slice_eq(queue, w->queues[i])) {
            return 1;
        }
    }
    return 0;
}

/* For each id in an index: is that job one of the served queues? A record this process cannot
 * decode does not count: it cannot run it, so it must not hold a drain forever (the claims that
 * skip it log it). */
static int pending_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    pending_walk *w = ud;
    job_rec r;
    int undecodable;
    int rc = read_job(w->t, key_tail_id(key, klen), &r, &undecodable);
    if (undecodable) {
        return 0;
    }
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    if (queue_served(w, r.queue)) {
        w->found = 1;
        return 1;
    }
    return 0;
}

int job_any_pending(kv_txn *t, const char *const *queues, size_t n_queues, int64_t horizon_ms,
                    int *out_pending) {
    pending_walk w = {t, queues, n_queues, 0, 0};
    akey k, end;
    int rc = 0;
    /* Ready jobs: the per-queue index answers directly. */
    if (n_queues > 0) {
        for (size_t i = 0; i < n_queues && !w.found && rc == 0; i++) {
            key_ready_prefix(&k, queues[i], strlen(queues[i]));
            pending_walk any = {t, NULL, 0, 0, 0};
            rc = kv_scan_prefix(t, k.b, k.n, 0, 0, pending_cb, &any);
            w.found = any.found;
        }
    } else {
        key_prefix(&k, KEY_READY);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, pending_cb, &w);
    }
    if (rc == 0 && !w.found && w.rc == 0) {
        key_prefix(&k, KEY_LEASE);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, pending_cb, &w);
    }
    if (rc == 0 && !w.found && w.rc == 0) {
        key_prefix(&k, KEY_DELAYED);
        key_time_id(&end, KEY_DELAYED, horizon_ms, UINT64_MAX);
        rc = kv_scan(t, k.b, k.n, end.b, end.n, 0, 0, pending_cb, &w);
    }
    /* Jobs held on dependencies (run_at AJ_RUN_AT_DEPS) do not count: one is released only in
     * the transaction that finishes a job it waits on, and that job is counted above (ready,
     * running or due) whenever it can finish. */
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_pending = w.found;
    }
    return rc;
}

typedef struct list_walk {
    kv_txn *t;
    const job_env *env;
    const aj_job_filter *f;
    int (*fn)(void *ud, const job_rec *rec);
    void *ud;
    size_t emitted;
    int rc;
    uint64_t *ids; /* ids collected from a state's index */
    size_t n_ids, cap_ids;
} list_walk;

static int slice_contains(aj_slice hay, const char *needle) {
    size_t n = strlen(needle);
    if (n == 0) {
        return 1;
    }
    if (hay.p == NULL || hay.n < n) {
        return 0;
    }
    for (size_t i = 0; i + n <= hay.n; i++) {
        if (memcmp(hay.p + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int list_matches(const list_walk *w, const job_rec *r) {
    const aj_job_filter *f = w->f;
    return r->id > f->after_id && (f->queue == NULL || aj_slice_eq(r->queue, f->queue)) &&
           (f->type == NULL || aj_slice_eq(r->type, f->type)) &&
           (f->state == 0 || r->state == f->state) &&
           (f->dead_reason == AJ_DEAD_NONE || r->dead_reason == f->dead_reason) &&
           (f->error_contains == NULL || slice_contains(r->error, f->error_contains)) &&
           (f->older_than_ms == 0 || r->updated_ms < w->env->now_ms - f->older_than_ms);
}

/* Emits one record; returns nonzero to stop the walk. */
static int list_emit(list_walk *w, const job_rec *r) {
    if (!list_matches(w, r)) {
        return 0;
    }
    int rc = w->fn(w->ud, r);
    if (rc != 0) {
        w->rc = rc > 0 ? 0 : rc;
        return 1;
    }
    w->emitted++;
    return w->f->limit != 0 && w->emitted >= w->f->limit;
}

static int list_record_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)version;
    list_walk *w = ud;
    job_rec r;
    int rc = job_rec_decode(val, vlen, &r);
    if (rc != 0) {
        /* Named, as a read of that one job names it: the operator must find the record. */
        w->rc = aj__err_wrap(rc, "job %llu", (unsigned long long)key_tail_id(key, klen));
        return 1;
    }
    return list_emit(w, &r);
}

static int list_id_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)version;
    list_walk *w = ud;
    if (vlen == 1 && val[0] != (uint8_t)w->f->state) {
        return 0; /* the finished index holds completed and cancelled jobs */
    }
    uint64_t id = key_tail_id(key, klen);
    if (id <= w->f->after_id) {
        return 0;
    }
    if (w->n_ids == w->cap_ids) {
        size_t cap = w->cap_ids ? w->cap_ids * 2 : 256;
        uint64_t *nv = aj__realloc(w->ids, cap * sizeof *nv);
        if (nv == NULL) {
            w->rc = aj__err(AJ_ENOMEM, "out of memory listing jobs");
            return 1;
        }
        w->ids = nv;
        w->cap_ids = cap;
    }
    w->ids[w->n_ids++] = id;
    return 0;
}

static int id_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int job_list(kv_txn *t, const job_env *env, const aj_job_filter *f,
             int (*fn)(void *ud, const job_rec *rec), void *ud) {
    list_walk w = {t, env, f, fn, ud, 0, 0, NULL, 0, 0};
    akey start, end;
    int rc;
    if (f->state == 0) {
        /* Every job: walk the records in id order. */
        key_job(&start, f->after_id == UINT64_MAX ? f->after_id : f->after_id + 1);
        key_prefix(&end, KEY_JOB + 1);
        rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, list_record_cb, &w);
        return rc != 0 ? rc : w.rc;
    }
    /* One state: collect its ids from the state's index, then read them in id order. */
    index_range(state_index(f->state), &start, &end);
    rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, list_id_cb, &w);
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0 && w.n_ids > 0) {
        qsort(w.ids, w.n_ids, sizeof *w.ids, id_cmp);
        for (size_t i = 0; i < w.n_ids && rc == 0; i++) {
            job_rec r;
            rc = job_read(t, w.ids[i], &r);
            if (rc == 0 && list_emit(&w, &r)) {
                rc = w.rc;
                break;
            }
        }
    }
    aj__free(w.ids);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Consistency check                                                                         */

typedef struct check_walk {
    kv_txn *t;
    void (*report)(void *ud, const char *line);
    void *ud;
    uint64_t records, problems;
    int rc;
    uint8_t kind;
} check_walk;

static void problem(check_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(check_walk *w, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    w->problems++;
    if (w->report != NULL) {
        w->report(w->ud, line);
    }
}

static int check_record_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen, uint64_t version) {
    (void)version;
    check_walk *w = ud;
    w->records++;
    job_rec r;
    uint64_t id = klen == 9 ? key_tail_id(key, klen) : 0;
    if (klen != 9 || job_rec_decode(val, vlen, &r) != 0) {
        problem(w, "job %llu: record cannot be decoded: %s", (unsigned long long)id, aj_errmsg());
        return 0;
    }
    if (r.id != id) {
        problem(w, "job %llu: record carries id %llu", (unsigned long long)id,
                (unsigned long long)r.id);
    }
    job_route route;
    if (r.route.p != NULL && route_decode(r.route, &route) != 0) {
        problem(w, "job %llu: routing cannot be decoded: %s", (unsigned long long)id, aj_errmsg());
    }
    akey k;
    index_key(&k, &r);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(w->t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        problem(w, "job %llu (%s): its index entry is missing", (unsigned long long)id,
                aj_state_name(r.state));
    } else if (rc != 0) {
        w->rc = rc;
        return 1;
    } else if (n != 1 || v[0] != (uint8_t)r.state) {
        problem(w, "job %llu (%s): its index entry names another state", (unsigned long long)id,
                aj_state_name(r.state));
    }
    return 0;
}

/* For every index entry: the record exists and is in the state the index says. */
static int check_index_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)version;
    check_walk *w = ud;
    if (klen < 9 || vlen != 1) {
        problem(w, "an index entry of kind '%c' is malformed", w->kind);
        return 0;
    }
    uint64_t id = key_tail_id(key, klen);
    job_rec r;
    int undecodable;
    int rc = read_job(w->t, id, &r, &undecodable);
    if (undecodable) {
        return 0; /* the record itself is reported once, by check_record_cb */
    }
    if (rc == AJ_ENOTFOUND) {
        problem(w, "index '%c' names job %llu, which does not exist", w->kind,
                (unsigned long long)id);
        return 0;
    }
    if (rc != 0) {
        w->rc = rc; /* a storage error: the check cannot go on */
        return 1;
    }
    akey want;
    index_key(&want, &r);
    if (r.state != (aj_job_state)val[0] || want.n != klen || memcmp(want.b, key, klen) != 0) {
        problem(w, "index '%c' entry for job %llu does not match the record (%s)", w->kind,
                (unsigned long long)id, aj_state_name(r.state));
    }
    return 0;
}

int job_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
              uint64_t *out_records, uint64_t *out_problems) {
    check_walk w = {t, report, ud, 0, 0, 0, KEY_JOB};
    akey k;
    key_prefix(&k, KEY_JOB);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, check_record_cb, &w);
    const uint8_t kinds[] = {KEY_STATE, KEY_READY, KEY_DELAYED, KEY_LEASE, KEY_FINISHED};
    for (size_t i = 0; i < sizeof kinds && rc == 0 && w.rc == 0; i++) {
        w.kind = kinds[i];
        key_prefix(&k, kinds[i]);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, check_index_cb, &w);
    }
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_records = w.records;
        *out_problems = w.problems;
    }
    return rc;
}
