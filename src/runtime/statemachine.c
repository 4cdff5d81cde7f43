/*
 * statemachine.c — the built-in workflow type `statemachine`: a declarative state machine,
 * interpreted from its JSON input (sm_def.c parses and checks it; docs/STATEMACHINE.md) by an
 * ordinary workflow function that uses only the public workflow API, so it inherits the history,
 * replay and recovery like any workflow.
 *
 * From the initial state: run the state's jobs as activities, wait until every one of them has
 * finished (completed, or dead-lettered), choose the next state from their outcomes
 * (aj__sm_next), and go on until a terminal state ends the run `completed` (its result is the
 * report below) or `failed` (its error names the state and carries the report). At most
 * "max_transitions" transitions are taken: a loop that would take one more fails the run.
 *
 * Jobs of a state run in parallel: run_state() starts every one of them (aj_activity_start, in
 * the order they are listed) and then waits for each (aj_activity_wait). Every job runs to its
 * outcome, whatever the outcome of the others, so the transition rules see every job's outcome.
 * A cancel of the run cancels every running job of the state, and the run ends once their
 * outcomes are in.
 *
 * Activity names are "STATE/JOB" (and "STATE/JOB#N" on the N-th visit of a state), so the
 * history reads as the path taken. Shell jobs see AJ_WORKFLOW_ID, AJ_STATE, AJ_JOB and AJ_VISIT
 * (and AJ_ATTEMPT from the shell runner).
 *
 * The report: {"state":S,"terminal":"completed"|"failed","transitions":N,"path":[S,...],
 * "visits":[{"state":S,"jobs":{JOB:"completed"|"dead",...},"errors":{JOB:TEXT},"next":S,
 * "rule":R},...],"results":{S:{JOB:RESULT}}} — "results" holds each job's latest result. A
 * report over the workflow result limit drops "results", then "visits".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aj.h"
#include "runtime/sm_def.h"
#include "runtime/statemachine.h"
#include "util/err.h"
#include "util/mem.h"

/* Bytes of a dead job's error kept in the report. */
#define SM_ERROR_KEEP 300
/* Bytes of the report carried in the error of a failed run (the full one answers `status`). */
#define SM_FAIL_REPORT_MAX (64 * 1024)

typedef struct sm_run {
    const sm_def *d;
    size_t current;
    uint32_t transitions;
    json_t *path;    /* [state, ...] */
    json_t *visits;  /* [{state, jobs, errors, next, rule}, ...] */
    json_t *results; /* {state: {job: result}} */
    uint32_t *visit_count;
} sm_run;

/* The report as text, dropping detail until it fits in `max` bytes. malloc'd, or NULL. */
static char *report_text(const sm_run *r, const char *terminal, size_t max) {
    const char *state = r->d->states[r->current].name;
    for (int level = 0; level < 3; level++) {
        json_t *o = json_object();
        if (o == NULL) {
            return NULL;
        }
        json_object_set_new(o, "state", json_string(state));
        if (terminal != NULL) {
            json_object_set_new(o, "terminal", json_string(terminal));
        }
        json_object_set_new(o, "transitions", json_integer((json_int_t)r->transitions));
        json_object_set(o, "path", r->path);
        if (level < 2) {
            json_object_set(o, "visits", r->visits);
        } else {
            json_object_set_new(o, "visits_omitted",
                                json_integer((json_int_t)json_array_size(r->visits)));
        }
        if (level < 1) {
            json_object_set(o, "results", r->results);
        }
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text == NULL || strlen(text) <= max || level == 2) {
            return text;
        }
        free(text);
    }
    return NULL;
}

static int status_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)arg;
    const sm_run *r = ud;
    const sm_state *st = &r->d->states[r->current];
    const char *terminal = st->terminal == SM_TERMINAL_COMPLETED ? "completed"
                           : st->terminal == SM_TERMINAL_FAILED  ? "failed"
                                                                 : NULL;
    *out = report_text(r, terminal, AJ_WF_DATA_MAX);
    if (*out == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory answering a query");
    }
    *len = strlen(*out);
    return 0;
}

/* The job of `job` in state `st`: a shell job for "run" (with the state machine's environment),
 * else its type and payload. The payload text is returned in *owned (free it). */
static int job_spec(aj_wf *wf, const sm_state *st, const sm_job *job, uint32_t visit,
                    aj_job_spec *spec, char **owned) {
    aj_job_spec_init(spec);
    spec->queue = job->queue;
    spec->timeout_ms = job->timeout_ms;
    spec->lease_ms = job->lease_ms;
    spec->max_attempts = job->max_attempts;
    json_t *payload;
    if (job->run != NULL) {
        spec->type = "shell";
        char v[16];
        snprintf(v, sizeof v, "%u", visit);
        json_t *env = json_pack("{s:s,s:s,s:s,s:s}", "AJ_WORKFLOW_ID", aj_wf_id(wf), "AJ_STATE",
                                st->name, "AJ_JOB", job->name, "AJ_VISIT", v);
        payload = env ? json_pack("{s:O,s:o}", "argv", job->run, "env", env) : NULL;
    } else {
        spec->type = job->type;
        payload = job->payload ? json_incref(job->payload) : json_null();
    }
    *owned = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(payload);
    if (*owned == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory building a state machine job");
    }
    spec->payload = *owned;
    spec->payload_len = strlen(*owned);
    return 0;
}

/* The activity name of job `i` of state `st` on its visit-th visit. */
static void job_name(const sm_state *st, size_t i, uint32_t visit, char *name, size_t size) {
    if (visit == 1) {
        snprintf(name, size, "%s/%s", st->name, st->jobs[i].name);
    } else {
        snprintf(name, size, "%s/%s#%u", st->name, st->jobs[i].name, visit);
    }
}

/* Runs the jobs of the current state and fills outcome[] (SM_COMPLETED / SM_DEAD) and the
 * visit's record. 0 when every job has finished; AJ_SUSPEND while one is running; or an error.
 * Every job is started first, then each is awaited, so a state's jobs run in parallel. */
static int run_state(aj_wf *wf, sm_run *r, uint32_t visit, int *outcome, json_t *jobs,
                     json_t *errors) {
    const sm_state *st = &r->d->states[r->current];
    json_t *res = json_object_get(r->results, st->name);
    if (res == NULL) {
        res = json_object();
        json_object_set_new(r->results, st->name, res);
    }
    char name[2 * AJ_NAME_MAX + 16];
    for (size_t i = 0; i < st->n_jobs; i++) {
        job_name(st, i, visit, name, sizeof name);
        aj_job_spec spec;
        char *payload = NULL;
        int rc = job_spec(wf, st, &st->jobs[i], visit, &spec, &payload);
        if (rc == 0) {
            rc = aj_activity_start(wf, name, &spec);
        }
        free(payload);
        if (rc != 0) {
            return rc; /* AJ_SUSPEND (a query), the run being cancelled, or store trouble */
        }
    }
    /* Every wait is made even after one suspends, so a cancel of the run cancels every running
     * job of the state at once; the state ends only when each outcome is in. */
    int suspended = 0, cancelled = 0;
    char cancel_msg[512] = "";
    for (size_t i = 0; i < st->n_jobs; i++) {
        const sm_job *job = &st->jobs[i];
        job_name(st, i, visit, name, sizeof name);
        aj_bytes out = {NULL, 0};
        int rc = aj_activity_wait(wf, name, &out);
        if (rc == 0) {
            outcome[i] = SM_COMPLETED;
            json_t *v = json_loadb(out.data, out.len, JSON_DECODE_ANY, NULL);
            json_object_set_new(res, job->name,
                                v ? v : json_stringn(out.data ? out.data : "", out.len));
            json_object_set_new(jobs, job->name, json_string("completed"));
        } else if (rc == AJ_EFAILED) {
            outcome[i] = SM_DEAD;
            json_object_set_new(jobs, job->name, json_string("dead"));
            /* The job's own error, without the "activity 'NAME' failed: " the call adds. */
            const char *why = aj_errmsg();
            const char *colon = strstr(why, "' failed: ");
            if (strncmp(why, "activity '", 10) == 0 && colon != NULL) {
                why = colon + 10;
            }
            char err[SM_ERROR_KEEP + 1];
            snprintf(err, sizeof err, "%s", why);
            json_object_set_new(errors, job->name, json_string(err));
        } else if (rc == AJ_SUSPEND) {
            suspended = 1;
        } else if (rc == AJ_ECANCELLED) {
            if (!cancelled) {
                snprintf(cancel_msg, sizeof cancel_msg, "%s", aj_errmsg());
            }
            cancelled = 1;
        } else {
            return rc; /* store trouble, or the code diverged */
        }
    }
    if (suspended) {
        return AJ_SUSPEND;
    }
    if (cancelled) {
        return aj__err(AJ_ECANCELLED, "%s", cancel_msg);
    }
    return 0;
}

static int finish(aj_wf *wf, sm_run *r) {
    const sm_state *st = &r->d->states[r->current];
    int failed = st->terminal == SM_TERMINAL_FAILED;
    char *text = report_text(r, failed ? "failed" : "completed",
                             failed ? SM_FAIL_REPORT_MAX : AJ_WF_DATA_MAX);
    if (text == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a state machine's report");
    }
    int rc;
    if (failed) {
        size_t n = strlen(text) + strlen(st->name) + 64;
        char *msg = aj__malloc(n);
        if (msg == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory keeping a state machine's report");
        } else {
            snprintf(msg, n, "reached terminal state '%s' (failed): %s", st->name, text);
            rc = aj_wf_fail(wf, msg);
            aj__free(msg);
        }
    } else {
        rc = aj_wf_set_result(wf, text, strlen(text));
    }
    free(text);
    return rc;
}

static int statemachine_fn(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    sm_def *d = NULL;
    if (aj__sm_parse(input.data, input.len, &d) != 0) {
        return aj_wf_fail(wf, aj_errmsg()); /* checked at start; only a hand-made record fails */
    }
    sm_run r = {d, d->initial, 0, json_array(), json_array(), json_object(), NULL};
    r.visit_count = aj__calloc(d->n_states, sizeof *r.visit_count);
    int *outcome = aj__calloc(SM_JOBS_MAX, sizeof *outcome);
    int rc = 0;
    if (r.path == NULL || r.visits == NULL || r.results == NULL || r.visit_count == NULL ||
        outcome == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory running a state machine");
        goto out;
    }
    aj_wf_set_query(wf, "status", status_query, &r);
    for (;;) {
        const sm_state *st = &d->states[r.current];
        json_array_append_new(r.path, json_string(st->name));
        if (st->terminal != SM_NOT_TERMINAL) {
            rc = finish(wf, &r);
            break;
        }
        uint32_t visit = ++r.visit_count[r.current];
        json_t *jobs = json_object(), *errors = json_object();
        json_t *v = json_pack("{s:s,s:o,s:o}", "state", st->name, "jobs", jobs, "errors", errors);
        if (v == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory running a state machine");
            break;
        }
        json_array_append_new(r.visits, v);
        /* A durable timer, so a polling loop does not spin: replay finds it fired. */
        if (st->wait_ms > 0 && (rc = aj_sleep(wf, st->wait_ms)) != 0) {
            break;
        }
        rc = run_state(wf, &r, visit, outcome, jobs, errors);
        if (rc != 0) {
            break;
        }
        const char *rule = NULL;
        size_t next = aj__sm_next(d, r.current, outcome, &rule);
        json_object_set_new(v, "next", json_string(d->states[next].name));
        json_object_set_new(v, "rule", json_string(rule));
        if (r.transitions == d->max_transitions) {
            char msg[3 * AJ_NAME_MAX];
            snprintf(msg, sizeof msg,
                     "max_transitions (%u) reached: state '%s' would go on to '%s' (%s)",
                     d->max_transitions, st->name, d->states[next].name, rule);
            rc = aj_wf_fail(wf, msg);
            break;
        }
        r.transitions++;
        r.current = next;
    }
out:
    json_decref(r.path);
    json_decref(r.visits);
    json_decref(r.results);
    aj__free(r.visit_count);
    aj__free(outcome);
    aj__sm_free(d);
    return rc;
}

int aj__statemachine_register(aj_engine *e) {
    return aj_workflow_register(e, "statemachine", statemachine_fn, NULL);
}
