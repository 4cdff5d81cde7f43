/*
 * pg_schema.c — the PostgreSQL backend's tables: created on first open, checked on every open,
 * under a transaction-scoped advisory lock (PG_SCHEMA_LOCK) so that processes opening a new
 * store at once create it once.
 *
 * Upgrade rule: a newer format_version is refused unchanged (AJ_EFORMAT); an older one would be
 * migrated here, under the schema lock, before use. A schema holding other tables is fine (ours
 * are prefixed aj_); one holding an aj_kv without aj_meta is refused, never reused or dropped.
 *
 * Layer: src/store, part of the PostgreSQL backend (kv_postgres_int.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kv_postgres_int.h"
#include "util/err.h"
#include "util/mem.h"

/* ---------------------------------------------------------------------------------------------
 * Open: the schema
 * ------------------------------------------------------------------------------------------- */

/* Runs a query returning one row of text values; *out receives the result (caller clears). */
static int query_row(pg_store *ps, pg_conn *c, const char *sql, const char *what, PGresult **out) {
    PGresult *r = PQexec(c->db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = kv__pg_err(ps, c->db, r, what);
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

int kv__pg_setup_schema(pg_store *ps, pg_conn *c) {
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
             (long long)PG_SCHEMA_LOCK);
    int rc = kv__pg_exec(ps, c, sql, "locking the schema");
    int exists = 0;
    if (rc == 0) {
        rc = check_schema(ps, c, &exists);
    }
    if (rc == 0 && !exists) {
        rc = kv__pg_exec(ps, c,
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
        rc = kv__pg_exec(
            ps, c, "DELETE FROM aj_commits WHERE at < now() - interval '" PG_TOKEN_TTL "'; COMMIT",
            "collecting old commit tokens");
    }
    if (rc != 0 && !kv__pg_conn_bad(c) && PQtransactionStatus(c->db) != PQTRANS_IDLE) {
        char msg[AJ__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        kv__pg_exec(ps, c, "ROLLBACK", "rolling back");
        aj__err(rc, "%s", msg);
    }
    return rc;
}
