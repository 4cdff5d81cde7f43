/*
 * sm_def.c — parsing and checking a state machine definition (the input of the built-in workflow
 * type `statemachine`, docs/STATEMACHINE.md), and choosing the next state from job outcomes.
 *
 * Everything a run could trip over later is refused here, before anything is stored, with a
 * message naming the path of the offending field: unknown fields, a missing or unknown initial
 * state, transitions to unknown states, duplicate job names in a state, a state that is neither
 * terminal nor has jobs and transitions, transitions that leave some outcome undecided, a bad
 * success_rate, unreachable states, no terminal state. So a parsed definition always decides the
 * next state (aj__sm_next never fails), and the interpreter (statemachine.c) only counts
 * transitions against "max_transitions".
 *
 * Pure: no engine, clock or store; the runtime layer only because it is the workflow's
 * definition (its sibling saga_builtin.c checks its input there too).
 */
#include "runtime/sm_def.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aj.h"
#include "core/json_def.h"
#include "util/err.h"
#include "util/mem.h"

/* Bytes of the path named in an error message. */
#define SM_PATH_MAX 512

/* out = a "." b, cut to SM_PATH_MAX - 1 bytes (paths only name things in messages). */
static void path_join(char *out, const char *a, const char *b) {
    size_t n = 0;
    for (const char *p = a; *p != '\0' && n < SM_PATH_MAX - 1; p++) {
        out[n++] = *p;
    }
    if (n < SM_PATH_MAX - 1) {
        out[n++] = '.';
    }
    for (const char *p = b; *p != '\0' && n < SM_PATH_MAX - 1; p++) {
        /* Names come from the input: keep messages on one printable line. */
        out[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
    }
    out[n] = '\0';
}

static int bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(const char *path, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Names come from the input: keep the message on one printable line. */
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    if (path == NULL || path[0] == '\0') {
        return aj__err(AJ_EINVAL, "statemachine input: %s", msg);
    }
    return aj__err(AJ_EINVAL, "statemachine input: %s: %s", path, msg);
}

/* Refuses fields not in `known` (NULL-terminated). */
static int known_fields(json_t *obj, const char *path, const char *const *known) {
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        size_t k = 0;
        while (known[k] != NULL && strcmp(known[k], key) != 0) {
            k++;
        }
        if (known[k] == NULL) {
            return bad(path, "unknown field \"%s\"", key);
        }
    }
    return 0;
}

/* A state or job name: a queue-like name without '/', which separates them in activity names. */
static int name_ok(const char *what, const char *name, const char *path) {
    if (aj_name_check(what, name) != 0) {
        return bad(path, "%s", aj_errmsg());
    }
    if (strchr(name, '/') != NULL) {
        return bad(path, "%s name '%s' contains '/'", what, name);
    }
    return 0;
}

static int state_index(const sm_def *d, const char *name) {
    for (size_t i = 0; i < d->n_states; i++) {
        if (strcmp(d->states[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* A transition target: the name of a state of this definition. */
static int target(const sm_def *d, json_t *v, const char *path, int *out) {
    if (!json_is_string(v)) {
        return bad(path, "must be the name of a state");
    }
    int i = state_index(d, json_string_value(v));
    if (i < 0) {
        return bad(path, "unknown state '%s'", json_string_value(v));
    }
    *out = i;
    return 0;
}

static int duration_field(json_t *job, const char *key, const char *path, int64_t def,
                          int64_t *out) {
    if (json_def_duration(json_object_get(job, key), def, 1, INT64_MAX, out) != 0) {
        return bad(path, "\"%s\" must be a positive duration like \"30s\"", key);
    }
    return 0;
}

static int parse_job(json_t *j, size_t idx, sm_state *st, const char *spath) {
    char path[SM_PATH_MAX];
    char at[32];
    snprintf(at, sizeof at, "jobs[%zu]", idx);
    path_join(path, spath, at);
    sm_job *job = &st->jobs[idx];
    job->on_outcome[SM_COMPLETED] = job->on_outcome[SM_DEAD] = -1;
    if (!json_is_object(j)) {
        return bad(path, "a job must be an object");
    }
    json_t *name = json_object_get(j, "name");
    if (!json_is_string(name)) {
        return bad(path, "a job needs a \"name\"");
    }
    job->name = json_string_value(name);
    int rc = name_ok("job", job->name, path);
    if (rc != 0) {
        return rc;
    }
    for (size_t k = 0; k < idx; k++) {
        if (strcmp(st->jobs[k].name, job->name) == 0) {
            return bad(path, "job name '%s' is used twice in state '%s' (jobs[%zu] and jobs[%zu])",
                       job->name, st->name, k, idx);
        }
    }
    char jobs_path[SM_PATH_MAX];
    path_join(jobs_path, spath, "jobs");
    path_join(path, jobs_path, job->name);
    static const char *const known[] = {"name",    "run",   "type",  "payload", "max_attempts",
                                        "timeout", "lease", "queue", NULL};
    if ((rc = known_fields(j, path, known)) != 0) {
        return rc;
    }
    json_t *run = json_object_get(j, "run");
    json_t *type = json_object_get(j, "type");
    json_t *payload = json_object_get(j, "payload");
    if ((run == NULL) == (type == NULL)) {
        return bad(path, "a job needs either \"run\" or \"type\" (and \"payload\")");
    }
    if (run != NULL) {
        if (payload != NULL) {
            return bad(path, "\"payload\" goes with \"type\", not with \"run\"");
        }
        if (!json_is_array(run) || json_array_size(run) == 0) {
            return bad(path, "\"run\" must be a non-empty array of strings");
        }
        for (size_t i = 0; i < json_array_size(run); i++) {
            if (!json_is_string(json_array_get(run, i))) {
                return bad(path, "\"run\" element %zu is not a string", i);
            }
        }
        job->run = run;
    } else {
        if (!json_is_string(type) || aj_name_check("type", json_string_value(type)) != 0) {
            return bad(path, "\"type\" must be a job type name");
        }
        job->type = json_string_value(type);
        job->payload = payload;
    }
    json_t *ma = json_object_get(j, "max_attempts");
    job->max_attempts = 3;
    if (ma != NULL) {
        if (!json_is_integer(ma) || json_integer_value(ma) < 1 ||
            json_integer_value(ma) > 1000000) {
            return bad(path, "\"max_attempts\" must be an integer from 1 to 1000000");
        }
        job->max_attempts = (uint32_t)json_integer_value(ma);
    }
    if ((rc = duration_field(j, "timeout", path, 5 * AJ_MINUTE, &job->timeout_ms)) != 0 ||
        (rc = duration_field(j, "lease", path, 30 * AJ_SECOND, &job->lease_ms)) != 0) {
        return rc;
    }
    if (job->lease_ms < AJ_LEASE_MIN_MS) {
        return bad(path, "\"lease\" must be at least %dms (the minimum lease)", AJ_LEASE_MIN_MS);
    }
    json_t *q = json_object_get(j, "queue");
    job->queue = "default";
    if (q != NULL) {
        if (!json_is_string(q) || aj_name_check("queue", json_string_value(q)) != 0) {
            return bad(path, "\"queue\" must be a queue name");
        }
        job->queue = json_string_value(q);
    }
    return 0;
}

static int parse_success_rate(const sm_def *d, json_t *sr, sm_state *st, const char *opath) {
    char path[SM_PATH_MAX];
    path_join(path, opath, "success_rate");
    if (!json_is_object(sr)) {
        return bad(path, "must be an object {\"at_least\":0.9,\"then\":STATE,\"else\":STATE}");
    }
    static const char *const known[] = {"at_least", "then", "else", NULL};
    int rc = known_fields(sr, path, known);
    if (rc != 0) {
        return rc;
    }
    json_t *al = json_object_get(sr, "at_least");
    if (!json_is_number(al)) {
        return bad(path, "\"at_least\" must be a number from 0 to 1");
    }
    double v = json_number_value(al);
    if (!(v >= 0.0 && v <= 1.0)) {
        return bad(path, "\"at_least\" is %g; it must be from 0 to 1", v);
    }
    st->rate_at_least = v;
    char sub[SM_PATH_MAX];
    json_t *then = json_object_get(sr, "then");
    if (then == NULL) {
        return bad(path, "needs \"then\": the state to go to when the rate is reached");
    }
    path_join(sub, path, "then");
    if ((rc = target(d, then, sub, &st->rate_then)) != 0) {
        return rc;
    }
    json_t *els = json_object_get(sr, "else");
    if (els != NULL) {
        path_join(sub, path, "else");
        rc = target(d, els, sub, &st->rate_else);
    }
    return rc;
}

static int parse_outcomes(const sm_def *d, json_t *oc, sm_state *st, const char *opath) {
    char path[SM_PATH_MAX];
    path_join(path, opath, "outcome");
    if (!json_is_object(oc) || json_object_size(oc) == 0) {
        return bad(path, "must be an object mapping job names to {\"completed\":STATE,"
                         "\"dead\":STATE}");
    }
    const char *key;
    json_t *val;
    json_object_foreach(oc, key, val) {
        char jpath[SM_PATH_MAX];
        path_join(jpath, path, key);
        sm_job *job = NULL;
        for (size_t i = 0; i < st->n_jobs; i++) {
            if (strcmp(st->jobs[i].name, key) == 0) {
                job = &st->jobs[i];
            }
        }
        if (job == NULL) {
            return bad(jpath, "state '%s' has no job '%s'", st->name, key);
        }
        if (!json_is_object(val) || json_object_size(val) == 0) {
            return bad(jpath, "must be an object {\"completed\":STATE,\"dead\":STATE}");
        }
        static const char *const known[] = {"completed", "dead", NULL};
        int rc = known_fields(val, jpath, known);
        if (rc != 0) {
            return rc;
        }
        static const char *const names[2] = {"completed", "dead"};
        for (int o = 0; o < 2; o++) {
            json_t *t = json_object_get(val, names[o]);
            if (t != NULL) {
                char tpath[SM_PATH_MAX];
                path_join(tpath, jpath, names[o]);
                if ((rc = target(d, t, tpath, &job->on_outcome[o])) != 0) {
                    return rc;
                }
            }
        }
    }
    return 0;
}

/* 1 when the rules decide every combination of outcomes. */
static int decides_all(const sm_state *st) {
    if (st->otherwise >= 0 || (st->all_success >= 0 && st->any_failure >= 0)) {
        return 1;
    }
    if (st->rate_at_least >= 0 && (st->rate_else >= 0 || st->rate_at_least == 0.0)) {
        return 1;
    }
    for (size_t i = 0; i < st->n_jobs; i++) {
        if (st->jobs[i].on_outcome[SM_COMPLETED] >= 0 && st->jobs[i].on_outcome[SM_DEAD] >= 0) {
            return 1;
        }
    }
    /* all_success with a success_rate rule whose threshold every non-perfect rate reaches is
     * rare enough to ask for an explicit rule instead. */
    return 0;
}

static int parse_state(sm_def *d, size_t idx, json_t *s) {
    sm_state *st = &d->states[idx];
    char path[SM_PATH_MAX];
    path_join(path, "states", st->name);
    st->all_success = st->any_failure = st->otherwise = -1;
    st->rate_at_least = -1.0;
    st->rate_then = st->rate_else = -1;
    if (!json_is_object(s)) {
        return bad(path, "a state must be an object");
    }
    static const char *const known[] = {"jobs", "on", "wait", "terminal", "description", NULL};
    int rc = known_fields(s, path, known);
    if (rc != 0) {
        return rc;
    }
    json_t *term = json_object_get(s, "terminal");
    json_t *jobs = json_object_get(s, "jobs");
    json_t *on = json_object_get(s, "on");
    if (term != NULL) {
        const char *t = json_is_string(term) ? json_string_value(term) : "";
        if (strcmp(t, "completed") == 0) {
            st->terminal = SM_TERMINAL_COMPLETED;
        } else if (strcmp(t, "failed") == 0) {
            st->terminal = SM_TERMINAL_FAILED;
        } else {
            return bad(path, "\"terminal\" must be \"completed\" or \"failed\"");
        }
        if (jobs != NULL || on != NULL || json_object_get(s, "wait") != NULL) {
            return bad(path, "a terminal state has no \"jobs\", \"on\" or \"wait\"");
        }
        return 0;
    }
    if (jobs == NULL || on == NULL) {
        return bad(path, "a state needs \"jobs\" and \"on\" (transitions), or \"terminal\"");
    }
    json_t *wait = json_object_get(s, "wait");
    if (wait != NULL && json_def_duration(wait, 0, 1, SM_WAIT_MAX, &st->wait_ms) != 0) {
        return bad(path, "\"wait\" must be a positive duration like \"30s\", at most 30d");
    }
    if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
        return bad(path, "\"jobs\" must be a non-empty array");
    }
    if (json_array_size(jobs) > SM_JOBS_MAX) {
        return bad(path, "%zu jobs, over the limit of %d", json_array_size(jobs), SM_JOBS_MAX);
    }
    st->jobs = aj__calloc(json_array_size(jobs), sizeof *st->jobs);
    if (st->jobs == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory checking a state machine");
    }
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        st->n_jobs = i + 1;
        if ((rc = parse_job(json_array_get(jobs, i), i, st, path)) != 0) {
            return rc;
        }
    }
    char opath[SM_PATH_MAX];
    path_join(opath, path, "on");
    if (!json_is_object(on) || json_object_size(on) == 0) {
        return bad(opath, "must be an object with at least one of all_success, any_failure, "
                          "success_rate, outcome, otherwise");
    }
    static const char *const on_known[] = {"all_success", "any_failure", "success_rate",
                                           "outcome",     "otherwise",   NULL};
    if ((rc = known_fields(on, opath, on_known)) != 0) {
        return rc;
    }
    static const char *const simple[] = {"all_success", "any_failure", "otherwise"};
    int *slots[] = {&st->all_success, &st->any_failure, &st->otherwise};
    for (size_t k = 0; k < 3; k++) {
        json_t *v = json_object_get(on, simple[k]);
        if (v != NULL) {
            char tpath[SM_PATH_MAX];
            path_join(tpath, opath, simple[k]);
            if ((rc = target(d, v, tpath, slots[k])) != 0) {
                return rc;
            }
        }
    }
    json_t *sr = json_object_get(on, "success_rate");
    if (sr != NULL && (rc = parse_success_rate(d, sr, st, opath)) != 0) {
        return rc;
    }
    json_t *oc = json_object_get(on, "outcome");
    if (oc != NULL && (rc = parse_outcomes(d, oc, st, opath)) != 0) {
        return rc;
    }
    if (!decides_all(st)) {
        return bad(opath, "the transitions leave some outcomes undecided: add \"otherwise\", "
                          "both \"all_success\" and \"any_failure\", \"else\" to "
                          "\"success_rate\", or both \"completed\" and \"dead\" for one job "
                          "in \"outcome\"");
    }
    return 0;
}

/* Every state must be reachable from the initial one: an unreachable state is almost always a
 * misspelt transition, so it is refused rather than warned about (the library never prints). */
static int check_reachable(const sm_def *d) {
    uint8_t *seen = aj__calloc(d->n_states, 1);
    size_t *queue = aj__calloc(d->n_states, sizeof *queue);
    int rc = 0;
    if (seen == NULL || queue == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory checking a state machine");
        goto out;
    }
    size_t head = 0, tail = 0;
    seen[d->initial] = 1;
    queue[tail++] = d->initial;
    while (head < tail) {
        const sm_state *st = &d->states[queue[head++]];
        int next[3 + 2 + 2 * SM_JOBS_MAX];
        size_t n = 0;
        next[n++] = st->all_success;
        next[n++] = st->any_failure;
        next[n++] = st->otherwise;
        next[n++] = st->rate_then;
        next[n++] = st->rate_else;
        for (size_t j = 0; j < st->n_jobs; j++) {
            next[n++] = st->jobs[j].on_outcome[SM_COMPLETED];
            next[n++] = st->jobs[j].on_outcome[SM_DEAD];
        }
        for (size_t k = 0; k < n; k++) {
            if (next[k] >= 0 && !seen[next[k]]) {
                seen[next[k]] = 1;
                queue[tail++] = (size_t)next[k];
            }
        }
    }
    int terminal = 0;
    for (size_t i = 0; i < d->n_states; i++) {
        if (!seen[i]) {
            char path[SM_PATH_MAX];
            path_join(path, "states", d->states[i].name);
            rc = bad(path, "unreachable from the initial state '%s'", d->states[d->initial].name);
            goto out;
        }
        terminal |= d->states[i].terminal != SM_NOT_TERMINAL;
    }
    if (!terminal) {
        rc = bad("states", "no terminal state: add one like \"done\":{\"terminal\":\"completed\"}");
    }
out:
    aj__free(seen);
    aj__free(queue);
    return rc;
}

static int parse_doc(sm_def *d, json_t *doc) {
    if (!json_is_object(doc)) {
        return bad(NULL, "expected an object {\"initial\":STATE,\"states\":{...}}");
    }
    static const char *const known[] = {"initial", "states", "max_transitions", "description",
                                        NULL};
    int rc = known_fields(doc, NULL, known);
    if (rc != 0) {
        return rc;
    }
    json_t *states = json_object_get(doc, "states");
    if (!json_is_object(states) || json_object_size(states) == 0) {
        return bad("states", "must be a non-empty object mapping state names to states");
    }
    if (json_object_size(states) > SM_STATES_MAX) {
        return bad("states", "%zu states, over the limit of %d", json_object_size(states),
                   SM_STATES_MAX);
    }
    d->states = aj__calloc(json_object_size(states), sizeof *d->states);
    if (d->states == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory checking a state machine");
    }
    /* Names first, so transitions may point forward. */
    const char *key;
    json_t *val;
    json_object_foreach(states, key, val) {
        char path[SM_PATH_MAX];
        path_join(path, "states", key);
        if ((rc = name_ok("state", key, path)) != 0) {
            return rc;
        }
        d->states[d->n_states++].name = key;
    }
    json_t *initial = json_object_get(doc, "initial");
    if (initial == NULL) {
        return bad("initial", "no initial state: add \"initial\":STATE");
    }
    int init = -1;
    if ((rc = target(d, initial, "initial", &init)) != 0) {
        return rc;
    }
    d->initial = (size_t)init;
    json_t *mt = json_object_get(doc, "max_transitions");
    d->max_transitions = SM_TRANSITIONS_DEFAULT;
    if (mt != NULL) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1 ||
            json_integer_value(mt) > SM_TRANSITIONS_MAX) {
            return bad("max_transitions", "must be an integer from 1 to %d", SM_TRANSITIONS_MAX);
        }
        d->max_transitions = (uint32_t)json_integer_value(mt);
    }
    size_t i = 0;
    json_object_foreach(states, key, val) {
        if ((rc = parse_state(d, i++, val)) != 0) {
            return rc;
        }
    }
    return check_reachable(d);
}

void aj__sm_free(sm_def *d) {
    if (d == NULL) {
        return;
    }
    for (size_t i = 0; i < d->n_states; i++) {
        aj__free(d->states[i].jobs);
    }
    aj__free(d->states);
    json_decref(d->root);
    aj__free(d);
}

int aj__sm_parse(const void *input, size_t len, sm_def **out) {
    sm_def *d = aj__calloc(1, sizeof *d);
    if (d == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory checking a state machine");
    }
    json_error_t jerr;
    /* Duplicate keys would silently drop a state (or a job field): refuse them. */
    d->root = json_loadb(input ? input : "", len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;
    if (d->root == NULL) {
        rc = bad(NULL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    } else {
        rc = parse_doc(d, d->root);
    }
    if (rc != 0) {
        aj__sm_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int aj__sm_validate(const void *input, size_t len) {
    sm_def *d = NULL;
    int rc = aj__sm_parse(input, len, &d);
    aj__sm_free(d);
    return rc;
}

size_t aj__sm_next(const sm_def *d, size_t s, const int *outcome, const char **rule) {
    const sm_state *st = &d->states[s];
    size_t completed = 0;
    for (size_t i = 0; i < st->n_jobs; i++) {
        int t = st->jobs[i].on_outcome[outcome[i] == SM_DEAD ? SM_DEAD : SM_COMPLETED];
        if (t >= 0) {
            if (rule != NULL) {
                *rule = "outcome";
            }
            return (size_t)t;
        }
        completed += outcome[i] != SM_DEAD;
    }
    const char *why = "otherwise";
    int next = st->otherwise;
    double rate = st->n_jobs ? (double)completed / (double)st->n_jobs : 1.0;
    if (completed == st->n_jobs && st->all_success >= 0) {
        why = "all_success";
        next = st->all_success;
    } else if (completed < st->n_jobs && st->any_failure >= 0) {
        why = "any_failure";
        next = st->any_failure;
    } else if (st->rate_at_least >= 0 && rate >= st->rate_at_least) {
        why = "success_rate";
        next = st->rate_then;
    } else if (st->rate_at_least >= 0 && st->rate_else >= 0) {
        why = "success_rate_else";
        next = st->rate_else;
    }
    /* The validator guarantees a decision (decides_all); a definition that slipped past it is a
     * programming error. */
    assert(next >= 0);
    if (rule != NULL) {
        *rule = why;
    }
    return (size_t)next;
}
