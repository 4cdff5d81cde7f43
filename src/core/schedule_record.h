/*
 * schedule_record.h — the stored form of a schedule ('K' name, keys.h) and its encoding.
 *
 * A record is a format byte (SCHED_RECORD_FORMAT) followed by fixed-order fields: numbers as
 * varints (signed ones zig-zagged), strings as varint-length-prefixed bytes, like job records.
 * The definition (kind, expression, zone, policies, job template) never changes after creation;
 * the state (paused, next fire, buffered fire, last job, counts) changes with every fire. A
 * decoded record borrows its byte fields from the buffer it was decoded from.
 *
 * Upgrade rule: a new field is appended at the end with a new format number; decoding an older
 * format leaves the new field zero. A newer format than this code knows is refused (AJ_EFORMAT).
 */
#ifndef AJ_CORE_SCHEDULE_RECORD_H
#define AJ_CORE_SCHEDULE_RECORD_H

#include <stdint.h>

#include "aj.h"
#include "core/job_record.h"
#include "util/buf.h"

/* 1: the first format; 2: appends the job template's routing (route). */
#define SCHED_RECORD_FORMAT 2

/* Record flags. */
#define SCHED_PAUSED 1u

typedef struct sched_rec {
    /* Definition. */
    aj_slice name;
    aj_schedule_kind kind;
    aj_slice cron; /* AJ_SCHEDULE_CRON: the expression */
    aj_slice tz;   /* the zone name ("UTC" by default) */
    int64_t every_ms;
    int64_t at_ms;
    int64_t jitter_ms;
    aj_catch_up catch_up;
    uint32_t catch_up_limit;
    aj_overlap overlap;
    int64_t created_ms; /* also the anchor of intervals */
    /* The job template. */
    aj_slice queue;
    aj_slice type;
    aj_slice payload;
    aj_slice metadata; /* p NULL: none */
    uint32_t priority;
    int64_t timeout_ms;
    int64_t lease_ms;
    uint32_t max_attempts;
    aj_backoff backoff;
    aj_slice route; /* the template's routing, encoded as in job records (route.h); p NULL: none.
                     * Stored last (format 2), after the state. */
    /* State. */
    uint32_t flags;
    int64_t updated_ms;
    int64_t next_ms;        /* the next nominal fire time; 0: none */
    int64_t due_ms;         /* next_ms plus its jitter: the 'H' index time */
    int64_t run_through_ms; /* catch-up "all": fires up to here run however late */
    int64_t buffered_ms;    /* a fire waiting for wait_job to finish; 0: none */
    uint64_t wait_job;
    int64_t last_fire_ms;
    uint64_t last_job_id;
    uint64_t jobs_created;
    uint64_t fires_skipped;
} sched_rec;

/* Encodes into b (appending). Returns AJ_ENOMEM if b ran out of memory. */
int sched_rec_encode(const sched_rec *r, aj_buf *b);
/* Decodes and validates; AJ_ECORRUPT or AJ_EFORMAT naming the problem. */
int sched_rec_decode(const uint8_t *p, size_t n, sched_rec *out);
/* An owned public copy (NULL when out of memory). */
aj_schedule *sched_rec_to_public(const sched_rec *r);

#endif
