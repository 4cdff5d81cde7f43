/*
 * fuzz_dag.c — fuzzes the graph definition parser and shape check (src/core/dag_def.c).
 *
 * Properties: aj_dag_parse returns 0 or AJ_EINVAL with a one-line message, and on success every
 * job has a name of 1..AJ_DAG_NAME_MAX bytes, a type and a payload that is one JSON value. The
 * shape check (dag_plan_make) returns 0 or AJ_EINVAL with a one-line message; a plan orders every
 * job after the jobs it waits on, with depths within AJ_DEPS_DEPTH_MAX that are one more than
 * the deepest parent's; a rejected cycle names a real cycle ("cycle: a -> b -> a": each job
 * waits on the one before it, and the path closes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aj.h"
#include "core/dag_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat what short ones test. */
#define FUZZ_INPUT_MAX 65536

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_message(void) {
    const char *m = aj_errmsg();
    CHECK(m[0] != '\0');
    CHECK(strchr(m, '\n') == NULL);
}

static long find(const aj_dag *d, const char *name, size_t len) {
    for (size_t i = 0; i < d->n; i++) {
        if (strlen(d->jobs[i].name) == len && memcmp(d->jobs[i].name, name, len) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static int waits_on(const aj_dag_job *j, const char *name) {
    for (size_t a = 0; a < j->n_after_names; a++) {
        if (strcmp(j->after_names[a], name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* "cycle: x -> y -> ... -> x": each name exists, each waits on the one before, it closes. Names
 * holding " -> " cannot be split back and are skipped. */
static void check_cycle(const aj_dag *d, const char *msg) {
    const char *p = msg + strlen("cycle: ");
    long first = -1, prev = -1;
    for (;;) {
        const char *arrow = strstr(p, " -> ");
        size_t len = arrow ? (size_t)(arrow - p) : strlen(p);
        long cur = find(d, p, len);
        if (cur < 0) {
            return; /* a name with " -> " in it, or cut by the message's length */
        }
        if (prev >= 0) {
            CHECK(waits_on(&d->jobs[cur], d->jobs[prev].name));
        } else {
            first = cur;
        }
        prev = cur;
        if (arrow == NULL) {
            break;
        }
        p = arrow + 4;
    }
    CHECK(prev == first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX) {
        return 0;
    }
    aj_dag *d = NULL;
    int rc = aj_dag_parse((const char *)data, size, &d);
    if (rc != 0) {
        CHECK(rc == AJ_EINVAL);
        CHECK(d == NULL);
        check_message();
        return 0;
    }
    CHECK(d != NULL && d->n >= 1 && d->n <= AJ_DAG_JOBS_MAX);
    for (size_t i = 0; i < d->n; i++) {
        const aj_dag_job *j = &d->jobs[i];
        size_t nl = strlen(j->name);
        CHECK(nl >= 1 && nl <= AJ_DAG_NAME_MAX);
        CHECK(j->spec.type != NULL);
        CHECK(j->spec.payload != NULL);
        CHECK(aj_json_check(j->spec.payload, j->spec.payload_len, NULL, NULL, NULL) == 0);
        CHECK(aj_dep_policy_name(j->spec.on_dep_failure) != NULL);
    }
    dag_plan p;
    rc = dag_plan_make(d->jobs, d->n, &p);
    if (rc != 0) {
        CHECK(rc == AJ_EINVAL);
        check_message();
        if (strncmp(aj_errmsg(), "cycle: ", 7) == 0) {
            check_cycle(d, aj_errmsg());
        }
        aj_dag_free(d);
        return 0;
    }
    CHECK(aj_dag_check(d->jobs, d->n) == 0);
    size_t *pos = calloc(d->n, sizeof *pos);
    CHECK(pos != NULL);
    for (size_t k = 0; k < d->n; k++) {
        pos[p.order[k]] = k;
    }
    for (size_t i = 0; i < d->n; i++) {
        uint32_t deepest = 0;
        for (size_t q = p.first_parent[i]; q < p.first_parent[i + 1]; q++) {
            CHECK(pos[p.parents[q]] < pos[i]);
            deepest = p.depth[p.parents[q]] > deepest ? p.depth[p.parents[q]] : deepest;
        }
        CHECK(p.depth[i] == deepest + 1);
        CHECK(p.depth[i] <= AJ_DEPS_DEPTH_MAX);
        /* Every name it waits on is a parent. */
        for (size_t a = 0; a < d->jobs[i].n_after_names; a++) {
            long pi = find(d, d->jobs[i].after_names[a], strlen(d->jobs[i].after_names[a]));
            int found = 0;
            for (size_t q = p.first_parent[i]; q < p.first_parent[i + 1]; q++) {
                found |= (long)p.parents[q] == pi;
            }
            CHECK(found);
        }
    }
    free(pos);
    dag_plan_free(&p);
    aj_dag_free(d);
    return 0;
}
