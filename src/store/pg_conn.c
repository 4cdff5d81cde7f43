/*
 * pg_conn.c — the PostgreSQL backend's connections: errors mapped from SQLSTATEs to AJ_E* codes
 * with libpq's reason, opening and configuring a connection (timeouts, synchronous_commit), the
 * connect backoff a whole process shares, prepared statements and binary parameters, and the
 * pool of snapshot connections.
 *
 * Backoff: after a failed connect, the next attempt of any thread first waits out
 * PG_BACKOFF_MIN_MS, doubling to PG_BACKOFF_MAX_MS, reset by a success — so a down server sees
 * few attempts and callers block briefly instead of spinning.
 *
 * Invariants: a pool connection belongs to one snapshot at a time; n_conns counts connections
 * open or being opened for the pool, and never exceeds pool_max. downmu is never held with
 * another mutex.
 *
 * Layer: src/store, part of the PostgreSQL backend (kv_postgres_int.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_postgres_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

const uint8_t kv__pg_empty[1];

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
void kv__pg_first_line(char *out, size_t size, const char *msg) {
    size_t n = strcspn(msg != NULL ? msg : "", "\n");
    snprintf(out, size, "%.*s", (int)n, msg != NULL ? msg : "");
    if (out[0] == '\0') {
        snprintf(out, size, "no detail from libpq");
    }
}

/* Sets the error message from a failed result (or connection) and returns the AJ_E* code. A
 * broken connection is AJ_EUNAVAILABLE whatever the statement was. */
int kv__pg_err(const pg_store *ps, PGconn *db, const PGresult *res, const char *what) {
    char line[AJ__ERRMSG_MAX];
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *detail = NULL;
    if (res != NULL && PQresultErrorMessage(res)[0] != '\0') {
        detail = PQresultErrorMessage(res);
    } else if (db != NULL) {
        detail = PQerrorMessage(db);
    }
    kv__pg_first_line(line, sizeof line, detail);
    int code = db != NULL && PQstatus(db) == CONNECTION_BAD ? AJ_EUNAVAILABLE : pg_code(state);
    if (state != NULL) {
        return aj__err(code, "%s (PostgreSQL %s): %s [SQLSTATE %s]", what, ps->display, line,
                       state);
    }
    return aj__err(code, "%s (PostgreSQL %s): %s", what, ps->display, line);
}

int kv__pg_conn_bad(const pg_conn *c) {
    return c == NULL || c->db == NULL || PQstatus(c->db) == CONNECTION_BAD;
}

/* ---------------------------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------------------------- */

void kv__pg_conn_close(pg_conn *c) {
    if (c == NULL) {
        return;
    }
    PQclear(c->lent);
    PQfinish(c->db);
    aj__free(c);
}

/* Runs SQL without parameters that returns no rows (or rows nobody reads). */
int kv__pg_exec(const pg_store *ps, pg_conn *c, const char *sql, const char *what) {
    PGresult *r = PQexec(c->db, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : kv__pg_err(ps, c->db, r, what);
    PQclear(r);
    return rc;
}

/* How long until the next connect attempt is due (0: now). */
int64_t kv__pg_down_left_ms(pg_store *ps) {
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
int kv__pg_conn_open(pg_store *ps, int committer, pg_conn **out) {
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
        kv__pg_first_line(line, sizeof line, PQerrorMessage(c->db));
        /* Refused, timed out, or turned away (no such database, authentication): all of them
         * may pass — a restart, a failover, a grant — so callers that run for long wait them
         * out (AJ_EUNAVAILABLE), where a damaged store would be AJ_EIO. */
        rc = aj__err(AJ_EUNAVAILABLE, "cannot connect to PostgreSQL (%s): %s", ps->display, line);
    } else {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SET statement_timeout = %lld; SET lock_timeout = %lld;"
                 " SET synchronous_commit = %s",
                 (long long)ps->statement_timeout_ms, (long long)ps->lock_timeout_ms,
                 committer && ps->relaxed ? "off" : "on");
        rc = kv__pg_exec(ps, c, sql, "configuring a connection");
    }
    if (rc != 0) {
        kv__pg_conn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* A connection for the store's own use: waits out a pending backoff (so a down server sees one
 * attempt per backoff from each thread, not a storm), then tries and records the outcome. */
int kv__pg_conn_get(pg_store *ps, int committer, pg_conn **out) {
    int64_t left = kv__pg_down_left_ms(ps);
    if (left > 0) {
        aj__sleep_ms(left);
    }
    int rc = kv__pg_conn_open(ps, committer, out);
    down_note(ps, rc == AJ_EUNAVAILABLE);
    return rc;
}

int kv__pg_prepare(pg_store *ps, pg_conn *c) {
    if (c->prepared) {
        return 0;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        char name[8];
        snprintf(name, sizeof name, "q%d", i);
        PGresult *r = PQprepare(c->db, name, pg_sql[i], 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? 0 : kv__pg_err(ps, c->db, r, "preparing a statement");
        PQclear(r);
        if (rc != 0) {
            return rc;
        }
    }
    c->prepared = 1;
    return 0;
}

/* Runs prepared statement `q` with binary parameters and results. */
PGresult *kv__pg_run(pg_conn *c, int q, int n, const char *const *vals, const int *lens) {
    char name[8];
    snprintf(name, sizeof name, "q%d", q);
    int fmts[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert(n <= 8);
    return PQexecPrepared(c->db, name, n, vals, lens, fmts, 1);
}

uint64_t kv__pg_u64(const PGresult *r, int row, int col) {
    if (PQgetlength(r, row, col) != 8) {
        return 0;
    }
    return aj__get_u64be((const uint8_t *)PQgetvalue(r, row, col));
}

/* ---------------------------------------------------------------------------------------------
 * Binary array parameters
 * ------------------------------------------------------------------------------------------- */

void kv__pg_arr_begin(aj_buf *b, uint32_t oid, size_t n) {
    aj__buf_reset(b);
    aj__buf_add_u32be(b, n > 0 ? 1 : 0); /* dimensions */
    aj__buf_add_u32be(b, 0);             /* no NULLs */
    aj__buf_add_u32be(b, oid);
    if (n > 0) {
        aj__buf_add_u32be(b, (uint32_t)n);
        aj__buf_add_u32be(b, 1); /* lower bound */
    }
}

void kv__pg_arr_bytes(aj_buf *b, const uint8_t *p, size_t n) {
    aj__buf_add_u32be(b, (uint32_t)n);
    aj__buf_add(b, p, n);
}

/* ---------------------------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------------------------- */

int kv__pg_pool_take(pg_store *ps, pg_conn **out) {
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
        int rc = kv__pg_conn_get(ps, 0, &c);
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
void kv__pg_pool_give(pg_store *ps, pg_conn *c) {
    PQclear(c->lent);
    c->lent = NULL;
    int bad = kv__pg_conn_bad(c);
    if (bad) {
        kv__pg_conn_close(c);
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
