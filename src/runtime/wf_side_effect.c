/*
 * wf_side_effect.c — side effects: a value computed once, recorded as a side_effect command and
 * returned from the history on replay (aj_wf_now, aj_wf_random, aj_wf_uuid), so workflow code
 * that reads the clock or randomness stays deterministic. Runtime layer (wf_ctx.h).
 */
#include <stdio.h>
#include <string.h>

#include "runtime/engine.h"
#include "runtime/wf_ctx.h"
#include "util/buf.h"
#include "util/err.h"

/* ----------------------------------------------------------------------------------------- */
/* Side effects                                                                             */

/* Records (or replays) a side effect: a value computed once and remembered. */
static int side_effect(aj_wf *wf, const char *name, void *value, size_t len) {
    const wf_event *ev = NULL;
    int rc = wfx_next_command(wf, EV_SIDE_EFFECT, EV_SIDE_EFFECT, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        if (ev->data.n != len) {
            return wfx_diverged(wf, "side effect '%s' recorded %zu bytes, the code wants %zu", name,
                                ev->data.n, len);
        }
        memcpy(value, ev->data.p, len);
        return 0;
    }
    if (wf->query_mode) {
        return wfx_suspend(wf);
    }
    aj_bytes d = {value, len};
    return wfx_record(wf, EV_SIDE_EFFECT, name, d, 0, 0, 0);
}

int aj_wf_now(aj_wf *wf, int64_t *out_ms) {
    uint8_t b[8];
    aj__put_u64be(b, (uint64_t)wf->env->now_ms);
    int rc = side_effect(wf, "now", b, 8);
    if (rc == 0) {
        *out_ms = (int64_t)aj__get_u64be(b);
    }
    return rc;
}

int aj_wf_random(aj_wf *wf, uint64_t *out) {
    uint8_t b[8];
    aj__put_u64be(b, eng_rand(wf->e));
    int rc = side_effect(wf, "random", b, 8);
    if (rc == 0) {
        *out = aj__get_u64be(b);
    }
    return rc;
}

int aj_wf_uuid(aj_wf *wf, char out[37]) {
    uint8_t b[16];
    aj__put_u64be(b, eng_rand(wf->e));
    aj__put_u64be(b + 8, eng_rand(wf->e));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    int rc = side_effect(wf, "uuid", b, 16);
    if (rc == 0) {
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
    }
    return rc;
}
