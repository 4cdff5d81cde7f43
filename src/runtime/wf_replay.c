/*
 * wf_exec.c — running workflow code against its history: the workflow task handler and every
 * durable call a workflow function makes (aj_step, aj_activity, aj_sleep, aj_wait_signal, ...).
 *
 * One task = one transaction: it loads the run's history, moves the inbox (activity outcomes,
 * signals, cancel requests) into the history, runs the workflow function from the start, and
 * commits every event the function produced together with the jobs it scheduled. A conflict
 * re-runs the task; a crash before the commit leaves the task job to run again. Either way a
 * step completed in a committed task is never run again.
 *
 * Replay: events are "commands" (made by the code in order: step_completed, activity_scheduled,
 * timer_scheduled, side_effect, compensation_*, wait_point, ...) or "arrivals" (from outside:
 * activity_completed, signal_received, timer_fired, cancel_requested, ...). Each durable call
 * consumes the next command and must match its kind and name, else the run is parked. Arrivals
 * are found by reference (the seq of the command they answer) or by order, and a call sees an
 * arrival only if it precedes the call's position in the history (its "horizon"), so the same
 * history always gives the same answers.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/child.h"
#include "core/activity_cache.h"
#include "core/history.h"
#include "core/wf_reply.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_exec.h"
#include "util/arena.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/hist.h"
#include "util/mem.h"

/* Most query handlers one workflow may set. */
#define WF_QUERIES_MAX 16
/* Most compensations one saga may hold. */
#define WF_SAGA_MAX 256
/* Attempts of an inline compensation. */
#define WF_COMPENSATION_ATTEMPTS 10
/* Largest key of the user's own records. */
#define WF_USER_KEY_MAX 512

typedef struct saga_entry {
    const char *name;
    aj_step_fn fn; /* NULL: a job compensation */
    void *ud;
    aj_bytes data;
    aj_job_spec spec; /* job compensations: strings copied into the arena */
} saga_entry;

typedef struct query_entry {
    const char *name;
    aj_query_fn fn;
    void *ud;
} query_entry;

/* Most update handlers one workflow may set. */
#define WF_UPDATES_MAX 16

typedef struct update_entry {
    const char *name;
    aj_update_validate_fn validate;
    aj_update_fn handler;
    void *ud;
} update_entry;

/* An update request taken from the inbox by this task, not yet answered. */
typedef struct update_req {
    const char *name;
    aj_bytes data;
    uint64_t req;
    int64_t sent_ms;
} update_req;

struct aj_wf {
    aj_engine *e;
    kv_txn *t;
    const job_env *env;
    wf_rec w;
    aj_arena arena;    /* event bytes: kept with the history in the cache */
    aj_arena scratch;  /* everything else a task allocates: freed with the task */
    wf_event *events;  /* the run's history, including what this task appended */
    uint8_t *consumed; /* signals consumed so far, by event index */
    size_t n_events, cap_events;
    size_t cursor; /* index of the next event to examine for commands */
    int query_mode;
    int nondeterminism;
    char *park_msg;
    aj_bytes result;
    int has_result;
    char *error;
    saga_entry saga[WF_SAGA_MAX];
    size_t n_saga;
    int compensated; /* 1: compensations ran and all completed; 2: one failed */
    query_entry queries[WF_QUERIES_MAX];
    size_t n_queries;
    /* Query mode: the handler runs at the first point where the code waits or ends (see
     * answer_query), while the function's locals the handler reads are still alive. */
    const char *query_name;
    int cache_hit;
    size_t loaded;  /* events the task found in the history */
    int64_t run_us; /* time the workflow code ran */
    int query_answered;
    int query_rc;
    char *query_out;
    size_t query_len;
    /* Composition and evolution (wf_child.c, wf_patch.c, continue-as-new below). */
    int continue_as_new;
    aj_bytes continue_input; /* in scratch */
    aj__wf_patch *patches;   /* the run's patch decisions, in scratch */
    size_t n_patches;
    aj__wf_wait wait; /* where the code first waited in this task (wf_progress.c) */
    /* Updates (see "Updates" below). */
    update_entry updates[WF_UPDATES_MAX];
    size_t n_updates;
    update_req *pending; /* requests drained from the inbox, in arrival order */
    size_t n_pending, cap_pending, next_pending;
    size_t ucursor; /* index of the first event not yet looked at for update_accepted */
};

struct aj_step_ctx {
    aj_wf *wf;
    aj_buf result;
    int failed, permanent;
    char *error;
    /* Writes of this attempt to the user's records, applied only when it succeeds. */
    aj_buf writes; /* records: op(1) klen(varint) key vlen(varint) val */
};

/* ----------------------------------------------------------------------------------------- */
/* The history cache                                                                          */

/* Histories of recently run workflows kept by this process, so a wake-up reads only the events
 * appended since (usually the inbox it drains) instead of the whole history. A task takes its
 * workflow's entry out of the cache and puts it back only after its transaction committed, so
 * an entry always matches committed history, and two tasks never share one. */
#define WF_CACHE_ENTRIES 512    /* workflows kept */
#define WF_CACHE_EVENTS 2000000 /* events kept in all */

typedef struct wf_cache_entry {
    char *id;
    uint32_t run;
    uint64_t seq, last_id;
    wf_event *events;
    uint8_t *consumed;
    size_t n, cap;
    aj_arena arena;
    uint64_t used; /* LRU stamp */
} wf_cache_entry;

struct aj__wf_cache {
    pthread_mutex_t mu;
    wf_cache_entry entries[WF_CACHE_ENTRIES];
    size_t n;
    size_t events; /* in all entries */
    uint64_t clock;
};

static void entry_free(wf_cache_entry *c) {
    aj__free(c->id);
    aj__free(c->events);
    aj__free(c->consumed);
    aj_arena_free(&c->arena);
    memset(c, 0, sizeof *c);
}

static aj__wf_cache *cache_of(aj_engine *e) {
    pthread_mutex_lock(&e->mu);
    if (e->wf_cache == NULL) {
        aj__wf_cache *c = aj__calloc(1, sizeof *c);
        if (c != NULL) {
            pthread_mutex_init(&c->mu, NULL);
        }
        e->wf_cache = c;
    }
    aj__wf_cache *c = e->wf_cache;
    pthread_mutex_unlock(&e->mu);
    return c;
}

void aj__wf_cache_free(aj__wf_cache *c) {
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        entry_free(&c->entries[i]);
    }
    pthread_mutex_destroy(&c->mu);
    aj__free(c);
}

/* Removes and returns the entry of a workflow (found=0 when there is none). */
static int cache_take(aj__wf_cache *c, aj_slice id, wf_cache_entry *out) {
    int found = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        if (aj_slice_eq(id, c->entries[i].id)) {
            *out = c->entries[i];
            c->events -= out->n;
            c->entries[i] = c->entries[--c->n];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* ----------------------------------------------------------------------------------------- */
/* History in memory                                                                          */

static int is_command(const wf_event *ev) {
    switch (ev->type) {
    case EV_STEP_COMPLETED:
    case EV_STEP_FAILED:
    case EV_ACTIVITY_SCHEDULED:
    case EV_TIMER_SCHEDULED:
    case EV_TIMER_CANCELLED:
    case EV_SIDE_EFFECT:
    case EV_COMPENSATION_STARTED:
    case EV_CHILD_STARTED:
    case EV_VERSION_MARKER:
    case EV_WAIT_POINT:
        return 1;
    case EV_COMPENSATION_COMPLETED:
    case EV_COMPENSATION_FAILED:
    case EV_CHILD_FAILED:
        return ev->ref == 0; /* inline compensations; job ones arrive with a reference */
    default:
        return 0;
    }
}

static int keep_event(aj_wf *wf, const wf_event *ev) {
    if (wf->n_events == wf->cap_events) {
        size_t cap = wf->cap_events ? wf->cap_events * 2 : 64;
        wf_event *nv = aj__realloc(wf->events, cap * sizeof *nv);
        uint8_t *nc = aj__realloc(wf->consumed, cap);
        if (nv != NULL) {
            wf->events = nv;
        }
        if (nc != NULL) {
            wf->consumed = nc;
        }
        if (nv == NULL || nc == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory loading a workflow history");
        }
        wf->cap_events = cap;
    }
    wf_event copy = *ev;
    copy.name.p = aj_arena_dup(&wf->arena, ev->name.p, ev->name.n);
    copy.data.p = aj_arena_dup(&wf->arena, ev->data.p, ev->data.n);
    if (copy.name.p == NULL || copy.data.p == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory loading a workflow history");
    }
    wf->consumed[wf->n_events] = 0;
    wf->events[wf->n_events++] = copy;
    return 0;
}

static int load_cb(void *ud, const wf_event *ev) {
    return keep_event(ud, ev);
}

/* Appends a new event (live) and keeps it in memory. */
static int record(aj_wf *wf, uint8_t type, const char *name, aj_bytes data, uint64_t aux,
                  uint64_t ref, int final) {
    aj_slice n = aj_slice_str(name ? name : "");
    aj_slice d = {data.data ? data.data : (const void *)"", data.len};
    int rc = wf_append(wf->t, wf->env, &wf->w, type, n, d, aux, ref, final);
    if (rc != 0) {
        return rc;
    }
    wf_event ev;
    memset(&ev, 0, sizeof ev);
    ev.seq = wf->w.seq;
    ev.type = type;
    ev.hlc = wf->w.hlc;
    ev.id = wf->w.last_id;
    ev.name = n;
    ev.data = d;
    ev.aux = aux;
    ev.ref = ref;
    rc = keep_event(wf, &ev);
    if (rc == 0 && is_command(&ev)) {
        wf->cursor = wf->n_events; /* a live command is consumed as it is made */
    }
    return rc;
}

/* The seq before which arrivals are visible to the call being made: the seq of the next command
 * still to be replayed, or everything when live. */
static uint64_t horizon(const aj_wf *wf) {
    for (size_t i = wf->cursor; i < wf->n_events; i++) {
        /* A version marker never waits, and code that no longer asks about it skips it. */
        if (is_command(&wf->events[i]) && wf->events[i].type != EV_VERSION_MARKER) {
            return wf->events[i].seq;
        }
    }
    return UINT64_MAX;
}

/* In query mode: calls the query handler once, at the first point where the code reaches the
 * end of its history (a call that would act or wait) or sets its outcome. */
static void answer_query(aj_wf *wf) {
    if (!wf->query_mode || wf->query_answered || wf->nondeterminism || wf->query_name == NULL) {
        return;
    }
    for (size_t i = 0; i < wf->n_queries; i++) {
        if (strcmp(wf->queries[i].name, wf->query_name) == 0) {
            aj_bytes arg = {"", 0};
            wf->query_answered = 1;
            wf->query_rc =
                wf->queries[i].fn(wf->queries[i].ud, arg, &wf->query_out, &wf->query_len);
            return;
        }
    }
}

static int updates_at_wait(aj_wf *wf);
static int updates_replay(aj_wf *wf, uint64_t before);

/* Every durable call that cannot finish now returns through here: recorded updates up to the
 * call's position are applied, and at the live edge new ones are handled. */
static int suspend(aj_wf *wf) {
    int rc = updates_at_wait(wf);
    answer_query(wf);
    return rc != 0 ? rc : AJ_SUSPEND;
}

/* Parks the run: the caller's code and its history disagree. */
static int diverged(aj_wf *wf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int diverged(aj_wf *wf, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!wf->nondeterminism) {
        wf->nondeterminism = 1;
        aj__free(wf->park_msg);
        wf->park_msg = aj__strdup(msg);
    }
    return aj__err(AJ_ESTATE, "%s", msg);
}

/* Finds the next command. Returns 1 and *out when replaying, 0 when live (no more commands),
 * or a negative error when the command does not match (the run is parked). `alt` is a second
 * type accepted (e.g. step_failed for a step). */
static int next_command(aj_wf *wf, uint8_t type, uint8_t alt, const char *name,
                        const wf_event **out) {
    if (wf->nondeterminism) {
        return AJ_ESTATE;
    }
    for (size_t i = wf->cursor; i < wf->n_events; i++) {
        const wf_event *ev = &wf->events[i];
        if (!is_command(ev)) {
            continue;
        }
        if (ev->type == EV_VERSION_MARKER &&
            (type != EV_VERSION_MARKER || !aj_slice_eq(ev->name, name))) {
            continue; /* markers the code does not ask about here are skipped (wf_patch.c) */
        }
        if ((ev->type != type && ev->type != alt) || !aj_slice_eq(ev->name, name)) {
            return diverged(wf,
                            "non-determinism in workflow '%.*s': history event %llu is %s '%.*s' "
                            "but the code now calls %s '%s'",
                            (int)wf->w.id.n, (const char *)wf->w.id.p, (unsigned long long)ev->seq,
                            wf_event_name(ev->type), (int)ev->name.n, (const char *)ev->name.p,
                            wf_event_name(type), name);
        }
        wf->cursor = i + 1;
        *out = ev;
        return 1;
    }
    wf->cursor = wf->n_events;
    return 0;
}

/* The arrival answering command `ref` of one of the given types, visible before `before`. */
static const wf_event *find_arrival(const aj_wf *wf, uint64_t ref, uint8_t type, uint8_t alt,
                                    int final_only, uint64_t before) {
    for (size_t i = 0; i < wf->n_events; i++) {
        const wf_event *ev = &wf->events[i];
        if (ev->seq >= before) {
            break;
        }
        if (ev->ref == ref && !is_command(ev) && (ev->type == type || ev->type == alt)) {
            if (final_only && ev->type == alt && !(ev->aux & WF_AUX_FINAL)) {
                continue; /* a failed attempt that will be retried */
            }
            return ev;
        }
    }
    return NULL;
}

static int cancel_visible(const aj_wf *wf, uint64_t before) {
    for (size_t i = 0; i < wf->n_events && wf->events[i].seq < before; i++) {
        if (wf->events[i].type == EV_CANCEL_REQUESTED) {
            return 1;
        }
    }
    return 0;
}

static aj_bytes bytes_of(aj_slice s) {
    aj_bytes b = {s.p, s.n};
    return b;
}

/* ----------------------------------------------------------------------------------------- */
/* Simple calls                                                                               */

const char *aj_wf_id(const aj_wf *wf) {
    return (const char *)wf->w.id.p; /* NUL-terminated: copied into the arena */
}

int aj_wf_cancel_requested(const aj_wf *wf) {
    return cancel_visible(wf, horizon(wf));
}

int aj_wf_continue_suggested(const aj_wf *wf) {
    /* By the call's position in the history, so a replay answers as the original run did. */
    uint64_t h = horizon(wf);
    uint64_t at = h == UINT64_MAX ? wf->w.seq : h - 1;
    return at >= AJ_WF_EVENTS_SUGGEST;
}

int aj_wf_set_result(aj_wf *wf, const void *data, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "workflow result is %zu bytes, over the %zu-byte limit", len,
                       AJ_WF_DATA_MAX);
    }
    void *copy = aj_arena_dup(&wf->scratch, data, len);
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a workflow result");
    }
    wf->result.data = copy;
    wf->result.len = len;
    wf->has_result = 1;
    int rc = updates_at_wait(wf);
    answer_query(wf);
    return rc;
}

int aj_wf_fail(aj_wf *wf, const char *error) {
    aj__free(wf->error);
    wf->error = aj__strdup(error ? error : "failed");
    int rc = updates_at_wait(wf);
    answer_query(wf);
    return rc != 0 && rc != AJ_EFAILED ? rc : AJ_EFAILED;
}

int aj_wf_set_query(aj_wf *wf, const char *name, aj_query_fn fn, void *ud) {
    for (size_t i = 0; i < wf->n_queries; i++) {
        if (strcmp(wf->queries[i].name, name) == 0) {
            wf->queries[i].fn = fn;
            wf->queries[i].ud = ud;
            return 0;
        }
    }
    if (wf->n_queries == WF_QUERIES_MAX) {
        return aj__err(AJ_ETOOBIG, "a workflow may set at most %d query handlers", WF_QUERIES_MAX);
    }
    char *copy = aj_arena_dup(&wf->scratch, name, strlen(name));
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory setting a query handler");
    }
    wf->queries[wf->n_queries++] = (query_entry){copy, fn, ud};
    return 0;
}

/* Records (or replays) a side effect: a value computed once and remembered. */
static int side_effect(aj_wf *wf, const char *name, void *value, size_t len) {
    const wf_event *ev = NULL;
    int rc = next_command(wf, EV_SIDE_EFFECT, EV_SIDE_EFFECT, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        if (ev->data.n != len) {
            return diverged(wf, "side effect '%s' recorded %zu bytes, the code wants %zu", name,
                            ev->data.n, len);
        }
        memcpy(value, ev->data.p, len);
        return 0;
    }
    if (wf->query_mode) {
        return suspend(wf);
    }
    aj_bytes d = {value, len};
    return record(wf, EV_SIDE_EFFECT, name, d, 0, 0, 0);
}

int aj_wf_now(aj_wf *wf, int64_t *out_ms) {
    uint8_t b[8];
    aj_put_u64be(b, (uint64_t)wf->env->now_ms);
    int rc = side_effect(wf, "now", b, 8);
    if (rc == 0) {
        *out_ms = (int64_t)aj_get_u64be(b);
    }
    return rc;
}

int aj_wf_random(aj_wf *wf, uint64_t *out) {
    uint8_t b[8];
    aj_put_u64be(b, eng_rand(wf->e));
    int rc = side_effect(wf, "random", b, 8);
    if (rc == 0) {
        *out = aj_get_u64be(b);
    }
    return rc;
}

int aj_wf_uuid(aj_wf *wf, char out[37]) {
    uint8_t b[16];
    aj_put_u64be(b, eng_rand(wf->e));
    aj_put_u64be(b + 8, eng_rand(wf->e));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    int rc = side_effect(wf, "uuid", b, 16);
    if (rc == 0) {
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Steps                                                                                      */

void aj_step_policy_init(aj_step_policy *p) {
    p->max_attempts = 3;
    p->backoff.kind = AJ_BACKOFF_EXP;
    p->backoff.initial_ms = 100;
    p->backoff.factor = 2;
    p->backoff.max_ms = 10 * AJ_SECOND;
    p->backoff.n_delays = 0;
}

int aj_step_set_result(aj_step_ctx *ctx, const void *data, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "step result is %zu bytes, over the %zu-byte limit", len,
                       AJ_WF_DATA_MAX);
    }
    aj_buf_reset(&ctx->result);
    aj_buf_add(&ctx->result, data, len);
    return ctx->result.oom ? aj__err(AJ_ENOMEM, "out of memory keeping a step result") : 0;
}

int aj_step_fail(aj_step_ctx *ctx, const char *error, int permanent) {
    ctx->failed = 1;
    ctx->permanent = permanent != 0;
    aj__free(ctx->error);
    ctx->error = aj__strdup(error ? error : "failed");
    return AJ_EFAILED;
}

static void user_key(akey *k, const void *key, size_t klen) {
    k->b[0] = 'u';
    memcpy(k->b + 1, key, klen);
    k->n = 1 + klen;
}

static int check_user_key(size_t klen) {
    if (klen == 0 || klen > WF_USER_KEY_MAX) {
        return aj__err(AJ_EINVAL, "a record key must be 1 to %d bytes", WF_USER_KEY_MAX);
    }
    return 0;
}

/* Looks the key up among this attempt's own writes: 1 found (value or deletion), 0 not. */
static int own_write(const aj_step_ctx *ctx, const void *key, size_t klen, aj_bytes *out,
                     int *deleted) {
    aj_rd r;
    aj_rd_init(&r, ctx->writes.p, ctx->writes.len);
    int found = 0;
    while (r.off < r.len && !r.bad) {
        uint8_t op = aj_rd_u8(&r);
        size_t kl, vl;
        const uint8_t *k = aj_rd_bytes(&r, &kl);
        const uint8_t *v = aj_rd_bytes(&r, &vl);
        if (!r.bad && kl == klen && memcmp(k, key, klen) == 0) {
            found = 1; /* the last write wins: keep scanning */
            *deleted = op == 0;
            out->data = v;
            out->len = vl;
        }
    }
    return found;
}

int aj_step_get(aj_step_ctx *ctx, const void *key, size_t klen, aj_bytes *out) {
    int rc = check_user_key(klen);
    if (rc != 0) {
        return rc;
    }
    int deleted = 0;
    if (own_write(ctx, key, klen, out, &deleted)) {
        return deleted ? aj__err(AJ_ENOTFOUND, "no such record") : 0;
    }
    if (ctx->wf->t == NULL) {
        return aj__err(AJ_ESTATE, "records cannot be read here");
    }
    akey k;
    user_key(&k, key, klen);
    const uint8_t *v;
    size_t n;
    rc = kv_get(ctx->wf->t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "no such record");
    }
    if (rc == 0) {
        out->data = v;
        out->len = n;
    }
    return rc;
}

static int step_write(aj_step_ctx *ctx, uint8_t op, const void *key, size_t klen, const void *val,
                      size_t vlen) {
    int rc = check_user_key(klen);
    if (rc != 0) {
        return rc;
    }
    if (vlen > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "a record value must be at most %zu bytes", AJ_WF_DATA_MAX);
    }
    aj_buf_add_u8(&ctx->writes, op);
    aj_buf_add_bytes(&ctx->writes, key, klen);
    aj_buf_add_bytes(&ctx->writes, val, vlen);
    return ctx->writes.oom ? aj__err(AJ_ENOMEM, "out of memory buffering a record") : 0;
}

int aj_step_put(aj_step_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen) {
    return step_write(ctx, 1, key, klen, val, vlen);
}

int aj_step_del(aj_step_ctx *ctx, const void *key, size_t klen) {
    return step_write(ctx, 0, key, klen, "", 0);
}

/* Applies a successful attempt's record writes to the task's transaction. */
static int apply_writes(aj_wf *wf, const aj_step_ctx *ctx) {
    aj_rd r;
    aj_rd_init(&r, ctx->writes.p, ctx->writes.len);
    int rc = 0;
    while (rc == 0 && r.off < r.len && !r.bad) {
        uint8_t op = aj_rd_u8(&r);
        size_t kl, vl;
        const uint8_t *k = aj_rd_bytes(&r, &kl);
        const uint8_t *v = aj_rd_bytes(&r, &vl);
        if (r.bad) {
            break;
        }
        akey key;
        user_key(&key, k, kl);
        rc = op ? kv_put(wf->t, key.b, key.n, v, vl) : kv_del(wf->t, key.b, key.n);
    }
    return rc;
}

/* Runs fn with retries; fills *out with the result or *err with the last error. */
static int run_inline(aj_wf *wf, const aj_step_policy *p, aj_step_fn fn, void *ud, aj_bytes input,
                      aj_bytes *out, char **err) {
    for (uint32_t attempt = 1;; attempt++) {
        aj_step_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        ctx.wf = wf;
        int rc = fn(&ctx, input, ud);
        if (rc != 0 && !ctx.failed) {
            char msg[96];
            snprintf(msg, sizeof msg, "step returned %s", aj_err_name(rc));
            aj_step_fail(&ctx, msg, 0);
        }
        if (!ctx.failed) {
            rc = apply_writes(wf, &ctx);
            if (rc == 0) {
                out->data = aj_arena_dup(&wf->scratch, ctx.result.p, ctx.result.len);
                out->len = ctx.result.len;
                rc = out->data ? 0 : aj__err(AJ_ENOMEM, "out of memory keeping a step result");
            }
            aj_buf_free(&ctx.result);
            aj_buf_free(&ctx.writes);
            aj__free(ctx.error);
            return rc;
        }
        aj_buf_free(&ctx.result);
        aj_buf_free(&ctx.writes);
        if (ctx.permanent || attempt >= p->max_attempts) {
            *err = ctx.error;
            return AJ_EFAILED;
        }
        aj__free(ctx.error);
        aj__sleep_ms(aj_backoff_delay(&p->backoff, attempt));
    }
}

int aj_step_with(aj_wf *wf, const char *name, const aj_step_policy *policy, aj_step_fn fn, void *ud,
                 aj_bytes input, aj_bytes *out) {
    const wf_event *ev = NULL;
    int rc = next_command(wf, EV_STEP_COMPLETED, EV_STEP_FAILED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    aj_bytes dummy;
    if (out == NULL) {
        out = &dummy;
    }
    if (rc == 1) {
        if (ev->type == EV_STEP_FAILED) {
            return aj__err(AJ_EFAILED, "step '%s' failed: %.*s", name, (int)ev->data.n,
                           (const char *)ev->data.p);
        }
        *out = bytes_of(ev->data);
        return 0;
    }
    if (wf->query_mode) {
        return suspend(wf);
    }
    aj_step_policy p;
    if (policy != NULL) {
        p = *policy;
    } else {
        aj_step_policy_init(&p);
    }
    char *err = NULL;
    rc = run_inline(wf, &p, fn, ud, input, out, &err);
    if (rc == 0) {
        return record(wf, EV_STEP_COMPLETED, name, *out, 0, 0, 0);
    }
    if (rc != AJ_EFAILED) {
        aj__free(err);
        return rc;
    }
    aj_bytes e = {err ? err : "failed", strlen(err ? err : "failed")};
    rc = record(wf, EV_STEP_FAILED, name, e, 0, 0, 0);
    int code =
        rc != 0 ? rc : aj__err(AJ_EFAILED, "step '%s' failed: %s", name, (const char *)e.data);
    aj__free(err);
    return code;
}

int aj_step(aj_wf *wf, const char *name, aj_step_fn fn, void *ud, aj_bytes input, aj_bytes *out) {
    return aj_step_with(wf, name, NULL, fn, ud, input, out);
}

/* ----------------------------------------------------------------------------------------- */
/* Activities                                                                                 */

/* Submits the job of an activity or job compensation in the task's transaction. */
static int schedule_job(aj_wf *wf, const aj_job_spec *spec, uint64_t *out_job) {
    int rc = job_spec_check(spec);
    if (rc != 0) {
        return rc;
    }
    aj_buf owner = AJ_BUF_INIT;
    wf_owner(&owner, wf->w.id, wf->w.run, wf->w.seq + 1); /* the event recorded next */
    uint64_t id;
    int created;
    rc = owner.oom ? AJ_ENOMEM : wf->env->alloc_id(wf->env->alloc_ud, &id);
    if (rc == 0) {
        rc = job_note_queue(wf->t, spec->queue ? spec->queue : "default");
    }
    if (rc == 0) {
        aj_slice o = {owner.p, owner.len};
        rc = job_submit_owned(wf->t, wf->env, spec, id, o, out_job, &created);
    }
    aj_buf_free(&owner);
    return rc;
}

static int activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out,
                            int own_command);

int aj__wf_activity_schedule(aj_wf *wf, const char *name, const aj_job_spec *spec) {
    uint64_t job;
    int rc = schedule_job(wf, spec, &job);
    if (rc != 0) {
        return rc;
    }
    aj_bytes none = {"", 0};
    return record(wf, EV_ACTIVITY_SCHEDULED, name, none, job, 0, 0);
}

int aj__wf_activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out) {
    return activity_outcome(wf, name, seq, out, 0); /* aj_activity_wait records nothing */
}

int aj_activity(aj_wf *wf, const char *name, const aj_job_spec *spec, aj_bytes *out) {
    /* A cancel that precedes this call's position refuses it, live and on replay alike (the
     * refusal records nothing, so the position must decide, not the live edge). */
    if (cancel_visible(wf, horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled before activity '%s'", name);
    }
    const wf_event *ev = NULL;
    int rc = next_command(wf, EV_ACTIVITY_SCHEDULED, EV_ACTIVITY_SCHEDULED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0) {
        if (wf->query_mode) {
            return suspend(wf);
        }
        uint64_t job;
        if ((rc = schedule_job(wf, spec, &job)) != 0) {
            return rc;
        }
        aj_bytes none = {"", 0};
        if ((rc = record(wf, EV_ACTIVITY_SCHEDULED, name, none, job, 0, 0)) != 0) {
            return rc;
        }
        return aj__wf_suspend_at(wf, "activity", name, 1);
    }
    return activity_outcome(wf, name, ev->seq, out, 1);
}

/* The outcome of the activity whose activity_scheduled is event `seq`, as visible now.
 * own_command: the caller's own activity_scheduled is the last command (aj_activity). */
static int activity_outcome(aj_wf *wf, const char *name, uint64_t seq, aj_bytes *out,
                            int own_command) {
    uint64_t before;
    const wf_event *done;
    int marked = 0, rc = 0;
    for (;;) {
        before = horizon(wf);
        done = find_arrival(wf, seq, EV_ACTIVITY_COMPLETED, EV_ACTIVITY_FAILED, 1, before);
        if (done != NULL || (rc = aj__wf_wait_marker(wf, "activity", name)) != 1) {
            break;
        }
        marked = 1; /* the run waited here before: look up to the next command */
    }
    if (rc < 0) {
        return rc;
    }
    rc = done != NULL ? updates_replay(wf, done->seq) : 0;
    if (rc != 0) {
        return rc;
    }
    if (done != NULL && done->type == EV_ACTIVITY_COMPLETED) {
        if (out != NULL) {
            *out = bytes_of(done->data);
        }
        return 0;
    }
    if (done != NULL) {
        if (cancel_visible(wf, before)) {
            return aj__err(AJ_ECANCELLED, "workflow cancelled while activity '%s' ran", name);
        }
        return aj__err(AJ_EFAILED, "activity '%s' failed: %.*s", name, (int)done->data.n,
                       (const char *)done->data.p);
    }
    if (cancel_visible(wf, before) && !wf->query_mode) {
        /* Cancel the job as well, and return only once its outcome is in: a job that completed
         * before the cancel reached it returns its result, so the caller registers its
         * compensation and a saga undoes it like any other completed step. The job's cancel
         * (or end) arrives through the inbox; cancelling it again on a later task is a no-op. */
        const wf_event *sched = seq >= 1 && seq <= wf->n_events ? &wf->events[seq - 1] : NULL;
        uint64_t job = sched != NULL && sched->seq == seq && sched->type == EV_ACTIVITY_SCHEDULED
                           ? sched->aux
                           : 0;
        int crc = job != 0 ? job_cancel(wf->t, wf->env, job) : 0;
        if (crc != 0 && crc != AJ_ESTATE && crc != AJ_ENOTFOUND) {
            return crc;
        }
        aj__err_clear();
    }
    return aj__wf_suspend_at(wf, "activity", name, own_command || marked);
}

int aj_activity_cached(aj_wf *wf, const char *name, const aj_job_spec *spec,
                       const aj_activity_cache *cache, aj_bytes *out) {
    if (cache == NULL) {
        return aj_activity(wf, name, spec, out);
    }
    if (cache->ttl_ms <= 0) {
        return aj__err(AJ_EINVAL, "activity '%s': the cache TTL must be positive", name);
    }
    if (cache->version != NULL && strlen(cache->version) > AJ_NAME_MAX) {
        return aj__err(AJ_EINVAL, "activity '%s': the cache version is longer than %d bytes", name,
                       AJ_NAME_MAX);
    }
    if (spec == NULL || spec->type == NULL) {
        return aj__err(AJ_EINVAL, "activity '%s' needs a job type", name);
    }
    if (cancel_visible(wf, horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled before activity '%s'", name);
    }
    const wf_event *ev = NULL;
    int rc = next_command(wf, EV_ACTIVITY_SCHEDULED, EV_ACTIVITY_SCHEDULED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        /* Replay answers from the history, never from the cache: a hit was recorded as an
         * execution, so expiry or a changed entry cannot change what the run saw. */
        return activity_outcome(wf, name, ev->seq, out, 1);
    }
    if (wf->query_mode) {
        return suspend(wf);
    }
    act_cache_ref r;
    memset(&r, 0, sizeof r);
    r.global = cache->global != 0;
    r.wf_id = wf->w.id;
    aj_slice in = {spec->payload ? (const uint8_t *)spec->payload : (const uint8_t *)"",
                   spec->payload_len};
    act_cache_hash(spec->type, cache->version, in, r.hash);
    char desc[ACT_CACHE_DESC_MAX];
    aj_bytes d = {desc, act_cache_desc_format(desc, sizeof desc, r.global, r.hash, cache->ttl_ms)};
    aj_slice hit;
    rc = act_cache_get(wf->t, wf->env, &r, &hit);
    if (rc == 0) {
        if ((rc = record(wf, EV_ACTIVITY_SCHEDULED, name, d, 0, 0, 0)) != 0 ||
            (rc = record(wf, EV_ACTIVITY_COMPLETED, name, bytes_of(hit), AJ_WF_EVENT_CACHED,
                         wf->w.seq, 0)) != 0) {
            return rc;
        }
        if (wf->env->delta != NULL) {
            wf->env->delta->activity_cache_hits++;
        }
        if (out != NULL) {
            *out = bytes_of(wf->events[wf->n_events - 1].data);
        }
        return 0;
    }
    if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    /* A miss: the job runs, and its completion fills the entry (act_cache_on_complete). */
    uint64_t job;
    if ((rc = schedule_job(wf, spec, &job)) != 0 ||
        (rc = record(wf, EV_ACTIVITY_SCHEDULED, name, d, job, 0, 0)) != 0) {
        return rc;
    }
    if (wf->env->delta != NULL) {
        wf->env->delta->activity_cache_misses++;
    }
    return aj__wf_suspend_at(wf, "activity", name, 1);
}

/* ----------------------------------------------------------------------------------------- */
/* Timers and signals                                                                         */

/* Schedules (or replays) a timer; *out_seq receives its timer_scheduled seq, *out_fired whether
 * it has fired (visible before `before`, or firing now when due). */
static int timer(aj_wf *wf, const char *name, int64_t fire_at, uint64_t *out_seq,
                 uint64_t *out_fired_seq) {
    const wf_event *ev = NULL;
    int rc = next_command(wf, EV_TIMER_SCHEDULED, EV_TIMER_SCHEDULED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    int replayed = rc == 1; /* scheduled by an earlier task, whose wake-up may be spent */
    uint64_t seq;
    if (rc == 0) {
        if (wf->query_mode) {
            return suspend(wf);
        }
        aj_bytes none = {"", 0};
        if ((rc = record(wf, EV_TIMER_SCHEDULED, name, none, (uint64_t)fire_at, 0, 0)) != 0) {
            return rc;
        }
        seq = wf->w.seq;
        if (fire_at > wf->env->now_ms &&
            (rc = wf_wake(wf->t, wf->env, wf->w.id, wf->w.type, fire_at)) != 0) {
            return rc;
        }
    } else {
        seq = ev->seq;
        fire_at = (int64_t)ev->aux;
    }
    *out_seq = seq;
    const wf_event *fired = find_arrival(wf, seq, EV_TIMER_FIRED, EV_TIMER_FIRED, 0, UINT64_MAX);
    if (fired != NULL) {
        *out_fired_seq = fired->seq;
        return 0;
    }
    *out_fired_seq = 0;
    /* Not fired yet. At the live edge a due timer fires now (recorded, so replays agree). */
    if (!wf->query_mode && horizon(wf) == UINT64_MAX) {
        if (wf->env->now_ms >= fire_at) {
            aj_bytes none = {"", 0};
            if ((rc = record(wf, EV_TIMER_FIRED, name, none, 0, seq, 0)) != 0) {
                return rc;
            }
            if (wf->env->delta != NULL) {
                wf->env->delta
                    ->wf_timer_lag_hist[aj__hist_bucket((uint64_t)(wf->env->now_ms - fire_at))]++;
            }
            *out_fired_seq = wf->w.seq;
        } else if (replayed) {
            /* Woken early (another event, or a clock behind the one that scheduled it): make
             * sure a task still runs when the timer is due. */
            if ((rc = wf_wake(wf->t, wf->env, wf->w.id, wf->w.type, fire_at)) != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int aj_sleep_until(aj_wf *wf, int64_t at_ms) {
    uint64_t seq, fired;
    int rc = timer(wf, "sleep", at_ms, &seq, &fired);
    if (rc != 0) {
        return rc;
    }
    if (fired != 0) {
        return updates_replay(wf, fired);
    }
    if (cancel_visible(wf, horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled while sleeping");
    }
    return aj__wf_suspend_at(wf, "timer", "sleep", 1);
}

int aj_sleep(aj_wf *wf, int64_t ms) {
    if (ms < 0) {
        return aj__err(AJ_EINVAL, "a sleep must not be negative");
    }
    /* The wake time is fixed when the timer is first scheduled; on replay it comes from the
     * history, so the current time used here does not matter then. */
    return aj_sleep_until(wf, wf->env->now_ms + ms);
}

int aj_wait_signal(aj_wf *wf, const char *name, int64_t timeout_ms, aj_bytes *out) {
    uint64_t timer_seq = 0, fired_seq = 0;
    char tname[AJ_NAME_MAX + 16];
    snprintf(tname, sizeof tname, "signal:%s", name);
    if (timeout_ms >= 0) {
        int rc = timer(wf, tname, wf->env->now_ms + timeout_ms, &timer_seq, &fired_seq);
        if (rc != 0) {
            return rc;
        }
    }
    /* The first unconsumed signal of that name that arrived before the timeout fired and
     * before this call's position in the history; once more past this call's wait point when
     * the run waited here before. */
    int marked = 0;
again:;
    uint64_t before = horizon(wf);
    if (fired_seq != 0 && fired_seq < before) {
        before = fired_seq;
    }
    for (size_t i = 0; i < wf->n_events && wf->events[i].seq < before; i++) {
        const wf_event *ev = &wf->events[i];
        if (ev->type == EV_SIGNAL_RECEIVED && !wf->consumed[i] && aj_slice_eq(ev->name, name)) {
            wf->consumed[i] = 1;
            int urc = updates_replay(wf, ev->seq);
            if (urc != 0) {
                return urc;
            }
            if (out != NULL) {
                *out = bytes_of(ev->data);
            }
            if (timer_seq != 0 && fired_seq == 0) {
                /* Cancel the timeout: a command, so replays expect it. */
                const wf_event *c = NULL;
                int rc = next_command(wf, EV_TIMER_CANCELLED, EV_TIMER_CANCELLED, tname, &c);
                if (rc < 0) {
                    return rc;
                }
                if (rc == 0 && !wf->query_mode) {
                    aj_bytes none = {"", 0};
                    return record(wf, EV_TIMER_CANCELLED, tname, none, 0, timer_seq, 0);
                }
            }
            return 0;
        }
    }
    if (fired_seq != 0) {
        int urc = updates_replay(wf, fired_seq);
        if (urc != 0) {
            return urc;
        }
        return aj__err(AJ_ETIMEDOUT, "no signal '%s' within %lld ms", name, (long long)timeout_ms);
    }
    int mrc = aj__wf_wait_marker(wf, "signal", name);
    if (mrc < 0) {
        return mrc;
    }
    if (mrc == 1) {
        marked = 1;
        goto again;
    }
    if (cancel_visible(wf, horizon(wf))) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled while waiting for signal '%s'", name);
    }
    /* With a timeout, the timer_scheduled just replayed or made marks where the code waits. */
    return aj__wf_suspend_at(wf, "signal", name, timer_seq != 0 || marked);
}

/* ----------------------------------------------------------------------------------------- */
/* Sagas                                                                                      */

/* The first compensation a run registers makes it a saga, counted once: the flag is stored with
 * the workflow record, so replays of later tasks find it set. */
static void saga_mark(aj_wf *wf) {
    if (wf->query_mode || (wf->w.flags & WF_FLAG_SAGA) != 0) {
        return;
    }
    wf->w.flags |= WF_FLAG_SAGA;
    if (wf->env->delta != NULL) {
        wf->env->delta->wf_sagas_started++;
    }
}

int aj_saga_push(aj_wf *wf, const char *name, aj_step_fn fn, void *ud, aj_bytes data) {
    if (wf->n_saga == WF_SAGA_MAX) {
        return aj__err(AJ_ETOOBIG, "a saga holds at most %d compensations", WF_SAGA_MAX);
    }
    saga_entry *s = &wf->saga[wf->n_saga];
    memset(s, 0, sizeof *s);
    s->name = aj_arena_dup(&wf->scratch, name, strlen(name));
    s->data.data = aj_arena_dup(&wf->scratch, data.data, data.len);
    s->data.len = data.len;
    if (s->name == NULL || s->data.data == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory pushing a compensation");
    }
    s->fn = fn;
    s->ud = ud;
    wf->n_saga++;
    saga_mark(wf);
    return 0;
}

static const char *arena_str(aj_wf *wf, const char *s) {
    return s ? aj_arena_dup(&wf->scratch, s, strlen(s)) : NULL;
}

int aj_saga_push_job(aj_wf *wf, const char *name, const aj_job_spec *spec) {
    if (name == NULL || name[0] == '\0' || spec == NULL || spec->type == NULL) {
        return aj__err(AJ_EINVAL, "a job compensation needs a name and a job spec with a type");
    }
    if (wf->n_saga == WF_SAGA_MAX) {
        return aj__err(AJ_ETOOBIG, "a saga holds at most %d compensations", WF_SAGA_MAX);
    }
    saga_entry *s = &wf->saga[wf->n_saga];
    memset(s, 0, sizeof *s);
    s->name = arena_str(wf, name);
    s->spec = *spec;
    s->spec.queue = arena_str(wf, spec->queue);
    s->spec.type = arena_str(wf, spec->type);
    s->spec.payload = aj_arena_dup(&wf->scratch, spec->payload, spec->payload_len);
    s->spec.idempotency_key = NULL;
    s->spec.metadata = arena_str(wf, spec->metadata);
    if (s->name == NULL || s->spec.type == NULL || s->spec.payload == NULL ||
        (spec->queue != NULL && s->spec.queue == NULL) ||
        (spec->metadata != NULL && s->spec.metadata == NULL)) {
        return aj__err(AJ_ENOMEM, "out of memory pushing a compensation");
    }
    wf->n_saga++;
    saga_mark(wf);
    return 0;
}

/* Runs one compensation: 0 done, AJ_EFAILED failed, AJ_SUSPEND waiting for its job. */
static int compensate_one(aj_wf *wf, saga_entry *s) {
    const wf_event *ev = NULL;
    int rc = next_command(wf, EV_COMPENSATION_STARTED, EV_COMPENSATION_STARTED, s->name, &ev);
    if (rc < 0) {
        return rc;
    }
    aj_bytes none = {"", 0};
    if (s->fn == NULL) {
        /* A job: compensation_started carries the job; its outcome arrives later. */
        uint64_t seq;
        if (rc == 0) {
            if (wf->query_mode) {
                return suspend(wf);
            }
            uint64_t job;
            if ((rc = schedule_job(wf, &s->spec, &job)) != 0 ||
                (rc = record(wf, EV_COMPENSATION_STARTED, s->name, none, job, 0, 0)) != 0) {
                return rc;
            }
            return aj__wf_suspend_at(wf, "compensation", s->name, 1);
        }
        seq = ev->seq;
        const wf_event *done = find_arrival(wf, seq, EV_COMPENSATION_COMPLETED,
                                            EV_COMPENSATION_FAILED, 0, horizon(wf));
        if (done == NULL) {
            return aj__wf_suspend_at(wf, "compensation", s->name, 1);
        }
        if ((rc = updates_replay(wf, done->seq)) != 0) {
            return rc;
        }
        return done->type == EV_COMPENSATION_COMPLETED ? 0 : AJ_EFAILED;
    }
    /* Inline: started and its outcome are both commands. */
    if (rc == 0) {
        if (wf->query_mode) {
            return suspend(wf);
        }
        if ((rc = record(wf, EV_COMPENSATION_STARTED, s->name, none, 0, 0, 0)) != 0) {
            return rc;
        }
    }
    rc = next_command(wf, EV_COMPENSATION_COMPLETED, EV_COMPENSATION_FAILED, s->name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return ev->type == EV_COMPENSATION_COMPLETED ? 0 : AJ_EFAILED;
    }
    if (wf->query_mode) {
        return suspend(wf);
    }
    aj_step_policy p;
    aj_step_policy_init(&p);
    p.max_attempts = WF_COMPENSATION_ATTEMPTS;
    aj_bytes out;
    char *err = NULL;
    rc = run_inline(wf, &p, s->fn, s->ud, s->data, &out, &err);
    if (rc == 0) {
        return record(wf, EV_COMPENSATION_COMPLETED, s->name, out, 0, 0, 0);
    }
    if (rc != AJ_EFAILED) {
        aj__free(err);
        return rc;
    }
    aj_bytes e = {err ? err : "failed", strlen(err ? err : "failed")};
    rc = record(wf, EV_COMPENSATION_FAILED, s->name, e, 0, 0, 0);
    aj__free(err);
    return rc != 0 ? rc : AJ_EFAILED;
}

int aj_saga_compensate(aj_wf *wf) {
    if (wf->w.state == AJ_WF_RUNNING) {
        wf->w.state = AJ_WF_COMPENSATING;
    }
    int failed = 0;
    while (wf->n_saga > 0) {
        saga_entry *s = &wf->saga[wf->n_saga - 1];
        int rc = compensate_one(wf, s);
        if (rc == AJ_SUSPEND || (rc < 0 && rc != AJ_EFAILED)) {
            return rc;
        }
        if (rc == AJ_EFAILED) {
            failed = 1;
        }
        wf->n_saga--;
    }
    wf->compensated = failed ? 2 : 1;
    return failed ? aj__err(AJ_EFAILED, "a compensation failed") : 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Running a workflow                                                                         */

static int pending_add(aj_wf *wf, const wf_inbox_entry *e);

static int drain_inbox_cb(void *ud, const wf_inbox_entry *e) {
    aj_wf *wf = ud;
    if (e->type == EV_UPDATE_REQUESTED) {
        if (e->run != wf->w.run) {
            return wf_reply_put(wf->t, (int64_t)e->ref, e->aux, WF_REPLY_GONE,
                                aj_slice_str("the workflow run it was sent to has ended"));
        }
        return pending_add(wf, e); /* validated where the code waits; recorded if accepted */
    }
    if (e->run != wf->w.run) {
        /* A signal or cancel request sent while the run continued as new is meant for the
         * workflow, so the current run gets it; anything else for an earlier run is dropped. */
        int carry = 0;
        if ((e->type == EV_SIGNAL_RECEIVED || e->type == EV_CANCEL_REQUESTED) &&
            e->run < wf->w.run) {
            carry = aj__wf_runs_continued(wf->t, wf->w.id, e->run, wf->w.run);
        }
        if (carry <= 0) {
            return carry;
        }
    }
    if (e->type == EV_CANCEL_REQUESTED) {
        wf->w.flags |= WF_FLAG_CANCEL_REQUESTED;
    }
    aj_bytes d = bytes_of(e->data);
    char name[AJ_NAME_MAX * 2 + 1];
    snprintf(name, sizeof name, "%.*s", (int)e->name.n, (const char *)e->name.p);
    return record(wf, e->type, name, d, e->aux, e->ref, 0);
}

void aj__wf_free(aj_wf *wf) {
    if (wf == NULL) {
        return;
    }
    aj__free(wf->events);
    aj__free(wf->consumed);
    aj__free(wf->park_msg);
    aj__free(wf->error);
    aj__free(wf->pending);
    aj_arena_free(&wf->arena);
    aj_arena_free(&wf->scratch);
    aj__free(wf);
}

/* Puts a committed task's history into the cache (consuming wf). */
void aj__wf_cache_put(aj_engine *e, aj_wf *wf) {
    aj__wf_cache *c = cache_of(e);
    char *id = c ? aj__memdup0(wf->w.id.p, wf->w.id.n) : NULL;
    if (c == NULL || id == NULL || wf->n_events > WF_CACHE_EVENTS) {
        aj__free(id);
        aj__wf_free(wf);
        return;
    }
    wf_cache_entry ent = {id,           wf->w.run,    wf->w.seq,      wf->w.last_id, wf->events,
                          wf->consumed, wf->n_events, wf->cap_events, wf->arena,     0};
    wf->events = NULL;
    wf->consumed = NULL;
    memset(&wf->arena, 0, sizeof wf->arena);
    aj__wf_free(wf);
    pthread_mutex_lock(&c->mu);
    ent.used = ++c->clock;
    while (c->n > 0 && (c->n == WF_CACHE_ENTRIES || c->events + ent.n > WF_CACHE_EVENTS)) {
        size_t lru = 0;
        for (size_t i = 1; i < c->n; i++) {
            if (c->entries[i].used < c->entries[lru].used) {
                lru = i;
            }
        }
        c->events -= c->entries[lru].n;
        entry_free(&c->entries[lru]);
        c->entries[lru] = c->entries[--c->n];
    }
    c->entries[c->n++] = ent;
    c->events += ent.n;
    pthread_mutex_unlock(&c->mu);
}

/* Loads the run and its history into a new context: from the cache plus the events appended
 * since, when this process ran the workflow recently, else from the store. */
int aj__wf_load(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, int query_mode,
                aj_wf **out) {
    aj_wf *wf = aj__calloc(1, sizeof *wf);
    if (wf == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory running a workflow");
    }
    wf->e = e;
    wf->t = t;
    wf->env = env;
    wf->query_mode = query_mode;
    uint64_t from = 1, prev_id = 0;
    int rc = wf_read(t, id, &wf->w);
    aj__wf_cache *cache = query_mode ? NULL : cache_of(e);
    wf_cache_entry ent;
    if (rc == 0 && cache != NULL && cache_take(cache, id, &ent)) {
        if (ent.run == wf->w.run && ent.seq <= wf->w.seq) {
            wf->events = ent.events;
            wf->consumed = ent.consumed;
            wf->n_events = ent.n;
            wf->cap_events = ent.cap;
            wf->arena = ent.arena;
            memset(wf->consumed, 0, ent.n);
            from = ent.seq + 1;
            prev_id = ent.last_id;
            aj__free(ent.id);
            wf->cache_hit = 1;
        } else {
            entry_free(&ent);
        }
    }
    if (rc == 0) {
        /* Keep the record's strings: the transaction's buffers change as it writes. */
        wf->w.id.p = aj_arena_dup(&wf->scratch, wf->w.id.p, wf->w.id.n);
        wf->w.type.p = aj_arena_dup(&wf->scratch, wf->w.type.p, wf->w.type.n);
        wf->w.input.p = aj_arena_dup(&wf->scratch, wf->w.input.p, wf->w.input.n);
        if (wf->w.result.p) {
            wf->w.result.p = aj_arena_dup(&wf->scratch, wf->w.result.p, wf->w.result.n);
        }
        if (wf->w.error.p) {
            wf->w.error.p = aj_arena_dup(&wf->scratch, wf->w.error.p, wf->w.error.n);
        }
        if (wf->w.id.p == NULL || wf->w.type.p == NULL || wf->w.input.p == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory running a workflow");
        }
    }
    if (rc == 0 && from <= wf->w.seq) {
        rc = hist_read(t, wf->w.id, wf->w.run, from, wf->w.seq, prev_id, load_cb, wf);
    }
    if (rc != 0) {
        aj__wf_free(wf);
        return rc;
    }
    *out = wf;
    return 0;
}

/* Continue-as-new: ends the run with continued_as_new and starts the next one under the same id
 * in the task's transaction. The context then holds the new run (its one event), so the cache
 * keeps the new run's history. */
static int continue_run(aj_wf *wf, const wf_rec *before) {
    for (size_t i = wf->cursor; i < wf->n_events; i++) {
        if (is_command(&wf->events[i]) && wf->events[i].type != EV_VERSION_MARKER) {
            return diverged(wf,
                            "non-determinism in workflow '%.*s': the code continued as new but "
                            "the history has %s '%.*s' (event %llu) next",
                            (int)wf->w.id.n, (const char *)wf->w.id.p,
                            wf_event_name(wf->events[i].type), (int)wf->events[i].name.n,
                            (const char *)wf->events[i].name.p,
                            (unsigned long long)wf->events[i].seq);
        }
    }
    const job_env *env = wf->env;
    int rc = record(wf, EV_CONTINUED_AS_NEW, "", wf->continue_input, wf->w.run + 1, 0, 1);
    if (rc == 0) {
        wf_rec closed = wf->w;
        closed.state = AJ_WF_CONTINUED;
        closed.finished_ms = env->now_ms;
        rc = wf_child_closed(wf->t, env, &closed, 0); /* its children's policies */
    }
    if (rc != 0) {
        return rc;
    }
    /* Signals the run received but did not consume carry over to the next run, in order, so
     * a signal sent at any moment is seen by some run. Copied out of the arena freed below. */
    size_t n_carry = 0;
    wf_event *carry = NULL;
    for (size_t i = 0; i < wf->n_events; i++) {
        n_carry += wf->events[i].type == EV_SIGNAL_RECEIVED && !wf->consumed[i];
    }
    if (n_carry > 0) {
        carry = aj_arena_alloc(&wf->scratch, n_carry * sizeof *carry);
        if (carry == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory continuing a workflow");
        }
        n_carry = 0;
        for (size_t i = 0; i < wf->n_events; i++) {
            const wf_event *ev = &wf->events[i];
            if (ev->type == EV_SIGNAL_RECEIVED && !wf->consumed[i]) {
                carry[n_carry] = *ev;
                carry[n_carry].name.p = aj_arena_dup(&wf->scratch, ev->name.p, ev->name.n);
                carry[n_carry].data.p = aj_arena_dup(&wf->scratch, ev->data.p, ev->data.n);
                if (carry[n_carry].name.p == NULL || carry[n_carry].data.p == NULL) {
                    return aj__err(AJ_ENOMEM, "out of memory continuing a workflow");
                }
                n_carry++;
            }
        }
    }
    wf->w.run++;
    wf->w.seq = 0;
    wf->w.last_id = 0;
    wf->w.state = AJ_WF_RUNNING;
    wf->w.flags = WF_FLAG_WAIT_POINTS;
    wf->w.created_ms = env->now_ms;
    wf->w.finished_ms = 0;
    wf->w.input.p = wf->continue_input.data;
    wf->w.input.n = wf->continue_input.len;
    wf->w.result.p = wf->w.error.p = NULL;
    wf->w.result.n = wf->w.error.n = 0;
    /* The old run's events leave the context (and the cache) with it. */
    wf->n_events = 0;
    wf->cursor = 0;
    aj_arena_free(&wf->arena);
    memset(&wf->arena, 0, sizeof wf->arena);
    char type[AJ_NAME_MAX + 1];
    snprintf(type, sizeof type, "%.*s", (int)wf->w.type.n, (const char *)wf->w.type.p);
    rc = record(wf, EV_WORKFLOW_STARTED, type, wf->continue_input, 0, 0, 0);
    for (size_t i = 0; i < n_carry && rc == 0; i++) {
        char name[AJ_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)carry[i].name.n, (const char *)carry[i].name.p);
        rc = record(wf, EV_SIGNAL_RECEIVED, name, bytes_of(carry[i].data), carry[i].aux, 0, 0);
    }
    if (rc == 0) {
        rc = wf_write(wf->t, before, &wf->w);
    }
    if (rc == 0) {
        rc = wf_wake(wf->t, env, wf->w.id, wf->w.type, 0);
    }
    return rc;
}

int aj_wf_continue_as_new(aj_wf *wf, const void *input, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "continue-as-new input is %zu bytes, over the %zu-byte limit",
                       len, AJ_WF_DATA_MAX);
    }
    void *copy = aj_arena_dup(&wf->scratch, input ? input : "", len);
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a continue-as-new input");
    }
    wf->continue_input.data = copy;
    wf->continue_input.len = len;
    wf->continue_as_new = 1;
    answer_query(wf);
    return AJ_CONTINUE_AS_NEW;
}

/* ----------------------------------------------------------------------------------------- */
/* For the composition calls in other files (wf_child.c, wf_patch.c)                          */

void aj__wf_view_get(aj_wf *wf, aj__wf_view *v) {
    v->t = wf->t;
    v->env = wf->env;
    v->w = &wf->w;
    v->events = wf->events;
    v->n_events = wf->n_events;
    v->cursor = wf->cursor;
    v->query_mode = wf->query_mode;
    v->scratch = &wf->scratch;
    v->patches = &wf->patches;
    v->n_patches = &wf->n_patches;
    v->wait = &wf->wait;
}

int aj__wf_is_command(const wf_event *ev) {
    return is_command(ev);
}

int aj__wf_next(aj_wf *wf, uint8_t type, uint8_t alt, const char *name, const wf_event **out) {
    return next_command(wf, type, alt, name, out);
}

int aj__wf_record(aj_wf *wf, uint8_t type, const char *name, aj_bytes data, uint64_t aux,
                  uint64_t ref) {
    return record(wf, type, name, data, aux, ref, 0);
}

const wf_event *aj__wf_arrival(const aj_wf *wf, uint64_t ref, uint8_t type, uint8_t alt) {
    return find_arrival(wf, ref, type, alt, 0, horizon(wf));
}

int aj__wf_suspend(aj_wf *wf) {
    return suspend(wf);
}

int aj__wf_diverged(aj_wf *wf, const char *msg) {
    return diverged(wf, "%s", msg);
}

/* The end state of a run whose function returned rc. */
static aj_wf_state end_state(const aj_wf *wf, int rc, uint8_t *event) {
    if (wf->compensated) {
        *event = wf->compensated == 1 ? EV_WORKFLOW_COMPENSATED : EV_WORKFLOW_COMPENSATION_FAILED;
        return wf->compensated == 1 ? AJ_WF_COMPENSATED : AJ_WF_COMPENSATION_FAILED;
    }
    if (rc == 0) {
        *event = EV_WORKFLOW_COMPLETED;
        return AJ_WF_COMPLETED;
    }
    if (rc == AJ_ECANCELLED) {
        *event = EV_WORKFLOW_CANCELLED;
        return AJ_WF_CANCELLED;
    }
    *event = EV_WORKFLOW_FAILED;
    return AJ_WF_FAILED;
}

/* One task: advance the workflow as far as it goes. Returns 0, or AJ_ESTATE with
 * *out_parked set when the code diverged from the history (the caller parks the run in a fresh
 * transaction). */
static int updates_gone(aj_wf *wf, const char *why);

int aj__wf_advance(aj_engine *e, kv_txn *t, const job_env *env, aj_slice id, aj_workflow_fn fn,
                   void *ud, char **out_parked, aj_wf **keep) {
    aj_wf *wf;
    *keep = NULL;
    int rc = aj__wf_load(e, t, env, id, 0, &wf);
    if (rc != 0) {
        return rc;
    }
    wf->loaded = wf->n_events;
    wf_rec before = wf->w;
    if (aj_wf_state_is_final(wf->w.state) || wf->w.state == AJ_WF_PARKED) {
        *keep = wf;
        return 0; /* nothing to do: a stale wake-up */
    }
    rc = wf_inbox_drain(t, wf->w.id, drain_inbox_cb, wf);
    if (rc == 0 && wf->w.deadline_ms > 0 && env->now_ms >= wf->w.deadline_ms) {
        aj_bytes why = {"execution timeout", 17};
        rc = updates_gone(wf, "the workflow timed out before handling the update");
        if (rc == 0) {
            rc = record(wf, EV_WORKFLOW_TIMED_OUT, "", why, 0, 0, 1);
        }
        if (rc == 0) {
            wf->w.state = AJ_WF_TIMED_OUT;
            wf->w.finished_ms = env->now_ms;
            wf->w.error = aj_slice_str("execution timeout");
            rc = wf_write(t, &before, &wf->w);
        }
        if (rc == 0) {
            rc = wf_child_closed(t, env, &wf->w, 1);
        }
        if (rc == 0) {
            *keep = wf;
        } else {
            aj__wf_free(wf);
        }
        return rc;
    }
    if (rc != 0) {
        aj__wf_free(wf);
        return rc;
    }
    aj__err_clear();
    aj_bytes input = {wf->w.input.p, wf->w.input.n};
    int64_t started = aj__mono_us();
    int fr = fn(wf, input, ud);
    wf->run_us = aj__mono_us() - started;
    if (wf->nondeterminism) {
        *out_parked = wf->park_msg;
        wf->park_msg = NULL;
        aj__wf_free(wf);
        return AJ_ESTATE;
    }
    if (fr == AJ_EIO || fr == AJ_EFULL || fr == AJ_ENOMEM || fr == AJ_ERETRIES ||
        fr == AJ_ECORRUPT || fr == AJ_EINTERNAL || fr == AJ_ECONFLICT || fr == AJ_EFORMAT ||
        fr == AJ_ECLOSED || fr == AJ_EBUSY) {
        /* Store trouble inside a durable call (I/O, conflicts, memory): retry the task. */
        aj__wf_free(wf);
        return fr;
    }
    wf->w.flags |= WF_FLAG_WAIT_POINTS; /* this task records where its code waits */
    if (fr == AJ_SUSPEND) {
        /* Replay must have consumed every recorded command; where the code waits is recorded
         * when no command of its own marks it (wf_progress.c). */
        rc = aj__wf_progress_suspended(wf);
        if (wf->nondeterminism) {
            *out_parked = wf->park_msg;
            wf->park_msg = NULL;
            aj__wf_free(wf);
            return AJ_ESTATE;
        }
        if (rc == 0) {
            rc = updates_gone(wf, "the workflow could not handle the update where it waits");
        }
    } else if (fr == AJ_CONTINUE_AS_NEW && wf->continue_as_new) {
        rc = updates_gone(wf, "the workflow continued as new before handling the update");
        if (rc == 0) {
            rc = continue_run(wf, &before);
        }
        if (rc == 0) {
            *keep = wf;
        } else {
            if (wf->nondeterminism) {
                *out_parked = wf->park_msg;
                wf->park_msg = NULL;
            }
            aj__wf_free(wf);
        }
        return rc;
    } else if ((rc = updates_gone(wf, "the workflow ended before handling the update")) != 0) {
        /* store trouble: the task is retried */
    } else {
        for (size_t i = wf->cursor; i < wf->n_events; i++) {
            if (is_command(&wf->events[i]) && wf->events[i].type != EV_VERSION_MARKER) {
                char *msg = aj__malloc(300);
                if (msg != NULL) {
                    snprintf(msg, 300,
                             "non-determinism in workflow '%.*s': the code returned but the "
                             "history has %s '%.*s' (event %llu) next",
                             (int)wf->w.id.n, (const char *)wf->w.id.p,
                             wf_event_name(wf->events[i].type), (int)wf->events[i].name.n,
                             (const char *)wf->events[i].name.p,
                             (unsigned long long)wf->events[i].seq);
                }
                *out_parked = msg;
                aj__wf_free(wf);
                return AJ_ESTATE;
            }
        }
        uint8_t ev;
        aj_wf_state st = end_state(wf, fr, &ev);
        aj_bytes data;
        if (st == AJ_WF_COMPLETED) {
            data = wf->has_result ? wf->result : (aj_bytes){"", 0};
        } else {
            const char *msg = wf->error ? wf->error : aj_errmsg();
            if (msg[0] == '\0') {
                msg = aj_strerror(fr);
            }
            data.data = aj_arena_dup(&wf->scratch, msg, strlen(msg));
            data.len = strlen(msg);
        }
        rc = record(wf, ev, "", data, 0, 0, 1);
        if (rc == 0) {
            wf->w.state = st;
            wf->w.finished_ms = env->now_ms;
            if (st == AJ_WF_COMPLETED) {
                wf->w.result.p = data.data;
                wf->w.result.n = data.len;
            } else {
                wf->w.error.p = data.data;
                wf->w.error.n = data.len;
            }
        }
    }
    if (rc == 0 &&
        (wf->w.seq != before.seq || wf->w.state != before.state || wf->w.flags != before.flags)) {
        rc = wf_write(t, &before, &wf->w);
    }
    if (rc == 0 && aj_wf_state_is_final(wf->w.state)) {
        rc = wf_child_closed(t, env, &wf->w, 1); /* its parent, and its children's policies */
    }
    if (rc == 0) {
        *keep = wf;
    } else {
        aj__wf_free(wf);
    }
    return rc;
}

void aj__wf_task_done(aj_engine *e, aj_wf *wf) {
    aj_counters d;
    memset(&d, 0, sizeof d);
    d.wf_tasks = 1;
    d.wf_events_replayed = wf->loaded;
    d.wf_events_appended = wf->n_events - wf->loaded;
    d.wf_replay_us = (uint64_t)wf->run_us;
    d.wf_cache_hits = wf->cache_hit;
    d.wf_cache_misses = !wf->cache_hit;
    eng_count(e, &d);
    aj__wf_cache_put(e, wf);
}

/* Parks a run in its own transaction. */
int aj__wf_park(kv_txn *t, const job_env *env, aj_slice id, const char *msg) {
    wf_rec before, w;
    int rc = wf_read(t, id, &before);
    if (rc != 0 || aj_wf_state_is_final(before.state) || before.state == AJ_WF_PARKED) {
        return rc;
    }
    w = before;
    aj_slice m = aj_slice_str(msg);
    rc = wf_append(t, env, &w, EV_WORKFLOW_PARKED, aj_slice_str(""), m, 0, 0, 1);
    if (rc == 0) {
        w.state = AJ_WF_PARKED;
        w.error = m;
        rc = wf_write(t, &before, &w);
    }
    return rc;
}

/* Runs the function read-only and answers a query. */
int aj__wf_query_run(aj_wf *wf, aj_workflow_fn fn, void *ud, const char *name, char **out,
                     size_t *out_len) {
    wf->query_name = name;
    aj_bytes input = {wf->w.input.p, wf->w.input.n};
    fn(wf, input, ud); /* how it ends does not matter: the handler has seen the state */
    if (wf->nondeterminism) {
        free(wf->query_out);
        wf->query_out = NULL;
        return aj__err(AJ_ESTATE, "%s", wf->park_msg ? wf->park_msg : "non-determinism");
    }
    if (!wf->query_answered) {
        return aj__err(AJ_ENOTFOUND, "workflow '%s' has no query handler '%s'", aj_wf_id(wf), name);
    }
    if (wf->query_rc != 0) {
        free(wf->query_out);
        return wf->query_rc;
    }
    *out = wf->query_out;
    *out_len = wf->query_len;
    return 0;
}

int aj__wf_replay_check(aj_wf *wf, aj_workflow_fn fn, void *ud, char **out_report) {
    aj_bytes input = {wf->w.input.p, wf->w.input.n};
    int fr = fn(wf, input, ud);
    if (fr == AJ_SUSPEND && !wf->nondeterminism) {
        (void)aj__wf_progress_suspended(wf); /* read-only: checks, never records */
    }
    char *msg = NULL;
    if (wf->nondeterminism) {
        msg = wf->park_msg;
        wf->park_msg = NULL;
    } else if (fr != AJ_SUSPEND) {
        /* The code finished: every recorded command must have been made. */
        for (size_t i = wf->cursor; i < wf->n_events && msg == NULL; i++) {
            const wf_event *ev = &wf->events[i];
            if (is_command(ev) && ev->type != EV_VERSION_MARKER) {
                msg = aj__malloc(400);
                if (msg != NULL) {
                    snprintf(msg, 400,
                             "the code returned, but the history has %s '%.*s' (event %llu) next",
                             wf_event_name(ev->type), (int)ev->name.n, (const char *)ev->name.p,
                             (unsigned long long)ev->seq);
                }
            }
        }
    }
    if (msg == NULL) {
        return 0;
    }
    int rc = aj__err(AJ_ESTATE, "%s", msg);
    if (out_report != NULL) {
        *out_report = msg;
    } else {
        aj__free(msg);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Updates                                                                                    */
/*
 * An update request reaches the task through the inbox but never enters the history by itself:
 * the task keeps it aside (pending) and handles it where the code next waits (a durable call
 * suspends) or ends (aj_wf_set_result, aj_wf_fail) at the live edge, while the handlers the code
 * set point to its live locals. The validator decides first; a rejection only writes the answer
 * (wf_reply.h). An accepted update is recorded as update_accepted, its handler runs, and its
 * result is recorded as update_completed; both are neither commands nor arrivals. On replay,
 * every call that resolves on an arrival first re-runs the handlers of the updates recorded
 * before that arrival (updates_replay), and a call that suspends those recorded before its
 * position, so the function's locals see each update at the point of the history where it was
 * accepted.
 */

/* Bit in an update_completed event's aux: the handler failed (the data is its error). */
#define WF_AUX_UPDATE_FAILED ((uint64_t)1 << 63)

static const update_entry *find_update(const aj_wf *wf, aj_slice name) {
    for (size_t i = 0; i < wf->n_updates; i++) {
        if (aj_slice_eq(name, wf->updates[i].name)) {
            return &wf->updates[i];
        }
    }
    return NULL;
}

int aj_wf_set_update(aj_wf *wf, const char *name, aj_update_validate_fn validate,
                     aj_update_fn handler, void *ud) {
    int rc = aj_name_check("update name", name);
    if (rc != 0) {
        return rc;
    }
    if (handler == NULL) {
        return aj__err(AJ_EINVAL, "update '%s' needs a handler", name);
    }
    for (size_t i = 0; i < wf->n_updates; i++) {
        if (strcmp(wf->updates[i].name, name) == 0) {
            wf->updates[i] = (update_entry){wf->updates[i].name, validate, handler, ud};
            return 0;
        }
    }
    if (wf->n_updates == WF_UPDATES_MAX) {
        return aj__err(AJ_ETOOBIG, "a workflow may set at most %d update handlers", WF_UPDATES_MAX);
    }
    char *copy = aj_arena_dup(&wf->scratch, name, strlen(name) + 1);
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory setting an update handler");
    }
    wf->updates[wf->n_updates++] = (update_entry){copy, validate, handler, ud};
    return 0;
}

static int pending_add(aj_wf *wf, const wf_inbox_entry *e) {
    update_req *nv = aj__grow(wf->pending, &wf->cap_pending, wf->n_pending, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory taking an update");
    }
    wf->pending = nv;
    char *name = aj_arena_dup(&wf->scratch, e->name.p, e->name.n + 1);
    void *data = aj_arena_dup(&wf->scratch, e->data.p, e->data.n);
    if (name == NULL || data == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory taking an update");
    }
    name[e->name.n] = '\0';
    nv[wf->n_pending++] = (update_req){name, {data, e->data.n}, e->aux, (int64_t)e->ref};
    return 0;
}

/* Re-runs the handlers of the updates recorded before `before` not yet applied. */
static int updates_replay(aj_wf *wf, uint64_t before) {
    for (; wf->ucursor < wf->n_events && wf->events[wf->ucursor].seq < before; wf->ucursor++) {
        const wf_event *ev = &wf->events[wf->ucursor];
        if (ev->type != EV_UPDATE_ACCEPTED) {
            continue;
        }
        const update_entry *u = find_update(wf, ev->name);
        if (u == NULL) {
            return diverged(wf,
                            "non-determinism in workflow '%.*s': history event %llu is "
                            "update_accepted '%.*s' but the code sets no handler for it there",
                            (int)wf->w.id.n, (const char *)wf->w.id.p, (unsigned long long)ev->seq,
                            (int)ev->name.n, (const char *)ev->name.p);
        }
        char *out = NULL;
        size_t len = 0;
        u->handler(u->ud, bytes_of(ev->data), &out, &len); /* its outcome is recorded */
        free(out);
    }
    return 0;
}

static int reply(aj_wf *wf, const update_req *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int reply(aj_wf *wf, const update_req *p, int status, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return wf_reply_put(wf->t, p->sent_ms, p->req, status, aj_slice_str(msg));
}

/* Handles one pending request at the live edge. */
static int update_live(aj_wf *wf, const update_req *p) {
    const update_entry *u = find_update(wf, aj_slice_str(p->name));
    if (u == NULL) {
        return reply(wf, p, WF_REPLY_REJECTED,
                     "workflow '%s' has no update handler '%s' where it waits now", aj_wf_id(wf),
                     p->name);
    }
    if (u->validate != NULL) {
        char *why = NULL;
        aj__err_clear();
        int v = u->validate(u->ud, p->data, &why);
        if (v != 0) {
            const char *m = why != NULL ? why : aj_errmsg()[0] ? aj_errmsg() : "rejected";
            int rc = reply(wf, p, WF_REPLY_REJECTED, "%s", m);
            free(why);
            return rc;
        }
        free(why);
    }
    int rc = record(wf, EV_UPDATE_ACCEPTED, p->name, p->data, p->req, 0, 0);
    if (rc != 0) {
        return rc;
    }
    uint64_t accepted = wf->w.seq;
    char *out = NULL;
    size_t len = 0;
    aj__err_clear();
    int hr = u->handler(u->ud, p->data, &out, &len);
    char err[600];
    int status = WF_REPLY_OK;
    aj_bytes res = {out != NULL ? out : "", out != NULL ? len : 0};
    if (hr == 0 && res.len > AJ_WF_DATA_MAX) {
        hr = aj__err(AJ_ETOOBIG, "update result is %zu bytes, over the %zu-byte limit", res.len,
                     AJ_WF_DATA_MAX);
    }
    if (hr != 0) {
        snprintf(err, sizeof err, "%s", aj_errmsg()[0] ? aj_errmsg() : aj_strerror(hr));
        res.data = err;
        res.len = strlen(err);
        status = WF_REPLY_FAILED;
    }
    uint64_t aux = p->req | (status == WF_REPLY_FAILED ? WF_AUX_UPDATE_FAILED : 0);
    rc = record(wf, EV_UPDATE_COMPLETED, p->name, res, aux, accepted, 0);
    if (rc == 0) {
        aj_slice r = {res.data, res.len};
        rc = wf_reply_put(wf->t, p->sent_ms, p->req, status, r);
    }
    free(out);
    return rc;
}

/* At a point where the code waits or ends: recorded updates up to its position, then, at the
 * live edge, the pending ones. */
static int updates_at_wait(aj_wf *wf) {
    if (wf->nondeterminism) {
        return AJ_ESTATE;
    }
    uint64_t h = horizon(wf);
    int rc = updates_replay(wf, h);
    if (rc != 0 || h != UINT64_MAX || wf->query_mode || wf->t == NULL) {
        return rc;
    }
    while (rc == 0 && wf->next_pending < wf->n_pending) {
        rc = update_live(wf, &wf->pending[wf->next_pending++]);
    }
    wf->ucursor = wf->n_events; /* what was just recorded was applied live */
    return rc;
}

/* Answers the requests the code did not reach (the run ended or could not take them). */
static int updates_gone(aj_wf *wf, const char *why) {
    int rc = 0;
    while (rc == 0 && wf->next_pending < wf->n_pending) {
        rc = reply(wf, &wf->pending[wf->next_pending++], WF_REPLY_GONE, "%s", why);
    }
    return rc;
}
