/*
 * kv_mem.c — the in-memory backend: the reference store for tests and simulation, with fault
 * injection (kv.h).
 *
 * Design: a multi-version skip list under one mutex. Every key is a node holding a chain of
 * versions, newest first; a version carries the commit counter value (`seq`) of the commit that
 * wrote it, which is also the key's version number, and a delete writes a tombstone. A snapshot is
 * just the counter value when it opened: it reads, for each key, the newest version with
 * seq <= its own, so every read of a transaction sees the same committed state without copying
 * anything. Commits validate the read set against the newest versions and apply all writes with
 * one new seq, atomically under the mutex.
 *
 * Invariants:
 *  - A version is freed only when no open snapshot can read it and a crash cannot restore it: each
 *    chain keeps every version newer than `keep = min(oldest snapshot, durable)` plus the first
 *    one at or below it (dropped too when it is a tombstone, which reads the same as nothing).
 *  - `durable` is the seq of the last KV_SYNC commit: a crash drops every version newer than it,
 *    i.e. exactly the KV_ASYNC commits made since. The counter itself never goes back, so a
 *    version number is never reused.
 *  - A node whose chain holds old versions or a tombstone is on the garbage list (`pending`);
 *    nodes leave the skip list only through a sweep of that list, amortised over commits.
 *  - Scan callbacks run under the mutex; kv.c's callbacks only copy entries, never re-enter.
 *  - KV_ASYNC commits are applied at once and `done` runs on the caller's thread before
 *    kv_commit returns: no threads here, so a simulation stays deterministic.
 *
 * Layer: src/store, a backend below kv.c.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "store/kv.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/hist.h"
#include "util/mem.h"

#define MEM_MAX_KEY 4096                      /* bytes in one key */
#define MEM_MAX_VALUE ((size_t)64 << 20)      /* bytes in one value */
#define MEM_MAX_TXN_OPS 1000000               /* writes in one transaction */
#define MEM_MAX_TXN_BYTES ((size_t)256 << 20) /* bytes written by one transaction */
#define MEM_MAX_HEIGHT 24                     /* skip list levels: ample for 4^24 keys */
#define MEM_GC_MIN 64                         /* garbage nodes that trigger the first sweep */
#define MEM_STACK_WRITES 16                   /* commits this small prepare on the stack */

typedef struct mem_ver {
    struct mem_ver *older;
    uint64_t seq;
    int dead; /* a tombstone */
    size_t vlen;
    uint8_t data[];
} mem_ver;

typedef struct mem_node {
    mem_ver *vers;         /* newest first; may be empty until a sweep removes the node */
    struct mem_node *prev; /* level 0, backwards; NULL for the first node */
    uint8_t *key;          /* after next[] */
    size_t klen;
    int height;
    int pending; /* on the garbage list */
    struct mem_node *next[];
} mem_node;

typedef struct mem_snap {
    uint64_t seq;
    struct mem_snap *prev, *next;
} mem_snap;

typedef struct mem_store {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change */
    mem_node *head;    /* sentinel of MEM_MAX_HEIGHT levels */
    int height;
    uint64_t rng;
    uint64_t seq;     /* the commit counter: the last version given */
    uint64_t durable; /* seq of the last KV_SYNC commit */
    atomic_uint_fast64_t change;
    mem_snap *oldest, *newest; /* open snapshots in opening (and so seq) order */
    mem_node **garbage;
    size_t n_garbage, cap_garbage, gc_next;
    uint64_t ops, fail_at, inject_conflicts;
    uint64_t lose_outcome; /* the Nth commit that writes is applied but reported ambiguous */
    int full;              /* kv_mem_set_full: commits that write fail with AJ_EFULL */
    uint64_t batches, syncs, hist[AJ_HIST_BUCKETS];
} mem_store;

enum { GC_CLEAN = 0, GC_PENDING = 1, GC_REMOVE = 2 };

/* One write of a commit, prepared before anything changes. */
typedef struct mem_prep {
    mem_node *node; /* existing, or fresh (not linked yet) */
    mem_ver *ver;   /* NULL: nothing to write (deleting an absent key) */
    int fresh;
} mem_prep;

/* ---------------------------------------------------------------------------------------------
 * Skip list
 * ------------------------------------------------------------------------------------------- */

static mem_node *node_alloc(int height, const uint8_t *key, size_t klen) {
    mem_node *n = aj__malloc(sizeof *n + (size_t)height * sizeof(mem_node *) + klen);
    if (n == NULL) {
        return NULL;
    }
    n->vers = NULL;
    n->prev = NULL;
    n->key = (uint8_t *)&n->next[height];
    n->klen = klen;
    n->height = height;
    n->pending = 0;
    for (int i = 0; i < height; i++) {
        n->next[i] = NULL;
    }
    if (klen > 0) {
        memcpy(n->key, key, klen);
    }
    return n;
}

/* The last node with key < k at each level (update may be NULL); returns the level-0 one. */
static mem_node *find_lt(mem_store *ms, const uint8_t *k, size_t kl, mem_node **update) {
    mem_node *x = ms->head;
    for (int lvl = ms->height - 1; lvl >= 0; lvl--) {
        while (x->next[lvl] != NULL &&
               kv__key_cmp(x->next[lvl]->key, x->next[lvl]->klen, k, kl) < 0) {
            x = x->next[lvl];
        }
        if (update != NULL) {
            update[lvl] = x;
        }
    }
    return x;
}

static mem_node *find_eq(mem_store *ms, const uint8_t *k, size_t kl) {
    mem_node *x = find_lt(ms, k, kl, NULL)->next[0];
    return x != NULL && kv__key_cmp(x->key, x->klen, k, kl) == 0 ? x : NULL;
}

static mem_node *find_last(mem_store *ms) {
    mem_node *x = ms->head;
    for (int lvl = ms->height - 1; lvl >= 0; lvl--) {
        while (x->next[lvl] != NULL) {
            x = x->next[lvl];
        }
    }
    return x == ms->head ? NULL : x;
}

static int random_height(mem_store *ms) {
    /* xorshift64: deterministic, so a simulation replays the same shapes. */
    int h = 1;
    for (;;) {
        uint64_t x = ms->rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms->rng = x;
        if (h >= MEM_MAX_HEIGHT || (x & 3) != 0) {
            return h;
        }
        h++;
    }
}

/* Links node n (whose key is absent) into the list. */
static void list_insert(mem_store *ms, mem_node *n) {
    mem_node *update[MEM_MAX_HEIGHT];
    find_lt(ms, n->key, n->klen, update);
    if (n->height > ms->height) {
        for (int i = ms->height; i < n->height; i++) {
            update[i] = ms->head;
        }
        ms->height = n->height;
    }
    for (int i = 0; i < n->height; i++) {
        n->next[i] = update[i]->next[i];
        update[i]->next[i] = n;
    }
    n->prev = update[0] == ms->head ? NULL : update[0];
    if (n->next[0] != NULL) {
        n->next[0]->prev = n;
    }
}

static void list_remove(mem_store *ms, mem_node *n) {
    mem_node *update[MEM_MAX_HEIGHT];
    find_lt(ms, n->key, n->klen, update);
    assert(update[0]->next[0] == n);
    for (int i = 0; i < n->height; i++) {
        if (update[i]->next[i] == n) {
            update[i]->next[i] = n->next[i];
        }
    }
    if (n->next[0] != NULL) {
        n->next[0]->prev = n->prev;
    }
    while (ms->height > 1 && ms->head->next[ms->height - 1] == NULL) {
        ms->height--;
    }
}

static void free_chain(mem_ver *v) {
    while (v != NULL) {
        mem_ver *older = v->older;
        aj__free(v);
        v = older;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Versions and garbage
 * ------------------------------------------------------------------------------------------- */

/* The version a snapshot at `seq` reads, or NULL when the key is absent there. */
static const mem_ver *visible(const mem_node *n, uint64_t seq) {
    const mem_ver *v = n->vers;
    while (v != NULL && v->seq > seq) {
        v = v->older;
    }
    return v != NULL && !v->dead ? v : NULL;
}

static uint64_t current_version(const mem_node *n) {
    return n->vers != NULL && !n->vers->dead ? n->vers->seq : 0;
}

static uint64_t keep_seq(const mem_store *ms) {
    uint64_t k = ms->durable;
    if (ms->oldest != NULL && ms->oldest->seq < k) {
        k = ms->oldest->seq;
    }
    return k;
}

/* Frees the versions of n nobody can read any more; says what is left. */
static int prune(mem_store *ms, mem_node *n) {
    uint64_t k = keep_seq(ms);
    mem_ver **pp = &n->vers;
    while (*pp != NULL && (*pp)->seq > k) {
        pp = &(*pp)->older;
    }
    if (*pp != NULL) {
        free_chain((*pp)->older);
        (*pp)->older = NULL;
        if ((*pp)->dead) {
            aj__free(*pp);
            *pp = NULL;
        }
    }
    if (n->vers == NULL) {
        return GC_REMOVE;
    }
    return n->vers->older != NULL || n->vers->dead ? GC_PENDING : GC_CLEAN;
}

static void gc_note(mem_store *ms, mem_node *n, int state) {
    if (state == GC_CLEAN || n->pending) {
        return;
    }
    if (ms->n_garbage == ms->cap_garbage) {
        size_t cap = ms->cap_garbage ? ms->cap_garbage * 2 : 256;
        mem_node **g = aj__realloc(ms->garbage, cap * sizeof *g);
        if (g == NULL) {
            return; /* not collected now; the key's next write prunes it again */
        }
        ms->garbage = g;
        ms->cap_garbage = cap;
    }
    ms->garbage[ms->n_garbage++] = n;
    n->pending = 1;
}

static void gc_sweep(mem_store *ms) {
    size_t kept = 0;
    for (size_t i = 0; i < ms->n_garbage; i++) {
        mem_node *n = ms->garbage[i];
        int st = prune(ms, n);
        if (st == GC_REMOVE) {
            list_remove(ms, n);
            aj__free(n);
        } else if (st == GC_PENDING) {
            ms->garbage[kept++] = n;
        } else {
            n->pending = 0;
        }
    }
    ms->n_garbage = kept;
    /* Sweeping again only after the list doubles keeps the cost amortised O(1) per node even
     * while an old snapshot pins everything. */
    ms->gc_next = kept * 2 > MEM_GC_MIN ? kept * 2 : MEM_GC_MIN;
}

static void gc_maybe(mem_store *ms) {
    if (ms->n_garbage >= ms->gc_next) {
        gc_sweep(ms);
    }
}

/* Counts one storage operation; fails it when fault injection says so. */
static int mem_op(mem_store *ms) {
    ms->ops++;
    if (ms->fail_at != 0 && ms->ops == ms->fail_at) {
        ms->fail_at = 0;
        return aj__err(AJ_EIO, "injected I/O error at storage operation %llu",
                       (unsigned long long)ms->ops);
    }
    return 0;
}

static void changed(mem_store *ms) {
    atomic_fetch_add(&ms->change, 1);
    pthread_cond_broadcast(&ms->cv);
}

/* ---------------------------------------------------------------------------------------------
 * Backend operations
 * ------------------------------------------------------------------------------------------- */

static void mem_close(void *st) {
    mem_store *ms = st;
    mem_node *n = ms->head;
    while (n != NULL) {
        mem_node *next = n->next[0];
        free_chain(n->vers);
        aj__free(n);
        n = next;
    }
    for (mem_snap *s = ms->oldest; s != NULL;) {
        mem_snap *next = s->next;
        aj__free(s);
        s = next;
    }
    aj__free(ms->garbage);
    pthread_cond_destroy(&ms->cv);
    pthread_mutex_destroy(&ms->mu);
    aj__free(ms);
}

static int mem_snap_open(void *st, void **out) {
    mem_store *ms = st;
    mem_snap *s = aj__malloc(sizeof *s);
    if (s == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory opening a snapshot");
    }
    pthread_mutex_lock(&ms->mu);
    s->seq = ms->seq;
    s->next = NULL;
    s->prev = ms->newest;
    if (ms->newest != NULL) {
        ms->newest->next = s;
    } else {
        ms->oldest = s;
    }
    ms->newest = s;
    pthread_mutex_unlock(&ms->mu);
    *out = s;
    return 0;
}

static void mem_snap_close(void *st, void *snap) {
    mem_store *ms = st;
    mem_snap *s = snap;
    pthread_mutex_lock(&ms->mu);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        ms->oldest = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    } else {
        ms->newest = s->prev;
    }
    gc_maybe(ms);
    pthread_mutex_unlock(&ms->mu);
    aj__free(s);
}

static int mem_snap_get(void *st, void *snap, const uint8_t *key, size_t klen, const uint8_t **val,
                        size_t *vlen, uint64_t *version) {
    mem_store *ms = st;
    const mem_snap *s = snap;
    pthread_mutex_lock(&ms->mu);
    int rc = mem_op(ms);
    if (rc == 0) {
        mem_node *n = find_eq(ms, key, klen);
        const mem_ver *v = n != NULL ? visible(n, s->seq) : NULL;
        if (v == NULL) {
            rc = AJ_ENOTFOUND;
        } else {
            /* The version stays allocated while this snapshot is open (see prune). */
            *val = v->data;
            *vlen = v->vlen;
            *version = v->seq;
        }
    }
    pthread_mutex_unlock(&ms->mu);
    return rc;
}

static int mem_snap_scan(void *st, void *snap, const uint8_t *start, size_t slen,
                         const uint8_t *end, size_t elen, int reverse, kv_scan_fn fn, void *ud) {
    mem_store *ms = st;
    const mem_snap *s = snap;
    pthread_mutex_lock(&ms->mu);
    int rc = mem_op(ms);
    if (rc == 0 && !reverse) {
        mem_node *x = find_lt(ms, start, slen, NULL)->next[0];
        for (; x != NULL; x = x->next[0]) {
            if (end != NULL && kv__key_cmp(x->key, x->klen, end, elen) >= 0) {
                break;
            }
            const mem_ver *v = visible(x, s->seq);
            if (v != NULL && fn(ud, x->key, x->klen, v->data, v->vlen, v->seq) != 0) {
                break;
            }
        }
    } else if (rc == 0) {
        mem_node *x = end != NULL ? find_lt(ms, end, elen, NULL) : find_last(ms);
        if (x == ms->head) {
            x = NULL;
        }
        for (; x != NULL; x = x->prev) {
            if (kv__key_cmp(x->key, x->klen, start, slen) < 0) {
                break;
            }
            const mem_ver *v = visible(x, s->seq);
            if (v != NULL && fn(ud, x->key, x->klen, v->data, v->vlen, v->seq) != 0) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&ms->mu);
    return rc;
}

/* Validates and applies one commit under the mutex. */
static int mem_apply(mem_store *ms, kv_commit_req *c) {
    int rc = mem_op(ms);
    if (rc != 0) {
        return rc;
    }
    if (ms->inject_conflicts > 0) {
        ms->inject_conflicts--;
        return aj__err(AJ_ECONFLICT, "injected conflict");
    }
    for (size_t i = 0; i < c->n_reads; i++) {
        const kv_read *r = &c->reads[i];
        mem_node *n = find_eq(ms, r->key, r->klen);
        uint64_t cur = n != NULL ? current_version(n) : 0;
        if (cur != r->version) {
            return aj__err(AJ_ECONFLICT,
                           "a key read by the transaction changed before commit "
                           "(version %llu, now %llu)",
                           (unsigned long long)r->version, (unsigned long long)cur);
        }
    }
    if (c->n_writes == 0) {
        c->out_version = 0;
        return 0;
    }
    if (ms->full) {
        return aj__err(AJ_EFULL, "injected full disk: no space for %zu writes", c->n_writes);
    }
    /* Allocate everything first, so that a failed allocation leaves the store untouched. */
    mem_prep stack_prep[MEM_STACK_WRITES];
    mem_prep *prep = stack_prep;
    if (c->n_writes > MEM_STACK_WRITES) {
        prep = aj__calloc(c->n_writes, sizeof *prep);
        if (prep == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory committing %zu writes", c->n_writes);
        }
    }
    size_t ready = 0;
    for (; ready < c->n_writes; ready++) {
        const kv_write *w = &c->writes[ready];
        mem_prep *p = &prep[ready];
        p->node = find_eq(ms, w->key, w->klen);
        p->ver = NULL;
        p->fresh = 0;
        if (w->val == NULL && (p->node == NULL || current_version(p->node) == 0)) {
            continue; /* deleting an absent key changes nothing */
        }
        if (p->node == NULL) {
            p->node = node_alloc(random_height(ms), w->key, w->klen);
            if (p->node == NULL) {
                break;
            }
            p->fresh = 1;
        }
        size_t vlen = w->val != NULL ? w->vlen : 0;
        p->ver = aj__malloc(sizeof(mem_ver) + vlen);
        if (p->ver == NULL) {
            if (p->fresh) {
                aj__free(p->node);
            }
            break;
        }
        p->ver->dead = w->val == NULL;
        p->ver->vlen = vlen;
        if (vlen > 0) {
            memcpy(p->ver->data, w->val, vlen);
        }
    }
    if (ready < c->n_writes) {
        for (size_t i = 0; i < ready; i++) {
            if (prep[i].fresh) {
                aj__free(prep[i].node);
            }
            aj__free(prep[i].ver);
        }
        rc = aj__err(AJ_ENOMEM, "out of memory committing %zu writes", c->n_writes);
    } else {
        uint64_t seq = ++ms->seq;
        if (c->sync == KV_SYNC) {
            ms->durable = seq; /* everything up to here is now durable */
        }
        for (size_t i = 0; i < c->n_writes; i++) {
            mem_prep *p = &prep[i];
            if (p->ver == NULL) {
                continue;
            }
            if (p->fresh) {
                list_insert(ms, p->node);
            }
            p->ver->seq = seq;
            p->ver->older = p->node->vers;
            p->node->vers = p->ver;
            gc_note(ms, p->node, prune(ms, p->node));
        }
        c->out_version = seq;
        ms->batches++;
        ms->syncs += c->sync == KV_SYNC;
        ms->hist[aj__hist_bucket(1)]++;
        changed(ms);
        gc_maybe(ms);
    }
    if (prep != stack_prep) {
        aj__free(prep);
    }
    return rc;
}

static int mem_commit(void *st, kv_commit_req *c) {
    mem_store *ms = st;
    pthread_mutex_lock(&ms->mu);
    int rc = mem_apply(ms, c);
    if (rc == 0 && c->n_writes > 0 && ms->lose_outcome > 0 && --ms->lose_outcome == 0) {
        /* Applied, but the caller hears what a broken connection after COMMIT tells it. */
        rc = aj__err(AJ_EAMBIGUOUS, "injected lost outcome: the commit was applied");
    }
    pthread_mutex_unlock(&ms->mu);
    if (c->sync == KV_ASYNC) {
        if (c->done != NULL) {
            c->done(c->done_ud, rc);
        }
        return 0;
    }
    return rc;
}

static uint64_t mem_change_seq(void *st) {
    mem_store *ms = st;
    return atomic_load(&ms->change);
}

static void mem_wait_change(void *st, uint64_t seen, int64_t timeout_ms) {
    mem_store *ms = st;
    struct timespec deadline;
    if (timeout_ms >= 0) {
        aj__deadline_ts(&deadline, timeout_ms);
    }
    pthread_mutex_lock(&ms->mu);
    while (atomic_load(&ms->change) == seen) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&ms->cv, &ms->mu);
        } else if (pthread_cond_timedwait(&ms->cv, &ms->mu, &deadline) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&ms->mu);
}

static void mem_commit_stats(void *st, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                             size_t n_hist) {
    mem_store *ms = st;
    pthread_mutex_lock(&ms->mu);
    if (batches != NULL) {
        *batches = ms->batches;
    }
    if (syncs != NULL) {
        *syncs = ms->syncs;
    }
    for (size_t i = 0; hist != NULL && i < n_hist; i++) {
        hist[i] = i < AJ_HIST_BUCKETS ? ms->hist[i] : 0;
    }
    pthread_mutex_unlock(&ms->mu);
}

static const kv_backend_ops mem_ops = {
    .ops_version = KV_OPS_VERSION,
    .name = "mem",
    .close = mem_close,
    .snap_open = mem_snap_open,
    .snap_close = mem_snap_close,
    .snap_get = mem_snap_get,
    .snap_scan = mem_snap_scan,
    .commit = mem_commit,
    .change_seq = mem_change_seq,
    .wait_change = mem_wait_change,
    .backup = NULL,
    .commit_stats = mem_commit_stats,
};

int kv_mem_open(kv_store **out) {
    mem_store *ms = aj__calloc(1, sizeof *ms);
    mem_node *head = node_alloc(MEM_MAX_HEIGHT, NULL, 0);
    if (ms == NULL || head == NULL) {
        aj__free(ms);
        aj__free(head);
        return aj__err(AJ_ENOMEM, "out of memory opening a memory store");
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* aj__deadline_ts is monotonic */
    pthread_cond_init(&ms->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ms->mu, NULL);
    ms->head = head;
    ms->height = 1;
    ms->rng = 0x9e3779b97f4a7c15ULL;
    ms->gc_next = MEM_GC_MIN;
    atomic_init(&ms->change, 0);
    kv_limits lim = {MEM_MAX_KEY, MEM_MAX_VALUE, MEM_MAX_TXN_OPS, MEM_MAX_TXN_BYTES};
    return kv__store_new(out, &mem_ops, ms, KV_CAP_APPLIED_NOSYNC, &lim);
}

/* ---------------------------------------------------------------------------------------------
 * Fault injection
 * ------------------------------------------------------------------------------------------- */

static mem_store *mem_of(kv_store *s) {
    mem_store *ms = kv__store_state(s, &mem_ops);
    assert(ms != NULL && "fault injection needs a memory store");
    return ms;
}

void kv_mem_fail_at(kv_store *s, uint64_t n) {
    mem_store *ms = mem_of(s);
    pthread_mutex_lock(&ms->mu);
    ms->fail_at = n != 0 ? ms->ops + n : 0;
    pthread_mutex_unlock(&ms->mu);
}

void kv_mem_set_full(kv_store *s, int full) {
    mem_store *ms = mem_of(s);
    pthread_mutex_lock(&ms->mu);
    ms->full = full != 0;
    pthread_mutex_unlock(&ms->mu);
}

uint64_t kv_mem_ops(kv_store *s) {
    mem_store *ms = mem_of(s);
    pthread_mutex_lock(&ms->mu);
    uint64_t n = ms->ops;
    pthread_mutex_unlock(&ms->mu);
    return n;
}

void kv_mem_crash(kv_store *s) {
    mem_store *ms = mem_of(s);
    pthread_mutex_lock(&ms->mu);
    for (mem_node *n = ms->head->next[0]; n != NULL; n = n->next[0]) {
        while (n->vers != NULL && n->vers->seq > ms->durable) {
            mem_ver *v = n->vers;
            n->vers = v->older;
            aj__free(v);
        }
        gc_note(ms, n, prune(ms, n));
    }
    gc_sweep(ms);
    changed(ms);
    pthread_mutex_unlock(&ms->mu);
}

void kv_mem_inject_conflicts(kv_store *s, uint64_t n) {
    mem_store *ms = mem_of(s);
    pthread_mutex_lock(&ms->mu);
    ms->inject_conflicts = n;
    pthread_mutex_unlock(&ms->mu);
}

void kv_mem_lose_outcome_at(kv_store *s, uint64_t n) {
    mem_store *ms = mem_of(s);
    pthread_mutex_lock(&ms->mu);
    ms->lose_outcome = n;
    pthread_mutex_unlock(&ms->mu);
}
