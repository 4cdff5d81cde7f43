/*
 * job_check.c — the integrity check: every job record has exactly the index entries of its
 * state and every index entry names a record in that state (see job_index.c).
 */
#include "core/job_internal.h"

#include <stdint.h>
#include <string.h>

#include "core/check_report.h"
#include "core/keys.h"

typedef struct check_walk {
    kv_txn *t;
    check_report rep;
    uint64_t records;
    int rc;
    uint8_t kind;
} check_walk;

static int check_record_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen, uint64_t version) {
    (void)version;
    check_walk *w = ud;
    w->records++;
    job_rec r;
    uint64_t id = klen == 9 ? key_tail_id(key, klen) : 0;
    if (klen != 9 || job_rec_decode(val, vlen, &r) != 0) {
        check_problem(&w->rep, "job %llu: record cannot be decoded: %s", (unsigned long long)id,
                      aj_errmsg());
        return 0;
    }
    if (r.id != id) {
        check_problem(&w->rep, "job %llu: record carries id %llu", (unsigned long long)id,
                      (unsigned long long)r.id);
    }
    job_route route;
    if (r.route.p != NULL && route_decode(r.route, &route) != 0) {
        check_problem(&w->rep, "job %llu: routing cannot be decoded: %s", (unsigned long long)id,
                      aj_errmsg());
    }
    akey k;
    job_index_key(&k, &r);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(w->t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        check_problem(&w->rep, "job %llu (%s): its index entry is missing", (unsigned long long)id,
                      aj_state_name(r.state));
    } else if (rc != 0) {
        w->rc = rc;
        return 1;
    } else if (n != 1 || v[0] != (uint8_t)r.state) {
        check_problem(&w->rep, "job %llu (%s): its index entry names another state",
                      (unsigned long long)id, aj_state_name(r.state));
    }
    return 0;
}

/* For every index entry: the record exists and is in the state the index says. */
static int check_index_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen, uint64_t version) {
    (void)version;
    check_walk *w = ud;
    if (klen < 9 || vlen != 1) {
        check_problem(&w->rep, "an index entry of kind '%c' is malformed", w->kind);
        return 0;
    }
    uint64_t id = key_tail_id(key, klen);
    job_rec r;
    int undecodable;
    int rc = job_read_rec(w->t, id, &r, &undecodable);
    if (undecodable) {
        return 0; /* the record itself is reported once, by check_record_cb */
    }
    if (rc == AJ_ENOTFOUND) {
        check_problem(&w->rep, "index '%c' names job %llu, which does not exist", w->kind,
                      (unsigned long long)id);
        return 0;
    }
    if (rc != 0) {
        w->rc = rc; /* a storage error: the check cannot go on */
        return 1;
    }
    akey want;
    job_index_key(&want, &r);
    if (r.state != (aj_job_state)val[0] || want.n != klen || memcmp(want.b, key, klen) != 0) {
        check_problem(&w->rep, "index '%c' entry for job %llu does not match the record (%s)",
                      w->kind, (unsigned long long)id, aj_state_name(r.state));
    }
    return 0;
}

int job_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud,
              uint64_t *out_records, uint64_t *out_problems) {
    check_walk w = {t, {report, ud, 0}, 0, 0, KEY_JOB};
    akey k;
    key_prefix(&k, KEY_JOB);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, check_record_cb, &w);
    const uint8_t kinds[] = {KEY_STATE, KEY_READY, KEY_DELAYED, KEY_LEASE, KEY_FINISHED};
    for (size_t i = 0; i < sizeof kinds && rc == 0 && w.rc == 0; i++) {
        w.kind = kinds[i];
        key_prefix(&k, kinds[i]);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, check_index_cb, &w);
    }
    if (rc == 0) {
        rc = w.rc;
    }
    if (rc == 0) {
        *out_records = w.records;
        *out_problems = w.rep.problems;
    }
    return rc;
}
