/*
 * wf_steps.c — steps: code run inline in the workflow task with retries (aj_step,
 * aj_step_with), its result recorded as step_completed or step_failed and returned from the
 * history on replay, so a step completed in a committed task never runs again. A step's writes
 * to the user's records (aj_step_put/del) are buffered and applied to the task's transaction
 * only when the attempt succeeds. The inline runner is shared with saga compensations
 * (wf_saga_api.c). Runtime layer (wf_ctx.h).
 */
#include <stdio.h>
#include <string.h>

#include "runtime/wf_ctx.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Steps                                                                                      */

void aj_step_policy_init(aj_step_policy *p) {
    p->max_attempts = 3;
    p->backoff.kind = AJ_BACKOFF_EXP;
    p->backoff.initial_ms = 100;
    p->backoff.factor = 2;
    p->backoff.max_ms = 10 * AJ_SECOND;
    p->backoff.n_delays = 0;
}

int aj_step_set_result(aj_step_ctx *ctx, const void *data, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "step result is %zu bytes, over the %zu-byte limit", len,
                       AJ_WF_DATA_MAX);
    }
    aj__buf_reset(&ctx->result);
    aj__buf_add(&ctx->result, data, len);
    return ctx->result.oom ? aj__err(AJ_ENOMEM, "out of memory keeping a step result") : 0;
}

int aj_step_fail(aj_step_ctx *ctx, const char *error, int permanent) {
    ctx->failed = 1;
    ctx->permanent = permanent != 0;
    aj__free(ctx->error);
    ctx->error = aj__strdup(error ? error : "failed");
    return AJ_EFAILED;
}

static void user_key(akey *k, const void *key, size_t klen) {
    k->b[0] = 'u';
    memcpy(k->b + 1, key, klen);
    k->n = 1 + klen;
}

static int check_user_key(size_t klen) {
    if (klen == 0 || klen > WF_USER_KEY_MAX) {
        return aj__err(AJ_EINVAL, "a record key must be 1 to %d bytes", WF_USER_KEY_MAX);
    }
    return 0;
}

/* Looks the key up among this attempt's own writes: 1 found (value or deletion), 0 not. */
static int own_write(const aj_step_ctx *ctx, const void *key, size_t klen, aj_bytes *out,
                     int *deleted) {
    aj_rd r;
    aj__rd_init(&r, ctx->writes.p, ctx->writes.len);
    int found = 0;
    while (r.off < r.len && !r.bad) {
        uint8_t op = aj__rd_u8(&r);
        size_t kl, vl;
        const uint8_t *k = aj__rd_bytes(&r, &kl);
        const uint8_t *v = aj__rd_bytes(&r, &vl);
        if (!r.bad && kl == klen && memcmp(k, key, klen) == 0) {
            found = 1; /* the last write wins: keep scanning */
            *deleted = op == 0;
            out->data = v;
            out->len = vl;
        }
    }
    return found;
}

int aj_step_get(aj_step_ctx *ctx, const void *key, size_t klen, aj_bytes *out) {
    int rc = check_user_key(klen);
    if (rc != 0) {
        return rc;
    }
    int deleted = 0;
    if (own_write(ctx, key, klen, out, &deleted)) {
        return deleted ? aj__err(AJ_ENOTFOUND, "no such record") : 0;
    }
    if (ctx->wf->t == NULL) {
        return aj__err(AJ_ESTATE, "records cannot be read here");
    }
    akey k;
    user_key(&k, key, klen);
    const uint8_t *v;
    size_t n;
    rc = kv_get(ctx->wf->t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        return aj__err(AJ_ENOTFOUND, "no such record");
    }
    if (rc == 0) {
        out->data = v;
        out->len = n;
    }
    return rc;
}

static int step_write(aj_step_ctx *ctx, uint8_t op, const void *key, size_t klen, const void *val,
                      size_t vlen) {
    int rc = check_user_key(klen);
    if (rc != 0) {
        return rc;
    }
    if (vlen > AJ_WF_DATA_MAX) {
        return aj__err(AJ_ETOOBIG, "a record value must be at most %zu bytes", AJ_WF_DATA_MAX);
    }
    aj__buf_add_u8(&ctx->writes, op);
    aj__buf_add_bytes(&ctx->writes, key, klen);
    aj__buf_add_bytes(&ctx->writes, val, vlen);
    return ctx->writes.oom ? aj__err(AJ_ENOMEM, "out of memory buffering a record") : 0;
}

int aj_step_put(aj_step_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen) {
    return step_write(ctx, 1, key, klen, val, vlen);
}

int aj_step_del(aj_step_ctx *ctx, const void *key, size_t klen) {
    return step_write(ctx, 0, key, klen, "", 0);
}

/* Applies a successful attempt's record writes to the task's transaction. */
static int apply_writes(aj_wf *wf, const aj_step_ctx *ctx) {
    aj_rd r;
    aj__rd_init(&r, ctx->writes.p, ctx->writes.len);
    int rc = 0;
    while (rc == 0 && r.off < r.len && !r.bad) {
        uint8_t op = aj__rd_u8(&r);
        size_t kl, vl;
        const uint8_t *k = aj__rd_bytes(&r, &kl);
        const uint8_t *v = aj__rd_bytes(&r, &vl);
        if (r.bad) {
            break;
        }
        akey key;
        user_key(&key, k, kl);
        rc = op ? kv_put(wf->t, key.b, key.n, v, vl) : kv_del(wf->t, key.b, key.n);
    }
    return rc;
}

/* Runs fn with retries; fills *out with the result or *err with the last error. */
int wfx_run_inline(aj_wf *wf, const aj_step_policy *p, aj_step_fn fn, void *ud, aj_bytes input,
                   aj_bytes *out, char **err) {
    for (uint32_t attempt = 1;; attempt++) {
        aj_step_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        ctx.wf = wf;
        int rc = fn(&ctx, input, ud);
        if (rc != 0 && !ctx.failed) {
            char msg[96];
            snprintf(msg, sizeof msg, "step returned %s", aj_err_name(rc));
            aj_step_fail(&ctx, msg, 0);
        }
        if (!ctx.failed) {
            rc = apply_writes(wf, &ctx);
            if (rc == 0) {
                out->data = aj__arena_dup(&wf->scratch, ctx.result.p, ctx.result.len);
                out->len = ctx.result.len;
                rc = out->data ? 0 : aj__err(AJ_ENOMEM, "out of memory keeping a step result");
            }
            aj__buf_free(&ctx.result);
            aj__buf_free(&ctx.writes);
            aj__free(ctx.error);
            return rc;
        }
        aj__buf_free(&ctx.result);
        aj__buf_free(&ctx.writes);
        if (ctx.permanent || attempt >= p->max_attempts) {
            *err = ctx.error;
            return AJ_EFAILED;
        }
        aj__free(ctx.error);
        aj__sleep_ms(aj_backoff_delay(&p->backoff, attempt));
    }
}

int aj_step_with(aj_wf *wf, const char *name, const aj_step_policy *policy, aj_step_fn fn, void *ud,
                 aj_bytes input, aj_bytes *out) {
    const wf_event *ev = NULL;
    int rc = wfx_next_command(wf, EV_STEP_COMPLETED, EV_STEP_FAILED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    aj_bytes dummy;
    if (out == NULL) {
        out = &dummy;
    }
    if (rc == 1) {
        if (ev->type == EV_STEP_FAILED) {
            return aj__err(AJ_EFAILED, "step '%s' failed: %.*s", name, (int)ev->data.n,
                           (const char *)ev->data.p);
        }
        *out = wfx_bytes_of(ev->data);
        return 0;
    }
    if (wf->query_mode) {
        return wfx_suspend(wf);
    }
    aj_step_policy p;
    if (policy != NULL) {
        p = *policy;
    } else {
        aj_step_policy_init(&p);
    }
    char *err = NULL;
    rc = wfx_run_inline(wf, &p, fn, ud, input, out, &err);
    if (rc == 0) {
        return wfx_record(wf, EV_STEP_COMPLETED, name, *out, 0, 0, 0);
    }
    if (rc != AJ_EFAILED) {
        aj__free(err);
        return rc;
    }
    aj_bytes e = {err ? err : "failed", strlen(err ? err : "failed")};
    rc = wfx_record(wf, EV_STEP_FAILED, name, e, 0, 0, 0);
    int code =
        rc != 0 ? rc : aj__err(AJ_EFAILED, "step '%s' failed: %s", name, (const char *)e.data);
    aj__free(err);
    return code;
}

int aj_step(aj_wf *wf, const char *name, aj_step_fn fn, void *ud, aj_bytes input, aj_bytes *out) {
    return aj_step_with(wf, name, NULL, fn, ud, input, out);
}
