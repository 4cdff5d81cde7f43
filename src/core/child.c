/*
 * child.c — parent/child workflow links and what crosses them when a run ends (see child.h).
 *
 * Invariants: a child's 'c' 0 link and its parent's 'c' 1 entry are written together with the
 * child's start and the parent's child_started event, so a child always knows its parent and a
 * parent its children. A child's outcome is delivered like an activity's: an inbox entry of the
 * parent's run that refers to the child_started event (a parent that has moved on to another run
 * or ended ignores it). A parent's end reaches only the children of the run that ended and whose
 * link still names that run (a child id reused by another parent belongs to that one). Each
 * step is a core transition in the caller's transaction, so the end of a run, the notice to its
 * parent and the policy applied to its children commit together or not at all.
 */
#include "core/child.h"

#include <stdio.h>
#include <string.h>

#include "util/err.h"

static int slice_eq(aj_slice a, aj_slice b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void key_link(akey *k, aj_slice child) {
    k->b[0] = 'c';
    k->b[1] = 0;
    memcpy(k->b + 2, child.p, child.n);
    k->n = 2 + child.n;
}

/* 'c' 1 parent 0 [run seq] */
static void key_children(akey *k, aj_slice parent, int with_run, uint32_t run, uint64_t seq) {
    k->b[0] = 'c';
    k->b[1] = 1;
    memcpy(k->b + 2, parent.p, parent.n);
    k->b[2 + parent.n] = 0;
    k->n = 3 + parent.n;
    if (with_run) {
        aj__put_u32be(k->b + k->n, run);
        k->n += 4;
        if (seq != 0) {
            aj__put_u64be(k->b + k->n, seq);
            k->n += 8;
        }
    }
}

int wf_child_link(kv_txn *t, aj_slice parent, uint32_t run, uint64_t seq, aj_slice child,
                  aj_slice name, uint8_t policy) {
    aj_buf b = AJ_BUF_INIT;
    aj__buf_add_u8(&b, WF_LINK_FORMAT);
    aj__buf_add_bytes(&b, parent.p, parent.n);
    aj__buf_add_varint(&b, run);
    aj__buf_add_varint(&b, seq);
    aj__buf_add_u8(&b, policy);
    aj__buf_add_bytes(&b, name.p, name.n);
    akey k;
    key_link(&k, child);
    int rc = b.oom ? AJ_ENOMEM : kv_put(t, k.b, k.n, b.p, b.len);
    aj__buf_reset(&b);
    aj__buf_add_u8(&b, policy);
    aj__buf_add_bytes(&b, child.p, child.n);
    aj__buf_add_bytes(&b, name.p, name.n);
    key_children(&k, parent, 1, run, seq);
    if (rc == 0) {
        rc = b.oom ? AJ_ENOMEM : kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj__buf_free(&b);
    return rc;
}

int wf_child_parent(kv_txn *t, aj_slice child, wf_link *out) {
    akey k;
    key_link(&k, child);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "workflow '%.*s' has no parent", (int)child.n,
                       (const char *)child.p);
    }
    if (rc != 0) {
        return rc;
    }
    aj_rd r;
    aj__rd_init(&r, v, n);
    wf_link l;
    uint8_t format = aj__rd_u8(&r);
    l.other.p = aj__rd_bytes(&r, &l.other.n);
    l.run = (uint32_t)aj__rd_varint(&r);
    l.seq = aj__rd_varint(&r);
    l.policy = aj__rd_u8(&r);
    l.name.p = aj__rd_bytes(&r, &l.name.n);
    if (r.bad || r.off != n || format != WF_LINK_FORMAT) {
        return aj__err(AJ_ECORRUPT, "parent link of workflow '%.*s' is corrupt", (int)child.n,
                       (const char *)child.p);
    }
    *out = l;
    return 0;
}

typedef struct list_walk {
    int (*fn)(void *ud, const wf_link *l);
    void *ud;
    size_t plen;
    int rc;
} list_walk;

static int list_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)version;
    list_walk *w = ud;
    wf_link l;
    aj_rd r;
    aj__rd_init(&r, val, vlen);
    l.policy = aj__rd_u8(&r);
    l.other.p = aj__rd_bytes(&r, &l.other.n);
    l.name.p = aj__rd_bytes(&r, &l.name.n);
    if (r.bad || r.off != vlen || klen != w->plen + 12) {
        w->rc = aj__err(AJ_ECORRUPT, "a workflow's list of children is corrupt");
        return 1;
    }
    l.run = aj__get_u32be(key + w->plen);
    l.seq = aj__get_u64be(key + w->plen + 4);
    int rc = w->fn(w->ud, &l);
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    return 0;
}

int wf_child_list(kv_txn *t, aj_slice parent, uint32_t run, int (*fn)(void *ud, const wf_link *l),
                  void *ud) {
    akey k;
    key_children(&k, parent, 0, 0, 0);
    list_walk w = {fn, ud, k.n, 0};
    key_children(&k, parent, run != 0, run, 0);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, list_cb, &w);
    return rc != 0 ? rc : w.rc;
}

/* ----------------------------------------------------------------------------------------- */
/* The end of a run                                                                           */

typedef struct close_ctx {
    kv_txn *t;
    const job_env *env;
    const wf_rec *parent;
    int cancel_only; /* 1: a cancel request, not the end of the run */
} close_ctx;

static int close_child(void *ud, const wf_link *l) {
    close_ctx *c = ud;
    if (l->policy == AJ_PARENT_CLOSE_ABANDON ||
        (c->cancel_only && l->policy != AJ_PARENT_CLOSE_CANCEL)) {
        return 0;
    }
    char id[AJ_WF_ID_MAX + 1];
    if (l->other.n > AJ_WF_ID_MAX) {
        return aj__err(AJ_ECORRUPT, "a workflow's list of children is corrupt");
    }
    memcpy(id, l->other.p, l->other.n);
    id[l->other.n] = '\0';
    /* Only a child still going whose link still names this run (its id may have been reused). */
    wf_rec w;
    int rc = wf_read(c->t, l->other, &w);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (aj_wf_state_is_final(w.state)) {
        return 0;
    }
    wf_link mine;
    rc = wf_child_parent(c->t, l->other, &mine);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (!slice_eq(mine.other, c->parent->id) || mine.run != c->parent->run || mine.seq != l->seq) {
        return 0;
    }
    if (l->policy == AJ_PARENT_CLOSE_CANCEL) {
        if ((w.flags & WF_FLAG_CANCEL_REQUESTED) && c->cancel_only) {
            return 0;
        }
        return wf_cancel(c->t, c->env, id);
    }
    char why[AJ_WF_ID_MAX + 64];
    snprintf(why, sizeof why, "parent '%.*s' ended (%s)", (int)c->parent->id.n,
             (const char *)c->parent->id.p, aj_wf_state_name(c->parent->state));
    return wf_terminate(c->t, c->env, id, why);
}

int wf_child_closed(kv_txn *t, const job_env *env, const wf_rec *w, int notify_parent) {
    int rc = 0;
    if (notify_parent) {
        wf_link l;
        rc = wf_child_parent(t, w->id, &l);
        if (rc == AJ_ENOTFOUND) {
            rc = 0;
        } else if (rc == 0) {
            /* The parent's record is peeked and the wake-up deferred (wf_wakeq.h): the notice
             * is blind writes, so neither the parent's tasks nor siblings ending together make
             * this transaction (often a child's task, with its inline steps) conflict. A
             * parent that ends or moves to another run meanwhile drops the entry. */
            wf_rec p;
            rc = wf_peek(t, l.other, &p);
            if (rc == AJ_ENOTFOUND) {
                rc = 0; /* the parent was collected */
            } else if (rc == 0 && p.run == l.run && !aj_wf_state_is_final(p.state)) {
                int ok = w->state == AJ_WF_COMPLETED;
                wf_inbox_entry e = {ok ? EV_CHILD_COMPLETED : EV_CHILD_FAILED,
                                    l.run,
                                    l.seq,
                                    (uint64_t)w->state,
                                    l.name,
                                    aj__slice_str("")};
                if (ok && w->result.p != NULL) {
                    e.data = w->result;
                } else if (!ok) {
                    e.data =
                        w->error.p != NULL ? w->error : aj__slice_str(aj_wf_state_name(w->state));
                }
                rc = wf_inbox_add(t, env, &p, &e, 1);
            }
        }
    }
    if (rc == 0) {
        close_ctx c = {t, env, w, 0};
        rc = wf_child_list(t, w->id, w->run, close_child, &c);
    }
    return rc;
}

int wf_child_cancel_children(kv_txn *t, const job_env *env, const wf_rec *w) {
    close_ctx c = {t, env, w, 1};
    return wf_child_list(t, w->id, w->run, close_child, &c);
}

static int delete_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                     uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    return kv_del(ud, key, klen) != 0;
}

int wf_child_collect(kv_txn *t, aj_slice id) {
    akey k;
    key_link(&k, id);
    int rc = kv_del(t, k.b, k.n);
    if (rc == 0) {
        key_children(&k, id, 0, 0, 0);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, delete_cb, t);
    }
    return rc;
}
