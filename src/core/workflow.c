/*
 * workflow.c — workflow records, inbox and wake-ups (see workflow.h).
 *
 * Invariants: a workflow record in state X has exactly one 'V' X id entry; a final record also
 * has one 'N' entry at its finish time. The events of run r are 'E' id 0 r 1..seq, chained.
 * Everything that reaches a workflow from outside its code goes through the inbox and a wake-up;
 * the task that next runs the workflow moves inbox entries into the history in arrival order.
 */
#include "core/workflow.h"

#include "core/activity_cache.h"

#include <stdio.h>
#include <string.h>

#include "core/child.h"
#include "core/blob.h"
#include "core/wf_wakeq.h"
#include "util/err.h"
#include "util/mem.h"

static const char *const state_names[AJ_WF_STATE_COUNT] = {
    NULL,         "running",   "compensating", "completed",           "failed", "cancelled",
    "terminated", "timed_out", "compensated",  "compensation_failed", "parked", "continued",
};

const char *aj_wf_state_name(aj_wf_state s) {
    if ((int)s <= 0 || (int)s >= AJ_WF_STATE_COUNT) {
        return NULL;
    }
    return state_names[s];
}

int aj_wf_state_parse(const char *text, aj_wf_state *out) {
    for (int s = 1; s < AJ_WF_STATE_COUNT; s++) {
        if (text != NULL && strcmp(text, state_names[s]) == 0) {
            *out = (aj_wf_state)s;
            return 0;
        }
    }
    return aj__err(AJ_EINVAL,
                   "unknown workflow state '%s' (expected running, compensating, completed, "
                   "failed, cancelled, terminated, timed_out, compensated, compensation_failed, "
                   "parked or continued)",
                   text ? text : "");
}

int aj_wf_state_is_final(aj_wf_state s) {
    return s != AJ_WF_RUNNING && s != AJ_WF_COMPENSATING && s != AJ_WF_PARKED;
}

/* ----------------------------------------------------------------------------------------- */
/* Records                                                                                    */

enum { HAS_RESULT = 1, HAS_ERROR = 2 };

int wf_rec_encode(const wf_rec *w, aj_buf *b) {
    aj__buf_add_u8(b, WF_RECORD_FORMAT);
    aj__buf_add_bytes(b, w->id.p, w->id.n);
    aj__buf_add_bytes(b, w->type.p, w->type.n);
    aj__buf_add_varint(b, w->run);
    aj__buf_add_u8(b, (uint8_t)w->state);
    aj__buf_add_varint(b, w->flags);
    aj__buf_add_varint(b, w->seq);
    aj__buf_add_u64be(b, w->last_id);
    aj__buf_add_u64be(b, w->hlc);
    aj__buf_add_svarint(b, w->created_ms);
    aj__buf_add_svarint(b, w->updated_ms);
    aj__buf_add_svarint(b, w->finished_ms);
    aj__buf_add_svarint(b, w->deadline_ms);
    aj__buf_add_bytes(b, w->input.p, w->input.n);
    aj__buf_add_u8(b, (uint8_t)((w->result.p ? HAS_RESULT : 0) | (w->error.p ? HAS_ERROR : 0)));
    if (w->result.p) {
        aj__buf_add_bytes(b, w->result.p, w->result.n);
    }
    if (w->error.p) {
        aj__buf_add_bytes(b, w->error.p, w->error.n);
    }
    return b->oom ? AJ_ENOMEM : 0;
}

int wf_rec_decode(const uint8_t *p, size_t n, wf_rec *out) {
    aj_rd r;
    aj__rd_init(&r, p, n);
    wf_rec w;
    memset(&w, 0, sizeof w);
    uint8_t format = aj__rd_u8(&r);
    if (!r.bad && format > WF_RECORD_FORMAT) {
        return aj__err(AJ_EFORMAT, "workflow record format %u is newer than this aj supports (%d)",
                       format, WF_RECORD_FORMAT);
    }
    w.id.p = aj__rd_bytes(&r, &w.id.n);
    w.type.p = aj__rd_bytes(&r, &w.type.n);
    w.run = (uint32_t)aj__rd_varint(&r);
    w.state = (aj_wf_state)aj__rd_u8(&r);
    w.flags = (uint32_t)aj__rd_varint(&r);
    w.seq = aj__rd_varint(&r);
    w.last_id = aj__rd_u64be(&r);
    w.hlc = aj__rd_u64be(&r);
    w.created_ms = aj__rd_svarint(&r);
    w.updated_ms = aj__rd_svarint(&r);
    w.finished_ms = aj__rd_svarint(&r);
    w.deadline_ms = aj__rd_svarint(&r);
    w.input.p = aj__rd_bytes(&r, &w.input.n);
    uint8_t present = aj__rd_u8(&r);
    if (present & HAS_RESULT) {
        w.result.p = aj__rd_bytes(&r, &w.result.n);
    }
    if (present & HAS_ERROR) {
        w.error.p = aj__rd_bytes(&r, &w.error.n);
    }
    if (r.bad || r.off != n || aj_wf_state_name(w.state) == NULL) {
        return aj__err(AJ_ECORRUPT, "workflow record is corrupt (%zu bytes)", n);
    }
    *out = w;
    return 0;
}

int wf_id_check(const char *id) {
    return aj_name_check("workflow id", id);
}

int wf_type_check(const char *type) {
    int rc = aj_name_check("workflow type", type);
    if (rc == 0 && strlen(type) > WF_TYPE_MAX) {
        rc = aj__err(AJ_EINVAL, "workflow type '%s' is longer than %d bytes", type, WF_TYPE_MAX);
    }
    return rc;
}

static void key_wf(akey *k, aj_slice id) {
    k->b[0] = 'W';
    memcpy(k->b + 1, id.p, id.n);
    k->n = 1 + id.n;
}

static void key_wf_state(akey *k, aj_wf_state s, aj_slice id) {
    k->b[0] = 'V';
    k->b[1] = (uint8_t)s;
    memcpy(k->b + 2, id.p, id.n);
    k->n = 2 + id.n;
}

static void key_wf_finished(akey *k, int64_t at, aj_slice id) {
    k->b[0] = 'N';
    aj__put_u64be(k->b + 1, (uint64_t)(at < 0 ? 0 : at));
    memcpy(k->b + 9, id.p, id.n);
    k->n = 9 + id.n;
}

/* 'G' id 0 kind [seq] */
static void key_inbox(akey *k, aj_slice id, uint8_t kind, int with_seq, uint64_t seq) {
    k->b[0] = 'G';
    memcpy(k->b + 1, id.p, id.n);
    k->b[1 + id.n] = 0;
    k->b[2 + id.n] = kind;
    k->n = 3 + id.n;
    if (with_seq) {
        aj__put_u64be(k->b + k->n, seq);
        k->n += 8;
    }
}

static int read_rec(kv_txn *t, aj_slice id, wf_rec *out, int peek) {
    akey k;
    key_wf(&k, id);
    const uint8_t *v;
    size_t n;
    int rc = peek ? kv_peek(t, k.b, k.n, &v, &n) : kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "workflow '%.*s' not found", (int)id.n, (const char *)id.p);
    }
    if (rc == 0) {
        rc = wf_rec_decode(v, n, out);
    }
    return rc;
}

int wf_read(kv_txn *t, aj_slice id, wf_rec *out) {
    return read_rec(t, id, out, 0);
}

int wf_peek(kv_txn *t, aj_slice id, wf_rec *out) {
    return read_rec(t, id, out, 1);
}

int wf_peek_state(kv_txn *t, aj_slice id, wf_rec *out) {
    wf_rec w;
    int rc = read_rec(t, id, &w, 1);
    if (rc == 0) {
        /* wf_write rewrites this entry only when the state changes, so it fences exactly that
         * (the same snapshot as the peek: it is there). */
        akey k;
        key_wf_state(&k, w.state, w.id);
        const uint8_t *v;
        size_t n;
        rc = kv_get(t, k.b, k.n, &v, &n);
        if (rc == AJ_ENOTFOUND) {
            rc = aj__err(AJ_ECORRUPT, "workflow '%.*s' is missing from its state index", (int)id.n,
                         (const char *)id.p);
        }
    }
    if (rc == 0) {
        *out = w;
    }
    return rc;
}

int wf_write(kv_txn *t, const wf_rec *before, const wf_rec *after) {
    akey k;
    int rc = 0;
    /* Index entries are rewritten only when they move: arrivals fence on the state entry
     * (wf_peek_state), so a task that leaves the state alone must not touch it. */
    int moved = before == NULL || before->state != after->state ||
                before->finished_ms != after->finished_ms;
    if (before != NULL && moved) {
        key_wf_state(&k, before->state, before->id);
        rc = kv_del(t, k.b, k.n);
        if (rc == 0 && aj_wf_state_is_final(before->state)) {
            key_wf_finished(&k, before->finished_ms, before->id);
            rc = kv_del(t, k.b, k.n);
        }
    }
    if (rc == 0 && moved) {
        key_wf_state(&k, after->state, after->id);
        rc = kv_put(t, k.b, k.n, "", 0);
    }
    if (rc == 0 && moved && aj_wf_state_is_final(after->state)) {
        key_wf_finished(&k, after->finished_ms, after->id);
        rc = kv_put(t, k.b, k.n, "", 0);
    }
    if (rc == 0) {
        aj_buf b = AJ_BUF_INIT;
        rc = wf_rec_encode(after, &b);
        key_wf(&k, after->id);
        if (rc == 0) {
            rc = kv_put(t, k.b, k.n, b.p, b.len);
        }
        aj__buf_free(&b);
    }
    return rc;
}

/* Counts what an appended event means; the counts commit with the transaction that wrote it. */
static void count_event(aj_counters *d, const wf_rec *w, uint8_t type) {
    if (d == NULL) {
        return;
    }
    switch (type) {
    case EV_TIMER_SCHEDULED:
        d->wf_timers_scheduled++;
        break;
    case EV_TIMER_FIRED:
        d->wf_timers_fired++;
        break;
    case EV_COMPENSATION_FAILED:
        d->wf_compensation_failures++;
        break;
    case EV_WORKFLOW_COMPENSATED:
        d->wf_sagas_compensated++;
        break;
    case EV_WORKFLOW_COMPLETED:
        d->wf_sagas_completed += (w->flags & WF_FLAG_SAGA) != 0;
        break;
    default:
        break;
    }
}

int wf_append(kv_txn *t, const job_env *env, wf_rec *w, uint8_t type, aj_slice name, aj_slice data,
              uint64_t aux, uint64_t ref, int final) {
    uint64_t limit = AJ_WF_EVENTS_MAX + (final ? WF_EVENTS_FINAL_RESERVE : 0);
    if (w->seq >= limit) {
        return aj__err(AJ_ETOOBIG,
                       "workflow '%.*s' reached the limit of %d events in one run (continue as "
                       "new well before it)",
                       (int)w->id.n, (const char *)w->id.p, AJ_WF_EVENTS_MAX);
    }
    if (data.n > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "%s data is %zu bytes, over the %zu-byte limit",
                       wf_event_name(type), data.n, AJ_WF_DATA_MAX);
    }
    wf_event ev;
    memset(&ev, 0, sizeof ev);
    ev.seq = w->seq + 1;
    ev.type = type;
    ev.hlc = hlc_next(w->hlc, env->now_ms);
    ev.prev_id = w->last_id;
    ev.name = name.p ? name : aj__slice_str("");
    ev.data = data.p ? data : aj__slice_str("");
    ev.aux = aux;
    ev.ref = ref;
    ev.id = hist_event_id(&ev);
    aj_buf b = AJ_BUF_INIT;
    int rc = hist_encode(&ev, &b);
    if (rc == 0) {
        akey k;
        key_event(&k, w->id, w->run, ev.seq);
        rc = kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj__buf_free(&b);
    if (rc == 0) {
        w->seq = ev.seq;
        w->last_id = ev.id;
        w->hlc = ev.hlc;
        w->updated_ms = env->now_ms;
        count_event(env->delta, w, type);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Wake-ups                                                                                   */

static int submit_task(kv_txn *t, const job_env *env, aj_slice id, aj_slice type, int64_t run_at_ms,
                       uint64_t *out_job) {
    char queue[AJ_NAME_MAX + 1];
    snprintf(queue, sizeof queue, "%s%.*s", WF_QUEUE_PREFIX, (int)type.n, (const char *)type.p);
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.queue = queue;
    s.type = WF_TASK_TYPE;
    s.payload = id.p;
    s.payload_len = id.n;
    s.priority = AJ_PRIORITY_HIGH; /* a workflow's next move is usually short */
    s.max_attempts = 1000000;      /* a task that fails (store trouble) is retried, not lost */
    s.backoff.kind = AJ_BACKOFF_EXP;
    s.backoff.initial_ms = 100;
    s.backoff.factor = 2;
    s.backoff.max_ms = 10 * AJ_SECOND;
    s.run_at_ms = run_at_ms > env->now_ms ? run_at_ms : 0;
    uint64_t job_id;
    int rc = env->alloc_id(env->alloc_ud, &job_id);
    int created;
    if (rc == 0) {
        rc = job_note_queue(t, queue);
    }
    if (rc == 0) {
        rc = job_submit(t, env, &s, job_id, out_job, &created);
    }
    return rc;
}

/* The task job a wake marker names. `peek`: without joining the read set. */
static int read_task(kv_txn *t, uint64_t job, job_rec *out, int peek) {
    if (!peek) {
        return job_read(t, job, out);
    }
    akey k;
    key_job(&k, job);
    const uint8_t *v;
    size_t n;
    int rc = kv_peek(t, k.b, k.n, &v, &n);
    return rc != 0 ? rc : job_rec_decode(v, n, out);
}

/* `settled`: everything the task must see committed before this transaction began (a folded
 * wake request, wf_wakeq.h), so a task that is ready in this snapshot starts after it and sees
 * it: the task's record need not join the read set, and its claim does not conflict. */
static int wake(kv_txn *t, const job_env *env, aj_slice id, aj_slice type, int64_t run_at_ms,
                int settled) {
    if (run_at_ms > env->now_ms) {
        uint64_t job;
        return submit_task(t, env, id, type, run_at_ms, &job);
    }
    akey k;
    key_inbox(&k, id, 0, 0, 0);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == 0 && n == 8) {
        job_rec task;
        int trc = read_task(t, aj__get_u64be(v), &task, settled);
        if (trc == 0 && task.state == AJ_STATE_READY) {
            return 0; /* a task that has not started yet will see everything */
        }
        if (trc != 0 && trc != AJ_ENOTFOUND) {
            return trc;
        }
    } else if (rc != 0 && rc != AJ_ENOTFOUND) {
        return rc;
    }
    uint64_t job;
    rc = submit_task(t, env, id, type, 0, &job);
    if (rc == 0) {
        uint8_t b[8];
        aj__put_u64be(b, job);
        rc = kv_put(t, k.b, k.n, b, sizeof b);
    }
    return rc;
}

int wf_wake(kv_txn *t, const job_env *env, aj_slice id, aj_slice type, int64_t run_at_ms) {
    return wake(t, env, id, type, run_at_ms, 0);
}

int wf_wake_settled(kv_txn *t, const job_env *env, aj_slice id, aj_slice type) {
    return wake(t, env, id, type, 0, 1);
}

/* ----------------------------------------------------------------------------------------- */
/* Start, signal, cancel, terminate, resume                                                   */

int wf_start(kv_txn *t, const job_env *env, const char *type, const char *id, aj_slice input,
             const aj_wf_start_opts *opts) {
    int rc = wf_id_check(id);
    if (rc == 0) {
        rc = wf_type_check(type);
    }
    if (rc != 0) {
        return rc;
    }
    if (input.n > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "workflow input is %zu bytes, over the %zu-byte limit", input.n,
                       AJ_WF_DATA_MAX);
    }
    aj_slice sid = aj__slice_str(id);
    wf_rec before, w;
    int exists = 0;
    rc = wf_read(t, sid, &before);
    if (rc == 0) {
        exists = 1;
        if (!aj_wf_state_is_final(before.state)) {
            return aj__err(AJ_EEXISTS, "workflow '%s' is already %s", id,
                           aj_wf_state_name(before.state));
        }
        if (opts == NULL || !opts->allow_rerun) {
            return aj__err(AJ_EEXISTS,
                           "workflow '%s' already ran (it is %s); ask for a new run to reuse "
                           "the id",
                           id, aj_wf_state_name(before.state));
        }
    } else if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    memset(&w, 0, sizeof w);
    w.id = sid;
    w.type = aj__slice_str(type);
    w.run = exists ? before.run + 1 : 1;
    w.state = AJ_WF_RUNNING;
    w.flags = WF_FLAG_WAIT_POINTS; /* recorded by this version from the start */
    w.created_ms = w.updated_ms = env->now_ms;
    w.input = input.p ? input : aj__slice_str("");
    if (opts != NULL && opts->execution_timeout_ms > 0) {
        w.deadline_ms = env->now_ms + opts->execution_timeout_ms;
    }
    rc = wf_append(t, env, &w, EV_WORKFLOW_STARTED, aj__slice_str(type), w.input, 0, 0, 0);
    if (rc == 0) {
        rc = wf_write(t, exists ? &before : NULL, &w);
    }
    if (rc == 0) {
        rc = wf_wake(t, env, w.id, w.type, 0);
    }
    if (rc == 0 && w.deadline_ms > 0) {
        rc = wf_wake(t, env, w.id, w.type, w.deadline_ms);
    }
    return rc;
}

int wf_inbox_add(kv_txn *t, const job_env *env, const wf_rec *w, const wf_inbox_entry *e,
                 int wake) {
    /* Arrival order: microseconds, then randomness to keep concurrent arrivals apart. */
    uint64_t seq = ((uint64_t)env->now_us << 10) | (env->rand & 1023);
    akey k;
    key_inbox(&k, w->id, 1, 1, seq);
    /* One transaction can add several (a task cancelling many activity jobs, a batch claim):
     * they share the clock and the randomness, so each takes the next free key, in order. */
    const uint8_t *old = NULL;
    size_t old_n = 0;
    int taken = 0;
    while ((taken = kv_get(t, k.b, k.n, &old, &old_n)) == 0) {
        key_inbox(&k, w->id, 1, 1, ++seq);
    }
    if (taken != AJ_ENOTFOUND) {
        return taken;
    }
    aj__err_clear();
    aj_buf b = AJ_BUF_INIT;
    aj__buf_add_u8(&b, e->type);
    aj__buf_add_varint(&b, e->run);
    aj__buf_add_varint(&b, e->ref);
    aj__buf_add_varint(&b, e->aux);
    aj__buf_add_bytes(&b, e->name.p, e->name.n);
    aj__buf_add_bytes(&b, e->data.p, e->data.n);
    int rc = b.oom ? AJ_ENOMEM : kv_put(t, k.b, k.n, b.p, b.len);
    aj__buf_free(&b);
    if (rc == 0 && wake) {
        rc = wf_wakeq_add(t, env, w->id, seq);
    }
    return rc;
}

/* The workflow `id`, which must not have finished. An arrival (`peek`) only adds to the inbox:
 * the record is peeked with its state fenced (wf_peek_state), so the workflow's tasks do not make
 * it conflict, its end does. A caller that writes the record reads it (wf_read). */
static int read_live(kv_txn *t, const char *id, wf_rec *w, int peek) {
    int rc = peek ? wf_peek_state(t, aj__slice_str(id), w) : wf_read(t, aj__slice_str(id), w);
    if (rc == 0 && aj_wf_state_is_final(w->state)) {
        return aj__err(AJ_ESTATE, "workflow '%s' has finished (%s)", id,
                       aj_wf_state_name(w->state));
    }
    return rc;
}

int wf_signal(kv_txn *t, const job_env *env, const char *id, const char *name, aj_slice payload) {
    int rc = aj_name_check("signal name", name);
    if (rc != 0) {
        return rc;
    }
    if (payload.n > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "signal payload is %zu bytes, over the %zu-byte limit",
                       payload.n, AJ_WF_DATA_MAX);
    }
    wf_rec w;
    if ((rc = read_live(t, id, &w, 1)) != 0) {
        return rc;
    }
    wf_inbox_entry e = {EV_SIGNAL_RECEIVED,
                        w.run,
                        0,
                        0,
                        aj__slice_str(name),
                        payload.p ? payload : aj__slice_str("")};
    return wf_inbox_add(t, env, &w, &e, 1);
}

int wf_update_request(kv_txn *t, const job_env *env, const char *id, const char *name,
                      aj_slice payload, uint64_t req, uint32_t *out_run) {
    int rc = aj_name_check("update name", name);
    if (rc != 0) {
        return rc;
    }
    if (payload.n > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "update payload is %zu bytes, over the %zu-byte limit",
                       payload.n, AJ_WF_DATA_MAX);
    }
    wf_rec w;
    if ((rc = read_live(t, id, &w, 1)) != 0) {
        return rc;
    }
    /* Never moved into the history: the task validates it first (wf_replay.c). */
    wf_inbox_entry e = {EV_UPDATE_REQUESTED,   w.run,
                        (uint64_t)env->now_ms, req,
                        aj__slice_str(name),   payload.p ? payload : aj__slice_str("")};
    *out_run = w.run;
    return wf_inbox_add(t, env, &w, &e, 1);
}

int wf_cancel(kv_txn *t, const job_env *env, const char *id) {
    wf_rec w;
    int rc = read_live(t, id, &w, 1);
    if (rc != 0) {
        return rc;
    }
    wf_inbox_entry e = {EV_CANCEL_REQUESTED, w.run, 0, 0, aj__slice_str(""), aj__slice_str("")};
    rc = wf_inbox_add(t, env, &w, &e, 1);
    if (rc == 0) {
        rc = wf_child_cancel_children(t, env, &w); /* children under the `cancel` policy */
    }
    return rc;
}

int wf_terminate(kv_txn *t, const job_env *env, const char *id, const char *reason) {
    wf_rec before, w;
    int rc = read_live(t, id, &before, 0);
    if (rc != 0) {
        return rc;
    }
    w = before;
    aj_slice why = aj__slice_str(reason ? reason : "terminated");
    rc = wf_append(t, env, &w, EV_WORKFLOW_TERMINATED, aj__slice_str(""), why, 0, 0, 1);
    if (rc == 0) {
        w.state = AJ_WF_TERMINATED;
        w.error = why;
        w.finished_ms = env->now_ms;
        rc = wf_write(t, &before, &w);
    }
    if (rc == 0) {
        rc = wf_child_closed(t, env, &w, 1);
    }
    return rc;
}

int wf_resume(kv_txn *t, const job_env *env, const char *id) {
    wf_rec before, w;
    int rc = wf_read(t, aj__slice_str(id), &before);
    if (rc != 0) {
        return rc;
    }
    if (before.state != AJ_WF_PARKED) {
        return aj__err(AJ_ESTATE, "workflow '%s' is %s, not parked", id,
                       aj_wf_state_name(before.state));
    }
    w = before;
    rc = wf_append(t, env, &w, EV_WORKFLOW_RESUMED, aj__slice_str(""), aj__slice_str(""), 0, 0, 0);
    if (rc == 0) {
        w.state = AJ_WF_RUNNING;
        w.error.p = NULL;
        w.error.n = 0;
        rc = wf_write(t, &before, &w);
    }
    if (rc == 0) {
        rc = wf_wake(t, env, w.id, w.type, 0);
    }
    if (rc == 0 && w.deadline_ms > 0) {
        /* The deadline's wake-up may have been spent while the run was parked. */
        rc = wf_wake(t, env, w.id, w.type, w.deadline_ms);
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Inbox                                                                                      */

typedef struct drain_walk {
    kv_txn *t;
    int (*fn)(void *ud, const wf_inbox_entry *e);
    void *ud;
    int rc;
} drain_walk;

static int drain_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)version;
    drain_walk *w = ud;
    aj_rd r;
    aj__rd_init(&r, val, vlen);
    wf_inbox_entry e;
    e.type = aj__rd_u8(&r);
    e.run = (uint32_t)aj__rd_varint(&r);
    e.ref = aj__rd_varint(&r);
    e.aux = aj__rd_varint(&r);
    e.name.p = aj__rd_bytes(&r, &e.name.n);
    e.data.p = aj__rd_bytes(&r, &e.data.n);
    int rc = 0;
    if (r.bad || r.off != vlen) {
        rc = aj__err(AJ_ECORRUPT, "workflow inbox entry is corrupt");
    }
    if (rc == 0) {
        rc = w->fn(w->ud, &e);
    }
    if (rc == 0) {
        rc = kv_del(w->t, key, klen);
    }
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    return 0;
}

int wf_inbox_drain(kv_txn *t, aj_slice id, int (*fn)(void *ud, const wf_inbox_entry *e), void *ud) {
    akey k;
    key_inbox(&k, id, 1, 0, 0);
    drain_walk w = {t, fn, ud, 0};
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, drain_cb, &w);
    return rc != 0 ? rc : w.rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Activities                                                                                 */

void wf_owner(aj_buf *b, aj_slice id, uint32_t run, uint64_t seq) {
    aj__buf_add(b, id.p, id.n);
    aj__buf_add_u8(b, 0);
    aj__buf_add_u32be(b, run);
    aj__buf_add_u64be(b, seq);
}

static int owner_parse(aj_slice owner, aj_slice *id, uint32_t *run, uint64_t *seq) {
    if (owner.n < 13 || owner.p[owner.n - 13] != 0) {
        return aj__err(AJ_ECORRUPT, "activity job carries a malformed workflow tag");
    }
    id->p = owner.p;
    id->n = owner.n - 13;
    *run = aj__get_u32be(owner.p + owner.n - 12);
    *seq = aj__get_u64be(owner.p + owner.n - 8);
    return 0;
}

int wf_on_job_transition(kv_txn *t, const job_env *env, const job_rec *before,
                         const job_rec *after) {
    aj_slice id = {NULL, 0};
    uint32_t run = 0;
    uint64_t seq = 0;
    int rc = owner_parse(after->owner, &id, &run, &seq);
    if (rc != 0) {
        return rc;
    }
    /* Peeked (wf_wakeq.h): the workflow's tasks do not make the job's transition conflict. A
     * run that ended meanwhile drops the entry (its run no longer matches, or nobody drains). */
    wf_rec w;
    rc = wf_peek(t, id, &w);
    if (rc == AJ_ENOTFOUND || (rc == 0 && (w.run != run || aj_wf_state_is_final(w.state)))) {
        aj__err_clear();
        return 0; /* the workflow (or that run) is gone: nobody waits for this job any more */
    }
    if (rc != 0) {
        return rc;
    }
    /* The event that scheduled the job names it, and tells an activity from a compensation. */
    akey k;
    key_event(&k, id, run, seq);
    const uint8_t *v;
    size_t n;
    wf_event sched;
    rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == 0) {
        rc = hist_decode(v, n, &sched);
    }
    if (rc != 0) {
        return rc == AJ_ENOTFOUND ? 0 : rc;
    }
    int compensation = sched.type == EV_COMPENSATION_STARTED;
    wf_inbox_entry e = {0, run, seq, after->attempts, sched.name, aj__slice_str("")};
    int wake = 0;
    aj_buf big = AJ_BUF_INIT; /* a result stored as a blob, read back (blob.h) */
    char why[128];
    if (after->state == AJ_STATE_RUNNING && before->state != AJ_STATE_RUNNING) {
        e.type = EV_ACTIVITY_STARTED;
    } else if (after->state == AJ_STATE_COMPLETED && (after->flags & JOB_FLAG_RESULT_BLOB) != 0 &&
               aj__get_u64be(after->result.p + JOB_BLOB_REF_LEN - 8) > AJ_WF_DATA_MAX) {
        /* Results up to AJ_PAYLOAD_MAX are fine for jobs, but a workflow's history keeps
         * data up to AJ_WF_DATA_MAX: the activity fails, for good, naming both sizes. */
        snprintf(why, sizeof why,
                 "activity result is %llu bytes, over the %zu-byte limit of "
                 "workflow data",
                 (unsigned long long)aj__get_u64be(after->result.p + JOB_BLOB_REF_LEN - 8),
                 AJ_WF_DATA_MAX);
        e.type = EV_ACTIVITY_FAILED;
        e.data = aj__slice_str(why);
        e.aux |= WF_AUX_FINAL;
        wake = 1;
    } else if (after->state == AJ_STATE_COMPLETED) {
        e.type = EV_ACTIVITY_COMPLETED;
        e.data = after->result.p ? after->result : aj__slice_str("");
        if (after->flags & JOB_FLAG_RESULT_BLOB) {
            if ((rc = blob_read(t, after->result, &big)) != 0) {
                aj__buf_free(&big);
                return rc;
            }
            e.data.p = big.p ? big.p : (const uint8_t *)"";
            e.data.n = big.len;
        }
        wake = 1;
        if (sched.type == EV_ACTIVITY_SCHEDULED &&
            (rc = act_cache_on_complete(t, env, id, sched.data, e.data)) != 0) {
            return rc; /* a cached activity fills its entry with its completion */
        }
    } else if (before->state == AJ_STATE_RUNNING &&
               (after->state == AJ_STATE_SCHEDULED || after->state == AJ_STATE_READY ||
                after->state == AJ_STATE_DEAD)) {
        e.type = EV_ACTIVITY_FAILED;
        e.data = after->error.p ? after->error : aj__slice_str("failed");
        if (after->state == AJ_STATE_DEAD) {
            e.aux |= WF_AUX_FINAL;
            wake = 1;
        }
    } else if (after->state == AJ_STATE_DEAD || after->state == AJ_STATE_CANCELLED) {
        e.type = EV_ACTIVITY_FAILED;
        e.data = aj__slice_str(after->state == AJ_STATE_CANCELLED ? "activity job was cancelled"
                                                                  : "activity job died");
        e.aux |= WF_AUX_FINAL;
        wake = 1;
    } else {
        return 0;
    }
    if (compensation) {
        if (e.type == EV_ACTIVITY_STARTED ||
            (e.type == EV_ACTIVITY_FAILED && !(e.aux & WF_AUX_FINAL))) {
            /* compensation_started was recorded when it was scheduled; a compensation's
             * retries show on its job, and only its final outcome enters the history */
            return 0;
        }
        e.type =
            e.type == EV_ACTIVITY_COMPLETED ? EV_COMPENSATION_COMPLETED : EV_COMPENSATION_FAILED;
    }
    rc = wf_inbox_add(t, env, &w, &e, wake);
    aj__buf_free(&big);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Collection, counts, listing                                                                */

static int delete_prefix_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen, uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    int rc = kv_del(ud, key, klen);
    return rc != 0;
}

int wf_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n) {
    akey start, end;
    start.b[0] = 'N';
    start.n = 1;
    key_wf_finished(&end, env->now_ms - env->retention_ms, aj__slice_str(""));
    key_batch l = {.n = 0};
    int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0,
                     limit < KEY_BATCH_MAX ? limit : KEY_BATCH_MAX, key_batch_cb, &l);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        aj_slice id = {l.keys[i].b + 9, l.keys[i].n - 9};
        wf_rec w;
        rc = wf_read(t, id, &w);
        if (rc != 0) {
            break;
        }
        akey k;
        key_wf_state(&k, w.state, w.id);
        rc = kv_del(t, k.b, k.n);
        if (rc == 0) {
            rc = kv_del(t, l.keys[i].b, l.keys[i].n);
        }
        /* Every run's events, and anything left in the inbox. */
        if (rc == 0) {
            k.b[0] = 'E';
            memcpy(k.b + 1, id.p, id.n);
            k.b[1 + id.n] = 0;
            k.n = 2 + id.n;
            rc = kv_scan_prefix(t, k.b, k.n, 0, 0, delete_prefix_cb, t);
        }
        if (rc == 0) {
            k.b[0] = 'G';
            rc = kv_scan_prefix(t, k.b, k.n, 0, 0, delete_prefix_cb, t);
        }
        if (rc == 0) {
            rc = wf_child_collect(t, id);
        }
        if (rc == 0) {
            key_wf(&k, id);
            rc = kv_del(t, k.b, k.n);
        }
    }
    if (rc == 0) {
        *out_n = l.n;
    }
    return rc;
}

int wf_count_states(kv_txn *t, uint64_t counts[AJ_WF_STATE_COUNT]) {
    for (int s = 0; s < AJ_WF_STATE_COUNT; s++) {
        counts[s] = 0;
    }
    for (int s = 1; s < AJ_WF_STATE_COUNT; s++) {
        uint8_t p[2] = {'V', (uint8_t)s};
        int rc = kv_count_prefix(t, p, 2, &counts[s]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

typedef struct wf_list_walk {
    const aj_wf_filter *f;
    int (*fn)(void *ud, const wf_rec *w);
    void *ud;
    size_t emitted;
    int rc;
} wf_list_walk;

static int wf_list_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    wf_list_walk *w = ud;
    wf_rec r;
    int rc = wf_rec_decode(val, vlen, &r);
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    if ((w->f->state != 0 && r.state != w->f->state) ||
        (w->f->type != NULL && !aj__slice_eq(r.type, w->f->type))) {
        return 0;
    }
    if ((rc = w->fn(w->ud, &r)) != 0) {
        w->rc = rc;
        return 1;
    }
    w->emitted++;
    return w->f->limit != 0 && w->emitted >= w->f->limit;
}

int wf_list(kv_txn *t, const aj_wf_filter *f, int (*fn)(void *ud, const wf_rec *w), void *ud) {
    wf_list_walk w = {f, fn, ud, 0, 0};
    uint8_t p = 'W';
    int rc = kv_scan_prefix(t, &p, 1, 0, 0, wf_list_cb, &w);
    return rc != 0 ? rc : w.rc;
}

aj_wf_info *wf_rec_to_public(const wf_rec *w) {
    size_t total =
        sizeof(aj_wf_info) + w->id.n + w->type.n + w->input.n + w->result.n + w->error.n + 5;
    aj_wf_info *i = aj__calloc(1, total);
    if (i == NULL) {
        return NULL;
    }
    char *cursor = (char *)(i + 1);
    i->id = aj__slice_place(&cursor, w->id);
    i->type = aj__slice_place(&cursor, w->type);
    i->input = aj__slice_place(&cursor, w->input.p ? w->input : aj__slice_str(""));
    i->input_len = w->input.n;
    i->result = aj__slice_place(&cursor, w->result);
    i->result_len = w->result.n;
    i->error = aj__slice_place(&cursor, w->error);
    i->run = w->run;
    i->state = w->state;
    i->events = w->seq;
    i->created_ms = w->created_ms;
    i->updated_ms = w->updated_ms;
    i->finished_ms = w->finished_ms;
    i->deadline_ms = w->deadline_ms;
    i->cancel_requested = (w->flags & WF_FLAG_CANCEL_REQUESTED) != 0;
    return i;
}

void aj_wf_info_free(aj_wf_info *info) {
    aj__free(info);
}

void aj_wf_list_free(aj_wf_info **list, size_t n) {
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        aj__free(list[i]);
    }
    aj__free(list);
}
