/*
 * wf_reset_copy.c — reset (see wf_reset_copy.h). The copied events keep their content, ids and
 * chain, so the new run's history validates like any other and replays to the same point; the code
 * then goes on live from there. A reset point must be an event that completes something
 * (workflow_started, step_completed, activity_completed, timer_fired, side_effect) with no
 * activity or job compensation scheduled before it still waiting for its outcome: the copied run
 * could never receive that outcome (the job belongs to the old run), so it would wait forever.
 * Jobs the old run scheduled after the reset point and still waits for are cancelled, so they do
 * not run beside the new run's own.
 */
#include "core/wf_reset_copy.h"

#include <stdio.h>
#include <string.h>

#include "core/child.h"
#include "util/err.h"
#include "util/mem.h"

/* Most reasons kept in the workflow_reset event. */
#define WF_RESET_REASON_MAX 1000

typedef struct copy_ctx {
    aj_buf *vals; /* encoded events, in order */
    size_t n, cap;
    uint8_t last_type;
    uint64_t last_id;
    /* seqs of activity_scheduled / job compensation_started events still without an outcome */
    uint64_t *open;
    size_t n_open, cap_open;
    aj_buf open_names; /* NUL-separated names, parallel to open */
} copy_ctx;

static void copy_free(copy_ctx *c) {
    for (size_t i = 0; i < c->n; i++) {
        aj__buf_free(&c->vals[i]);
    }
    aj__free(c->vals);
    aj__free(c->open);
    aj__buf_free(&c->open_names);
}

static int is_outcome(const wf_event *ev) {
    if (ev->ref == 0) {
        return 0;
    }
    switch (ev->type) {
    case EV_ACTIVITY_COMPLETED:
    case EV_COMPENSATION_COMPLETED:
    case EV_COMPENSATION_FAILED:
        return 1;
    case EV_ACTIVITY_FAILED:
        return (ev->aux & WF_AUX_FINAL) != 0;
    default:
        return 0;
    }
}

/* Tracks the jobs (activities, job compensations) still waiting for their outcome. */
static int open_cb(void *ud, const wf_event *ev) {
    copy_ctx *c = ud;
    if ((ev->type == EV_ACTIVITY_SCHEDULED || ev->type == EV_COMPENSATION_STARTED) &&
        ev->aux != 0) {
        uint64_t *no = aj__grow(c->open, &c->cap_open, c->n_open, sizeof *no);
        if (no == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory reading a history");
        }
        c->open = no;
        c->open[c->n_open++] = ev->seq;
    } else if (is_outcome(ev)) {
        for (size_t i = 0; i < c->n_open; i++) {
            if (c->open[i] == ev->ref) {
                c->open[i] = c->open[--c->n_open];
                break;
            }
        }
    }
    return 0;
}

static int copy_cb(void *ud, const wf_event *ev) {
    copy_ctx *c = ud;
    aj_buf *nv = aj__grow(c->vals, &c->cap, c->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory copying a history");
    }
    c->vals = nv;
    aj_buf b = AJ_BUF_INIT;
    int rc = hist_encode(ev, &b);
    if (rc != 0 || b.oom) {
        aj__buf_free(&b);
        return rc != 0 ? rc : aj__err(AJ_ENOMEM, "out of memory copying a history");
    }
    c->vals[c->n++] = b;
    c->last_type = ev->type;
    c->last_id = ev->id;
    return open_cb(c, ev);
}

/* Cancels the job scheduled by event `seq` of the run, unless it has finished or is gone. */
static int cancel_job(kv_txn *t, const job_env *env, aj_slice id, uint32_t run, uint64_t seq) {
    akey k;
    key_event(&k, id, run, seq);
    const uint8_t *v;
    size_t n;
    wf_event ev;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == 0) {
        rc = hist_decode(v, n, &ev);
    }
    if (rc == 0) {
        rc = job_cancel(t, env, ev.aux);
        if (rc == AJ_ESTATE || rc == AJ_ENOTFOUND) {
            aj__err_clear();
            rc = 0;
        }
    }
    return rc;
}

static int reset_point(uint8_t type) {
    return type == EV_WORKFLOW_STARTED || type == EV_STEP_COMPLETED ||
           type == EV_ACTIVITY_COMPLETED || type == EV_TIMER_FIRED || type == EV_SIDE_EFFECT;
}

/* The name of the event `seq` of the run, for messages. */
static void event_name(kv_txn *t, aj_slice id, uint32_t run, uint64_t seq, char *out, size_t n) {
    akey k;
    key_event(&k, id, run, seq);
    const uint8_t *v;
    size_t vn;
    wf_event ev;
    snprintf(out, n, "?");
    if (kv_get(t, k.b, k.n, &v, &vn) == 0 && hist_decode(v, vn, &ev) == 0) {
        snprintf(out, n, "%s '%.*s'", wf_event_name(ev.type), (int)ev.name.n,
                 (const char *)ev.name.p);
    }
}

int wf_reset(kv_txn *t, const job_env *env, const char *id, uint64_t to_seq, const char *reason,
             uint32_t *out_run) {
    int rc = wf_id_check(id);
    if (rc != 0) {
        return rc;
    }
    if (reason == NULL) {
        reason = "reset";
    }
    if (strlen(reason) > WF_RESET_REASON_MAX) {
        return aj__err(AJ_EINVAL, "a reset reason is at most %d bytes", WF_RESET_REASON_MAX);
    }
    wf_rec before;
    aj_slice sid = aj__slice_str(id);
    if ((rc = wf_read(t, sid, &before)) != 0) {
        return rc;
    }
    if (to_seq == 0 || to_seq > before.seq) {
        return aj__err(AJ_EINVAL,
                       "workflow '%s' run %u has events 1 to %llu; there is no event %llu", id,
                       before.run, (unsigned long long)before.seq, (unsigned long long)to_seq);
    }
    copy_ctx c;
    memset(&c, 0, sizeof c);
    rc = hist_read(t, sid, before.run, 1, to_seq, 0, copy_cb, &c);
    if (rc == 0 && !reset_point(c.last_type)) {
        rc = aj__err(AJ_EINVAL,
                     "event %llu of workflow '%s' is %s; reset to workflow_started (1), a "
                     "step_completed, activity_completed, timer_fired or side_effect event",
                     (unsigned long long)to_seq, id, wf_event_name(c.last_type));
    }
    if (rc == 0 && c.n_open > 0) {
        char what[AJ_NAME_MAX + 64];
        event_name(t, sid, before.run, c.open[0], what, sizeof what);
        rc = aj__err(AJ_EINVAL,
                     "event %llu of workflow '%s' is not a safe reset point: %s (event %llu) "
                     "has no outcome before it; reset to an event after that outcome",
                     (unsigned long long)to_seq, id, what, (unsigned long long)c.open[0]);
    }
    if (rc != 0) {
        copy_free(&c);
        return rc;
    }
    char why[WF_RESET_REASON_MAX + 64];
    snprintf(why, sizeof why, "reset to event %llu: %s", (unsigned long long)to_seq, reason);
    wf_rec old = before;
    if (!aj_wf_state_is_final(before.state)) {
        /* The running (or parked) run ends here; its jobs' outcomes no longer reach anyone. */
        rc = wf_append(t, env, &old, EV_WORKFLOW_TERMINATED, aj__slice_str(""), aj__slice_str(why),
                       0, 0, 1);
        if (rc == 0) {
            /* Its children get their parent-close policy like at any other end of a run; the
             * id goes on in the new run, so a parent of this workflow is not told. */
            old.state = AJ_WF_TERMINATED;
            rc = wf_child_closed(t, env, &old, 0);
        }
    }
    wf_rec w;
    memset(&w, 0, sizeof w);
    w.id = before.id;
    w.type = before.type;
    w.run = before.run + 1;
    w.state = AJ_WF_RUNNING;
    /* The copied prefix holds wait points only if the old run's tasks wrote them. */
    w.flags = before.flags & WF_FLAG_WAIT_POINTS;
    w.created_ms = w.updated_ms = env->now_ms;
    w.input = before.input;
    w.hlc = old.hlc; /* stamps stay increasing across runs */
    for (size_t i = 0; i < c.n && rc == 0; i++) {
        akey k;
        key_event(&k, w.id, w.run, i + 1);
        rc = kv_put(t, k.b, k.n, c.vals[i].p, c.vals[i].len);
    }
    if (rc == 0) {
        w.seq = c.n;
        w.last_id = c.last_id;
        rc = wf_append(t, env, &w, EV_WORKFLOW_RESET, aj__slice_str(""), aj__slice_str(reason),
                       before.run, to_seq, 0);
    }
    uint64_t prefix_last = c.last_id;
    copy_free(&c);
    if (rc == 0) {
        rc = wf_write(t, &before, &w);
    }
    if (rc == 0) {
        rc = wf_wake(t, env, w.id, w.type, 0);
    }
    if (rc == 0 && to_seq < old.seq) {
        /* Jobs the old run scheduled after the reset point and still waits for would run beside
         * the new run's: cancel them (after the new record is written, so that their outcome
         * reaches no run). */
        copy_ctx rest;
        memset(&rest, 0, sizeof rest);
        rc = hist_read(t, sid, before.run, to_seq + 1, old.seq, prefix_last, open_cb, &rest);
        for (size_t i = 0; i < rest.n_open && rc == 0; i++) {
            rc = cancel_job(t, env, sid, before.run, rest.open[i]);
        }
        copy_free(&rest);
    }
    if (rc == 0 && out_run != NULL) {
        *out_run = w.run;
    }
    return rc;
}
