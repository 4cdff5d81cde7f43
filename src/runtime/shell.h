/*
 * shell.h — runs the program of one `shell` job: argv executed directly (never through a shell
 * string), in its own process group, with its output captured and its whole group killed on
 * timeout, on request, or when the worker process dies.
 *
 * Thread-safety: aj__shell_run() may be called from any number of threads at once; each call owns
 * its own processes and descriptors. It never waits on a child it did not start and never
 * installs a signal handler in the calling process.
 */
#ifndef AJ_RUNTIME_SHELL_H
#define AJ_RUNTIME_SHELL_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Bytes of output kept: only the last AJ__SHELL_OUTPUT_MAX bytes of stdout+stderr survive. */
#define AJ__SHELL_OUTPUT_MAX ((size_t)64 << 10)
/* How often deadline and should_stop are checked while the program runs, in milliseconds. */
#define AJ__SHELL_POLL_MS 20
/* Grace between SIGTERM and SIGKILL when the group is killed, in milliseconds. */
#define AJ__SHELL_KILL_GRACE_MS 1000
/* Exit codes reported, as a shell would, when the program could not be started. */
#define AJ__SHELL_EXIT_NOTFOUND 127 /* program not found, or cwd missing */
#define AJ__SHELL_EXIT_NOEXEC 126   /* found but could not be executed */
/* The descriptor a program writes progress lines to when its job has a progress callback; its
 * number is also given in $AJ_PROGRESS_FD. */
#define AJ__SHELL_PROGRESS_FD 3

/* The variable naming the store (the `aj` command's AJ_DB): a program that has it can open the
 * store and change any job, so it is withheld unless named in a policy's `pass`. */
#define AJ__SHELL_STORE_VAR "AJ_DB"

/* What a program gets of the worker process's environment (aj_shell_env_set()). */
typedef struct aj__shell_env {
    int clear;     /* 1: only the variables named in pass; 0: all but AJ__SHELL_STORE_VAR */
    char **pass;   /* names passed through (owned); AJ__SHELL_STORE_VAR only this way */
    size_t n_pass; /* at most AJ_SHELL_PASS_ENV_MAX */
} aj__shell_env;

/* Frees the names of a policy and resets it to the default. */
void aj__shell_env_free(aj__shell_env *env);

typedef struct aj__shell_job {
    uint64_t job_id;
    uint32_t attempt; /* 1 for the first run */
    const char *queue;
    const void *payload; /* {"argv":[...], "env":{...}?, "cwd":"..."?, "stdin":"..."?} */
    size_t payload_len;
    const char *const *extra_env; /* NULL-terminated "K=V" list added last; may be NULL */
    const aj__shell_env *env;     /* what of the worker's environment; NULL: the default */
    int64_t deadline_mono_us;     /* kill the group at this aj__mono_us() time; 0: none */
    int (*should_stop)(void *ud); /* polled every AJ__SHELL_POLL_MS; nonzero: kill; may be NULL */
    void *stop_ud;
    /* Receives each line the program writes to AJ__SHELL_PROGRESS_FD, without its newline, on
     * the calling thread while the program runs (a last line without a newline too). A line
     * over AJ_PROGRESS_LINE_MAX bytes arrives cut to AJ_PROGRESS_LINE_MAX + 1 bytes, so that it
     * reads as too long. NULL: the program gets no progress descriptor and no AJ_PROGRESS_FD. */
    void (*on_progress)(void *ud, const char *line, size_t len);
    void *progress_ud;
} aj__shell_job;

typedef struct aj__shell_result {
    int exit_code; /* the program's exit status; -1 when killed by a signal */
    int signal;    /* 0 unless killed by a signal */
    int timed_out; /* killed because deadline_mono_us passed */
    int stopped;   /* killed because should_stop returned nonzero */
    aj_buf json;   /* {"exit_code":N,"signal":S,"output":"..."}; owned, free with aj__buf_free() */
} aj__shell_result;

/*
 * Runs the job's program and waits for it; *out is written only when 0 is returned.
 *
 * Returns 0 when the program's fate is known, whatever it was: an exit status, a signal, a kill.
 * A program that cannot be started is reported the way a shell reports it, not as an error:
 * exit code AJ__SHELL_EXIT_NOTFOUND (not found; or `cwd` cannot be entered) or
 * AJ__SHELL_EXIT_NOEXEC (found but not executable), with the reason in the output.
 *
 * Errors: AJ_EINVAL for a bad payload (aj_errmsg() names the problem); AJ_EIO when the machinery
 * failed (no pipe, no fork, the supervisor process died); AJ_ENOMEM.
 *
 * The environment is the calling process's as filtered by job->env (by default all of it but
 * AJ_DB), then the payload's "env" (overriding), then AJ_JOB_ID, AJ_ATTEMPT, AJ_QUEUE,
 * AJ_PROGRESS_FD (with on_progress only), then extra_env (entries without '=' are ignored). The
 * process
 * environment is read during the call: like any reader of environ, it must not race setenv().
 * The program's PATH (from the final environment, as `env PATH=... prog` would) is searched for
 * argv[0] as execvp() does, including running a file without #! by /bin/sh. stdin is the
 * payload's "stdin" string (from an unlinked in-memory file), else /dev/null;
 * stdout and stderr share one pipe; with on_progress, descriptor AJ__SHELL_PROGRESS_FD is the
 * write end of a second pipe, read alongside the output. The program starts with default signal
 * dispositions and an empty signal mask.
 *
 * Killing: the program leads no group itself; a supervisor process does (see shell.c). On the
 * deadline, on should_stop, or when the calling process dies (even by SIGKILL), the whole group
 * gets SIGTERM, then SIGKILL after AJ__SHELL_KILL_GRACE_MS. When the program exits, whatever it
 * left running in its group is killed at once.
 */
int aj__shell_run(const aj__shell_job *job, aj__shell_result *out);

#endif
