/*
 * child.h — links between parent and child workflows, and what happens across a link when a
 * run ends: the child's outcome goes to its parent's inbox, the parent's end applies each
 * child's parent-close policy. Pure logic over one transaction, like workflow.h.
 *
 * Keys (keys.h, prefix 'c'):
 *   'c' 0 child_id                       → the child's parent link: format, parent id, run,
 *                                          child_started seq, policy, name
 *   'c' 1 parent_id 0 run(4) seq(8)      → one child the parent's run started: policy, child
 *                                          id, name (so children list in start order)
 * Both are written with the child_started event and the child's start, in one transaction,
 * and deleted when the workflow they are keyed by is collected.
 */
#ifndef AJ_CORE_CHILD_H
#define AJ_CORE_CHILD_H

#include "aj.h"
#include "core/workflow.h"

#define WF_LINK_FORMAT 1

typedef struct wf_link {
    aj_slice other; /* the parent (for a child's link) or the child (in a children list) */
    aj_slice name;  /* the child's name in its parent's code */
    uint32_t run;   /* the parent's run */
    uint64_t seq;   /* the child_started event in that run */
    uint8_t policy; /* aj_parent_close */
} wf_link;

/* Records that run `run` of `parent` started `child` as `name` with event `seq`. */
int wf_child_link(kv_txn *t, aj_slice parent, uint32_t run, uint64_t seq, aj_slice child,
                  aj_slice name, uint8_t policy);
/* The parent link of a child; AJ_ENOTFOUND when it has none. */
int wf_child_parent(kv_txn *t, aj_slice child, wf_link *out);
/* Calls fn for each child that any run of `parent` started (run 0) or run `run` started, in
 * start order. */
int wf_child_list(kv_txn *t, aj_slice parent, uint32_t run, int (*fn)(void *ud, const wf_link *l),
                  void *ud);
/* Run w->run of w has just ended in w->state (written in t, or `continued`): tells the parent
 * (when notify_parent and w is a child of a parent run still going) and applies the
 * parent-close policy of each of the run's children that is still going. */
int wf_child_closed(kv_txn *t, const job_env *env, const wf_rec *w, int notify_parent);
/* Cancellation of run w->run of w reaches its children under the `cancel` policy. */
int wf_child_cancel_children(kv_txn *t, const job_env *env, const wf_rec *w);
/* Deletes the links keyed by a collected workflow. */
int wf_child_collect(kv_txn *t, aj_slice id);

#endif
