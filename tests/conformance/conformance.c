/*
 * conformance.c — the storage conformance suite: every backend must pass it, unchanged.
 *
 * Usage: conformance mem|sqlite|postgres. Each case opens a fresh store ("mem:", an SQLite file in
 * a fresh temporary directory, or a fresh database on the PostgreSQL server AJ_TEST_PG_URL names —
 * tests/pg/pg_harness.sh starts one) and closes it afterwards. Cases that need a capability the
 * backend does not declare (durability, several processes, backups) say so and are skipped.
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/kv.h"
#include "util/clock.h"

#define COUNTER_THREADS 8      /* threads incrementing one counter */
#define COUNTER_INCREMENTS 500 /* increments per thread or process */

static const char *g_backend = "mem";

typedef struct fx {
    char *dir;
    char *url;
    char *pg_db; /* the case's PostgreSQL database, dropped at teardown */
    kv_store *s;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    if (strcmp(g_backend, "sqlite") == 0) {
        f->dir = aj_test_tmpdir();
        char *path = aj_test_path(f->dir, "kv.db");
        f->url = malloc(strlen(path) + 8);
        assert_non_null(f->url);
        sprintf(f->url, "sqlite:%s", path);
        free(path);
    } else if (strcmp(g_backend, "postgres") == 0) {
        f->pg_db = aj_test_pg_db();
        f->url = aj_test_pg_url(f->pg_db, NULL);
    } else {
        f->url = strdup("mem:");
    }
    int rc = kv_open(&f->s, f->url, NULL);
    if (rc != 0) {
        fprintf(stderr, "kv_open(%s): %s\n", f->url, aj_errmsg());
    }
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    kv_close(f->s);
    if (f->dir != NULL) {
        aj_test_rmtree(f->dir);
        free(f->dir);
    }
    aj_test_pg_drop(f->pg_db);
    free(f->url);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static uint64_t put1(kv_store *s, const char *k, const char *v) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_put(t, k, strlen(k), v, strlen(v)), 0);
    uint64_t ver = 0;
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, &ver), 0);
    assert_true(ver > 0);
    return ver;
}

static void del1(kv_store *s, const char *k) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_del(t, k, strlen(k)), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
}

/* Reads a key in a fresh transaction into buf (NUL-terminated): 0 or AJ_ENOTFOUND. */
static int get1(kv_store *s, const char *k, char *buf, size_t size) {
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

/* The version of a key as a scan reports it (0: absent). */
static int ver_cb(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                  uint64_t ver) {
    (void)k, (void)kl, (void)v, (void)vl;
    *(uint64_t *)ud = ver;
    return 1;
}

static uint64_t version_of(kv_store *s, const char *k) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    uint64_t ver = 0;
    size_t kl = strlen(k);
    char end[64];
    memcpy(end, k, kl);
    end[kl] = '\0';
    assert_int_equal(kv_scan(t, k, kl, end, kl + 1, 0, 1, ver_cb, &ver), 0);
    kv_abort(t);
    return ver;
}

/* Collects "key=value " for each entry. */
typedef struct coll {
    char text[8192];
    size_t len;
    size_t n;
    size_t stop_after; /* 0: never stop */
} coll;

static int coll_cb(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   uint64_t ver) {
    (void)ver;
    coll *c = ud;
    /* Raw bytes: keys may hold NULs. */
    assert_true(kl + vl + 3 < sizeof c->text - c->len);
    memcpy(c->text + c->len, k, kl);
    c->text[c->len + kl] = '=';
    memcpy(c->text + c->len + kl + 1, v, vl);
    c->text[c->len + kl + 1 + vl] = ' ';
    c->len += kl + vl + 2;
    c->n++;
    return c->stop_after != 0 && c->n >= c->stop_after;
}

static const char *scan_str(kv_txn *t, const char *start, const char *end, int reverse,
                            size_t limit, coll *c) {
    memset(c, 0, sizeof *c);
    assert_int_equal(kv_scan(t, start, start ? strlen(start) : 0, end, end ? strlen(end) : 0,
                             reverse, limit, coll_cb, c),
                     0);
    if (c->len > 0) {
        c->text[c->len - 1] = '\0'; /* drop the trailing space */
    }
    return c->text;
}

static const char *prefix_str(kv_txn *t, const char *p, size_t plen, int reverse, size_t limit,
                              coll *c) {
    memset(c, 0, sizeof *c);
    assert_int_equal(kv_scan_prefix(t, p, plen, reverse, limit, coll_cb, c), 0);
    if (c->len > 0) {
        c->text[c->len - 1] = '\0';
    }
    return c->text;
}

/* Increments the 8-byte counter at "counter", retrying conflicts. Returns conflicts seen, or -1. */
static long incr(kv_store *s) {
    long conflicts = 0;
    for (;;) {
        kv_txn *t;
        if (kv_begin(s, &t) != 0) {
            return -1;
        }
        const uint8_t *v;
        size_t vl;
        uint64_t n = 0;
        int rc = kv_get(t, "counter", 7, &v, &vl);
        if (rc == 0 && vl == 8) {
            memcpy(&n, v, 8);
        } else if (rc != AJ_ENOTFOUND) {
            kv_abort(t);
            return -1;
        }
        n++;
        if (kv_put(t, "counter", 7, &n, 8) != 0) {
            kv_abort(t);
            return -1;
        }
        rc = kv_commit(t, KV_SYNC, NULL, NULL, NULL);
        if (rc == 0) {
            return conflicts;
        }
        if (rc != AJ_ECONFLICT) {
            fprintf(stderr, "increment: %s: %s\n", aj_err_name(rc), aj_errmsg());
            return -1;
        }
        conflicts++;
    }
}

static uint64_t counter_value(kv_store *s) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    const uint8_t *v;
    size_t vl;
    uint64_t n = 0;
    if (kv_get(t, "counter", 7, &v, &vl) == 0) {
        assert_int_equal(vl, 8);
        memcpy(&n, v, 8);
    }
    kv_abort(t);
    return n;
}

/* ---- cases ---- */

static void test_open_urls(void **state) {
    (void)state;
    kv_store *s = NULL;
    assert_int_equal(kv_open(&s, "redis://localhost", NULL), AJ_EINVAL);
    assert_non_null(strstr(aj_errmsg(), "unknown store URL"));
    assert_int_equal(kv_open(&s, "sqlite:", NULL), AJ_EINVAL);
    assert_int_equal(kv_open(&s, NULL, NULL), AJ_EINVAL);
    assert_null(s);
}

static void test_put_get_del(void **state) {
    fx *f = *state;
    char buf[64];
    assert_string_equal(kv_backend_name(f->s), g_backend);
    assert_int_equal(get1(f->s, "a", buf, sizeof buf), AJ_ENOTFOUND);
    put1(f->s, "a", "1");
    assert_int_equal(get1(f->s, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "1");
    put1(f->s, "a", "two");
    assert_int_equal(get1(f->s, "a", buf, sizeof buf), 0);
    assert_string_equal(buf, "two");
    put1(f->s, "empty", "");
    assert_int_equal(get1(f->s, "empty", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    del1(f->s, "a");
    assert_int_equal(get1(f->s, "a", buf, sizeof buf), AJ_ENOTFOUND);
    del1(f->s, "never-existed"); /* deleting an absent key is fine */

    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_put(t, "", 0, "x", 1), AJ_EINVAL);
    assert_int_equal(kv_get(t, "", 0, &v, &vl), AJ_EINVAL);
    assert_int_equal(kv_del(t, NULL, 0), AJ_EINVAL);
    kv_abort(t);
}

static void test_versions(void **state) {
    fx *f = *state;
    assert_int_equal(version_of(f->s, "k"), 0);
    uint64_t v1 = put1(f->s, "k", "1");
    assert_int_equal(version_of(f->s, "k"), v1);
    uint64_t v2 = put1(f->s, "k", "2");
    assert_true(v2 > v1);
    assert_int_equal(version_of(f->s, "k"), v2);
    uint64_t vo = put1(f->s, "other", "x");
    assert_true(vo > v2);
    assert_int_equal(version_of(f->s, "k"), v2); /* untouched keys keep their version */
    del1(f->s, "k");
    assert_int_equal(version_of(f->s, "k"), 0);
    uint64_t v3 = put1(f->s, "k", "3");
    assert_true(v3 > vo);

    /* A read-only commit reports no version. */
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    uint64_t out = 99;
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, &out), 0);
    assert_int_equal(out, 0);
}

static void test_order_binary(void **state) {
    fx *f = *state;
    static const struct {
        const char *k;
        size_t n;
    } keys[] = {
        {"\xff\xff", 2}, {"a\xff", 2}, {"\x00", 1}, {"b", 1},    {"a\x00", 2},
        {"\x01", 1},     {"ab", 2},    {"a", 1},    {"\xff", 1}, {"\x00\x00", 2},
    };
    /* memcmp order, a key before its extensions. */
    static const int order[] = {2, 9, 5, 7, 4, 6, 1, 3, 8, 0};
    size_t n = sizeof keys / sizeof keys[0];
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    for (size_t i = 0; i < n; i++) {
        char v[8];
        snprintf(v, sizeof v, "%zu", i);
        assert_int_equal(kv_put(t, keys[i].k, keys[i].n, v, strlen(v)), 0);
    }
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    for (int reverse = 0; reverse <= 1; reverse++) {
        coll c;
        assert_int_equal(kv_begin(f->s, &t), 0);
        scan_str(t, NULL, NULL, reverse, 0, &c);
        kv_abort(t);
        char want[256];
        size_t wl = 0;
        for (size_t j = 0; j < n; j++) {
            int i = order[reverse ? n - 1 - j : j];
            memcpy(want + wl, keys[i].k, keys[i].n);
            wl += keys[i].n;
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "=%d ", i);
        }
        want[wl - 1] = '\0';
        assert_int_equal(c.n, n);
        assert_memory_equal(c.text, want, wl);
    }
}

static void test_scans(void **state) {
    fx *f = *state;
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%02d", i);
        assert_int_equal(kv_put(t, k, 3, "v", 1), 0);
    }
    assert_int_equal(kv_put(t, "p\xff", 2, "1", 1), 0);
    assert_int_equal(kv_put(t, "p\xff\x01", 3, "2", 1), 0);
    assert_int_equal(kv_put(t, "p\xff\xff", 3, "3", 1), 0);
    assert_int_equal(kv_put(t, "q", 1, "4", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);

    coll c;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_string_equal(scan_str(t, "k05", "k10", 0, 0, &c), "k05=v k06=v k07=v k08=v k09=v");
    assert_string_equal(scan_str(t, "k05", "k10", 1, 0, &c), "k09=v k08=v k07=v k06=v k05=v");
    assert_string_equal(scan_str(t, "k05", "k10", 0, 3, &c), "k05=v k06=v k07=v");
    assert_string_equal(scan_str(t, "k05", "k10", 1, 2, &c), "k09=v k08=v");
    assert_string_equal(scan_str(t, "k18", NULL, 0, 3, &c), "k18=v k19=v p\xff=1");
    assert_string_equal(scan_str(t, "k10", "k10", 0, 0, &c), "");
    assert_string_equal(scan_str(t, "k12", "k10", 0, 0, &c), "");
    assert_string_equal(scan_str(t, "k0", "k01", 0, 0, &c), "k00=v");
    assert_string_equal(prefix_str(t, "k1", 2, 0, 2, &c), "k10=v k11=v");
    assert_string_equal(prefix_str(t, "k1", 2, 1, 2, &c), "k19=v k18=v");
    prefix_str(t, "k1", 2, 0, 0, &c);
    assert_int_equal(c.n, 10);
    assert_string_equal(prefix_str(t, "p\xff", 2, 0, 0, &c), "p\xff=1 p\xff\x01=2 p\xff\xff=3");
    assert_string_equal(prefix_str(t, "p\xff", 2, 1, 0, &c), "p\xff\xff=3 p\xff\x01=2 p\xff=1");
    assert_string_equal(prefix_str(t, "z", 1, 0, 0, &c), "");
    prefix_str(t, "", 0, 0, 0, &c);
    assert_int_equal(c.n, 24);
    /* The callback stops the scan. */
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(kv_scan(t, "k", 1, NULL, 0, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 2);
    kv_abort(t);
}

static void test_scan_merge(void **state) {
    fx *f = *state;
    put1(f->s, "a", "1");
    put1(f->s, "c", "1");
    put1(f->s, "e", "1");
    put1(f->s, "g", "1");
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_put(t, "b", 1, "2", 1), 0);
    assert_int_equal(kv_put(t, "e", 1, "2", 1), 0);
    assert_int_equal(kv_del(t, "c", 1), 0);
    assert_int_equal(kv_put(t, "h", 1, "2", 1), 0);
    assert_int_equal(kv_del(t, "zz", 2), 0); /* deleting an absent key shows nothing */
    coll c;
    assert_string_equal(scan_str(t, NULL, NULL, 0, 0, &c), "a=1 b=2 e=2 g=1 h=2");
    assert_string_equal(scan_str(t, NULL, NULL, 1, 0, &c), "h=2 g=1 e=2 b=2 a=1");
    assert_string_equal(scan_str(t, NULL, NULL, 0, 3, &c), "a=1 b=2 e=2");
    assert_string_equal(scan_str(t, NULL, NULL, 1, 2, &c), "h=2 g=1");
    assert_string_equal(scan_str(t, "b", "g", 0, 0, &c), "b=2 e=2");
    assert_string_equal(scan_str(t, "b", "g", 1, 0, &c), "e=2 b=2");
    assert_string_equal(scan_str(t, "c", "d", 0, 0, &c), "");
    kv_abort(t);

    /* Many backend entries (several batches), every third deleted or replaced by the txn. */
    assert_int_equal(kv_begin(f->s, &t), 0);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "m%04d", i);
        assert_int_equal(kv_put(t, k, 5, "b", 1), 0);
    }
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(kv_begin(f->s, &t), 0);
    for (int i = 0; i < 1000; i += 3) {
        char k[16];
        snprintf(k, sizeof k, "m%04d", i);
        if (i % 2 == 0) {
            assert_int_equal(kv_del(t, k, 5), 0);
        } else {
            assert_int_equal(kv_put(t, k, 5, "o", 1), 0);
        }
    }
    for (int reverse = 0; reverse <= 1; reverse++) {
        memset(&c, 0, sizeof c);
        assert_int_equal(kv_scan_prefix(t, "m", 1, reverse, 0, coll_cb, &c), 0);
        assert_int_equal(c.n, 1000 - 167);
        memset(&c, 0, sizeof c);
        assert_int_equal(kv_scan_prefix(t, "m", 1, reverse, 700, coll_cb, &c), 0);
        assert_int_equal(c.n, 700);
    }
    kv_abort(t);
}

typedef struct mut_ctx {
    kv_txn *t;
    int seen;
    char order[256];
} mut_ctx;

/* Deletes each key it is shown, writes a key ahead at the first one, reads inside the scan. */
static int mut_cb(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                  uint64_t ver) {
    (void)v, (void)vl, (void)ver;
    mut_ctx *m = ud;
    strncat(m->order, (const char *)k, kl);
    const uint8_t *gv;
    size_t gl;
    assert_int_equal(kv_get(m->t, "g", 1, &gv, &gl), 0);
    assert_int_equal(kv_del(m->t, k, kl), 0);
    if (m->seen++ == 0) {
        assert_int_equal(kv_put(m->t, "d", 1, "new", 3), 0);
        assert_int_equal(kv_put(m->t, "0", 1, "behind", 6), 0); /* behind the scan: not seen */
    }
    return 0;
}

static void test_scan_callback_uses_txn(void **state) {
    fx *f = *state;
    put1(f->s, "a", "1");
    put1(f->s, "c", "1");
    put1(f->s, "g", "1");
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    mut_ctx m = {.t = t};
    assert_int_equal(kv_scan(t, NULL, 0, NULL, 0, 0, 0, mut_cb, &m), 0);
    assert_string_equal(m.order, "acdg");
    coll c;
    assert_string_equal(scan_str(t, NULL, NULL, 0, 0, &c), "0=behind");
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_string_equal(scan_str(t, NULL, NULL, 0, 0, &c), "0=behind");
    kv_abort(t);
}

static void test_read_your_writes(void **state) {
    fx *f = *state;
    put1(f->s, "k", "committed");
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    const uint8_t *v, *first;
    size_t vl;
    assert_int_equal(kv_get(t, "k", 1, &first, &vl), 0);
    assert_memory_equal(first, "committed", 9);
    assert_int_equal(kv_put(t, "k", 1, "mine", 4), 0);
    assert_int_equal(kv_get(t, "k", 1, &v, &vl), 0);
    assert_int_equal(vl, 4);
    assert_memory_equal(v, "mine", 4);
    const uint8_t *lent = v;
    assert_int_equal(kv_put(t, "k", 1, "again", 5), 0);
    /* Values handed out stay valid until the transaction ends. */
    assert_memory_equal(lent, "mine", 4);
    assert_memory_equal(first, "committed", 9);
    assert_int_equal(kv_get(t, "k", 1, &v, &vl), 0);
    assert_memory_equal(v, "again", 5);
    assert_int_equal(kv_del(t, "k", 1), 0);
    assert_int_equal(kv_get(t, "k", 1, &v, &vl), AJ_ENOTFOUND);
    assert_int_equal(kv_put(t, "new", 3, "n", 1), 0);
    assert_int_equal(kv_get(t, "new", 3, &v, &vl), 0);
    assert_int_equal(kv_txn_ops(t), 2);
    assert_int_equal(kv_txn_bytes(t), 1 + 3 + 1);
    /* Others do not see uncommitted writes. */
    char buf[32];
    assert_int_equal(get1(f->s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "committed");
    assert_int_equal(get1(f->s, "new", buf, sizeof buf), AJ_ENOTFOUND);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(get1(f->s, "k", buf, sizeof buf), AJ_ENOTFOUND);
    assert_int_equal(get1(f->s, "new", buf, sizeof buf), 0);
}

static void test_snapshot_consistent(void **state) {
    fx *f = *state;
    put1(f->s, "a", "1");
    put1(f->s, "b", "1");
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_get(t, "a", 1, &v, &vl), 0);
    kv_txn *u;
    assert_int_equal(kv_begin(f->s, &u), 0);
    assert_int_equal(kv_put(u, "a", 1, "2", 1), 0);
    assert_int_equal(kv_put(u, "b", 1, "2", 1), 0);
    assert_int_equal(kv_put(u, "c", 1, "2", 1), 0);
    assert_int_equal(kv_commit(u, KV_SYNC, NULL, NULL, NULL), 0);
    /* t still sees the state of its first read. */
    assert_int_equal(kv_get(t, "b", 1, &v, &vl), 0);
    assert_memory_equal(v, "1", 1);
    coll c;
    assert_string_equal(scan_str(t, NULL, NULL, 0, 0, &c), "a=1 b=1");
    kv_abort(t);
}

static void test_conflict_rmw(void **state) {
    fx *f = *state;
    put1(f->s, "k", "0");
    kv_txn *t1, *t2;
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t1), 0);
    assert_int_equal(kv_begin(f->s, &t2), 0);
    assert_int_equal(kv_get(t1, "k", 1, &v, &vl), 0);
    assert_int_equal(kv_get(t2, "k", 1, &v, &vl), 0);
    assert_int_equal(kv_put(t2, "k", 1, "2", 1), 0);
    assert_int_equal(kv_commit(t2, KV_SYNC, NULL, NULL, NULL), 0);
    assert_int_equal(kv_put(t1, "k", 1, "1", 1), 0);
    assert_int_equal(kv_put(t1, "other", 5, "1", 1), 0);
    assert_int_equal(kv_commit(t1, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
    char buf[8];
    assert_int_equal(get1(f->s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "2");
    assert_int_equal(get1(f->s, "other", buf, sizeof buf), AJ_ENOTFOUND);

    /* A key returned by a scan is in the read set too. */
    assert_int_equal(kv_begin(f->s, &t1), 0);
    coll c;
    scan_str(t1, "k", "l", 0, 0, &c);
    assert_int_equal(c.n, 1);
    put1(f->s, "k", "3");
    assert_int_equal(kv_put(t1, "x", 1, "1", 1), 0);
    assert_int_equal(kv_commit(t1, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
}

static void test_conflict_absent_created(void **state) {
    fx *f = *state;
    kv_txn *t;
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_get(t, "k", 1, &v, &vl), AJ_ENOTFOUND);
    put1(f->s, "k", "created");
    assert_int_equal(kv_put(t, "k2", 2, "x", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);

    /* And a key read as present that gets deleted. */
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_get(t, "k", 1, &v, &vl), 0);
    del1(f->s, "k");
    assert_int_equal(kv_put(t, "k2", 2, "x", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
}

/* kv_peek and kv_peek_prefix read like kv_get and kv_scan_prefix (own writes included) but
 * leave the read set alone: later changes of what they saw do not make the commit conflict. */
static void test_peek(void **state) {
    fx *f = *state;
    put1(f->s, "pa", "1");
    put1(f->s, "pb", "2");
    kv_txn *t;
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_peek(t, "pa", 2, &v, &vl), 0);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, "1", 1);
    assert_int_equal(kv_peek(t, "pz", 2, &v, &vl), AJ_ENOTFOUND);
    assert_int_equal(kv_put(t, "pc", 2, "3", 1), 0);
    assert_int_equal(kv_peek(t, "pc", 2, &v, &vl), 0);
    coll c;
    memset(&c, 0, sizeof c);
    assert_int_equal(kv_peek_prefix(t, "p", 1, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 3);
    put1(f->s, "pa", "changed");
    del1(f->s, "pb");
    put1(f->s, "pz", "created");
    assert_int_equal(kv_put(t, "out", 3, "x", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);

    /* A key read with kv_get before is answered as then, and still validated. */
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_get(t, "pa", 2, &v, &vl), 0);
    put1(f->s, "pa", "again");
    assert_int_equal(kv_peek(t, "pa", 2, &v, &vl), 0);
    assert_int_equal(vl, 7);
    assert_int_equal(kv_put(t, "out", 3, "y", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
}

static void test_blind_writes(void **state) {
    fx *f = *state;
    put1(f->s, "k", "0");
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_put(t, "k", 1, "blind", 5), 0);
    assert_int_equal(kv_del(t, "j", 1), 0);
    put1(f->s, "k", "other");
    put1(f->s, "j", "other");
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);
    char buf[16];
    assert_int_equal(get1(f->s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "blind");
    assert_int_equal(get1(f->s, "j", buf, sizeof buf), AJ_ENOTFOUND);
}

static void test_expect(void **state) {
    fx *f = *state;
    uint64_t v1 = put1(f->s, "rec", "1");
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_expect(t, "rec", 3, v1), 0);
    assert_int_equal(kv_expect(t, "absent", 6, 0), 0);
    assert_int_equal(kv_put(t, "idx", 3, "x", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), 0);

    put1(f->s, "rec", "2");
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_expect(t, "rec", 3, v1), 0);
    assert_int_equal(kv_put(t, "idx", 3, "y", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);

    /* An expectation alone is still checked. */
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_expect(t, "rec", 3, v1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
    /* An expectation that contradicts what the transaction read cannot commit. */
    assert_int_equal(kv_begin(f->s, &t), 0);
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_get(t, "rec", 3, &v, &vl), 0);
    assert_int_equal(kv_expect(t, "rec", 3, v1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_ECONFLICT);
}

static void test_limits(void **state) {
    fx *f = *state;
    const kv_limits *lim = kv_store_limits(f->s);
    assert_true(lim->max_key > 0 && lim->max_value > 0 && lim->max_txn_ops > 0);
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    uint8_t *big = calloc(1, lim->max_key + 1);
    assert_non_null(big);
    assert_int_equal(kv_put(t, big, lim->max_key + 1, "v", 1), AJ_ETOOBIG);
    assert_non_null(strstr(aj_errmsg(), "max_key"));
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_get(t, big, lim->max_key + 1, &v, &vl), AJ_ETOOBIG);
    big[0] = 1;
    assert_int_equal(kv_put(t, big, lim->max_key, "v", 1), 0);
    free(big);
    uint8_t *val = calloc(1, lim->max_value + 1);
    assert_non_null(val);
    assert_int_equal(kv_put(t, "k", 1, val, lim->max_value + 1), AJ_ETOOBIG);
    assert_non_null(strstr(aj_errmsg(), "max_value"));
    kv_abort(t);

    if (lim->max_txn_bytes <= ((size_t)512 << 20)) {
        assert_int_equal(kv_begin(f->s, &t), 0);
        int rc = 0;
        for (unsigned i = 0; rc == 0 && i <= lim->max_txn_bytes / lim->max_value + 1; i++) {
            char k[16];
            snprintf(k, sizeof k, "big%u", i);
            rc = kv_put(t, k, strlen(k), val, lim->max_value);
        }
        assert_int_equal(rc, AJ_ETOOBIG);
        assert_non_null(strstr(aj_errmsg(), "max_txn_bytes"));
        assert_true(kv_txn_bytes(t) <= lim->max_txn_bytes);
        kv_abort(t);
    }
    free(val);

    if (lim->max_txn_ops <= 1000000) {
        assert_int_equal(kv_begin(f->s, &t), 0);
        int rc = 0;
        uint32_t i = 0;
        for (; rc == 0 && i <= lim->max_txn_ops; i++) {
            uint8_t k[5] = {'o', (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                            (uint8_t)i};
            rc = kv_put(t, k, sizeof k, NULL, 0);
        }
        assert_int_equal(rc, AJ_ETOOBIG);
        assert_non_null(strstr(aj_errmsg(), "max_txn_ops"));
        assert_int_equal(kv_txn_ops(t), lim->max_txn_ops);
        /* Rewriting a key already written is not a new operation. */
        uint8_t k0[5] = {'o', 0, 0, 0, 0};
        assert_int_equal(kv_put(t, k0, sizeof k0, "x", 1), 0);
        kv_abort(t);
    }
}

static void test_abort(void **state) {
    fx *f = *state;
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_put(t, "k", 1, "v", 1), 0);
    kv_abort(t);
    kv_abort(NULL);
    char buf[8];
    assert_int_equal(get1(f->s, "k", buf, sizeof buf), AJ_ENOTFOUND);
}

typedef struct async_ctx {
    atomic_int done;
    atomic_int ok;
    atomic_int conflicts;
} async_ctx;

static void async_cb(void *ud, int rc) {
    async_ctx *a = ud;
    if (rc == 0) {
        atomic_fetch_add(&a->ok, 1);
    } else if (rc == AJ_ECONFLICT) {
        atomic_fetch_add(&a->conflicts, 1);
    }
    atomic_fetch_add(&a->done, 1);
}

static void wait_done(async_ctx *a, int n) {
    int64_t deadline = aj__mono_us() + 10 * 1000000;
    while (atomic_load(&a->done) < n && aj__mono_us() < deadline) {
        aj__sleep_ms(1);
    }
    assert_int_equal(atomic_load(&a->done), n);
}

static void test_async(void **state) {
    fx *f = *state;
    async_ctx a;
    atomic_init(&a.done, 0);
    atomic_init(&a.ok, 0);
    atomic_init(&a.conflicts, 0);
    for (int i = 0; i < 100; i++) {
        kv_txn *t;
        char k[16];
        snprintf(k, sizeof k, "async%03d", i);
        assert_int_equal(kv_begin(f->s, &t), 0);
        assert_int_equal(kv_put(t, k, strlen(k), "v", 1), 0);
        assert_int_equal(kv_commit(t, KV_ASYNC, async_cb, &a, NULL), 0);
    }
    wait_done(&a, 100);
    assert_int_equal(atomic_load(&a.ok), 100);
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    coll c;
    prefix_str(t, "async", 5, 0, 0, &c);
    assert_int_equal(c.n, 100);
    kv_abort(t);

    /* A conflict is reported through done. */
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_get(t, "async000", 8, &v, &vl), 0);
    put1(f->s, "async000", "changed");
    assert_int_equal(kv_put(t, "async000", 8, "mine", 4), 0);
    assert_int_equal(kv_commit(t, KV_ASYNC, async_cb, &a, NULL), 0);
    wait_done(&a, 101);
    assert_int_equal(atomic_load(&a.conflicts), 1);
    /* A read-only asynchronous commit completes too, and NULL done is allowed. */
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_commit(t, KV_ASYNC, async_cb, &a, NULL), 0);
    wait_done(&a, 102);
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_put(t, "nodone", 6, "v", 1), 0);
    assert_int_equal(kv_commit(t, KV_ASYNC, NULL, NULL, NULL), 0);
    /* A later synchronous commit is ordered after it. */
    put1(f->s, "after", "v");
    char buf[8];
    assert_int_equal(get1(f->s, "nodone", buf, sizeof buf), 0);
}

/* KV_APPLIED: validated and visible like KV_SYNC, without an fsync of its own where the backend
 * declares KV_CAP_APPLIED_NOSYNC, with one (exactly like KV_SYNC) where it does not. */
static void test_applied(void **state) {
    fx *f = *state;
    uint64_t b0, s0, b1, s1, ver = 0;
    kv_commit_stats(f->s, &b0, &s0, NULL, 0);
    kv_txn *t;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_put(t, "applied", 7, "1", 1), 0);
    assert_int_equal(kv_commit(t, KV_APPLIED, NULL, NULL, &ver), 0);
    assert_true(ver > 0);
    kv_commit_stats(f->s, &b1, &s1, NULL, 0);
    assert_true(b1 > b0);
    if (kv_caps(f->s) & KV_CAP_APPLIED_NOSYNC) {
        assert_int_equal(s1, s0); /* no fsync */
    } else {
        assert_int_equal(s1, s0 + 1); /* committed like KV_SYNC */
    }
    char buf[8];
    assert_int_equal(get1(f->s, "applied", buf, sizeof buf), 0);
    assert_string_equal(buf, "1");
    /* Conflicts are caught as for any commit. */
    const uint8_t *v;
    size_t vl;
    assert_int_equal(kv_begin(f->s, &t), 0);
    assert_int_equal(kv_get(t, "applied", 7, &v, &vl), 0);
    put1(f->s, "applied", "2");
    assert_int_equal(kv_put(t, "applied", 7, "3", 1), 0);
    assert_int_equal(kv_commit(t, KV_APPLIED, NULL, NULL, NULL), AJ_ECONFLICT);
    assert_int_equal(get1(f->s, "applied", buf, sizeof buf), 0);
    assert_string_equal(buf, "2");
    /* put1 committed durably: that one counted. */
    uint64_t s2;
    kv_commit_stats(f->s, NULL, &s2, NULL, 0);
    assert_true(s2 > s1);
}

typedef struct waiter_ctx {
    kv_store *s;
    uint64_t seen;
    int64_t waited_us;
    uint64_t after;
} waiter_ctx;

static void *waiter_main(void *arg) {
    waiter_ctx *w = arg;
    int64_t t0 = aj__mono_us();
    kv_wait_change(w->s, w->seen, 5000);
    w->waited_us = aj__mono_us() - t0;
    w->after = kv_change_seq(w->s);
    return NULL;
}

static void test_change_notify(void **state) {
    fx *f = *state;
    uint64_t seen = kv_change_seq(f->s);
    int64_t t0 = aj__mono_us();
    kv_wait_change(f->s, seen, 30);
    int64_t waited = aj__mono_us() - t0;
    assert_true(waited >= 25000); /* nothing changed: the timeout passes */

    waiter_ctx w = {.s = f->s, .seen = kv_change_seq(f->s)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    aj__sleep_ms(50);
    put1(f->s, "wake", "up");
    int64_t committed = aj__mono_us();
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(w.after != w.seen);
    assert_true(w.waited_us < 2 * 1000000);
    assert_true(aj__mono_us() - committed < 1000000);
}

static void test_persistence(void **state) {
    fx *f = *state;
    if (!(kv_caps(f->s) & KV_CAP_DURABLE)) {
        printf("# persistence: skipped, backend %s is not durable\n", g_backend);
        skip();
    }
    uint64_t v = put1(f->s, "durable", "yes");
    put1(f->s, "gone", "x");
    del1(f->s, "gone");
    kv_close(f->s);
    f->s = NULL;
    assert_int_equal(kv_open(&f->s, f->url, NULL), 0);
    char buf[8];
    assert_int_equal(get1(f->s, "durable", buf, sizeof buf), 0);
    assert_string_equal(buf, "yes");
    assert_int_equal(get1(f->s, "gone", buf, sizeof buf), AJ_ENOTFOUND);
    assert_int_equal(version_of(f->s, "durable"), v);
    assert_true(put1(f->s, "later", "x") > v); /* versions keep growing after a reopen */
}

typedef struct counter_ctx {
    kv_store *s;
    long conflicts;
    int failed;
} counter_ctx;

static void *counter_main(void *arg) {
    counter_ctx *c = arg;
    for (int i = 0; i < COUNTER_INCREMENTS; i++) {
        long n = incr(c->s);
        if (n < 0) {
            c->failed = 1;
            return NULL;
        }
        c->conflicts += n;
    }
    return NULL;
}

static void test_counter_threads(void **state) {
    fx *f = *state;
    pthread_t th[COUNTER_THREADS];
    counter_ctx cc[COUNTER_THREADS];
    for (int i = 0; i < COUNTER_THREADS; i++) {
        cc[i] = (counter_ctx){f->s, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, counter_main, &cc[i]), 0);
    }
    long conflicts = 0;
    for (int i = 0; i < COUNTER_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(cc[i].failed);
        conflicts += cc[i].conflicts;
    }
    assert_int_equal(counter_value(f->s), COUNTER_THREADS * COUNTER_INCREMENTS);
    printf("# counter: %d threads x %d increments, %ld conflicts retried\n", COUNTER_THREADS,
           COUNTER_INCREMENTS, conflicts);
}

static void test_counter_processes(void **state) {
    fx *f = *state;
    if (!(kv_caps(f->s) & KV_CAP_MULTI_PROCESS)) {
        printf("# two processes: skipped, backend %s lacks KV_CAP_MULTI_PROCESS\n", g_backend);
        skip();
    }
    /* No store is open across fork: each process opens its own. */
    kv_close(f->s);
    f->s = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kv_store *s;
        int ok = kv_open(&s, f->url, NULL) == 0;
        for (int i = 0; ok && i < COUNTER_INCREMENTS; i++) {
            ok = incr(s) >= 0;
        }
        kv_close(s);
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(kv_open(&f->s, f->url, NULL), 0);
    for (int i = 0; i < COUNTER_INCREMENTS; i++) {
        assert_true(incr(f->s) >= 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(counter_value(f->s), 2 * COUNTER_INCREMENTS);
}

static void test_backup(void **state) {
    fx *f = *state;
    if (!(kv_caps(f->s) & KV_CAP_BACKUP)) {
        printf("# backup: skipped, backend %s lacks KV_CAP_BACKUP\n", g_backend);
        assert_int_equal(kv_backup(f->s, "/nonexistent/x"), AJ_EINVAL);
        skip();
    }
    put1(f->s, "b1", "one");
    put1(f->s, "b2", "two");
    char *path = aj_test_path(f->dir, "copy.db");
    assert_int_equal(kv_backup(f->s, path), 0);
    assert_int_equal(kv_backup(f->s, path), AJ_EEXISTS); /* never overwrites */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    put1(f->s, "b3", "after");
    char url[1100];
    snprintf(url, sizeof url, "sqlite:%s", path);
    kv_store *copy;
    assert_int_equal(kv_open(&copy, url, NULL), 0);
    char buf[8];
    assert_int_equal(get1(copy, "b2", buf, sizeof buf), 0);
    assert_string_equal(buf, "two");
    assert_int_equal(get1(copy, "b3", buf, sizeof buf), AJ_ENOTFOUND);
    kv_close(copy);
    free(path);
}

static void test_commit_stats(void **state) {
    fx *f = *state;
    put1(f->s, "a", "1");
    put1(f->s, "b", "1");
    uint64_t batches = 0, syncs = 0, hist[AJ_HIST_BUCKETS];
    kv_commit_stats(f->s, &batches, &syncs, hist, AJ_HIST_BUCKETS);
    assert_true(batches >= 2);
    uint64_t sum = 0;
    for (int i = 0; i < AJ_HIST_BUCKETS; i++) {
        sum += hist[i];
    }
    assert_int_equal(sum, batches);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        g_backend = argv[1];
    }
    if (strcmp(g_backend, "mem") != 0 && strcmp(g_backend, "sqlite") != 0 &&
        strcmp(g_backend, "postgres") != 0) {
        fprintf(stderr, "usage: conformance mem|sqlite|postgres\n");
        return 2;
    }
    printf("# storage conformance: backend %s\n", g_backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_urls),
        cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_callback_uses_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_your_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_rmw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_absent_created, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blind_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_stats, setup, teardown),
    };
    return cmocka_run_group_tests_name(g_backend, tests, NULL, NULL);
}
