/*
 * kv.c — the transaction layer shared by every storage backend (see kv.h).
 *
 * A transaction buffers its writes and records its reads; a backend only ever sees consistent
 * read snapshots and whole commits (a read set plus a sorted write set). Everything a caller can
 * observe about a transaction — read-your-writes, merged scans, limits, read-set bookkeeping — is
 * decided here, so that every backend behaves the same.
 *
 * Invariants:
 *  - The write set and the read set are treaps ordered by key (priority = a hash of the key), each
 *    key at most once. Write-set entries are never removed: a delete is an entry without a value,
 *    and a later write of the same key replaces the entry's value (last write wins).
 *  - A read-set entry keeps the version first seen for its key. The snapshot is consistent, so a
 *    second sighting can only differ through kv_expect; that dooms the commit to AJ_ECONFLICT.
 *  - The snapshot is opened at the first read that needs the backend; a transaction that only
 *    writes never opens one.
 *  - Memory handed to the caller (kv_get values) stays valid until the transaction ends: keys and
 *    read values live in an arena freed at the end, and a write-set value buffer that was lent out
 *    is retired rather than freed or overwritten when its key is written again.
 *  - Backend scan callbacks never re-enter the store: a merged scan copies backend entries in
 *    batches and calls the caller's callback outside the backend, so callbacks may use the
 *    transaction (get, put, del, nested scans) and backends may hold locks while they scan.
 *
 * Layer: src/store, above the backends (kv_mem.c, kv_sqlite.c), below core and runtime.
 */
#include "store/kv.h"

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define KV_ARENA_INLINE 1024 /* arena bytes inside the txn: a small transaction mallocs nothing */
#define KV_ARENA_CHUNK 8192  /* bytes of each further arena chunk */
#define KV_ARENA_OWN                                                                               \
    (KV_ARENA_CHUNK / 4)  /* requests at least this big get a chunk of their own                   \
                           */
#define KV_SCAN_BATCH 256 /* backend entries fetched per snap_scan of a merged scan */
#define KV_SCAN_BATCH_BYTES                                                                        \
    ((size_t)1 << 20)         /* bytes per batch (at least one entry is fetched)                   \
                               */
#define KV_SCAN_NEST_CACHED 2 /* nesting depth of scans whose buffers the txn keeps for reuse */

struct kv_store {
    const kv_backend_ops *ops;
    void *st;
    uint32_t caps;
    kv_limits limits;
};

/* A node of the read set or the write set. */
typedef struct kv_node {
    struct kv_node *l, *r;
    uint64_t prio;
    const uint8_t *key; /* in the arena */
    size_t klen;
    /* write set */
    uint8_t *val; /* a kv_vbuf's data; NULL: delete */
    size_t vlen;
    int lent;              /* val was handed to the caller: never free or overwrite it */
    struct kv_node *wnext; /* every write node, for freeing */
    /* read set */
    uint64_t version;
    const uint8_t *cval; /* the value read, in the arena, when `cached` */
    size_t cvlen;
    int cached;
} kv_node;

/* A write-set value buffer: this header, then `cap` bytes. */
typedef struct kv_vbuf {
    struct kv_vbuf *next; /* retired list */
    size_t cap;
} kv_vbuf;

typedef struct kv_chunk {
    struct kv_chunk *next;
    max_align_t mem[];
} kv_chunk;

/* Buffers of one scan nesting level. */
typedef struct kv_scanmem {
    aj_buf batch; /* backend entries copied out of the snapshot */
    aj_buf cont;  /* the continuation bound */
} kv_scanmem;

struct kv_txn {
    kv_store *s;
    void *snap;
    int has_snap;
    int doomed;     /* a version expectation contradicts a read: the commit will conflict */
    int has_expect; /* the read set holds kv_expect entries: even a read-only commit validates */
    unsigned scan_depth;
    kv_node *rroot;
    size_t n_reads;
    kv_node *wroot;
    kv_node *wall;
    size_t n_writes;
    size_t wbytes;
    kv_vbuf *retired;
    kv_chunk *chunks;
    unsigned char *arena_p;
    size_t arena_left;
    kv_scanmem smem[KV_SCAN_NEST_CACHED];
    kv_commit_req commit;
    kv_done_fn done;
    void *done_ud;
    alignas(max_align_t) unsigned char arena_inline[KV_ARENA_INLINE];
};

static const uint8_t kv_empty[1];

/* ---------------------------------------------------------------------------------------------
 * Store
 * ------------------------------------------------------------------------------------------- */

int kv__store_new(kv_store **out, const kv_backend_ops *ops, void *st, uint32_t caps,
                  const kv_limits *limits) {
    assert(ops->ops_version == KV_OPS_VERSION);
    kv_store *s = aj__calloc(1, sizeof *s);
    if (s == NULL) {
        ops->close(st);
        return aj__err(AJ_ENOMEM, "out of memory opening the %s store", ops->name);
    }
    s->ops = ops;
    s->st = st;
    s->caps = caps;
    s->limits = *limits;
    *out = s;
    return 0;
}

void *kv__store_state(kv_store *s, const kv_backend_ops *ops) {
    return s != NULL && s->ops == ops ? s->st : NULL;
}

/* "sqlite:PATH?vfs=NAME": the part after the first '?' holds parameters, NAME=VALUE joined by
 * '&'. The only one is `vfs`, the name of a registered SQLite VFS every connection opens the file
 * through (tests use it to interpose a shim). An unknown parameter is refused rather than taken
 * for part of the file name. */
static int sqlite_url_open(kv_store **out, const char *rest, const kv_open_opts *opts) {
    const char *q = strchr(rest, '?');
    if (q == NULL) {
        return kv_sqlite_open(out, rest, opts);
    }
    char path[KV_URL_PATH_MAX];
    char vfs[KV_URL_VFS_MAX] = "";
    if ((size_t)(q - rest) >= sizeof path) {
        return aj__err(AJ_EINVAL, "store path is longer than %d bytes", KV_URL_PATH_MAX - 1);
    }
    memcpy(path, rest, (size_t)(q - rest));
    path[q - rest] = '\0';
    for (const char *p = q + 1; *p != '\0';) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - p) : n;
        if (klen != 3 || memcmp(p, "vfs", 3) != 0 || eq == NULL) {
            return aj__err(AJ_EINVAL, "unknown store URL parameter \"%.*s\" (known: vfs=NAME)",
                           (int)(n > 64 ? 64 : n), p);
        }
        size_t vlen = n - klen - 1;
        if (vlen == 0 || vlen >= sizeof vfs) {
            return aj__err(AJ_EINVAL, "store URL parameter vfs wants a name of 1 to %d bytes",
                           KV_URL_VFS_MAX - 1);
        }
        memcpy(vfs, eq + 1, vlen);
        vfs[vlen] = '\0';
        p += n + (p[n] == '&');
    }
    kv_open_opts o = *opts;
    o.vfs = vfs[0] != '\0' ? vfs : NULL;
    return kv_sqlite_open(out, path, &o);
}

int kv_open(kv_store **out, const char *url, const kv_open_opts *opts) {
    kv_open_opts defaults = {0};
    if (opts == NULL) {
        opts = &defaults;
    }
    if (url == NULL) {
        return aj__err(AJ_EINVAL, "no store URL given (want \"sqlite:PATH\", \"postgres://...\" "
                                  "or \"mem:\")");
    }
    if (strcmp(url, "mem:") == 0) {
        return kv_mem_open(out);
    }
    if (strncmp(url, "sqlite:", 7) == 0) {
        if (url[7] == '\0' || url[7] == '?') {
            return aj__err(AJ_EINVAL, "store URL \"sqlite:\" names no file (want \"sqlite:PATH\")");
        }
        return sqlite_url_open(out, url + 7, opts);
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        return kv_postgres_open(out, url, opts);
    }
    return aj__err(AJ_EINVAL,
                   "unknown store URL \"%.200s\" (want \"sqlite:PATH\", \"postgres://...\" or "
                   "\"mem:\")",
                   url);
}

void kv_close(kv_store *s) {
    if (s == NULL) {
        return;
    }
    s->ops->close(s->st);
    aj__free(s);
}

const char *kv_backend_name(const kv_store *s) {
    return s->ops->name;
}

uint32_t kv_caps(const kv_store *s) {
    return s->caps;
}

const kv_limits *kv_store_limits(const kv_store *s) {
    return &s->limits;
}

void kv_lower_limits(kv_store *s, const kv_limits *limits) {
    if (limits->max_txn_ops < s->limits.max_txn_ops) {
        s->limits.max_txn_ops = limits->max_txn_ops;
    }
    if (limits->max_txn_bytes < s->limits.max_txn_bytes) {
        s->limits.max_txn_bytes = limits->max_txn_bytes;
    }
}

uint64_t kv_change_seq(kv_store *s) {
    return s->ops->change_seq(s->st);
}

void kv_wait_change(kv_store *s, uint64_t seen, int64_t timeout_ms) {
    s->ops->wait_change(s->st, seen, timeout_ms);
}

int kv_backup(kv_store *s, const char *path) {
    if (!(s->caps & KV_CAP_BACKUP) || s->ops->backup == NULL) {
        return aj__err(AJ_EINVAL, "the %s store does not support backups", s->ops->name);
    }
    return s->ops->backup(s->st, path);
}

void kv_commit_stats(kv_store *s, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                     size_t n_hist) {
    s->ops->commit_stats(s->st, batches, syncs, hist, n_hist);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers: key order, arena, treap
 * ------------------------------------------------------------------------------------------- */

static uint64_t key_prio(const uint8_t *k, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= k[i];
        h *= 0x100000001b3ULL;
    }
    /* FNV-1a mixes its last bytes poorly; finish like MurmurHash3 so treap priorities of keys
     * that differ only at the end (sequence numbers) are independent. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t kv__key_hash(const uint8_t *key, size_t klen) {
    return key_prio(key, klen);
}

static void *arena_alloc(kv_txn *t, size_t n) {
    size_t a = alignof(max_align_t);
    size_t need = (n + a - 1) & ~(a - 1);
    if (need <= t->arena_left) {
        void *p = t->arena_p;
        t->arena_p += need;
        t->arena_left -= need;
        return p;
    }
    size_t cap = need >= KV_ARENA_OWN ? need : KV_ARENA_CHUNK;
    if (cap > SIZE_MAX - sizeof(kv_chunk)) {
        return NULL;
    }
    kv_chunk *c = aj__malloc(sizeof(kv_chunk) + cap);
    if (c == NULL) {
        return NULL;
    }
    c->next = t->chunks;
    t->chunks = c;
    unsigned char *p = (unsigned char *)c->mem;
    if (cap > need) {
        /* Only a fresh shared chunk replaces the bump region; a chunk of its own leaves the
         * current region's remaining space usable. */
        t->arena_p = p + need;
        t->arena_left = cap - need;
    }
    return p;
}

static kv_node *tree_find(kv_node *n, const uint8_t *key, size_t klen) {
    while (n != NULL) {
        int c = kv__key_cmp(key, klen, n->key, n->klen);
        if (c == 0) {
            return n;
        }
        n = c < 0 ? n->l : n->r;
    }
    return NULL;
}

static kv_node *tree_insert(kv_node *root, kv_node *x) {
    if (root == NULL) {
        return x;
    }
    if (kv__key_cmp(x->key, x->klen, root->key, root->klen) < 0) {
        root->l = tree_insert(root->l, x);
        if (root->l->prio > root->prio) {
            kv_node *l = root->l;
            root->l = l->r;
            l->r = root;
            return l;
        }
    } else {
        root->r = tree_insert(root->r, x);
        if (root->r->prio > root->prio) {
            kv_node *r = root->r;
            root->r = r->l;
            r->l = root;
            return r;
        }
    }
    return root;
}

/* The first node with key > k (strict) or >= k. */
static kv_node *tree_succ(kv_node *n, const uint8_t *k, size_t kl, int strict) {
    kv_node *best = NULL;
    while (n != NULL) {
        int c = kv__key_cmp(n->key, n->klen, k, kl);
        if (c > 0 || (c == 0 && !strict)) {
            best = n;
            n = n->l;
        } else {
            n = n->r;
        }
    }
    return best;
}

/* The last node with key < k. */
static kv_node *tree_pred(kv_node *n, const uint8_t *k, size_t kl) {
    kv_node *best = NULL;
    while (n != NULL) {
        if (kv__key_cmp(n->key, n->klen, k, kl) < 0) {
            best = n;
            n = n->r;
        } else {
            n = n->l;
        }
    }
    return best;
}

static kv_node *tree_max(kv_node *n) {
    while (n != NULL && n->r != NULL) {
        n = n->r;
    }
    return n;
}

/* Allocates a node whose key is copied into the arena. */
static kv_node *node_new(kv_txn *t, const uint8_t *key, size_t klen) {
    kv_node *n = arena_alloc(t, sizeof *n);
    uint8_t *k = n != NULL ? arena_alloc(t, klen) : NULL;
    if (k == NULL) {
        return NULL;
    }
    memcpy(k, key, klen);
    memset(n, 0, sizeof *n);
    n->key = k;
    n->klen = klen;
    n->prio = key_prio(key, klen);
    return n;
}

static int check_key(const kv_txn *t, const void *key, size_t klen) {
    if (key == NULL || klen == 0) {
        return aj__err(AJ_EINVAL, "empty key");
    }
    if (klen > t->s->limits.max_key) {
        return aj__err(AJ_ETOOBIG, "key of %zu bytes is over the %s store's max_key (%zu bytes)",
                       klen, t->s->ops->name, t->s->limits.max_key);
    }
    return 0;
}

static int ensure_snap(kv_txn *t) {
    if (t->has_snap) {
        return 0;
    }
    int rc = t->s->ops->snap_open(t->s->st, &t->snap);
    if (rc != 0) {
        return rc;
    }
    t->has_snap = 1;
    return 0;
}

static void close_snap(kv_txn *t) {
    if (t->has_snap) {
        t->s->ops->snap_close(t->s->st, t->snap);
        t->has_snap = 0;
        t->snap = NULL;
    }
}

/* Notes that `key` had `version` in the snapshot (or, for kv_expect, must have it at commit).
 * *out (may be NULL) receives the read-set node. */
static int read_note(kv_txn *t, const uint8_t *key, size_t klen, uint64_t version, kv_node **out) {
    kv_node *n = tree_find(t->rroot, key, klen);
    if (n == NULL) {
        n = node_new(t, key, klen);
        if (n == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory recording a read");
        }
        n->version = version;
        t->rroot = tree_insert(t->rroot, n);
        t->n_reads++;
    } else if (n->version != version) {
        t->doomed = 1;
    }
    if (out != NULL) {
        *out = n;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Transactions
 * ------------------------------------------------------------------------------------------- */

int kv_begin(kv_store *s, kv_txn **out) {
    kv_txn *t = aj__malloc(sizeof *t);
    if (t == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory beginning a transaction");
    }
    /* Everything but the inline arena, which needs no clearing. */
    memset(t, 0, offsetof(kv_txn, arena_inline));
    t->s = s;
    t->arena_p = t->arena_inline;
    t->arena_left = sizeof t->arena_inline;
    *out = t;
    return 0;
}

static void txn_free(kv_txn *t) {
    close_snap(t);
    for (kv_node *n = t->wall; n != NULL; n = n->wnext) {
        if (n->val != NULL) {
            aj__free((kv_vbuf *)n->val - 1);
        }
    }
    for (kv_vbuf *v = t->retired; v != NULL;) {
        kv_vbuf *next = v->next;
        aj__free(v);
        v = next;
    }
    for (kv_chunk *c = t->chunks; c != NULL;) {
        kv_chunk *next = c->next;
        aj__free(c);
        c = next;
    }
    for (size_t i = 0; i < KV_SCAN_NEST_CACHED; i++) {
        aj__buf_free(&t->smem[i].batch);
        aj__buf_free(&t->smem[i].cont);
    }
    aj__free(t);
}

void kv_abort(kv_txn *t) {
    if (t != NULL) {
        txn_free(t);
    }
}

size_t kv_txn_ops(const kv_txn *t) {
    return t->n_writes;
}

size_t kv_txn_bytes(const kv_txn *t) {
    return t->wbytes;
}

/* A read of a key this transaction wrote: 1 when it did (*rc: 0 with the value, or
 * AJ_ENOTFOUND for a delete), 0 when the read must go to the snapshot. */
static int own_read(kv_txn *t, const void *key, size_t klen, const uint8_t **val, size_t *vlen,
                    int *rc) {
    kv_node *w = tree_find(t->wroot, key, klen);
    if (w == NULL) {
        return 0;
    }
    if (w->val == NULL) {
        *rc = aj__err(AJ_ENOTFOUND, "key not found (deleted in this transaction)");
        return 1;
    }
    w->lent = 1;
    *val = w->val;
    *vlen = w->vlen;
    *rc = 0;
    return 1;
}

/* kv_get (record 1) and kv_peek (record 0: the read leaves no trace in the read set). */
static int get(kv_txn *t, const void *key, size_t klen, const uint8_t **val, size_t *vlen,
               int record) {
    int rc = check_key(t, key, klen);
    if (rc != 0) {
        return rc;
    }
    if (own_read(t, key, klen, val, vlen, &rc)) {
        return rc;
    }
    kv_node *r = tree_find(t->rroot, key, klen);
    if (r == NULL || !r->cached) {
        rc = ensure_snap(t);
        if (rc != 0) {
            return rc;
        }
        const uint8_t *bv = NULL;
        size_t bl = 0;
        uint64_t ver = 0;
        rc = t->s->ops->snap_get(t->s->st, t->snap, key, klen, &bv, &bl, &ver);
        if (rc == AJ_ENOTFOUND) {
            ver = 0;
            bl = 0;
        } else if (rc != 0) {
            return rc;
        }
        uint8_t *copy = arena_alloc(t, bl);
        if (copy == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory reading a value of %zu bytes", bl);
        }
        if (bl > 0) {
            memcpy(copy, bv, bl);
        }
        if (!record) {
            if (ver == 0) {
                return aj__err(AJ_ENOTFOUND, "key not found");
            }
            *val = copy;
            *vlen = bl;
            return 0;
        }
        rc = read_note(t, key, klen, ver, &r);
        if (rc != 0) {
            return rc;
        }
        /* Cache what this read saw (an expectation keeps its own version, see read_note). */
        r->cached = 1;
        r->cval = ver != 0 ? copy : NULL;
        r->cvlen = bl;
    }
    /* A key read before answers as it did then, peeked or not: one transaction, one value. */
    if (r->cval == NULL) {
        return aj__err(AJ_ENOTFOUND, "key not found");
    }
    *val = r->cval;
    *vlen = r->cvlen;
    return 0;
}

int kv_get(kv_txn *t, const void *key, size_t klen, const uint8_t **val, size_t *vlen) {
    return get(t, key, klen, val, vlen, 1);
}

int kv_peek(kv_txn *t, const void *key, size_t klen, const uint8_t **val, size_t *vlen) {
    return get(t, key, klen, val, vlen, 0);
}

int kv_expect(kv_txn *t, const void *key, size_t klen, uint64_t version) {
    int rc = check_key(t, key, klen);
    if (rc != 0) {
        return rc;
    }
    rc = read_note(t, key, klen, version, NULL);
    if (rc == 0) {
        t->has_expect = 1;
    }
    return rc;
}

/* Replaces the value of write node n (val NULL: delete). */
static int write_value(kv_txn *t, kv_node *n, const void *val, size_t vlen) {
    kv_vbuf *old = n->val != NULL ? (kv_vbuf *)n->val - 1 : NULL;
    if (val != NULL && old != NULL && !n->lent && old->cap >= vlen) {
        if (vlen > 0) {
            memmove(n->val, val, vlen);
        }
        n->vlen = vlen;
        return 0;
    }
    kv_vbuf *nb = NULL;
    if (val != NULL) {
        nb = aj__malloc(sizeof *nb + vlen);
        if (nb == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory buffering a value of %zu bytes", vlen);
        }
        nb->next = NULL;
        nb->cap = vlen;
        if (vlen > 0) {
            memcpy(nb + 1, val, vlen);
        }
    }
    if (old != NULL) {
        if (n->lent) {
            old->next = t->retired;
            t->retired = old;
        } else {
            aj__free(old);
        }
    }
    n->val = nb != NULL ? (uint8_t *)(nb + 1) : NULL;
    n->vlen = vlen;
    n->lent = 0;
    return 0;
}

static int write_entry(kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen) {
    int rc = check_key(t, key, klen);
    if (rc != 0) {
        return rc;
    }
    const kv_limits *lim = &t->s->limits;
    if (val != NULL && vlen > lim->max_value) {
        return aj__err(AJ_ETOOBIG,
                       "value of %zu bytes is over the %s store's max_value (%zu bytes)", vlen,
                       t->s->ops->name, lim->max_value);
    }
    kv_node *n = tree_find(t->wroot, key, klen);
    size_t old_bytes = n != NULL ? n->klen + n->vlen : 0;
    size_t new_bytes = klen + (val != NULL ? vlen : 0);
    if (n == NULL && t->n_writes + 1 > lim->max_txn_ops) {
        return aj__err(AJ_ETOOBIG,
                       "transaction would write more than the %s store's max_txn_ops (%zu keys)",
                       t->s->ops->name, lim->max_txn_ops);
    }
    if (t->wbytes - old_bytes + new_bytes > lim->max_txn_bytes) {
        return aj__err(AJ_ETOOBIG,
                       "transaction would write %zu bytes, over the %s store's max_txn_bytes (%zu)",
                       t->wbytes - old_bytes + new_bytes, t->s->ops->name, lim->max_txn_bytes);
    }
    if (n == NULL) {
        n = node_new(t, key, klen);
        if (n == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory buffering a write");
        }
        rc = write_value(t, n, val, vlen);
        if (rc != 0) {
            return rc; /* the node stays in the arena, unlinked */
        }
        n->wnext = t->wall;
        t->wall = n;
        t->wroot = tree_insert(t->wroot, n);
        t->n_writes++;
    } else {
        rc = write_value(t, n, val, vlen);
        if (rc != 0) {
            return rc;
        }
    }
    t->wbytes = t->wbytes - old_bytes + new_bytes;
    return 0;
}

int kv_put(kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen) {
    if (val == NULL && vlen > 0) {
        return aj__err(AJ_EINVAL, "value of %zu bytes given without data", vlen);
    }
    /* A NULL value means delete to backends, so an empty value gets a real pointer. */
    return write_entry(t, key, klen, val != NULL ? val : kv_empty, vlen);
}

int kv_del(kv_txn *t, const void *key, size_t klen) {
    return write_entry(t, key, klen, NULL, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Merged scans
 * ------------------------------------------------------------------------------------------- */

/* One backend entry in a batch buffer: this header, then the key and value, padded to 8. */
typedef struct kv_bent {
    size_t klen;
    size_t vlen;
    uint64_t version;
} kv_bent;

typedef struct kv_fill {
    aj_buf *b;
    size_t n;
    size_t want;
    int full; /* stopped because the batch is full: the backend may hold more */
    int oom;
} kv_fill;

static size_t pad8(size_t n) {
    return (n + 7) & ~(size_t)7;
}

static int fill_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    kv_fill *f = ud;
    size_t need = sizeof(kv_bent) + pad8(klen + vlen);
    if (aj__buf_reserve(f->b, need) != 0) {
        f->oom = 1;
        return 1;
    }
    kv_bent h = {klen, vlen, version};
    uint8_t *p = f->b->p + f->b->len;
    memcpy(p, &h, sizeof h);
    memcpy(p + sizeof h, key, klen);
    if (vlen > 0) {
        memcpy(p + sizeof h + klen, val, vlen);
    }
    f->b->len += need;
    f->n++;
    if (f->n >= f->want || f->b->len >= KV_SCAN_BATCH_BYTES) {
        f->full = 1;
        return 1;
    }
    return 0;
}

typedef struct kv_scan_ctx {
    kv_txn *t;
    const uint8_t *lo; /* inclusive */
    size_t lolen;
    const uint8_t *hi; /* exclusive; NULL: none */
    size_t hilen;
    int reverse;
    size_t limit;
    size_t emitted;
    kv_scan_fn fn;
    void *ud;
    const uint8_t *pos; /* the last key consumed (stable memory: a node's key); NULL: none yet */
    size_t poslen;
    int stop;
    int peek; /* kv_peek_prefix: keys do not join the read set */
} kv_scan_ctx;

/* The next write-set node in scan order after the position, within the range. Searched afresh
 * every time because the caller's callback may have written keys since. */
static kv_node *own_next(const kv_scan_ctx *c) {
    kv_node *root = c->t->wroot;
    kv_node *n;
    if (!c->reverse) {
        n = c->pos != NULL ? tree_succ(root, c->pos, c->poslen, 1)
                           : tree_succ(root, c->lo, c->lolen, 0);
        if (n != NULL && c->hi != NULL && kv__key_cmp(n->key, n->klen, c->hi, c->hilen) >= 0) {
            n = NULL;
        }
    } else {
        if (c->pos != NULL) {
            n = tree_pred(root, c->pos, c->poslen);
        } else if (c->hi != NULL) {
            n = tree_pred(root, c->hi, c->hilen);
        } else {
            n = tree_max(root);
        }
        if (n != NULL && kv__key_cmp(n->key, n->klen, c->lo, c->lolen) < 0) {
            n = NULL;
        }
    }
    return n;
}

static void emit(kv_scan_ctx *c, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                 uint64_t version) {
    if (c->fn(c->ud, key, klen, val, vlen, version) != 0) {
        c->stop = 1;
    }
    c->emitted++;
    if (c->limit != 0 && c->emitted >= c->limit) {
        c->stop = 1;
    }
}

/* Emits own writes that come before backend key bk in scan order (all remaining when bk is NULL).
 * Own deletes are consumed silently. */
static void emit_own_before(kv_scan_ctx *c, const uint8_t *bk, size_t bklen) {
    while (!c->stop) {
        kv_node *n = own_next(c);
        if (n == NULL) {
            return;
        }
        if (bk != NULL) {
            int d = kv__key_cmp(n->key, n->klen, bk, bklen);
            if ((c->reverse ? -d : d) >= 0) {
                return;
            }
        }
        c->pos = n->key;
        c->poslen = n->klen;
        if (n->val != NULL) {
            n->lent = 1; /* the callback may overwrite the key while it holds the value */
            emit(c, n->key, n->klen, n->val, n->vlen, 0);
        }
    }
}

/* Merges one backend entry: own writes before it, then it (or the own write that shadows it). */
static int merge_backend(kv_scan_ctx *c, const uint8_t *key, size_t klen, const uint8_t *val,
                         size_t vlen, uint64_t version) {
    emit_own_before(c, key, klen);
    if (c->stop) {
        return 0;
    }
    kv_node *r = NULL;
    int rc = 0;
    if (c->peek) {
        r = node_new(c->t, key, klen); /* only a stable copy of the position */
        rc = r == NULL ? aj__err(AJ_ENOMEM, "out of memory scanning") : 0;
    } else {
        rc = read_note(c->t, key, klen, version, &r);
    }
    if (rc != 0) {
        return rc;
    }
    c->pos = r->key;
    c->poslen = r->klen;
    kv_node *w = tree_find(c->t->wroot, key, klen);
    if (w == NULL) {
        emit(c, key, klen, val, vlen, version);
    } else if (w->val != NULL) {
        w->lent = 1;
        emit(c, w->key, w->klen, w->val, w->vlen, 0);
    }
    return 0;
}

static int scan_run(kv_scan_ctx *c, kv_scanmem *m) {
    kv_txn *t = c->t;
    int rc = ensure_snap(t);
    if (rc != 0) {
        return rc;
    }
    for (;;) {
        /* The backend range still to read: after the position in scan order. */
        const uint8_t *start = c->lo, *end = c->hi;
        size_t slen = c->lolen, elen = c->hilen;
        if (c->pos != NULL && !c->reverse) {
            /* The smallest key after pos is pos followed by a zero byte. */
            aj__buf_reset(&m->cont);
            aj__buf_add(&m->cont, c->pos, c->poslen);
            aj__buf_add_u8(&m->cont, 0);
            if (m->cont.oom) {
                return aj__err(AJ_ENOMEM, "out of memory continuing a scan");
            }
            start = m->cont.p;
            slen = m->cont.len;
        } else if (c->pos != NULL) {
            end = c->pos;
            elen = c->poslen;
        }
        aj__buf_reset(&m->batch);
        kv_fill f = {&m->batch, 0, KV_SCAN_BATCH, 0, 0};
        if (c->limit != 0 && c->limit - c->emitted < f.want) {
            f.want = c->limit - c->emitted;
        }
        rc = t->s->ops->snap_scan(t->s->st, t->snap, start, slen, end, elen, c->reverse, fill_cb,
                                  &f);
        if (rc != 0) {
            return rc;
        }
        if (f.oom) {
            return aj__err(AJ_ENOMEM, "out of memory reading a scan batch");
        }
        size_t off = 0;
        for (size_t i = 0; i < f.n && !c->stop; i++) {
            kv_bent h;
            memcpy(&h, m->batch.p + off, sizeof h);
            const uint8_t *k = m->batch.p + off + sizeof h;
            rc = merge_backend(c, k, h.klen, k + h.klen, h.vlen, h.version);
            if (rc != 0) {
                return rc;
            }
            off += sizeof h + pad8(h.klen + h.vlen);
        }
        if (c->stop) {
            return 0;
        }
        if (!f.full) {
            emit_own_before(c, NULL, 0);
            return 0;
        }
    }
}

static int scan(kv_txn *t, const void *start, size_t slen, const void *end, size_t elen,
                int reverse, size_t limit, kv_scan_fn fn, void *ud, int peek) {
    if ((start == NULL && slen > 0) || fn == NULL) {
        return aj__err(AJ_EINVAL, "kv_scan: missing start key or callback");
    }
    kv_scan_ctx c = {
        .t = t,
        .lo = start != NULL ? start : kv_empty,
        .lolen = slen,
        .hi = end,
        .hilen = end != NULL ? elen : 0,
        .reverse = reverse != 0,
        .limit = limit,
        .fn = fn,
        .ud = ud,
        .peek = peek,
    };
    if (c.hi != NULL && kv__key_cmp(c.lo, c.lolen, c.hi, c.hilen) >= 0) {
        return 0;
    }
    /* Each nesting level needs its own buffers: a callback may scan again. */
    kv_scanmem local = {AJ_BUF_INIT, AJ_BUF_INIT};
    kv_scanmem *m = t->scan_depth < KV_SCAN_NEST_CACHED ? &t->smem[t->scan_depth] : &local;
    t->scan_depth++;
    int rc = scan_run(&c, m);
    t->scan_depth--;
    aj__buf_free(&local.batch);
    aj__buf_free(&local.cont);
    return rc;
}

int kv_scan(kv_txn *t, const void *start, size_t slen, const void *end, size_t elen, int reverse,
            size_t limit, kv_scan_fn fn, void *ud) {
    return scan(t, start, slen, end, elen, reverse, limit, fn, ud, 0);
}

static int scan_prefix(kv_txn *t, const void *prefix, size_t plen, int reverse, size_t limit,
                       kv_scan_fn fn, void *ud, int peek) {
    if (prefix == NULL && plen > 0) {
        return aj__err(AJ_EINVAL, "kv_scan_prefix: missing prefix");
    }
    /* The end of the prefix range: the prefix without its trailing 0xff bytes, last byte + 1.
     * A prefix of only 0xff bytes (or none) runs to the end of the keyspace. */
    const uint8_t *p = prefix;
    size_t n = plen;
    while (n > 0 && p[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        return scan(t, prefix, plen, NULL, 0, reverse, limit, fn, ud, peek);
    }
    uint8_t small[256];
    uint8_t *end = n <= sizeof small ? small : aj__malloc(n);
    if (end == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory scanning a prefix of %zu bytes", plen);
    }
    memcpy(end, p, n);
    end[n - 1]++;
    int rc = scan(t, prefix, plen, end, n, reverse, limit, fn, ud, peek);
    if (end != small) {
        aj__free(end);
    }
    return rc;
}

int kv_scan_prefix(kv_txn *t, const void *prefix, size_t plen, int reverse, size_t limit,
                   kv_scan_fn fn, void *ud) {
    return scan_prefix(t, prefix, plen, reverse, limit, fn, ud, 0);
}

static int count_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)version;
    (*(uint64_t *)ud)++;
    return 0;
}

int kv_count_prefix(kv_txn *t, const void *prefix, size_t plen, uint64_t *out) {
    *out = 0;
    return kv_scan_prefix(t, prefix, plen, 0, 0, count_cb, out);
}

int kv_peek_prefix(kv_txn *t, const void *prefix, size_t plen, size_t limit, kv_scan_fn fn,
                   void *ud) {
    return scan_prefix(t, prefix, plen, 0, limit, fn, ud, 1);
}

/* ---------------------------------------------------------------------------------------------
 * Commit
 * ------------------------------------------------------------------------------------------- */

static void fill_writes(const kv_node *n, kv_write *w, size_t *i) {
    while (n != NULL) {
        fill_writes(n->l, w, i);
        w[*i] = (kv_write){n->key, n->klen, n->val, n->vlen};
        (*i)++;
        n = n->r;
    }
}

static void fill_reads(const kv_node *n, kv_read *r, size_t *i) {
    while (n != NULL) {
        fill_reads(n->l, r, i);
        r[*i] = (kv_read){n->key, n->klen, n->version};
        (*i)++;
        n = n->r;
    }
}

static void async_done(void *ud, int rc) {
    kv_txn *t = ud;
    kv_done_fn fn = t->done;
    void *fud = t->done_ud;
    txn_free(t);
    if (fn != NULL) {
        fn(fud, rc);
    }
}

int kv_commit(kv_txn *t, kv_sync sync, kv_done_fn done, void *done_ud, uint64_t *out_version) {
    kv_store *s = t->s;
    close_snap(t);
    if (t->doomed) {
        txn_free(t);
        return aj__err(AJ_ECONFLICT, "a key expected at one version was read at another");
    }
    if (t->n_writes == 0 && !t->has_expect) {
        /* Read-only: its reads came from one consistent snapshot, so it serializes there. */
        txn_free(t);
        if (sync != KV_ASYNC && out_version != NULL) {
            *out_version = 0;
        }
        if (sync == KV_ASYNC && done != NULL) {
            done(done_ud, 0);
        }
        return 0;
    }
    /* Expectation-only commits must still be validated, so they carry their read set. */
    kv_write *w = arena_alloc(t, t->n_writes * sizeof *w);
    kv_read *r = arena_alloc(t, t->n_reads * sizeof *r);
    if (w == NULL || r == NULL) {
        txn_free(t);
        return aj__err(AJ_ENOMEM, "out of memory preparing a commit");
    }
    size_t nw = 0, nr = 0;
    fill_writes(t->wroot, w, &nw);
    fill_reads(t->rroot, r, &nr);
    assert(nw == t->n_writes && nr == t->n_reads);
    t->commit = (kv_commit_req){
        .reads = r,
        .n_reads = nr,
        .writes = w,
        .n_writes = nw,
        .sync = sync,
    };
    if (sync != KV_ASYNC) {
        int rc = s->ops->commit(s->st, &t->commit);
        if (rc == 0 && out_version != NULL) {
            *out_version = t->commit.out_version;
        }
        txn_free(t);
        return rc;
    }
    t->done = done;
    t->done_ud = done_ud;
    t->commit.done = async_done;
    t->commit.done_ud = t;
    int rc = s->ops->commit(s->st, &t->commit);
    if (rc != 0) {
        txn_free(t); /* not handed off: done will not run */
    }
    /* On success t may already be freed (the backend may finish before returning). */
    return rc;
}
