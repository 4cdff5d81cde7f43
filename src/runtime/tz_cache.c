/*
 * tz_cache.c — reading TZif zone files and keeping the parsed zones (see tz_cache.h). The parser
 * and the conversions are pure and live in core (src/core/tz.c); this file is the only place
 * that opens zone files. A cached zone is never reloaded: a tzdata update reaches an engine
 * opened after it.
 */
#include "runtime/tz_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/mem.h"

/* Longest path of a zone file. */
#define TZ_PATH_MAX 512

struct aj__tz_cache {
    pthread_mutex_t mu;
    tz_zone **zones;
    size_t n, cap;
};

int tz_load(const char *name, const char *dir, tz_zone **out) {
    int rc = tz_name_check(name);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(name, "UTC") == 0) {
        return tz_utc(out);
    }
    if (dir == NULL) {
        const char *env = getenv("TZDIR");
        dir = env != NULL && env[0] != '\0' ? env : TZ_DEFAULT_DIR;
    }
    char path[TZ_PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        return aj__err(AJ_EINVAL, "time zone path for '%s' is too long", name);
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) {
            return aj__err(AJ_ENOTFOUND, "unknown time zone '%s' (no file %s)", name, path);
        }
        return aj__err(AJ_EIO, "cannot read time zone file %s: %s", path, strerror(errno));
    }
    uint8_t *buf = aj__malloc(TZ_FILE_MAX);
    size_t n = 0;
    if (buf == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory loading time zone '%s'", name);
    } else {
        n = fread(buf, 1, TZ_FILE_MAX, f);
        if (ferror(f)) {
            /* A directory opens but cannot be read: not a zone. */
            rc =
                aj__err(AJ_ENOTFOUND, "unknown time zone '%s' (%s is not a zone file)", name, path);
        } else if (n == TZ_FILE_MAX) {
            rc =
                aj__err(AJ_EINVAL, "time zone file %s is larger than %zu bytes", path, TZ_FILE_MAX);
        }
    }
    fclose(f);
    if (rc == 0) {
        rc = tz_parse(name, buf, n, out);
    }
    aj__free(buf);
    return rc;
}

int aj__tz_cache_new(aj__tz_cache **out) {
    aj__tz_cache *c = aj__calloc(1, sizeof *c);
    if (c == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory for the time zone cache");
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

void aj__tz_cache_free(aj__tz_cache *c) {
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        tz_free(c->zones[i]);
    }
    aj__free(c->zones);
    pthread_mutex_destroy(&c->mu);
    aj__free(c);
}

static const tz_zone *find(const aj__tz_cache *c, const char *name) {
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->zones[i]->name, name) == 0) {
            return c->zones[i];
        }
    }
    return NULL;
}

int aj__tz_cache_get(aj__tz_cache *c, const char *name, const tz_zone **out) {
    pthread_mutex_lock(&c->mu);
    const tz_zone *z = find(c, name);
    pthread_mutex_unlock(&c->mu);
    if (z != NULL) {
        *out = z;
        return 0;
    }
    /* Load outside the lock: a file read must not hold up threads whose zone is cached. */
    tz_zone *fresh = NULL;
    int rc = tz_load(name, NULL, &fresh);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    z = find(c, name); /* another thread may have loaded it meanwhile */
    if (z == NULL && c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        tz_zone **nz = c->n < TZ_CACHE_MAX ? aj__realloc(c->zones, cap * sizeof *nz) : NULL;
        if (nz == NULL) {
            pthread_mutex_unlock(&c->mu);
            tz_free(fresh);
            return c->n < TZ_CACHE_MAX
                       ? aj__err(AJ_ENOMEM, "out of memory caching time zone '%s'", name)
                       : aj__err(AJ_EINVAL, "more than %d time zones in use", TZ_CACHE_MAX);
        }
        c->zones = nz;
        c->cap = cap;
    }
    if (z != NULL) {
        tz_free(fresh);
    } else {
        c->zones[c->n++] = fresh;
        z = fresh;
    }
    pthread_mutex_unlock(&c->mu);
    *out = z;
    return 0;
}
