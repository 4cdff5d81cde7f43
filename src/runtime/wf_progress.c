/*
 * wf_progress.c — how far a run's code got: the `wait_point` command.
 *
 * Most calls that wait record a command first (a timer, an activity, a compensation job), and
 * that command marks where the code stopped. Three wait and record nothing: aj_wait_signal
 * without a timeout, aj_activity_wait and aj_child_wait. Without a mark, a replay that reaches
 * the end of the recorded commands cannot tell whether the run had already gone past the point
 * it is at (aj_patched answered 1 in runs that had passed the patch), and code that now waits
 * somewhere else went unnoticed (the run stayed `running` for ever).
 *
 * So when a task ends suspended and its first wait was one of those three, the task records a
 * `wait_point` command — name KIND:NAME of the call (`signal:go`, `activity:x`, `child:c`), aux
 * the commands made before it, version markers and wait points aside — with its other events,
 * in its own transaction (no extra commit). On replay the same call consumes it and then sees
 * the arrivals up to the next command; any other call meeting it diverges, and aj_patched
 * meeting it answers 0 (the run passed that point with the old code). A call that waits again
 * right after consuming its own wait point records no new one, so a run woken by unrelated
 * arrivals does not grow its history.
 *
 * Every call that waits suspends through aj__wf_suspend_at, which parks the run when recorded
 * commands are left: code that stops short of where the recorded run went on is
 * non-determinism, and the message names both the waiting call and the next command. Queries
 * and aj_wf_replay_check replay the same way and never write.
 *
 * Runs recorded by an aj without wait points replay as before; WF_FLAG_WAIT_POINTS (set on
 * every run this version starts, and by its first task on an older run) tells aj_patched
 * whether the end of the recorded commands is really as far as the code got (wf_patch.c).
 */
#include <stdio.h>
#include <string.h>

#include "core/history.h"
#include "runtime/wf_exec.h"
#include "util/err.h"

/* Longest KIND:NAME of a wait point: the longest name of a call that records one (an activity
 * name, 512 bytes) and its kind. */
#define WF_WAIT_LABEL_MAX 600

static int label_of(const char *kind, const char *name, char *out) {
    int n = snprintf(out, WF_WAIT_LABEL_MAX, "%s:%s", kind, name);
    if (n < 0 || n >= WF_WAIT_LABEL_MAX) {
        return aj__err(AJ_EINVAL, "%s name '%.40s...' is too long for a wait point", kind, name);
    }
    return 0;
}

/* The next recorded command still to be replayed (version markers, which never wait and may be
 * skipped, aside), or NULL at the live edge. */
static const wf_event *next_command(const aj__wf_view *v) {
    for (size_t i = v->cursor; i < v->n_events; i++) {
        const wf_event *ev = &v->events[i];
        if (aj__wf_is_command(ev) && ev->type != EV_VERSION_MARKER) {
            return ev;
        }
    }
    return NULL;
}

int aj__wf_wait_marker(aj_wf *wf, const char *kind, const char *name) {
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    const wf_event *next = next_command(&v);
    if (next == NULL || next->type != EV_WAIT_POINT) {
        return 0;
    }
    char label[WF_WAIT_LABEL_MAX];
    if (label_of(kind, name, label) != 0 || !aj__slice_eq(next->name, label)) {
        aj__err_clear();
        return 0;
    }
    const wf_event *ev = NULL;
    int rc = aj__wf_next(wf, EV_WAIT_POINT, EV_WAIT_POINT, label, &ev);
    return rc < 0 ? rc : 1;
}

int aj__wf_suspend_at(aj_wf *wf, const char *kind, const char *name, int implied) {
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    const wf_event *next = next_command(&v);
    if (next != NULL) {
        char msg[WF_WAIT_LABEL_MAX + 400];
        snprintf(msg, sizeof msg,
                 "non-determinism in workflow '%.*s': the code waits for %s '%s' but the "
                 "history has %s '%.*s' (event %llu) next",
                 (int)v.w->id.n, (const char *)v.w->id.p, kind, name, wf_event_name(next->type),
                 (int)next->name.n, (const char *)next->name.p, (unsigned long long)next->seq);
        return aj__wf_diverged(wf, msg);
    }
    if (v.wait->kind == NULL) {
        const char *copy = aj__arena_dup(v.scratch, name, strlen(name) + 1);
        if (copy == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory noting where a workflow waits");
        }
        *v.wait = (aj__wf_wait){kind, copy, implied};
    }
    return aj__wf_suspend(wf);
}

int aj__wf_progress_suspended(aj_wf *wf) {
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    const wf_event *next = next_command(&v);
    if (next != NULL) {
        /* The calls that wait diverge themselves (aj__wf_suspend_at): this is code that
         * returned AJ_SUSPEND of its own accord, short of where the recorded run went on. */
        char msg[400];
        snprintf(msg, sizeof msg,
                 "non-determinism in workflow '%.*s': the code suspended without waiting at a "
                 "durable call, but the history has %s '%.*s' (event %llu) next",
                 (int)v.w->id.n, (const char *)v.w->id.p, wf_event_name(next->type),
                 (int)next->name.n, (const char *)next->name.p, (unsigned long long)next->seq);
        return aj__wf_diverged(wf, msg);
    }
    if (v.query_mode || v.t == NULL || v.wait->kind == NULL || v.wait->implied) {
        return 0;
    }
    char label[WF_WAIT_LABEL_MAX];
    int rc = label_of(v.wait->kind, v.wait->name, label);
    if (rc != 0) {
        return rc;
    }
    if (v.w->seq >= AJ_WF_EVENTS_MAX) {
        /* A full history takes no more commands; the code can only end the run now. */
        return 0;
    }
    uint64_t made = 0;
    for (size_t i = 0; i < v.n_events; i++) {
        const wf_event *ev = &v.events[i];
        made += aj__wf_is_command(ev) && ev->type != EV_VERSION_MARKER && ev->type != EV_WAIT_POINT;
    }
    aj_bytes none = {"", 0};
    return aj__wf_record(wf, EV_WAIT_POINT, label, none, made, 0);
}
