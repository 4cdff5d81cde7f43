/*
 * harness.h — shared helpers for the C tests: temporary directories, a simulated clock, and
 * cmocka includes in the order cmocka needs.
 */
#ifndef AJ_TEST_HARNESS_H
#define AJ_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aj.h"

/* Creates a fresh temporary directory (removed by aj_test_rmtree) and returns its path (static
 * storage per call site is not needed: the string is heap-allocated and owned by the caller). */
char *aj_test_tmpdir(void);
/* Removes a directory tree. */
void aj_test_rmtree(const char *path);
/* A path inside dir: dir/name (heap-allocated). */
char *aj_test_path(const char *dir, const char *name);

/* A simulated clock: starts at `start_ms` and moves only when advanced. Thread-safe. */
typedef struct aj_test_clock {
    aj_clock clock; /* pass &c.clock to aj_engine_opts */
    volatile int64_t now;
} aj_test_clock;

void aj_test_clock_init(aj_test_clock *c, int64_t start_ms);
void aj_test_clock_advance(aj_test_clock *c, int64_t ms);

/* Workflows: starts `type` as `id` with `input` (a string), failing the test on an error. */
void aj_test_wf_start(aj_engine *e, const char *type, const char *id, const char *input);
/* Waits (a minute at most) until workflow `id` ends and fails the test unless it ended in
 * `want`; returns its info (free with aj_wf_info_free). */
aj_wf_info *aj_test_wf_finish(aj_engine *e, const char *id, aj_wf_state want);
/* Waits (a minute at most) until workflow `id`'s run has recorded at least `events` events,
 * failing the test otherwise. */
void aj_test_wf_wait_events(aj_engine *e, const char *id, uint64_t events);

/* Forks a worker process: it opens its engine with open_engine(url) (which registers what it
 * runs), starts a worker pool and runs until SIGTERM, then stops gracefully (its counters reach
 * the store) and exits 0. Call with no engine open in the calling process (no threads across
 * fork). Returns the child's pid. */
int aj_test_worker_process(const char *url, aj_engine *(*open_engine)(const char *url));

/* Programs that fork worker processes cannot use cmocka's assertions across processes: they
 * stop with a message instead. */
#define AJ_TEST_CHECK(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Appends "text\n" (text: n bytes, cut at 256) to the ledger file at `path`, in one write with
 * O_APPEND, so lines from several processes stay whole: how tests count executions of user code.
 * 0, or -1 when the file cannot be written. */
int aj_test_ledger_add(const char *path, const char *text, size_t n);

/* PostgreSQL (tests run under tests/pg/pg_harness.sh, which sets AJ_TEST_PG_URL; pg_db.c). */
/* Creates a fresh database on the test server; returns its name (free with aj_test_pg_drop). */
char *aj_test_pg_db(void);
/* Drops a database made by aj_test_pg_db (ending its connections) and frees the name. */
void aj_test_pg_drop(char *db);
/* The store URL of database `db` on the test server, with `query` (may be NULL) as its query
 * string ("aj_pool=1"). Heap-allocated. */
char *aj_test_pg_url(const char *db, const char *query);
/* Runs SQL in database `db` (NULL: the server's own "postgres") through libpq, beside any store:
 * 0, or -1 with the error in out. `out` (may be NULL) receives the first row's first value. */
int aj_test_pg_try(const char *db, const char *sql, char *out, size_t size);
/* Like aj_test_pg_try, failing the test on an error. */
void aj_test_pg_exec(const char *db, const char *sql, char *out, size_t size);

#endif
