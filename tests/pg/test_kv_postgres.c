/*
 * test_kv_postgres.c — what the PostgreSQL backend adds beyond the conformance suite: URLs and
 * their options, a server that is down at open or restarts under an open store, the schema's
 * format rule, the pool and timeouts, ambiguous commits, and validation of absent keys between
 * two stores committing at once. Runs under tests/pg/pg_harness.sh (AJ_TEST_PG_URL,
 * AJ_TEST_PG_HARNESS); each case gets a fresh database.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv.h"
#include "util/clock.h"

#define RACE_ROUNDS 200 /* rounds of the absent-key race */

typedef struct fx {
    char *db;
    kv_store *s;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->db = aj_test_pg_db();
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    kv_close(f->s);
    aj_test_pg_drop(f->db);
    free(f);
    return 0;
}

/* Opens the case's database with URL options `query` (may be NULL). */
static kv_store *open_db(fx *f, const char *query) {
    char *url = aj_test_pg_url(f->db, query);
    kv_store *s = NULL;
    int rc = kv_open(&s, url, NULL);
    if (rc != 0) {
        fail_msg("kv_open(%s): %s: %s", url, aj_err_name(rc), aj_errmsg());
    }
    free(url);
    return s;
}

static int put_rc(kv_store *s, const char *k, const char *v) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_put(t, k, strlen(k), v, strlen(v)), 0);
    return kv_commit(t, KV_SYNC, NULL, NULL, NULL);
}

static int get_rc(kv_store *s, const char *k, char *buf, size_t size) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    const uint8_t *v;
    size_t vl;
    int rc = kv_get(t, k, strlen(k), &v, &vl);
    if (rc == 0) {
        assert_true(vl < size);
        memcpy(buf, v, vl);
        buf[vl] = '\0';
    }
    kv_abort(t);
    return rc;
}

static void harness(const char *action) {
    const char *h = getenv("AJ_TEST_PG_HARNESS");
    assert_non_null(h);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "bash '%s' %s", h, action);
    if (system(cmd) != 0) {
        fail_msg("%s failed", cmd);
    }
}

static void test_bad_urls(void **state) {
    (void)state;
    static const struct {
        const char *url;
        const char *msg;
    } cases[] = {
        {"postgres://127.0.0.1:notaport/db", "port"},
        {"postgresql://h/db?nosuchparam=1", "not a valid PostgreSQL URL"},
        {"postgres://h/db?aj_pool=0", "aj_pool=0 is out of range"},
        {"postgres://h/db?aj_pool=x", "aj_pool='x' is not a number"},
        {"postgres://h/db?aj_bogus=1", "unknown store URL option 'aj_bogus'"},
        {"postgres:/h/db", "unknown store URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kv_store *s = NULL;
        int rc = kv_open(&s, cases[i].url, NULL);
        if (rc != AJ_EINVAL || strstr(aj_errmsg(), cases[i].msg) == NULL) {
            fail_msg("%s: %s %s (want AJ_EINVAL naming '%s')", cases[i].url, aj_err_name(rc),
                     aj_errmsg(), cases[i].msg);
        }
        assert_null(s);
    }
}

static void test_server_down_at_open(void **state) {
    (void)state;
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    kv_store *s = NULL;
    int64_t t0 = aj__mono_us();
    int rc = kv_open(&s, "postgresql://postgres:secret@127.0.0.1:1/db", NULL);
    assert_int_equal(rc, AJ_EUNAVAILABLE);
    assert_null(s);
    const char *msg = aj_errmsg();
    if (strstr(msg, "cannot connect to PostgreSQL (database db at 127.0.0.1:1 as postgres)") ==
        NULL) {
        fail_msg("message: %s", msg);
    }
    assert_null(strstr(msg, "secret")); /* the password never appears */
    assert_true(aj__mono_us() - t0 < 20 * 1000000);
}

static void test_missing_database(void **state) {
    (void)state;
    char *url = aj_test_pg_url("no_such_database", NULL);
    kv_store *s = NULL;
    assert_int_equal(kv_open(&s, url, NULL), AJ_EUNAVAILABLE);
    assert_non_null(strstr(aj_errmsg(), "no_such_database"));
    assert_non_null(strstr(aj_errmsg(), "does not exist"));
    free(url);
}

static void test_env_url(void **state) {
    fx *f = *state;
    /* "postgres://" alone: everything from the PG* variables. */
    char port[16];
    snprintf(port, sizeof port, "%s", getenv("AJ_TEST_PG_PORT"));
    setenv("PGHOST", "127.0.0.1", 1);
    setenv("PGPORT", port, 1);
    setenv("PGUSER", "postgres", 1);
    setenv("PGDATABASE", f->db, 1);
    int rc = kv_open(&f->s, "postgres://", NULL);
    unsetenv("PGHOST");
    unsetenv("PGPORT");
    unsetenv("PGUSER");
    unsetenv("PGDATABASE");
    if (rc != 0) {
        fail_msg("kv_open(postgres://): %s", aj_errmsg());
    }
    assert_string_equal(kv_backend_name(f->s), "postgres");
    assert_int_equal(put_rc(f->s, "k", "v"), 0);
    char out[64];
    aj_test_pg_exec(f->db, "SELECT count(*) FROM aj_kv", out, sizeof out);
    assert_string_equal(out, "1");
}

static void test_format_rule(void **state) {
    fx *f = *state;
    /* Other tables in the database are left alone. */
    aj_test_pg_exec(f->db, "CREATE TABLE orders(id int); INSERT INTO orders VALUES (7)", NULL, 0);
    f->s = open_db(f, NULL);
    assert_int_equal(put_rc(f->s, "k", "v"), 0);
    kv_close(f->s);
    f->s = NULL;
    char out[64];
    aj_test_pg_exec(f->db, "SELECT id FROM orders", out, sizeof out);
    assert_string_equal(out, "7");

    /* A newer format is refused, and nothing is changed. */
    aj_test_pg_exec(f->db, "UPDATE aj_meta SET val = 2 WHERE name = 'format_version'", NULL, 0);
    char *url = aj_test_pg_url(f->db, NULL);
    kv_store *s = NULL;
    assert_int_equal(kv_open(&s, url, NULL), AJ_EFORMAT);
    if (strstr(aj_errmsg(), "store format 2 is newer than this aj supports (1)") == NULL) {
        fail_msg("message: %s", aj_errmsg());
    }
    aj_test_pg_exec(f->db, "SELECT val FROM aj_meta WHERE name = 'format_version'", out,
                    sizeof out);
    assert_string_equal(out, "2");
    aj_test_pg_exec(f->db, "SELECT encode(v, 'escape') FROM aj_kv WHERE k = 'k'", out, sizeof out);
    assert_string_equal(out, "v");

    /* No format row, or an aj_kv without aj_meta: not an aj store. */
    aj_test_pg_exec(f->db, "DELETE FROM aj_meta", NULL, 0);
    assert_int_equal(kv_open(&s, url, NULL), AJ_EFORMAT);
    assert_non_null(strstr(aj_errmsg(), "no valid format_version"));
    aj_test_pg_exec(f->db, "DROP TABLE aj_meta", NULL, 0);
    assert_int_equal(kv_open(&s, url, NULL), AJ_EFORMAT);
    assert_non_null(strstr(aj_errmsg(), "has a table aj_kv but no aj_meta"));
    aj_test_pg_exec(f->db, "SELECT count(*) FROM aj_kv", out, sizeof out);
    assert_string_equal(out, "1");
    free(url);
}

static void test_restart(void **state) {
    fx *f = *state;
    f->s = open_db(f, NULL);
    kv_store *other = open_db(f, NULL);
    assert_int_equal(put_rc(f->s, "before", "1"), 0);
    /* Two snapshot connections in the pool, both dead after the restart. */
    kv_txn *t1, *t2;
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t1), 0);
    assert_int_equal(kv_begin(f->s, &t2), 0);
    assert_int_equal(kv_get(t1, "before", 6, &v, &vl), 0);
    assert_int_equal(kv_get(t2, "before", 6, &v, &vl), 0);
    kv_abort(t1);
    kv_abort(t2);

    harness("restart"); /* pg_ctl restart -m immediate: a crash, then ready again */

    /* The dead idle connections are replaced without the callers seeing an error. */
    char buf[16];
    assert_int_equal(get_rc(f->s, "before", buf, sizeof buf), 0);
    assert_string_equal(buf, "1");
    assert_int_equal(get_rc(f->s, "before", buf, sizeof buf), 0);
    int rc = put_rc(f->s, "after", "2");
    if (rc != 0) {
        fail_msg("commit after restart: %s", aj_errmsg());
    }
    /* The listener reconnects too: another store's commit wakes this one. */
    uint64_t seen = kv_change_seq(f->s);
    int64_t deadline = aj__mono_us() + 20 * 1000000;
    for (;;) {
        assert_int_equal(put_rc(other, "ping", "x"), 0);
        kv_wait_change(f->s, seen, 200);
        if (kv_change_seq(f->s) != seen) {
            break;
        }
        assert_true(aj__mono_us() < deadline);
    }
    kv_close(other);
}

static void stop_server(void *ud) {
    (void)ud;
    harness("stop");
}

static void test_ambiguous_commit(void **state) {
    fx *f = *state;
    f->s = open_db(f, "aj_resolve_ms=1500");
    char buf[16];
    /* COMMIT reached the server, the answer was lost: the backend learns it committed. */
    kv_postgres_cut_at_commit(f->s, 1, NULL, NULL);
    int rc = put_rc(f->s, "a", "1");
    if (rc != 0) {
        fail_msg("cut after COMMIT: %s: %s", aj_err_name(rc), aj_errmsg());
    }
    assert_int_equal(get_rc(f->s, "a", buf, sizeof buf), 0);
    /* The connection broke before COMMIT: not committed, and said so. */
    kv_postgres_cut_at_commit(f->s, 2, NULL, NULL);
    assert_int_equal(put_rc(f->s, "b", "1"), AJ_EUNAVAILABLE);
    assert_non_null(strstr(aj_errmsg(), "the commit did not happen"));
    assert_int_equal(get_rc(f->s, "b", buf, sizeof buf), AJ_ENOTFOUND);
    /* The server is gone before the outcome can be learned: AJ_EAMBIGUOUS, never a plain
     * failure. */
    kv_postgres_cut_at_commit(f->s, 1, stop_server, NULL);
    rc = put_rc(f->s, "c", "1");
    harness("start");
    assert_int_equal(rc, AJ_EAMBIGUOUS);
    assert_non_null(strstr(aj_errmsg(), "may have been applied"));
    /* The store goes on: new commits succeed once the backoff has passed. */
    int64_t deadline = aj__mono_us() + 20 * 1000000;
    while ((rc = put_rc(f->s, "d", "1")) != 0) {
        assert_int_equal(rc, AJ_EUNAVAILABLE);
        assert_true(aj__mono_us() < deadline);
        aj__sleep_ms(100);
    }
    /* Only this batch's tokens ever remain. */
    char out[32];
    aj_test_pg_exec(f->db, "SELECT count(*) FROM aj_commits", out, sizeof out);
    assert_true(atoi(out) <= 3);
}

static void test_pool_exhausted(void **state) {
    fx *f = *state;
    f->s = open_db(f, "aj_pool=1&aj_pool_wait_ms=200");
    assert_int_equal(put_rc(f->s, "k", "v"), 0);
    kv_txn *t1, *t2;
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t1), 0);
    assert_int_equal(kv_get(t1, "k", 1, &v, &vl), 0);
    assert_int_equal(kv_begin(f->s, &t2), 0);
    assert_int_equal(kv_get(t2, "k", 1, &v, &vl), AJ_EBUSY);
    assert_non_null(strstr(aj_errmsg(), "all 1 connections of the PostgreSQL pool"));
    kv_abort(t1);
    assert_int_equal(kv_get(t2, "k", 1, &v, &vl), 0);
    kv_abort(t2);
}

/* Holds the advisory lock of key "k" from a plain connection, so commits touching it wait. */
typedef struct holder {
    char *db;
    char sql[256];
    atomic_int locked;
} holder;

static void *holder_main(void *arg) {
    holder *h = arg;
    atomic_store(&h->locked, 1);
    char out[64];
    aj_test_pg_try(h->db, h->sql, out, sizeof out);
    return NULL;
}

static void lock_wait_case(fx *f, const char *query, int want, const char *msg) {
    f->s = open_db(f, query);
    holder h = {.db = f->db};
    snprintf(h.sql, sizeof h.sql,
             "BEGIN; SELECT pg_advisory_xact_lock(%lld); SELECT pg_sleep(3); COMMIT",
             (long long)kv__key_hash((const uint8_t *)"k", 1));
    atomic_init(&h.locked, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, holder_main, &h), 0);
    aj__sleep_ms(500); /* the holder has its lock */
    int rc = put_rc(f->s, "k", "v");
    if (rc != want || strstr(aj_errmsg(), msg) == NULL) {
        fail_msg("%s: %s %s (want %s)", query, aj_err_name(rc), aj_errmsg(), aj_err_name(want));
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(put_rc(f->s, "k", "v"), 0);
}

static void test_lock_timeout(void **state) {
    lock_wait_case(*state, "aj_lock_timeout_ms=200", AJ_EBUSY, "lock timeout");
}

static void test_statement_timeout(void **state) {
    lock_wait_case(*state, "aj_statement_timeout_ms=200&aj_lock_timeout_ms=0", AJ_ETIMEDOUT,
                   "statement timeout");
}

/* Two stores race on the invariant "at most one of a and b exists": each round, each store reads
 * both and, seeing neither, creates its own. Validating absent keys must let only one win. */
typedef struct racer {
    kv_store *s;
    const char *mine;
    atomic_int *go;
    int round;
    int won;
} racer;

static void *racer_main(void *arg) {
    racer *r = arg;
    kv_txn *t;
    assert_int_equal(kv_begin(r->s, &t), 0);
    const uint8_t *v;
    size_t vl;
    char a[16], b[16], mine[16];
    snprintf(a, sizeof a, "a%d", r->round);
    snprintf(b, sizeof b, "b%d", r->round);
    snprintf(mine, sizeof mine, "%s%d", r->mine, r->round);
    int na = kv_get(t, a, strlen(a), &v, &vl);
    int nb = kv_get(t, b, strlen(b), &v, &vl);
    while (atomic_load(r->go) == 0) {
    }
    if (na == AJ_ENOTFOUND && nb == AJ_ENOTFOUND) {
        assert_int_equal(kv_put(t, mine, strlen(mine), "x", 1), 0);
        int rc = kv_commit(t, KV_SYNC, NULL, NULL, NULL);
        assert_true(rc == 0 || rc == AJ_ECONFLICT);
        r->won = rc == 0;
    } else {
        kv_abort(t);
    }
    return NULL;
}

static void test_absent_keys_race(void **state) {
    fx *f = *state;
    f->s = open_db(f, NULL);
    kv_store *other = open_db(f, NULL);
    int both = 0, conflicts = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        atomic_int go;
        atomic_init(&go, 0);
        racer r[2] = {{f->s, "a", &go, i, 0}, {other, "b", &go, i, 0}};
        pthread_t th[2];
        for (int j = 0; j < 2; j++) {
            assert_int_equal(pthread_create(&th[j], NULL, racer_main, &r[j]), 0);
        }
        aj__sleep_ms(2);
        atomic_store(&go, 1);
        for (int j = 0; j < 2; j++) {
            assert_int_equal(pthread_join(th[j], NULL), 0);
        }
        both += r[0].won && r[1].won;
        conflicts += !r[0].won || !r[1].won;
    }
    printf("# absent-key race: %d rounds, %d with a conflict, %d with both committed\n",
           RACE_ROUNDS, conflicts, both);
    assert_int_equal(both, 0);
    kv_close(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_server_down_at_open),
        cmocka_unit_test(test_missing_database),
        cmocka_unit_test_setup_teardown(test_env_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_keys_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ambiguous_commit, setup, teardown),
    };
    return cmocka_run_group_tests_name("kv_postgres", tests, NULL, NULL);
}
