/*
 * saga_builtin.c — the built-in workflow type `saga`: a declarative saga, interpreted from its
 * JSON input by an ordinary workflow function (on the C saga API, wf_saga_api.c), so it inherits
 * the history, replay and recovery.
 *
 *   {"steps":[{"name":"reserve","run":["PROGRAM","ARG"],"compensate":["PROGRAM","ARG"],
 *              "max_attempts":3,"timeout":"5m","lease":"30s","queue":"default"}, ...]}
 *
 * A step may ask for its result to be memoized with "cache": {"ttl":"1h","scope":"workflow" or
 * "global","version":"v1"} (aj_activity_cached: a run step's job payload carries the workflow
 * id in its environment, so only a "type" step's entries can be shared globally).
 *
 * A step may give "type" and "payload" of a job instead of "run" (and so may "compensate", as an
 * object {"type","payload"}). Steps run in order as activities; a step fails when its job is
 * dead-lettered. Then the compensations of the completed steps run in reverse order, as jobs
 * retried up to SAGA_COMPENSATION_ATTEMPTS times, and the run ends `compensated`, or
 * `compensation_failed` if one of them is dead-lettered. Shell steps see AJ_WORKFLOW_ID, AJ_STEP,
 * AJ_ATTEMPT, and AJ_COMPENSATING=1 when they compensate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json_def.h"
#include "runtime/engine.h"
#include "runtime/wf_exec.h"
#include "util/err.h"
#include "util/mem.h"

/* Most steps in one saga. */
#define SAGA_STEPS_MAX 256
/* Attempts of each compensation job. */
#define SAGA_COMPENSATION_ATTEMPTS 10

typedef struct saga_step {
    const char *name;
    json_t *run;        /* argv array, or NULL */
    json_t *type;       /* job type string, or NULL */
    json_t *payload;    /* job payload, or NULL */
    json_t *compensate; /* argv array or {"type","payload"} object, or NULL */
    uint32_t max_attempts;
    int64_t timeout_ms, lease_ms;
    const char *queue;
    int cached; /* "cache" given: the step's result is memoized (activity_cache.h) */
    aj_activity_cache cache;
} saga_step;

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return aj__err(AJ_EINVAL, "saga input: %s", msg);
}

static int check_argv(json_t *a, const char *where, const char *name) {
    if (!json_is_array(a) || json_array_size(a) == 0) {
        return bad("step '%s': \"%s\" must be a non-empty array of strings", name, where);
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        if (!json_is_string(json_array_get(a, i))) {
            return bad("step '%s': \"%s\" element %zu is not a string", name, where, i + 1);
        }
    }
    return 0;
}

static int duration_field(json_t *step, const char *key, const char *name, int64_t def,
                          int64_t *out) {
    if (json_def_duration(json_object_get(step, key), def, 1, INT64_MAX, out) != 0) {
        return bad("step '%s': \"%s\" must be a positive duration like \"30s\"", name, key);
    }
    return 0;
}

/* "cache": {"ttl":"1h","scope":"workflow"|"global","version":"v1"} */
static int cache_field(json_t *st, saga_step *s) {
    json_t *c = json_object_get(st, "cache");
    if (c == NULL) {
        return 0;
    }
    const char *why = "\"cache\" must be an object with \"ttl\" (a duration) and optional "
                      "\"scope\" (\"workflow\" or \"global\") and \"version\" (a string)";
    if (!json_is_object(c)) {
        return bad("step '%s': %s", s->name, why);
    }
    const char *key;
    json_t *val;
    json_object_foreach(c, key, val) {
        if (strcmp(key, "ttl") != 0 && strcmp(key, "scope") != 0 && strcmp(key, "version") != 0) {
            return bad("step '%s': unknown field \"%s\" in \"cache\"", s->name, key);
        }
    }
    json_t *ttl = json_object_get(c, "ttl");
    json_t *scope = json_object_get(c, "scope");
    json_t *version = json_object_get(c, "version");
    if (ttl == NULL || json_def_duration(ttl, 0, 1, INT64_MAX, &s->cache.ttl_ms) != 0) {
        return bad("step '%s': \"cache\".\"ttl\" must be a positive duration like \"1h\"", s->name);
    }
    if (scope != NULL &&
        !(json_is_string(scope) && (strcmp(json_string_value(scope), "workflow") == 0 ||
                                    strcmp(json_string_value(scope), "global") == 0))) {
        return bad("step '%s': \"cache\".\"scope\" must be \"workflow\" or \"global\"", s->name);
    }
    if (version != NULL &&
        (!json_is_string(version) || strlen(json_string_value(version)) > AJ_NAME_MAX)) {
        return bad("step '%s': \"cache\".\"version\" must be a string of at most %d bytes", s->name,
                   AJ_NAME_MAX);
    }
    s->cached = 1;
    s->cache.global = scope != NULL && strcmp(json_string_value(scope), "global") == 0;
    s->cache.version = version != NULL ? json_string_value(version) : "";
    return 0;
}

/* Parses and checks the whole input. steps[] borrow from *root (json_decref it). */
static int parse(const void *input, size_t len, json_t **root, saga_step *steps, size_t *n) {
    json_error_t jerr;
    json_t *doc = json_loadb(input, len, 0, &jerr);
    if (doc == NULL) {
        return bad("invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    }
    int rc = 0;
    json_t *arr = json_object_get(doc, "steps");
    if (!json_is_object(doc) || !json_is_array(arr) || json_array_size(arr) == 0) {
        rc = bad("expected an object with \"steps\": a non-empty array");
    } else if (json_array_size(arr) > SAGA_STEPS_MAX) {
        rc = bad("%zu steps, over the limit of %d", json_array_size(arr), SAGA_STEPS_MAX);
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        json_t *st = json_array_get(arr, i);
        saga_step *s = &steps[i];
        memset(s, 0, sizeof *s);
        json_t *name = json_object_get(st, "name");
        if (!json_is_object(st) || !json_is_string(name)) {
            rc = bad("step %zu needs a \"name\"", i + 1);
            break;
        }
        s->name = json_string_value(name);
        if (aj_name_check("step name", s->name) != 0) {
            rc = bad("step %zu: %s", i + 1, aj_errmsg());
            break;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(steps[j].name, s->name) == 0) {
                rc = bad("step name '%s' is used twice (steps %zu and %zu)", s->name, j + 1, i + 1);
                break;
            }
        }
        if (rc != 0) {
            break;
        }
        const char *known[] = {"name",  "run",   "compensate", "max_attempts", "timeout",
                               "lease", "queue", "type",       "payload",      "cache"};
        const char *key;
        json_t *val;
        json_object_foreach(st, key, val) {
            size_t k = 0;
            while (k < sizeof known / sizeof known[0] && strcmp(known[k], key) != 0) {
                k++;
            }
            if (k == sizeof known / sizeof known[0]) {
                rc = bad("step '%s': unknown field \"%s\"", s->name, key);
                break;
            }
        }
        if (rc != 0) {
            break;
        }
        s->run = json_object_get(st, "run");
        s->type = json_object_get(st, "type");
        s->payload = json_object_get(st, "payload");
        s->compensate = json_object_get(st, "compensate");
        if ((s->run == NULL) == (s->type == NULL)) {
            rc = bad("step '%s' needs either \"run\" or \"type\" (and \"payload\")", s->name);
        } else if (s->run != NULL) {
            rc = check_argv(s->run, "run", s->name);
        } else if (!json_is_string(s->type) ||
                   aj_name_check("type", json_string_value(s->type)) != 0) {
            rc = bad("step '%s': \"type\" must be a job type name", s->name);
        }
        if (rc == 0 && s->compensate != NULL) {
            if (json_is_array(s->compensate)) {
                rc = check_argv(s->compensate, "compensate", s->name);
            } else if (!json_is_object(s->compensate) ||
                       !json_is_string(json_object_get(s->compensate, "type"))) {
                rc = bad("step '%s': \"compensate\" must be an argv array or an object with "
                         "\"type\" and \"payload\"",
                         s->name);
            }
        }
        json_t *ma = json_object_get(st, "max_attempts");
        s->max_attempts = 3;
        if (rc == 0 && ma != NULL) {
            if (!json_is_integer(ma) || json_integer_value(ma) < 1 ||
                json_integer_value(ma) > 1000000) {
                rc = bad("step '%s': \"max_attempts\" must be an integer from 1 to 1000000",
                         s->name);
            } else {
                s->max_attempts = (uint32_t)json_integer_value(ma);
            }
        }
        if (rc == 0) {
            rc = duration_field(st, "timeout", s->name, 5 * AJ_MINUTE, &s->timeout_ms);
        }
        if (rc == 0) {
            rc = duration_field(st, "lease", s->name, 30 * AJ_SECOND, &s->lease_ms);
        }
        if (rc == 0 && s->lease_ms < AJ_LEASE_MIN_MS) {
            rc = bad("step '%s': \"lease\" must be at least %dms (the minimum lease)", s->name,
                     AJ_LEASE_MIN_MS);
        }
        if (rc == 0) {
            rc = cache_field(st, s);
        }
        json_t *q = json_object_get(st, "queue");
        s->queue = "default";
        if (rc == 0 && q != NULL) {
            if (!json_is_string(q) || aj_name_check("queue", json_string_value(q)) != 0) {
                rc = bad("step '%s': \"queue\" must be a queue name", s->name);
            } else {
                s->queue = json_string_value(q);
            }
        }
    }
    if (rc != 0) {
        json_decref(doc);
        return rc;
    }
    *root = doc;
    *n = json_array_size(arr);
    return 0;
}

int aj__saga_builtin_validate(const void *input, size_t len) {
    saga_step *steps = aj__calloc(SAGA_STEPS_MAX, sizeof *steps);
    if (steps == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory checking a saga");
    }
    json_t *root = NULL;
    size_t n;
    int rc = parse(input, len, &root, steps, &n);
    json_decref(root);
    aj__free(steps);
    return rc;
}

/* Builds the job of a step or compensation. The payload text is returned in *owned. */
static int job_for(aj_wf *wf, const saga_step *s, json_t *what, int compensating, aj_job_spec *spec,
                   char **owned) {
    aj_job_spec_init(spec);
    spec->queue = s->queue;
    spec->timeout_ms = s->timeout_ms;
    spec->lease_ms = s->lease_ms;
    spec->max_attempts = compensating ? SAGA_COMPENSATION_ATTEMPTS : s->max_attempts;
    json_t *payload;
    if (json_is_array(what)) {
        spec->type = "shell";
        json_t *env = json_object();
        json_object_set_new(env, "AJ_WORKFLOW_ID", json_string(aj_wf_id(wf)));
        json_object_set_new(env, "AJ_STEP", json_string(s->name));
        if (compensating) {
            json_object_set_new(env, "AJ_COMPENSATING", json_string("1"));
        }
        payload = json_pack("{s:O,s:o}", "argv", what, "env", env);
    } else {
        json_t *type = compensating ? json_object_get(what, "type") : s->type;
        spec->type = json_string_value(type);
        payload = json_incref(compensating ? json_object_get(what, "payload") : s->payload);
        if (payload == NULL) {
            payload = json_null();
        }
    }
    *owned = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(payload);
    if (*owned == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory building a saga job");
    }
    spec->payload = *owned;
    spec->payload_len = strlen(*owned);
    return 0;
}

typedef struct saga_status {
    const char *current;
    size_t done, total;
} saga_status;

static int status_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)arg;
    saga_status *st = ud;
    json_t *o = json_pack("{s:s?,s:I,s:I}", "current_step", st->current, "completed_steps",
                          (json_int_t)st->done, "steps", (json_int_t)st->total);
    *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (*out == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory answering a query");
    }
    *len = strlen(*out);
    return 0;
}

static int saga_fn(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    saga_step *steps = aj__calloc(SAGA_STEPS_MAX, sizeof *steps);
    if (steps == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory running a saga");
    }
    json_t *root = NULL;
    size_t n = 0;
    int rc = parse(input.data, input.len, &root, steps, &n);
    if (rc != 0) {
        aj__free(steps);
        return aj_wf_fail(wf, aj_errmsg());
    }
    saga_status st = {NULL, 0, n};
    aj_wf_set_query(wf, "status", status_query, &st);
    json_t *results = json_object();
    int failed = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        st.current = steps[i].name;
        aj_job_spec spec;
        char *payload = NULL;
        rc = job_for(wf, &steps[i], steps[i].run ? steps[i].run : NULL, 0, &spec, &payload);
        aj_bytes out;
        if (rc == 0) {
            rc = aj_activity_cached(wf, steps[i].name, &spec,
                                    steps[i].cached ? &steps[i].cache : NULL, &out);
        }
        free(payload);
        if (rc == AJ_EFAILED || rc == AJ_ECANCELLED) {
            failed = 1;
            rc = 0;
            break;
        }
        if (rc != 0) {
            break;
        }
        json_t *r = json_loadb(out.data, out.len, JSON_DECODE_ANY, NULL);
        json_object_set_new(results, steps[i].name,
                            r ? r : json_stringn(out.data ? out.data : "", out.len));
        st.done++;
        if (steps[i].compensate != NULL) {
            aj_job_spec cspec;
            char *cpayload = NULL;
            rc = job_for(wf, &steps[i], steps[i].compensate, 1, &cspec, &cpayload);
            if (rc == 0) {
                rc = aj_saga_push_job(wf, steps[i].name, &cspec);
            }
            free(cpayload);
        }
    }
    st.current = NULL;
    if (rc == 0 && failed) {
        rc = aj_saga_compensate(wf);
        if (rc == 0 || rc == AJ_EFAILED) {
            rc = aj_wf_fail(wf, "a saga step failed; compensated");
        }
    } else if (rc == 0) {
        char *text = json_dumps(results, JSON_COMPACT);
        rc = text ? aj_wf_set_result(wf, text, strlen(text))
                  : aj__err(AJ_ENOMEM, "out of memory keeping a result");
        free(text);
    }
    json_decref(results);
    json_decref(root);
    aj__free(steps);
    return rc;
}

int aj__saga_builtin_register(aj_engine *e) {
    return aj_workflow_register(e, "saga", saga_fn, NULL);
}
