/*
 * unreadable.c — what a process does about job records it cannot decode.
 *
 * A claim or a periodic duty that meets a record of a newer format (written by a newer aj during
 * a rolling upgrade) or a damaged one skips it and leaves it untouched (core/job_claim.c,
 * core/job_duties.c). This file
 * is the runtime's half: each such record is logged at warning level and counted
 * (`jobs_unreadable` in aj stats) once per process, not on every claim that passes it, so that a
 * worker that keeps meeting it neither floods its log nor inflates the counter. The ids already
 * reported are remembered in a small sorted array under counters_mu; past
 * ENG_UNREADABLE_REMEMBERED of them, one line says so and later ones are no longer logged.
 */
#include <string.h>

#include "runtime/engine.h"
#include "util/mem.h"

/* Position of id in the sorted array (where it would go when absent). */
static size_t find(const uint64_t *v, size_t n, uint64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void eng_note_unreadable(void *ud, uint64_t id, int code, const char *why) {
    aj_engine *e = ud;
    pthread_mutex_lock(&e->counters_mu);
    size_t at = find(e->unreadable, e->n_unreadable, id);
    if (at < e->n_unreadable && e->unreadable[at] == id) {
        pthread_mutex_unlock(&e->counters_mu);
        return;
    }
    int remember = e->n_unreadable < ENG_UNREADABLE_REMEMBERED;
    if (remember && e->n_unreadable == e->cap_unreadable) {
        size_t cap = e->cap_unreadable == 0 ? 16 : e->cap_unreadable * 2;
        uint64_t *v = aj__realloc(e->unreadable, cap * sizeof *v);
        if (v != NULL) {
            e->unreadable = v;
            e->cap_unreadable = cap;
        } else {
            remember = 0; /* out of memory: logged again next time, which is harmless */
        }
    }
    if (remember) {
        memmove(&e->unreadable[at + 1], &e->unreadable[at],
                (e->n_unreadable - at) * sizeof *e->unreadable);
        e->unreadable[at] = id;
        e->n_unreadable++;
    }
    int full = !remember && !e->unreadable_full;
    e->unreadable_full |= full;
    int log = remember || full;
    e->counters.jobs_unreadable += (uint64_t)remember;
    pthread_mutex_unlock(&e->counters_mu);
    if (log) {
        char q[256];
        aj__log(&e->log, AJ_LOG_WARN,
                "msg=\"job record cannot be read; left untouched and skipped\" job=%llu "
                "error=%s problem=%s",
                (unsigned long long)id, aj_err_name(code), aj__logq(q, sizeof q, why));
    }
    if (full) {
        aj__log(&e->log, AJ_LOG_WARN,
                "msg=\"more unreadable job records; not logging them any more\" remembered=%d",
                ENG_UNREADABLE_REMEMBERED);
    }
}
