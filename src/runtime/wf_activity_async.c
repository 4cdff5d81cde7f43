/*
 * wf_activity_async.c — activities started now and awaited later: aj_activity_start and
 * aj_activity_wait, so one workflow can run many jobs at once (the state machine runs a state's
 * jobs this way).
 *
 * aj_activity_start is aj_activity without the wait: the job is submitted and the
 * `activity_scheduled` command recorded in the task's transaction (on replay the command is
 * matched like any other and nothing is submitted again). aj_activity_wait records no command
 * (a task that ends waiting here records a wait_point, wf_progress.c): it finds the start's
 * command by name among the commands already replayed or made in this run and looks for the
 * job's final outcome (activity_completed, or a final activity_failed) the way
 * aj_activity does, only among the arrivals that precede the call's position in the history —
 * the next command still to be replayed, or everything at the live edge. An outcome that came in
 * after the run's next command was recorded is therefore not seen by that replay either, and the
 * same history always gives the same answers (as aj_child_wait does for children).
 */
#include <string.h>

#include "core/history.h"
#include "core/workflow.h"
#include "runtime/wf_exec.h"
#include "util/err.h"

/* Longest activity name: room for the state machine's "STATE/JOB#VISIT". */
#define ACTIVITY_NAME_MAX 512

/* Activity names follow aj_activity's (any text, e.g. the state machine's "STATE/JOB#2"), but
 * must be non-empty, bounded and free of control characters, so the history stays readable. */
static int name_check(const char *name) {
    if (name == NULL || name[0] == '\0') {
        return aj__err(AJ_EINVAL, "an activity needs a name");
    }
    size_t n = strlen(name);
    if (n > ACTIVITY_NAME_MAX) {
        return aj__err(AJ_EINVAL, "activity name '%.40s...' is %zu bytes, over %d", name, n,
                       ACTIVITY_NAME_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            return aj__err(AJ_EINVAL, "activity name '%s' contains a control character", name);
        }
    }
    return 0;
}

/* The activity_scheduled event of `name` among the commands already replayed or made in this
 * run, or NULL. */
static const wf_event *scheduled_event(const aj__wf_view *v, const char *name) {
    for (size_t i = 0; i < v->cursor && i < v->n_events; i++) {
        const wf_event *ev = &v->events[i];
        if (ev->type == EV_ACTIVITY_SCHEDULED && aj__slice_eq(ev->name, name)) {
            return ev;
        }
    }
    return NULL;
}

int aj_activity_start(aj_wf *wf, const char *name, const aj_job_spec *spec) {
    /* Bad arguments are the code's own mistake: refused the same way live and on replay, with
     * nothing recorded. */
    int rc = name_check(name);
    if (rc != 0) {
        return rc;
    }
    if (spec == NULL || spec->type == NULL) {
        return aj__err(AJ_EINVAL, "activity '%s' needs a job type", name);
    }
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    if (scheduled_event(&v, name) != NULL) {
        return aj__err(AJ_EEXISTS, "this run already started an activity named '%s'", name);
    }
    /* A cancel that precedes this call's position refuses it, live and on replay alike. */
    if (aj_wf_cancel_requested(wf)) {
        return aj__err(AJ_ECANCELLED, "workflow cancelled before activity '%s'", name);
    }
    const wf_event *ev = NULL;
    rc = aj__wf_next(wf, EV_ACTIVITY_SCHEDULED, EV_ACTIVITY_SCHEDULED, name, &ev);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return 0;
    }
    if (v.query_mode) {
        return aj__wf_suspend(wf);
    }
    return aj__wf_activity_schedule(wf, name, spec);
}

int aj_activity_wait(aj_wf *wf, const char *name, aj_bytes *out) {
    int rc = name_check(name);
    if (rc != 0) {
        return rc;
    }
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    const wf_event *st = scheduled_event(&v, name);
    if (st == NULL) {
        return aj__err(AJ_EINVAL, "no activity named '%s' was started in this run", name);
    }
    return aj__wf_activity_outcome(wf, name, st->seq, out);
}
