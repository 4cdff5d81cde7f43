/*
 * cmd_dlq.c — `aj dlq ls|show|redrive|purge|export`: the dead-letter queue.
 *
 * Dead jobs are ordinary jobs in state `dead`, so every command here is aj_job_list() with
 * state AJ_STATE_DEAD plus the dead-letter filters, and aj_dlq_redrive()/aj_dlq_purge() per id.
 * Redrive and purge by filter (--all) walk the matches page by page; a job another process moved
 * meanwhile is skipped, not an error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "dlq.h"
#include "out.h"

/* Dead jobs `aj dlq ls` prints when --limit is not given: all of them. A silent cut would make
 * a list look complete when it is not; lists stream page by page, so length costs no memory. */
#define DLQ_LS_DEFAULT_LIMIT 0

static const char ls_help[] =
    "Usage: aj dlq ls [filters] [--limit N]\n"
    "\n"
    "Lists dead jobs in id order: a table (id, queue, type, reason,\n"
    "attempts, time of death, last error), or with --json a JSON array\n"
    "of job objects (the fields of `aj job show --json`).\n"
    "\n"
    "Flags:\n" DLQ_FILTER_HELP
    "  --limit N          at most N jobs (default: all of them; 0 means all too)\n"
    "\n"
    "Exit codes: 0 listed, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj dlq ls --reason timeout --older-than 1h\n";

static const char show_help[] =
    "Usage: aj dlq show ID\n"
    "\n"
    "Prints one dead job, as `aj job show` does (with --json, the same object): its reason,\n"
    "last error, attempts and times.\n"
    "\n"
    "Exit codes: 0 shown, 1 store error, 2 bad ID, 3 no such job, or the job is not dead.\n"
    "\n"
    "Example:\n"
    "  aj dlq show 42\n";

static const char redrive_help[] =
    "Usage: aj dlq redrive ID...\n"
    "       aj dlq redrive --all [filters]\n"
    "\n"
    "Makes dead jobs ready again. Each keeps its id and payload; its attempts start again from\n"
    "zero. Prints how many were redriven ({\"count\":N,\"ids\":[...]} with --json).\n"
    "\n"
    "Flags:\n"
    "  --all              every dead job matching the filters (required to redrive by "
    "filter)\n" DLQ_FILTER_HELP "\n"
    "Exit codes: 0 all redriven, 1 store error, 2 bad input, 3 an ID does not exist, 4 an ID\n"
    "is not dead, or it died because a job it depends on (policy cascade) is still dead,\n"
    "cancelled or deleted (redrive that job first). With several IDs the others are still\n"
    "redriven, each failure is printed and the count is not. With --all such dependents are\n"
    "skipped, each reported on stderr, and the rest are redriven (exit 0). 5 redriven, but the\n"
    "output failed (stderr names the jobs).\n"
    "\n"
    "Example:\n"
    "  aj dlq redrive --all --reason timeout --queue mail\n";

static const char purge_help[] =
    "Usage: aj dlq purge ID...\n"
    "       aj dlq purge --all [filters]\n"
    "\n"
    "Deletes dead jobs for good. Prints how many were deleted ({\"count\":N,\"ids\":[...]}\n"
    "with --json).\n"
    "\n"
    "Flags:\n"
    "  --all              every dead job matching the filters (required to purge by "
    "filter)\n" DLQ_FILTER_HELP "\n"
    "Exit codes: 0 all purged, 1 store error, 2 bad input, 3 an ID does not exist, 4 an ID is\n"
    "not dead. With several IDs the others are still purged, each failure is printed and the\n"
    "count is not. 5 purged, but the output failed (stderr names the jobs).\n"
    "\n"
    "Example:\n"
    "  aj dlq purge --all --older-than 30d\n";

static const char export_help[] = "Usage: aj dlq export [filters]\n"
                                  "\n"
                                  "Prints every matching dead job as a JSON array of job objects\n"
                                  "(the fields of `aj job show --json`), one job per line, with\n"
                                  "or without --json.\n"
                                  "\n"
                                  "Flags:\n" DLQ_FILTER_HELP "\n"
                                  "Exit codes: 0 exported, 1 store error, 2 bad input.\n"
                                  "\n"
                                  "Example:\n"
                                  "  aj dlq export --queue mail > dead-mail.json\n";

static int filters_given(const dlq_filter_args *a) {
    return a->queue != NULL || a->type != NULL || a->reason != NULL || a->error != NULL ||
           a->older_than != NULL;
}

int dlq_filter(const dlq_filter_args *a, aj_job_filter *f) {
    memset(f, 0, sizeof *f);
    f->state = AJ_STATE_DEAD;
    int rc = cli_check_queue_type(a->queue, a->type);
    if (rc != 0) {
        return rc;
    }
    if (a->reason != NULL &&
        (aj_dead_reason_parse(a->reason, &f->dead_reason) != 0 || f->dead_reason == AJ_DEAD_NONE)) {
        return cli_error(CLI_EXIT_USAGE,
                         "--reason '%s' is not max_attempts, permanent_failure, timeout, "
                         "lease_expired or dependency_failed",
                         a->reason);
    }
    if (a->older_than != NULL &&
        cli_parse_duration("--older-than", a->older_than, &f->older_than_ms) != 0) {
        return CLI_EXIT_USAGE;
    }
    f->queue = a->queue;
    f->type = a->type;
    f->error_contains = a->error;
    return CLI_EXIT_OK;
}

int dlq_parse_filter(cli *c, const char *cmd, const char *help, int argc, char **argv,
                     aj_job_filter *f) {
    dlq_filter_args a;
    memset(&a, 0, sizeof a);
    const arg_flag flags[] = {DLQ_FILTER_FLAGS(a), {NULL, NULL, NULL}};
    const arg_spec spec = {cmd, help, flags, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc == ARGS_PROCEED && (rc = dlq_filter(&a, f)) == 0) {
        rc = ARGS_PROCEED;
    }
    return rc;
}

int cmd_dlq_ls(cli *c, int argc, char **argv) {
    dlq_filter_args a;
    memset(&a, 0, sizeof a);
    const char *limit = NULL;
    const arg_flag flags[] = {DLQ_FILTER_FLAGS(a), {"--limit", &limit, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj dlq ls", ls_help, flags, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_job_filter f;
    uint64_t max = DLQ_LS_DEFAULT_LIMIT;
    rc = dlq_filter(&a, &f);
    if (rc == 0 && limit != NULL) {
        rc = cli_parse_uint("--limit", limit, 0, SIZE_MAX, &max);
    }
    return rc != 0 ? rc : out_list_jobs(c, &f, (size_t)max, c->json, OUT_TABLE_DEAD);
}

int cmd_dlq_show(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj dlq show", show_help, NULL, "ID", 1, 1, 0};
    uint64_t id = 0;
    aj_job *job = NULL;
    int rc = args_parse_id(c, &spec, argc, argv, &id);
    if (rc != ARGS_PROCEED || (rc = cli_open_job(c, id, &job)) != 0) {
        return rc;
    }
    if (rc == 0 && job->state != AJ_STATE_DEAD) {
        rc = cli_error(CLI_EXIT_NOTFOUND,
                       "job %" PRIu64 " is not in the dead-letter queue (it is %s)", id,
                       aj_state_name(job->state));
    } else if (rc == 0 && c->json) {
        rc = out_job_print(job);
    } else if (rc == 0) {
        out_job_human(job);
    }
    aj_job_free(job);
    return rc;
}

/* What redrive and purge share: the operation and the ids it succeeded on. */
typedef struct dlq_action {
    int (*op)(aj_engine *e, uint64_t id);
    const char *verb; /* "redrive" */
    const char *done; /* "redrove": names the jobs acted on when printing the count fails */
    uint64_t *ids;
    size_t n;
    size_t cap;
    size_t skipped; /* --all: refused by a dependency (redrive), reported on stderr */
} dlq_action;

static int remember(dlq_action *act, uint64_t id) {
    if (act->n == act->cap) {
        size_t ncap = act->cap == 0 ? CLI_PAGE : act->cap * 2;
        uint64_t *nids = realloc(act->ids, ncap * sizeof *nids);
        if (nids == NULL) {
            return cli_error(CLI_EXIT_ERROR, "out of memory");
        }
        act->ids = nids;
        act->cap = ncap;
    }
    act->ids[act->n++] = id;
    return CLI_EXIT_OK;
}

/* After AJ_ESTATE from a redrive: 1 when the job is dead but refused because a dependency it
 * died of (policy cascade) is still dead, cancelled or deleted; aj_errmsg() says which. */
static int dep_refusal(void) {
    return strstr(aj_errmsg(), " it depends on ") != NULL;
}

/* A cli_visit_fn for --all: applies the operation to every dead job of the page. */
static int act_on_page(cli *c, aj_job *const *jobs, size_t n, void *ud) {
    dlq_action *act = ud;
    for (size_t i = 0; i < n; i++) {
        int rc = act->op(c->engine, jobs[i]->id);
        if (rc == AJ_ESTATE && dep_refusal()) {
            /* Skipped and reported; the rest of the batch goes on. */
            act->skipped++;
            (void)cli_error(CLI_EXIT_STATE, "skipped: %s", aj_errmsg());
            continue;
        }
        if (rc == AJ_ESTATE || rc == AJ_ENOTFOUND) {
            continue; /* moved by someone else since the page was read */
        }
        if (rc != 0) {
            return cli_job_error(rc, jobs[i]->id, act->verb);
        }
        rc = remember(act, jobs[i]->id);
        if (rc != 0) {
            return rc;
        }
    }
    return CLI_EXIT_OK;
}

/* Applies the operation to each listed id; every failure is printed, the first sets the exit. */
static int act_on_ids(cli *c, dlq_action *act, const uint64_t *ids, size_t n) {
    int result = CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        int arc = act->op(c->engine, ids[i]);
        int rc = CLI_EXIT_OK;
        if (arc == AJ_ESTATE && dep_refusal()) {
            rc = cli_error(CLI_EXIT_STATE, "%s", aj_errmsg());
        } else if (arc == AJ_ESTATE) {
            rc = cli_error(CLI_EXIT_STATE, "job %" PRIu64 " is not in the dead-letter queue",
                           ids[i]);
        } else if (arc != 0) {
            rc = cli_job_error(arc, ids[i], act->verb);
        } else {
            rc = remember(act, ids[i]);
        }
        if (rc == CLI_EXIT_ERROR && arc == 0) {
            return rc; /* out of memory */
        }
        result = result == CLI_EXIT_OK ? rc : result;
    }
    return result;
}

static int print_count(const cli *c, const dlq_action *act) {
    if (!c->json) {
        printf("%zu\n", act->n);
        return CLI_EXIT_OK;
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < act->n && ids != NULL; i++) {
        json_array_append_new(ids, json_integer((json_int_t)act->ids[i]));
    }
    return out_json(json_pack("{s:I, s:o}", "count", (json_int_t)act->n, "ids", ids));
}

/* `aj dlq redrive` and `aj dlq purge`: the same shape, another operation. */
static int dlq_act(cli *c, int argc, char **argv, const char *cmd, const char *help,
                   dlq_action *act) {
    dlq_filter_args a;
    memset(&a, 0, sizeof a);
    int all = 0;
    const arg_flag flags[] = {DLQ_FILTER_FLAGS(a), {"--all", NULL, &all}, {NULL, NULL, NULL}};
    const arg_spec spec = {cmd, help, flags, "ID", 0, 0, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_job_filter f;
    memset(&f, 0, sizeof f);
    uint64_t *ids = calloc(r.n_pos + 1, sizeof *ids);
    if (ids == NULL) {
        rc = cli_error(CLI_EXIT_ERROR, "out of memory");
    } else if (all && r.n_pos > 0) {
        rc = args_usage_error(cmd, "give IDs or --all, not both");
    } else if (!all && r.n_pos == 0) {
        rc = args_usage_error(cmd, "missing ID (or --all)");
    } else if (!all && filters_given(&a)) {
        rc = args_usage_error(cmd, "filters select jobs only with --all");
    } else {
        rc = dlq_filter(&a, &f);
    }
    for (size_t i = 0; rc == 0 && i < r.n_pos; i++) {
        rc = cli_parse_id(r.pos[i], &ids[i]);
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0 && all) {
        rc = cli_list_pages(c, &f, 0, act_on_page, act);
    } else if (rc == 0) {
        rc = act_on_ids(c, act, ids, r.n_pos);
    }
    out_committed_ids(act->done, "job", act->ids, act->n);
    if (rc == 0) {
        /* On a failure the error lines name the ids that failed; the count is for success. */
        rc = print_count(c, act);
    }
    free(ids);
    free(act->ids);
    args_free(&r);
    return rc;
}

int cmd_dlq_redrive(cli *c, int argc, char **argv) {
    dlq_action act = {aj_dlq_redrive, "redrive", "redrove", NULL, 0, 0, 0};
    return dlq_act(c, argc, argv, "aj dlq redrive", redrive_help, &act);
}

int cmd_dlq_purge(cli *c, int argc, char **argv) {
    dlq_action act = {aj_dlq_purge, "purge", "purged", NULL, 0, 0, 0};
    return dlq_act(c, argc, argv, "aj dlq purge", purge_help, &act);
}

int cmd_dlq_export(cli *c, int argc, char **argv) {
    aj_job_filter f;
    int rc = dlq_parse_filter(c, "aj dlq export", export_help, argc, argv, &f);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    return out_list_jobs(c, &f, 0, 1, OUT_TABLE_DEAD); /* always JSON: an export is for programs */
}
