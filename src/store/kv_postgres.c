/*
 * kv_postgres.c — the PostgreSQL backend, on libpq: a store shared by processes on many machines.
 *
 * Storage (in the connection's current schema, the first of its search_path): `aj_kv(k bytea
 * PRIMARY KEY, v bytea, ver bigint)` holds the keys (PostgreSQL orders bytea by memcmp, shorter
 * first — the order kv.h promises; collations do not apply to bytea); `aj_meta(name, val)` holds
 * `format_version` (PG_FORMAT); the sequence `aj_version` gives versions; `aj_commits(token)`
 * holds commit tokens. Upgrade rule: a newer format_version is refused unchanged (AJ_EFORMAT); an
 * older one would be migrated here, under the schema lock, before use. A schema holding other
 * tables is fine (ours are prefixed aj_); one holding an aj_kv without aj_meta is refused, never
 * reused or dropped.
 *
 * Reads: a pool of connections (PG_POOL_DEFAULT, the URL's aj_pool). A snapshot is one connection
 * inside `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`: every read sees the snapshot taken at
 * its first statement. Scans are fetched in pages (LIMIT, continuing after the last key), so a
 * scan the caller stops early reads little.
 *
 * Commits (group commit, commit_queue.c, shared with SQLite; one batch: pg_commit.c): one
 * committer thread and connection take every queued request (up to PG_BATCH_MAX / PG_BATCH_BYTES)
 * into one READ COMMITTED transaction:
 *   1. lock: one statement takes transaction-scoped advisory locks on a 64-bit hash of every key
 *      the batch read (shared) or writes (exclusive), in hash order — so two commits whose key
 *      sets meet are serialized and can never deadlock. Locks on hashes cover absent keys too,
 *      which row locks cannot: this is what makes validation of absent keys hold (REPEATABLE
 *      READ or SELECT ... FOR UPDATE alone would let two commits that each read the key the
 *      other creates both succeed). Locking is strict two-phase: locks are held to COMMIT.
 *   2. validate: one statement reads the current version of every key read; a request whose read
 *      versions differ (counting the writes of the batch's earlier requests) fails with
 *      AJ_ECONFLICT alone. Read committed gives each statement a fresh snapshot, taken after the
 *      locks, so the commits serialized before this one are visible.
 *   3. write: one statement takes the version (nextval, after the locks, so a key's versions grow
 *      with each write), upserts and deletes the accepted requests' writes (the last write of a
 *      key wins), writes this batch's commit token, deletes the previous one and NOTIFYs.
 *   4. COMMIT — with synchronous_commit=on (off for a relaxed store), whatever the server's
 *      default: one WAL flush for the whole batch.
 * KV_APPLIED is committed like KV_SYNC: a claim lost by a server crash while its worker, on
 * another machine, keeps running would let the job be claimed again with the same epoch. So the
 * backend does not declare KV_CAP_APPLIED_NOSYNC.
 *
 * Ambiguous commits: when the connection breaks after COMMIT was sent, the outcome is unknown.
 * The committer reconnects (with backoff, for up to the URL's aj_resolve_ms) and inserts the
 * batch's token itself: a unique-key insert waits for a transaction still in flight, then either
 * finds the token (the batch committed: success) or writes it (the batch did not commit, and now
 * never can: a plain failure). If the server stays unreachable, every request of the batch fails
 * with AJ_EAMBIGUOUS — never with an error that claims nothing was written.
 *
 * Failures: a broken connection is reconnected on its next use; after a failed connect, the next
 * attempt of any thread first waits out a backoff (PG_BACKOFF_MIN_MS, doubling to
 * PG_BACKOFF_MAX_MS; reset by a success), so a down server sees few attempts and callers block
 * briefly instead of spinning; each attempt that fails returns AJ_EUNAVAILABLE (a condition that
 * passes, unlike a damaged store's AJ_EIO) naming libpq's reason. A
 * snapshot or batch that meets a dead idle connection before doing anything (BEGIN) goes on with
 * a fresh one, so a server restart costs callers nothing once the server is back.
 *
 * Changes: one listener connection LISTENs on "aj_change"; every batch that writes NOTIFYs it.
 * Commits of this process also bump the counter at once. While the listener is disconnected the
 * counter is bumped every PG_POLL_MS, so waiters re-check (a bounded poll fallback).
 *
 * Invariants: the committer connection is used only by the committer thread (and by open before
 * it starts); a pool connection belongs to one snapshot at a time; the listener connection only
 * to the listener thread. Mutex order: mu, then chmu; downmu is never held with another.
 *
 * Files: this one (snapshots, change notification, open and close), pg_url.c, pg_conn.c,
 * pg_schema.c, pg_commit.c; what they share: kv_postgres_int.h.
 *
 * Layer: src/store, a backend below kv.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/kv_postgres_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

static const kv_backend_ops pg_ops;

static int snap_begin(pg_store *ps, pg_conn *c) {
    int rc = kv__pg_prepare(ps, c);
    if (rc == 0) {
        rc = kv__pg_exec(ps, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                         "opening a read snapshot");
    }
    return rc;
}

static int pg_snap_open(void *st, void **out) {
    pg_store *ps = st;
    pg_conn *c;
    int rc = kv__pg_pool_take(ps, &c);
    if (rc != 0) {
        return rc;
    }
    rc = snap_begin(ps, c);
    /* Idle pooled connections the server dropped (a restart): nothing was read yet, so the
     * next one, and finally a fresh one, is tried. Each dead one is closed on the way. */
    for (size_t tries = 0; rc != 0 && kv__pg_conn_bad(c) && tries <= ps->pool_max; tries++) {
        kv__pg_pool_give(ps, c);
        rc = kv__pg_pool_take(ps, &c);
        if (rc != 0) {
            return rc;
        }
        rc = snap_begin(ps, c);
    }
    if (rc != 0) {
        kv__pg_pool_give(ps, c);
        return rc;
    }
    *out = c;
    return 0;
}

static void pg_snap_close(void *st, void *snap) {
    pg_store *ps = st;
    pg_conn *c = snap;
    PQclear(c->lent);
    c->lent = NULL;
    /* Ending a read-only transaction cannot lose anything; a connection that cannot end it is
     * broken or confused, and is closed rather than pooled. */
    if (!kv__pg_conn_bad(c) && kv__pg_exec(ps, c, "ROLLBACK", "closing a read snapshot") != 0) {
        PQfinish(c->db);
        c->db = NULL;
    }
    if (c->db != NULL && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        PQfinish(c->db);
        c->db = NULL;
    }
    kv__pg_pool_give(ps, c);
}

static int pg_snap_get(void *st, void *snap, const uint8_t *key, size_t klen, const uint8_t **val,
                       size_t *vlen, uint64_t *version) {
    pg_store *ps = st;
    pg_conn *c = snap;
    PQclear(c->lent);
    c->lent = NULL;
    const char *vals[1] = {klen > 0 ? (const char *)key : (const char *)kv__pg_empty};
    int lens[1] = {(int)klen};
    PGresult *r = kv__pg_run(c, Q_GET, 1, vals, lens);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = kv__pg_err(ps, c->db, r, "reading a key");
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return AJ_ENOTFOUND;
    }
    *val = (const uint8_t *)PQgetvalue(r, 0, 0);
    *vlen = (size_t)PQgetlength(r, 0, 0);
    *version = kv__pg_u64(r, 0, 1);
    c->lent = r; /* valid until the next call on this snapshot */
    return 0;
}

static int pg_snap_scan(void *st, void *snap, const uint8_t *start, size_t slen, const uint8_t *end,
                        size_t elen, int reverse, kv_scan_fn fn, void *ud) {
    pg_store *ps = st;
    pg_conn *c = snap;
    PQclear(c->lent);
    c->lent = NULL;
    int q = reverse ? (end != NULL ? Q_SCAN_RE : Q_SCAN_R) : (end != NULL ? Q_SCAN_FE : Q_SCAN_F);
    aj_buf lo = AJ_BUF_INIT, hi = AJ_BUF_INIT;
    aj__buf_add(&lo, start != NULL ? start : kv__pg_empty, slen);
    aj__buf_add(&hi, end != NULL ? end : kv__pg_empty, end != NULL ? elen : 0);
    aj__buf_nul(&lo); /* so that an empty bound still has a pointer */
    aj__buf_nul(&hi);
    int64_t page = PG_SCAN_PAGE_MIN;
    int rc = 0;
    for (int more = 1; more && rc == 0;) {
        if (lo.oom || hi.oom) {
            rc = aj__err(AJ_ENOMEM, "out of memory scanning keys");
            break;
        }
        uint8_t lim[8];
        aj__put_u64be(lim, (uint64_t)page);
        const char *vals[3] = {(const char *)lo.p, (const char *)hi.p, (const char *)lim};
        int lens[3] = {(int)lo.len, (int)hi.len, 8};
        if (end == NULL) {
            vals[1] = (const char *)lim;
            lens[1] = 8;
        }
        PGresult *r = kv__pg_run(c, q, end != NULL ? 3 : 2, vals, lens);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = kv__pg_err(ps, c->db, r, "scanning keys");
            PQclear(r);
            break;
        }
        int n = PQntuples(r);
        more = n == page;
        for (int i = 0; i < n; i++) {
            const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 0);
            size_t kl = (size_t)PQgetlength(r, i, 0);
            if (fn(ud, k, kl, (const uint8_t *)PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
                   kv__pg_u64(r, i, 2)) != 0) {
                more = 0;
                break;
            }
            if (i == n - 1 && more) {
                /* The next page starts after this key: forward, the key plus a zero byte (the
                 * smallest key above it); in reverse, the key is the new exclusive end. */
                aj_buf *bound = reverse ? &hi : &lo;
                aj__buf_reset(bound);
                aj__buf_add(bound, k, kl);
                if (!reverse) {
                    aj__buf_add_u8(bound, 0);
                }
                aj__buf_nul(bound);
            }
        }
        PQclear(r);
        if (reverse && more && end == NULL) {
            /* Continuing a reverse scan without an end bound needs the bounded statement. */
            q = Q_SCAN_RE;
            end = kv__pg_empty;
        }
        if (page < PG_SCAN_PAGE_MAX) {
            page *= 4;
        }
    }
    aj__buf_free(&lo);
    aj__buf_free(&hi);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Change notification
 * ------------------------------------------------------------------------------------------- */

void kv__pg_bump_change(pg_store *ps) {
    pthread_mutex_lock(&ps->chmu);
    atomic_fetch_add(&ps->change, 1);
    pthread_cond_broadcast(&ps->change_cv);
    pthread_mutex_unlock(&ps->chmu);
}

static int listen_stopping(pg_store *ps) {
    pthread_mutex_lock(&ps->chmu);
    int stop = ps->listen_stop;
    pthread_mutex_unlock(&ps->chmu);
    return stop;
}

/* Waits for the listener connection's socket (fd >= 0) or the wake pipe, up to timeout_ms. */
static void listen_poll(pg_store *ps, int fd, int timeout_ms) {
    struct pollfd p[2] = {{ps->wake_fd[0], POLLIN, 0}, {fd, POLLIN, 0}};
    poll(p, fd >= 0 ? 2 : 1, timeout_ms);
}

static void *listener_main(void *arg) {
    pg_store *ps = arg;
    pg_conn *c = ps->lconn; /* connected and listening since open */
    ps->lconn = NULL;
    while (!listen_stopping(ps)) {
        if (kv__pg_conn_bad(c)) {
            kv__pg_conn_close(c);
            c = NULL;
            /* Whatever was committed while nobody listened is unknown: waiters re-check. */
            kv__pg_bump_change(ps);
            int64_t left = kv__pg_down_left_ms(ps);
            if (left > 0) {
                listen_poll(ps, -1, (int)(left < PG_POLL_MS ? left : PG_POLL_MS));
                continue; /* waiters are woken at least every PG_POLL_MS meanwhile */
            }
            if (kv__pg_conn_get(ps, 0, &c) != 0 ||
                kv__pg_exec(ps, c, "LISTEN aj_change", "LISTEN") != 0) {
                kv__pg_conn_close(c);
                c = NULL;
                listen_poll(ps, -1, PG_POLL_MS);
                continue;
            }
            kv__pg_bump_change(ps);
        }
        listen_poll(ps, PQsocket(c->db), PG_POLL_MS);
        if (!PQconsumeInput(c->db)) {
            kv__pg_conn_close(c); /* broken: reconnected at the top of the loop */
            c = NULL;
            continue;
        }
        int got = 0;
        PGnotify *n;
        while ((n = PQnotifies(c->db)) != NULL) {
            got = 1;
            PQfreemem(n);
        }
        if (got) {
            kv__pg_bump_change(ps);
        }
    }
    kv__pg_conn_close(c);
    return NULL;
}

static uint64_t pg_change_seq(void *st) {
    pg_store *ps = st;
    return atomic_load(&ps->change);
}

static void pg_wait_change(void *st, uint64_t seen, int64_t timeout_ms) {
    pg_store *ps = st;
    struct timespec deadline;
    if (timeout_ms >= 0) {
        aj__deadline_ts(&deadline, timeout_ms);
    }
    pthread_mutex_lock(&ps->chmu);
    while (atomic_load(&ps->change) == seen) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&ps->change_cv, &ps->chmu);
        } else if (pthread_cond_timedwait(&ps->change_cv, &ps->chmu, &deadline) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&ps->chmu);
}

/* ---------------------------------------------------------------------------------------------
 * Stats, close
 * ------------------------------------------------------------------------------------------- */

static void pg_commit_stats(void *st, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                            size_t n_hist) {
    pg_store *ps = st;
    kv_cq_stats(ps->cq, batches, syncs, hist, n_hist);
}

static int pg_commit(void *st, kv_commit_req *c) {
    pg_store *ps = st;
    return kv_cq_commit(ps->cq, c);
}

static void bump_change_cb(void *ud) {
    kv__pg_bump_change(ud);
}

static void pg_free(pg_store *ps) {
    kv_cq_stop(ps->cq); /* every queued commit is done first */
    if (ps->listener_started) {
        pthread_mutex_lock(&ps->chmu);
        ps->listen_stop = 1;
        pthread_mutex_unlock(&ps->chmu);
        ssize_t w = write(ps->wake_fd[1], "x", 1);
        (void)w; /* a full pipe wakes the listener as well */
        pthread_join(ps->listener, NULL);
    }
    size_t freed = 0;
    while (ps->free_conns != NULL) {
        pg_conn *c = ps->free_conns;
        ps->free_conns = c->next;
        kv__pg_conn_close(c);
        freed++;
    }
    assert(freed == ps->n_conns && "a snapshot is still open at close");
    kv__pg_conn_close(ps->wconn);
    kv__pg_conn_close(ps->lconn);
    for (int i = 0; i < 2; i++) {
        if (ps->wake_fd[i] >= 0) {
            close(ps->wake_fd[i]);
        }
    }
    pthread_cond_destroy(&ps->pool_cv);
    pthread_cond_destroy(&ps->change_cv);
    pthread_mutex_destroy(&ps->mu);
    pthread_mutex_destroy(&ps->downmu);
    pthread_mutex_destroy(&ps->chmu);
    aj__free(ps->url);
    aj__free(ps->display);
    aj__free(ps);
}

static void pg_close(void *st) {
    pg_free(st);
}

static const kv_backend_ops pg_ops = {
    .ops_version = KV_OPS_VERSION,
    .name = "postgres",
    .close = pg_close,
    .snap_open = pg_snap_open,
    .snap_close = pg_snap_close,
    .snap_get = pg_snap_get,
    .snap_scan = pg_snap_scan,
    .commit = pg_commit,
    .change_seq = pg_change_seq,
    .wait_change = pg_wait_change,
    .backup = NULL,
    .commit_stats = pg_commit_stats,
};

static int setup(pg_store *ps) {
    if (pipe2(ps->wake_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        ps->wake_fd[0] = ps->wake_fd[1] = -1;
        return aj__err(AJ_EIO, "cannot create a pipe: %s", strerror(errno));
    }
    /* The first connection is made without the backoff bookkeeping: open fails at once, with
     * libpq's reason, when the server cannot be reached. */
    int rc = kv__pg_conn_open(ps, 1, &ps->wconn);
    if (rc == 0) {
        rc = kv__pg_setup_schema(ps, ps->wconn);
    }
    /* Listening before open returns: a commit made after open is never missed. */
    if (rc == 0) {
        rc = kv__pg_conn_open(ps, 0, &ps->lconn);
    }
    if (rc == 0) {
        rc = kv__pg_exec(ps, ps->lconn, "LISTEN aj_change", "LISTEN");
    }
    if (rc != 0) {
        return rc;
    }
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&ps->token_seed, sizeof ps->token_seed, 1, f) != 1) {
        ps->token_seed = (uint64_t)aj__mono_us() ^ ((uint64_t)getpid() << 32);
    }
    if (f != NULL) {
        fclose(f);
    }
    /* PostgreSQL commits take a network round trip or more: no waiting for released callers
     * (gather), which pays only when a commit is a local fsync. */
    kv_cq_config cq = {PG_BATCH_MAX,     PG_BATCH_BYTES, PG_QUEUE_MAX, 0,
                       kv__pg_run_batch, bump_change_cb, ps,           "the PostgreSQL store"};
    rc = kv_cq_start(&ps->cq, &cq);
    if (rc != 0) {
        return rc;
    }
    if (pthread_create(&ps->listener, NULL, listener_main, ps) != 0) {
        return aj__err(AJ_EIO, "cannot start the listener thread: %s", strerror(errno));
    }
    ps->listener_started = 1;
    return 0;
}

int kv_postgres_open(kv_store **out, const char *url, const kv_open_opts *opts) {
    pg_store *ps = aj__calloc(1, sizeof *ps);
    if (ps == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory opening a PostgreSQL store");
    }
    ps->wake_fd[0] = ps->wake_fd[1] = -1;
    ps->relaxed = opts != NULL && opts->relaxed;
    ps->pool_max = PG_POOL_DEFAULT;
    ps->pool_wait_ms = PG_POOL_WAIT_MS;
    ps->statement_timeout_ms = PG_STATEMENT_TIMEOUT_MS;
    ps->lock_timeout_ms = PG_LOCK_TIMEOUT_MS;
    ps->resolve_ms = PG_RESOLVE_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* aj__deadline_ts is monotonic */
    pthread_cond_init(&ps->pool_cv, &ca);
    pthread_cond_init(&ps->change_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ps->mu, NULL);
    pthread_mutex_init(&ps->downmu, NULL);
    pthread_mutex_init(&ps->chmu, NULL);
    atomic_init(&ps->change, 0);
    int rc = kv__pg_parse_url(ps, url);
    if (rc == 0) {
        rc = setup(ps);
    }
    if (rc != 0) {
        /* Closing keeps the message of the failure, not of the cleanup. */
        char msg[AJ__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        pg_free(ps);
        return aj__err(rc, "%s", msg);
    }
    kv_limits lim = {PG_MAX_KEY, PG_MAX_VALUE, PG_MAX_TXN_OPS, PG_MAX_TXN_BYTES};
    return kv__store_new(out, &pg_ops, ps, KV_CAP_MULTI_PROCESS | KV_CAP_DURABLE, &lim);
}

void kv_postgres_cut_at_commit(kv_store *s, int mode, void (*fn)(void *ud), void *ud) {
    pg_store *ps = kv__store_state(s, &pg_ops);
    assert(ps != NULL && "kv_postgres_cut_at_commit needs a PostgreSQL store");
    pthread_mutex_lock(&ps->mu);
    ps->cut = (pg_cut){mode, fn, ud};
    pthread_mutex_unlock(&ps->mu);
}
