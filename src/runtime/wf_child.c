/*
 * wf_child.c — child workflows from inside a workflow function: aj_child_start, aj_child_wait,
 * aj_child; and the reads of parent/child links (aj_wf_parent, aj_wf_children) and of the
 * parent-close policy names.
 *
 * A child is started live in the parent's task transaction: the child's record, first event and
 * task, both link records (core/child.c) and the parent's `child_started` command commit
 * together, so a crash either starts the child and records it, or neither. On replay the
 * command is matched like any other and nothing is started again. The child's outcome arrives
 * through the parent's inbox (core/child.c, when the child's run ends) as `child_completed` or
 * `child_failed` referring to the child_started event, and aj_child_wait finds it like
 * aj_activity finds an activity's outcome: only if it precedes the call's position in the
 * history, so a replay answers as the live run did.
 */
#include <stdio.h>
#include <string.h>

#include "core/child.h"
#include "core/history.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_exec.h"
#include "util/err.h"
#include "util/mem.h"

static const char *const policy_names[] = {NULL, "terminate", "cancel", "abandon"};

const char *aj_parent_close_name(aj_parent_close p) {
    if ((int)p < AJ_PARENT_CLOSE_TERMINATE || (int)p > AJ_PARENT_CLOSE_ABANDON) {
        return NULL;
    }
    return policy_names[p];
}

int aj_parent_close_parse(const char *text, aj_parent_close *out) {
    for (int p = AJ_PARENT_CLOSE_TERMINATE; p <= AJ_PARENT_CLOSE_ABANDON; p++) {
        if (text != NULL && strcmp(text, policy_names[p]) == 0) {
            *out = (aj_parent_close)p;
            return 0;
        }
    }
    return aj__err(AJ_EINVAL,
                   "unknown parent-close policy '%s' (expected terminate, cancel or abandon)",
                   text ? text : "");
}

/* The child_started (or start-failed child_failed) event of `name` among the commands already
 * replayed or made in this run, or NULL; *count receives how many children the run started. */
static const wf_event *started_event(const aj__wf_view *v, const char *name, size_t *count) {
    const wf_event *found = NULL;
    size_t n = 0;
    for (size_t i = 0; i < v->cursor && i < v->n_events; i++) {
        const wf_event *ev = &v->events[i];
        if (ev->type == EV_CHILD_STARTED || (ev->type == EV_CHILD_FAILED && ev->ref == 0)) {
            n++;
            if (found == NULL && aj__slice_eq(ev->name, name)) {
                found = ev;
            }
        }
    }
    if (count != NULL) {
        *count = n;
    }
    return found;
}

int aj_child_start(aj_wf *wf, const char *name, const char *type, const void *input, size_t len,
                   const aj_child_opts *opts) {
    /* Bad arguments are the code's own mistake: refused the same way live and on replay, with
     * nothing recorded. */
    int rc = aj_name_check("child", name);
    if (rc == 0) {
        rc = wf_type_check(type);
    }
    if (rc != 0) {
        return rc;
    }
    aj_parent_close policy =
        opts && opts->parent_close ? opts->parent_close : AJ_PARENT_CLOSE_TERMINATE;
    if (aj_parent_close_name(policy) == NULL) {
        return aj__err(AJ_EINVAL, "child '%s': unknown parent-close policy %d", name, (int)policy);
    }
    if (opts != NULL && opts->execution_timeout_ms < 0) {
        return aj__err(AJ_EINVAL, "child '%s': a negative execution timeout", name);
    }
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "child '%s': input is %zu bytes, over the %zu-byte limit", name,
                       len, AJ_WF_DATA_MAX);
    }
    if (strcmp(type, "saga") == 0 &&
        (rc = aj__saga_builtin_validate(input ? input : "", len)) != 0) {
        return rc;
    }
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    char id[AJ_WF_ID_MAX + 2];
    if (opts != NULL && opts->id != NULL) {
        rc = wf_id_check(opts->id);
        snprintf(id, sizeof id, "%s", opts->id);
    } else {
        /* Derived: the same name in the same parent always gives the same child id. */
        int n = snprintf(id, sizeof id, "%.*s/%s", (int)v.w->id.n, (const char *)v.w->id.p, name);
        rc = n > AJ_WF_ID_MAX ? aj__err(AJ_EINVAL,
                                        "child id '%.*s/%s' would be longer than %d bytes: give "
                                        "the child an id",
                                        (int)v.w->id.n, (const char *)v.w->id.p, name, AJ_WF_ID_MAX)
                              : 0;
    }
    if (rc != 0) {
        return rc;
    }
    size_t count = 0;
    if (started_event(&v, name, &count) != NULL) {
        return aj__err(AJ_EEXISTS, "this run already started a child named '%s'", name);
    }
    if (count >= AJ_WF_CHILDREN_MAX) {
        return aj__err(AJ_ETOOBIG, "a run may start at most %d children", AJ_WF_CHILDREN_MAX);
    }
    const wf_event *ev = NULL;
    rc = aj__wf_next(wf, EV_CHILD_STARTED, EV_CHILD_FAILED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        if (ev->type == EV_CHILD_FAILED) {
            return aj__err(AJ_EFAILED, "child '%s' could not start: %.*s", name, (int)ev->data.n,
                           (const char *)ev->data.p);
        }
        return 0;
    }
    if (v.query_mode) {
        return aj__wf_suspend(wf);
    }
    aj_wf_start_opts o = {id, 1, opts ? opts->execution_timeout_ms : 0};
    aj_slice in = {input ? input : (const void *)"", len};
    aj_bytes idb = {id, strlen(id)};
    rc = wf_start(v.t, v.env, type, id, in, &o);
    if (rc == AJ_EEXISTS) {
        /* The id is running: a fact of this moment, so it is recorded for replays. */
        char msg[AJ_WF_ID_MAX + 128];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        aj_bytes e = {msg, strlen(msg)};
        rc = aj__wf_record(wf, EV_CHILD_FAILED, name, e, 0, 0);
        return rc != 0 ? rc : aj__err(AJ_EFAILED, "child '%s' could not start: %s", name, msg);
    }
    if (rc == 0) {
        /* The links name the event recorded next. */
        rc = wf_child_link(v.t, v.w->id, v.w->run, v.w->seq + 1, aj__slice_str(id),
                           aj__slice_str(name), (uint8_t)policy);
    }
    if (rc == 0) {
        rc = aj__wf_record(wf, EV_CHILD_STARTED, name, idb, (uint64_t)policy, 0);
    }
    return rc;
}

int aj_child_wait(aj_wf *wf, const char *name, aj_bytes *out) {
    int rc = aj_name_check("child", name);
    if (rc != 0) {
        return rc;
    }
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    const wf_event *st = started_event(&v, name, NULL);
    if (st == NULL) {
        return aj__err(AJ_EINVAL, "no child named '%s' was started in this run", name);
    }
    if (st->type == EV_CHILD_FAILED) {
        return aj__err(AJ_EFAILED, "child '%s' could not start: %.*s", name, (int)st->data.n,
                       (const char *)st->data.p);
    }
    /* Not before the call's position: once more past its wait point when the run waited
     * here before (wf_progress.c). */
    const wf_event *done;
    int marked = 0;
    while ((done = aj__wf_arrival(wf, st->seq, EV_CHILD_COMPLETED, EV_CHILD_FAILED)) == NULL &&
           (rc = aj__wf_wait_marker(wf, "child", name)) == 1) {
        marked = 1;
    }
    if (rc < 0) {
        return rc;
    }
    if (done != NULL && done->type == EV_CHILD_COMPLETED) {
        if (out != NULL) {
            out->data = done->data.p;
            out->len = done->data.n;
        }
        return 0;
    }
    if (done != NULL) {
        const char *state = aj_wf_state_name((aj_wf_state)done->aux);
        return aj__err(AJ_EFAILED, "child '%s' (%.*s) ended %s: %.*s", name, (int)st->data.n,
                       (const char *)st->data.p, state ? state : "unsuccessfully",
                       (int)done->data.n, (const char *)done->data.p);
    }
    if (st->aux != AJ_PARENT_CLOSE_CANCEL && aj_wf_cancel_requested(wf)) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled while waiting for child '%s'", name);
    }
    return aj__wf_suspend_at(wf, "child", name, marked);
}

int aj_child(aj_wf *wf, const char *name, const char *type, const void *input, size_t len,
             const aj_child_opts *opts, aj_bytes *out) {
    int rc = aj_child_start(wf, name, type, input, len, opts);
    if (rc != 0) {
        return rc;
    }
    return aj_child_wait(wf, name, out);
}

/* ----------------------------------------------------------------------------------------- */
/* Reads                                                                                      */

static void link_to_public(const wf_link *l, aj_wf_link *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%.*s", (int)l->other.n, (const char *)l->other.p);
    snprintf(out->name, sizeof out->name, "%.*s", (int)l->name.n, (const char *)l->name.p);
    out->run = l->run;
    out->seq = l->seq;
    out->parent_close = (aj_parent_close)l->policy;
}

typedef struct links_ctx {
    const char *id;
    aj_wf_link *v;
    size_t n, cap;
} links_ctx;

static int parent_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    links_ctx *c = ud;
    wf_link l;
    int rc = wf_child_parent(t, aj__slice_str(c->id), &l);
    if (rc == 0) {
        link_to_public(&l, c->v);
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_wf_parent(aj_engine *e, const char *id, aj_wf_link *out) {
    if (id == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "a workflow id and an output are needed");
    }
    int rc = wf_id_check(id);
    if (rc != 0) {
        return rc;
    }
    aj_wf_link l;
    links_ctx c = {id, &l, 0, 0};
    rc = eng_run(e, parent_txn, &c, KV_SYNC);
    if (rc == 0) {
        *out = l;
    }
    return rc;
}

static int child_add(void *ud, const wf_link *l) {
    links_ctx *c = ud;
    aj_wf_link *nv = aj__grow(c->v, &c->cap, c->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing children");
    }
    c->v = nv;
    link_to_public(l, &c->v[c->n++]);
    return 0;
}

static int children_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    links_ctx *c = ud;
    c->n = 0;
    int rc = wf_child_list(t, aj__slice_str(c->id), 0, child_add, c);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_wf_children(aj_engine *e, const char *id, aj_wf_link **out, size_t *n) {
    if (id == NULL || out == NULL || n == NULL) {
        return aj__err(AJ_EINVAL, "a workflow id and outputs are needed");
    }
    int rc = wf_id_check(id);
    if (rc != 0) {
        return rc;
    }
    links_ctx c = {id, NULL, 0, 0};
    rc = eng_run(e, children_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj__free(c.v);
        return rc;
    }
    *out = c.v;
    *n = c.n;
    return 0;
}
