/*
 * pg_url.c — the PostgreSQL backend's store URL: libpq's URI form (postgres://, postgresql://)
 * plus aj's own options in the query string (aj_pool, aj_pool_wait_ms, aj_statement_timeout_ms,
 * aj_lock_timeout_ms, aj_resolve_ms), which are taken out before libpq sees the URL (libpq
 * refuses parameters it does not know). Also builds the name messages use ("database D at H:P as
 * U"), which never holds the password.
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
int kv__pg_parse_url(pg_store *ps, const char *url) {
    size_t len = strlen(url);
    if (len > PG_URL_MAX) {
        return aj__err(AJ_EINVAL, "store URL of %zu bytes is over %d", len, PG_URL_MAX);
    }
    aj_buf b = AJ_BUF_INIT;
    const char *q = strchr(url, '?');
    aj__buf_add(&b, url, q != NULL ? (size_t)(q - url) : len);
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
            aj__buf_add_u8(&b, (uint8_t)sep);
            aj__buf_add(&b, p, n);
            sep = '&';
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    aj__buf_nul(&b);
    if (rc == 0 && b.oom) {
        rc = aj__err(AJ_ENOMEM, "out of memory parsing a store URL");
    }
    char *err = NULL;
    PQconninfoOption *opts = rc == 0 ? PQconninfoParse((const char *)b.p, &err) : NULL;
    if (rc == 0 && opts == NULL) {
        char line[AJ__ERRMSG_MAX];
        kv__pg_first_line(line, sizeof line, err);
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
    aj__buf_free(&b);
    return rc;
}
