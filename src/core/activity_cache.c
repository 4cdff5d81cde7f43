/*
 * activity_cache.c — the activity result cache (see activity_cache.h).
 *
 * Invariant: every entry 'k' 'e' ... has exactly one index entry 'k' 'x' expires ... at the
 * expiry stored in its value; both are written and deleted in the same transaction.
 */
#include "core/activity_cache.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/check_report.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/hash.h"

#define ACT_CACHE_FORMAT 1
/* A second FNV offset basis, so that the two lanes of the hash are independent. */
#define ACT_CACHE_LANE2 0x6c62272e07bb0142ULL

static uint64_t lane(uint64_t h, const char *type, const char *version, aj_slice input) {
    const char *fields[2] = {type, version};
    for (int i = 0; i < 2; i++) {
        uint8_t n[8];
        size_t len = strlen(fields[i]);
        aj__put_u64be(n, len);
        h = aj__fnv1a(h, n, 8);
        h = aj__fnv1a(h, fields[i], len);
    }
    uint8_t n[8];
    aj__put_u64be(n, input.n);
    h = aj__fnv1a(h, n, 8);
    return aj__fnv1a(h, input.p, input.n);
}

void act_cache_hash(const char *type, const char *version, aj_slice input,
                    uint8_t out[ACT_CACHE_HASH]) {
    type = type ? type : "";
    version = version ? version : "";
    aj__put_u64be(out, lane(AJ_FNV_INIT, type, version, input));
    aj__put_u64be(out + 8, lane(ACT_CACHE_LANE2, type, version, input));
}

/* The entry key without its "ke" prefix: scope, hash, [wf id]. */
static int entry_rest(const act_cache_ref *r, uint8_t *out, size_t *n) {
    if (!r->global && (r->wf_id.n == 0 || r->wf_id.n > AJ_WF_ID_MAX)) {
        return aj__err(AJ_EINVAL, "a workflow-scoped cache entry needs a workflow id");
    }
    out[0] = r->global ? 'g' : 'w';
    memcpy(out + 1, r->hash, ACT_CACHE_HASH);
    *n = 1 + ACT_CACHE_HASH;
    if (!r->global) {
        memcpy(out + *n, r->wf_id.p, r->wf_id.n);
        *n += r->wf_id.n;
    }
    return 0;
}

static void key_entry(akey *k, const uint8_t *rest, size_t n) {
    k->b[0] = 'k';
    k->b[1] = 'e';
    memcpy(k->b + 2, rest, n);
    k->n = 2 + n;
}

static void key_expiry(akey *k, int64_t expires, const uint8_t *rest, size_t n) {
    k->b[0] = 'k';
    k->b[1] = 'x';
    aj__put_u64be(k->b + 2, (uint64_t)(expires < 0 ? 0 : expires));
    memcpy(k->b + 10, rest, n);
    k->n = 10 + n;
}

typedef struct entry_val {
    int64_t expires;
    aj_slice result;
} entry_val;

static int decode_entry(const uint8_t *v, size_t n, entry_val *out) {
    if (n < 9 || v[0] != ACT_CACHE_FORMAT) {
        return aj__err(AJ_ECORRUPT, "activity cache entry is corrupt (%zu bytes)", n);
    }
    out->expires = (int64_t)aj__get_u64be(v + 1);
    out->result.p = v + 9;
    out->result.n = n - 9;
    return 0;
}

int act_cache_get(kv_txn *t, const job_env *env, const act_cache_ref *r, aj_slice *out) {
    uint8_t rest[1 + ACT_CACHE_HASH + AJ_WF_ID_MAX];
    size_t n = 0;
    int rc = entry_rest(r, rest, &n);
    if (rc != 0) {
        return rc;
    }
    akey k;
    key_entry(&k, rest, n);
    const uint8_t *v;
    size_t vn;
    rc = kv_get(t, k.b, k.n, &v, &vn);
    if (rc != 0) {
        return rc;
    }
    entry_val e = {0, {NULL, 0}};
    if (decode_entry(v, vn, &e) != 0 || e.expires <= env->now_ms) {
        return AJ_ENOTFOUND; /* a damaged entry is a miss; the next fill replaces it */
    }
    *out = e.result;
    return 0;
}

int act_cache_put(kv_txn *t, const job_env *env, const act_cache_ref *r, int64_t ttl_ms,
                  aj_slice result) {
    if (ttl_ms <= 0) {
        return aj__err(AJ_EINVAL, "an activity cache TTL must be positive");
    }
    uint8_t rest[1 + ACT_CACHE_HASH + AJ_WF_ID_MAX];
    size_t n = 0;
    int rc = entry_rest(r, rest, &n);
    if (rc != 0) {
        return rc;
    }
    akey k, x;
    key_entry(&k, rest, n);
    const uint8_t *v;
    size_t vn;
    rc = kv_get(t, k.b, k.n, &v, &vn);
    if (rc == 0) {
        entry_val old = {0, {NULL, 0}};
        if (decode_entry(v, vn, &old) == 0) {
            key_expiry(&x, old.expires, rest, n);
            rc = kv_del(t, x.b, x.n);
        }
    } else if (rc == AJ_ENOTFOUND) {
        rc = 0;
    }
    int64_t expires = env->now_ms + ttl_ms;
    aj_buf b = AJ_BUF_INIT;
    aj__buf_add_u8(&b, ACT_CACHE_FORMAT);
    aj__buf_add_u64be(&b, (uint64_t)expires);
    aj__buf_add(&b, result.p, result.n);
    if (rc == 0) {
        rc = b.oom ? aj__err(AJ_ENOMEM, "out of memory filling the activity cache")
                   : kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj__buf_free(&b);
    if (rc == 0) {
        key_expiry(&x, expires, rest, n);
        rc = kv_put(t, x.b, x.n, "", 0);
    }
    if (rc == 0 && env->delta != NULL) {
        env->delta->activity_cache_fills++;
    }
    return rc;
}

int act_cache_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n) {
    akey start, end;
    start.b[0] = 'k';
    start.b[1] = 'x';
    start.n = 2;
    key_expiry(&end, env->now_ms + 1, (const uint8_t *)"", 0); /* expires <= now */
    key_batch c = {.n = 0};
    int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0,
                     limit < KEY_BATCH_MAX ? limit : KEY_BATCH_MAX, key_batch_cb, &c);
    for (size_t i = 0; i < c.n && rc == 0; i++) {
        akey k;
        key_entry(&k, c.keys[i].b + 10, c.keys[i].n - 10);
        rc = kv_del(t, c.keys[i].b, c.keys[i].n);
        if (rc == 0) {
            /* The entry may have been refilled with a later expiry: keep that one. */
            const uint8_t *v;
            size_t vn;
            int grc = kv_get(t, k.b, k.n, &v, &vn);
            entry_val e = {0, {NULL, 0}};
            if (grc == 0 && (decode_entry(v, vn, &e) != 0 || e.expires <= env->now_ms)) {
                rc = kv_del(t, k.b, k.n);
            } else if (grc != 0 && grc != AJ_ENOTFOUND) {
                rc = grc;
            }
        }
    }
    if (rc == 0) {
        *out_n = c.n;
        if (env->delta != NULL) {
            env->delta->activity_cache_expired += c.n;
        }
    }
    return rc;
}

int act_cache_count(kv_txn *t, uint64_t *out) {
    return kv_count_prefix(t, "ke", 2, out);
}

size_t act_cache_desc_format(char *buf, size_t size, int global, const uint8_t hash[ACT_CACHE_HASH],
                             int64_t ttl_ms) {
    char hex[2 * ACT_CACHE_HASH + 1];
    for (int i = 0; i < ACT_CACHE_HASH; i++) {
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    }
    int n = snprintf(buf, size, "{\"cache\":\"%s\",\"scope\":\"%s\",\"ttl_ms\":%" PRId64 "}", hex,
                     global ? "global" : "workflow", ttl_ms);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

int act_cache_desc_parse(aj_slice data, int *global, uint8_t hash[ACT_CACHE_HASH],
                         int64_t *ttl_ms) {
    char text[ACT_CACHE_DESC_MAX];
    if (data.n == 0 || data.n >= sizeof text) {
        return 0;
    }
    memcpy(text, data.p, data.n);
    text[data.n] = '\0';
    char hex[2 * ACT_CACHE_HASH + 1], scope[16], digits[20];
    int end = 0;
    /* Only the canonical text act_cache_desc_format writes is a descriptor (checked below). */
    if (sscanf(text, "{\"cache\":\"%32[0-9a-f]\",\"scope\":\"%15[a-z]\",\"ttl_ms\":%19[0-9]}%n",
               hex, scope, digits, &end) != 3 ||
        (size_t)end != data.n || strlen(hex) != 2 * ACT_CACHE_HASH) {
        return 0;
    }
    int64_t ttl = 0;
    for (const char *d = digits; *d != '\0'; d++) {
        if (ttl > (INT64_MAX - (*d - '0')) / 10) {
            return 0;
        }
        ttl = ttl * 10 + (*d - '0');
    }
    if (ttl <= 0) {
        return 0;
    }
    if (strcmp(scope, "global") == 0) {
        *global = 1;
    } else if (strcmp(scope, "workflow") == 0) {
        *global = 0;
    } else {
        return 0;
    }
    for (int i = 0; i < ACT_CACHE_HASH; i++) {
        unsigned x = 0;
        sscanf(hex + 2 * i, "%2x", &x);
        hash[i] = (uint8_t)x;
    }
    char canonical[ACT_CACHE_DESC_MAX];
    size_t n = act_cache_desc_format(canonical, sizeof canonical, *global, hash, ttl);
    if (n != data.n || memcmp(canonical, data.p, n) != 0) {
        return 0; /* e.g. leading zeros in the TTL */
    }
    *ttl_ms = ttl;
    return 1;
}

int act_cache_on_complete(kv_txn *t, const job_env *env, aj_slice wf_id, aj_slice sched_data,
                          aj_slice result) {
    act_cache_ref r;
    int64_t ttl = 0;
    memset(&r, 0, sizeof r);
    if (!act_cache_desc_parse(sched_data, &r.global, r.hash, &ttl)) {
        return 0;
    }
    r.wf_id = wf_id;
    return act_cache_put(t, env, &r, ttl, result.p ? result : aj__slice_str(""));
}

/* ----------------------------------------------------------------------------------------- */
/* Consistency check                                                                          */

typedef struct check_ctx {
    kv_txn *t;
    check_report rep;
    uint64_t records;
} check_ctx;

static void problem(check_ctx *c, const char *what, const uint8_t *key, size_t klen) {
    char hex[2 * 40 + 1];
    size_t n = klen < 40 ? klen : 40;
    for (size_t i = 0; i < n; i++) {
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    }
    check_problem(&c->rep, "activity cache: %s (key %s%s)", what, hex, klen > n ? "..." : "");
}

static int check_entry_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)version;
    check_ctx *c = ud;
    c->records++;
    entry_val e = {0, {NULL, 0}};
    if (klen < 3 + ACT_CACHE_HASH || decode_entry(val, vlen, &e) != 0) {
        problem(c, "entry is corrupt", key, klen);
        return 0;
    }
    akey x;
    key_expiry(&x, e.expires, key + 2, klen - 2);
    const uint8_t *v;
    size_t n;
    if (kv_get(c->t, x.b, x.n, &v, &n) != 0) {
        problem(c, "entry has no expiry index entry", key, klen);
    }
    return 0;
}

static int check_index_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    check_ctx *c = ud;
    if (klen < 11 + ACT_CACHE_HASH) {
        problem(c, "expiry index entry is malformed", key, klen);
        return 0;
    }
    akey k;
    key_entry(&k, key + 10, klen - 10);
    const uint8_t *v;
    size_t n;
    entry_val e = {0, {NULL, 0}};
    if (kv_get(c->t, k.b, k.n, &v, &n) != 0 || decode_entry(v, n, &e) != 0 ||
        (uint64_t)e.expires != aj__get_u64be(key + 2)) {
        problem(c, "expiry index entry has no matching entry", key, klen);
    }
    return 0;
}

int act_cache_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
                    uint64_t *out_records, uint64_t *out_problems) {
    check_ctx c = {t, {report, ud, 0}, 0};
    int rc = kv_scan_prefix(t, "ke", 2, 0, 0, check_entry_cb, &c);
    if (rc == 0) {
        rc = kv_scan_prefix(t, "kx", 2, 0, 0, check_index_cb, &c);
    }
    if (rc == 0) {
        *out_records += c.records;
        *out_problems += c.rep.problems;
    }
    return rc;
}
