/*
 * schedule_record.c — encoding and decoding of schedule records (see schedule_record.h).
 * Decoding checks every length against the input and every enum against its range, so a
 * corrupt record gives AJ_ECORRUPT and never a crash. A public copy is one allocation, freed
 * with aj_schedule_free().
 */
#include "core/schedule_record.h"

#include <string.h>

#include "core/route.h"
#include "util/err.h"
#include "util/mem.h"

int sched_rec_encode(const sched_rec *r, aj_buf *b) {
    aj__buf_add_u8(b, SCHED_RECORD_FORMAT);
    aj__buf_add_bytes(b, r->name.p, r->name.n);
    aj__buf_add_u8(b, (uint8_t)r->kind);
    aj__buf_add_bytes(b, r->cron.p, r->cron.n);
    aj__buf_add_bytes(b, r->tz.p, r->tz.n);
    aj__buf_add_svarint(b, r->every_ms);
    aj__buf_add_svarint(b, r->at_ms);
    aj__buf_add_svarint(b, r->jitter_ms);
    aj__buf_add_u8(b, (uint8_t)r->catch_up);
    aj__buf_add_varint(b, r->catch_up_limit);
    aj__buf_add_u8(b, (uint8_t)r->overlap);
    aj__buf_add_svarint(b, r->created_ms);
    aj__buf_add_bytes(b, r->queue.p, r->queue.n);
    aj__buf_add_bytes(b, r->type.p, r->type.n);
    aj__buf_add_bytes(b, r->payload.p, r->payload.n);
    aj__buf_add_u8(b, r->metadata.p != NULL);
    if (r->metadata.p != NULL) {
        aj__buf_add_bytes(b, r->metadata.p, r->metadata.n);
    }
    aj__buf_add_varint(b, r->priority);
    aj__buf_add_svarint(b, r->timeout_ms);
    aj__buf_add_svarint(b, r->lease_ms);
    aj__buf_add_varint(b, r->max_attempts);
    job_backoff_encode(b, &r->backoff);
    aj__buf_add_varint(b, r->flags);
    aj__buf_add_svarint(b, r->updated_ms);
    aj__buf_add_svarint(b, r->next_ms);
    aj__buf_add_svarint(b, r->due_ms);
    aj__buf_add_svarint(b, r->run_through_ms);
    aj__buf_add_svarint(b, r->buffered_ms);
    aj__buf_add_varint(b, r->wait_job);
    aj__buf_add_svarint(b, r->last_fire_ms);
    aj__buf_add_varint(b, r->last_job_id);
    aj__buf_add_varint(b, r->jobs_created);
    aj__buf_add_varint(b, r->fires_skipped);
    /* Format 2. */
    aj__buf_add_u8(b, r->route.p != NULL);
    if (r->route.p != NULL) {
        aj__buf_add_bytes(b, r->route.p, r->route.n);
    }
    return b->oom ? AJ_ENOMEM : 0;
}

int sched_rec_decode(const uint8_t *p, size_t n, sched_rec *out) {
    aj_rd r;
    aj__rd_init(&r, p, n);
    sched_rec v;
    memset(&v, 0, sizeof v);
    uint8_t format = aj__rd_u8(&r);
    if (!r.bad && format > SCHED_RECORD_FORMAT) {
        return aj__err(AJ_EFORMAT, "schedule record format %u is newer than this aj supports (%d)",
                       format, SCHED_RECORD_FORMAT);
    }
    v.name = job_rd_slice(&r);
    v.kind = (aj_schedule_kind)aj__rd_u8(&r);
    v.cron = job_rd_slice(&r);
    v.tz = job_rd_slice(&r);
    v.every_ms = aj__rd_svarint(&r);
    v.at_ms = aj__rd_svarint(&r);
    v.jitter_ms = aj__rd_svarint(&r);
    v.catch_up = (aj_catch_up)aj__rd_u8(&r);
    v.catch_up_limit = (uint32_t)aj__rd_varint(&r);
    v.overlap = (aj_overlap)aj__rd_u8(&r);
    v.created_ms = aj__rd_svarint(&r);
    v.queue = job_rd_slice(&r);
    v.type = job_rd_slice(&r);
    v.payload = job_rd_slice(&r);
    if (aj__rd_u8(&r)) {
        v.metadata = job_rd_slice(&r);
    }
    v.priority = (uint32_t)aj__rd_varint(&r);
    v.timeout_ms = aj__rd_svarint(&r);
    v.lease_ms = aj__rd_svarint(&r);
    v.max_attempts = (uint32_t)aj__rd_varint(&r);
    job_backoff_decode(&r, &v.backoff);
    v.flags = (uint32_t)aj__rd_varint(&r);
    v.updated_ms = aj__rd_svarint(&r);
    v.next_ms = aj__rd_svarint(&r);
    v.due_ms = aj__rd_svarint(&r);
    v.run_through_ms = aj__rd_svarint(&r);
    v.buffered_ms = aj__rd_svarint(&r);
    v.wait_job = aj__rd_varint(&r);
    v.last_fire_ms = aj__rd_svarint(&r);
    v.last_job_id = aj__rd_varint(&r);
    v.jobs_created = aj__rd_varint(&r);
    v.fires_skipped = aj__rd_varint(&r);
    if (format >= 2 && aj__rd_u8(&r)) {
        v.route = job_rd_slice(&r);
    }
    if (r.bad || r.off != n || v.kind < AJ_SCHEDULE_CRON || v.kind > AJ_SCHEDULE_AT ||
        v.catch_up < AJ_CATCH_UP_SKIP || v.catch_up > AJ_CATCH_UP_ALL ||
        v.overlap < AJ_OVERLAP_SKIP || v.overlap > AJ_OVERLAP_CANCEL ||
        v.backoff.kind > AJ_BACKOFF_LIST || v.name.n == 0 || v.name.n > AJ_NAME_MAX ||
        v.tz.n > AJ_TZ_NAME_MAX || v.cron.n > AJ_CRON_EXPR_MAX) {
        return aj__err(AJ_ECORRUPT, "schedule record%s is corrupt (%zu bytes)",
                       r.bad ? " (truncated)" : "", n);
    }
    job_route route;
    memset(&route, 0, sizeof route);
    int rc = v.route.p != NULL ? route_decode(v.route, &route) : 0;
    if (rc != 0) {
        return aj__err_wrap(rc, "schedule '%.*s'", (int)v.name.n, (const char *)v.name.p);
    }
    *out = v;
    return 0;
}

aj_schedule *sched_rec_to_public(const sched_rec *r) {
    /* The routing strings are shorter than their encoding, counted here. */
    const aj_slice *all[] = {&r->name, &r->cron,    &r->tz,       &r->queue,
                             &r->type, &r->payload, &r->metadata, &r->route};
    size_t total = sizeof(aj_schedule);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        total += all[i]->n + 1;
    }
    aj_schedule *s = aj__calloc(1, total);
    if (s == NULL) {
        return NULL;
    }
    char *cursor = (char *)(s + 1);
    s->name = aj__slice_place(&cursor, r->name);
    s->kind = r->kind;
    s->cron = r->kind == AJ_SCHEDULE_CRON ? aj__slice_place(&cursor, r->cron) : NULL;
    s->every_ms = r->every_ms;
    s->at_ms = r->at_ms;
    s->tz = aj__slice_place(&cursor, r->tz);
    s->jitter_ms = r->jitter_ms;
    s->catch_up = r->catch_up;
    s->catch_up_limit = r->catch_up_limit;
    s->overlap = r->overlap;
    s->paused = (r->flags & SCHED_PAUSED) != 0;
    s->created_ms = r->created_ms;
    s->updated_ms = r->updated_ms;
    s->next_ms = s->paused ? 0 : r->next_ms;
    s->next_due_ms = s->paused ? 0 : r->due_ms;
    s->last_fire_ms = r->last_fire_ms;
    s->last_job_id = r->last_job_id;
    s->buffered_ms = r->buffered_ms;
    s->jobs_created = r->jobs_created;
    s->fires_skipped = r->fires_skipped;
    s->queue = aj__slice_place(&cursor, r->queue);
    s->type = aj__slice_place(&cursor, r->type);
    aj_slice payload = r->payload;
    if (payload.p == NULL) {
        payload.p = (const uint8_t *)"";
    }
    s->payload = aj__slice_place(&cursor, payload);
    s->payload_len = r->payload.n;
    s->priority = r->priority;
    s->timeout_ms = r->timeout_ms;
    s->lease_ms = r->lease_ms;
    s->max_attempts = r->max_attempts;
    s->backoff = r->backoff;
    s->metadata = aj__slice_place(&cursor, r->metadata);
    job_route route;
    memset(&route, 0, sizeof route);
    if (r->route.p != NULL && route_decode(r->route, &route) == 0) {
        s->require_tag = aj__slice_place(&cursor, route.require_tag);
        s->prefer_node = aj__slice_place(&cursor, route.prefer_node);
        s->prefer_wait_ms = route.prefer_wait_ms;
        s->avoid_node = aj__slice_place(&cursor, route.avoid_node);
    }
    return s;
}

void aj_schedule_free(aj_schedule *s) {
    aj__free(s);
}
