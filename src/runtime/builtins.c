/*
 * builtins.c — the built-in job types `echo` and `shell`, registered by aj_register_builtins().
 *
 * Like any user's handlers, these use only the public API (aj_register, aj_ctx_*); `shell` adds
 * the runtime's process runner (shell.h) and maps what happened to the program onto the job:
 *   exit 0                 success, result = {"exit_code":0,"signal":0,"output":"..."}
 *   exit 100               permanent failure (dead-lettered at once), same result shape
 *   other exit, a signal   failure, retried while attempts remain
 *   deadline passed        failure "timed out after DURATION"
 *   told to stop           failure "stopped ..." (cancelled, lease lost, or shutting down)
 *   bad payload            permanent failure naming the problem
 *   could not start        failure, retried (no fork, no pipe: the machine may recover)
 * A program that cannot be found exits 127, as under a shell, and is retried like any other
 * failure: it may be installed by the next attempt, and max_attempts bounds the cost.
 *
 * What a shell job's program gets of the worker's environment is the engine's policy
 * (aj_shell_env_set(), kept in the engine and read by the handler through its `ud`): by default
 * everything but AJ_DB, the store's location.
 *
 * A shell job reports progress by writing lines to the descriptor named in $AJ_PROGRESS_FD
 * (`progress PCT [MESSAGE]`, `step NAME`, `count NAME N`); each line goes to
 * aj_ctx_progress_line(), which ignores and counts a malformed one: never fatal to the job.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "aj.h"
#include "runtime/engine.h"
#include "runtime/shell.h"
#include "runtime/statemachine.h"
#include "runtime/wf_exec.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* The exit status by which a shell job's program says "do not retry me". */
#define SHELL_EXIT_PERMANENT 100
/* Bytes of a failure message built here (aj_ctx_fail copies and may cut it further). */
#define BUILTIN_MSG_MAX 512

static int echo_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    int rc = aj_ctx_set_result(ctx, job->payload, job->payload_len);
    if (rc != 0) {
        return aj_ctx_fail(ctx, aj_errmsg(), 1);
    }
    return 0;
}

static int ctx_should_stop(void *ud) {
    return aj_ctx_should_stop(ud);
}

static void ctx_progress_line(void *ud, const char *line, size_t len) {
    (void)aj_ctx_progress_line(ud, line, len); /* a malformed line is counted there, no more */
}

/* The job's wall-clock deadline as a monotonic one, so that a clock step cannot stretch or cut
 * a run. 0 when there is none. */
static int64_t mono_deadline(int64_t deadline_ms) {
    if (deadline_ms <= 0 || deadline_ms == INT64_MAX) {
        return 0;
    }
    int64_t left_ms = deadline_ms - aj__wall_ms();
    /* A deadline so far ahead that it would overflow is no deadline. */
    if (left_ms > INT64_MAX / 2000) {
        return 0;
    }
    int64_t now_us = aj__mono_us();
    return left_ms <= 0 ? now_us : now_us + left_ms * 1000;
}

static int shell_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    const aj_engine *e = ud;
    int64_t deadline_ms = aj_ctx_deadline(ctx);
    aj__shell_job sj = {
        .job_id = job->id,
        .attempt = aj_ctx_attempt(ctx),
        .queue = job->queue,
        .payload = job->payload,
        .payload_len = job->payload_len,
        .extra_env = NULL,
        .env = &e->shell_env,
        .deadline_mono_us = mono_deadline(deadline_ms),
        .should_stop = ctx_should_stop,
        .stop_ud = ctx,
        .on_progress = ctx_progress_line,
        .progress_ud = ctx,
    };
    aj__shell_result res;
    int rc = aj__shell_run(&sj, &res);
    char msg[BUILTIN_MSG_MAX];
    if (rc == AJ_EINVAL) {
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        return aj_ctx_fail(ctx, msg, 1);
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s", aj_errmsg());
        return aj_ctx_fail(ctx, msg, 0);
    }
    rc = aj_ctx_set_result(ctx, res.json.p, res.json.len);
    aj__buf_free(&res.json);
    if (rc != 0) {
        snprintf(msg, sizeof msg, "could not keep the result: %s", aj_errmsg());
        return aj_ctx_fail(ctx, msg, 0);
    }
    /* The engine's own clock also stops the job at its deadline (should_stop); either way a
     * kill after the deadline is a timeout. */
    int timed_out = res.timed_out || (res.stopped && deadline_ms > 0 && deadline_ms != INT64_MAX &&
                                      aj__wall_ms() >= deadline_ms);
    if (timed_out) {
        char dur[32];
        aj_duration_format(job->timeout_ms, dur, sizeof dur);
        snprintf(msg, sizeof msg, "timed out after %s", dur);
        return aj_ctx_fail(ctx, msg, 0);
    }
    if (res.stopped) {
        return aj_ctx_fail(ctx,
                           "stopped: the job was cancelled, lost its lease or its worker is "
                           "shutting down",
                           0);
    }
    if (res.signal != 0) {
        const char *name = sigabbrev_np(res.signal);
        if (name != NULL) {
            snprintf(msg, sizeof msg, "killed by signal SIG%s", name);
        } else {
            snprintf(msg, sizeof msg, "killed by signal %d", res.signal);
        }
        return aj_ctx_fail(ctx, msg, 0);
    }
    if (res.exit_code == 0) {
        return 0;
    }
    if (res.exit_code == SHELL_EXIT_PERMANENT) {
        return aj_ctx_fail(ctx, "exit status 100 (permanent failure)", 1);
    }
    snprintf(msg, sizeof msg, "exit status %d", res.exit_code);
    return aj_ctx_fail(ctx, msg, 0);
}

int aj_register_builtins(aj_engine *e) {
    int rc = aj_register(e, "echo", echo_handler, NULL);
    if (rc == 0) {
        rc = aj_register(e, "shell", shell_handler, e);
    }
    if (rc == 0) {
        rc = aj__saga_builtin_register(e); /* the declarative saga workflow (saga_builtin.c) */
    }
    if (rc == 0) {
        rc = aj__statemachine_register(e); /* the declarative state machine (statemachine.c) */
    }
    return rc;
}

int aj_shell_env_set(aj_engine *e, int env_clear, const char *const *pass_env, size_t n_pass_env) {
    if (n_pass_env > AJ_SHELL_PASS_ENV_MAX) {
        return aj__err(AJ_ETOOBIG, "%zu variables to pass to shell jobs, over the limit of %d",
                       n_pass_env, AJ_SHELL_PASS_ENV_MAX);
    }
    for (size_t i = 0; i < n_pass_env; i++) {
        const char *name = pass_env[i];
        if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL) {
            return aj__err(AJ_EINVAL,
                           "variable name '%s' to pass to shell jobs is empty or contains '='",
                           name != NULL ? name : "(null)");
        }
    }
    aj__shell_env next = {env_clear != 0, NULL, 0};
    if (n_pass_env > 0) {
        next.pass = aj__calloc(n_pass_env, sizeof *next.pass);
        if (next.pass == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory keeping the shell jobs' environment policy");
        }
    }
    for (size_t i = 0; i < n_pass_env; i++) {
        next.pass[i] = aj__strdup(pass_env[i]);
        if (next.pass[i] == NULL) {
            aj__shell_env_free(&next);
            return aj__err(AJ_ENOMEM, "out of memory keeping the shell jobs' environment policy");
        }
        next.n_pass++;
    }
    /* Handlers read the policy without a lock, so it changes only while none can run. */
    pthread_mutex_lock(&e->mu);
    int running = e->pool != NULL;
    aj__shell_env old = e->shell_env;
    if (!running) {
        e->shell_env = next;
    }
    pthread_mutex_unlock(&e->mu);
    if (running) {
        aj__shell_env_free(&next);
        return aj__err(AJ_ESTATE, "the shell jobs' environment policy is set before workers start");
    }
    aj__shell_env_free(&old);
    return 0;
}
