/*
 * kv_sqlite.c — the SQLite backend: one file, WAL mode, group commit, safe for several processes.
 *
 * Storage: `kv(k BLOB PRIMARY KEY, v BLOB NOT NULL, ver INTEGER NOT NULL) WITHOUT ROWID` holds the
 * keys (SQLite orders BLOBs by memcmp, shorter first: the order kv.h promises); `meta` holds
 * `format_version` (SQ_FORMAT) and `version`, the global commit counter. Upgrade rule: a store
 * whose format_version is newer than SQ_FORMAT is refused unchanged (AJ_EFORMAT); an older one
 * would be migrated here, inside one write transaction, before use.
 *
 * Reads: a pool of reader connections. A snapshot is one connection inside a deferred BEGIN, so
 * every read of a transaction sees the WAL snapshot taken at its first read. Statements are
 * prepared once per connection and reused.
 *
 * Writes (group commit, commit_queue.c): kv_commit queues a request; one committer thread with its
 * own connection takes every queued request (up to SQ_BATCH_MAX or SQ_BATCH_BYTES), runs BEGIN
 * IMMEDIATE, reads the counter once (new version = counter + 1 for the whole batch), then validates
 * each request's read set in order against the state that includes the earlier requests of the
 * batch (so conflicts inside a batch are caught like any other) and applies its writes inside a
 * SAVEPOINT, so a failing request is rolled back alone. One COMMIT, so one fsync, serves the whole
 * batch. KV_SYNC callers sleep until their batch is done; KV_ASYNC callers return at once and are
 * told through `done` on the committer thread. KV_APPLIED callers sleep like KV_SYNC ones, but a
 * batch made of KV_APPLIED requests only commits with synchronous=NORMAL: no fsync, the next
 * durable COMMIT covers it. A failed COMMIT fails every request of its batch and leaves the file as
 * it was; the next batch is tried normally, so the store resumes when space returns.
 *
 * Changes: commits of this process bump a counter and wake waiters at once; commits of other
 * processes are noticed by polling `PRAGMA data_version` on a dedicated connection every
 * SQ_POLL_US while anybody waits (and from change_seq when its last poll is older than that).
 *
 * Reader connections are capped (SQ_READERS_MAX): one thread must not hold that many
 * transactions with reads open at once, or it waits for itself.
 *
 * Invariants: the writer connection is used only under `wmu` (by the committer, or by open and
 * test hooks); a reader connection belongs to one snapshot at a time; the poll connection is used
 * only under `pollmu`. Mutex order: wmu, then mu; chmu and pollmu are never held with another.
 *
 * Layer: src/store, a backend below kv.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/commit_queue.h"
#include "store/kv.h"
#include "store/kv_sqlite_cause.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/file_stage.h"
#include "util/hist.h"
#include "util/mem.h"

#define SQ_FORMAT 1                          /* the store format this code reads and writes */
#define SQ_MAX_KEY 4096                      /* bytes in one key */
#define SQ_MAX_VALUE ((size_t)64 << 20)      /* bytes in one value */
#define SQ_MAX_TXN_OPS 1000000               /* writes in one transaction */
#define SQ_MAX_TXN_BYTES ((size_t)256 << 20) /* bytes written by one transaction */
#define SQ_BATCH_MAX 4096                    /* transactions in one commit batch */
#define SQ_BATCH_BYTES ((size_t)64 << 20)    /* bytes one batch writes (at least one txn) */
#define SQ_QUEUE_MAX 16384                   /* queued commits before committers must wait */
#define SQ_READERS_MAX 64                    /* reader connections, i.e. open snapshots */
#define SQ_BUSY_TIMEOUT_MS 10000             /* wait this long for another process's lock */
#define SQ_BUSY_SLEEP_US 500                 /* mean sleep between lock attempts */
#define SQ_POLL_US 2000                      /* data_version poll interval while waited on */
#define SQ_JOURNAL_LIMIT ((int64_t)64 << 20) /* WAL bytes kept after a checkpoint */
#define SQ_PAGES_UNLIMITED 0xfffffffeu       /* max_page_count that SQLite clamps to its max */

enum {
    ST_BEGIN,
    ST_BEGIN_IMM,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_GET,
    ST_VER,
    ST_SCAN_F,
    ST_SCAN_FE,
    ST_SCAN_R,
    ST_SCAN_RE,
    ST_PUT,
    ST_DEL,
    ST_CTR_GET,
    ST_CTR_SET,
    ST_DATA_VERSION,
    ST_COUNT
};

static const char *const sq_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_IMM] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT req",
    [ST_RELEASE] = "RELEASE req",
    [ST_ROLLBACK_TO] = "ROLLBACK TO req",
    [ST_GET] = "SELECT v, ver FROM kv WHERE k = ?1",
    [ST_VER] = "SELECT ver FROM kv WHERE k = ?1",
    [ST_SCAN_F] = "SELECT k, v, ver FROM kv WHERE k >= ?1 ORDER BY k",
    [ST_SCAN_FE] = "SELECT k, v, ver FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k",
    [ST_SCAN_R] = "SELECT k, v, ver FROM kv WHERE k >= ?1 ORDER BY k DESC",
    [ST_SCAN_RE] = "SELECT k, v, ver FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k DESC",
    [ST_PUT] = "INSERT OR REPLACE INTO kv(k, v, ver) VALUES (?1, ?2, ?3)",
    [ST_DEL] = "DELETE FROM kv WHERE k = ?1",
    [ST_CTR_GET] = "SELECT val FROM meta WHERE name = 'version'",
    [ST_CTR_SET] = "UPDATE meta SET val = ?1 WHERE name = 'version'",
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

typedef struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3_stmt *lent; /* the statement whose current row a snap_get result points into */
    struct sq_conn *next;
} sq_conn;

typedef struct sq_store {
    char *path;
    int relaxed;
    const char *vfs; /* the VFS named by the URL's ?vfs= (its registered name), or NULL */

    pthread_mutex_t wmu; /* the writer connection */
    sq_conn *writer;
    int writer_durable;          /* the writer's synchronous mode is FULL (not NORMAL) */
    char broken[AJ__ERRMSG_MAX]; /* why commits are refused (a COMMIT of unknown outcome), or "" */

    kv_cq *cq; /* group commit: the queue and its committer thread */

    pthread_mutex_t mu; /* reader pool */
    pthread_cond_t reader_cv;
    sq_conn *free_readers;
    size_t n_readers; /* open reader connections, free or lent */

    pthread_mutex_t chmu; /* change notification */
    pthread_cond_t change_cv;
    pthread_cond_t poll_cv; /* wakes the poller */
    atomic_uint_fast64_t change;
    int waiters;
    int poll_stop;
    pthread_t poller;
    int poller_started;

    pthread_mutex_t pollmu; /* the poll connection */
    sq_conn *pollc;
    int64_t last_dv;
    atomic_int_fast64_t last_poll_us;
} sq_store;

static const kv_backend_ops sq_ops;
static const uint8_t sq_empty[1];

/* ---------------------------------------------------------------------------------------------
 * Connections and statements
 * ------------------------------------------------------------------------------------------- */

static int sq_code(int rc) {
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return AJ_EFULL;
    case SQLITE_NOMEM:
        return AJ_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return AJ_ECORRUPT;
    case SQLITE_TOOBIG:
        return AJ_ETOOBIG;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return AJ_EBUSY; /* after SQ_BUSY_TIMEOUT_MS of waiting: worth retrying later */
    default:
        return AJ_EIO;
    }
}

/* Sets the error message from an SQLite failure on the store `path` and returns the matching
 * AJ_E* code. When the file system shows the real cause (a full disk, a directory, -wal or -shm
 * file this user cannot write), the message leads with it: SQLite's own text then names only the
 * effect ("disk I/O error", "attempt to write a readonly database"). */
static int sq_err_at(sqlite3 *db, const char *path, int rc, const char *what) {
    const char *detail = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int ext = db != NULL ? sqlite3_extended_errcode(db) : rc;
    char cause[AJ__ERRMSG_MAX];
    int code =
        kv__sqlite_cause(path, ext, db != NULL ? sqlite3_system_errno(db) : 0, cause, sizeof cause);
    if (code != 0) {
        return aj__err(code, "%s: %s (sqlite error %d: %s)", what, cause, ext, detail);
    }
    return aj__err(sq_code(rc), "%s: %s (sqlite error %d)", what, detail, rc);
}

/* sq_err_at for the store the connection `db` has open. */
static int sq_err(sqlite3 *db, int rc, const char *what) {
    return sq_err_at(db, db != NULL ? sqlite3_db_filename(db, "main") : NULL, rc, what);
}

static void conn_close(sq_conn *c) {
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(c->st[i]);
    }
    sqlite3_close_v2(c->db);
    aj__free(c);
}

/* Waits for another process's lock. SQLite's own timeout handler sleeps up to 100 ms at a time,
 * so under contention one process can lose the lock for seconds while others keep taking it —
 * long enough to let leases expire. Short sleeps with jitter keep the waits fair; the total is
 * still bounded by SQ_BUSY_TIMEOUT_MS. */
static int sq_busy(void *ud, int count) {
    (void)ud;
    int64_t slept_us = (int64_t)count * SQ_BUSY_SLEEP_US;
    if (slept_us >= (int64_t)SQ_BUSY_TIMEOUT_MS * 1000) {
        return 0;
    }
    struct timespec ts = {0,
                          (long)(SQ_BUSY_SLEEP_US / 2 + (count * 7919) % SQ_BUSY_SLEEP_US) * 1000};
    nanosleep(&ts, NULL);
    return 1;
}

static int conn_open(const sq_store *ss, sq_conn **out) {
    sq_conn *c = aj__calloc(1, sizeof *c);
    if (c == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory opening a connection");
    }
    /* NOMUTEX: each connection is used by one thread at a time (see the invariants above). */
    int rc =
        sqlite3_open_v2(ss->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, ss->vfs);
    if (rc != SQLITE_OK) {
        char what[AJ__ERRMSG_MAX];
        snprintf(what, sizeof what, "cannot open store '%s'", ss->path);
        int code = sq_err_at(c->db, ss->path, rc, what);
        conn_close(c);
        return code == AJ_EFULL ? code : AJ_EIO;
    }
    sqlite3_busy_handler(c->db, sq_busy, NULL);
    /* The last connection to close would checkpoint the WAL into the database: two fsyncs at the
     * exit of every `aj` command, and a WAL restart with two more at the next one's first write.
     * Committed data is in the WAL either way; SQLite's automatic checkpoint (every ~1000 pages)
     * keeps the WAL bounded. */
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    *out = c;
    return 0;
}

static sqlite3_stmt *stmt(sq_conn *c, int which, int *err) {
    if (c->st[which] == NULL) {
        int rc = sqlite3_prepare_v3(c->db, sq_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->st[which], NULL);
        if (rc != SQLITE_OK) {
            *err = sq_err(c->db, rc, "preparing a statement");
            return NULL;
        }
    }
    return c->st[which];
}

/* Runs a statement without results (BEGIN, COMMIT...): an SQLite result code. */
static int run(sq_conn *c, int which) {
    int err = 0;
    sqlite3_stmt *s = stmt(c, which, &err);
    if (s == NULL) {
        return SQLITE_ERROR;
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Binds a blob; an empty one must not be bound as NULL, which compares as nothing. */
static int bind_blob(sqlite3_stmt *s, int i, const uint8_t *p, size_t n) {
    if (n == 0) {
        return sqlite3_bind_zeroblob(s, i, 0);
    }
    return sqlite3_bind_blob64(s, i, p, (sqlite3_uint64)n, SQLITE_STATIC);
}

/* Runs SQL text on a connection (setup only). */
static int exec_sql(sq_conn *c, const char *sql, const char *what) {
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_err(c->db, rc, what);
}

/* Runs a one-value query (setup only): 0 with *out, AJ_ENOTFOUND without a row, or an error. */
static int query_int(sq_conn *c, const char *sql, int64_t *out, const char **text) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return rc;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        if (text != NULL) {
            /* Only journal_mode asks for text; its values are short and static in SQLite. */
            const unsigned char *t = sqlite3_column_text(s, 0);
            *text = t != NULL && strcmp((const char *)t, "wal") == 0 ? "wal" : "other";
        }
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------------------------- */

static int reader_take(sq_store *ss, sq_conn **out) {
    pthread_mutex_lock(&ss->mu);
    while (ss->free_readers == NULL && ss->n_readers >= SQ_READERS_MAX) {
        pthread_cond_wait(&ss->reader_cv, &ss->mu);
    }
    sq_conn *c = ss->free_readers;
    if (c != NULL) {
        ss->free_readers = c->next;
    } else {
        ss->n_readers++; /* reserved; opened outside the lock */
    }
    pthread_mutex_unlock(&ss->mu);
    if (c == NULL) {
        int rc = conn_open(ss, &c);
        if (rc != 0) {
            pthread_mutex_lock(&ss->mu);
            ss->n_readers--;
            pthread_cond_signal(&ss->reader_cv);
            pthread_mutex_unlock(&ss->mu);
            return rc;
        }
    }
    *out = c;
    return 0;
}

static void reader_give(sq_store *ss, sq_conn *c) {
    pthread_mutex_lock(&ss->mu);
    c->next = ss->free_readers;
    ss->free_readers = c;
    pthread_cond_signal(&ss->reader_cv);
    pthread_mutex_unlock(&ss->mu);
}

static int sq_snap_open(void *st, void **out) {
    sq_store *ss = st;
    sq_conn *c;
    int rc = reader_take(ss, &c);
    if (rc != 0) {
        return rc;
    }
    /* A deferred BEGIN: the snapshot is taken by the first read and held until snap_close. */
    rc = run(c, ST_BEGIN);
    if (rc != SQLITE_OK) {
        int code = sq_err(c->db, rc, "opening a read snapshot");
        reader_give(ss, c);
        return code;
    }
    *out = c;
    return 0;
}

static void sq_snap_close(void *st, void *snap) {
    sq_store *ss = st;
    sq_conn *c = snap;
    if (c->lent != NULL) {
        sqlite3_reset(c->lent);
        c->lent = NULL;
    }
    /* Ending a read-only transaction cannot lose anything; a failure leaves the connection in
     * autocommit mode anyway, which is all the pool needs. */
    if (run(c, ST_ROLLBACK) != SQLITE_OK) {
        assert(sqlite3_get_autocommit(c->db));
    }
    reader_give(ss, c);
}

static int sq_snap_get(void *st, void *snap, const uint8_t *key, size_t klen, const uint8_t **val,
                       size_t *vlen, uint64_t *version) {
    (void)st;
    sq_conn *c = snap;
    if (c->lent != NULL) {
        sqlite3_reset(c->lent);
        c->lent = NULL;
    }
    int err = 0;
    sqlite3_stmt *s = stmt(c, ST_GET, &err);
    if (s == NULL) {
        return err;
    }
    bind_blob(s, 1, key, klen);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(s, 0);
        *vlen = (size_t)sqlite3_column_bytes(s, 0);
        *val = v != NULL ? v : sq_empty;
        *version = (uint64_t)sqlite3_column_int64(s, 1);
        c->lent = s; /* the row stays valid until the next call on this snapshot */
        return 0;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) {
        return AJ_ENOTFOUND;
    }
    return sq_err(c->db, rc, "reading a key");
}

static int sq_snap_scan(void *st, void *snap, const uint8_t *start, size_t slen, const uint8_t *end,
                        size_t elen, int reverse, kv_scan_fn fn, void *ud) {
    (void)st;
    sq_conn *c = snap;
    if (c->lent != NULL) {
        sqlite3_reset(c->lent);
        c->lent = NULL;
    }
    int which =
        reverse ? (end != NULL ? ST_SCAN_RE : ST_SCAN_R) : (end != NULL ? ST_SCAN_FE : ST_SCAN_F);
    int err = 0;
    sqlite3_stmt *s = stmt(c, which, &err);
    if (s == NULL) {
        return err;
    }
    bind_blob(s, 1, start != NULL ? start : sq_empty, slen);
    if (end != NULL) {
        bind_blob(s, 2, end, elen);
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *k = sqlite3_column_blob(s, 0);
        size_t kl = (size_t)sqlite3_column_bytes(s, 0);
        const uint8_t *v = sqlite3_column_blob(s, 1);
        size_t vl = (size_t)sqlite3_column_bytes(s, 1);
        uint64_t ver = (uint64_t)sqlite3_column_int64(s, 2);
        if (fn(ud, k != NULL ? k : sq_empty, kl, v != NULL ? v : sq_empty, vl, ver) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    int code = rc == SQLITE_DONE ? 0 : sq_err(c->db, rc, "scanning keys");
    sqlite3_reset(s);
    return code;
}

/* ---------------------------------------------------------------------------------------------
 * Change notification
 * ------------------------------------------------------------------------------------------- */

static void bump_change(sq_store *ss) {
    pthread_mutex_lock(&ss->chmu);
    atomic_fetch_add(&ss->change, 1);
    pthread_cond_broadcast(&ss->change_cv);
    pthread_mutex_unlock(&ss->chmu);
}

/* Checks data_version once (the caller holds pollmu); returns 1 if another connection committed
 * since the last check. */
static int poll_locked(sq_store *ss) {
    int err = 0, changed = 0;
    sqlite3_stmt *s = stmt(ss->pollc, ST_DATA_VERSION, &err);
    if (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
        int64_t dv = sqlite3_column_int64(s, 0);
        changed = dv != ss->last_dv;
        ss->last_dv = dv;
    }
    if (s != NULL) {
        sqlite3_reset(s);
    }
    atomic_store(&ss->last_poll_us, aj__mono_us());
    return changed;
}

static void *poller_main(void *arg) {
    sq_store *ss = arg;
    pthread_mutex_lock(&ss->chmu);
    while (!ss->poll_stop) {
        if (ss->waiters == 0) {
            pthread_cond_wait(&ss->poll_cv, &ss->chmu); /* nobody waits: no polling at all */
            continue;
        }
        pthread_mutex_unlock(&ss->chmu);
        pthread_mutex_lock(&ss->pollmu);
        int changed = poll_locked(ss);
        pthread_mutex_unlock(&ss->pollmu);
        if (changed) {
            bump_change(ss);
        }
        pthread_mutex_lock(&ss->chmu);
        if (!ss->poll_stop && ss->waiters > 0) {
            struct timespec ts;
            aj__deadline_ts(&ts, SQ_POLL_US / 1000);
            pthread_cond_timedwait(&ss->poll_cv, &ss->chmu, &ts);
        }
    }
    pthread_mutex_unlock(&ss->chmu);
    return NULL;
}

static uint64_t sq_change_seq(void *st) {
    sq_store *ss = st;
    /* Keep the counter current for callers that only look, at most one poll per interval. */
    if (aj__mono_us() - atomic_load(&ss->last_poll_us) >= SQ_POLL_US &&
        pthread_mutex_trylock(&ss->pollmu) == 0) {
        int changed = poll_locked(ss);
        pthread_mutex_unlock(&ss->pollmu);
        if (changed) {
            bump_change(ss);
        }
    }
    return atomic_load(&ss->change);
}

static void sq_wait_change(void *st, uint64_t seen, int64_t timeout_ms) {
    sq_store *ss = st;
    struct timespec deadline;
    if (timeout_ms >= 0) {
        aj__deadline_ts(&deadline, timeout_ms);
    }
    pthread_mutex_lock(&ss->chmu);
    ss->waiters++;
    pthread_cond_signal(&ss->poll_cv);
    while (atomic_load(&ss->change) == seen) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&ss->change_cv, &ss->chmu);
        } else if (pthread_cond_timedwait(&ss->change_cv, &ss->chmu, &deadline) != 0) {
            break;
        }
    }
    ss->waiters--;
    pthread_mutex_unlock(&ss->chmu);
}

/* ---------------------------------------------------------------------------------------------
 * Group commit
 * ------------------------------------------------------------------------------------------- */

/* A fault tests inject (kv_sqlite_fail_savepoint_at): the Nth savepoint release or rollback
 * from then on fails as if SQLite had reported an I/O error. Process-wide; 0 in every real run. */
enum { SQ_FAULT_SAVEPOINT };
static atomic_int sq_savepoint_countdown;

static int sq_fault(int what) {
    (void)what;
    int v = atomic_load(&sq_savepoint_countdown);
    while (v > 0 && !atomic_compare_exchange_weak(&sq_savepoint_countdown, &v, v - 1)) {
    }
    return v == 1;
}

void kv_sqlite_fail_savepoint_at(int nth) {
    atomic_store(&sq_savepoint_countdown, nth);
}

/* Checks a request's read set against the current state: 0, AJ_ECONFLICT or an error. */
static int validate(sq_conn *c, const kv_commit_req *cm) {
    int err = 0;
    sqlite3_stmt *s = cm->n_reads > 0 ? stmt(c, ST_VER, &err) : NULL;
    if (cm->n_reads > 0 && s == NULL) {
        return err;
    }
    for (size_t i = 0; i < cm->n_reads; i++) {
        const kv_read *r = &cm->reads[i];
        bind_blob(s, 1, r->key, r->klen);
        int rc = sqlite3_step(s);
        uint64_t cur = 0;
        if (rc == SQLITE_ROW) {
            cur = (uint64_t)sqlite3_column_int64(s, 0);
        } else if (rc != SQLITE_DONE) {
            int code = sq_err(c->db, rc, "validating a read");
            sqlite3_reset(s);
            return code;
        }
        sqlite3_reset(s);
        if (cur != r->version) {
            return AJ_ECONFLICT;
        }
    }
    return 0;
}

/* Applies a request's writes with version `ver`; a failure leaves nothing of them behind. When
 * that cannot be made sure — the savepoint could not be rolled back or released, so the
 * request's writes may still be in the transaction — *whole is set: the whole batch must fail,
 * or a request reported as failed would commit. */
static int apply(sq_conn *c, const kv_commit_req *cm, uint64_t ver, int *whole) {
    /* One statement is atomic by itself; several need a savepoint to be undone together. */
    int sp = cm->n_writes > 1;
    int rc = sp ? run(c, ST_SAVEPOINT) : SQLITE_OK;
    if (rc != SQLITE_OK) {
        *whole = 1; /* a savepoint half-opened is not worth reasoning about */
        return sq_err(c->db, rc, "starting a savepoint");
    }
    int err = 0;
    sqlite3_stmt *put = stmt(c, ST_PUT, &err);
    sqlite3_stmt *del = put != NULL ? stmt(c, ST_DEL, &err) : NULL;
    for (size_t i = 0; err == 0 && i < cm->n_writes; i++) {
        const kv_write *w = &cm->writes[i];
        sqlite3_stmt *s = w->val != NULL ? put : del;
        bind_blob(s, 1, w->key, w->klen);
        if (w->val != NULL) {
            bind_blob(s, 2, w->val, w->vlen);
            sqlite3_bind_int64(s, 3, (sqlite3_int64)ver);
        }
        rc = sqlite3_step(s);
        if (rc != SQLITE_DONE) {
            err = sq_err(c->db, rc, "writing a key");
        }
        sqlite3_reset(s);
    }
    if (sp && err != 0 && !sqlite3_get_autocommit(c->db)) {
        rc = sq_fault(SQ_FAULT_SAVEPOINT) ? SQLITE_IOERR : run(c, ST_ROLLBACK_TO);
        if (rc == SQLITE_OK) {
            rc = run(c, ST_RELEASE);
        }
        if (rc != SQLITE_OK) {
            *whole = 1;
            err = sq_err(c->db, rc, "rolling back a failed request's savepoint");
        }
    } else if (sp && err == 0) {
        rc = sq_fault(SQ_FAULT_SAVEPOINT) ? SQLITE_IOERR : run(c, ST_RELEASE);
        if (rc != SQLITE_OK) {
            *whole = 1;
            err = sq_err(c->db, rc, "releasing a savepoint");
        }
    }
    return err;
}

/* Sets the writer's synchronous mode for the next COMMIT (the caller holds wmu): FULL fsyncs
 * the WAL at COMMIT; NORMAL leaves it to the next FULL commit or checkpoint, which covers the
 * earlier frames too, since the WAL is written in order. */
static int set_durable(sq_store *ss, int durable) {
    if (ss->relaxed || ss->writer_durable == durable) {
        return 0;
    }
    int rc =
        exec_sql(ss->writer, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                 "switching the commit mode");
    if (rc == 0) {
        ss->writer_durable = durable;
    }
    return rc;
}

/* Runs one batch in one SQLite transaction (kv_cq_run_fn, on the committer thread). Returns 1 if
 * it committed writes; *synced says whether the COMMIT was durable. */
static int run_batch(void *ud, kv_cq_req *reqs, size_t n, int *synced) {
    sq_store *ss = ud;
    pthread_mutex_lock(&ss->wmu);
    sq_conn *c = ss->writer;
    int wrote = 0, err = 0;
    /* A batch of KV_APPLIED requests only commits without an fsync. */
    int durable = 0;
    for (size_t i = 0; i < n && !durable; i++) {
        durable = reqs[i].c->sync != KV_APPLIED;
    }
    *synced = durable && !ss->relaxed;
    if (ss->broken[0] != '\0') {
        kv_cq_fail_all(reqs, n, aj__err(AJ_EIO, "%s", ss->broken));
        goto out;
    }
    if ((err = set_durable(ss, durable)) != 0) {
        kv_cq_fail_all(reqs, n, err);
        goto out;
    }
    int rc = run(c, ST_BEGIN_IMM);
    if (rc != SQLITE_OK) {
        kv_cq_fail_all(reqs, n, sq_err(c->db, rc, "beginning a commit"));
        goto out;
    }
    sqlite3_stmt *s = stmt(c, ST_CTR_GET, &err);
    if (s == NULL) {
        goto fail;
    }
    rc = sqlite3_step(s);
    uint64_t ver = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) + 1 : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        err = rc == SQLITE_DONE
                  ? aj__err(AJ_ECORRUPT, "store '%s' lost its version counter", ss->path)
                  : sq_err(c->db, rc, "reading the version counter");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        kv_cq_req *r = &reqs[i];
        int whole = 0;
        int v = validate(c, r->c);
        if (v == 0 && r->c->n_writes > 0) {
            v = apply(c, r->c, ver, &whole);
        }
        if (whole) {
            err = v;
            goto fail; /* its writes cannot be told apart from the others': none commit */
        }
        if (v != 0) {
            kv_cq_req_fail(r, v);
            if (v != AJ_ECONFLICT && sqlite3_get_autocommit(c->db)) {
                /* SQLite rolled the whole transaction back (I/O error, disk full): the earlier
                 * requests of the batch are gone too. */
                kv_cq_fail_all(reqs, n, v);
                wrote = 0;
                goto out;
            }
            continue;
        }
        r->rc = 0;
        r->c->out_version = r->c->n_writes > 0 ? ver : 0;
        wrote |= r->c->n_writes > 0;
    }
    if (!wrote) {
        run(c, ST_ROLLBACK); /* nothing to make durable: no fsync */
        goto out;
    }
    s = stmt(c, ST_CTR_SET, &err);
    if (s == NULL) {
        goto fail;
    }
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ver);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        err = sq_err(c->db, rc, "advancing the version counter");
        goto fail;
    }
    int64_t t0 = aj__mono_us();
    rc = run(c, ST_COMMIT);
    kv_cq_note_commit_us(ss->cq, aj__mono_us() - t0);
    if ((rc & 0xff) == SQLITE_IOERR) {
        /* The WAL frames, commit frame included, may be on disk although the fsync (or a
         * write) failed: recovery after a restart would replay them. And after a failed fsync
         * the kernel may have dropped the dirty pages and cleared the error, so a later fsync
         * that succeeds proves nothing. The outcome is unknown; this handle commits nothing
         * more (reads go on). Reopening the store shows what was kept. */
        snprintf(ss->broken, sizeof ss->broken,
                 "store '%s' accepts no more commits from this process: a COMMIT failed with "
                 "an I/O error (%s), so whether it was kept is unknown; reopen the store",
                 ss->path, sqlite3_errmsg(c->db));
        err = aj__err(AJ_EIO,
                      "commit outcome unknown: the COMMIT failed with an I/O error (%s) after its "
                      "WAL frames may have been written; it may or may not be durable; store '%s' "
                      "accepts no more commits from this process",
                      sqlite3_errmsg(c->db), ss->path);
        goto fail;
    }
    if (rc != SQLITE_OK) {
        err = sq_err(c->db, rc, "committing");
        goto fail;
    }
    goto out;
fail:
    if (!sqlite3_get_autocommit(c->db)) {
        run(c, ST_ROLLBACK);
    }
    kv_cq_fail_all(reqs, n, err);
    wrote = 0;
out:
    pthread_mutex_unlock(&ss->wmu);
    return wrote;
}

static void bump_change_cb(void *ud) {
    bump_change(ud);
}

static int sq_commit(void *st, kv_commit_req *c) {
    sq_store *ss = st;
    return kv_cq_commit(ss->cq, c);
}

/* ---------------------------------------------------------------------------------------------
 * Backup, stats, close
 * ------------------------------------------------------------------------------------------- */

/* Removes what SQLite may have left beside a temporary backup file killed mid-copy: a hot
 * journal there would be rolled back into the next copy written under that name. */
static void remove_stale_companions(const char *tmp) {
    static const char *const suffixes[] = {"-journal", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char name[PATH_MAX + 16];
        snprintf(name, sizeof name, "%s%s", tmp, suffixes[i]);
        unlink(name);
    }
}

/* The copy is written under PATH.partial and renamed to PATH only when whole and synced
 * (util/file_stage.h): a backup killed on the way never leaves a file under PATH that reads as a
 * valid, emptier store, and its leftover PATH.partial is taken over by the next backup to PATH. */
static int sq_backup(void *st, const char *path) {
    sq_store *ss = st;
    aj_file_stage stage;
    int code = aj__stage_open(&stage, path);
    if (code != 0) {
        return aj__err_wrap(code, "backup");
    }
    remove_stale_companions(stage.tmp);
    sqlite3 *dst = NULL;
    /* The copy holds the same data as the store: owner-only, like the store itself (the stage
     * creates it 0600). */
    int rc = sqlite3_open_v2(stage.tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        code = aj__err(AJ_EIO, "cannot open backup '%s': %s", stage.tmp,
                       dst != NULL ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    }
    sq_conn *src = NULL;
    if (code == 0) {
        code = reader_take(ss, &src);
    }
    if (code == 0) {
        /* One step of -1 pages copies everything under one read transaction: a consistent copy
         * while commits go on. */
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", src->db, "main");
        if (b == NULL) {
            code = sq_err(dst, sqlite3_errcode(dst), "starting a backup");
        } else {
            rc = sqlite3_backup_step(b, -1);
            int frc = sqlite3_backup_finish(b);
            if (rc != SQLITE_DONE) {
                code = sq_err(dst, rc, "copying the store");
            } else if (frc != SQLITE_OK) {
                code = sq_err(dst, frc, "finishing a backup");
            }
        }
        reader_give(ss, src);
    }
    /* Closed before the rename: SQLite's descriptors and locks must not outlive the copy. */
    rc = sqlite3_close_v2(dst);
    if (code == 0 && rc != SQLITE_OK) {
        code = aj__err(AJ_EIO, "closing backup '%s': %s", stage.tmp, sqlite3_errstr(rc));
    }
    if (code != 0) {
        remove_stale_companions(stage.tmp); /* while the stage's lock is still ours */
        aj__stage_abort(&stage);
        return code;
    }
    code = aj__stage_publish(&stage, path);
    return code != 0 ? aj__err_wrap(code, "backup") : 0;
}

static void sq_commit_stats(void *st, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                            size_t n_hist) {
    sq_store *ss = st;
    kv_cq_stats(ss->cq, batches, syncs, hist, n_hist);
}

static void sq_free(sq_store *ss) {
    kv_cq_stop(ss->cq);
    if (ss->poller_started) {
        pthread_mutex_lock(&ss->chmu);
        ss->poll_stop = 1;
        pthread_cond_broadcast(&ss->poll_cv);
        pthread_mutex_unlock(&ss->chmu);
        pthread_join(ss->poller, NULL);
    }
    size_t freed = 0;
    while (ss->free_readers != NULL) {
        sq_conn *c = ss->free_readers;
        ss->free_readers = c->next;
        conn_close(c);
        freed++;
    }
    assert(freed == ss->n_readers && "a snapshot is still open at close");
    conn_close(ss->pollc);
    conn_close(ss->writer); /* last (no checkpoint on close: see conn_open) */
    pthread_cond_destroy(&ss->reader_cv);
    pthread_cond_destroy(&ss->change_cv);
    pthread_cond_destroy(&ss->poll_cv);
    pthread_mutex_destroy(&ss->mu);
    pthread_mutex_destroy(&ss->wmu);
    pthread_mutex_destroy(&ss->chmu);
    pthread_mutex_destroy(&ss->pollmu);
    aj__free(ss->path);
    aj__free(ss);
}

static void sq_close(void *st) {
    sq_free(st);
}

static const kv_backend_ops sq_ops = {
    .ops_version = KV_OPS_VERSION,
    .name = "sqlite",
    .close = sq_close,
    .snap_open = sq_snap_open,
    .snap_close = sq_snap_close,
    .snap_get = sq_snap_get,
    .snap_scan = sq_snap_scan,
    .commit = sq_commit,
    .change_seq = sq_change_seq,
    .wait_change = sq_wait_change,
    .backup = sq_backup,
    .commit_stats = sq_commit_stats,
};

/* ---------------------------------------------------------------------------------------------
 * Open
 * ------------------------------------------------------------------------------------------- */

/* Creates the file with mode 0600 unless it exists, so that SQLite (which gives its -wal and -shm
 * files the database's mode) never creates anything readable by others. */
static int create_file(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == EEXIST) {
        return 0;
    }
    int e = errno;
    if (e == ENOENT) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir) {
            *slash = '\0';
        } else {
            snprintf(dir, sizeof dir, "%s", slash == dir ? "/" : ".");
        }
        return aj__err(AJ_EIO, "cannot create store '%s': directory '%s' does not exist", path,
                       dir);
    }
    return aj__err(AJ_EIO, "cannot create store '%s': %s", path, strerror(e));
}

/* Reads format_version: 0 with *out, or *out = 0 when the database is empty (a new store).
 * Only reads: a database that is not an aj store (another program's, with tables of its own,
 * even one named kv) is refused before anything — a table, WAL mode — is written to it. */
static int read_format(sq_store *ss, int64_t *out) {
    sq_conn *c = ss->writer;
    int64_t objects = 0, n = 0;
    int rc = query_int(c, "SELECT count(*) FROM sqlite_master", &objects, NULL);
    if (rc == SQLITE_OK) {
        rc = query_int(c,
                       "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                       " name IN ('meta', 'kv')",
                       &n, NULL);
    }
    if ((rc & 0xff) == SQLITE_NOTADB) {
        return aj__err(AJ_EFORMAT, "'%s' is not an aj store: not an SQLite database", ss->path);
    }
    if (rc != SQLITE_OK) {
        return sq_err(c->db, rc, "reading the store's schema");
    }
    if (objects == 0) {
        *out = 0;
        return 0;
    }
    if (n != 2) {
        return aj__err(AJ_EFORMAT,
                       "'%s' is not an aj store: an SQLite database with other tables and no aj "
                       "meta record; it was left unchanged",
                       ss->path);
    }
    rc = query_int(c, "SELECT val FROM meta WHERE name = 'format_version'", out, NULL);
    if (rc == SQLITE_NOTFOUND || (rc == SQLITE_OK && *out < 1)) {
        return aj__err(AJ_EFORMAT,
                       "'%s' is not an aj store: its meta table has no valid format_version; it "
                       "was left unchanged",
                       ss->path);
    }
    if (rc != SQLITE_OK) {
        return sq_err(c->db, rc, "reading the store's format");
    }
    if (*out > SQ_FORMAT) {
        return aj__err(AJ_EFORMAT,
                       "store format %lld is newer than this aj supports (%d): upgrade aj",
                       (long long)*out, SQ_FORMAT);
    }
    return 0;
}

static int setup(sq_store *ss) {
    int rc = create_file(ss->path);
    if (rc != 0) {
        return rc;
    }
    if (sqlite3_threadsafe() == 0) {
        return aj__err(AJ_EINVAL, "the SQLite library was built without thread support");
    }
    rc = conn_open(ss, &ss->writer);
    if (rc != 0) {
        return rc;
    }
    /* The format is checked before anything is written, so a newer store stays untouched. */
    int64_t format = 0;
    rc = read_format(ss, &format);
    if (rc != 0) {
        return rc;
    }
    int64_t dummy = 0;
    const char *mode = NULL;
    int src = query_int(ss->writer, "PRAGMA journal_mode = WAL", &dummy, &mode);
    /* A new file is switched to WAL under an exclusive lock. When another process opening it
     * at the same moment holds a lock that waiting could deadlock on, SQLite answers BUSY at
     * once without its busy handler: wait here instead, within the same bound. */
    for (int n = 0; (src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED; n++) {
        if (!sq_busy(NULL, n)) {
            break;
        }
        src = query_int(ss->writer, "PRAGMA journal_mode = WAL", &dummy, &mode);
    }
    if (src != SQLITE_OK || strcmp(mode, "wal") != 0) {
        return src != SQLITE_OK ? sq_err(ss->writer->db, src, "switching to WAL mode")
                                : aj__err(AJ_EIO, "store '%s' cannot use WAL mode", ss->path);
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous = %s; PRAGMA journal_size_limit = %lld;",
             ss->relaxed ? "NORMAL" : "FULL", (long long)SQ_JOURNAL_LIMIT);
    rc = exec_sql(ss->writer, pragmas, "configuring the store");
    ss->writer_durable = 1;
    if (rc == 0 && format == 0) {
        rc = exec_sql(ss->writer,
                      "BEGIN IMMEDIATE;"
                      "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB NOT NULL,"
                      " ver INTEGER NOT NULL) WITHOUT ROWID;"
                      "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY,"
                      " val INTEGER NOT NULL) WITHOUT ROWID;"
                      "INSERT OR IGNORE INTO meta(name, val) VALUES ('format_version', 1);"
                      "INSERT OR IGNORE INTO meta(name, val) VALUES ('version', 0);"
                      "COMMIT;",
                      "creating the store");
        if (rc != 0 && !sqlite3_get_autocommit(ss->writer->db)) {
            exec_sql(ss->writer, "ROLLBACK", "rolling back");
        }
        /* Another process may have created it first, with whatever format it has. */
        if (rc == 0) {
            rc = read_format(ss, &format);
        }
    }
    if (rc != 0) {
        return rc;
    }
    rc = conn_open(ss, &ss->pollc);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&ss->pollmu);
    poll_locked(ss);
    pthread_mutex_unlock(&ss->pollmu);
    char what[KV_CQ_NAME_MAX];
    snprintf(what, sizeof what, "store '%s'", ss->path);
    kv_cq_config cq = {SQ_BATCH_MAX, SQ_BATCH_BYTES, SQ_QUEUE_MAX, !ss->relaxed,
                       run_batch,    bump_change_cb, ss,           what};
    rc = kv_cq_start(&ss->cq, &cq);
    if (rc != 0) {
        return rc;
    }
    if (pthread_create(&ss->poller, NULL, poller_main, ss) != 0) {
        return aj__err(AJ_EIO, "cannot start the change poller thread: %s", strerror(errno));
    }
    ss->poller_started = 1;
    return 0;
}

int kv_sqlite_open(kv_store **out, const char *path, const kv_open_opts *opts) {
    if (path == NULL || path[0] == '\0') {
        return aj__err(AJ_EINVAL, "empty SQLite store path");
    }
    sq_store *ss = aj__calloc(1, sizeof *ss);
    char *p = aj__strdup(path);
    if (ss == NULL || p == NULL) {
        aj__free(ss);
        aj__free(p);
        return aj__err(AJ_ENOMEM, "out of memory opening store '%s'", path);
    }
    ss->path = p;
    ss->relaxed = opts != NULL && opts->relaxed;
    if (opts != NULL && opts->vfs != NULL) {
        sqlite3_vfs *vfs = sqlite3_vfs_find(opts->vfs);
        if (vfs == NULL) {
            aj__free(ss);
            aj__free(p);
            return aj__err(AJ_EINVAL, "store URL names SQLite VFS '%s', which is not registered",
                           opts->vfs);
        }
        ss->vfs = vfs->zName; /* lives as long as the VFS stays registered */
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* aj__deadline_ts is monotonic */
    pthread_cond_init(&ss->reader_cv, &ca);
    pthread_cond_init(&ss->change_cv, &ca);
    pthread_cond_init(&ss->poll_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ss->mu, NULL);
    pthread_mutex_init(&ss->wmu, NULL);
    pthread_mutex_init(&ss->chmu, NULL);
    pthread_mutex_init(&ss->pollmu, NULL);
    atomic_init(&ss->change, 0);
    atomic_init(&ss->last_poll_us, 0);
    int rc = setup(ss);
    if (rc != 0) {
        /* Closing keeps the message of the failure, not of the cleanup. */
        char msg[AJ__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        sq_free(ss);
        return aj__err(rc, "%s", msg);
    }
    kv_limits lim = {SQ_MAX_KEY, SQ_MAX_VALUE, SQ_MAX_TXN_OPS, SQ_MAX_TXN_BYTES};
    return kv__store_new(
        out, &sq_ops, ss,
        KV_CAP_MULTI_PROCESS | KV_CAP_DURABLE | KV_CAP_BACKUP | KV_CAP_APPLIED_NOSYNC, &lim);
}

int kv_sqlite_max_pages(kv_store *s, uint64_t pages) {
    sq_store *ss = kv__store_state(s, &sq_ops);
    if (ss == NULL) {
        return aj__err(AJ_EINVAL, "kv_sqlite_max_pages needs an SQLite store");
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %llu",
             (unsigned long long)(pages != 0 ? pages : SQ_PAGES_UNLIMITED));
    pthread_mutex_lock(&ss->wmu);
    int rc = exec_sql(ss->writer, sql, "setting max_page_count");
    pthread_mutex_unlock(&ss->wmu);
    return rc;
}
