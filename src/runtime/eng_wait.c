/*
 * eng_wait.c — eng_wait_until (eng_wait.h): the wait-for-change loop shared by the blocking
 * calls of the API.
 *
 * The change sequence is read before each check, so a commit that lands between the check and
 * the sleep ends the sleep at once instead of being missed.
 */
#include "runtime/eng_wait.h"

#include "store/kv.h"
#include "util/clock.h"

int eng_wait_until(aj_engine *e, int64_t timeout_ms, eng_wait_check check, void *ud) {
    int64_t start = aj__mono_us();
    for (;;) {
        uint64_t seen = kv_change_seq(e->kv);
        eng_wait_step step = ENG_WAIT_MORE;
        int rc = check(e, ud, &step);
        if (rc != 0) {
            return rc;
        }
        if (step == ENG_WAIT_DONE) {
            return 0;
        }
        if (step == ENG_WAIT_NOW) {
            continue;
        }
        int64_t left = ENG_WAIT_SLICE_MS;
        if (timeout_ms >= 0) {
            left = timeout_ms - (aj__mono_us() - start) / 1000;
            if (left <= 0) {
                return ENG_WAIT_TIMEOUT;
            }
        }
        kv_wait_change(e->kv, seen, left < ENG_WAIT_SLICE_MS ? left : ENG_WAIT_SLICE_MS);
    }
}
