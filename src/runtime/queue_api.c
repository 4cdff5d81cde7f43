/*
 * queue_api.c — the public calls for queue controls and the worker registry (aj.h), each one
 * transaction through eng_run over src/core/queue_ctl.c and src/core/worker_registry.c, plus
 * the worker pool's registry upkeep (eng_registry_*).
 */
#include <string.h>

#include "core/queue_ctl.h"
#include "core/worker_registry.h"
#include "runtime/engine.h"
#include "util/err.h"

/* The operator's queue controls. */
typedef enum qop_kind { QOP_PAUSE, QOP_RESUME, QOP_LIMIT } qop_kind;

typedef struct qop {
    const char *queue;
    qop_kind op;
    int64_t concurrency, rate_n, rate_window_ms;
} qop;

static int qop_txn(kv_txn *t, const job_env *env, void *ud) {
    qop *o = ud;
    switch (o->op) {
    case QOP_PAUSE:
        return qctl_pause(t, o->queue, 1);
    case QOP_RESUME:
        return qctl_pause(t, o->queue, 0);
    case QOP_LIMIT:
    default:
        return qctl_limit(t, env, o->queue, o->concurrency, o->rate_n, o->rate_window_ms);
    }
}

static int run_qop(aj_engine *e, qop *o) {
    int rc = aj_name_check("queue", o->queue);
    return rc != 0 ? rc : eng_run(e, qop_txn, o, KV_SYNC);
}

int aj_queue_pause(aj_engine *e, const char *queue) {
    qop o = {queue, QOP_PAUSE, 0, 0, 0};
    return run_qop(e, &o);
}

int aj_queue_resume(aj_engine *e, const char *queue) {
    qop o = {queue, QOP_RESUME, 0, 0, 0};
    return run_qop(e, &o);
}

int aj_queue_limit(aj_engine *e, const char *queue, int64_t concurrency, int64_t rate_n,
                   int64_t rate_window_ms) {
    qop o = {queue, QOP_LIMIT, concurrency, rate_n, rate_window_ms};
    return run_qop(e, &o);
}

typedef struct qlist_ctx {
    aj_queue_info *v;
    size_t n;
} qlist_ctx;

static int qlist_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    qlist_ctx *c = ud;
    aj_queue_list_free(c->v, c->n);
    c->v = NULL;
    c->n = 0;
    int rc = qctl_list(t, &c->v, &c->n);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_queue_list(aj_engine *e, aj_queue_info **out, size_t *n) {
    qlist_ctx c = {NULL, 0};
    int rc = eng_run(e, qlist_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj_queue_list_free(c.v, c.n);
        return rc;
    }
    *out = c.v;
    *n = c.n;
    return 0;
}

typedef struct wlist_ctx {
    aj_worker_info *v;
    size_t n;
} wlist_ctx;

static int wlist_txn(kv_txn *t, const job_env *env, void *ud) {
    wlist_ctx *c = ud;
    aj_worker_list_free(c->v, c->n);
    c->v = NULL;
    c->n = 0;
    int rc = wreg_list(t, env, &c->v, &c->n);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_worker_list(aj_engine *e, aj_worker_info **out, size_t *n) {
    wlist_ctx c = {NULL, 0};
    int rc = eng_run(e, wlist_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj_worker_list_free(c.v, c.n);
        return rc;
    }
    *out = c.v;
    *n = c.n;
    return 0;
}

typedef struct reg_ctx {
    const wreg_entry *w;
    eng_registry_action op;
} reg_ctx;

static int reg_txn(kv_txn *t, const job_env *env, void *ud) {
    reg_ctx *c = ud;
    switch (c->op) {
    case ENG_REGISTRY_WRITE:
        return wreg_put(t, env, c->w);
    case ENG_REGISTRY_REFRESH:
        return wreg_touch(t, env, c->w);
    case ENG_REGISTRY_DELETE:
    default:
        return wreg_del(t, c->w->id);
    }
}

int eng_registry_op(aj_engine *e, const wreg_entry *w, eng_registry_action op) {
    reg_ctx c = {w, op};
    return eng_run(e, reg_txn, &c, KV_SYNC);
}
