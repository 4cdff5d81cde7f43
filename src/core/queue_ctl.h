/*
 * queue_ctl.h — queue controls (issue 4 §8): pause, a concurrency limit and a rate limit per
 * queue, enforced inside the claim transaction so that they hold across every process.
 *
 * Records (keys.h):
 *   'q' queue   the control: paused flag, concurrency limit, rate limit (written by operators)
 *   'z' queue   the usage: leases counted against the concurrency limit, and the times of the
 *               latest claims for the rate limit (written by claims and by leases ending)
 * Two records so that pausing never conflicts with the churn of claims, and a queue without
 * controls costs a claim one read of an absent key.
 *
 * Concurrency: a claim from a queue with a limit marks the job JOB_FLAG_SLOT and increments the
 * usage count in the same transaction; the transition that ends the lease (complete, fail,
 * release, reap, cancel) clears the flag and decrements it. Optimistic concurrency control makes
 * two claims that read the same count conflict, so the count never exceeds the limit.
 * Rate: the usage keeps the times of the latest rate_n claims; a claim at time t is allowed only
 * while fewer than rate_n of them are later than t - window, so no half-open window of that
 * length ever holds more than rate_n claims, whatever order processes commit in.
 */
#ifndef AJ_CORE_QUEUE_CTL_H
#define AJ_CORE_QUEUE_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "aj.h"
#include "core/job_record.h"
#include "core/jobs.h"
#include "store/kv.h"

enum {
    KEY_QUEUE_CTL = 'q',
    KEY_QUEUE_USE = 'z',
};

typedef struct qctl {
    int paused;
    uint32_t concurrency;   /* 0: none */
    uint32_t rate_n;        /* 0: none */
    int64_t rate_window_ms; /* with rate_n */
} qctl;

/* One queue's controls and usage as seen by one claim transaction. */
typedef struct qctl_gate {
    qctl c;
    uint32_t running; /* leases counted against the concurrency limit */
    int64_t *times;   /* claim times kept for the rate limit (owned) */
    uint32_t n_times; /* entries in times */
    size_t allowance; /* claims still allowed now; SIZE_MAX: unlimited */
    int dirty;        /* usage changed: write it back */
} qctl_gate;

/* Reads the queue's control (and usage, when limited) and computes how many claims it allows
 * at env->now_ms: 0 when paused. Free with qctl_gate_free(). */
int qctl_gate_open(kv_txn *t, const job_env *env, const char *queue, qctl_gate *g);
/* Records one claim taken at now_ms (the caller checked allowance > 0). */
void qctl_gate_take(qctl_gate *g, int64_t now_ms);
/* Writes the usage back when it changed. */
int qctl_gate_close(kv_txn *t, const char *queue, qctl_gate *g);
void qctl_gate_free(qctl_gate *g);

/* A lease counted against the queue's limit ended: decrements the usage. */
int qctl_slot_release(kv_txn *t, aj_slice queue);

/* Reads a queue's control: *out zeroed when it has none. */
int qctl_read(kv_txn *t, const char *queue, qctl *out, uint32_t *out_running);
/* Pauses (1) or resumes (0); creates the control when needed. */
int qctl_pause(kv_txn *t, const char *queue, int paused);
/* Sets limits (see aj_queue_limit). */
int qctl_limit(kv_txn *t, const job_env *env, const char *queue, int64_t concurrency,
               int64_t rate_n, int64_t rate_window_ms);
/* Every queue (known, controlled, or with jobs) with its job counts and controls, sorted by
 * name; the caller frees with aj_queue_list_free(). */
int qctl_list(kv_txn *t, aj_queue_info **out, size_t *n);

/* Checks that each queue's usage count equals its running jobs flagged JOB_FLAG_SLOT; adds
 * the usage records checked and the problems found (each described through `report`). */
int qctl_check(kv_txn *t, void (*report)(void *ud, const char *line), void *ud, uint64_t *records,
               uint64_t *problems);

#endif
