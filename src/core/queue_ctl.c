/*
 * queue_ctl.c — queue controls: records, the claim gate and listing (see queue_ctl.h).
 *
 * Invariant: a queue's usage count equals the number of its running jobs flagged JOB_FLAG_SLOT
 * (job_claim.c flags on claim and unflags in the transition that ends the lease, both in the same
 * transaction as the count). Setting a concurrency limit recounts and flags every running job
 * of the queue, so jobs claimed before a limit existed count too.
 *
 * Record encodings: control = format byte, flags byte (1: paused), varint concurrency, varint
 * rate_n, varint rate window ms. Usage = format byte, varint count, varint n, n varint times.
 */
#include "core/queue_ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check_report.h"
#include "core/keys.h"
#include "util/err.h"
#include "util/mem.h"

#define QCTL_FORMAT 1
#define QCTL_PAUSED 1u

static void qkey(akey *k, uint8_t kind, const char *queue, size_t qlen) {
    k->b[0] = kind;
    memcpy(k->b + 1, queue, qlen);
    k->n = 1 + qlen;
}

static int ctl_decode(const uint8_t *v, size_t n, qctl *out) {
    aj_rd r;
    aj__rd_init(&r, v, n);
    uint8_t format = aj__rd_u8(&r);
    if (!r.bad && format > QCTL_FORMAT) {
        return aj__err(AJ_EFORMAT, "queue control format %u is newer than this aj supports (%d)",
                       format, QCTL_FORMAT);
    }
    uint8_t flags = aj__rd_u8(&r);
    uint64_t conc = aj__rd_varint(&r);
    uint64_t rn = aj__rd_varint(&r);
    uint64_t win = aj__rd_varint(&r);
    if (r.bad || r.off != n || conc > AJ_QUEUE_CONCURRENCY_MAX || rn > AJ_QUEUE_RATE_MAX ||
        win > (uint64_t)AJ_QUEUE_RATE_WINDOW_MAX || (rn > 0 && win == 0)) {
        return aj__err(AJ_ECORRUPT, "queue control record is corrupt (%zu bytes)", n);
    }
    out->paused = (flags & QCTL_PAUSED) != 0;
    out->concurrency = (uint32_t)conc;
    out->rate_n = (uint32_t)rn;
    out->rate_window_ms = (int64_t)win;
    return 0;
}

static int ctl_get(kv_txn *t, const char *queue, qctl *out) {
    akey k;
    qkey(&k, KEY_QUEUE_CTL, queue, strlen(queue));
    memset(out, 0, sizeof *out);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc == 0) {
        rc = ctl_decode(v, n, out);
    }
    return rc == 0 ? 0 : aj__err_wrap(rc, "queue '%s'", queue);
}

static int ctl_put(kv_txn *t, const char *queue, const qctl *c) {
    akey k;
    qkey(&k, KEY_QUEUE_CTL, queue, strlen(queue));
    if (!c->paused && c->concurrency == 0 && c->rate_n == 0) {
        return kv_del(t, k.b, k.n); /* no control left: a queue like any other */
    }
    aj_buf buf = AJ_BUF_INIT;
    aj__buf_add_u8(&buf, QCTL_FORMAT);
    aj__buf_add_u8(&buf, c->paused ? QCTL_PAUSED : 0);
    aj__buf_add_varint(&buf, c->concurrency);
    aj__buf_add_varint(&buf, c->rate_n);
    aj__buf_add_varint(&buf, (uint64_t)c->rate_window_ms);
    int rc = buf.oom ? AJ_ENOMEM : kv_put(t, k.b, k.n, buf.p, buf.len);
    aj__buf_free(&buf);
    return rc;
}

/* Reads the usage record into g (running, times). */
static int use_get(kv_txn *t, const char *queue, qctl_gate *g) {
    akey k;
    qkey(&k, KEY_QUEUE_USE, queue, strlen(queue));
    g->running = 0;
    g->n_times = 0;
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    aj_rd r;
    aj__rd_init(&r, v, n);
    uint8_t format = aj__rd_u8(&r);
    uint64_t running = aj__rd_varint(&r);
    uint64_t nt = aj__rd_varint(&r);
    if (r.bad || format > QCTL_FORMAT || running > UINT32_MAX || nt > AJ_QUEUE_RATE_MAX) {
        return aj__err(AJ_ECORRUPT, "queue '%s': usage record is corrupt (%zu bytes)", queue, n);
    }
    if (nt > 0 && g->times == NULL) {
        g->times = aj__malloc((AJ_QUEUE_RATE_MAX + 1) * sizeof *g->times);
        if (g->times == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory reading queue '%s'", queue);
        }
    }
    for (uint64_t i = 0; i < nt; i++) {
        g->times[i] = (int64_t)aj__rd_varint(&r);
    }
    if (r.bad || r.off != n) {
        return aj__err(AJ_ECORRUPT, "queue '%s': usage record is corrupt (%zu bytes)", queue, n);
    }
    g->running = (uint32_t)running;
    g->n_times = (uint32_t)nt;
    return 0;
}

static int use_put(kv_txn *t, const char *queue, size_t qlen, const qctl_gate *g) {
    akey k;
    qkey(&k, KEY_QUEUE_USE, queue, qlen);
    if (g->running == 0 && g->n_times == 0) {
        return kv_del(t, k.b, k.n);
    }
    aj_buf b = AJ_BUF_INIT;
    aj__buf_add_u8(&b, QCTL_FORMAT);
    aj__buf_add_varint(&b, g->running);
    aj__buf_add_varint(&b, g->n_times);
    for (uint32_t i = 0; i < g->n_times; i++) {
        aj__buf_add_varint(&b, (uint64_t)g->times[i]);
    }
    int rc = b.oom ? AJ_ENOMEM : kv_put(t, k.b, k.n, b.p, b.len);
    aj__buf_free(&b);
    return rc;
}

/* Claims counted by the rate limit at now_ms: kept times later than now - window. */
static uint32_t rate_recent(const qctl_gate *g, int64_t now_ms) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->n_times; i++) {
        if (g->times[i] > now_ms - g->c.rate_window_ms) {
            n++;
        }
    }
    return n;
}

/* Drops the earliest times until at most `keep` remain. */
static void rate_trim(qctl_gate *g, uint32_t keep) {
    while (g->n_times > keep) {
        uint32_t min = 0;
        for (uint32_t i = 1; i < g->n_times; i++) {
            if (g->times[i] < g->times[min]) {
                min = i;
            }
        }
        g->times[min] = g->times[--g->n_times];
    }
}

int qctl_gate_open(kv_txn *t, const job_env *env, const char *queue, qctl_gate *g) {
    memset(g, 0, sizeof *g);
    g->allowance = SIZE_MAX;
    int rc = ctl_get(t, queue, &g->c);
    if (rc == AJ_ECORRUPT || rc == AJ_EFORMAT) {
        /* A damaged control blocks its own queue only, never the claimer's other queues, until
         * an operator sets it again (aj check reports it). */
        memset(&g->c, 0, sizeof g->c);
        g->allowance = 0;
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (g->c.paused) {
        g->allowance = 0;
        return 0;
    }
    if (g->c.concurrency == 0 && g->c.rate_n == 0) {
        return 0;
    }
    if ((rc = use_get(t, queue, g)) == AJ_ECORRUPT) {
        g->allowance = 0; /* as above; aj queue limit rewrites it */
        g->c.concurrency = 0;
        g->c.rate_n = 0;
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (g->c.concurrency > 0) {
        g->allowance = g->running < g->c.concurrency ? g->c.concurrency - g->running : 0;
    }
    if (g->c.rate_n > 0) {
        uint32_t recent = rate_recent(g, env->now_ms);
        size_t left = recent < g->c.rate_n ? g->c.rate_n - recent : 0;
        if (left < g->allowance) {
            g->allowance = left;
        }
        if (g->times == NULL) {
            g->times = aj__malloc((AJ_QUEUE_RATE_MAX + 1) * sizeof *g->times);
            if (g->times == NULL) {
                return aj__err(AJ_ENOMEM, "out of memory reading queue '%s'", queue);
            }
        }
    }
    return 0;
}

void qctl_gate_take(qctl_gate *g, int64_t now_ms) {
    if (g->allowance != SIZE_MAX && g->allowance > 0) {
        g->allowance--;
    }
    if (g->c.concurrency > 0) {
        g->running++;
        g->dirty = 1;
    }
    if (g->c.rate_n > 0) {
        /* Keep the latest rate_n times. Claims commit in any order of their clocks (two
         * processes), so the new time is not always the latest: add it, then drop the
         * earliest. */
        g->times[g->n_times++] = now_ms;
        rate_trim(g, g->c.rate_n);
        g->dirty = 1;
    }
}

int qctl_gate_close(kv_txn *t, const char *queue, qctl_gate *g) {
    return g->dirty ? use_put(t, queue, strlen(queue), g) : 0;
}

void qctl_gate_free(qctl_gate *g) {
    aj__free(g->times);
    g->times = NULL;
}

int qctl_slot_release(kv_txn *t, aj_slice queue) {
    char name[AJ_NAME_MAX + 1];
    if (queue.n > AJ_NAME_MAX) {
        return aj__err(AJ_ECORRUPT, "queue name of %zu bytes in a job record", queue.n);
    }
    memcpy(name, queue.p, queue.n);
    name[queue.n] = '\0';
    qctl_gate g;
    memset(&g, 0, sizeof g);
    int rc = use_get(t, name, &g);
    if (rc == AJ_ECORRUPT) {
        rc = 0; /* a damaged count never blocks a job's outcome; aj check reports it */
    } else if (rc == 0 && g.running > 0) {
        g.running--;
        rc = use_put(t, name, queue.n, &g);
    }
    qctl_gate_free(&g);
    return rc;
}

int qctl_read(kv_txn *t, const char *queue, qctl *out, uint32_t *out_running) {
    qctl_gate g;
    memset(&g, 0, sizeof g);
    int rc = ctl_get(t, queue, out);
    if (rc == 0) {
        rc = use_get(t, queue, &g);
    }
    if (rc == 0 && out_running != NULL) {
        *out_running = g.running;
    }
    qctl_gate_free(&g);
    return rc;
}

int qctl_pause(kv_txn *t, const char *queue, int paused) {
    int rc = aj_name_check("queue", queue);
    qctl c;
    int damaged = 0;
    if (rc == 0 && (rc = ctl_get(t, queue, &c)) == AJ_ECORRUPT) {
        memset(&c, 0, sizeof c); /* the operator's command replaces a damaged control */
        damaged = 1;
        rc = 0;
    }
    if (rc == 0 && (c.paused != paused || damaged)) {
        c.paused = paused;
        rc = ctl_put(t, queue, &c);
    }
    return rc;
}

int qctl_limit(kv_txn *t, const job_env *env, const char *queue, int64_t concurrency,
               int64_t rate_n, int64_t rate_window_ms) {
    int rc = aj_name_check("queue", queue);
    if (rc != 0) {
        return rc;
    }
    if (concurrency > (int64_t)AJ_QUEUE_CONCURRENCY_MAX) {
        return aj__err(AJ_EINVAL, "concurrency limit must be between 0 and %u",
                       AJ_QUEUE_CONCURRENCY_MAX);
    }
    if (rate_n > (int64_t)AJ_QUEUE_RATE_MAX) {
        return aj__err(AJ_EINVAL, "rate limit must allow between 1 and %u claims per window",
                       AJ_QUEUE_RATE_MAX);
    }
    if (rate_n > 0 && (rate_window_ms <= 0 || rate_window_ms > AJ_QUEUE_RATE_WINDOW_MAX)) {
        return aj__err(AJ_EINVAL, "rate limit window must be between 1ms and 1d");
    }
    qctl c;
    qctl_gate g;
    memset(&g, 0, sizeof g);
    /* The operator's command replaces a damaged control or usage record. */
    if ((rc = ctl_get(t, queue, &c)) == AJ_ECORRUPT) {
        memset(&c, 0, sizeof c);
        rc = 0;
    }
    if (rc == 0 && (rc = use_get(t, queue, &g)) == AJ_ECORRUPT) {
        g.running = 0;
        g.n_times = 0;
        rc = 0;
    }
    if (rc != 0) {
        goto out;
    }
    if (concurrency >= 0) {
        c.concurrency = (uint32_t)concurrency;
    }
    if (rate_n == 0) {
        c.rate_n = 0;
        c.rate_window_ms = 0;
        g.n_times = 0;
    } else if (rate_n > 0) {
        c.rate_n = (uint32_t)rate_n;
        c.rate_window_ms = rate_window_ms;
        rate_trim(&g, c.rate_n);
    }
    if (c.concurrency > 0) {
        /* Recount: every running job of the queue holds a slot from now on. */
        uint32_t n = 0;
        if ((rc = job_take_slots(t, env, queue, &n)) != 0) {
            goto out;
        }
        g.running = n;
    }
    if ((rc = ctl_put(t, queue, &c)) == 0) {
        rc = use_put(t, queue, strlen(queue), &g);
    }
out:
    qctl_gate_free(&g);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Listing                                                                                    */

typedef struct qlist {
    aj_queue_info *v;
    size_t n, cap;
    int sorted; /* v[0..n) sorted by name */
    kv_txn *t;
    int rc;
} qlist;

static int info_cmp(const void *a, const void *b) {
    return strcmp(((const aj_queue_info *)a)->name, ((const aj_queue_info *)b)->name);
}

static aj_queue_info *qlist_find(qlist *l, const char *name) {
    if (!l->sorted) {
        qsort(l->v, l->n, sizeof *l->v, info_cmp);
        l->sorted = 1;
    }
    aj_queue_info key;
    key.name = (char *)name;
    return l->n > 0 ? bsearch(&key, l->v, l->n, sizeof *l->v, info_cmp) : NULL;
}

/* The entry for a queue, added when missing. */
static aj_queue_info *qlist_get(qlist *l, const uint8_t *name, size_t len) {
    char q[AJ_NAME_MAX + 1];
    if (len > AJ_NAME_MAX) {
        len = AJ_NAME_MAX;
    }
    memcpy(q, name, len);
    q[len] = '\0';
    aj_queue_info *e = qlist_find(l, q);
    if (e != NULL) {
        return e;
    }
    aj_queue_info *nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        return NULL;
    }
    l->v = nv;
    e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    e->name = aj__strdup(q);
    if (e->name == NULL) {
        return NULL;
    }
    l->n++;
    l->sorted = 0;
    return e;
}

static int known_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)version;
    qlist *l = ud;
    aj_queue_info *e = qlist_get(l, key + 1, klen - 1);
    if (e == NULL) {
        l->rc = aj__err(AJ_ENOMEM, "out of memory listing queues");
        return 1;
    }
    if (key[0] == KEY_QUEUE_CTL) {
        qctl c;
        if (ctl_decode(val, vlen, &c) != 0) {
            return 0; /* listed without controls; aj check reports it */
        }
        int rc;
        e->paused = c.paused;
        e->concurrency = c.concurrency;
        e->rate_n = c.rate_n;
        e->rate_window_ms = c.rate_window_ms;
        qctl_gate g;
        memset(&g, 0, sizeof g);
        rc = use_get(l->t, e->name, &g);
        e->leases_counted = g.running;
        qctl_gate_free(&g);
        if (rc != 0 && rc != AJ_ECORRUPT) {
            l->rc = rc;
            return 1;
        }
    }
    return 0;
}

static int job_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    qlist *l = ud;
    job_rec r;
    if (job_rec_decode(val, vlen, &r) != 0) {
        return 0; /* aj check reports damaged records */
    }
    aj_queue_info *e = qlist_get(l, r.queue.p, r.queue.n);
    if (e == NULL) {
        l->rc = aj__err(AJ_ENOMEM, "out of memory listing queues");
        return 1;
    }
    e->jobs[r.state]++;
    return 0;
}

int qctl_list(kv_txn *t, aj_queue_info **out, size_t *n) {
    qlist l = {NULL, 0, 0, 1, t, 0};
    const uint8_t kinds[] = {KEY_QUEUE, KEY_QUEUE_CTL};
    int rc = 0;
    for (size_t i = 0; i < sizeof kinds && rc == 0 && l.rc == 0; i++) {
        akey k;
        key_prefix(&k, kinds[i]);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, known_cb, &l);
    }
    if (rc == 0 && l.rc == 0) {
        akey k;
        key_prefix(&k, KEY_JOB);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, job_cb, &l);
    }
    if (rc == 0) {
        rc = l.rc;
    }
    if (rc != 0) {
        aj_queue_list_free(l.v, l.n);
        return rc;
    }
    if (!l.sorted) {
        qsort(l.v, l.n, sizeof *l.v, info_cmp);
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

void aj_queue_list_free(aj_queue_info *list, size_t n) {
    for (size_t i = 0; i < n; i++) {
        aj__free(list[i].name);
    }
    aj__free(list);
}

/* ----------------------------------------------------------------------------------------- */
/* Check                                                                                      */

typedef struct slot_count {
    qlist l; /* leases_counted: running jobs flagged JOB_FLAG_SLOT, per queue */
    check_report rep;
    uint64_t records;
} slot_count;

static int flagged_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    slot_count *c = ud;
    job_rec r;
    if (job_read(c->l.t, key_tail_id(key, klen), &r) != 0 || r.state != AJ_STATE_RUNNING ||
        !(r.flags & JOB_FLAG_SLOT)) {
        return 0; /* job_check reports index problems */
    }
    aj_queue_info *e = qlist_get(&c->l, r.queue.p, r.queue.n);
    if (e == NULL) {
        c->l.rc = aj__err(AJ_ENOMEM, "out of memory checking queues");
        return 1;
    }
    e->jobs[AJ_STATE_RUNNING]++;
    return 0;
}

static int control_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t version) {
    (void)version;
    slot_count *c = ud;
    qctl q;
    c->records++;
    if (ctl_decode(val, vlen, &q) != 0) {
        char line[AJ_NAME_MAX + 96];
        snprintf(line, sizeof line,
                 "queue '%.*s': control record is corrupt (aj queue limit or pause rewrites it)",
                 (int)(klen - 1), (const char *)key + 1);
        check_problem(&c->rep, "%s", line);
    }
    return 0;
}

static int usage_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    slot_count *c = ud;
    aj_queue_info *e = qlist_get(&c->l, key + 1, klen - 1);
    if (e == NULL) {
        c->l.rc = aj__err(AJ_ENOMEM, "out of memory checking queues");
        return 1;
    }
    c->records++;
    qctl_gate g;
    memset(&g, 0, sizeof g);
    int rc = use_get(c->l.t, e->name, &g);
    qctl_gate_free(&g);
    if (rc == AJ_ECORRUPT) {
        char line[AJ_NAME_MAX + 64];
        snprintf(line, sizeof line,
                 "queue '%s': usage record is corrupt (aj queue limit QUEUE rewrites it)", e->name);
        check_problem(&c->rep, "%s", line);
        e->leases_counted = UINT32_MAX; /* reported */
        return 0;
    }
    if (rc != 0) {
        c->l.rc = rc;
        return 1;
    }
    e->leases_counted = g.running;
    return 0;
}

int qctl_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud, uint64_t *records,
               uint64_t *problems) {
    slot_count c = {{NULL, 0, 0, 1, t, 0}, {report, ud, 0}, 0};
    akey k;
    key_prefix(&k, KEY_LEASE);
    int rc = kv_scan_prefix(t, k.b, k.n, 0, 0, flagged_cb, &c);
    if (rc == 0 && c.l.rc == 0) {
        key_prefix(&k, KEY_QUEUE_USE);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, usage_cb, &c);
    }
    if (rc == 0 && c.l.rc == 0) {
        key_prefix(&k, KEY_QUEUE_CTL);
        rc = kv_scan_prefix(t, k.b, k.n, 0, 0, control_cb, &c);
    }
    if (rc == 0) {
        rc = c.l.rc;
    }
    for (size_t i = 0; rc == 0 && i < c.l.n; i++) {
        const aj_queue_info *e = &c.l.v[i];
        uint32_t flagged = (uint32_t)e->jobs[AJ_STATE_RUNNING];
        if (e->leases_counted != UINT32_MAX && e->leases_counted != flagged) {
            char line[AJ_NAME_MAX + 256];
            snprintf(line, sizeof line,
                     "queue '%s': %u leases counted against its concurrency limit, but %u running "
                     "jobs hold one (aj queue limit QUEUE --concurrency N recounts)",
                     e->name, e->leases_counted, flagged);
            check_problem(&c.rep, "%s", line);
        }
    }
    aj_queue_list_free(c.l.v, c.l.n);
    if (rc == 0) {
        *records += c.records;
        *problems += c.rep.problems;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Parsing                                                                                    */

int aj_rate_parse(const char *text, uint32_t *out_n, int64_t *out_window_ms) {
    if (text == NULL || text[0] == '\0') {
        return aj__err(AJ_EINVAL, "rate is empty (expected N/DURATION, e.g. 10/1s, or none)");
    }
    if (strcmp(text, "none") == 0 || strcmp(text, "0") == 0) {
        *out_n = 0;
        *out_window_ms = 0;
        return 0;
    }
    const char *slash = strchr(text, '/');
    if (slash == NULL) {
        return aj__err(AJ_EINVAL, "rate '%.64s' has no '/' (expected N/DURATION, e.g. 10/1s)",
                       text);
    }
    uint64_t n = 0;
    const char *p = text;
    if (p == slash) {
        return aj__err(AJ_EINVAL, "rate '%.64s' has no count before '/'", text);
    }
    for (; p < slash; p++) {
        if (*p < '0' || *p > '9' || n > AJ_QUEUE_RATE_MAX) {
            return aj__err(AJ_EINVAL, "rate '%.64s': the count must be a whole number from 1 to %u",
                           text, AJ_QUEUE_RATE_MAX);
        }
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n == 0 || n > AJ_QUEUE_RATE_MAX) {
        return aj__err(AJ_EINVAL, "rate '%.64s': the count must be a whole number from 1 to %u",
                       text, AJ_QUEUE_RATE_MAX);
    }
    int64_t w = 0;
    if (aj_duration_parse(slash + 1, &w) != 0) {
        return aj__err(AJ_EINVAL, "rate '%.64s': window '%.32s' is not a duration (e.g. 1s, 1m)",
                       text, slash + 1);
    }
    if (w <= 0 || w > AJ_QUEUE_RATE_WINDOW_MAX) {
        return aj__err(AJ_EINVAL, "rate '%.64s': the window must be between 1ms and 1d", text);
    }
    *out_n = (uint32_t)n;
    *out_window_ms = w;
    return 0;
}
