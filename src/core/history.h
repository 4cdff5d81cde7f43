/*
 * history.h — the append-only event log of a workflow run.
 *
 * Event key: 'E' wf_id 0 run(4) seq(8); seq is 1-based and dense. Each event carries the id of
 * its predecessor; an event's id is a hash of its content and its predecessor's id, so reading a
 * history validates the chain and detects a missing, reordered or altered event (AJ_ECORRUPT).
 * Stamps come from a hybrid logical clock kept in the workflow record: never less than the
 * previous stamp plus one, never less than the wall clock.
 */
#ifndef AJ_CORE_HISTORY_H
#define AJ_CORE_HISTORY_H

#include "aj.h"
#include "core/job_record.h"
#include "core/keys.h"
#include "store/kv.h"

#define HIST_FORMAT 1

typedef enum wf_event_type {
    EV_WORKFLOW_STARTED = 1,
    EV_STEP_COMPLETED,
    EV_STEP_FAILED,
    EV_ACTIVITY_SCHEDULED,
    EV_ACTIVITY_STARTED,
    EV_ACTIVITY_COMPLETED,
    EV_ACTIVITY_FAILED,
    EV_TIMER_SCHEDULED,
    EV_TIMER_FIRED,
    EV_TIMER_CANCELLED,
    EV_SIGNAL_RECEIVED,
    EV_SIDE_EFFECT,
    EV_COMPENSATION_STARTED,
    EV_COMPENSATION_COMPLETED,
    EV_COMPENSATION_FAILED,
    EV_CANCEL_REQUESTED,
    EV_WORKFLOW_PARKED,
    EV_WORKFLOW_RESUMED,
    EV_WORKFLOW_COMPLETED,
    EV_WORKFLOW_FAILED,
    EV_WORKFLOW_CANCELLED,
    EV_WORKFLOW_TERMINATED,
    EV_WORKFLOW_TIMED_OUT,
    EV_WORKFLOW_COMPENSATED,
    EV_WORKFLOW_COMPENSATION_FAILED,
    /* Composition and evolution (wf_child.c, wf_patch.c, wf_continue.c). */
    EV_CHILD_STARTED,    /* command: name the child's name, data its id, aux its policy */
    EV_CHILD_COMPLETED,  /* arrival: ref the child_started seq, data the result */
    EV_CHILD_FAILED,     /* arrival (ref set): data the error, aux the state; or a command
                            (ref 0): the child could not start */
    EV_CONTINUED_AS_NEW, /* final: data the next run's input, aux the next run */
    EV_VERSION_MARKER,   /* command: name the patch id, aux 1 when recorded by deprecate */
    /* Updates and reset (wf_update*.c, wf_reset*.c). update_requested only travels through the
     * inbox: a rejected update never enters the history. */
    EV_UPDATE_ACCEPTED,
    EV_UPDATE_COMPLETED,
    EV_WORKFLOW_RESET,
    EV_UPDATE_REQUESTED,
    /* Where the code waited when a task ended suspended at a call that records nothing
     * (runtime/wf_progress.c): command, name KIND:NAME of the call, aux the commands before it. */
    EV_WAIT_POINT,
    EV_TYPE_COUNT
} wf_event_type;

/* The snake_case name ("step_completed"); NULL when out of range. */
const char *wf_event_name(int type);

typedef struct wf_event {
    uint64_t seq;
    uint8_t type;
    uint64_t hlc;
    uint64_t id, prev_id;
    aj_slice name;
    aj_slice data;
    uint64_t aux; /* per type: job id, fire time, referenced event seq, attempt */
    uint64_t ref; /* the seq of the event this one answers (completion → scheduled), or 0 */
} wf_event;

/* The content hash that is an event's id. */
uint64_t hist_event_id(const wf_event *ev);
int hist_encode(const wf_event *ev, aj_buf *b);
int hist_decode(const uint8_t *p, size_t n, wf_event *out);

void key_event(akey *k, aj_slice wf_id, uint32_t run, uint64_t seq);
void key_event_run_prefix(akey *k, aj_slice wf_id, uint32_t run);

/* The next HLC stamp after `last` at wall time now_ms: physical ms in the high 48 bits, a
 * logical counter in the low 16. */
uint64_t hlc_next(uint64_t last, int64_t now_ms);
static inline int64_t hlc_ms(uint64_t stamp) {
    return (int64_t)(stamp >> 16);
}

/* Calls fn for the events of a run with seq in [from, to] (to 0: to the end), validating the
 * chain: the first event's prev_id must equal `prev_id` (the id of event from-1, 0 when from is
 * 1) and each event's id must match its content. */
int hist_read(kv_txn *t, aj_slice wf_id, uint32_t run, uint64_t from, uint64_t to, uint64_t prev_id,
              int (*fn)(void *ud, const wf_event *ev), void *ud);

#endif
