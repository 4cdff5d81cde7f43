/*
 * blob_api.c — the runtime's side of large payloads (core/blob.h): hashing them once before a
 * transaction, staging the ones too large to write with their job in transactions of their own,
 * and the public blob statistics.
 *
 * Why stage: a store limits the bytes one transaction may write (kv_limits.max_txn_bytes; a
 * 64 MiB payload beside a batch of jobs would not fit everywhere), and one huge commit holds
 * the committer, and every other process's commits, for its whole length. Chunks are
 * content-addressed, so writing them first is harmless. When the submit fails (staging or the
 * job's commit: a full disk), its staged blobs are collected at once (eng_blob_unstage); when
 * the process dies before, after BLOB_STAGE_GRACE_MS.
 */
#include <stdio.h>
#include <string.h>

#include "core/blob.h"
#include "runtime/engine.h"
#include "util/err.h"
#include "util/mem.h"

size_t eng_blob_budget(aj_engine *e) {
    size_t budget = e->blob_budget != 0 ? e->blob_budget : BLOB_TXN_BYTES;
    size_t store = kv_store_limits(e->kv)->max_txn_bytes / 4;
    return store < budget ? store : budget;
}

typedef struct stage_ctx {
    const uint8_t *hash;
    aj_slice data;
    size_t batch;
    uint32_t next;
    int64_t due; /* the collection time this attempt sets (blob_stage: now + the grace) */
} stage_ctx;

static int stage_txn(kv_txn *t, const job_env *env, void *ud) {
    stage_ctx *s = ud;
    s->due = env->now_ms + BLOB_STAGE_GRACE_MS;
    return blob_stage(t, env, s->hash, s->data, s->batch, &s->next);
}

/* Stages one blob: batches until it is complete. Each batch is durable before the next; after
 * each, h->staged_due is the collection time it set. */
static int stage(aj_engine *e, blob_hint *h) {
    size_t batch = eng_blob_budget(e);
    stage_ctx s = {h->hash, {h->p, h->n}, batch, 0, 0};
    /* Each batch advances by at least one chunk, or restarts when the blob vanished between
     * batches; bound the loop by twice the batches a whole write takes. */
    size_t per = batch < BLOB_CHUNK ? BLOB_CHUNK : batch / BLOB_CHUNK * BLOB_CHUNK;
    size_t rounds = 2 * (h->n / per + 2);
    for (size_t i = 0; i < rounds; i++) {
        int rc = eng_run(e, stage_txn, &s, KV_SYNC);
        if (rc != 0) {
            return aj__err_wrap(rc, "storing a %zu-byte payload", h->n);
        }
        h->staged_due = s.due;
        if (s.next == UINT32_MAX) {
            return 0;
        }
    }
    return aj__err(AJ_ERETRIES, "storing a %zu-byte payload: its chunks kept disappearing", h->n);
}

int eng_blob_prepare(aj_engine *e, const aj_slice *data, size_t n, blob_hint **out_hints,
                     size_t *out_n) {
    size_t threshold = e->opts.blob_threshold ? e->opts.blob_threshold : BLOB_THRESHOLD_DEFAULT;
    size_t big = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (data[i].n > threshold) {
            big++;
            bytes += data[i].n;
        }
    }
    *out_hints = NULL;
    *out_n = 0;
    if (big == 0) {
        return 0;
    }
    blob_hint *h = aj__calloc(big, sizeof *h);
    if (h == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory preparing large payloads");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (data[i].n > threshold) {
            h[k].p = data[i].p;
            h[k].n = data[i].n;
            aj__sha256(data[i].p, data[i].n, h[k].hash);
            k++;
        }
    }
    /* Everything new fits in the job's own transaction: no staging. */
    if (bytes > eng_blob_budget(e)) {
        for (size_t i = 0; i < k; i++) {
            int rc = stage(e, &h[i]);
            if (rc != 0) {
                eng_blob_unstage(e, h, i + 1);
                aj__free(h);
                return rc;
            }
        }
    }
    *out_hints = h;
    *out_n = k;
    return 0;
}

typedef struct unstage_ctx {
    const blob_hint *h;
    size_t n;
} unstage_ctx;

static int unstage_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    const unstage_ctx *u = ud;
    int rc = 0;
    for (size_t i = 0; i < u->n && rc == 0; i++) {
        if (u->h[i].staged_due != 0) {
            rc = blob_unstage(t, u->h[i].hash, u->h[i].staged_due);
        }
    }
    return rc;
}

void eng_blob_unstage(aj_engine *e, const blob_hint *h, size_t n) {
    int staged = 0;
    for (size_t i = 0; i < n; i++) {
        staged |= h[i].staged_due != 0;
    }
    if (!staged) {
        return;
    }
    /* The caller reports its own error: keep its message. Failing here (the disk is still full)
     * only leaves the blobs to the collection duty, as before. */
    char saved[AJ__ERRMSG_MAX];
    snprintf(saved, sizeof saved, "%s", aj_errmsg());
    unstage_ctx u = {h, n};
    int rc = eng_run(e, unstage_txn, &u, KV_SYNC);
    if (rc != 0) {
        aj__log(&e->log, AJ_LOG_WARN,
                "msg=\"could not collect the chunks staged for a failed submit; the collection "
                "duty will\" error=\"%s\"",
                aj_errmsg());
    }
    aj__err(AJ_EIO, "%s", saved);
}

static int stats_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    int rc = blob_stats_get(t, ud);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_blob_stats_get(aj_engine *e, aj_blob_stats *out) {
    if (e == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "aj_blob_stats_get needs an engine and an output");
    }
    aj_blob_stats s;
    memset(&s, 0, sizeof s);
    int rc = eng_run(e, stats_txn, &s, KV_SYNC);
    if (rc == 0) {
        *out = s;
    }
    return rc;
}
