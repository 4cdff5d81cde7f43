/*
 * wf_update.c — aj_wf_update: the caller's side of workflow updates. One transaction queues the
 * request in the workflow's inbox (wf_update_request) under a fresh id; the caller then waits
 * for the answer the workflow task writes (wf_reply.h), waking on store changes like
 * aj_wf_wait, and deletes it once read. The workflow's side (validation, recording, handlers,
 * replay) is in wf_update_handlers.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/wf_reply.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/eng_wait.h"
#include "util/err.h"
#include "util/mem.h"

typedef struct send_ctx {
    const char *id;
    const char *name;
    aj_slice payload;
    uint64_t req;
    int64_t sent_ms;
    uint32_t run;
} send_ctx;

static int send_txn(kv_txn *t, const job_env *env, void *ud) {
    send_ctx *s = ud;
    int rc = env->alloc_id(env->alloc_ud, &s->req);
    if (rc != 0) {
        return rc;
    }
    s->sent_ms = env->now_ms;
    return wf_update_request(t, env, s->id, s->name, s->payload, s->req, &s->run);
}

typedef struct poll_ctx {
    const send_ctx *s;
    int found;
    int status;
    char *data;
    size_t len;
    int ended;        /* the run it was sent to is no longer running */
    int ended_before; /* an earlier check already saw it ended */
} poll_ctx;

static int poll_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    poll_ctx *p = ud;
    free(p->data);
    p->data = NULL;
    p->found = 0;
    p->ended = 0;
    aj_slice d;
    int rc = wf_reply_get(t, p->s->sent_ms, p->s->req, &p->status, &d);
    if (rc == 0) {
        p->found = 1;
        p->len = d.n;
        p->data = malloc(d.n + 1);
        if (p->data == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory reading an update's answer");
        }
        memcpy(p->data, d.p, d.n);
        p->data[d.n] = '\0';
        return wf_reply_del(t, p->s->sent_ms, p->s->req);
    }
    if (rc != AJ_ENOTFOUND) {
        return rc;
    }
    wf_rec w;
    rc = wf_read(t, aj__slice_str(p->s->id), &w);
    if (rc == AJ_ENOTFOUND) {
        p->ended = 1;
        return ENG_READ_ONLY;
    }
    if (rc != 0) {
        return rc;
    }
    /* A finished run's task may still be answering (it ends in the transaction that answers),
     * so "ended" only counts when the answer is still missing after the run ended. */
    p->ended = w.run != p->s->run || aj_wf_state_is_final(w.state);
    return ENG_READ_ONLY;
}

/* One check of the wait for the answer: ends it when the answer is there, fails it when the run
 * ended without answering. */
static int poll_check(aj_engine *e, void *ud, eng_wait_step *step) {
    poll_ctx *p = ud;
    int rc = eng_run(e, poll_txn, p, KV_SYNC);
    if (rc != 0) {
        return rc;
    }
    if (p->found) {
        *step = ENG_WAIT_DONE;
    } else if (p->ended) {
        /* Checked twice: the answer of the task that ended the run commits with it. */
        if (p->ended_before) {
            return aj__err(AJ_ESTATE,
                           "workflow '%s' finished before handling update '%s' (nothing was "
                           "recorded)",
                           p->s->id, p->s->name);
        }
        p->ended_before = 1;
        *step = ENG_WAIT_NOW;
    } else {
        *step = ENG_WAIT_MORE;
    }
    return 0;
}

int aj_wf_update(aj_engine *e, const char *id, const char *name, const void *payload, size_t len,
                 int64_t timeout_ms, char **out, size_t *out_len) {
    if (id == NULL || name == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "an update needs a workflow id, a name and a result pointer");
    }
    if (payload == NULL && len > 0) {
        return aj__err(AJ_EINVAL, "an update payload of %zu bytes is NULL", len);
    }
    int rc = wf_id_check(id);
    if (rc == 0) {
        rc = aj_name_check("update name", name);
    }
    if (rc != 0) {
        return rc;
    }
    send_ctx s = {id, name, {payload ? payload : (const void *)"", len}, 0, 0, 0};
    if ((rc = eng_run(e, send_txn, &s, KV_SYNC)) != 0) {
        return rc;
    }
    poll_ctx p = {&s, 0, 0, NULL, 0, 0, 0};
    rc = eng_wait_until(e, timeout_ms, poll_check, &p);
    if (rc != 0) {
        free(p.data);
    }
    if (rc == ENG_WAIT_TIMEOUT) {
        return aj__err(AJ_ETIMEDOUT,
                       "workflow '%s' did not answer update '%s' within %lld ms (it may still "
                       "handle it)",
                       id, name, (long long)timeout_ms);
    }
    if (rc != 0) {
        return rc;
    }
    switch (p.status) {
    case WF_REPLY_OK:
        *out = p.data;
        if (out_len != NULL) {
            *out_len = p.len;
        }
        return 0;
    case WF_REPLY_REJECTED:
        rc = aj__err(AJ_EINVAL, "workflow '%s' rejected update '%s': %s", id, name, p.data);
        break;
    case WF_REPLY_FAILED:
        rc = aj__err(AJ_EFAILED, "update '%s' of workflow '%s' failed: %s", name, id, p.data);
        break;
    default:
        rc = aj__err(AJ_ESTATE, "workflow '%s' did not handle update '%s': %s", id, name, p.data);
        break;
    }
    free(p.data);
    return rc;
}
