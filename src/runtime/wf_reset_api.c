/*
 * wf_reset_api.c — aj_wf_reset: one transaction around the core's wf_reset, which copies the
 * history (core/wf_reset_copy.c).
 */
#include "core/wf_reset_copy.h"
#include "runtime/engine.h"
#include "util/err.h"

typedef struct reset_ctx {
    const char *id;
    uint64_t to_seq;
    const char *reason;
    uint32_t run;
} reset_ctx;

static int reset_txn(kv_txn *t, const job_env *env, void *ud) {
    reset_ctx *r = ud;
    return wf_reset(t, env, r->id, r->to_seq, r->reason, &r->run);
}

int aj_wf_reset(aj_engine *e, const char *id, uint64_t to_seq, const char *reason,
                uint32_t *out_run) {
    if (id == NULL) {
        return aj__err(AJ_EINVAL, "a workflow id is needed");
    }
    reset_ctx r = {id, to_seq, reason, 0};
    int rc = eng_run(e, reset_txn, &r, KV_SYNC);
    if (rc == 0 && out_run != NULL) {
        *out_run = r.run;
    }
    return rc;
}
