/*
 * wf_query.c — queries: handlers a workflow sets (aj_wf_set_query) and the read-only replay that
 * answers one (aj__wf_query_run). The handler runs once, at the first point where the code
 * waits or ends, while the function's locals it reads are still alive; durable calls never act
 * in query mode. Runtime layer (wf_ctx.h); the public call is in wf_api.c.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/wf_ctx.h"
#include "util/err.h"

/* ----------------------------------------------------------------------------------------- */
/* Queries                                                                                  */

/* In query mode: calls the query handler once, at the first point where the code reaches the
 * end of its history (a call that would act or wait) or sets its outcome. */
void wfx_answer_query(aj_wf *wf) {
    if (!wf->query_mode || wf->query_answered || wf->nondeterminism || wf->query_name == NULL) {
        return;
    }
    for (size_t i = 0; i < wf->n_queries; i++) {
        if (strcmp(wf->queries[i].name, wf->query_name) == 0) {
            aj_bytes arg = {"", 0};
            wf->query_answered = 1;
            wf->query_rc =
                wf->queries[i].fn(wf->queries[i].ud, arg, &wf->query_out, &wf->query_len);
            return;
        }
    }
}

int aj_wf_set_query(aj_wf *wf, const char *name, aj_query_fn fn, void *ud) {
    for (size_t i = 0; i < wf->n_queries; i++) {
        if (strcmp(wf->queries[i].name, name) == 0) {
            wf->queries[i].fn = fn;
            wf->queries[i].ud = ud;
            return 0;
        }
    }
    if (wf->n_queries == WF_QUERIES_MAX) {
        return aj__err(AJ_ETOOBIG, "a workflow may set at most %d query handlers", WF_QUERIES_MAX);
    }
    char *copy = aj__arena_dup(&wf->scratch, name, strlen(name));
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory setting a query handler");
    }
    wf->queries[wf->n_queries++] = (query_entry){copy, fn, ud};
    return 0;
}

/* Runs the function read-only and answers a query. */
int aj__wf_query_run(aj_wf *wf, aj_workflow_fn fn, void *ud, const char *name, char **out,
                     size_t *out_len) {
    wf->query_name = name;
    aj_bytes input = {wf->w.input.p, wf->w.input.n};
    fn(wf, input, ud); /* how it ends does not matter: the handler has seen the state */
    if (wf->nondeterminism) {
        free(wf->query_out);
        wf->query_out = NULL;
        return aj__err(AJ_ESTATE, "%s", wf->park_msg ? wf->park_msg : "non-determinism");
    }
    if (!wf->query_answered) {
        return aj__err(AJ_ENOTFOUND, "workflow '%s' has no query handler '%s'", aj_wf_id(wf), name);
    }
    if (wf->query_rc != 0) {
        free(wf->query_out);
        return wf->query_rc;
    }
    *out = wf->query_out;
    *out_len = wf->query_len;
    return 0;
}
