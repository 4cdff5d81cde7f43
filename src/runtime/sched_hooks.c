/*
 * sched_hooks.c — what the schedule core (src/core/schedule.c) asks of the runtime through
 * job_env: parsed time zones from the engine's cache (runtime/tz_cache.c), since core reads no
 * files, and the `shell` type's wish to know when it was scheduled (env.AJ_SCHEDULED_AT in the
 * payload of every job a schedule fires), since the shell type is the runtime's, not core's.
 * Also the checks a shell template needs before it is stored, so that its fires cannot fail.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime/engine.h"
#include "runtime/tz_cache.h"
#include "util/err.h"

/* Room that AJ_SCHEDULED_AT takes in a shell payload. */
#define SCHED_PAYLOAD_EXTRA 64

/* A shell payload as a JSON object whose "env", if any, is an object. */
static int payload_object(aj_slice payload, json_t **out) {
    json_error_t jerr;
    json_t *v = json_loadb(payload.n ? (const char *)payload.p : "", payload.n, 0, &jerr);
    if (!json_is_object(v)) {
        json_decref(v);
        return aj__err(AJ_EINVAL, "a shell schedule's payload must be a JSON object with \"argv\"");
    }
    json_t *env = json_object_get(v, "env");
    if (env != NULL && !json_is_object(env)) {
        json_decref(v);
        return aj__err(AJ_EINVAL, "a shell schedule's payload \"env\" must be an object");
    }
    *out = v;
    return 0;
}

static int is_shell(const char *type) {
    return type != NULL && strcmp(type, "shell") == 0;
}

int eng_sched_spec_check(aj_engine *e, const aj_schedule_spec *s) {
    if (s->cron != NULL) {
        const tz_zone *z;
        int rc = eng_zone(e, s->tz != NULL ? s->tz : "UTC", &z);
        if (rc != 0) {
            return rc;
        }
    }
    const aj_job_spec *j = &s->job;
    if (!is_shell(j->type)) {
        return 0;
    }
    json_t *v = NULL;
    aj_slice p = {j->payload, j->payload_len};
    int rc = payload_object(p, &v);
    if (rc != 0) {
        return rc;
    }
    json_decref(v);
    if (j->payload_len + SCHED_PAYLOAD_EXTRA > AJ_SCHEDULE_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG,
                       "a shell schedule's payload must leave %d bytes free of "
                       "the %zu-byte limit for AJ_SCHEDULED_AT",
                       SCHED_PAYLOAD_EXTRA, AJ_SCHEDULE_PAYLOAD_MAX);
    }
    return 0;
}

int eng_zone(aj_engine *e, const char *name, const tz_zone **out) {
    return aj__tz_cache_get(e->zones, name, out);
}

static int zone_hook(void *ud, const char *name, const tz_zone **out) {
    return eng_zone(ud, name, out);
}

/* A shell template's payload with env AJ_SCHEDULED_AT set (free()); other types keep theirs. */
static int payload_hook(void *ud, const char *type, aj_slice payload, const char *when,
                        char **out) {
    (void)ud;
    *out = NULL;
    if (!is_shell(type)) {
        return 0;
    }
    json_t *v = NULL;
    if (payload_object(payload, &v) != 0) {
        return aj__err(AJ_ECORRUPT, "schedule's shell payload is not a JSON object");
    }
    json_t *env = json_object_get(v, "env");
    if (env == NULL) {
        env = json_object();
        json_object_set_new(v, "env", env);
    }
    json_object_set_new(env, "AJ_SCHEDULED_AT", json_string(when));
    *out = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return *out != NULL ? 0 : aj__err(AJ_ENOMEM, "out of memory building a job's payload");
}

void eng_sched_hooks(aj_engine *e, job_env *env) {
    env->zone = zone_hook;
    env->sched_payload = payload_hook;
    env->sched_ud = e;
}
