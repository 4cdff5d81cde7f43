/*
 * wf_reply.c — answers to workflow updates (see wf_reply.h). Keys sort by the time the update
 * was sent, so collection scans only the expired head.
 */
#include "core/wf_reply.h"

#include <string.h>

#include "core/keys.h"
#include "util/err.h"

static void key_reply(akey *k, int64_t sent_ms, uint64_t req) {
    k->b[0] = 'y';
    aj__put_u64be(k->b + 1, (uint64_t)(sent_ms < 0 ? 0 : sent_ms));
    aj__put_u64be(k->b + 9, req);
    k->n = 17;
}

int wf_reply_put(kv_txn *t, int64_t sent_ms, uint64_t req, int status, aj_slice data) {
    aj_buf b = AJ_BUF_INIT;
    aj__buf_add_u8(&b, (uint8_t)status);
    aj__buf_add(&b, data.p, data.n);
    akey k;
    key_reply(&k, sent_ms, req);
    int rc = b.oom ? aj__err(AJ_ENOMEM, "out of memory answering an update")
                   : kv_put(t, k.b, k.n, b.p, b.len);
    aj__buf_free(&b);
    return rc;
}

int wf_reply_get(kv_txn *t, int64_t sent_ms, uint64_t req, int *status, aj_slice *data) {
    akey k;
    key_reply(&k, sent_ms, req);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc != 0) {
        return rc;
    }
    if (n < 1 || v[0] > WF_REPLY_GONE) {
        return aj__err(AJ_ECORRUPT, "update answer is corrupt (%zu bytes)", n);
    }
    *status = v[0];
    data->p = v + 1;
    data->n = n - 1;
    return 0;
}

int wf_reply_del(kv_txn *t, int64_t sent_ms, uint64_t req) {
    akey k;
    key_reply(&k, sent_ms, req);
    return kv_del(t, k.b, k.n);
}

int wf_reply_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n) {
    akey end;
    key_reply(&end, env->now_ms - WF_REPLY_TTL_MS, 0);
    key_batch l = {.n = 0};
    int rc = kv_scan(t, "y", 1, end.b, end.n, 0, limit < KEY_BATCH_MAX ? limit : KEY_BATCH_MAX,
                     key_batch_cb, &l);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        rc = kv_del(t, l.keys[i].b, l.keys[i].n);
    }
    if (rc == 0) {
        *out_n = l.n;
    }
    return rc;
}
