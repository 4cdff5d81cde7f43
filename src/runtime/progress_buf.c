/*
 * progress_buf.c — job progress in the runtime: the per-attempt report buffer and its batched
 * flushes (progress_buf.h), the handler calls aj_ctx_progress/step/count/progress_line, and the
 * reader aj_job_progress.
 *
 * Invariants: an attempt's buffer only grows (it is a CRDT state, never reset), `version`
 * counts its changes and `flushed` is the version last known to be in the store, so
 * version != flushed means "something to write". A flush writes a snapshot taken under the
 * buffer's mutex and then advances `flushed` to that snapshot's version only, so a report made
 * during the flush stays pending. Stamps are taken from the engine's HLC under e->mu; nothing
 * here holds two locks at once.
 */
#include "runtime/progress_buf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/progress.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* Attempts flushed in one transaction (each carries a snapshot of up to ~16 KiB). */
#define PROGRESS_FLUSH_BATCH 64

struct eng_progress {
    aj_engine *e;
    uint64_t job_id;
    uint64_t writer;
    pthread_mutex_t mu;
    progress_state st;     /* this attempt's reports */
    uint64_t version;      /* changes made to st */
    uint64_t flushed;      /* the version last written to the store */
    int64_t last_flush_us; /* monotonic; 0: never */
    int observed;          /* the stored progress's stamp was taken into the HLC */
};

static aj_hlc_ts hlc_now(aj_engine *e) {
    pthread_mutex_lock(&e->mu);
    aj_hlc_ts ts = aj__hlc_now(&e->hlc);
    pthread_mutex_unlock(&e->mu);
    return ts;
}

static void hlc_observe(aj_engine *e, aj_hlc_ts ts) {
    pthread_mutex_lock(&e->mu);
    aj__hlc_observe(&e->hlc, ts);
    pthread_mutex_unlock(&e->mu);
}

eng_progress *eng_progress_new(aj_engine *e, uint64_t job_id, uint64_t writer) {
    eng_progress *p = aj__calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->e = e;
    p->job_id = job_id;
    p->writer = writer;
    pthread_mutex_init(&p->mu, NULL);
    progress_init(&p->st);
    return p;
}

void eng_progress_free(eng_progress *p) {
    if (p == NULL) {
        return;
    }
    pthread_mutex_destroy(&p->mu);
    aj__free(p);
}

int eng_progress_due(eng_progress *p, int64_t now_mono_us) {
    pthread_mutex_lock(&p->mu);
    int due = p->version != p->flushed &&
              now_mono_us - p->last_flush_us >= (int64_t)AJ_PROGRESS_FLUSH_MS * 1000;
    pthread_mutex_unlock(&p->mu);
    return due;
}

/* A copy of the buffer's state and the version it holds; NULL when out of memory. */
static progress_state *snapshot(eng_progress *p, uint64_t *version) {
    progress_state *s = aj__malloc(sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&p->mu);
    *s = p->st;
    *version = p->version;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Merges one snapshot into the store and takes the merged stamp into the HLC. */
static int store_snapshot(kv_txn *t, aj_engine *e, uint64_t job_id, const progress_state *snap) {
    progress_state *scratch = aj__malloc(sizeof *scratch);
    if (scratch == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory writing progress");
    }
    int rc = progress_merge_into_store(t, job_id, snap, scratch);
    if (rc == 0) {
        hlc_observe(e, scratch->updated);
    }
    aj__free(scratch);
    return rc;
}

typedef struct flush_batch {
    eng_progress *const *v;
    size_t n;
    progress_state **snaps;
    uint64_t *versions;
    int *gone;
} flush_batch;

static int flush_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    flush_batch *b = ud;
    for (size_t i = 0; i < b->n; i++) {
        b->gone[i] = 0;
        if (b->snaps[i] == NULL) {
            continue;
        }
        /* A job that no longer exists (collected or purged) gets no progress record back. */
        job_rec r;
        int rc = job_read(t, b->v[i]->job_id, &r);
        if (rc == AJ_ENOTFOUND) {
            b->gone[i] = 1;
            continue;
        }
        if (rc == 0) {
            rc = store_snapshot(t, b->v[i]->e, b->v[i]->job_id, b->snaps[i]);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void eng_progress_flush(aj_engine *e, eng_progress *const *v, size_t n) {
    for (size_t start = 0; start < n; start += PROGRESS_FLUSH_BATCH) {
        size_t k = n - start < PROGRESS_FLUSH_BATCH ? n - start : PROGRESS_FLUSH_BATCH;
        progress_state *snaps[PROGRESS_FLUSH_BATCH];
        uint64_t versions[PROGRESS_FLUSH_BATCH];
        int gone[PROGRESS_FLUSH_BATCH];
        for (size_t i = 0; i < k; i++) {
            snaps[i] = snapshot(v[start + i], &versions[i]);
        }
        flush_batch b = {v + start, k, snaps, versions, gone};
        int rc = eng_run(e, flush_txn, &b, KV_SYNC);
        int64_t now = aj__mono_us();
        for (size_t i = 0; i < k; i++) {
            eng_progress *p = v[start + i];
            pthread_mutex_lock(&p->mu);
            p->last_flush_us = now;
            if (rc == 0 && snaps[i] != NULL && versions[i] > p->flushed) {
                p->flushed = gone[i] ? p->version : versions[i];
            }
            pthread_mutex_unlock(&p->mu);
            aj__free(snaps[i]);
        }
        if (rc != 0) {
            aj__log(&e->log, AJ_LOG_WARN,
                    "msg=\"could not write job progress; will try again\" jobs=%zu error=\"%s\"", k,
                    aj_errmsg());
        }
    }
}

int eng_progress_store(kv_txn *t, eng_progress *p) {
    if (p == NULL) {
        return 0;
    }
    uint64_t version;
    progress_state *snap = snapshot(p, &version);
    if (snap == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory writing progress");
    }
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    int pending = version != p->flushed;
    pthread_mutex_unlock(&p->mu);
    if (pending) {
        rc = store_snapshot(t, p->e, p->job_id, snap);
    }
    aj__free(snap);
    return rc;
}

/* Reads the stored progress of the attempt's job once and takes its stamp into the HLC, so
 * this attempt's stamps exceed every earlier attempt's. */
typedef struct observe_ctx {
    uint64_t job_id;
    progress_state *st;
    int found;
} observe_ctx;

static int observe_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    observe_ctx *o = ud;
    int rc = progress_read(t, o->job_id, o->st, &o->found);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

static void observe_stored(eng_progress *p) {
    pthread_mutex_lock(&p->mu);
    int done = p->observed;
    p->observed = 1;
    pthread_mutex_unlock(&p->mu);
    if (done) {
        return;
    }
    observe_ctx o = {p->job_id, aj__malloc(sizeof(progress_state)), 0};
    if (o.st == NULL) {
        return; /* only ordering across attempts is at stake; the report still counts */
    }
    if (eng_run(p->e, observe_txn, &o, KV_SYNC) == 0 && o.found) {
        hlc_observe(p->e, o.st->updated);
    }
    aj__free(o.st);
}

/* Stamps and applies one report; fn returns 0 or an error (nothing changed then). */
typedef int (*report_fn)(progress_state *s, aj_hlc_ts ts, uint64_t writer, const void *arg);

static int report(eng_progress *p, report_fn fn, const void *arg) {
    observe_stored(p);
    aj_hlc_ts ts = hlc_now(p->e);
    pthread_mutex_lock(&p->mu);
    int rc = fn(&p->st, ts, p->writer, arg);
    if (rc == 0) {
        p->version++;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void eng_progress_complete(eng_progress *p) {
    if (p == NULL) {
        return;
    }
    aj_hlc_ts ts = hlc_now(p->e);
    pthread_mutex_lock(&p->mu);
    progress_op_complete(&p->st, ts, p->writer);
    p->version++;
    pthread_mutex_unlock(&p->mu);
}

/* ----------------------------------------------------------------------------------------- */
/* Handler calls                                                                              */

typedef struct text_arg {
    const char *text;
    size_t len;
    uint32_t percent;
    int has_percent;
    uint64_t n;
} text_arg;

static int apply_percent(progress_state *s, aj_hlc_ts ts, uint64_t writer, const void *arg) {
    const text_arg *a = arg;
    if (a->has_percent) {
        progress_op_percent(s, ts, a->percent);
    }
    if (a->text != NULL) {
        progress_op_message(s, ts, writer, a->text, a->len);
    }
    return 0;
}

static int apply_step(progress_state *s, aj_hlc_ts ts, uint64_t writer, const void *arg) {
    const text_arg *a = arg;
    progress_op_step(s, ts, writer, a->text, a->len);
    return 0;
}

static int apply_count(progress_state *s, aj_hlc_ts ts, uint64_t writer, const void *arg) {
    const text_arg *a = arg;
    return progress_op_count(s, ts, writer, a->text, a->len, a->n);
}

static int apply_malformed(progress_state *s, aj_hlc_ts ts, uint64_t writer, const void *arg) {
    (void)arg;
    progress_op_malformed(s, ts, writer);
    return 0;
}

static eng_progress *ctx_buffer(aj_job_ctx *ctx) {
    eng_progress *p = ctx != NULL ? eng_ctx_progress(ctx) : NULL;
    if (p == NULL && ctx != NULL) {
        aj__err(AJ_ENOMEM, "out of memory keeping progress");
    }
    return p;
}

int aj_ctx_progress(aj_job_ctx *ctx, double percent, const char *message) {
    if (ctx == NULL) {
        return aj__err(AJ_EINVAL, "aj_ctx_progress needs a handler context");
    }
    if (isnan(percent) || percent < 0 || percent > 100) {
        return aj__err(AJ_EINVAL, "progress percentage must be from 0 to 100");
    }
    text_arg a = {NULL, 0, (uint32_t)(percent * PROGRESS_PERCENT_SCALE + 0.5), 1, 0};
    if (message != NULL) {
        int rc = progress_message_check(message, strlen(message), &a.len);
        if (rc != 0) {
            return rc;
        }
        a.text = message;
    }
    eng_progress *p = ctx_buffer(ctx);
    return p == NULL ? AJ_ENOMEM : report(p, apply_percent, &a);
}

int aj_ctx_step(aj_job_ctx *ctx, const char *name) {
    if (ctx == NULL) {
        return aj__err(AJ_EINVAL, "aj_ctx_step needs a handler context");
    }
    size_t len = name != NULL ? strlen(name) : 0;
    int rc = progress_name_check("step", name, len, 0);
    if (rc != 0) {
        return rc;
    }
    text_arg a = {name, len, 0, 0, 0};
    eng_progress *p = ctx_buffer(ctx);
    return p == NULL ? AJ_ENOMEM : report(p, apply_step, &a);
}

int aj_ctx_count(aj_job_ctx *ctx, const char *name, uint64_t n) {
    if (ctx == NULL) {
        return aj__err(AJ_EINVAL, "aj_ctx_count needs a handler context");
    }
    size_t len = name != NULL ? strlen(name) : 0;
    int rc = progress_name_check("counter", name, len, 1);
    if (rc != 0) {
        return rc;
    }
    text_arg a = {name, len, 0, 0, n};
    eng_progress *p = ctx_buffer(ctx);
    return p == NULL ? AJ_ENOMEM : report(p, apply_count, &a);
}

int aj_ctx_progress_line(aj_job_ctx *ctx, const char *line, size_t len) {
    if (ctx == NULL || (line == NULL && len > 0)) {
        return aj__err(AJ_EINVAL, "aj_ctx_progress_line needs a handler context and a line");
    }
    progress_line pl;
    int rc = progress_line_parse(line != NULL ? line : "", len, &pl);
    /* Keep the parser's message for the caller: counting the line must not replace it. */
    char msg[AJ__ERRMSG_MAX] = "";
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
    }
    eng_progress *p = NULL;
    if (rc != 0 || pl.kind != PROGRESS_LINE_BLANK) {
        p = ctx_buffer(ctx);
        if (p == NULL) {
            return AJ_ENOMEM;
        }
    }
    if (rc != 0) {
        report(p, apply_malformed, NULL);
        return aj__err(AJ_EINVAL, "%s", msg);
    }
    text_arg a = {pl.text, pl.text_len, pl.percent, 1, pl.n};
    switch (pl.kind) {
    case PROGRESS_LINE_BLANK:
        return 0;
    case PROGRESS_LINE_PERCENT:
        return report(p, apply_percent, &a);
    case PROGRESS_LINE_STEP:
        return report(p, apply_step, &a);
    case PROGRESS_LINE_COUNT:
        rc = report(p, apply_count, &a);
        if (rc == AJ_ETOOBIG) {
            snprintf(msg, sizeof msg, "%s", aj_errmsg());
            report(p, apply_malformed, NULL);
            return aj__err(AJ_EINVAL, "%s", msg);
        }
        return rc;
    }
    return aj__err(AJ_EINTERNAL, "unknown progress line kind");
}

/* ----------------------------------------------------------------------------------------- */
/* Reading                                                                                    */

typedef struct read_ctx {
    uint64_t id;
    progress_state *st;
    aj_progress *out;
} read_ctx;

static int read_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    read_ctx *c = ud;
    aj_progress_free(c->out);
    c->out = NULL;
    job_rec r;
    int rc = job_read(t, c->id, &r);
    int found = 0;
    if (rc == 0) {
        rc = progress_read(t, c->id, c->st, &found);
    }
    if (rc == 0) {
        c->out = progress_to_public(c->st, c->id);
        if (c->out == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory reading progress");
        }
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_job_progress(aj_engine *e, uint64_t id, aj_progress **out) {
    if (e == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "aj_job_progress needs an engine and an output pointer");
    }
    read_ctx c = {id, aj__malloc(sizeof(progress_state)), NULL};
    if (c.st == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory reading progress");
    }
    int rc = eng_run(e, read_txn, &c, KV_SYNC);
    aj__free(c.st);
    if (rc != 0) {
        aj_progress_free(c.out);
        return rc;
    }
    *out = c.out;
    return 0;
}
