/*
 * fuzz_statemachine.c — fuzzes the `statemachine` definition validator (aj__sm_parse in
 * src/runtime/sm_def.c), which runs without an engine. Properties:
 *   1 a refusal is AJ_EINVAL (or AJ_ENOMEM) with a one-line message starting
 *     "statemachine input: ", and leaves the out-parameter untouched;
 *   2 an accepted definition is coherent: the initial state and every transition target exist,
 *     terminal states have no jobs and others have 1..SM_JOBS_MAX uniquely named jobs, some state
 *     is terminal, and every state is reachable from the initial one;
 *   3 from every non-terminal state, aj__sm_next decides a valid next state for any outcomes
 *     (outcome vectors are taken from the input bytes and from all-completed/all-dead);
 *   4 aj__sm_validate agrees with aj__sm_parse.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "runtime/sm_def.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Definitions larger than this only repeat what small ones test, and slow the fuzzer down. */
#define FUZZ_INPUT_MAX 65536

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_target(const sm_def *d, int t) {
    CHECK(t >= -1 && t < (int)d->n_states);
}

static void check_def(const sm_def *d, const uint8_t *data, size_t size) {
    CHECK(d->n_states >= 1 && d->n_states <= SM_STATES_MAX);
    CHECK(d->initial < d->n_states);
    CHECK(d->max_transitions >= 1 && d->max_transitions <= SM_TRANSITIONS_MAX);
    int terminal = 0;
    int outcome[SM_JOBS_MAX];
    for (size_t s = 0; s < d->n_states; s++) {
        const sm_state *st = &d->states[s];
        CHECK(st->name != NULL && st->name[0] != '\0' && strchr(st->name, '/') == NULL);
        if (st->terminal != SM_NOT_TERMINAL) {
            CHECK(st->terminal == SM_TERMINAL_COMPLETED || st->terminal == SM_TERMINAL_FAILED);
            CHECK(st->n_jobs == 0);
            terminal = 1;
            continue;
        }
        CHECK(st->n_jobs >= 1 && st->n_jobs <= SM_JOBS_MAX);
        check_target(d, st->all_success);
        check_target(d, st->any_failure);
        check_target(d, st->otherwise);
        check_target(d, st->rate_then);
        check_target(d, st->rate_else);
        CHECK(st->rate_at_least < 0 || (st->rate_at_least <= 1.0 && st->rate_then >= 0));
        for (size_t j = 0; j < st->n_jobs; j++) {
            const sm_job *job = &st->jobs[j];
            CHECK((job->run == NULL) != (job->type == NULL));
            CHECK(job->max_attempts >= 1 && job->timeout_ms > 0 && job->lease_ms > 0);
            CHECK(job->queue != NULL);
            check_target(d, job->on_outcome[SM_COMPLETED]);
            check_target(d, job->on_outcome[SM_DEAD]);
            for (size_t k = 0; k < j; k++) {
                CHECK(strcmp(st->jobs[k].name, job->name) != 0);
            }
        }
        /* Every outcome vector decides: all completed, all dead, and patterns from the input. */
        for (int pattern = 0; pattern < 2 + (size > 0 ? 8 : 0); pattern++) {
            for (size_t j = 0; j < st->n_jobs; j++) {
                if (pattern < 2) {
                    outcome[j] = pattern;
                } else {
                    uint8_t b = data[((size_t)pattern * 7 + j) % size];
                    outcome[j] = (b >> (j % 8)) & 1;
                }
            }
            const char *rule = NULL;
            size_t next = aj__sm_next(d, s, outcome, &rule);
            CHECK(next < d->n_states);
            CHECK(rule != NULL);
        }
    }
    CHECK(terminal);
    /* Every state is reachable from the initial one (an independent walk of the targets). */
    uint8_t seen[SM_STATES_MAX] = {0};
    seen[d->initial] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t s = 0; s < d->n_states; s++) {
            const sm_state *st = &d->states[s];
            if (!seen[s]) {
                continue;
            }
            int t[5] = {st->all_success, st->any_failure, st->otherwise, st->rate_then,
                        st->rate_else};
            for (size_t k = 0; k < 5 + 2 * st->n_jobs; k++) {
                int to = k < 5 ? t[k] : st->jobs[(k - 5) / 2].on_outcome[(k - 5) % 2];
                if (to >= 0 && !seen[to]) {
                    seen[to] = 1;
                    changed = 1;
                }
            }
        }
    }
    for (size_t s = 0; s < d->n_states; s++) {
        CHECK(seen[s]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    sm_def *d = (sm_def *)(uintptr_t)1; /* untouched on failure */
    int rc = aj__sm_parse(data, size, &d);
    if (rc == 0) {
        CHECK(d != NULL);
        check_def(d, data, size);
        aj__sm_free(d);
    } else {
        CHECK(rc == AJ_EINVAL || rc == AJ_ENOMEM);
        CHECK(d == (sm_def *)(uintptr_t)1);
        const char *msg = aj_errmsg();
        CHECK(rc != AJ_EINVAL || strncmp(msg, "statemachine input: ", 20) == 0);
        CHECK(strchr(msg, '\n') == NULL);
    }
    CHECK(aj__sm_validate(data, size) == rc);
    return 0;
}
