/*
 * sm_def.h — the definition of a declarative state machine (the built-in workflow type
 * `statemachine`): parsing and checking its JSON, and choosing a state's next state from its jobs'
 * outcomes. Pure functions of their input: no engine, no clock, no store, so the validator is
 * fuzzed and unit-tested on its own (tests/fuzz/fuzz_statemachine.c, tests/unit/test_sm_def.c).
 * The shape is documented in docs/STATEMACHINE.md.
 */
#ifndef AJ_RUNTIME_SM_DEF_H
#define AJ_RUNTIME_SM_DEF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Most states in one definition. */
#define SM_STATES_MAX 256
/* Most jobs in one state. */
#define SM_JOBS_MAX 64
/* Transitions allowed when the definition does not say ("max_transitions"). */
#define SM_TRANSITIONS_DEFAULT 1000
/* Longest "wait" of a state before its jobs (30 days). */
#define SM_WAIT_MAX ((int64_t)30 * 24 * 3600 * 1000)
/* Largest "max_transitions" accepted (a run's history holds at most AJ_WF_EVENTS_MAX events). */
#define SM_TRANSITIONS_MAX 10000

/* What became of a job: it completed, or it was dead-lettered (or cancelled). */
enum { SM_COMPLETED = 0, SM_DEAD = 1 };
/* How a state ends the run. */
enum { SM_NOT_TERMINAL = 0, SM_TERMINAL_COMPLETED = 1, SM_TERMINAL_FAILED = 2 };

typedef struct sm_job {
    const char *name;
    json_t *run;      /* argv array (a shell job), or NULL */
    const char *type; /* job type when not "run" */
    json_t *payload;  /* job payload when not "run" (NULL: null) */
    const char *queue;
    uint32_t max_attempts;
    int64_t timeout_ms, lease_ms;
    int on_outcome[2]; /* "on.outcome.JOB": target state per SM_COMPLETED/SM_DEAD, -1 none */
} sm_job;

typedef struct sm_state {
    const char *name;
    int terminal;    /* SM_NOT_TERMINAL, SM_TERMINAL_COMPLETED or SM_TERMINAL_FAILED */
    int64_t wait_ms; /* a durable sleep before the jobs run ("wait"), 0: none */
    sm_job *jobs;
    size_t n_jobs;
    /* Transitions (target state indexes, -1 when absent), tried in this order: outcome rules in
     * the order of the jobs, all_success, any_failure, success_rate, otherwise. */
    int all_success, any_failure, otherwise;
    double rate_at_least; /* < 0: no success_rate rule */
    int rate_then, rate_else;
} sm_state;

typedef struct sm_def {
    json_t *root; /* the parsed input; names and job fields borrow from it */
    sm_state *states;
    size_t n_states;
    size_t initial;
    uint32_t max_transitions;
} sm_def;

/* Parses and checks a definition. On success *out is owned (aj__sm_free); on error
 * AJ_EINVAL with aj_errmsg() naming the offending path, e.g.
 * "statemachine input: states.build.on.all_success: unknown state 'tst'". */
int aj__sm_parse(const void *input, size_t len, sm_def **out);
void aj__sm_free(sm_def *d);
/* aj__sm_parse without keeping the result: what aj_wf_start checks before storing anything. */
int aj__sm_validate(const void *input, size_t len);

/* The state that follows state `s` given each job's outcome (outcome[i] for jobs[i]:
 * SM_COMPLETED or SM_DEAD). *rule (may be NULL) receives the rule that decided: "outcome",
 * "all_success", "any_failure", "success_rate", "success_rate_else" or "otherwise". A parsed
 * definition always decides (the validator rejects a state whose rules leave an outcome open),
 * so the result is a valid state index. */
size_t aj__sm_next(const sm_def *d, size_t s, const int *outcome, const char **rule);

#endif
