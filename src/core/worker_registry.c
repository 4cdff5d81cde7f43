/*
 * worker_registry.c — worker registry records (see worker_registry.h).
 *
 * Entry encoding: a format byte, varint pid, varint start ms, varint last-seen ms, node, host,
 * varint tag count, tags (strings length-prefixed). Entries are small and few (one per running
 * pool), so listing and collection scan them all.
 */
#include "core/worker_registry.h"

#include <string.h>

#include "core/keys.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define WREG_FORMAT 1

static int wkey(akey *k, const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > AJ_NAME_MAX) {
        return aj__err(AJ_EINVAL, "worker id must be 1 to %d bytes", AJ_NAME_MAX);
    }
    k->b[0] = KEY_WORKER;
    memcpy(k->b + 1, id, n);
    k->n = 1 + n;
    return 0;
}

int wreg_put(kv_txn *t, const job_env *env, const wreg_entry *w) {
    akey k;
    int rc = wkey(&k, w->id);
    if (rc != 0) {
        return rc;
    }
    aj_buf b = AJ_BUF_INIT;
    aj__buf_add_u8(&b, WREG_FORMAT);
    aj__buf_add_varint(&b, (uint64_t)w->pid);
    aj__buf_add_varint(&b, (uint64_t)w->started_ms);
    aj__buf_add_varint(&b, (uint64_t)env->now_ms);
    aj__buf_add_bytes(&b, w->node, strlen(w->node));
    aj__buf_add_bytes(&b, w->host, strlen(w->host));
    aj__buf_add_varint(&b, w->n_tags);
    for (size_t i = 0; i < w->n_tags; i++) {
        aj__buf_add_bytes(&b, w->tags[i], strlen(w->tags[i]));
    }
    rc = b.oom ? AJ_ENOMEM : kv_put(t, k.b, k.n, b.p, b.len);
    aj__buf_free(&b);
    return rc;
}

int wreg_del(kv_txn *t, const char *id) {
    akey k;
    int rc = wkey(&k, id);
    return rc != 0 ? rc : kv_del(t, k.b, k.n);
}

/* A decoded entry; strings borrow from the value. */
typedef struct wreg_rec {
    int64_t pid, started_ms, seen_ms;
    aj_slice node, host;
    aj_slice tags[AJ_WORKER_TAGS_MAX];
    size_t n_tags;
} wreg_rec;

static int wreg_decode(const uint8_t *v, size_t n, wreg_rec *out) {
    aj_rd r;
    aj__rd_init(&r, v, n);
    uint8_t format = aj__rd_u8(&r);
    out->pid = (int64_t)aj__rd_varint(&r);
    out->started_ms = (int64_t)aj__rd_varint(&r);
    out->seen_ms = (int64_t)aj__rd_varint(&r);
    out->node = job_rd_slice(&r);
    out->host = job_rd_slice(&r);
    uint64_t nt = aj__rd_varint(&r);
    if (nt > AJ_WORKER_TAGS_MAX) {
        r.bad = 1;
    }
    out->n_tags = r.bad ? 0 : (size_t)nt;
    for (size_t i = 0; i < out->n_tags; i++) {
        out->tags[i] = job_rd_slice(&r);
    }
    if (r.bad || r.off != n || format != WREG_FORMAT) {
        return aj__err(AJ_ECORRUPT, "worker registry entry is corrupt (%zu bytes)", n);
    }
    return 0;
}

typedef struct collect_walk {
    kv_txn *t;
    const job_env *env;
    const char *self;
    int rc;
} collect_walk;

static int collect_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)version;
    collect_walk *w = ud;
    wreg_rec r;
    size_t self_n = strlen(w->self);
    if (klen - 1 == self_n && memcmp(key + 1, w->self, self_n) == 0) {
        return 0;
    }
    /* A damaged entry is collected like a stale one: it names no worker that can be shown. */
    if (wreg_decode(val, vlen, &r) != 0 || w->env->now_ms - r.seen_ms >= AJ_WORKER_COLLECT_MS) {
        w->rc = kv_del(w->t, key, klen);
    }
    return w->rc != 0;
}

int wreg_touch(kv_txn *t, const job_env *env, const wreg_entry *w) {
    int rc = wreg_put(t, env, w);
    if (rc != 0) {
        return rc;
    }
    akey k;
    key_prefix(&k, KEY_WORKER);
    collect_walk c = {t, env, w->id, 0};
    rc = kv_scan_prefix(t, k.b, k.n, 0, 0, collect_cb, &c);
    return rc != 0 ? rc : c.rc;
}

typedef struct list_walk {
    const job_env *env;
    aj_worker_info *v;
    size_t n, cap;
    int rc;
} list_walk;

static char *slice_dup(aj_slice s) {
    char *p = aj__malloc(s.n + 1);
    if (p != NULL) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

static int list_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)version;
    list_walk *l = ud;
    wreg_rec r;
    if (wreg_decode(val, vlen, &r) != 0) {
        return 0; /* collected by the next refresh */
    }
    aj_worker_info *nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        l->rc = aj__err(AJ_ENOMEM, "out of memory listing workers");
        return 1;
    }
    l->v = nv;
    aj_worker_info *w = &l->v[l->n++];
    memset(w, 0, sizeof *w);
    aj_slice id = {key + 1, klen - 1};
    w->id = slice_dup(id);
    w->node = slice_dup(r.node);
    w->host = slice_dup(r.host);
    w->tags = aj__calloc(r.n_tags + 1, sizeof *w->tags);
    int ok = w->id != NULL && w->node != NULL && w->host != NULL && w->tags != NULL;
    for (size_t i = 0; ok && i < r.n_tags; i++) {
        w->tags[i] = slice_dup(r.tags[i]);
        ok = w->tags[i] != NULL;
        w->n_tags = i + 1;
    }
    w->pid = r.pid;
    w->started_ms = r.started_ms;
    w->seen_ms = r.seen_ms;
    w->alive = l->env->now_ms - r.seen_ms < AJ_WORKER_EXPIRY_MS;
    if (!ok) {
        l->rc = aj__err(AJ_ENOMEM, "out of memory listing workers");
        return 1;
    }
    return 0;
}

int wreg_list(kv_txn *t, const job_env *env, aj_worker_info **out, size_t *n) {
    akey k;
    key_prefix(&k, KEY_WORKER);
    list_walk l = {env, NULL, 0, 0, 0};
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, list_cb, &l);
    if (rc == 0) {
        rc = l.rc;
    }
    if (rc != 0) {
        aj_worker_list_free(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

void aj_worker_list_free(aj_worker_info *list, size_t n) {
    for (size_t i = 0; i < n; i++) {
        aj__free(list[i].id);
        aj__free(list[i].node);
        aj__free(list[i].host);
        for (size_t j = 0; list[i].tags != NULL && j < list[i].n_tags; j++) {
            aj__free(list[i].tags[j]);
        }
        aj__free(list[i].tags);
    }
    aj__free(list);
}
