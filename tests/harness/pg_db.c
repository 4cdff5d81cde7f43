/*
 * pg_db.c — helpers for tests that run against the private PostgreSQL server of
 * tests/pg/pg_harness.sh (AJ_TEST_PG_URL): a fresh database per case, and statements run
 * beside the store (to damage or inspect it) through libpq directly.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static const char *pg_base(void) {
    const char *base = getenv("AJ_TEST_PG_URL");
    if (base == NULL) {
        fail_msg("AJ_TEST_PG_URL is not set: run under tests/pg/pg_harness.sh");
    }
    return base;
}

char *aj_test_pg_url(const char *db, const char *query) {
    const char *base = pg_base();
    const char *auth = strstr(base, "://");
    assert_non_null(auth);
    const char *path = strchr(auth + 3, '/');
    size_t head = path != NULL ? (size_t)(path - base) : strlen(base);
    size_t n = head + strlen(db) + (query != NULL ? strlen(query) : 0) + 8;
    char *url = malloc(n);
    assert_non_null(url);
    snprintf(url, n, "%.*s/%s%s%s", (int)head, base, db, query != NULL ? "?" : "",
             query != NULL ? query : "");
    return url;
}

int aj_test_pg_try(const char *db, const char *sql, char *out, size_t size) {
    char *url = aj_test_pg_url(db != NULL ? db : "postgres", NULL);
    PGconn *c = PQconnectdb(url);
    free(url);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            rc = 0;
            if (out != NULL) {
                snprintf(out, size, "%s",
                         st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
            }
        } else if (out != NULL) {
            snprintf(out, size, "%s", PQresultErrorMessage(r));
        }
        PQclear(r);
    } else if (out != NULL) {
        snprintf(out, size, "%s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

void aj_test_pg_exec(const char *db, const char *sql, char *out, size_t size) {
    char err[512];
    if (aj_test_pg_try(db, sql, out != NULL ? out : err, out != NULL ? size : sizeof err) != 0) {
        fail_msg("%s: %s", sql, out != NULL ? out : err);
    }
}

char *aj_test_pg_db(void) {
    static int n;
    char *db = malloc(64);
    assert_non_null(db);
    snprintf(db, 64, "aj_test_%d_%d", (int)getpid(), ++n);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    aj_test_pg_exec(NULL, sql, NULL, 0);
    return db;
}

void aj_test_pg_drop(char *db) {
    if (db == NULL) {
        return;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", db);
    aj_test_pg_exec(NULL, sql, NULL, 0);
    free(db);
}
