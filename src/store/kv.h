/*
 * kv.h — the storage interface: an ordered, transactional key-value store.
 *
 * Keys are byte strings ordered by memcmp (a shorter key sorts before its extensions). Values are
 * byte strings. Every stored key carries a version: a positive integer that changes on every write
 * of the key; an absent key has version 0.
 *
 * Transactions are optimistic. Reads see one consistent snapshot of the committed store, merged
 * with the transaction's own writes. The read set (every key read with its version, including the
 * keys a scan returned) is validated at commit: if any of those keys changed since, the commit
 * fails with AJ_ECONFLICT and writes nothing. Phantoms (keys inserted into a scanned range) are
 * detected only when the backend declares KV_CAP_RANGE_CONFLICTS.
 *
 * A kv_store is safe to use from many threads; a kv_txn belongs to one thread at a time.
 *
 * Backends implement kv_backend_ops; the transaction layer (kv.c) is shared by all of them, so
 * read-your-writes, scan merging, limits and read-set bookkeeping behave identically everywhere.
 */
#ifndef AJ_KV_H
#define AJ_KV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KV_OPS_VERSION 1

/* Capability bits a backend declares. */
#define KV_CAP_RANGE_CONFLICTS (1u << 0) /* scans are validated against inserts (no phantoms) */
#define KV_CAP_MULTI_PROCESS (1u << 1)   /* several processes may open the same store */
#define KV_CAP_DURABLE (1u << 2)         /* commits survive a process crash */
#define KV_CAP_BACKUP (1u << 3)          /* backup() is implemented */
/* A KV_APPLIED commit skips the durable sync (kv_commit_stats counts no sync for it). Without
 * this bit KV_APPLIED commits exactly like KV_SYNC (PostgreSQL: a claim a server crash could
 * lose while its worker elsewhere keeps running would break fencing). */
#define KV_CAP_APPLIED_NOSYNC (1u << 4)

/* Limits a backend declares; the transaction layer enforces them (AJ_ETOOBIG). */
typedef struct kv_limits {
    size_t max_key;       /* bytes in one key */
    size_t max_value;     /* bytes in one value */
    size_t max_txn_ops;   /* puts and deletes in one transaction */
    size_t max_txn_bytes; /* key and value bytes written by one transaction */
} kv_limits;

/* Durability of one commit. */
typedef enum kv_sync {
    KV_SYNC = 0,  /* return after the commit is durable */
    KV_ASYNC = 1, /* return once handed to the committer; a crash may lose it */
    /* Return once committed and visible to every process, validated like KV_SYNC, but made
     * durable only by the next durable commit (or checkpoint): a process crash keeps it, a power
     * loss or kernel crash may lose it — together with everything that came after it, since
     * commits become durable in order. For writes whose loss is harmless when every later
     * commit is lost with them: a claim (the job is simply ready again after the power loss that
     * also stopped its worker). */
    KV_APPLIED = 2,
} kv_sync;

/* One entry of a commit's read set or write set, as passed to a backend. */
typedef struct kv_read {
    const uint8_t *key;
    size_t klen;
    uint64_t version; /* 0: the key was absent */
} kv_read;

typedef struct kv_write {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val; /* NULL: delete */
    size_t vlen;
} kv_write;

/* Called once for an asynchronous commit, from the committer's thread, with its result. */
typedef void (*kv_done_fn)(void *ud, int rc);

typedef struct kv_commit_req {
    const kv_read *reads;
    size_t n_reads;
    const kv_write *writes; /* sorted by key, each key once */
    size_t n_writes;
    kv_sync sync;
    kv_done_fn done; /* KV_ASYNC only; may be NULL */
    void *done_ud;
    /* Written by the backend for KV_SYNC commits: the version given to every written key. */
    uint64_t out_version;
} kv_commit_req;

/* Called for each entry of a scan. Return nonzero to stop. Pointers valid during the call. */
typedef int (*kv_scan_fn)(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version);

/* The vtable a backend provides. `st` is the backend's state, `snap` a read snapshot. */
typedef struct kv_backend_ops {
    uint32_t ops_version; /* KV_OPS_VERSION */
    const char *name;     /* "mem", "sqlite" */
    void (*close)(void *st);
    /* Opens a consistent read snapshot of committed state. */
    int (*snap_open)(void *st, void **snap);
    void (*snap_close)(void *st, void *snap);
    /* Reads one key: 0 and (*val, *vlen, *version) — val borrowed until the next call on this
     * snapshot — or AJ_ENOTFOUND. */
    int (*snap_get)(void *st, void *snap, const uint8_t *key, size_t klen, const uint8_t **val,
                    size_t *vlen, uint64_t *version);
    /* Calls fn for keys in [start, end) (end NULL: no upper bound) in order, or in reverse order
     * when `reverse`, until fn returns nonzero. */
    int (*snap_scan)(void *st, void *snap, const uint8_t *start, size_t slen, const uint8_t *end,
                     size_t elen, int reverse, kv_scan_fn fn, void *ud);
    /* Validates the read set and applies the writes atomically: 0, AJ_ECONFLICT, or an error
     * (AJ_EIO, AJ_EFULL, ...) after which nothing was written. For KV_ASYNC, returns 0 once the
     * commit is handed off and later calls c->done exactly once with the result (c and everything
     * it points to stay valid until then); a nonzero return means it was not handed off and done
     * will not be called. */
    int (*commit)(void *st, kv_commit_req *c);
    /* A counter that changes whenever any process commits to the store. Cheap. */
    uint64_t (*change_seq)(void *st);
    /* Waits until change_seq differs from `seen` or timeout_ms passes (negative: no timeout). */
    void (*wait_change)(void *st, uint64_t seen, int64_t timeout_ms);
    /* Writes a consistent copy to `path` (KV_CAP_BACKUP). */
    int (*backup)(void *st, const char *path);
    /* Statistics: commit batches, durable syncs, and a histogram of transactions per batch. */
    void (*commit_stats)(void *st, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                         size_t n_hist);
} kv_backend_ops;

typedef struct kv_store kv_store;
typedef struct kv_txn kv_txn;

#define KV_URL_PATH_MAX 4096 /* bytes in the path of a "sqlite:PATH?..." URL with parameters */
#define KV_URL_VFS_MAX 64    /* bytes in the name of an SQLite VFS given as ?vfs=NAME */

typedef struct kv_open_opts {
    int relaxed;     /* SQLite: synchronous=NORMAL instead of FULL */
    const char *vfs; /* SQLite: a registered VFS to open the file through; NULL: the default */
} kv_open_opts;

/* Opens "sqlite:PATH", "sqlite:PATH?vfs=NAME", "mem:", or a PostgreSQL URL: "postgres://..." or
 * "postgresql://..." in libpq's URI form (unset parts come from the PG* environment variables,
 * "postgres://" alone takes everything from them), plus aj_ options in the query string
 * (kv_postgres.c). */
int kv_open(kv_store **out, const char *url, const kv_open_opts *opts);
void kv_close(kv_store *s);
const char *kv_backend_name(const kv_store *s);
uint32_t kv_caps(const kv_store *s);
const kv_limits *kv_store_limits(const kv_store *s);
uint64_t kv_change_seq(kv_store *s);
void kv_wait_change(kv_store *s, uint64_t seen, int64_t timeout_ms);
int kv_backup(kv_store *s, const char *path);
void kv_commit_stats(kv_store *s, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                     size_t n_hist);

/* Wraps backend state in a store. Used by backend constructors. On failure `st` is closed. */
int kv__store_new(kv_store **out, const kv_backend_ops *ops, void *st, uint32_t caps,
                  const kv_limits *limits);
/* The backend state of `s` if its backend is `ops`, else NULL (for backend-specific hooks). */
void *kv__store_state(kv_store *s, const kv_backend_ops *ops);
/* The order of keys every backend keeps: memcmp order, a shorter key before its extensions.
 * Inline: the in-memory backend and the transaction's write set compare on every step. */
static inline int kv__key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return al < bl ? -1 : al > bl;
}

/* A well-mixed 64-bit hash of a key (the transaction layer's treap priority; the PostgreSQL
 * backend's advisory lock ids). */
uint64_t kv__key_hash(const uint8_t *key, size_t klen);

/* Backend constructors. */
int kv_mem_open(kv_store **out);
int kv_sqlite_open(kv_store **out, const char *path, const kv_open_opts *opts);
int kv_postgres_open(kv_store **out, const char *url, const kv_open_opts *opts);

/* --- Transactions --- */
int kv_begin(kv_store *s, kv_txn **out);
/* Reads a key: 0 with the value (borrowed until the transaction ends, even if the key is written
 * or read again later in the transaction) or AJ_ENOTFOUND. The key and its version join the read
 * set. kv_get may be called from inside a kv_scan callback. */
int kv_get(kv_txn *t, const void *key, size_t klen, const uint8_t **val, size_t *vlen);
/* Reads a key like kv_get, but the read does NOT join the read set: a later change of the key
 * does not make the commit conflict. For facts the transaction may act on even when they are a
 * little stale, where a conflict would cost more than acting on an old value (a workflow's state
 * read by an arrival for it: core/wf_wakeq.h). Sees the transaction's own writes. */
int kv_peek(kv_txn *t, const void *key, size_t klen, const uint8_t **val, size_t *vlen);
/* Scans [start, end) (end NULL: to the end of the keyspace), at most `limit` entries (0: no
 * limit), merged with this transaction's writes. Returned keys join the read set. Entries that come
 * from the transaction's own writes carry version 0. `fn` may use the same transaction (get, put,
 * del, nested scans); keys it writes ahead of the scan position are seen by the scan. Returns 0
 * (also when fn stopped the scan) or an error. */
int kv_scan(kv_txn *t, const void *start, size_t slen, const void *end, size_t elen, int reverse,
            size_t limit, kv_scan_fn fn, void *ud);
/* Like kv_scan over every key starting with `prefix`. */
int kv_scan_prefix(kv_txn *t, const void *prefix, size_t plen, int reverse, size_t limit,
                   kv_scan_fn fn, void *ud);
/* The number of keys starting with `prefix`, into *out (a scan: the keys join the read set). */
int kv_count_prefix(kv_txn *t, const void *prefix, size_t plen, uint64_t *out);
/* Like kv_scan_prefix (forward), but the keys returned do not join the read set (as kv_peek). */
int kv_peek_prefix(kv_txn *t, const void *prefix, size_t plen, size_t limit, kv_scan_fn fn,
                   void *ud);
/* Buffers a write (copied). AJ_ETOOBIG when over a limit. */
int kv_put(kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
int kv_del(kv_txn *t, const void *key, size_t klen);
/* Declares that the transaction depends on `key` having `version` without reading it (for a
 * record whose version the caller learned from an earlier commit). */
int kv_expect(kv_txn *t, const void *key, size_t klen, uint64_t version);
/* Commits and frees the transaction. For KV_ASYNC, `done` (may be NULL) receives the result:
 * when kv_commit returns 0 it is called exactly once, from the committer's thread or (memory
 * backend, nothing to write) before kv_commit returns; when kv_commit returns an error it is not
 * called. `done` must not make a KV_SYNC commit. *out_version (may be NULL) receives the version
 * written keys got (KV_SYNC only; 0 when nothing was written). */
int kv_commit(kv_txn *t, kv_sync sync, kv_done_fn done, void *done_ud, uint64_t *out_version);
/* Abandons and frees the transaction. Accepts NULL. */
void kv_abort(kv_txn *t);
/* Number of writes buffered, and bytes they hold. */
size_t kv_txn_ops(const kv_txn *t);
size_t kv_txn_bytes(const kv_txn *t);

/* Lowers a store's per-transaction limits (max_txn_ops, max_txn_bytes; larger values are
 * ignored), before it is shared with other threads: how tests make a modest graph need the
 * batching a backend with a small limit (etcd: 128 operations) forces. */
void kv_lower_limits(kv_store *s, const kv_limits *limits);

/* --- Fault injection (memory backend) --- */

/* Makes the Nth storage operation from now (1 = the next) fail with AJ_EIO; 0 disarms. Every
 * snap_get, snap_scan and commit counts as one operation. */
void kv_mem_fail_at(kv_store *s, uint64_t n);
/* The number of operations counted so far. */
uint64_t kv_mem_ops(kv_store *s);
/* A full disk: while `full` is nonzero every commit that writes something fails with AJ_EFULL
 * and leaves the store unchanged; reads and commits that only read go on working. */
void kv_mem_set_full(kv_store *s, int full);
/* Simulates a crash: everything not yet durable (asynchronous commits since the last
 * synchronous one) is dropped. */
void kv_mem_crash(kv_store *s);
/* Makes the next `n` commits fail with AJ_ECONFLICT. */
void kv_mem_inject_conflicts(kv_store *s, uint64_t n);
/* The ambiguous commit of a networked store: the Nth commit that writes, from now (1 = the next),
 * is applied and then reported as AJ_EAMBIGUOUS; 0 disarms. */
void kv_mem_lose_outcome_at(kv_store *s, uint64_t n);

/* --- Fault injection (SQLite backend) --- */

/* Caps the database at `pages` pages (PRAGMA max_page_count on the writer connection), so that
 * tests can fill the "disk"; 0 restores the default. Returns 0 or AJ_EIO. */
int kv_sqlite_max_pages(kv_store *s, uint64_t pages);
/* Tests: the nth savepoint release or rollback from now on (1: the next), in any SQLite store
 * of the process, fails as if SQLite had reported an I/O error (0: none). */
void kv_sqlite_fail_savepoint_at(int nth);

/* --- Fault injection (PostgreSQL backend) --- */

/* Makes the next commit batch lose its connection at COMMIT: mode 1 after sending COMMIT (the
 * server commits; the backend must learn that), mode 2 before (nothing commits; the backend must
 * learn that too). `fn` (may be NULL) runs on the committer thread right after the cut, before
 * the outcome is sought (a test stops the server there). */
void kv_postgres_cut_at_commit(kv_store *s, int mode, void (*fn)(void *ud), void *ud);

#endif /* AJ_KV_H */
