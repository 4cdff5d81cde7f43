/*
 * schedule.c — schedules over one storage transaction (see schedule.h and aj.h, "Schedules").
 *
 * Invariants:
 *  - A schedule that is not paused and has a next fire time has exactly one 'H' entry, at its
 *    due time (next fire plus jitter); any other has none.
 *  - A schedule that is not paused and holds a buffered fire has exactly one 'O' entry, whose
 *    value is the id of the job the fire waits for; any other has none.
 *  - next_ms only moves forward, and every write of a record that fires also writes the job the
 *    fire created, in the same transaction (put_state() keeps both indexes in step).
 * sched_check() verifies the first two in both directions.
 *
 * Fire times come from a "timeline" (the compiled cron expression and zone, the interval and its
 * anchor, or the one-shot time). Catch-up after downtime looks backwards from now with a window
 * that doubles until it holds enough fire times, so a schedule missed for years costs a handful
 * of passes rather than one step per missed fire.
 */
#include "core/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/check_report.h"
#include "core/cron.h"
#include "core/keys.h"
#include "core/route.h"
#include "core/tz.h"
#include "util/err.h"
#include "util/mem.h"

/* Most fire times one catch-up pass walks (bounds the work for a dense schedule missed for a
 * long time; beyond it the latest fires found so far are used). */
#define SCHED_SCAN_MAX 1000000
/* Missed fires counted for fires_skipped after downtime; more count as this many. */
#define SCHED_COUNT_MAX 100000
/* The first window of the backwards catch-up search. */
#define SCHED_GALLOP_FIRST_MS AJ_SECOND
/* Room that the keys "schedule" and "scheduled_at" take in a job's metadata. */
#define SCHED_META_EXTRA (AJ_NAME_MAX + 64)
/* Bytes of a formatted RFC 3339 time. */
#define SCHED_TIME_MAX 40
/* The last time the engine stores: the end of the year 9999. */
#define SCHED_TIME_MAX_MS 253402300799999LL
/* Bytes of one sched_check() report line. */
#define SCHED_REPORT_MAX 512

/* ----------------------------------------------------------------------------------------- */
/* Keys                                                                                       */

static void key_add(akey *k, const void *p, size_t n) {
    memcpy(k->b + k->n, p, n);
    k->n += n;
}

static void key_sched(akey *k, aj_slice name) {
    k->b[0] = KEY_SCHEDULE;
    k->n = 1;
    key_add(k, name.p, name.n);
}

static void key_due(akey *k, int64_t due, aj_slice name) {
    k->b[0] = KEY_SCHEDULE_DUE;
    k->n = 1;
    aj__put_u64be(k->b + 1, due < 0 ? 0 : (uint64_t)due);
    k->n += 8;
    key_add(k, name.p, name.n);
}

static void key_wait(akey *k, aj_slice name) {
    k->b[0] = KEY_SCHEDULE_WAIT;
    k->n = 1;
    key_add(k, name.p, name.n);
}

/* ----------------------------------------------------------------------------------------- */
/* Timelines: the fire times of a record                                                     */

typedef struct timeline {
    aj_schedule_kind kind;
    cron_expr cron;
    const tz_zone *zone; /* borrowed from the runtime's cache, or utc below */
    tz_zone *utc;        /* the built-in UTC zone when the env has no zone lookup */
    int64_t anchor;
    int64_t at;
} timeline;

static void tl_close(timeline *tl) {
    tz_free(tl->utc);
    tl->utc = NULL;
    tl->zone = NULL;
}

/* The zone `name` for a timeline: from the runtime through the env (core reads no files). */
static int tl_zone(const job_env *env, const char *name, timeline *tl) {
    if (env != NULL && env->zone != NULL) {
        return env->zone(env->sched_ud, name, &tl->zone);
    }
    if (strcmp(name, "UTC") != 0) {
        return aj__err(AJ_ENOTFOUND, "unknown time zone '%s' (no zone lookup)", name);
    }
    int rc = tz_utc(&tl->utc);
    tl->zone = tl->utc;
    return rc;
}

static void slice_cstr(aj_slice s, char *buf, size_t size) {
    size_t n = s.n < size - 1 ? s.n : size - 1;
    if (n > 0) {
        memcpy(buf, s.p, n);
    }
    buf[n] = '\0';
}

static int tl_open(const job_env *env, const sched_rec *r, timeline *tl) {
    memset(tl, 0, sizeof *tl);
    tl->kind = r->kind;
    tl->anchor = r->created_ms;
    tl->at = r->at_ms;
    if (r->kind == AJ_SCHEDULE_EVERY) {
        tl->cron.kind = CRON_EVERY;
        tl->cron.every_ms = r->every_ms;
        return r->every_ms > 0 ? 0 : aj__err(AJ_ECORRUPT, "schedule interval is not positive");
    }
    if (r->kind != AJ_SCHEDULE_CRON) {
        return 0;
    }
    char expr[AJ_CRON_EXPR_MAX + 1], tz[AJ_TZ_NAME_MAX + 1];
    slice_cstr(r->cron, expr, sizeof expr);
    slice_cstr(r->tz, tz, sizeof tz);
    int rc = cron_parse(expr, &tl->cron);
    if (rc == 0) {
        rc = tl_zone(env, tz, tl);
    }
    return rc;
}

/* The first fire time after `after`: 0, or AJ_ENOTFOUND when there is none. */
static int tl_next(const timeline *tl, int64_t after, int64_t *out) {
    if (tl->kind == AJ_SCHEDULE_AT) {
        if (tl->at > after) {
            *out = tl->at;
            return 0;
        }
        return AJ_ENOTFOUND;
    }
    return cron_next(&tl->cron, tl->zone, tl->anchor, after, out);
}

/* Fire times in [from, upto], from being one, counted up to `cap`. */
static uint64_t count_fires(const timeline *tl, int64_t from, int64_t upto, uint64_t cap) {
    uint64_t n = 0;
    int64_t x = from;
    while (x <= upto && n < cap) {
        n++;
        if (tl_next(tl, x, &x) != 0) {
            break;
        }
    }
    return n;
}

/* The latest `want` fire times in [from, upto] (from being one), oldest first, into out; *n_out
 * receives how many (fewer when the range holds fewer). */
static int latest_fires(const timeline *tl, int64_t from, int64_t upto, size_t want, int64_t *out,
                        size_t *n_out) {
    int64_t *ring = aj__malloc(want * sizeof *ring);
    if (ring == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory catching up a schedule");
    }
    int64_t w = SCHED_GALLOP_FIRST_MS;
    for (;;) {
        int64_t lo = upto - from <= w ? from : upto - w;
        size_t count = 0;
        uint64_t steps = 0;
        int64_t x = from;
        int have = 1;
        if (lo != from) {
            have = tl_next(tl, lo - 1, &x) == 0;
        }
        while (have && x <= upto && steps < SCHED_SCAN_MAX) {
            ring[count % want] = x;
            count++;
            steps++;
            have = tl_next(tl, x, &x) == 0;
        }
        if (count >= want || lo == from || steps >= SCHED_SCAN_MAX) {
            size_t k = count < want ? count : want;
            size_t start = count > want ? count % want : 0;
            for (size_t i = 0; i < k; i++) {
                out[i] = ring[(start + i) % want];
            }
            *n_out = k;
            aj__free(ring);
            return 0;
        }
        w = w > INT64_MAX / 4 ? INT64_MAX / 2 : w * 2;
    }
}

int sched_fire_times(const job_env *env, const sched_rec *r, int64_t after_ms, int64_t before_ms,
                     size_t max, int64_t *out, size_t *out_n) {
    timeline tl;
    int rc = tl_open(env, r, &tl);
    size_t n = 0;
    int64_t x = after_ms;
    while (rc == 0 && n < max) {
        int nrc = tl_next(&tl, x, &x);
        if (nrc != 0 || x >= before_ms) {
            break;
        }
        out[n++] = x;
    }
    tl_close(&tl);
    if (rc == 0) {
        aj__err_clear();
        *out_n = n;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Records and indexes                                                                        */

int sched_read(kv_txn *t, const char *name, sched_rec *out) {
    akey k;
    key_sched(&k, aj__slice_str(name));
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "schedule '%s' not found", name);
    }
    if (rc != 0) {
        return rc;
    }
    rc = sched_rec_decode(v, n, out);
    return rc != 0 ? aj__err_wrap(rc, "schedule '%s'", name) : 0;
}

static int due_active(const sched_rec *r) {
    return r != NULL && !(r->flags & SCHED_PAUSED) && r->next_ms != 0;
}

static int wait_active(const sched_rec *r) {
    return r != NULL && !(r->flags & SCHED_PAUSED) && r->buffered_ms != 0;
}

/* Writes `after` (the new record) and moves its index entries from where `before` (the stored
 * record, or NULL for a new one) had them. */
static int put_state(kv_txn *t, const sched_rec *before, const sched_rec *after) {
    akey k;
    int rc = 0;
    if (due_active(before) && (!due_active(after) || before->due_ms != after->due_ms)) {
        key_due(&k, before->due_ms, before->name);
        rc = kv_del(t, k.b, k.n);
    }
    if (rc == 0 && due_active(after) && (!due_active(before) || before->due_ms != after->due_ms)) {
        key_due(&k, after->due_ms, after->name);
        rc = kv_put(t, k.b, k.n, "", 0);
    }
    if (rc == 0 && wait_active(before) && !wait_active(after)) {
        key_wait(&k, before->name);
        rc = kv_del(t, k.b, k.n);
    }
    if (rc == 0 && wait_active(after) &&
        (!wait_active(before) || before->wait_job != after->wait_job)) {
        uint8_t v[8];
        aj__put_u64be(v, after->wait_job);
        key_wait(&k, after->name);
        rc = kv_put(t, k.b, k.n, v, sizeof v);
    }
    if (rc == 0) {
        aj_buf b = AJ_BUF_INIT;
        rc = sched_rec_encode(after, &b);
        if (rc == 0) {
            key_sched(&k, after->name);
            rc = kv_put(t, k.b, k.n, b.p, b.len);
        }
        aj__buf_free(&b);
    }
    return rc;
}

static int64_t jitter(const job_env *env, const sched_rec *r) {
    if (r->jitter_ms <= 0) {
        return 0;
    }
    return (int64_t)(env->rand % (uint64_t)(r->jitter_ms + 1));
}

/* ----------------------------------------------------------------------------------------- */
/* Checking a spec                                                                            */

int sched_spec_check(const aj_schedule_spec *s) {
    int rc = aj_name_check("schedule", s->name);
    if (rc != 0) {
        return rc;
    }
    int kinds = (s->cron != NULL) + (s->every_ms != 0) + (s->at_ms != 0);
    if (kinds != 1) {
        return aj__err(AJ_EINVAL,
                       "schedule '%s' needs exactly one of a cron expression, an "
                       "interval and a time",
                       s->name);
    }
    if (s->every_ms != 0 && (s->every_ms < CRON_EVERY_MIN_MS || s->every_ms > CRON_EVERY_MAX_MS)) {
        return aj__err(AJ_EINVAL, "interval must be from %dms to 100 years", CRON_EVERY_MIN_MS);
    }
    if (s->at_ms != 0 && (s->at_ms < 0 || s->at_ms > SCHED_TIME_MAX_MS)) {
        return aj__err(AJ_EINVAL, "one-shot time must lie in the years 1970..9999");
    }
    if (s->tz != NULL && s->cron == NULL) {
        return aj__err(AJ_EINVAL, "a time zone applies only to cron schedules");
    }
    if (s->cron != NULL) {
        cron_expr c;
        if ((rc = cron_parse(s->cron, &c)) != 0) {
            return rc;
        }
        /* Only the name here: whether the zone exists is the runtime's question (core reads no
         * files); sched_add finds out through env->zone. */
        if (s->tz != NULL && (rc = tz_name_check(s->tz)) != 0) {
            return rc;
        }
    }
    if (s->jitter_ms < 0 || s->jitter_ms > AJ_SCHEDULE_JITTER_MAX_MS) {
        return aj__err(AJ_EINVAL, "jitter must be from 0 to 1 day");
    }
    if (aj_catch_up_name(s->catch_up) == NULL) {
        return aj__err(AJ_EINVAL, "catch-up policy %d is not skip, once or all", (int)s->catch_up);
    }
    if (s->catch_up_limit < 1 || s->catch_up_limit > AJ_SCHEDULE_CATCH_UP_LIMIT_MAX) {
        return aj__err(AJ_EINVAL, "catch-up limit must be from 1 to %d",
                       AJ_SCHEDULE_CATCH_UP_LIMIT_MAX);
    }
    if (aj_overlap_name(s->overlap) == NULL) {
        return aj__err(AJ_EINVAL, "overlap policy %d is not skip, buffer, allow or cancel",
                       (int)s->overlap);
    }
    const aj_job_spec *j = &s->job;
    if (j->delay_ms != 0 || j->run_at_ms != 0) {
        return aj__err(AJ_EINVAL, "a schedule's job template cannot have a delay or run-at time: "
                                  "the schedule decides when jobs run");
    }
    if (j->idempotency_key != NULL) {
        return aj__err(AJ_EINVAL, "a schedule's job template cannot have an idempotency key: "
                                  "every fire would reuse it");
    }
    if (j->n_after != 0 || j->after != NULL) {
        return aj__err(AJ_EINVAL, "a schedule's job template cannot wait on other jobs: the "
                                  "ids would name the same jobs at every fire");
    }
    if ((rc = job_spec_check(j)) != 0) {
        return rc;
    }
    if (j->payload_len > AJ_SCHEDULE_PAYLOAD_MAX) {
        /* The template lives in the schedule record, rewritten at every fire. */
        return aj__err(AJ_ETOOBIG, "a schedule's payload is %zu bytes, over the %zu-byte limit",
                       j->payload_len, AJ_SCHEDULE_PAYLOAD_MAX);
    }
    if (j->metadata != NULL && strlen(j->metadata) + SCHED_META_EXTRA > AJ_METADATA_MAX) {
        return aj__err(AJ_ETOOBIG,
                       "a schedule's job metadata must leave %d bytes free of the "
                       "%zu-byte limit for \"schedule\" and \"scheduled_at\"",
                       SCHED_META_EXTRA, AJ_METADATA_MAX);
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Creating a fire's job                                                                      */

/* The template's metadata with "schedule" and "scheduled_at" set, as compact JSON (free()). */
static int job_metadata(const sched_rec *r, const char *when, char **out) {
    json_t *m = r->metadata.p != NULL
                    ? json_loadb((const char *)r->metadata.p, r->metadata.n, 0, NULL)
                    : json_object();
    if (!json_is_object(m)) {
        json_decref(m);
        return aj__err(AJ_ECORRUPT, "schedule's job metadata is not a JSON object");
    }
    json_object_set_new(m, "schedule", json_stringn((const char *)r->name.p, r->name.n));
    json_object_set_new(m, "scheduled_at", json_string(when));
    *out = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return *out != NULL ? 0 : aj__err(AJ_ENOMEM, "out of memory building a job's metadata");
}

/* The template's routing as NUL-terminated strings, for a job spec. */
typedef struct route_text {
    char require_tag[AJ_NAME_MAX + 1];
    char prefer_node[AJ_NAME_MAX + 1];
    char avoid_node[AJ_NAME_MAX + 1];
} route_text;

/* Sets the routing of `s` from the template's (none when it has none), strings kept in `buf`. */
static int template_route(const sched_rec *r, route_text *buf, aj_job_spec *s) {
    if (r->route.p == NULL) {
        return 0;
    }
    job_route route;
    memset(&route, 0, sizeof route);
    int rc = route_decode(r->route, &route);
    if (rc != 0) {
        return rc;
    }
    if (route.require_tag.p != NULL) {
        slice_cstr(route.require_tag, buf->require_tag, sizeof buf->require_tag);
        s->require_tag = buf->require_tag;
    }
    if (route.prefer_node.p != NULL) {
        slice_cstr(route.prefer_node, buf->prefer_node, sizeof buf->prefer_node);
        s->prefer_node = buf->prefer_node;
        s->prefer_wait_ms = route.prefer_wait_ms;
    }
    if (route.avoid_node.p != NULL) {
        slice_cstr(route.avoid_node, buf->avoid_node, sizeof buf->avoid_node);
        s->avoid_node = buf->avoid_node;
    }
    return 0;
}

/* Creates the job of fire time `at` with id `id` and records it in `r`. */
static int make_job(kv_txn *t, const job_env *env, sched_rec *r, int64_t at, uint64_t id,
                    int track) {
    char when[SCHED_TIME_MAX];
    aj_time_format(at, when, sizeof when);
    char queue[AJ_NAME_MAX + 1], type[AJ_NAME_MAX + 1];
    slice_cstr(r->queue, queue, sizeof queue);
    slice_cstr(r->type, type, sizeof type);
    char *meta = NULL, *payload = NULL;
    route_text route;
    memset(&route, 0, sizeof route);
    aj_job_spec s;
    aj_job_spec_init(&s);
    int rc = job_metadata(r, when, &meta);
    if (rc == 0 && env->sched_payload != NULL) {
        /* A type may want to know when it was scheduled (the runtime's shell type). */
        rc = env->sched_payload(env->sched_ud, type, r->payload, when, &payload);
    }
    if (rc == 0) {
        s.queue = queue;
        s.type = type;
        s.payload = payload != NULL ? (const void *)payload : (const void *)r->payload.p;
        s.payload_len = payload != NULL ? strlen(payload) : r->payload.n;
        s.priority = r->priority;
        s.timeout_ms = r->timeout_ms;
        s.lease_ms = r->lease_ms;
        s.max_attempts = r->max_attempts;
        s.backoff = r->backoff;
        s.metadata = meta;
        rc = template_route(r, &route, &s);
    }
    if (rc == 0) {
        uint64_t got = 0;
        int created = 0;
        rc = job_note_queue(t, queue);
        if (rc == 0) {
            rc = job_submit(t, env, &s, id, &got, &created);
        }
    }
    free(meta);
    free(payload);
    if (rc != 0) {
        return aj__err_wrap(rc, "schedule '%.*s'", (int)r->name.n, (const char *)r->name.p);
    }
    r->jobs_created++;
    if (track) {
        r->last_job_id = id;
        r->last_fire_ms = at;
    }
    return 0;
}

/* *out is 1 when job `id` exists and has not finished. */
static int job_active(kv_txn *t, uint64_t id, int *out) {
    *out = 0;
    if (id == 0) {
        return 0;
    }
    job_rec j;
    int rc = job_read(t, id, &j);
    if (rc == AJ_ENOTFOUND) {
        aj__err_clear();
        return 0; /* collected long ago */
    }
    if (rc == 0) {
        *out = !aj_state_is_final(j.state);
    }
    return rc;
}

/* One fire at nominal time `at`, through the overlap policy. *used is set when a job with id
 * `id` was created. */
static int fire(kv_txn *t, const job_env *env, sched_rec *r, int64_t at, uint64_t id, int *used) {
    int active = 0;
    int rc = job_active(t, r->last_job_id, &active);
    if (rc != 0) {
        return rc;
    }
    if (active) {
        switch (r->overlap) {
        case AJ_OVERLAP_SKIP:
            r->fires_skipped++;
            return 0;
        case AJ_OVERLAP_BUFFER:
            if (r->buffered_ms == 0) {
                r->buffered_ms = at;
                r->wait_job = r->last_job_id;
            } else {
                r->fires_skipped++;
            }
            return 0;
        case AJ_OVERLAP_CANCEL:
            if ((rc = job_cancel(t, env, r->last_job_id)) != 0) {
                return rc;
            }
            break;
        case AJ_OVERLAP_ALLOW:
            break;
        }
    }
    rc = make_job(t, env, r, at, id, 1);
    if (rc == 0) {
        *used = 1;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Operations                                                                                 */

int sched_add(kv_txn *t, const job_env *env, const aj_schedule_spec *s) {
    int rc = sched_spec_check(s);
    if (rc != 0) {
        return rc;
    }
    sched_rec old;
    rc = sched_read(t, s->name, &old);
    if (rc == 0) {
        return aj__err(AJ_EEXISTS, "schedule '%s' already exists", s->name);
    }
    if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    aj__err_clear();
    rc = 0;
    sched_rec r;
    memset(&r, 0, sizeof r);
    r.name = aj__slice_str(s->name);
    r.kind = s->cron != NULL    ? AJ_SCHEDULE_CRON
             : s->every_ms != 0 ? AJ_SCHEDULE_EVERY
                                : AJ_SCHEDULE_AT;
    r.cron = aj__slice_str(s->cron != NULL ? s->cron : "");
    r.tz = aj__slice_str(s->tz != NULL ? s->tz : "UTC");
    r.every_ms = s->every_ms;
    r.at_ms = s->at_ms;
    r.jitter_ms = s->jitter_ms;
    r.catch_up = s->catch_up;
    r.catch_up_limit = s->catch_up_limit;
    r.overlap = s->overlap;
    r.created_ms = r.updated_ms = env->now_ms;
    r.queue = aj__slice_str(s->job.queue != NULL ? s->job.queue : "default");
    r.type = aj__slice_str(s->job.type);
    r.payload.p = s->job.payload_len ? s->job.payload : (const void *)"";
    r.payload.n = s->job.payload_len;
    r.metadata = aj__slice_str(s->job.metadata);
    r.priority = s->job.priority;
    r.timeout_ms = s->job.timeout_ms;
    r.lease_ms = s->job.lease_ms;
    r.max_attempts = s->job.max_attempts;
    r.backoff = s->job.backoff;
    aj_buf route = AJ_BUF_INIT;
    if (route_spec_has(&s->job)) {
        if ((rc = route_encode(&s->job, &route)) != 0) {
            aj__buf_free(&route);
            return rc;
        }
        r.route.p = route.p;
        r.route.n = route.len;
    }
    if (r.kind == AJ_SCHEDULE_AT) {
        r.next_ms = s->at_ms; /* even in the past: then the catch-up policy decides */
    } else {
        timeline tl;
        rc = tl_open(env, &r, &tl);
        if (rc == 0) {
            rc = tl_next(&tl, env->now_ms, &r.next_ms);
        }
        tl_close(&tl);
        if (rc == AJ_ENOTFOUND) {
            rc = aj__err(AJ_EINVAL, "cron expression '%s' never fires", s->cron);
        }
    }
    if (rc == 0) {
        r.due_ms = r.next_ms + jitter(env, &r);
        rc = put_state(t, NULL, &r);
    }
    aj__buf_free(&route);
    return rc;
}

typedef struct list_walk {
    int (*fn)(void *ud, const sched_rec *r);
    void *ud;
    int rc;
} list_walk;

static int list_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    list_walk *w = ud;
    sched_rec r;
    w->rc = sched_rec_decode(val, vlen, &r);
    if (w->rc == 0) {
        w->rc = w->fn(w->ud, &r);
    }
    return w->rc != 0;
}

int sched_list(kv_txn *t, int (*fn)(void *ud, const sched_rec *r), void *ud) {
    akey k;
    key_prefix(&k, KEY_SCHEDULE);
    list_walk w = {fn, ud, 0};
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, list_cb, &w);
    return rc != 0 ? rc : w.rc > 0 ? 0 : w.rc;
}

int sched_pause(kv_txn *t, const job_env *env, const char *name) {
    sched_rec before, r;
    int rc = sched_read(t, name, &before);
    if (rc != 0) {
        return rc;
    }
    if (before.flags & SCHED_PAUSED) {
        return aj__err(AJ_ESTATE, "schedule '%s' is already paused", name);
    }
    r = before;
    r.flags |= SCHED_PAUSED;
    r.updated_ms = env->now_ms;
    return put_state(t, &before, &r);
}

int sched_resume(kv_txn *t, const job_env *env, const char *name) {
    sched_rec before, r;
    int rc = sched_read(t, name, &before);
    if (rc != 0) {
        return rc;
    }
    if (!(before.flags & SCHED_PAUSED)) {
        return aj__err(AJ_ESTATE, "schedule '%s' is not paused", name);
    }
    r = before;
    r.flags &= ~SCHED_PAUSED;
    r.updated_ms = env->now_ms;
    r.run_through_ms = 0;
    /* Fires while paused are not caught up: continue from the first one after now. A one-shot
     * that has not fired yet keeps its time (and, if that passed, its catch-up policy). */
    if (r.next_ms != 0 && r.next_ms <= env->now_ms && r.kind != AJ_SCHEDULE_AT) {
        timeline tl;
        rc = tl_open(env, &r, &tl);
        if (rc == 0) {
            r.fires_skipped += count_fires(&tl, r.next_ms, env->now_ms, SCHED_COUNT_MAX);
            int nrc = tl_next(&tl, env->now_ms, &r.next_ms);
            if (nrc == AJ_ENOTFOUND) {
                aj__err_clear();
                r.next_ms = 0;
            }
        }
        tl_close(&tl);
        if (rc != 0) {
            return rc;
        }
        r.due_ms = r.next_ms == 0 ? 0 : r.next_ms + jitter(env, &r);
    }
    return put_state(t, &before, &r);
}

int sched_remove(kv_txn *t, const job_env *env, const char *name) {
    (void)env;
    sched_rec r;
    int rc = sched_read(t, name, &r);
    if (rc != 0) {
        return rc;
    }
    akey k;
    if (due_active(&r)) {
        key_due(&k, r.due_ms, r.name);
        if ((rc = kv_del(t, k.b, k.n)) != 0) {
            return rc;
        }
    }
    if (wait_active(&r)) {
        key_wait(&k, r.name);
        if ((rc = kv_del(t, k.b, k.n)) != 0) {
            return rc;
        }
    }
    key_sched(&k, r.name);
    return kv_del(t, k.b, k.n);
}

int sched_trigger(kv_txn *t, const job_env *env, const char *name, uint64_t id) {
    sched_rec before, r;
    int rc = sched_read(t, name, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.updated_ms = env->now_ms;
    if ((rc = make_job(t, env, &r, env->now_ms, id, 1)) != 0) {
        return rc;
    }
    return put_state(t, &before, &r);
}

int sched_backfill(kv_txn *t, const job_env *env, const char *name, int64_t from_ms, int64_t to_ms,
                   uint64_t first_id, size_t max, size_t *out_n) {
    if (to_ms <= from_ms) {
        return aj__err(AJ_EINVAL, "backfill range is empty: 'to' must be after 'from'");
    }
    sched_rec before, r;
    int rc = sched_read(t, name, &before);
    if (rc != 0) {
        return rc;
    }
    r = before;
    r.updated_ms = env->now_ms;
    int64_t *times = aj__malloc((max + 1) * sizeof *times);
    if (times == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory backfilling schedule '%s'", name);
    }
    size_t n = 0;
    rc = sched_fire_times(env, &r, from_ms - 1, to_ms, max + 1, times, &n);
    if (rc == 0 && n > max) {
        rc = aj__err(AJ_EINVAL, "backfill of schedule '%s' covers more than %zu fire times", name,
                     max);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = make_job(t, env, &r, times[i], first_id + i, 0);
    }
    aj__free(times);
    if (rc == 0) {
        rc = put_state(t, &before, &r);
    }
    if (rc == 0) {
        *out_n = n;
    }
    return rc;
}

int sched_step(kv_txn *t, const job_env *env, const char *name, uint64_t id, sched_step_out *out) {
    memset(out, 0, sizeof *out);
    out->next_due = INT64_MAX;
    sched_rec before, r;
    int rc = sched_read(t, name, &before);
    if (rc == AJ_ENOTFOUND) {
        aj__err_clear();
        return 0; /* removed since it was found due */
    }
    if (rc != 0 || (before.flags & SCHED_PAUSED)) {
        return rc;
    }
    r = before;
    r.updated_ms = env->now_ms;
    int64_t now = env->now_ms;
    /* A buffered fire runs once the job it waits for has finished. */
    if (r.buffered_ms != 0) {
        int active = 0;
        if ((rc = job_active(t, r.wait_job, &active)) != 0) {
            return rc;
        }
        if (!active) {
            rc = make_job(t, env, &r, r.buffered_ms, id, 1);
            r.buffered_ms = 0;
            r.wait_job = 0;
            if (rc == 0) {
                rc = put_state(t, &before, &r);
            }
            out->progressed = rc == 0;
            out->used_id = rc == 0;
            out->next_due = due_active(&r) ? r.due_ms : INT64_MAX;
            return rc;
        }
    }
    if (r.next_ms == 0) {
        return 0;
    }
    if (r.due_ms > now) {
        out->next_due = r.due_ms;
        return 0;
    }
    timeline tl;
    if ((rc = tl_open(env, &r, &tl)) != 0) {
        tl_close(&tl);
        return rc;
    }
    int64_t at = r.next_ms;
    int64_t after = at; /* the next fire time is the first after this */
    int fire_it = 1;
    if (at > r.run_through_ms && now - r.due_ms > AJ_SCHEDULE_GRACE_MS) {
        /* Missed (no service ran): the fires due by now are handled together. */
        uint64_t missed = count_fires(&tl, at, now, SCHED_COUNT_MAX);
        size_t kept = 0;
        switch (r.catch_up) {
        case AJ_CATCH_UP_SKIP:
            fire_it = 0;
            after = now;
            break;
        case AJ_CATCH_UP_ONCE:
            rc = latest_fires(&tl, at, now, 1, &at, &kept);
            after = at;
            break;
        case AJ_CATCH_UP_ALL: {
            int64_t *keep = aj__malloc(r.catch_up_limit * sizeof *keep);
            rc = keep == NULL ? aj__err(AJ_ENOMEM, "out of memory catching up schedule '%s'", name)
                              : latest_fires(&tl, at, now, r.catch_up_limit, keep, &kept);
            if (rc == 0 && kept > 0) {
                at = after = keep[0];
                r.run_through_ms = now;
            }
            aj__free(keep);
            break;
        }
        }
        r.fires_skipped += missed > kept ? missed - kept : 0;
    }
    int used = 0;
    if (rc == 0 && fire_it) {
        rc = fire(t, env, &r, at, id, &used);
    }
    if (rc == 0) {
        int nrc = tl_next(&tl, after, &r.next_ms);
        if (nrc != 0) {
            aj__err_clear();
            r.next_ms = 0; /* a one-shot that fired, or a cron past its last year */
        }
        r.due_ms = r.next_ms == 0                  ? 0
                   : r.next_ms <= r.run_through_ms ? r.next_ms
                                                   : r.next_ms + jitter(env, &r);
        rc = put_state(t, &before, &r);
    }
    tl_close(&tl);
    if (rc == 0) {
        out->progressed = 1;
        out->used_id = used;
        out->next_due = due_active(&r) ? r.due_ms : INT64_MAX;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Polling and checking                                                                       */

typedef struct poll_ctx {
    kv_txn *t;
    int64_t now;
    size_t limit, n;
    int (*fn)(void *ud, const char *name);
    void *ud;
    int64_t next;
    int rc;
} poll_ctx;

static int name_of(const uint8_t *p, size_t n, char *buf) {
    if (n == 0 || n > AJ_NAME_MAX) {
        return 0;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    return 1;
}

static int due_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    poll_ctx *p = ud;
    char name[AJ_NAME_MAX + 1];
    if (klen < 10 || !name_of(key + 9, klen - 9, name)) {
        return 0; /* not an entry this code wrote; sched_check reports it */
    }
    int64_t due = (int64_t)aj__get_u64be(key + 1);
    if (due > p->now) {
        p->next = due;
        return 1;
    }
    if (p->n == p->limit) {
        p->next = p->now; /* more are due: come back at once */
        return 1;
    }
    p->n++;
    p->rc = p->fn(p->ud, name);
    return p->rc != 0;
}

static int wait_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)version;
    poll_ctx *p = ud;
    char name[AJ_NAME_MAX + 1];
    if (vlen != 8 || !name_of(key + 1, klen - 1, name)) {
        return 0;
    }
    int active = 0;
    p->rc = job_active(p->t, aj__get_u64be(val), &active);
    if (p->rc == 0 && !active) {
        p->rc = p->fn(p->ud, name);
    }
    return p->rc != 0;
}

/* Scans the due index with `due` and then, unless the callback has failed (*cb_rc, which the
 * callbacks set in ud), the wait index with `wait`: the walk of sched_poll and sched_check.
 * Returns the scan's error, or else *cb_rc. */
static int scan_indexes(kv_txn *t, kv_scan_fn due, kv_scan_fn wait, void *ud, const int *cb_rc) {
    akey k;
    key_prefix(&k, KEY_SCHEDULE_DUE);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, due, ud);
    if (rc == 0 && *cb_rc == 0) {
        key_prefix(&k, KEY_SCHEDULE_WAIT);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, wait, ud);
    }
    return rc != 0 ? rc : *cb_rc;
}

int sched_poll(kv_txn *t, int64_t now, size_t limit, int (*fn)(void *ud, const char *name),
               void *ud, int64_t *out_next) {
    poll_ctx p = {t, now, limit, 0, fn, ud, INT64_MAX, 0};
    int rc = scan_indexes(t, due_cb, wait_cb, &p, &p.rc);
    if (rc == 0) {
        *out_next = p.next;
    }
    return rc;
}

typedef struct check_ctx {
    kv_txn *t;
    check_report rep;
    uint64_t records;
    int rc;
} check_ctx;

static int check_rec(void *ud, const sched_rec *r) {
    check_ctx *c = ud;
    c->records++;
    int n = (int)r->name.n;
    const char *name = (const char *)r->name.p;
    akey k;
    const uint8_t *v;
    size_t vlen;
    if (due_active(r)) {
        key_due(&k, r->due_ms, r->name);
        int rc = kv_get(c->t, k.b, k.n, &v, &vlen);
        if (rc == AJ_ENOTFOUND) {
            check_problem(&c->rep, "schedule '%.*s' is due at %lld but has no due-index entry", n,
                          name, (long long)r->due_ms);
        } else if (rc != 0) {
            return rc;
        }
    }
    if (wait_active(r)) {
        key_wait(&k, r->name);
        int rc = kv_get(c->t, k.b, k.n, &v, &vlen);
        if (rc == AJ_ENOTFOUND || (rc == 0 && (vlen != 8 || aj__get_u64be(v) != r->wait_job))) {
            check_problem(&c->rep,
                          "schedule '%.*s' buffers a fire for job %llu but its wait entry is %s", n,
                          name, (unsigned long long)r->wait_job, rc == 0 ? "wrong" : "missing");
        } else if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int check_index_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    check_ctx *c = ud;
    int due = key[0] == KEY_SCHEDULE_DUE;
    size_t off = due ? 9 : 1;
    char name[AJ_NAME_MAX + 1];
    if (klen <= off || !name_of(key + off, klen - off, name)) {
        check_problem(&c->rep, "malformed schedule index key of %zu bytes", klen);
        return 0;
    }
    sched_rec r;
    c->rc = sched_read(c->t, name, &r);
    if (c->rc == AJ_ENOTFOUND) {
        c->rc = 0;
        check_problem(&c->rep, "schedule index entry names schedule '%s', which does not exist",
                      name);
        return 0;
    }
    if (c->rc != 0) {
        return 1;
    }
    if (due && (!due_active(&r) || (int64_t)aj__get_u64be(key + 1) != r.due_ms)) {
        check_problem(&c->rep, "due-index entry of schedule '%s' does not match its record", name);
    }
    if (!due && !wait_active(&r)) {
        check_problem(&c->rep, "wait entry of schedule '%s' but the schedule buffers no fire",
                      name);
    }
    return 0;
}

int sched_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
                uint64_t *out_records, uint64_t *out_problems) {
    check_ctx c = {t, {report, ud, 0}, 0, 0};
    int rc = sched_list(t, check_rec, &c);
    if (rc == 0) {
        rc = scan_indexes(t, check_index_cb, check_index_cb, &c, &c.rc);
    }
    if (rc == 0) {
        *out_records += c.records;
        *out_problems += c.rep.problems;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Names of the policies                                                                      */

static const char *const catch_up_names[] = {NULL, "skip", "once", "all"};
static const char *const overlap_names[] = {NULL, "skip", "buffer", "allow", "cancel"};

const char *aj_catch_up_name(aj_catch_up c) {
    return c >= AJ_CATCH_UP_SKIP && c <= AJ_CATCH_UP_ALL ? catch_up_names[c] : NULL;
}

/* Looks text up in names[lo..hi] (both policy parsers): 0 with its index in *out, or
 * AJ_EINVAL naming the `what` policy and its `choices`. */
static int policy_parse(const char *const names[], int lo, int hi, const char *what,
                        const char *choices, const char *text, int *out) {
    for (int i = lo; text != NULL && i <= hi; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return aj__err(AJ_EINVAL, "%s policy '%s' is not %s", what, text != NULL ? text : "", choices);
}

int aj_catch_up_parse(const char *text, aj_catch_up *out) {
    int i = 0;
    int rc = policy_parse(catch_up_names, AJ_CATCH_UP_SKIP, AJ_CATCH_UP_ALL, "catch-up",
                          "skip, once or all", text, &i);
    if (rc == 0) {
        *out = (aj_catch_up)i;
    }
    return rc;
}

const char *aj_overlap_name(aj_overlap o) {
    return o >= AJ_OVERLAP_SKIP && o <= AJ_OVERLAP_CANCEL ? overlap_names[o] : NULL;
}

int aj_overlap_parse(const char *text, aj_overlap *out) {
    int i = 0;
    int rc = policy_parse(overlap_names, AJ_OVERLAP_SKIP, AJ_OVERLAP_CANCEL, "overlap",
                          "skip, buffer, allow or cancel", text, &i);
    if (rc == 0) {
        *out = (aj_overlap)i;
    }
    return rc;
}
