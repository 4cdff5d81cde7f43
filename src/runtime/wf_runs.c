/*
 * wf_runs.c — aj_wf_get_run: a snapshot of any run of a workflow id.
 *
 * The workflow record describes only the latest run. An earlier run ended (it completed,
 * failed, ..., or continued as new, which started the next run), and its history is kept whole
 * until the workflow is collected: its first event (workflow_started) holds its input and
 * start, its last event its outcome. So an earlier run's snapshot is read from its own history,
 * never from the record, which would describe another run.
 */
#include <string.h>

#include "core/history.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_exec.h"
#include "util/err.h"

typedef struct run_ctx {
    const char *id;
    uint32_t run;
    aj_wf_info *info;
    wf_event first, last;
    int seen;
} run_ctx;

static int run_event(void *ud, const wf_event *ev) {
    run_ctx *c = ud;
    if (!c->seen) {
        c->first = *ev; /* borrowed from the transaction, which outlives the read */
        c->seen = 1;
    }
    c->last = *ev;
    return 0;
}

/* The state a run's last event ends it in. */
static aj_wf_state end_state(uint8_t type, int *is_result) {
    *is_result = 0;
    switch (type) {
    case EV_WORKFLOW_COMPLETED:
        *is_result = 1;
        return AJ_WF_COMPLETED;
    case EV_WORKFLOW_FAILED:
        return AJ_WF_FAILED;
    case EV_WORKFLOW_CANCELLED:
        return AJ_WF_CANCELLED;
    case EV_WORKFLOW_TERMINATED:
        return AJ_WF_TERMINATED;
    case EV_WORKFLOW_TIMED_OUT:
        return AJ_WF_TIMED_OUT;
    case EV_WORKFLOW_COMPENSATED:
        return AJ_WF_COMPENSATED;
    case EV_WORKFLOW_COMPENSATION_FAILED:
        return AJ_WF_COMPENSATION_FAILED;
    case EV_CONTINUED_AS_NEW:
        return AJ_WF_CONTINUED;
    case EV_WORKFLOW_PARKED:
        return AJ_WF_PARKED;
    default:
        return AJ_WF_RUNNING;
    }
}

static int run_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    run_ctx *c = ud;
    aj_wf_info_free(c->info);
    c->info = NULL;
    c->seen = 0;
    wf_rec w;
    int rc = wf_read(t, aj__slice_str(c->id), &w);
    if (rc != 0) {
        return rc;
    }
    if (c->run == 0 || c->run == w.run) {
        c->info = wf_rec_to_public(&w);
        return c->info ? ENG_READ_ONLY : aj__err(AJ_ENOMEM, "out of memory reading a workflow");
    }
    if (c->run > w.run) {
        return aj__err(AJ_ENOTFOUND, "workflow '%s' has no run %u (latest is %u)", c->id, c->run,
                       w.run);
    }
    rc = hist_read(t, w.id, c->run, 1, 0, 0, run_event, c);
    if (rc != 0) {
        return rc;
    }
    if (!c->seen) {
        return aj__err(AJ_ENOTFOUND, "workflow '%s' has no history for run %u", c->id, c->run);
    }
    wf_rec r = w;
    int is_result;
    r.run = c->run;
    r.state = end_state(c->last.type, &is_result);
    r.flags = 0;
    r.seq = c->last.seq;
    r.created_ms = hlc_ms(c->first.hlc);
    r.updated_ms = hlc_ms(c->last.hlc);
    r.finished_ms = aj_wf_state_is_final(r.state) ? r.updated_ms : 0;
    r.input = c->first.type == EV_WORKFLOW_STARTED ? c->first.data : aj__slice_str("");
    r.result.p = r.error.p = NULL;
    r.result.n = r.error.n = 0;
    if (is_result) {
        r.result = c->last.data;
    } else if (aj_wf_state_is_final(r.state) && r.state != AJ_WF_CONTINUED) {
        r.error = c->last.data;
    }
    c->info = wf_rec_to_public(&r);
    return c->info ? ENG_READ_ONLY : aj__err(AJ_ENOMEM, "out of memory reading a workflow");
}

int aj_wf_get_run(aj_engine *e, const char *id, uint32_t run, aj_wf_info **out) {
    if (id == NULL || out == NULL) {
        return aj__err(AJ_EINVAL, "a workflow id and an output are needed");
    }
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.id = id;
    c.run = run;
    int rc = eng_run(e, run_txn, &c, KV_SYNC);
    if (rc == 0) {
        *out = c.info;
    } else {
        aj_wf_info_free(c.info);
    }
    return rc;
}

typedef struct last_ctx {
    wf_event ev;
    int found, rc;
} last_ctx;

static int last_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    last_ctx *c = ud;
    c->rc = hist_decode(val, vlen, &c->ev);
    c->found = c->rc == 0;
    return 1;
}

int aj__wf_runs_continued(kv_txn *t, aj_slice id, uint32_t from, uint32_t to) {
    for (uint32_t run = from; run < to; run++) {
        akey k;
        key_event_run_prefix(&k, id, run);
        last_ctx c;
        memset(&c, 0, sizeof c);
        int rc = kv_scan_prefix(t, k.b, k.n, 1, 1, last_cb, &c);
        if (rc == 0) {
            rc = c.rc;
        }
        if (rc != 0) {
            return rc;
        }
        if (!c.found || c.ev.type != EV_CONTINUED_AS_NEW) {
            return 0;
        }
    }
    return 1;
}
