/*
 * kv_postgres_int.h — what the files of the PostgreSQL backend share: the store's state, its
 * connections, and the helpers each file provides. Not used outside src/store/kv_postgres*.c and
 * src/store/pg_*.c.
 *
 * The backend is split by concept: kv_postgres.c (the design, open and close, snapshots, change
 * notification), pg_url.c (the URL and its aj_ options), pg_conn.c (errors, connections, the
 * connect backoff, the pool, statements), pg_schema.c (creating and checking the tables),
 * pg_commit.c (one commit batch: locks, validation, writes, commit tokens). The queue and the
 * committer thread are shared with SQLite (commit_queue.c).
 *
 * Layer: src/store, a backend below kv.c.
 */
#ifndef AJ_KV_POSTGRES_INT_H
#define AJ_KV_POSTGRES_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/commit_queue.h"
#include "store/kv.h"
#include "util/buf.h"

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

#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20

/* The prepared statements of every connection (their text: pg_conn.c). */
enum { Q_GET, Q_SCAN_F, Q_SCAN_FE, Q_SCAN_R, Q_SCAN_RE, Q_LOCK, Q_VERS, Q_WRITE, Q_COUNT };

typedef struct pg_conn {
    PGconn *db;
    PGresult *lent; /* the result a snap_get value points into */
    int prepared;   /* the statements are prepared on this connection */
    struct pg_conn *next;
} pg_conn;

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

    kv_cq *cq;      /* group commit: the queue and its committer thread */
    pg_conn *wconn; /* the committer's connection (committer thread only) */
    uint64_t token_seed;
    int64_t prev_token; /* the last batch's token, deleted by the next batch (0: none) */

    pthread_mutex_t mu; /* pool, cut */
    pthread_cond_t pool_cv;
    pg_cut cut;
    pg_conn *free_conns;
    size_t n_conns; /* open pool connections, free or lent */

    pthread_mutex_t downmu; /* connect backoff */
    int64_t down_until_us;  /* no connect attempt before this (0: none pending) */
    int64_t backoff_ms;

    pthread_mutex_t chmu; /* change notification */
    pthread_cond_t change_cv;
    atomic_uint_fast64_t change;
    pg_conn *lconn; /* the listener's first connection, until its thread takes it */
    int wake_fd[2]; /* wakes the listener's poll() at close */
    int listen_stop;
    pthread_t listener;
    int listener_started;
} pg_store;

/* A zero byte: the pointer libpq gets for an empty bytea. */
extern const uint8_t kv__pg_empty[1];

/* pg_url.c: takes the aj_ options out of the URL, checks the rest with libpq, and sets url and
 * display. */
int kv__pg_parse_url(pg_store *ps, const char *url);

/* pg_conn.c: errors. */
void kv__pg_first_line(char *out, size_t size, const char *msg);
/* Sets the error message from a failed result (or connection) and returns the AJ_E* code. A
 * broken connection is AJ_EIO whatever the statement was. */
int kv__pg_err(const pg_store *ps, PGconn *db, const PGresult *res, const char *what);
int kv__pg_conn_bad(const pg_conn *c);

/* pg_conn.c: connections. */
void kv__pg_conn_close(pg_conn *c);
int kv__pg_exec(const pg_store *ps, pg_conn *c, const char *sql, const char *what);
int64_t kv__pg_down_left_ms(pg_store *ps);
int kv__pg_conn_open(pg_store *ps, int committer, pg_conn **out);
int kv__pg_conn_get(pg_store *ps, int committer, pg_conn **out);
int kv__pg_prepare(pg_store *ps, pg_conn *c);
PGresult *kv__pg_run(pg_conn *c, int q, int n, const char *const *vals, const int *lens);
uint64_t kv__pg_u64(const PGresult *r, int row, int col);
void kv__pg_arr_begin(aj_buf *b, uint32_t oid, size_t n);
void kv__pg_arr_bytes(aj_buf *b, const uint8_t *p, size_t n);
int kv__pg_pool_take(pg_store *ps, pg_conn **out);
void kv__pg_pool_give(pg_store *ps, pg_conn *c);

/* pg_schema.c: creates or checks the tables (inside its own transaction on `c`). */
int kv__pg_setup_schema(pg_store *ps, pg_conn *c);

/* pg_commit.c: one batch (kv_cq_run_fn; `ud` is the pg_store). */
int kv__pg_run_batch(void *ud, kv_cq_req *reqs, size_t n, int *synced);

/* kv_postgres.c: bumps the change counter and wakes waiters. */
void kv__pg_bump_change(pg_store *ps);

#endif /* AJ_KV_POSTGRES_INT_H */
