/*
 * wf_context.c — a workflow run's context in memory: loading the run and its history (from the
 * history cache plus the events appended since, or from the store), recording events live, and
 * the replay primitives every durable call is built on (the next command, arrivals and the
 * horizon, divergence, suspension), plus the simple calls on the context (aj_wf_id,
 * aj_wf_set_result, aj_wf_fail, ...) and the accessors the composition files use (aj__wf_view).
 *
 * Replay: events are "commands" (made by the code in order: step_completed, activity_scheduled,
 * timer_scheduled, side_effect, compensation_*, wait_point, ...) or "arrivals" (from outside:
 * activity_completed, signal_received, timer_fired, cancel_requested, ...). Each durable call
 * consumes the next command and must match its kind and name, else the run is parked. Arrivals
 * are found by reference (the seq of the command they answer) or by order, and a call sees an
 * arrival only if it precedes the call's position in the history (its "horizon"), so the same
 * history always gives the same answers. Runtime layer, over core/workflow.h and core/history.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/history.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* History in memory                                                                          */

int wfx_is_command(const wf_event *ev) {
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
    copy.name.p = aj__arena_dup(&wf->arena, ev->name.p, ev->name.n);
    copy.data.p = aj__arena_dup(&wf->arena, ev->data.p, ev->data.n);
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
int wfx_record(aj_wf *wf, uint8_t type, const char *name, aj_bytes data, uint64_t aux, uint64_t ref,
               int final) {
    aj_slice n = aj__slice_str(name ? name : "");
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
    if (rc == 0 && wfx_is_command(&ev)) {
        wf->cursor = wf->n_events; /* a live command is consumed as it is made */
    }
    return rc;
}

/* The seq before which arrivals are visible to the call being made: the seq of the next command
 * still to be replayed, or everything when live. */
uint64_t wfx_horizon(const aj_wf *wf) {
    for (size_t i = wf->cursor; i < wf->n_events; i++) {
        /* A version marker never waits, and code that no longer asks about it skips it. */
        if (wfx_is_command(&wf->events[i]) && wf->events[i].type != EV_VERSION_MARKER) {
            return wf->events[i].seq;
        }
    }
    return UINT64_MAX;
}

/* Every durable call that cannot finish now returns through here: recorded updates up to the
 * call's position are applied, and at the live edge new ones are handled. */
int wfx_suspend(aj_wf *wf) {
    int rc = wfx_updates_at_wait(wf);
    wfx_answer_query(wf);
    return rc != 0 ? rc : AJ_SUSPEND;
}

/* Parks the run: the caller's code and its history disagree. */
int wfx_diverged(aj_wf *wf, const char *fmt, ...) {
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
int wfx_next_command(aj_wf *wf, uint8_t type, uint8_t alt, const char *name, const wf_event **out) {
    if (wf->nondeterminism) {
        return AJ_ESTATE;
    }
    for (size_t i = wf->cursor; i < wf->n_events; i++) {
        const wf_event *ev = &wf->events[i];
        if (!wfx_is_command(ev)) {
            continue;
        }
        if (ev->type == EV_VERSION_MARKER &&
            (type != EV_VERSION_MARKER || !aj__slice_eq(ev->name, name))) {
            continue; /* markers the code does not ask about here are skipped (wf_patch.c) */
        }
        if ((ev->type != type && ev->type != alt) || !aj__slice_eq(ev->name, name)) {
            return wfx_diverged(
                wf,
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
const wf_event *wfx_find_arrival(const aj_wf *wf, uint64_t ref, uint8_t type, uint8_t alt,
                                 int final_only, uint64_t before) {
    for (size_t i = 0; i < wf->n_events; i++) {
        const wf_event *ev = &wf->events[i];
        if (ev->seq >= before) {
            break;
        }
        if (ev->ref == ref && !wfx_is_command(ev) && (ev->type == type || ev->type == alt)) {
            if (final_only && ev->type == alt && !(ev->aux & WF_AUX_FINAL)) {
                continue; /* a failed attempt that will be retried */
            }
            return ev;
        }
    }
    return NULL;
}

int wfx_cancel_visible(const aj_wf *wf, uint64_t before) {
    for (size_t i = 0; i < wf->n_events && wf->events[i].seq < before; i++) {
        if (wf->events[i].type == EV_CANCEL_REQUESTED) {
            return 1;
        }
    }
    return 0;
}
/* ----------------------------------------------------------------------------------------- */
/* Simple calls                                                                               */

const char *aj_wf_id(const aj_wf *wf) {
    return (const char *)wf->w.id.p; /* NUL-terminated: copied into the arena */
}

int aj_wf_cancel_requested(const aj_wf *wf) {
    return wfx_cancel_visible(wf, wfx_horizon(wf));
}

int aj_wf_continue_suggested(const aj_wf *wf) {
    /* By the call's position in the history, so a replay answers as the original run did. */
    uint64_t h = wfx_horizon(wf);
    uint64_t at = h == UINT64_MAX ? wf->w.seq : h - 1;
    return at >= AJ_WF_EVENTS_SUGGEST;
}

int aj_wf_set_result(aj_wf *wf, const void *data, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "workflow result is %zu bytes, over the %zu-byte limit", len,
                       AJ_WF_DATA_MAX);
    }
    void *copy = aj__arena_dup(&wf->scratch, data, len);
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a workflow result");
    }
    wf->result.data = copy;
    wf->result.len = len;
    wf->has_result = 1;
    int rc = wfx_updates_at_wait(wf);
    wfx_answer_query(wf);
    return rc;
}

int aj_wf_fail(aj_wf *wf, const char *error) {
    aj__free(wf->error);
    wf->error = aj__strdup(error ? error : "failed");
    int rc = wfx_updates_at_wait(wf);
    wfx_answer_query(wf);
    return rc != 0 && rc != AJ_EFAILED ? rc : AJ_EFAILED;
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
    aj__arena_free(&wf->arena);
    aj__arena_free(&wf->scratch);
    aj__free(wf);
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
    aj__wf_cache *cache = query_mode ? NULL : wfx_cache_of(e);
    wf_cache_entry ent;
    if (rc == 0 && cache != NULL && wfx_cache_take(cache, id, &ent)) {
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
            wfx_cache_entry_free(&ent);
        }
    }
    if (rc == 0) {
        /* Keep the record's strings: the transaction's buffers change as it writes. */
        wf->w.id.p = aj__arena_dup(&wf->scratch, wf->w.id.p, wf->w.id.n);
        wf->w.type.p = aj__arena_dup(&wf->scratch, wf->w.type.p, wf->w.type.n);
        wf->w.input.p = aj__arena_dup(&wf->scratch, wf->w.input.p, wf->w.input.n);
        if (wf->w.result.p) {
            wf->w.result.p = aj__arena_dup(&wf->scratch, wf->w.result.p, wf->w.result.n);
        }
        if (wf->w.error.p) {
            wf->w.error.p = aj__arena_dup(&wf->scratch, wf->w.error.p, wf->w.error.n);
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
    return wfx_is_command(ev);
}

int aj__wf_next(aj_wf *wf, uint8_t type, uint8_t alt, const char *name, const wf_event **out) {
    return wfx_next_command(wf, type, alt, name, out);
}

int aj__wf_record(aj_wf *wf, uint8_t type, const char *name, aj_bytes data, uint64_t aux,
                  uint64_t ref) {
    return wfx_record(wf, type, name, data, aux, ref, 0);
}

const wf_event *aj__wf_arrival(const aj_wf *wf, uint64_t ref, uint8_t type, uint8_t alt) {
    return wfx_find_arrival(wf, ref, type, alt, 0, wfx_horizon(wf));
}

int aj__wf_suspend(aj_wf *wf) {
    return wfx_suspend(wf);
}

int aj__wf_diverged(aj_wf *wf, const char *msg) {
    return wfx_diverged(wf, "%s", msg);
}
