/*
 * pg_commit.c — one commit batch of the PostgreSQL backend, run by the shared committer
 * (commit_queue.c) in one READ COMMITTED transaction on the committer's connection: advisory
 * locks on the batch's key hashes, validation of every request's read set, the writes with one
 * version and a commit token, and COMMIT; when COMMIT gets no answer, the token decides the
 * outcome (see kv_postgres.c for the design).
 *
 * Invariants: the committer connection (wconn) and prev_token are used only by the committer
 * thread; a request's result is decided once, and a batch either commits every accepted
 * request's writes or none.
 *
 * Layer: src/store, part of the PostgreSQL backend (kv_postgres_int.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "store/kv_postgres_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* ---------------------------------------------------------------------------------------------
 * Group commit
 * ------------------------------------------------------------------------------------------- */

/* One key of a batch: its lock, its stored version, and the batch's last write of it. */
typedef struct pg_slot {
    const uint8_t *key; /* NULL: empty slot */
    size_t klen;
    uint64_t hash;
    int exclusive;         /* written by some request of the batch */
    uint64_t db_ver;       /* version stored before the batch (0: absent) */
    const kv_write *write; /* the last accepted write (NULL: none yet) */
} pg_slot;

typedef struct pg_keys {
    pg_slot *slots;
    size_t cap; /* a power of two */
    size_t n;
} pg_keys;

static pg_slot *keys_find(pg_keys *ks, const uint8_t *k, size_t kl, uint64_t h, int add) {
    for (size_t i = h & (ks->cap - 1);; i = (i + 1) & (ks->cap - 1)) {
        pg_slot *s = &ks->slots[i];
        if (s->key == NULL) {
            if (!add) {
                return NULL;
            }
            *s = (pg_slot){k, kl, h, 0, 0, NULL};
            ks->n++;
            return s;
        }
        if (s->hash == h && s->klen == kl && memcmp(s->key, k, kl) == 0) {
            return s;
        }
    }
}

static int cmp_slot_hash(const void *a, const void *b) {
    const pg_slot *x = *(pg_slot *const *)a, *y = *(pg_slot *const *)b;
    int64_t hx = (int64_t)x->hash, hy = (int64_t)y->hash;
    return hx < hy ? -1 : hx > hy;
}

static int64_t next_token(pg_store *ps) {
    /* splitmix64 over a random seed: distinct per batch and, with overwhelming likelihood,
     * across processes. Never 0 (0 means "no previous token"). */
    uint64_t z = (ps->token_seed += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z != 0 ? (int64_t)z : 1;
}

/* Decides the outcome of a batch whose COMMIT got no answer: 1 committed, 0 not committed, or
 * AJ_EAMBIGUOUS when the server could not be asked within resolve_ms. */
static int resolve(pg_store *ps, int64_t token) {
    int64_t deadline = aj__mono_us() + ps->resolve_ms * 1000;
    int64_t wait_ms = PG_BACKOFF_MIN_MS;
    char last[AJ__ERRMSG_MAX] = "no attempt made";
    for (;;) {
        pg_conn *c = NULL;
        int rc = kv__pg_conn_open(ps, 1, &c);
        if (rc == 0) {
            uint8_t tok[8];
            aj__put_u64be(tok, (uint64_t)token);
            const char *vals[1] = {(const char *)tok};
            int lens[1] = {8}, fmts[1] = {1};
            /* Waits for the batch's transaction if the server is still finishing it. */
            PGresult *r = PQexecParams(c->db,
                                       "INSERT INTO aj_commits(token) VALUES ($1::int8) ON "
                                       "CONFLICT DO NOTHING RETURNING 1",
                                       1, NULL, vals, lens, fmts, 1);
            int out = -1;
            if (PQresultStatus(r) == PGRES_TUPLES_OK) {
                out = PQntuples(r) == 0; /* the token was there: the batch committed */
            } else {
                kv__pg_err(ps, c->db, r, "resolving a commit");
            }
            PQclear(r);
            if (out >= 0) {
                ps->wconn = c; /* the committer goes on with this connection */
                ps->prev_token = token;
                return out;
            }
        }
        snprintf(last, sizeof last, "%s", aj_errmsg());
        kv__pg_conn_close(c);
        if (kv_cq_stopping(ps->cq) || aj__mono_us() + wait_ms * 1000 > deadline) {
            break;
        }
        aj__sleep_ms(wait_ms);
        wait_ms = wait_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : wait_ms * 2;
    }
    return aj__err(AJ_EAMBIGUOUS,
                   "the connection to PostgreSQL (%s) broke after COMMIT was sent and the "
                   "outcome could not be learned within %lld ms (%s): the commit may have been "
                   "applied",
                   ps->display, (long long)ps->resolve_ms, last);
}

/* Sends COMMIT: 0, or an error; *ambiguous is set when the outcome is unknown. */
static int send_commit(pg_store *ps, pg_conn *c, int *ambiguous) {
    *ambiguous = 0;
    pthread_mutex_lock(&ps->mu);
    pg_cut cut = ps->cut;
    ps->cut.mode = 0;
    pthread_mutex_unlock(&ps->mu);
    if (cut.mode != 0) {
        if (cut.mode == 1) {
            PQsendQuery(c->db, "COMMIT");
            PQflush(c->db);
        }
        shutdown(PQsocket(c->db), SHUT_RDWR);
        if (cut.fn != NULL) {
            cut.fn(cut.ud);
        }
        PQfinish(c->db);
        c->db = NULL;
        *ambiguous = 1;
        return aj__err(AJ_EIO, "test hook: the connection was cut at COMMIT");
    }
    PGresult *r = PQexec(c->db, "COMMIT");
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = kv__pg_err(ps, c->db, r, "committing");
        *ambiguous = kv__pg_conn_bad(c);
    }
    PQclear(r);
    return rc;
}

/* Runs one batch in one PostgreSQL transaction. Returns 1 if it committed writes; *retry says the
 * connection was found dead before anything was sent (worth one more attempt). */
static int batch_once(pg_store *ps, kv_cq_req *reqs, size_t n, int *retry) {
    *retry = 0;
    int wrote = 0, err = 0;
    pg_keys ks = {NULL, 0, 0};
    pg_slot **order = NULL;
    aj_buf a1 = AJ_BUF_INIT, a2 = AJ_BUF_INIT, a3 = AJ_BUF_INIT;
    PGresult *r = NULL;
    pg_conn *c = ps->wconn;
    if (kv__pg_conn_bad(c)) {
        kv__pg_conn_close(c);
        ps->wconn = c = NULL;
        if ((err = kv__pg_conn_get(ps, 1, &c)) != 0) {
            goto fail;
        }
        ps->wconn = c;
    }
    if ((err = kv__pg_prepare(ps, c)) != 0 ||
        (err = kv__pg_exec(ps, c, "BEGIN", "beginning")) != 0) {
        *retry = kv__pg_conn_bad(c);
        goto fail;
    }

    /* The batch's keys, each once. */
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        nk += reqs[i].c->n_reads + reqs[i].c->n_writes;
    }
    for (ks.cap = 16; ks.cap < 2 * nk; ks.cap *= 2) {
    }
    ks.slots = aj__calloc(ks.cap, sizeof *ks.slots);
    order = aj__malloc((nk > 0 ? nk : 1) * sizeof *order);
    if (ks.slots == NULL || order == NULL) {
        err = aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
        goto rollback;
    }
    size_t n_reads = 0;
    for (size_t i = 0; i < n; i++) {
        const kv_commit_req *cm = reqs[i].c;
        for (size_t j = 0; j < cm->n_reads; j++) {
            const kv_read *rd = &cm->reads[j];
            size_t before = ks.n;
            keys_find(&ks, rd->key, rd->klen, kv__key_hash(rd->key, rd->klen), 1);
            n_reads += ks.n > before;
        }
        for (size_t j = 0; j < cm->n_writes; j++) {
            const kv_write *w = &cm->writes[j];
            keys_find(&ks, w->key, w->klen, kv__key_hash(w->key, w->klen), 1)->exclusive = 1;
        }
    }

    /* 1. Locks, in hash order; a hash shared by two keys is locked once, exclusive if either
     * key is written. */
    size_t no = 0;
    for (size_t i = 0; i < ks.cap; i++) {
        if (ks.slots[i].key != NULL) {
            order[no++] = &ks.slots[i];
        }
    }
    qsort(order, no, sizeof *order, cmp_slot_hash);
    size_t nl = 0;
    for (size_t i = 0; i < no; i++) {
        if (nl > 0 && order[nl - 1]->hash == order[i]->hash) {
            order[nl - 1]->exclusive |= order[i]->exclusive;
            continue;
        }
        order[nl++] = order[i];
    }
    kv__pg_arr_begin(&a1, OID_INT8, nl);
    kv__pg_arr_begin(&a2, OID_BOOL, nl);
    for (size_t i = 0; i < nl; i++) {
        uint8_t h[8];
        aj__put_u64be(h, order[i]->hash);
        kv__pg_arr_bytes(&a1, h, 8);
        uint8_t x = (uint8_t)order[i]->exclusive;
        kv__pg_arr_bytes(&a2, &x, 1);
    }
    if (a1.oom || a2.oom) {
        err = aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
        goto rollback;
    }
    if (nl > 0) {
        const char *vals[2] = {(const char *)a1.p, (const char *)a2.p};
        int lens[2] = {(int)a1.len, (int)a2.len};
        r = kv__pg_run(c, Q_LOCK, 2, vals, lens);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            err = kv__pg_err(ps, c->db, r, "locking the keys of a commit");
            goto rollback;
        }
        PQclear(r);
        r = NULL;
    }

    /* 2. Stored versions of the keys read. */
    if (n_reads > 0) {
        kv__pg_arr_begin(&a1, OID_BYTEA, n_reads);
        for (size_t i = 0; i < n; i++) {
            const kv_commit_req *cm = reqs[i].c;
            for (size_t j = 0; j < cm->n_reads; j++) {
                pg_slot *s = keys_find(&ks, cm->reads[j].key, cm->reads[j].klen,
                                       kv__key_hash(cm->reads[j].key, cm->reads[j].klen), 0);
                if (s->db_ver == 0) {
                    s->db_ver = UINT64_MAX; /* listed; set to the stored version below */
                    kv__pg_arr_bytes(&a1, s->key, s->klen);
                }
            }
        }
        if (a1.oom) {
            err = aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
            goto rollback;
        }
        for (size_t i = 0; i < ks.cap; i++) {
            if (ks.slots[i].db_ver == UINT64_MAX) {
                ks.slots[i].db_ver = 0; /* absent unless the query returns it */
            }
        }
        const char *vals[1] = {(const char *)a1.p};
        int lens[1] = {(int)a1.len};
        r = kv__pg_run(c, Q_VERS, 1, vals, lens);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            err = kv__pg_err(ps, c->db, r, "validating a commit");
            goto rollback;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            const uint8_t *k = (const uint8_t *)PQgetvalue(r, i, 0);
            size_t kl = (size_t)PQgetlength(r, i, 0);
            pg_slot *s = keys_find(&ks, k, kl, kv__key_hash(k, kl), 0);
            assert(s != NULL);
            s->db_ver = kv__pg_u64(r, i, 1);
        }
        PQclear(r);
        r = NULL;
    }

    /* Validation, request by request, against the state the earlier accepted requests left. A
     * key written earlier in the batch gets the batch's version, which no read can have seen. */
    int any_write = 0;
    for (size_t i = 0; i < n; i++) {
        const kv_commit_req *cm = reqs[i].c;
        int ok = 1;
        for (size_t j = 0; ok && j < cm->n_reads; j++) {
            const kv_read *rd = &cm->reads[j];
            pg_slot *s = keys_find(&ks, rd->key, rd->klen, kv__key_hash(rd->key, rd->klen), 0);
            if (s->write != NULL) {
                ok = s->write->val == NULL && rd->version == 0;
            } else {
                ok = s->db_ver == rd->version;
            }
        }
        if (!ok) {
            reqs[i].rc = AJ_ECONFLICT;
            continue;
        }
        reqs[i].rc = 0;
        for (size_t j = 0; j < cm->n_writes; j++) {
            const kv_write *w = &cm->writes[j];
            keys_find(&ks, w->key, w->klen, kv__key_hash(w->key, w->klen), 0)->write = w;
            any_write = 1;
        }
    }
    if (!any_write) {
        kv__pg_exec(ps, c, "ROLLBACK", "rolling back"); /* nothing to make durable */
        for (size_t i = 0; i < n; i++) {
            reqs[i].c->out_version = 0;
        }
        goto out;
    }

    /* 3. Writes, the commit token and the notification, in one statement. */
    size_t np = 0, nd = 0;
    for (size_t i = 0; i < ks.cap; i++) {
        const kv_write *w = ks.slots[i].write;
        if (w != NULL && w->val != NULL) {
            np++;
        } else if (w != NULL) {
            nd++;
        }
    }
    kv__pg_arr_begin(&a1, OID_BYTEA, np);
    kv__pg_arr_begin(&a2, OID_BYTEA, np);
    kv__pg_arr_begin(&a3, OID_BYTEA, nd);
    for (size_t i = 0; i < ks.cap; i++) {
        const kv_write *w = ks.slots[i].write;
        if (w == NULL) {
            continue;
        }
        if (w->val != NULL) {
            kv__pg_arr_bytes(&a1, w->key, w->klen);
            kv__pg_arr_bytes(&a2, w->val, w->vlen);
        } else {
            kv__pg_arr_bytes(&a3, w->key, w->klen);
        }
    }
    if (a1.oom || a2.oom || a3.oom || a2.len > INT32_MAX) {
        err = a2.len > INT32_MAX ? aj__err(AJ_ETOOBIG, "a commit batch of %zu bytes", a2.len)
                                 : aj__err(AJ_ENOMEM, "out of memory preparing a commit batch");
        goto rollback;
    }
    int64_t token = next_token(ps);
    uint8_t tok[8], prev[8];
    aj__put_u64be(tok, (uint64_t)token);
    aj__put_u64be(prev, (uint64_t)ps->prev_token);
    {
        const char *vals[5] = {(const char *)a1.p, (const char *)a2.p, (const char *)a3.p,
                               (const char *)tok, (const char *)prev};
        int lens[5] = {(int)a1.len, (int)a2.len, (int)a3.len, 8, 8};
        r = kv__pg_run(c, Q_WRITE, 5, vals, lens);
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        err = kv__pg_err(ps, c->db, r, "writing a commit");
        goto rollback;
    }
    uint64_t ver = kv__pg_u64(r, 0, 0);
    PQclear(r);
    r = NULL;

    /* 4. COMMIT. */
    int ambiguous = 0;
    err = send_commit(ps, c, &ambiguous);
    if (err != 0 && ambiguous) {
        kv__pg_conn_close(ps->wconn);
        ps->wconn = NULL;
        int outcome = resolve(ps, token);
        if (outcome == 1) {
            err = 0;
        } else if (outcome == 0) {
            err = aj__err(AJ_EUNAVAILABLE,
                          "the connection to PostgreSQL (%s) broke at COMMIT; the commit did not "
                          "happen",
                          ps->display);
        } else {
            err = outcome;
        }
    }
    if (err != 0) {
        goto fail;
    }
    ps->prev_token = token;
    for (size_t i = 0; i < n; i++) {
        const kv_commit_req *cm = reqs[i].c;
        reqs[i].c->out_version = reqs[i].rc == 0 && cm->n_writes > 0 ? ver : 0;
    }
    wrote = 1;
    goto out;

rollback:
    PQclear(r);
    r = NULL;
    if (!kv__pg_conn_bad(c)) {
        kv__pg_exec(ps, c, "ROLLBACK", "rolling back");
    }
fail:
    /* Keep the failure's message, not the rollback's. */
    kv_cq_fail_all(reqs, n, err);
    wrote = 0;
out:
    PQclear(r);
    aj__free(ks.slots);
    aj__free(order);
    aj__buf_free(&a1);
    aj__buf_free(&a2);
    aj__buf_free(&a3);
    return wrote;
}

int kv__pg_run_batch(void *ud, kv_cq_req *reqs, size_t n, int *synced) {
    pg_store *ps = ud;
    int retry = 0;
    int wrote = batch_once(ps, reqs, n, &retry);
    if (retry) {
        /* The committer's idle connection had died (a server restart): nothing was sent. */
        for (size_t i = 0; i < n; i++) {
            aj__free(reqs[i].msg);
            reqs[i].msg = NULL;
        }
        wrote = batch_once(ps, reqs, n, &retry);
    }
    *synced = !ps->relaxed;
    return wrote;
}
