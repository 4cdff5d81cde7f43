/*
 * cmd_job.c — `aj job show|wait|ls|cancel`, and the job helpers other commands share: reporting
 * a failed call about one job, the outcome of a finished job, and listing in pages.
 *
 * Lists are read in pages of CLI_PAGE jobs (aj_job_filter.after_id), so neither memory nor the
 * time a read transaction stays open grows with the store.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* Jobs `aj job ls` prints when --limit is not given: all of them. A silent cut would make a
 * list look complete when it is not; lists stream page by page, so length costs no memory. */
#define JOB_LS_DEFAULT_LIMIT 0
/* Bytes of a short message part. */
#define JOB_MSG_MAX 256

static const char show_help[] =
    "Usage: aj job show ID\n"
    "\n"
    "Prints one job as aligned `key: value` lines, or with --json as an object with id, queue,\n"
    "type, state, priority, attempts, max_attempts, backoff, timeout, lease, payload, result,\n"
    "error, dead_reason, created_at, run_at, started_at, finished_at, updated_at, dead_at,\n"
    "lease_expires_at, epoch, worker, redrives, idempotency_key and metadata. A payload, result\n"
    "or metadata that is valid JSON is embedded as that JSON (compact), otherwise as a string;\n"
    "times are RFC 3339 UTC, or null. Dependencies: `waits on:` lines (id and state) and\n"
    "`waited on by:` lines; in JSON \"after\" ([{\"id\",\"state\"}]), \"waited_by\" (ids),\n"
    "\"on_dep_failure\" and \"deps_pending\". A job waiting on dependencies is scheduled with\n"
    "run_at null (\"after its dependencies\").\n"
    "\n"
    "ID is the positive decimal id that `aj submit` printed.\n"
    "\n"
    "Exit codes: 0 shown, 1 store error, 2 bad ID, 3 no such job.\n"
    "\n"
    "Example:\n"
    "  aj job show 42 --json\n";

static const char wait_help[] =
    "Usage: aj job wait ID [--timeout DUR]\n"
    "\n"
    "Waits until the job is completed, dead or cancelled, then prints its state (with --json the\n"
    "whole job, as `aj job show --json` does). Another process runs the job: `aj worker`.\n"
    "\n"
    "Flags:\n"
    "  --timeout DUR    give up after DUR, e.g. 30s or 1h30m (default: wait forever)\n"
    "\n"
    "Exit codes: 0 completed, 1 store error, 2 bad input, 3 no such job, 4 the job ended dead\n"
    "or cancelled (the reason is printed on stderr), or is still unfinished after --timeout.\n"
    "\n"
    "Example:\n"
    "  id=$(aj submit -- make test) && aj job wait \"$id\" --timeout 10m\n";

static const char ls_help[] =
    "Usage: aj job ls [--queue Q] [--state S] [--type T] [--limit N]\n"
    "\n"
    "Lists jobs in id order: a table, or with --json a JSON array of job objects (the fields of\n"
    "`aj job show --json`).\n"
    "\n"
    "Flags:\n"
    "  --queue Q     only jobs of queue Q\n"
    "  --state S     only jobs in state S: scheduled, ready, running, completed, dead or\n"
    "                cancelled\n"
    "  --type T      only jobs of type T\n"
    "  --limit N     at most N jobs (default: all of them; 0 means all too)\n"
    "\n"
    "Exit codes: 0 listed, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj job ls --queue mail --state ready --limit 20\n";

static const char cancel_help[] =
    "Usage: aj job cancel ID\n"
    "\n"
    "Cancels a job that has not finished. A scheduled or ready job never runs; a running job's\n"
    "lease is revoked at once (a shell job's process group is killed at its next heartbeat) and\n"
    "its completion is refused. Prints nothing ({\"id\":N,\"state\":\"cancelled\"} with --json).\n"
    "\n"
    "Exit codes: 0 cancelled, 1 store error, 2 bad ID, 3 no such job, 4 the job had already\n"
    "finished (completed, dead or cancelled), 5 cancelled, but the output failed.\n"
    "\n"
    "Example:\n"
    "  aj job cancel 42\n";

int cli_job_error(int aj_rc, uint64_t id, const char *verb) {
    if (aj_rc == AJ_ENOTFOUND) {
        return cli_error(CLI_EXIT_NOTFOUND, "job %" PRIu64 " not found", id);
    }
    return cli_fail(aj_rc, "cannot %s job %" PRIu64, verb, id);
}

int cli_open_job(cli *c, uint64_t id, aj_job **job) {
    int rc = cli_open(c, NULL);
    if (rc == 0) {
        int arc = aj_job_get(c->engine, id, job);
        rc = arc != 0 ? cli_job_error(arc, id, "read") : 0;
    }
    return rc;
}

int cli_job_outcome(const aj_job *job) {
    if (job->state == AJ_STATE_COMPLETED) {
        return CLI_EXIT_OK;
    }
    char reason[JOB_MSG_MAX] = "";
    if (job->dead_reason != AJ_DEAD_NONE) {
        snprintf(reason, sizeof reason, " (%s)", aj_dead_reason_name(job->dead_reason));
    }
    const char *error = job->error != NULL ? job->error : "";
    return cli_error(CLI_EXIT_STATE, "job %" PRIu64 " ended %s%s%s%s", job->id,
                     aj_state_name(job->state), reason, error[0] != '\0' ? ": " : "", error);
}

int cli_list_pages(cli *c, const aj_job_filter *filter, size_t limit, cli_visit_fn visit,
                   void *ud) {
    aj_job_filter f = *filter;
    size_t seen = 0;
    for (;;) {
        f.limit = CLI_PAGE;
        if (limit > 0 && limit - seen < CLI_PAGE) {
            f.limit = limit - seen;
        }
        if (f.limit == 0) {
            return CLI_EXIT_OK;
        }
        aj_job **jobs = NULL;
        size_t n = 0;
        int rc = aj_job_list(c->engine, &f, &jobs, &n);
        if (rc != 0) {
            return cli_fail(rc, "cannot list jobs");
        }
        int vrc = n > 0 ? visit(c, jobs, n, ud) : CLI_EXIT_OK;
        if (n > 0) {
            f.after_id = jobs[n - 1]->id;
        }
        aj_job_list_free(jobs, n);
        seen += n;
        if (vrc != 0 || n < f.limit) {
            return vrc;
        }
    }
}

int cmd_job_show(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj job show", show_help, NULL, "ID", 1, 1, 0};
    uint64_t id = 0;
    aj_job *job = NULL;
    int rc = args_parse_id(c, &spec, argc, argv, &id);
    if (rc != ARGS_PROCEED || (rc = cli_open_job(c, id, &job)) != 0) {
        return rc;
    }
    if (rc == 0 && c->json) {
        /* The job's object, with the dependency fields spliced in before its closing brace. */
        char *text = out_job_text(job);
        char *deps = dag_job_json(c->engine, id);
        size_t tl = text ? strlen(text) : 0;
        if (text == NULL || deps == NULL || tl < 2 || strlen(deps) < 2) {
            rc = cli_error(CLI_EXIT_ERROR, "out of memory");
        } else if (printf("%.*s,%s\n", (int)(tl - 1), text, deps + 1) < 0) {
            rc = cli_error(CLI_EXIT_ERROR, "cannot write to stdout");
        }
        free(text);
        free(deps);
    } else if (rc == 0) {
        out_job_human(job);
        dag_job_lines(c->engine, id);
    }
    aj_job_free(job);
    return rc;
}

int cmd_job_wait(cli *c, int argc, char **argv) {
    const char *timeout = NULL;
    const arg_flag flags[] = {{"--timeout", &timeout, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj job wait", wait_help, flags, "ID", 1, 1, 0};
    uint64_t id = 0;
    int rc = args_parse_id(c, &spec, argc, argv, &id);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    int64_t timeout_ms = -1;
    aj_job *job = NULL;
    rc = timeout != NULL ? cli_parse_duration("--timeout", timeout, &timeout_ms) : 0;
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    int timed_out = 0;
    if (rc == 0) {
        aj_job_state state = 0;
        int arc = aj_job_wait(c->engine, id, timeout_ms, &state);
        timed_out = arc == AJ_ETIMEDOUT;
        rc = arc != 0 && !timed_out ? cli_job_error(arc, id, "wait for") : 0;
    }
    if (rc == 0) {
        int arc = aj_job_get(c->engine, id, &job);
        rc = arc != 0 ? cli_job_error(arc, id, "read") : 0;
    }
    if (rc == 0 && c->json) {
        rc = out_job_print(job);
    } else if (rc == 0) {
        printf("%s\n", aj_state_name(job->state));
    }
    if (rc == 0 && timed_out) {
        rc = cli_error(CLI_EXIT_STATE, "job %" PRIu64 " is still %s after %s", id,
                       aj_state_name(job->state), timeout);
    } else if (rc == 0) {
        rc = cli_job_outcome(job);
    }
    aj_job_free(job);
    return rc;
}

int cmd_job_ls(cli *c, int argc, char **argv) {
    const char *queue = NULL;
    const char *state = NULL;
    const char *type = NULL;
    const char *limit = NULL;
    const arg_flag flags[] = {
        {"--queue", &queue, NULL}, {"--state", &state, NULL}, {"--type", &type, NULL},
        {"--limit", &limit, NULL}, {NULL, NULL, NULL},
    };
    const arg_spec spec = {"aj job ls", ls_help, flags, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_job_filter f;
    memset(&f, 0, sizeof f);
    uint64_t max = JOB_LS_DEFAULT_LIMIT;
    if ((rc = cli_check_queue_type(queue, type)) != 0) {
        return rc;
    }
    if (state != NULL && aj_state_parse(state, &f.state) != 0) {
        return cli_error(CLI_EXIT_USAGE,
                         "--state '%s' is not scheduled, ready, running, completed, dead or "
                         "cancelled",
                         state);
    }
    if (limit != NULL && cli_parse_uint("--limit", limit, 0, SIZE_MAX, &max) != 0) {
        return CLI_EXIT_USAGE;
    }
    f.queue = queue;
    f.type = type;
    return out_list_jobs(c, &f, (size_t)max, c->json, OUT_TABLE_JOBS);
}

int cmd_job_cancel(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj job cancel", cancel_help, NULL, "ID", 1, 1, 0};
    uint64_t id = 0;
    int rc = args_parse_id(c, &spec, argc, argv, &id);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    int arc = aj_job_cancel(c->engine, id);
    if (arc == AJ_ESTATE) {
        aj_job *job = NULL;
        const char *state = "finished";
        if (aj_job_get(c->engine, id, &job) == 0 && aj_state_name(job->state) != NULL) {
            state = aj_state_name(job->state);
        }
        rc = cli_error(CLI_EXIT_STATE, "job %" PRIu64 " cannot be cancelled: it is already %s", id,
                       state);
        aj_job_free(job);
        return rc;
    }
    if (arc != 0) {
        return cli_job_error(arc, id, "cancel");
    }
    out_committed_ids("cancelled", "job", &id, 1);
    if (c->json) {
        return out_json(json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "cancelled"));
    }
    return CLI_EXIT_OK;
}
