/*
 * wf_wakeq.c — folding wake requests (core/wf_wakeq.h) from the runtime: right after a
 * transaction that wrote arrivals committed (runtime/wf_wakeq.h says who calls it), and as a
 * periodic duty for requests a crash left behind.
 *
 * Each fold is its own transaction through eng_run: a conflict retries only this bookkeeping,
 * never the transaction that wrote the arrival (a task and its inline steps, a signal). A failed
 * fold is not an error of the call that triggered it: the request stays and the duty folds it
 * later. Folds commit with KV_APPLIED: visible to every process at once, and a power loss that
 * loses one keeps the request it deleted (that was durable before), which the sweep folds.
 */
#include "runtime/wf_wakeq.h"

#include "util/err.h"

typedef struct fold_ctx {
    aj_slice id;
    size_t n;
} fold_ctx;

static int fold_txn(kv_txn *t, const job_env *env, void *ud) {
    fold_ctx *c = ud;
    int rc = wf_wakeq_fold(t, env, c->id, &c->n);
    return rc == 0 && c->n == 0 ? ENG_READ_ONLY : rc;
}

typedef struct sweep_ctx {
    int64_t min_age_ms;
    size_t n;
} sweep_ctx;

static int sweep_txn(kv_txn *t, const job_env *env, void *ud) {
    sweep_ctx *c = ud;
    int rc = wf_wakeq_sweep(t, env, c->min_age_ms, ENG_DUTY_BATCH, &c->n);
    return rc == 0 && c->n == 0 ? ENG_READ_ONLY : rc;
}

static int sweep(aj_engine *e, int64_t min_age_ms, kv_sync sync) {
    for (;;) {
        sweep_ctx c = {min_age_ms, 0};
        int rc = eng_run(e, sweep_txn, &c, sync);
        if (rc != 0 || c.n == 0) {
            return rc;
        }
    }
}

void aj__wf_fold_woken(aj_engine *e, const wf_woken *w) {
    int rc = 0;
    if (w->overflow) {
        rc = sweep(e, 0, KV_APPLIED);
    } else {
        size_t pos = 0;
        aj_slice id;
        while (wf_woken_next(w, &pos, &id)) {
            fold_ctx c = {id, 0};
            int rc2 = eng_run(e, fold_txn, &c, KV_APPLIED);
            rc = rc != 0 ? rc : rc2;
        }
    }
    if (rc != 0) {
        aj__log(&e->log, AJ_LOG_WARN,
                "msg=\"waking a workflow after an arrival failed; the sweep will\" error=\"%s\"",
                aj_errmsg());
    }
}

int aj__wf_sweep_wakes(aj_engine *e) {
    return sweep(e, WF_WAKEQ_SWEEP_AGE_MS, KV_SYNC);
}
