/*
 * wf_wakeq.c — folding wake requests (core/wf_wakeq.h) from the runtime: right after a
 * transaction that ended a child's run committed (its notice to the parent deferred the
 * parent's wake-up), and as a periodic duty for requests a crash left behind.
 *
 * Each fold is its own transaction through eng_run: a conflict retries only this bookkeeping,
 * never the task that wrote the arrival (and its inline steps). A failed fold is not an error
 * of the call that triggered it: the request stays and the duty folds it later.
 */
#include "core/wf_wakeq.h"
#include "runtime/engine.h"
#include "runtime/wf_exec.h"
#include "util/err.h"

typedef struct fold_ctx {
    aj_slice child;
    size_t n;
} fold_ctx;

static int fold_parent_txn(kv_txn *t, const job_env *env, void *ud) {
    fold_ctx *c = ud;
    int rc = wf_wakeq_fold_parent(t, env, c->child, &c->n);
    return rc == 0 && c->n == 0 ? ENG_READ_ONLY : rc;
}

void aj__wf_fold_parent(aj_engine *e, aj_slice child) {
    fold_ctx c = {child, 0};
    int rc = eng_run(e, fold_parent_txn, &c, KV_SYNC);
    if (rc != 0) {
        aj__log(&e->log, AJ_LOG_WARN,
                "msg=\"waking a parent workflow failed; the sweep will\" error=\"%s\"",
                aj_errmsg());
    }
}

static int sweep_txn(kv_txn *t, const job_env *env, void *ud) {
    size_t *n = ud;
    int rc = wf_wakeq_sweep(t, env, ENG_DUTY_BATCH, n);
    return rc == 0 && *n == 0 ? ENG_READ_ONLY : rc;
}

int aj__wf_sweep_wakes(aj_engine *e) {
    for (;;) {
        size_t n = 0;
        int rc = eng_run(e, sweep_txn, &n, KV_SYNC);
        if (rc != 0 || n == 0) {
            return rc;
        }
    }
}
