/*
 * wf_patch.c — version patches (aj_patched, aj_deprecate_patch), after Temporal's
 * patched/deprecatePatch (GetVersion in the Go SDK).
 *
 * A patch is a `version_marker` command named by the patch id. Live, the first call of a run
 * records it and answers 1 (the new code path). On replay the answer comes from the history at
 * the call's position: a marker of that id among the next commands (markers only) means the run
 * passed here with the new code (1); any other command next — a `wait_point` included, where
 * the run waited beyond this point at a call that records nothing (wf_progress.c) — means the
 * run was recorded by the old code before the patch existed, and it must keep to the old path
 * (0); no command left means the run has reached the live edge, so it records the marker now and
 * takes the new path — unless the run was recorded by an aj without wait points and this is its
 * first task here: how far its code got is unknown, so it keeps to the old path. Each
 * run decides once per patch id and remembers the decision, so a patch consulted twice (in a
 * loop, or in two places) always answers the same within a run. Markers never wait and are
 * skipped by calls that do not ask for them (wf_context.c), so removing a deprecated patch call
 * later still replays every history.
 */
#include <string.h>

#include "core/history.h"
#include "runtime/wf_exec.h"
#include "util/err.h"

/* The decision already taken in this run for patch_id, or -1. */
static int decided(const aj__wf_view *v, const char *patch_id) {
    for (size_t i = 0; i < *v->n_patches; i++) {
        if (strcmp((*v->patches)[i].id, patch_id) == 0) {
            return (*v->patches)[i].value;
        }
    }
    return -1;
}

static int remember(const aj__wf_view *v, const char *patch_id, int value) {
    if (*v->n_patches % 8 == 0) {
        aj__wf_patch *nv = aj__arena_alloc(v->scratch, (*v->n_patches + 8) * sizeof *nv);
        if (nv == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory keeping a patch decision");
        }
        if (*v->n_patches > 0) {
            memcpy(nv, *v->patches, *v->n_patches * sizeof *nv);
        }
        *v->patches = nv;
    }
    const char *copy = aj__arena_dup(v->scratch, patch_id, strlen(patch_id));
    if (copy == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory keeping a patch decision");
    }
    (*v->patches)[(*v->n_patches)++] = (aj__wf_patch){copy, value};
    return value;
}

/* 1 when a marker of patch_id comes before any other command still to be replayed; 0 when
 * another command comes first; -1 when no command is left (the live edge). */
static int marker_ahead(const aj__wf_view *v, const char *patch_id) {
    for (size_t i = v->cursor; i < v->n_events; i++) {
        const wf_event *ev = &v->events[i];
        if (ev->type == EV_VERSION_MARKER) {
            if (aj__slice_eq(ev->name, patch_id)) {
                return 1;
            }
            continue; /* another patch's marker */
        }
        if (aj__wf_is_command(ev)) {
            return 0;
        }
    }
    return -1;
}

static int patch(aj_wf *wf, const char *patch_id, int deprecated) {
    int rc = aj_name_check("patch id", patch_id);
    if (rc != 0) {
        return rc;
    }
    aj__wf_view v;
    aj__wf_view_get(wf, &v);
    int known = decided(&v, patch_id);
    if (known >= 0) {
        return known;
    }
    if (*v.n_patches >= AJ_WF_PATCHES_MAX) {
        return aj__err(AJ_ETOOBIG, "a run may ask about at most %d patch ids", AJ_WF_PATCHES_MAX);
    }
    int ahead = marker_ahead(&v, patch_id);
    if (ahead == 1) {
        const wf_event *ev = NULL;
        rc = aj__wf_next(wf, EV_VERSION_MARKER, EV_VERSION_MARKER, patch_id, &ev);
        return rc < 0 ? rc : remember(&v, patch_id, 1);
    }
    if (ahead == -1 && !(v.w->flags & WF_FLAG_WAIT_POINTS)) {
        /* A run recorded by an aj that wrote no wait points, in its first task under this one:
         * its code may have waited past this point at a call that recorded nothing, so the end
         * of its commands says nothing of how far it got. The old path is the one it was
         * started with. */
        ahead = 0;
    }
    if (ahead == 0) {
        /* Recorded before the patch. A deprecated patch has only the new path left: the run
         * goes on with it, as Temporal's deprecatePatch does. */
        return remember(&v, patch_id, deprecated ? 1 : 0);
    }
    if (!v.query_mode) {
        aj_bytes none = {"", 0};
        rc = aj__wf_record(wf, EV_VERSION_MARKER, patch_id, none, deprecated ? 1 : 0, 0);
        if (rc != 0) {
            return rc;
        }
    }
    return remember(&v, patch_id, 1);
}

int aj_patched(aj_wf *wf, const char *patch_id) {
    return patch(wf, patch_id, 0);
}

int aj_deprecate_patch(aj_wf *wf, const char *patch_id) {
    int rc = patch(wf, patch_id, 1);
    return rc < 0 ? rc : 0;
}
