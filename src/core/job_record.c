/*
 * job_record.c — encoding and decoding of job records (see job_record.h). Decoding validates
 * every length against the input and every enum against its range, so a corrupt record gives
 * AJ_ECORRUPT and never a crash.
 */
#include "core/job_record.h"

#include <assert.h>
#include <string.h>

#include "core/route.h"
#include "util/err.h"
#include "util/mem.h"

/* Field-presence bits for the optional byte strings, in encoding order. */
enum {
    HAS_RESULT = 1,
    HAS_WORKER = 2,
    HAS_ERROR = 4,
    HAS_IDEM = 8,
    HAS_META = 16,
    HAS_OWNER = 32,
    HAS_ROUTE = 64
};

static void add_opt(aj_buf *b, aj_slice s) {
    if (s.p != NULL) {
        aj__buf_add_bytes(b, s.p, s.n);
    }
}

int job_rec_encode(const job_rec *r, aj_buf *b) {
    uint8_t present = (uint8_t)((r->result.p ? HAS_RESULT : 0) | (r->worker.p ? HAS_WORKER : 0) |
                                (r->error.p ? HAS_ERROR : 0) | (r->idem_key.p ? HAS_IDEM : 0) |
                                (r->metadata.p ? HAS_META : 0) | (r->owner.p ? HAS_OWNER : 0) |
                                (r->route.p ? HAS_ROUTE : 0));
    aj__buf_add_u8(b, r->flags != 0 || r->route.p != NULL ? JOB_RECORD_FORMAT
                                                          : JOB_RECORD_FORMAT_PLAIN);
    aj__buf_add_varint(b, r->id);
    aj__buf_add_u8(b, (uint8_t)r->state);
    aj__buf_add_u8(b, (uint8_t)r->dead_reason);
    aj__buf_add_varint(b, r->priority);
    aj__buf_add_varint(b, r->attempts);
    aj__buf_add_varint(b, r->max_attempts);
    aj__buf_add_varint(b, r->redrives);
    aj__buf_add_varint(b, r->flags);
    aj__buf_add_varint(b, r->epoch);
    aj__buf_add_svarint(b, r->timeout_ms);
    aj__buf_add_svarint(b, r->lease_ms);
    aj__buf_add_svarint(b, r->created_ms);
    aj__buf_add_svarint(b, r->run_at_ms);
    aj__buf_add_svarint(b, r->ready_us);
    aj__buf_add_svarint(b, r->started_ms);
    aj__buf_add_svarint(b, r->finished_ms);
    aj__buf_add_svarint(b, r->updated_ms);
    aj__buf_add_svarint(b, r->lease_expires_ms);
    aj__buf_add_svarint(b, r->dead_ms);
    job_backoff_encode(b, &r->backoff);
    aj__buf_add_bytes(b, r->queue.p, r->queue.n);
    aj__buf_add_bytes(b, r->type.p, r->type.n);
    aj__buf_add_bytes(b, r->payload.p, r->payload.n);
    aj__buf_add_u8(b, present);
    add_opt(b, r->result);
    add_opt(b, r->worker);
    add_opt(b, r->error);
    add_opt(b, r->idem_key);
    add_opt(b, r->metadata);
    add_opt(b, r->owner);
    add_opt(b, r->route);
    return b->oom ? AJ_ENOMEM : 0;
}

aj_slice job_rd_slice(aj_rd *r) {
    aj_slice s;
    s.p = aj__rd_bytes(r, &s.n);
    if (s.p == NULL && !r->bad) {
        s.p = (const uint8_t *)"";
    }
    return s;
}

void job_backoff_encode(aj_buf *b, const aj_backoff *bo) {
    aj__buf_add_u8(b, (uint8_t)bo->kind);
    aj__buf_add_svarint(b, bo->initial_ms);
    aj__buf_add(b, &bo->factor, sizeof bo->factor);
    aj__buf_add_svarint(b, bo->max_ms);
    aj__buf_add_varint(b, bo->n_delays);
    for (uint32_t i = 0; i < bo->n_delays && i < AJ_BACKOFF_LIST_MAX; i++) {
        aj__buf_add_svarint(b, bo->delays_ms[i]);
    }
}

void job_backoff_decode(aj_rd *r, aj_backoff *bo) {
    bo->kind = (aj_backoff_kind)aj__rd_u8(r);
    bo->initial_ms = aj__rd_svarint(r);
    const uint8_t *f = aj__rd_raw(r, sizeof bo->factor);
    if (f != NULL) {
        memcpy(&bo->factor, f, sizeof bo->factor);
    }
    bo->max_ms = aj__rd_svarint(r);
    uint64_t nd = aj__rd_varint(r);
    if (nd > AJ_BACKOFF_LIST_MAX) {
        r->bad = 1;
    }
    bo->n_delays = (uint32_t)nd;
    for (uint32_t i = 0; i < bo->n_delays && !r->bad; i++) {
        bo->delays_ms[i] = aj__rd_svarint(r);
    }
}

static aj_slice rd_opt(aj_rd *r, uint8_t present, uint8_t bit) {
    aj_slice none = {NULL, 0};
    return (present & bit) ? job_rd_slice(r) : none;
}

int job_rec_decode(const uint8_t *p, size_t n, job_rec *out) {
    aj_rd r;
    aj__rd_init(&r, p, n);
    job_rec v;
    memset(&v, 0, sizeof v);
    uint8_t format = aj__rd_u8(&r);
    if (!r.bad && format > JOB_RECORD_FORMAT) {
        return aj__err(AJ_EFORMAT, "job record format %u is newer than this aj supports (%d)",
                       format, JOB_RECORD_FORMAT);
    }
    v.id = aj__rd_varint(&r);
    v.state = (aj_job_state)aj__rd_u8(&r);
    v.dead_reason = (aj_dead_reason)aj__rd_u8(&r);
    v.priority = (uint32_t)aj__rd_varint(&r);
    v.attempts = (uint32_t)aj__rd_varint(&r);
    v.max_attempts = (uint32_t)aj__rd_varint(&r);
    v.redrives = (uint32_t)aj__rd_varint(&r);
    v.flags = (uint32_t)aj__rd_varint(&r);
    v.epoch = aj__rd_varint(&r);
    v.timeout_ms = aj__rd_svarint(&r);
    v.lease_ms = aj__rd_svarint(&r);
    v.created_ms = aj__rd_svarint(&r);
    v.run_at_ms = aj__rd_svarint(&r);
    v.ready_us = aj__rd_svarint(&r);
    v.started_ms = aj__rd_svarint(&r);
    v.finished_ms = aj__rd_svarint(&r);
    v.updated_ms = aj__rd_svarint(&r);
    v.lease_expires_ms = aj__rd_svarint(&r);
    v.dead_ms = aj__rd_svarint(&r);
    job_backoff_decode(&r, &v.backoff);
    v.queue = job_rd_slice(&r);
    v.type = job_rd_slice(&r);
    v.payload = job_rd_slice(&r);
    uint8_t present = aj__rd_u8(&r);
    v.result = rd_opt(&r, present, HAS_RESULT);
    v.worker = rd_opt(&r, present, HAS_WORKER);
    v.error = rd_opt(&r, present, HAS_ERROR);
    v.idem_key = rd_opt(&r, present, HAS_IDEM);
    v.metadata = rd_opt(&r, present, HAS_META);
    v.owner = rd_opt(&r, present, HAS_OWNER);
    v.route = rd_opt(&r, present, HAS_ROUTE);
    if ((v.flags & ~JOB_FLAGS_KNOWN) != 0 ||
        (format < JOB_RECORD_FORMAT && (v.flags != 0 || v.route.p != NULL)) ||
        ((v.flags & JOB_FLAG_PAYLOAD_BLOB) && v.payload.n != JOB_BLOB_REF_LEN) ||
        ((v.flags & JOB_FLAG_RESULT_BLOB) && v.result.n != JOB_BLOB_REF_LEN)) {
        r.bad = 1;
    }
    if (r.bad || r.off != n || v.state < AJ_STATE_SCHEDULED || v.state > AJ_STATE_CANCELLED ||
        v.dead_reason > AJ_DEAD_DEPENDENCY || v.backoff.kind > AJ_BACKOFF_LIST) {
        return aj__err(AJ_ECORRUPT, "job record%s is corrupt (%zu bytes)",
                       r.bad ? " (truncated)" : "", n);
    }
    *out = v;
    return 0;
}

int aj__slice_eq(aj_slice a, const char *s) {
    size_t n = strlen(s);
    return a.p != NULL && a.n == n && memcmp(a.p, s, n) == 0;
}

/* Lays a slice out as a NUL-terminated copy inside the single allocation. */
char *aj__slice_place(char **cursor, aj_slice s) {
    if (s.p == NULL) {
        return NULL;
    }
    char *d = *cursor;
    if (s.n > 0) {
        memcpy(d, s.p, s.n);
    }
    d[s.n] = '\0';
    *cursor += s.n + 1;
    return d;
}

aj_job *job_rec_to_public(const job_rec *r) {
    /* Blob references are resolved first (blob_job_public): never shown as payloads. */
    assert((r->flags & (JOB_FLAG_PAYLOAD_BLOB | JOB_FLAG_RESULT_BLOB)) == 0);
    const aj_slice *all[] = {&r->queue, &r->type,     &r->payload,  &r->result, &r->worker,
                             &r->error, &r->idem_key, &r->metadata, &r->route};
    size_t total = sizeof(aj_job);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        total += all[i]->n + 1;
    }
    aj_job *j = aj__calloc(1, total);
    if (j == NULL) {
        return NULL;
    }
    char *cursor = (char *)(j + 1);
    j->id = r->id;
    j->state = r->state;
    j->queue = aj__slice_place(&cursor, r->queue);
    j->type = aj__slice_place(&cursor, r->type);
    aj_slice payload = r->payload;
    if (payload.p == NULL) {
        payload.p = (const uint8_t *)"";
    }
    j->payload = aj__slice_place(&cursor, payload);
    j->payload_len = r->payload.n;
    j->result = aj__slice_place(&cursor, r->result);
    j->result_len = r->result.n;
    j->worker = aj__slice_place(&cursor, r->worker);
    j->error = aj__slice_place(&cursor, r->error);
    j->idempotency_key = aj__slice_place(&cursor, r->idem_key);
    j->metadata = aj__slice_place(&cursor, r->metadata);
    /* The routing strings are shorter than their encoding, which was counted above. A field
     * that does not decode is shown as absent (aj check reports the record). */
    job_route route;
    if (r->route.p != NULL && route_decode(r->route, &route) == 0) {
        j->require_tag = aj__slice_place(&cursor, route.require_tag);
        j->prefer_node = aj__slice_place(&cursor, route.prefer_node);
        j->prefer_wait_ms = route.prefer_wait_ms;
        j->avoid_node = aj__slice_place(&cursor, route.avoid_node);
    }
    j->priority = r->priority;
    j->attempts = r->attempts;
    j->max_attempts = r->max_attempts;
    j->backoff = r->backoff;
    j->timeout_ms = r->timeout_ms;
    j->lease_ms = r->lease_ms;
    j->created_ms = r->created_ms;
    j->run_at_ms = r->run_at_ms;
    j->started_ms = r->started_ms;
    j->finished_ms = r->finished_ms;
    j->updated_ms = r->updated_ms;
    j->epoch = r->epoch;
    j->lease_expires_ms = r->lease_expires_ms;
    j->dead_reason = r->dead_reason;
    j->dead_ms = r->dead_ms;
    j->redrives = r->redrives;
    return j;
}
