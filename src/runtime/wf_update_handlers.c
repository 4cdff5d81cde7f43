/*
 * wf_update_handlers.c — the run's side of workflow updates: the handlers a workflow sets
 * (aj_wf_set_update), the requests a task drains from the inbox and handles where the code
 * waits or ends at the live edge, and the replay of accepted updates at their place in the
 * history. Runtime layer (wf_ctx.h); the caller's side (aj_wf_update, waiting for the answer)
 * is wf_update.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/history.h"
#include "core/wf_reply.h"
#include "core/workflow.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"
#include "util/mem.h"

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
        if (aj__slice_eq(name, wf->updates[i].name)) {
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
    char *copy = aj__arena_dup(&wf->scratch, name, strlen(name) + 1);
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory setting an update handler");
    }
    wf->updates[wf->n_updates++] = (update_entry){copy, validate, handler, ud};
    return 0;
}

int wfx_pending_add(aj_wf *wf, const wf_inbox_entry *e) {
    update_req *nv = aj__grow(wf->pending, &wf->cap_pending, wf->n_pending, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory taking an update");
    }
    wf->pending = nv;
    char *name = aj__arena_dup(&wf->scratch, e->name.p, e->name.n + 1);
    void *data = aj__arena_dup(&wf->scratch, e->data.p, e->data.n);
    if (name == NULL || data == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory taking an update");
    }
    name[e->name.n] = '\0';
    nv[wf->n_pending++] = (update_req){name, {data, e->data.n}, e->aux, (int64_t)e->ref};
    return 0;
}

/* Re-runs the handlers of the updates recorded before `before` not yet applied. */
int wfx_updates_replay(aj_wf *wf, uint64_t before) {
    for (; wf->ucursor < wf->n_events && wf->events[wf->ucursor].seq < before; wf->ucursor++) {
        const wf_event *ev = &wf->events[wf->ucursor];
        if (ev->type != EV_UPDATE_ACCEPTED) {
            continue;
        }
        const update_entry *u = find_update(wf, ev->name);
        if (u == NULL) {
            return wfx_diverged(wf,
                                "non-determinism in workflow '%.*s': history event %llu is "
                                "update_accepted '%.*s' but the code sets no handler for it there",
                                (int)wf->w.id.n, (const char *)wf->w.id.p,
                                (unsigned long long)ev->seq, (int)ev->name.n,
                                (const char *)ev->name.p);
        }
        char *out = NULL;
        size_t len = 0;
        u->handler(u->ud, wfx_bytes_of(ev->data), &out, &len); /* its outcome is recorded */
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
    return wf_reply_put(wf->t, p->sent_ms, p->req, status, aj__slice_str(msg));
}

/* Handles one pending request at the live edge. */
static int update_live(aj_wf *wf, const update_req *p) {
    const update_entry *u = find_update(wf, aj__slice_str(p->name));
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
    int rc = wfx_record(wf, EV_UPDATE_ACCEPTED, p->name, p->data, p->req, 0, 0);
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
    rc = wfx_record(wf, EV_UPDATE_COMPLETED, p->name, res, aux, accepted, 0);
    if (rc == 0) {
        aj_slice r = {res.data, res.len};
        rc = wf_reply_put(wf->t, p->sent_ms, p->req, status, r);
    }
    free(out);
    return rc;
}

/* At a point where the code waits or ends: recorded updates up to its position, then, at the
 * live edge, the pending ones. */
int wfx_updates_at_wait(aj_wf *wf) {
    if (wf->nondeterminism) {
        return AJ_ESTATE;
    }
    uint64_t h = wfx_horizon(wf);
    int rc = wfx_updates_replay(wf, h);
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
int wfx_updates_gone(aj_wf *wf, const char *why) {
    int rc = 0;
    while (rc == 0 && wf->next_pending < wf->n_pending) {
        rc = reply(wf, &wf->pending[wf->next_pending++], WF_REPLY_GONE, "%s", why);
    }
    return rc;
}
