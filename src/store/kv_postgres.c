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
 * Commits (group commit, like the SQLite committer): one committer thread and connection take
 * every queued request (up to PG_BATCH_MAX / PG_BATCH_BYTES) into one READ COMMITTED transaction:
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
 * briefly instead of spinning; each attempt that fails returns AJ_EIO naming libpq's reason. A
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
 * Layer: src/store, a backend below kv.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/kv.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/hist.h"
#include "util/mem.h"

#define PG_FORMAT 1                          /* the store format this code reads and writes */
#define PG_MAX_KEY 2048                      /* bytes in one key: a btree entry holds ~2700 */
#define PG_MAX_VALUE ((size_t)64 << 20)      /* bytes in one value */
#define PG_MAX_TXN_OPS 1000000               /* writes in one transaction */
#define PG_MAX_TXN_BYTES ((size_t)256 << 20) /* bytes written by one transaction */
#define PG_BATCH_MAX 512                     /* transactions in one commit batch */
#define PG_BATCH_BYTES ((size_t)64 << 20)    /* bytes one batch writes (at least one txn) */
#define PG_QUEUE_MAX 16384                   /* queued commits before committers must wait */
#define PG_POOL_DEFAULT 8                    /* snapshot connections, unless aj_pool says */
#define PG_POOL_MAX 1024                     /* largest aj_pool accepted */
#define PG_POOL_WAIT_MS 30000                /* wait for a free pool connection before AJ_EBUSY */
#define PG_STATEMENT_TIMEOUT_MS 30000        /* statement_timeout of every connection */
#define PG_LOCK_TIMEOUT_MS 10000             /* lock_timeout: waiting for another commit's keys */
#define PG_CONNECT_TIMEOUT_S "10"            /* libpq connect_timeout unless the URL sets one */
#define PG_RESOLVE_MS 60000                  /* how long an ambiguous commit's outcome is sought */
#define PG_BACKOFF_MIN_MS 50                 /* first wait after a failed connect */
#define PG_BACKOFF_MAX_MS 5000               /* longest wait between connect attempts */
#define PG_POLL_MS 1000                      /* change-counter bump interval while LISTEN is down */
#define PG_SCAN_PAGE_MIN 16                  /* rows in a scan's first page */
#define PG_SCAN_PAGE_MAX 1024                /* rows in later pages (each page 4x the last) */
#define PG_URL_MAX 4096                      /* bytes of a store URL */
#define PG_TOKEN_TTL "1 day" /* tokens of processes that died are collected after this */
#define PG_SCHEMA_LOCK 0x616a5f736368656dLL /* advisory lock serializing schema creation */
#define PG_OPT_MAX 8                        /* aj_ options in one URL */

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20

enum { Q_GET, Q_SCAN_F, Q_SCAN_FE, Q_SCAN_R, Q_SCAN_RE, Q_LOCK, Q_VERS, Q_WRITE, Q_COUNT };

static const char *const pg_sql[Q_COUNT] = {
    [Q_GET] = "SELECT v, ver FROM aj_kv WHERE k = $1",
    [Q_SCAN_F] = "SELECT k, v, ver FROM aj_kv WHERE k >= $1 ORDER BY k LIMIT $2",
    [Q_SCAN_FE] = "SELECT k, v, ver FROM aj_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3",
    [Q_SCAN_R] = "SELECT k, v, ver FROM aj_kv WHERE k >= $1 ORDER BY k DESC LIMIT $2",
    [Q_SCAN_RE] = "SELECT k, v, ver FROM aj_kv WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT $3",
    /* The rows of a function scan come in array order, and count(*) consumes them one by one:
     * the locks are taken in the (sorted) order of $1. void cast to text is '', never NULL. */
    [Q_LOCK] = "SELECT count(*) FROM unnest($1::int8[], $2::bool[]) AS u(h, x) WHERE (CASE WHEN x"
               " THEN pg_advisory_xact_lock(h)::text ELSE pg_advisory_xact_lock_shared(h)::text"
               " END) IS NOT NULL",
    [Q_VERS] = "SELECT k, ver FROM aj_kv WHERE k = ANY($1::bytea[])",
    /* A CTE with a volatile function is evaluated once: one version for the batch. */
    [Q_WRITE] = "WITH v AS (SELECT nextval('aj_version') AS ver),"
                " d AS (DELETE FROM aj_kv WHERE k = ANY($3::bytea[])),"
                " i AS (INSERT INTO aj_kv(k, v, ver) SELECT u.k, u.v, v.ver"
                " FROM unnest($1::bytea[], $2::bytea[]) AS u(k, v), v"
                " ON CONFLICT (k) DO UPDATE SET v = excluded.v, ver = excluded.ver),"
                " t AS (INSERT INTO aj_commits(token) VALUES ($4)),"
                " o AS (DELETE FROM aj_commits WHERE token = $5)"
                " SELECT ver, pg_notify('aj_change', '') IS NULL FROM v",
};

typedef struct pg_conn {
    PGconn *db;
    PGresult *lent; /* the result a snap_get value points into */
    int prepared;   /* the statements are prepared on this connection */
    struct pg_conn *next;
} pg_conn;

/* A KV_SYNC caller waiting for its batch; lives on the caller's stack. */
typedef struct pg_waiter {
    int done;
    int rc;
    char msg[AJ__ERRMSG_MAX];
} pg_waiter;

typedef struct pg_req {
    kv_commit_req *c;
    pg_waiter *w; /* NULL: KV_ASYNC */
    size_t bytes;
    int rc;
    char *msg; /* detail of a failure other than a conflict (owned), or NULL */
} pg_req;

/* Test hook: cut the committer's connection at COMMIT. */
typedef struct pg_cut {
    int mode; /* 0: off; 1: after sending COMMIT; 2: before sending it (as if sent) */
    void (*fn)(void *ud);
    void *ud;
} pg_cut;

typedef struct pg_store {
    char *url;     /* the URL given to libpq (aj_ options removed) */
    char *display; /* "database D at H:P as U": for messages, never the password */
    int relaxed;
    size_t pool_max;
    int64_t pool_wait_ms;
    int64_t statement_timeout_ms;
    int64_t lock_timeout_ms;
    int64_t resolve_ms;
    int has_connect_timeout;

    pthread_mutex_t mu;      /* queue, pool, stats, committer state */
    pthread_cond_t queue_cv; /* the committer waits for requests */
    pthread_cond_t done_cv;  /* KV_SYNC callers wait for their batch */
    pthread_cond_t space_cv; /* callers wait for room in the queue */
    pthread_cond_t pool_cv;
    pg_req *q; /* ring */
    size_t q_cap, q_head, q_n;
    int stopping;
    pthread_t committer;
    int committer_started;
    pg_req *batch;
    pg_conn *wconn; /* the committer's connection (committer thread only) */
    pg_conn *lconn; /* the listener's first connection, until its thread takes it */
    uint64_t token_seed;
    int64_t prev_token; /* the last batch's token, deleted by the next batch (0: none) */
    pg_cut cut;
    pg_conn *free_conns;
    size_t n_conns; /* open pool connections, free or lent */
    uint64_t batches, syncs, hist[AJ_HIST_BUCKETS];

    pthread_mutex_t downmu; /* connect backoff */
    int64_t down_until_us;  /* no connect attempt before this (0: none pending) */
    int64_t backoff_ms;

    pthread_mutex_t chmu; /* change notification */
    pthread_cond_t change_cv;
    atomic_uint_fast64_t change;
    int wake_fd[2]; /* wakes the listener's poll() at close */
    int listen_stop;
    pthread_t listener;
    int listener_started;
} pg_store;

static const kv_backend_ops pg_ops;
static const uint8_t pg_empty[1];

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* Maps a SQLSTATE to an AJ_E* code. */
static int pg_code(const char *state) {
    if (state == NULL) {
        return AJ_EIO;
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        return AJ_ECONFLICT; /* serialization failure, deadlock: worth retrying */
    }
    if (strcmp(state, "55P03") == 0) {
        return AJ_EBUSY; /* lock_timeout */
    }
    if (strcmp(state, "57014") == 0) {
        return AJ_ETIMEDOUT; /* statement_timeout */
    }
    if (strcmp(state, "53100") == 0) {
        return AJ_EFULL;
    }
    if (strcmp(state, "53200") == 0) {
        return AJ_ENOMEM;
    }
    if (strcmp(state, "54000") == 0) {
        return AJ_ETOOBIG;
    }
    return AJ_EIO;
}

/* The first line of libpq's message, without its trailing newline. */
static void first_line(char *out, size_t size, const char *msg) {
    size_t n = strcspn(msg != NULL ? msg : "", "\n");
    snprintf(out, size, "%.*s", (int)n, msg != NULL ? msg : "");
    if (out[0] == '\0') {
        snprintf(out, size, "no detail from libpq");
    }
}

/* Sets the error message from a failed result (or connection) and returns the AJ_E* code. A
 * broken connection is AJ_EIO whatever the statement was. */
static int pg_err(const pg_store *ps, PGconn *db, const PGresult *res, const char *what) {
    char line[AJ__ERRMSG_MAX];
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *detail = NULL;
    if (res != NULL && PQresultErrorMessage(res)[0] != '\0') {
        detail = PQresultErrorMessage(res);
    } else if (db != NULL) {
        detail = PQerrorMessage(db);
    }
    first_line(line, sizeof line, detail);
    int code = db != NULL && PQstatus(db) == CONNECTION_BAD ? AJ_EIO : pg_code(state);
    if (state != NULL) {
        return aj__err(code, "%s (PostgreSQL %s): %s [SQLSTATE %s]", what, ps->display, line,
                       state);
    }
    return aj__err(code, "%s (PostgreSQL %s): %s", what, ps->display, line);
}

static int conn_bad(const pg_conn *c) {
    return c == NULL || c->db == NULL || PQstatus(c->db) == CONNECTION_BAD;
}

/* ---------------------------------------------------------------------------------------------
 * URL
 * ------------------------------------------------------------------------------------------- */

/* Parses a decimal option value within [lo, hi]. */
static int opt_num(const char *name, const char *v, size_t n, int64_t lo, int64_t hi,
                   int64_t *out) {
    int64_t x = 0;
    if (n == 0 || n > 12) {
        return aj__err(AJ_EINVAL, "store URL option %s needs a number from %lld to %lld", name,
                       (long long)lo, (long long)hi);
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return aj__err(AJ_EINVAL, "store URL option %s='%.*s' is not a number", name, (int)n,
                           v);
        }
        x = x * 10 + (v[i] - '0');
    }
    if (x < lo || x > hi) {
        return aj__err(AJ_EINVAL, "store URL option %s=%lld is out of range (%lld to %lld)", name,
                       (long long)x, (long long)lo, (long long)hi);
    }
    *out = x;
    return 0;
}

/* Takes the aj_ options out of the URL's query string (libpq refuses parameters it does not
 * know), checks the rest with libpq, and builds the display name. */
static int parse_url(pg_store *ps, const char *url) {
    size_t len = strlen(url);
    if (len > PG_URL_MAX) {
        return aj__err(AJ_EINVAL, "store URL of %zu bytes is over %d", len, PG_URL_MAX);
    }
    aj_buf b = AJ_BUF_INIT;
    const char *q = strchr(url, '?');
    aj_buf_add(&b, url, q != NULL ? (size_t)(q - url) : len);
    int rc = 0;
    char sep = '?';
    for (const char *p = q != NULL ? q + 1 : NULL; rc == 0 && p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t n = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t kn = eq != NULL ? (size_t)(eq - p) : n;
        const char *v = eq != NULL ? eq + 1 : p + n;
        size_t vn = n - kn - (eq != NULL);
        int64_t x = 0;
        if (kn > 3 && strncmp(p, "aj_", 3) == 0) {
            if (kn == 7 && strncmp(p, "aj_pool", 7) == 0) {
                rc = opt_num("aj_pool", v, vn, 1, PG_POOL_MAX, &x);
                ps->pool_max = (size_t)x;
            } else if (kn == 15 && strncmp(p, "aj_pool_wait_ms", 15) == 0) {
                rc = opt_num("aj_pool_wait_ms", v, vn, 0, 3600000, &ps->pool_wait_ms);
            } else if (kn == 23 && strncmp(p, "aj_statement_timeout_ms", 23) == 0) {
                rc = opt_num("aj_statement_timeout_ms", v, vn, 0, 3600000,
                             &ps->statement_timeout_ms);
            } else if (kn == 18 && strncmp(p, "aj_lock_timeout_ms", 18) == 0) {
                rc = opt_num("aj_lock_timeout_ms", v, vn, 0, 3600000, &ps->lock_timeout_ms);
            } else if (kn == 13 && strncmp(p, "aj_resolve_ms", 13) == 0) {
                rc = opt_num("aj_resolve_ms", v, vn, 0, 3600000, &ps->resolve_ms);
            } else {
                rc = aj__err(AJ_EINVAL,
                             "unknown store URL option '%.*s' (known: aj_pool, aj_pool_wait_ms, "
                             "aj_statement_timeout_ms, aj_lock_timeout_ms, aj_resolve_ms)",
                             (int)kn, p);
            }
        } else if (n > 0) {
            aj_buf_add_u8(&b, (uint8_t)sep);
            aj_buf_add(&b, p, n);
            sep = '&';
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    aj_buf_nul(&b);
    if (rc == 0 && b.oom) {
        rc = aj__err(AJ_ENOMEM, "out of memory parsing a store URL");
    }
    char *err = NULL;
    PQconninfoOption *opts = rc == 0 ? PQconninfoParse((const char *)b.p, &err) : NULL;
    if (rc == 0 && opts == NULL) {
        char line[AJ__ERRMSG_MAX];
        first_line(line, sizeof line, err);
        rc = aj__err(AJ_EINVAL, "store URL is not a valid PostgreSQL URL: %s", line);
    }
    if (rc == 0) {
        const char *host = NULL, *port = NULL, *dbname = NULL, *user = NULL;
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
            const char *val = o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
            if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && !host)) {
                host = val != NULL ? val : host;
            } else if (strcmp(o->keyword, "port") == 0) {
                port = val;
                /* libpq checks ports only when connecting, as if the server were at fault. */
                if (val != NULL && val[strspn(val, "0123456789,")] != '\0') {
                    rc = aj__err(AJ_EINVAL, "store URL has an invalid port '%.100s'", val);
                }
            } else if (strcmp(o->keyword, "dbname") == 0) {
                dbname = val;
            } else if (strcmp(o->keyword, "user") == 0) {
                user = val;
            } else if (strcmp(o->keyword, "connect_timeout") == 0) {
                ps->has_connect_timeout = val != NULL;
            }
        }
        /* Unset parts come from PG* variables or libpq's defaults; say so rather than guess. */
        char d[1024];
        snprintf(d, sizeof d, "database %s at %s:%s as %s",
                 dbname ? dbname : (getenv("PGDATABASE") ? getenv("PGDATABASE") : "(default)"),
                 host ? host : (getenv("PGHOST") ? getenv("PGHOST") : "(default host)"),
                 port ? port : (getenv("PGPORT") ? getenv("PGPORT") : "5432"),
                 user ? user : (getenv("PGUSER") ? getenv("PGUSER") : "(default user)"));
        ps->display = aj__strdup(d);
        ps->url = aj__strdup((const char *)b.p);
        if (rc == 0 && (ps->display == NULL || ps->url == NULL)) {
            rc = aj__err(AJ_ENOMEM, "out of memory parsing a store URL");
        }
    }
    PQconninfoFree(opts);
    PQfreemem(err);
    aj_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------------------------- */

static void conn_close(pg_conn *c) {
    if (c == NULL) {
        return;
    }
    PQclear(c->lent);
    PQfinish(c->db);
    aj__free(c);
}

/* Runs SQL without parameters that returns no rows (or rows nobody reads). */
static int exec_cmd(const pg_store *ps, pg_conn *c, const char *sql, const char *what) {
    PGresult *r = PQexec(c->db, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : pg_err(ps, c->db, r, what);
    PQclear(r);
    return rc;
}

/* How long until the next connect attempt is due (0: now). */
static int64_t down_left_ms(pg_store *ps) {
    pthread_mutex_lock(&ps->downmu);
    int64_t left = ps->down_until_us != 0 ? (ps->down_until_us - aj__mono_us() + 999) / 1000 : 0;
    pthread_mutex_unlock(&ps->downmu);
    return left > 0 ? left : 0;
}

static void down_note(pg_store *ps, int failed) {
    pthread_mutex_lock(&ps->downmu);
    if (failed) {
        ps->backoff_ms = ps->backoff_ms == 0 ? PG_BACKOFF_MIN_MS : ps->backoff_ms * 2;
        if (ps->backoff_ms > PG_BACKOFF_MAX_MS) {
            ps->backoff_ms = PG_BACKOFF_MAX_MS;
        }
        ps->down_until_us = aj__mono_us() + ps->backoff_ms * 1000;
    } else {
        ps->backoff_ms = 0;
        ps->down_until_us = 0;
    }
    pthread_mutex_unlock(&ps->downmu);
}

static void quiet(void *ud, const char *msg) {
    (void)ud;
    (void)msg;
}

/* Opens a configured connection; the committer's gets synchronous_commit off when relaxed. */
static int conn_open(pg_store *ps, int committer, pg_conn **out) {
    pg_conn *c = aj__calloc(1, sizeof *c);
    if (c == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory opening a PostgreSQL connection");
    }
    /* expand_dbname: the URL is expanded, and later keywords override it — so connect_timeout
     * comes last only when the URL has none. */
    const char *keys[4] = {"dbname", "fallback_application_name", NULL, NULL};
    const char *vals[4] = {ps->url, "aj", NULL, NULL};
    if (!ps->has_connect_timeout) {
        keys[2] = "connect_timeout";
        vals[2] = PG_CONNECT_TIMEOUT_S;
    }
    c->db = PQconnectdbParams(keys, vals, 1);
    if (c->db != NULL) {
        PQsetNoticeProcessor(c->db, quiet, NULL); /* the library never prints */
    }
    int rc = 0;
    if (c->db == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory connecting to PostgreSQL");
    } else if (PQstatus(c->db) != CONNECTION_OK) {
        char line[AJ__ERRMSG_MAX];
        first_line(line, sizeof line, PQerrorMessage(c->db));
        rc = aj__err(AJ_EIO, "cannot connect to PostgreSQL (%s): %s", ps->display, line);
    } else {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SET statement_timeout = %lld; SET lock_timeout = %lld;"
                 " SET synchronous_commit = %s",
                 (long long)ps->statement_timeout_ms, (long long)ps->lock_timeout_ms,
                 committer && ps->relaxed ? "off" : "on");
        rc = exec_cmd(ps, c, sql, "configuring a connection");
    }
    if (rc != 0) {
        conn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* A connection for the store's own use: waits out a pending backoff (so a down server sees one
 * attempt per backoff from each thread, not a storm), then tries and records the outcome. */
static int conn_get(pg_store *ps, int committer, pg_conn **out) {
    int64_t left = down_left_ms(ps);
    if (left > 0) {
        aj__sleep_ms(left);
    }
    int rc = conn_open(ps, committer, out);
    down_note(ps, rc == AJ_EIO);
    return rc;
}

static int prepare_all(pg_store *ps, pg_conn *c) {
    if (c->prepared) {
        return 0;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        char name[8];
        snprintf(name, sizeof name, "q%d", i);
        PGresult *r = PQprepare(c->db, name, pg_sql[i], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? 0 : pg_err(ps, c->db, r, "preparing a statement");
        PQclear(r);
        if (rc != 0) {
            return rc;
        }
    }
    c->prepared = 1;
    return 0;
}

/* Runs prepared statement `q` with binary parameters and results. */
static PGresult *run_q(pg_conn *c, int q, int n, const char *const *vals, const int *lens) {
    char name[8];
    snprintf(name, sizeof name, "q%d", q);
    int fmts[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert(n <= 8);
    return PQexecPrepared(c->db, name, n, vals, lens, fmts, 1);
}

static uint64_t get_u64(const PGresult *r, int row, int col) {
    if (PQgetlength(r, row, col) != 8) {
        return 0;
    }
    return aj_get_u64be((const uint8_t *)PQgetvalue(r, row, col));
}

/* ---------------------------------------------------------------------------------------------
 * Binary array parameters
 * ------------------------------------------------------------------------------------------- */

static void arr_begin(aj_buf *b, uint32_t oid, size_t n) {
    aj_buf_reset(b);
    aj_buf_add_u32be(b, n > 0 ? 1 : 0); /* dimensions */
    aj_buf_add_u32be(b, 0);             /* no NULLs */
    aj_buf_add_u32be(b, oid);
    if (n > 0) {
        aj_buf_add_u32be(b, (uint32_t)n);
        aj_buf_add_u32be(b, 1); /* lower bound */
    }
}

static void arr_bytes(aj_buf *b, const uint8_t *p, size_t n) {
    aj_buf_add_u32be(b, (uint32_t)n);
    aj_buf_add(b, p, n);
}

/* ---------------------------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------------------------- */

static int pool_take(pg_store *ps, pg_conn **out) {
    pthread_mutex_lock(&ps->mu);
    struct timespec deadline;
    aj__deadline_ts(&deadline, ps->pool_wait_ms);
    int timed_out = 0;
    while (ps->free_conns == NULL && ps->n_conns >= ps->pool_max && !timed_out) {
        timed_out = pthread_cond_timedwait(&ps->pool_cv, &ps->mu, &deadline) != 0;
    }
    pg_conn *c = ps->free_conns;
    if (c != NULL) {
        ps->free_conns = c->next;
    } else if (!timed_out) {
        ps->n_conns++; /* reserved; opened outside the lock */
    }
    pthread_mutex_unlock(&ps->mu);
    if (timed_out && c == NULL) {
        return aj__err(AJ_EBUSY,
                       "all %zu connections of the PostgreSQL pool were in use for %lld ms "
                       "(raise aj_pool in the store URL)",
                       ps->pool_max, (long long)ps->pool_wait_ms);
    }
    if (c == NULL) {
        int rc = conn_get(ps, 0, &c);
        if (rc != 0) {
            pthread_mutex_lock(&ps->mu);
            ps->n_conns--;
            pthread_cond_signal(&ps->pool_cv);
            pthread_mutex_unlock(&ps->mu);
            return rc;
        }
    }
    *out = c;
    return 0;
}

/* Returns a connection to the pool, or closes it when it is broken. */
static void pool_give(pg_store *ps, pg_conn *c) {
    PQclear(c->lent);
    c->lent = NULL;
    int bad = conn_bad(c);
    if (bad) {
        conn_close(c);
    }
    pthread_mutex_lock(&ps->mu);
    if (bad) {
        ps->n_conns--;
    } else {
        c->next = ps->free_conns;
        ps->free_conns = c;
    }
    pthread_cond_signal(&ps->pool_cv);
    pthread_mutex_unlock(&ps->mu);
}

static int snap_begin(pg_store *ps, pg_conn *c) {
    int rc = prepare_all(ps, c);
    if (rc == 0) {
        rc = exec_cmd(ps, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                      "opening a read snapshot");
    }
    return rc;
}

static int pg_snap_open(void *st, void **out) {
    pg_store *ps = st;
    pg_conn *c;
    int rc = pool_take(ps, &c);
    if (rc != 0) {
        return rc;
    }
    rc = snap_begin(ps, c);
    /* Idle pooled connections the server dropped (a restart): nothing was read yet, so the
     * next one, and finally a fresh one, is tried. Each dead one is closed on the way. */
    for (size_t tries = 0; rc != 0 && conn_bad(c) && tries <= ps->pool_max; tries++) {
        pool_give(ps, c);
        rc = pool_take(ps, &c);
        if (rc != 0) {
            return rc;
        }
        rc = snap_begin(ps, c);
    }
    if (rc != 0) {
        pool_give(ps, c);
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
    if (!conn_bad(c) && exec_cmd(ps, c, "ROLLBACK", "closing a read snapshot") != 0) {
        PQfinish(c->db);
        c->db = NULL;
    }
    if (c->db != NULL && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        PQfinish(c->db);
        c->db = NULL;
    }
    pool_give(ps, c);
}

static int pg_snap_get(void *st, void *snap, const uint8_t *key, size_t klen, const uint8_t **val,
                       size_t *vlen, uint64_t *version) {
    pg_store *ps = st;
    pg_conn *c = snap;
    PQclear(c->lent);
    c->lent = NULL;
    const char *vals[1] = {klen > 0 ? (const char *)key : (const char *)pg_empty};
    int lens[1] = {(int)klen};
    PGresult *r = run_q(c, Q_GET, 1, vals, lens);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = pg_err(ps, c->db, r, "reading a key");
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return AJ_ENOTFOUND;
    }
    *val = (const uint8_t *)PQgetvalue(r, 0, 0);
    *vlen = (size_t)PQgetlength(r, 0, 0);
    *version = get_u64(r, 0, 1);
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
    aj_buf_add(&lo, start != NULL ? start : pg_empty, slen);
    aj_buf_add(&hi, end != NULL ? end : pg_empty, end != NULL ? elen : 0);
    aj_buf_nul(&lo); /* so that an empty bound still has a pointer */
    aj_buf_nul(&hi);
    int64_t page = PG_SCAN_PAGE_MIN;
    int rc = 0;
    for (int more = 1; more && rc == 0;) {
        if (lo.oom || hi.oom) {
            rc = aj__err(AJ_ENOMEM, "out of memory scanning keys");
            break;
        }
        uint8_t lim[8];
        aj_put_u64be(lim, (uint64_t)page);
        const char *vals[3] = {(const char *)lo.p, (const char *)hi.p, (const char *)lim};
        int lens[3] = {(int)lo.len, (int)hi.len, 8};
        if (end == NULL) {
            vals[1] = (const char *)lim;
            lens[1] = 8;
        }
        PGresult *r = run_q(c, q, end != NULL ? 3 : 2, vals, lens);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = pg_err(ps, c->db, r, "scanning keys");
            PQclear(r);
            break;
        }
        int n = PQntuples(r);
        more = n == page;
        for (int i = 0; i < n; i++) {
            const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 0);
            size_t kl = (size_t)PQgetlength(r, i, 0);
            if (fn(ud, k, kl, (const uint8_t *)PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1),
                   get_u64(r, i, 2)) != 0) {
                more = 0;
                break;
            }
            if (i == n - 1 && more) {
                /* The next page starts after this key: forward, the key plus a zero byte (the
                 * smallest key above it); in reverse, the key is the new exclusive end. */
                aj_buf *bound = reverse ? &hi : &lo;
                aj_buf_reset(bound);
                aj_buf_add(bound, k, kl);
                if (!reverse) {
                    aj_buf_add_u8(bound, 0);
                }
                aj_buf_nul(bound);
            }
        }
        PQclear(r);
        if (reverse && more && end == NULL) {
            /* Continuing a reverse scan without an end bound needs the bounded statement. */
            q = Q_SCAN_RE;
            end = pg_empty;
        }
        if (page < PG_SCAN_PAGE_MAX) {
            page *= 4;
        }
    }
    aj_buf_free(&lo);
    aj_buf_free(&hi);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Change notification
 * ------------------------------------------------------------------------------------------- */

static void bump_change(pg_store *ps) {
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
        if (conn_bad(c)) {
            conn_close(c);
            c = NULL;
            /* Whatever was committed while nobody listened is unknown: waiters re-check. */
            bump_change(ps);
            int64_t left = down_left_ms(ps);
            if (left > 0) {
                listen_poll(ps, -1, (int)(left < PG_POLL_MS ? left : PG_POLL_MS));
                continue; /* waiters are woken at least every PG_POLL_MS meanwhile */
            }
            if (conn_get(ps, 0, &c) != 0 || exec_cmd(ps, c, "LISTEN aj_change", "LISTEN") != 0) {
                conn_close(c);
                c = NULL;
                listen_poll(ps, -1, PG_POLL_MS);
                continue;
            }
            bump_change(ps);
        }
        listen_poll(ps, PQsocket(c->db), PG_POLL_MS);
        if (!PQconsumeInput(c->db)) {
            conn_close(c); /* broken: reconnected at the top of the loop */
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
            bump_change(ps);
        }
    }
    conn_close(c);
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
 * Group commit
 * ------------------------------------------------------------------------------------------- */

/* One key of a batch: its lock, its stored version, and the batch's last write of it. */
typedef struct pg_slot {
    const uint8_t *key; /* NULL: empty slot */
    size_t klen;
    uint64_t hash;
    int exclusive;         /* written by some request of the batch */
    uint64_t db_ver;       /* version stored before the batch (0: absent) */
    const kv_write *write; /* the last accepted write (NULL: none yet) */
} pg_slot;

typedef struct pg_keys {
    pg_slot *slots;
    size_t cap; /* a power of two */
    size_t n;
} pg_keys;

static pg_slot *keys_find(pg_keys *ks, const uint8_t *k, size_t kl, uint64_t h, int add) {
    for (size_t i = h & (ks->cap - 1);; i = (i + 1) & (ks->cap - 1)) {
        pg_slot *s = &ks->slots[i];
        if (s->key == NULL) {
            if (!add) {
                return NULL;
            }
            *s = (pg_slot){k, kl, h, 0, 0, NULL};
            ks->n++;
            return s;
        }
        if (s->hash == h && s->klen == kl && memcmp(s->key, k, kl) == 0) {
            return s;
        }
    }
}

static int cmp_slot_hash(const void *a, const void *b) {
    const pg_slot *x = *(pg_slot *const *)a, *y = *(pg_slot *const *)b;
    int64_t hx = (int64_t)x->hash, hy = (int64_t)y->hash;
    return hx < hy ? -1 : hx > hy;
}

/* Records a request's failure; the message of the calling (committer) thread is kept for it. */
static void req_fail(pg_req *r, int rc) {
    r->rc = rc;
    aj__free(r->msg);
    r->msg = rc != AJ_ECONFLICT ? aj__strdup(aj_errmsg()) : NULL;
}

static void fail_all(pg_req *reqs, size_t n, int rc) {
    for (size_t i = 0; i < n; i++) {
        req_fail(&reqs[i], rc);
    }
}

static int64_t next_token(pg_store *ps) {
    /* splitmix64 over a random seed: distinct per batch and, with overwhelming likelihood,
     * across processes. Never 0 (0 means "no previous token"). */
    uint64_t z = (ps->token_seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z != 0 ? (int64_t)z : 1;
}

/* Decides the outcome of a batch whose COMMIT got no answer: 1 committed, 0 not committed, or
 * AJ_EAMBIGUOUS when the server could not be asked within resolve_ms. */
static int resolve(pg_store *ps, int64_t token) {
    int64_t deadline = aj__mono_us() + ps->resolve_ms * 1000;
    int64_t wait_ms = PG_BACKOFF_MIN_MS;
    char last[AJ__ERRMSG_MAX] = "no attempt made";
    for (;;) {
        pg_conn *c = NULL;
        int rc = conn_open(ps, 1, &c);
        if (rc == 0) {
            uint8_t tok[8];
            aj_put_u64be(tok, (uint64_t)token);
            const char *vals[1] = {(const char *)tok};
            int lens[1] = {8}, fmts[1] = {1};
            /* Waits for the batch's transaction if the server is still finishing it. */
            PGresult *r = PQexecParams(c->db,
                                       "INSERT INTO aj_commits(token) VALUES ($1::int8) ON "
                                       "CONFLICT DO NOTHING RETURNING 1",
                                       1, NULL, vals, lens, fmts, 1);
            int out = -1;
            if (PQresultStatus(r) == PGRES_TUPLES_OK) {
                out = PQntuples(r) == 0; /* the token was there: the batch committed */
            } else {
                pg_err(ps, c->db, r, "resolving a commit");
            }
            PQclear(r);
            if (out >= 0) {
                ps->wconn = c; /* the committer goes on with this connection */
                ps->prev_token = token;
                return out;
            }
        }
        snprintf(last, sizeof last, "%s", aj_errmsg());
        conn_close(c);
        pthread_mutex_lock(&ps->mu);
        int stopping = ps->stopping;
        pthread_mutex_unlock(&ps->mu);
        if (stopping || aj__mono_us() + wait_ms * 1000 > deadline) {
            break;
        }
        aj__sleep_ms(wait_ms);
        wait_ms = wait_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : wait_ms * 2;
    }
    return aj__err(AJ_EAMBIGUOUS,
                   "the connection to PostgreSQL (%s) broke after COMMIT was sent and the "
                   "outcome could not be learned within %lld ms (%s): the commit may have been "
                   "applied",
                   ps->display, (long long)ps->resolve_ms, last);
}

/* Sends COMMIT: 0, or an error; *ambiguous is set when the outcome is unknown. */
static int send_commit(pg_store *ps, pg_conn *c, int *ambiguous) {
    *ambiguous = 0;
    pthread_mutex_lock(&ps->mu);
    pg_cut cut = ps->cut;
    ps->cut.mode = 0;
    pthread_mutex_unlock(&ps->mu);
    if (cut.mode != 0) {
        if (cut.mode == 1) {
            PQsendQuery(c->db, "COMMIT");
            PQflush(c->db);
        }
        shutdown(PQsocket(c->db), SHUT_RDWR);
        if (cut.fn != NULL) {
            cut.fn(cut.ud);
        }
        PQfinish(c->db);
        c->db = NULL;
        *ambiguous = 1;
        return aj__err(AJ_EIO, "test hook: the connection was cut at COMMIT");
    }
    PGresult *r = PQexec(c->db, "COMMIT");
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = pg_err(ps, c->db, r, "committing");
        *ambiguous = conn_bad(c);
    }
    PQclear(r);
    return rc;
}

/* Runs one batch in one PostgreSQL transaction. Returns 1 if it committed writes; *retry says the
 * connection was found dead before anything was sent (worth one more attempt). */
static int run_batch(pg_store *ps, pg_req *reqs, size_t n, int *retry) {
    *retry = 0;
    int wrote = 0, err = 0;
    pg_keys ks = {NULL, 0, 0};
    pg_slot **order = NULL;
    aj_buf a1 = AJ_BUF_INIT, a2 = AJ_BUF_INIT, a3 = AJ_BUF_INIT;
    PGresult *r = NULL;
    pg_conn *c = ps->wconn;
    if (conn_bad(c)) {
        conn_close(c);
        ps->wconn = c = NULL;
        if ((err = conn_get(ps, 1, &c)) != 0) {
            goto fail;
        }
        ps->wconn = c;
    }
    if ((err = prepare_all(ps, c)) != 0 || (err = exec_cmd(ps, c, "BEGIN", "beginning")) != 0) {
        *retry = conn_bad(c);
        goto fail;
    }

    /* The batch's keys, each once. */
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        nk += reqs[i].c->n_reads + reqs[i].c->n_writes;
    }
    for (ks.cap = 16; ks.cap < 2 * nk; ks.cap *= 2) {
    }
    ks.slots = aj__calloc(ks.cap, sizeof *ks.slots);
    order = aj__malloc((nk > 0 ? nk : 1) * sizeof *order);
    if (ks.slots == NULL || order == NULL) {
        err = aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
        goto rollback;
    }
    size_t n_reads = 0;
    for (size_t i = 0; i < n; i++) {
        const kv_commit_req *cm = reqs[i].c;
        for (size_t j = 0; j < cm->n_reads; j++) {
            const kv_read *rd = &cm->reads[j];
            size_t before = ks.n;
            keys_find(&ks, rd->key, rd->klen, kv__key_hash(rd->key, rd->klen), 1);
            n_reads += ks.n > before;
        }
        for (size_t j = 0; j < cm->n_writes; j++) {
            const kv_write *w = &cm->writes[j];
            keys_find(&ks, w->key, w->klen, kv__key_hash(w->key, w->klen), 1)->exclusive = 1;
        }
    }

    /* 1. Locks, in hash order; a hash shared by two keys is locked once, exclusive if either
     * key is written. */
    size_t no = 0;
    for (size_t i = 0; i < ks.cap; i++) {
        if (ks.slots[i].key != NULL) {
            order[no++] = &ks.slots[i];
        }
    }
    qsort(order, no, sizeof *order, cmp_slot_hash);
    size_t nl = 0;
    for (size_t i = 0; i < no; i++) {
        if (nl > 0 && order[nl - 1]->hash == order[i]->hash) {
            order[nl - 1]->exclusive |= order[i]->exclusive;
            continue;
        }
        order[nl++] = order[i];
    }
    arr_begin(&a1, OID_INT8, nl);
    arr_begin(&a2, OID_BOOL, nl);
    for (size_t i = 0; i < nl; i++) {
        uint8_t h[8];
        aj_put_u64be(h, order[i]->hash);
        arr_bytes(&a1, h, 8);
        uint8_t x = (uint8_t)order[i]->exclusive;
        arr_bytes(&a2, &x, 1);
    }
    if (a1.oom || a2.oom) {
        err = aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
        goto rollback;
    }
    if (nl > 0) {
        const char *vals[2] = {(const char *)a1.p, (const char *)a2.p};
        int lens[2] = {(int)a1.len, (int)a2.len};
        r = run_q(c, Q_LOCK, 2, vals, lens);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            err = pg_err(ps, c->db, r, "locking the keys of a commit");
            goto rollback;
        }
        PQclear(r);
        r = NULL;
    }

    /* 2. Stored versions of the keys read. */
    if (n_reads > 0) {
        arr_begin(&a1, OID_BYTEA, n_reads);
        for (size_t i = 0; i < n; i++) {
            const kv_commit_req *cm = reqs[i].c;
            for (size_t j = 0; j < cm->n_reads; j++) {
                pg_slot *s = keys_find(&ks, cm->reads[j].key, cm->reads[j].klen,
                                       kv__key_hash(cm->reads[j].key, cm->reads[j].klen), 0);
                if (s->db_ver == 0) {
                    s->db_ver = UINT64_MAX; /* listed; set to the stored version below */
                    arr_bytes(&a1, s->key, s->klen);
                }
            }
        }
        if (a1.oom) {
            err = aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
            goto rollback;
        }
        for (size_t i = 0; i < ks.cap; i++) {
            if (ks.slots[i].db_ver == UINT64_MAX) {
                ks.slots[i].db_ver = 0; /* absent unless the query returns it */
            }
        }
        const char *vals[1] = {(const char *)a1.p};
        int lens[1] = {(int)a1.len};
        r = run_q(c, Q_VERS, 1, vals, lens);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            err = pg_err(ps, c->db, r, "validating a commit");
            goto rollback;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 0);
            size_t kl = (size_t)PQgetlength(r, i, 0);
            pg_slot *s = keys_find(&ks, k, kl, kv__key_hash(k, kl), 0);
            assert(s != NULL);
            s->db_ver = get_u64(r, i, 1);
        }
        PQclear(r);
        r = NULL;
    }

    /* Validation, request by request, against the state the earlier accepted requests left. A
     * key written earlier in the batch gets the batch's version, which no read can have seen. */
    int any_write = 0;
    for (size_t i = 0; i < n; i++) {
        const kv_commit_req *cm = reqs[i].c;
        int ok = 1;
        for (size_t j = 0; ok && j < cm->n_reads; j++) {
            const kv_read *rd = &cm->reads[j];
            pg_slot *s = keys_find(&ks, rd->key, rd->klen, kv__key_hash(rd->key, rd->klen), 0);
            if (s->write != NULL) {
                ok = s->write->val == NULL && rd->version == 0;
            } else {
                ok = s->db_ver == rd->version;
            }
        }
        if (!ok) {
            reqs[i].rc = AJ_ECONFLICT;
            continue;
        }
        reqs[i].rc = 0;
        for (size_t j = 0; j < cm->n_writes; j++) {
            const kv_write *w = &cm->writes[j];
            keys_find(&ks, w->key, w->klen, kv__key_hash(w->key, w->klen), 0)->write = w;
            any_write = 1;
        }
    }
    if (!any_write) {
        exec_cmd(ps, c, "ROLLBACK", "rolling back"); /* nothing to make durable */
        for (size_t i = 0; i < n; i++) {
            reqs[i].c->out_version = 0;
        }
        goto out;
    }

    /* 3. Writes, the commit token and the notification, in one statement. */
    size_t np = 0, nd = 0;
    for (size_t i = 0; i < ks.cap; i++) {
        const kv_write *w = ks.slots[i].write;
        if (w != NULL && w->val != NULL) {
            np++;
        } else if (w != NULL) {
            nd++;
        }
    }
    arr_begin(&a1, OID_BYTEA, np);
    arr_begin(&a2, OID_BYTEA, np);
    arr_begin(&a3, OID_BYTEA, nd);
    for (size_t i = 0; i < ks.cap; i++) {
        const kv_write *w = ks.slots[i].write;
        if (w == NULL) {
            continue;
        }
        if (w->val != NULL) {
            arr_bytes(&a1, w->key, w->klen);
            arr_bytes(&a2, w->val, w->vlen);
        } else {
            arr_bytes(&a3, w->key, w->klen);
        }
    }
    if (a1.oom || a2.oom || a3.oom || a2.len > INT32_MAX) {
        err = a2.len > INT32_MAX ? aj__err(AJ_ETOOBIG, "a commit batch of %zu bytes", a2.len)
                                 : aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
        goto rollback;
    }
    int64_t token = next_token(ps);
    uint8_t tok[8], prev[8];
    aj_put_u64be(tok, (uint64_t)token);
    aj_put_u64be(prev, (uint64_t)ps->prev_token);
    {
        const char *vals[5] = {(const char *)a1.p, (const char *)a2.p, (const char *)a3.p,
                               (const char *)tok, (const char *)prev};
        int lens[5] = {(int)a1.len, (int)a2.len, (int)a3.len, 8, 8};
        r = run_q(c, Q_WRITE, 5, vals, lens);
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        err = pg_err(ps, c->db, r, "writing a commit");
        goto rollback;
    }
    uint64_t ver = get_u64(r, 0, 0);
    PQclear(r);
    r = NULL;

    /* 4. COMMIT. */
    int ambiguous = 0;
    err = send_commit(ps, c, &ambiguous);
    if (err != 0 && ambiguous) {
        conn_close(ps->wconn);
        ps->wconn = NULL;
        int outcome = resolve(ps, token);
        if (outcome == 1) {
            err = 0;
        } else if (outcome == 0) {
            err = aj__err(AJ_EIO,
                          "the connection to PostgreSQL (%s) broke at COMMIT; the commit did not "
                          "happen",
                          ps->display);
        } else {
            err = outcome;
        }
    }
    if (err != 0) {
        goto fail;
    }
    ps->prev_token = token;
    for (size_t i = 0; i < n; i++) {
        const kv_commit_req *cm = reqs[i].c;
        reqs[i].c->out_version = reqs[i].rc == 0 && cm->n_writes > 0 ? ver : 0;
    }
    wrote = 1;
    goto out;

rollback:
    PQclear(r);
    r = NULL;
    if (!conn_bad(c)) {
        exec_cmd(ps, c, "ROLLBACK", "rolling back");
    }
fail:
    /* Keep the failure's message, not the rollback's. */
    fail_all(reqs, n, err);
    wrote = 0;
out:
    PQclear(r);
    aj__free(ks.slots);
    aj__free(order);
    aj_buf_free(&a1);
    aj_buf_free(&a2);
    aj_buf_free(&a3);
    return wrote;
}

static void *committer_main(void *arg) {
    pg_store *ps = arg;
    pthread_mutex_lock(&ps->mu);
    for (;;) {
        while (ps->q_n == 0 && !ps->stopping) {
            pthread_cond_wait(&ps->queue_cv, &ps->mu);
        }
        if (ps->q_n == 0) {
            break; /* stopping, and every queued request is done */
        }
        size_t n = 0, bytes = 0;
        while (n < PG_BATCH_MAX && ps->q_n > 0) {
            pg_req *r = &ps->q[ps->q_head];
            if (n > 0 && bytes + r->bytes > PG_BATCH_BYTES) {
                break;
            }
            bytes += r->bytes;
            ps->batch[n++] = *r;
            ps->q_head = (ps->q_head + 1) % ps->q_cap;
            ps->q_n--;
        }
        pthread_cond_broadcast(&ps->space_cv);
        pthread_mutex_unlock(&ps->mu);

        int retry = 0;
        int wrote = run_batch(ps, ps->batch, n, &retry);
        if (retry) {
            /* The committer's idle connection had died (a server restart): nothing was sent. */
            for (size_t i = 0; i < n; i++) {
                aj__free(ps->batch[i].msg);
                ps->batch[i].msg = NULL;
            }
            wrote = run_batch(ps, ps->batch, n, &retry);
        }
        if (wrote) {
            bump_change(ps);
        }

        pthread_mutex_lock(&ps->mu);
        ps->batches++;
        ps->syncs += wrote && !ps->relaxed;
        ps->hist[aj__hist_bucket(n)]++;
        int n_async = 0;
        for (size_t i = 0; i < n; i++) {
            pg_req *r = &ps->batch[i];
            if (r->w == NULL) {
                n_async++;
                continue;
            }
            r->w->rc = r->rc;
            if (r->msg != NULL) {
                snprintf(r->w->msg, sizeof r->w->msg, "%s", r->msg);
            }
            r->w->done = 1; /* from here on the waiter (and its commit) may be gone */
            aj__free(r->msg);
            r->msg = NULL;
        }
        pthread_cond_broadcast(&ps->done_cv);
        if (n_async > 0) {
            pthread_mutex_unlock(&ps->mu);
            for (size_t i = 0; i < n; i++) {
                pg_req *r = &ps->batch[i];
                if (r->w != NULL) {
                    continue;
                }
                if (r->rc == AJ_ECONFLICT) {
                    aj__err(r->rc, "a key read by the transaction changed before commit");
                } else if (r->rc != 0) {
                    aj__err(r->rc, "%s", r->msg != NULL ? r->msg : aj_strerror(r->rc));
                }
                aj__free(r->msg);
                r->msg = NULL;
                r->c->done(r->c->done_ud, r->rc);
            }
            pthread_mutex_lock(&ps->mu);
        }
    }
    pthread_mutex_unlock(&ps->mu);
    return NULL;
}

/* Makes room for one more request (the caller holds mu). */
static int queue_room(pg_store *ps) {
    int self = ps->committer_started && pthread_equal(pthread_self(), ps->committer);
    /* Backpressure, except for the committer itself (a done callback), which must not wait for
     * itself: the ring grows for it instead. */
    while (!self && ps->q_n >= PG_QUEUE_MAX && !ps->stopping) {
        pthread_cond_wait(&ps->space_cv, &ps->mu);
    }
    if (ps->stopping && !self) {
        return aj__err(AJ_ECLOSED, "the PostgreSQL store is closing");
    }
    if (ps->q_n < ps->q_cap) {
        return 0;
    }
    size_t cap = ps->q_cap * 2;
    pg_req *q = aj__malloc(cap * sizeof *q);
    if (q == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory queueing a commit");
    }
    for (size_t i = 0; i < ps->q_n; i++) {
        q[i] = ps->q[(ps->q_head + i) % ps->q_cap];
    }
    aj__free(ps->q);
    ps->q = q;
    ps->q_cap = cap;
    ps->q_head = 0;
    return 0;
}

static int pg_commit(void *st, kv_commit_req *c) {
    pg_store *ps = st;
    if (c->sync != KV_ASYNC && ps->committer_started &&
        pthread_equal(pthread_self(), ps->committer)) {
        return aj__err(AJ_ESTATE, "a waiting commit from a commit callback would wait for itself");
    }
    size_t bytes = 0;
    for (size_t i = 0; i < c->n_writes; i++) {
        bytes += c->writes[i].klen + c->writes[i].vlen;
    }
    pg_waiter w;
    w.done = 0;
    w.rc = 0;
    w.msg[0] = '\0';
    pthread_mutex_lock(&ps->mu);
    int rc = ps->stopping ? aj__err(AJ_ECLOSED, "the PostgreSQL store is closing") : 0;
    if (rc == 0) {
        rc = queue_room(ps);
    }
    if (rc != 0) {
        pthread_mutex_unlock(&ps->mu);
        return rc;
    }
    ps->q[(ps->q_head + ps->q_n) % ps->q_cap] =
        (pg_req){c, c->sync != KV_ASYNC ? &w : NULL, bytes, 0, NULL};
    ps->q_n++;
    pthread_cond_signal(&ps->queue_cv);
    if (c->sync == KV_ASYNC) {
        pthread_mutex_unlock(&ps->mu);
        return 0;
    }
    while (!w.done) {
        pthread_cond_wait(&ps->done_cv, &ps->mu);
    }
    pthread_mutex_unlock(&ps->mu);
    if (w.rc == AJ_ECONFLICT) {
        return aj__err(AJ_ECONFLICT, "a key read by the transaction changed before commit");
    }
    if (w.rc != 0) {
        return aj__err(w.rc, "%s", w.msg);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Stats, close
 * ------------------------------------------------------------------------------------------- */

static void pg_commit_stats(void *st, uint64_t *batches, uint64_t *syncs, uint64_t *hist,
                            size_t n_hist) {
    pg_store *ps = st;
    pthread_mutex_lock(&ps->mu);
    if (batches != NULL) {
        *batches = ps->batches;
    }
    if (syncs != NULL) {
        *syncs = ps->syncs;
    }
    for (size_t i = 0; hist != NULL && i < n_hist; i++) {
        hist[i] = i < AJ_HIST_BUCKETS ? ps->hist[i] : 0;
    }
    pthread_mutex_unlock(&ps->mu);
}

static void pg_free(pg_store *ps) {
    if (ps->committer_started) {
        pthread_mutex_lock(&ps->mu);
        ps->stopping = 1;
        pthread_cond_broadcast(&ps->queue_cv);
        pthread_cond_broadcast(&ps->space_cv);
        pthread_mutex_unlock(&ps->mu);
        pthread_join(ps->committer, NULL);
    }
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
        conn_close(c);
        freed++;
    }
    assert(freed == ps->n_conns && "a snapshot is still open at close");
    conn_close(ps->wconn);
    conn_close(ps->lconn);
    for (int i = 0; i < 2; i++) {
        if (ps->wake_fd[i] >= 0) {
            close(ps->wake_fd[i]);
        }
    }
    pthread_cond_destroy(&ps->queue_cv);
    pthread_cond_destroy(&ps->done_cv);
    pthread_cond_destroy(&ps->space_cv);
    pthread_cond_destroy(&ps->pool_cv);
    pthread_cond_destroy(&ps->change_cv);
    pthread_mutex_destroy(&ps->mu);
    pthread_mutex_destroy(&ps->downmu);
    pthread_mutex_destroy(&ps->chmu);
    aj__free(ps->q);
    aj__free(ps->batch);
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

/* ---------------------------------------------------------------------------------------------
 * Open: the schema
 * ------------------------------------------------------------------------------------------- */

/* Runs a query returning one row of text values; *out receives the result (caller clears). */
static int query_row(pg_store *ps, pg_conn *c, const char *sql, const char *what, PGresult **out) {
    PGresult *r = PQexec(c->db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = pg_err(ps, c->db, r, what);
        PQclear(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Checks the schema (the caller holds the schema lock, inside a transaction): *exists says
 * whether aj_meta is there. A newer format, a missing format row, or an aj_kv without aj_meta is
 * refused. */
static int check_schema(pg_store *ps, pg_conn *c, int *exists) {
    PGresult *r = NULL;
    int rc = query_row(ps, c,
                       "SELECT to_regclass('aj_meta') IS NOT NULL, to_regclass('aj_kv') IS NOT "
                       "NULL, current_schema()",
                       "reading the schema", &r);
    if (rc != 0) {
        return rc;
    }
    int meta = PQgetvalue(r, 0, 0)[0] == 't';
    int kv = PQgetvalue(r, 0, 1)[0] == 't';
    char schema[128];
    snprintf(schema, sizeof schema, "%s",
             PQgetisnull(r, 0, 2) ? "(no schema in search_path)" : PQgetvalue(r, 0, 2));
    PQclear(r);
    *exists = meta;
    if (!meta) {
        if (kv) {
            return aj__err(AJ_EFORMAT,
                           "PostgreSQL %s: schema %s has a table aj_kv but no aj_meta: not an aj "
                           "store (left untouched)",
                           ps->display, schema);
        }
        return 0;
    }
    rc = query_row(ps, c, "SELECT val FROM aj_meta WHERE name = 'format_version'",
                   "reading the store's format", &r);
    if (rc != 0) {
        return rc;
    }
    long long format = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    if (format < 1) {
        return aj__err(AJ_EFORMAT,
                       "PostgreSQL %s: aj_meta in schema %s has no valid format_version",
                       ps->display, schema);
    }
    if (format > PG_FORMAT) {
        return aj__err(AJ_EFORMAT,
                       "PostgreSQL %s: store format %lld is newer than this aj supports (%d): "
                       "upgrade aj",
                       ps->display, format, PG_FORMAT);
    }
    return 0;
}

static int setup_schema(pg_store *ps, pg_conn *c) {
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
             (long long)PG_SCHEMA_LOCK);
    int rc = exec_cmd(ps, c, sql, "locking the schema");
    int exists = 0;
    if (rc == 0) {
        rc = check_schema(ps, c, &exists);
    }
    if (rc == 0 && !exists) {
        rc = exec_cmd(ps, c,
                      "CREATE TABLE aj_meta(name text PRIMARY KEY, val bigint NOT NULL);"
                      "CREATE TABLE aj_kv(k bytea PRIMARY KEY, v bytea NOT NULL,"
                      " ver bigint NOT NULL);"
                      "CREATE SEQUENCE aj_version;"
                      "CREATE TABLE aj_commits(token bigint PRIMARY KEY,"
                      " at timestamptz NOT NULL DEFAULT now());"
                      "INSERT INTO aj_meta(name, val) VALUES ('format_version', 1)",
                      "creating the store's tables");
    }
    if (rc == 0) {
        /* Tokens of processes that died before the next batch deleted them. */
        rc = exec_cmd(
            ps, c, "DELETE FROM aj_commits WHERE at < now() - interval '" PG_TOKEN_TTL "'; COMMIT",
            "collecting old commit tokens");
    }
    if (rc != 0 && !conn_bad(c) && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        char msg[AJ__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        exec_cmd(ps, c, "ROLLBACK", "rolling back");
        aj__err(rc, "%s", msg);
    }
    return rc;
}

static int setup(pg_store *ps) {
    if (pipe2(ps->wake_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        ps->wake_fd[0] = ps->wake_fd[1] = -1;
        return aj__err(AJ_EIO, "cannot create a pipe: %s", strerror(errno));
    }
    /* The first connection is made without the backoff bookkeeping: open fails at once, with
     * libpq's reason, when the server cannot be reached. */
    int rc = conn_open(ps, 1, &ps->wconn);
    if (rc == 0) {
        rc = setup_schema(ps, ps->wconn);
    }
    /* Listening before open returns: a commit made after open is never missed. */
    if (rc == 0) {
        rc = conn_open(ps, 0, &ps->lconn);
    }
    if (rc == 0) {
        rc = exec_cmd(ps, ps->lconn, "LISTEN aj_change", "LISTEN");
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
    ps->q_cap = PG_QUEUE_MAX;
    ps->q = aj__malloc(ps->q_cap * sizeof *ps->q);
    ps->batch = aj__malloc(PG_BATCH_MAX * sizeof *ps->batch);
    if (ps->q == NULL || ps->batch == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory opening a PostgreSQL store");
    }
    if (pthread_create(&ps->committer, NULL, committer_main, ps) != 0) {
        return aj__err(AJ_EIO, "cannot start the committer thread: %s", strerror(errno));
    }
    ps->committer_started = 1;
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
    pthread_cond_init(&ps->queue_cv, &ca);
    pthread_cond_init(&ps->done_cv, &ca);
    pthread_cond_init(&ps->space_cv, &ca);
    pthread_cond_init(&ps->pool_cv, &ca);
    pthread_cond_init(&ps->change_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ps->mu, NULL);
    pthread_mutex_init(&ps->downmu, NULL);
    pthread_mutex_init(&ps->chmu, NULL);
    atomic_init(&ps->change, 0);
    int rc = parse_url(ps, url);
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
