/*
 * cmd_queue.c — `aj queue ls|pause|resume|limit`: queue controls (aj.h, "Queue controls";
 * docs/ROUTING.md). Controls are stored, so they apply to every worker on the store and survive
 * restarts. Every input is checked before the store is opened: bad input exits 2 and changes
 * nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"

static const char ls_help[] =
    "Usage: aj queue ls\n"
    "\n"
    "Lists every queue (submitted to, holding jobs, or with controls) with its jobs by state,\n"
    "whether it is paused, its limits, and the leases counted against its concurrency limit.\n"
    "Counting reads every job record. Internal queues (names starting with `aj.`, such as\n"
    "aj.wf/saga) are left out while they hold no jobs in any state and have no controls.\n"
    "\n"
    "With --json, an array of objects:\n"
    "  {\"queue\":Q, "
    "\"jobs\":{\"scheduled\":N,\"ready\":N,\"running\":N,\"completed\":N,\"dead\":N,\n"
    "   \"cancelled\":N}, \"paused\":BOOL, \"concurrency\":N|null,\n"
    "   \"rate\":{\"count\":N,\"window\":DUR}|null, \"leases_counted\":N}\n"
    "\n"
    "Exit codes: 0 listed, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj queue ls --json\n";

static const char pause_help[] =
    "Usage: aj queue pause QUEUE\n"
    "\n"
    "Pauses a queue: no worker claims its jobs until 'aj queue resume'. Its jobs stay ready,\n"
    "submits still work, and jobs already running finish. A queue with no jobs yet may be\n"
    "paused. Pausing a paused queue changes nothing. 'aj worker --drain' does not wait for\n"
    "the jobs of a paused queue.\n"
    "\n"
    "Prints \"queue QUEUE paused\" ({\"queue\":Q,\"paused\":true} with --json).\n"
    "\n"
    "Exit codes: 0 done, 1 store error, 2 bad input (a bad queue name).\n"
    "\n"
    "Example:\n"
    "  aj queue pause mail\n";

static const char resume_help[] =
    "Usage: aj queue resume QUEUE\n"
    "\n"
    "Resumes a paused queue: workers claim its ready jobs again. Resuming a queue that is not\n"
    "paused changes nothing.\n"
    "\n"
    "Prints \"queue QUEUE resumed\" ({\"queue\":Q,\"paused\":false} with --json).\n"
    "\n"
    "Exit codes: 0 done, 1 store error, 2 bad input (a bad queue name).\n"
    "\n"
    "Example:\n"
    "  aj queue resume mail\n";

static const char limit_help[] =
    "Usage: aj queue limit QUEUE [--concurrency N] [--rate N/DUR]\n"
    "\n"
    "Sets the limits of a queue, enforced in every claim by every worker on the store:\n"
    "  --concurrency N   at most N of its jobs hold a lease at once, across all processes\n"
    "                    (1..100000; 0 or none removes the limit). Running jobs count at once.\n"
    "                    Workers take jobs of a limited queue only for idle threads.\n"
    "  --rate N/DUR      at most N claims in any window of DUR (N 1..1000, DUR 1ms..1d), e.g.\n"
    "                    10/1s, 100/1m; 0 or none removes the limit\n"
    "At least one flag is needed; a limit not given is kept.\n"
    "\n"
    "Prints the limits set ({\"queue\":Q,\"concurrency\":N|null,\"rate\":{...}|null} with --json;\n"
    "a flag not given is left out).\n"
    "\n"
    "Exit codes: 0 done, 1 store error, 2 bad input.\n"
    "\n"
    "Examples:\n"
    "  aj queue limit reports --concurrency 2\n"
    "  aj queue limit mail --rate 100/1m\n"
    "  aj queue limit mail --concurrency none --rate none\n";

/* The job states in the order they are printed. */
static const aj_job_state queue_states[] = {AJ_STATE_SCHEDULED, AJ_STATE_READY, AJ_STATE_RUNNING,
                                            AJ_STATE_COMPLETED, AJ_STATE_DEAD,  AJ_STATE_CANCELLED};
#define QUEUE_N_STATES (sizeof queue_states / sizeof queue_states[0])

static json_t *rate_json(uint32_t n, int64_t window_ms) {
    if (n == 0) {
        return json_null();
    }
    char w[OUT_SPEC_MAX];
    aj_duration_format(window_ms, w, sizeof w);
    return json_pack("{s:I, s:s}", "count", (json_int_t)n, "window", w);
}

static json_t *concurrency_json(uint32_t n) {
    return n == 0 ? json_null() : json_integer((json_int_t)n);
}

static json_t *queue_json(const aj_queue_info *q) {
    json_t *jobs = json_object();
    for (size_t i = 0; i < QUEUE_N_STATES && jobs != NULL; i++) {
        json_object_set_new(jobs, aj_state_name(queue_states[i]),
                            json_integer((json_int_t)q->jobs[queue_states[i]]));
    }
    return json_pack("{s:o, s:o, s:b, s:o, s:o, s:I}", "queue", out_str_json(q->name), "jobs", jobs,
                     "paused", q->paused, "concurrency", concurrency_json(q->concurrency), "rate",
                     rate_json(q->rate_n, q->rate_window_ms), "leases_counted",
                     (json_int_t)q->leases_counted);
}

/* An internal queue (name starting with "aj.", e.g. aj.wf/saga, registered by any worker) that
 * holds no jobs in any state and has no controls: left out of the listing. */
static int queue_hidden(const aj_queue_info *q) {
    if (strncmp(q->name, "aj.", 3) != 0 || q->paused || q->concurrency > 0 || q->rate_n > 0) {
        return 0;
    }
    for (size_t i = 0; i < AJ_STATE_COUNT; i++) {
        if (q->jobs[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void print_table(const aj_queue_info *v, size_t n) {
    int w = 5;
    for (size_t i = 0; i < n; i++) {
        if (queue_hidden(&v[i])) {
            continue;
        }
        int len = (int)strlen(v[i].name);
        w = len > w ? len : w;
    }
    printf("%-*s %9s %7s %7s %9s %6s %9s %-6s %-11s %s\n", w, "QUEUE", "SCHEDULED", "READY",
           "RUNNING", "COMPLETED", "DEAD", "CANCELLED", "PAUSED", "CONCURRENCY", "RATE");
    for (size_t i = 0; i < n; i++) {
        const aj_queue_info *q = &v[i];
        char conc[32] = "-", rate[OUT_SPEC_MAX] = "-";
        if (queue_hidden(q)) {
            continue;
        }
        if (q->concurrency > 0) {
            snprintf(conc, sizeof conc, "%" PRIu32 "/%" PRIu32, q->leases_counted, q->concurrency);
        }
        if (q->rate_n > 0) {
            char d[64];
            aj_duration_format(q->rate_window_ms, d, sizeof d);
            snprintf(rate, sizeof rate, "%" PRIu32 "/%s", q->rate_n, d);
        }
        printf("%-*s %9" PRIu64 " %7" PRIu64 " %7" PRIu64 " %9" PRIu64 " %6" PRIu64 " %9" PRIu64
               " %-6s %-11s %s\n",
               w, q->name, q->jobs[AJ_STATE_SCHEDULED], q->jobs[AJ_STATE_READY],
               q->jobs[AJ_STATE_RUNNING], q->jobs[AJ_STATE_COMPLETED], q->jobs[AJ_STATE_DEAD],
               q->jobs[AJ_STATE_CANCELLED], q->paused ? "yes" : "no", conc, rate);
    }
}

int cmd_queue_ls(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj queue ls", ls_help, NULL, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    aj_queue_info *v = NULL;
    size_t n = 0;
    int arc = aj_queue_list(c->engine, &v, &n);
    if (arc != 0) {
        return cli_fail(arc, "cannot list queues");
    }
    if (c->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n && a != NULL; i++) {
            if (queue_hidden(&v[i])) {
                continue;
            }
            if (json_array_append_new(a, queue_json(&v[i])) != 0) {
                json_decref(a);
                a = NULL;
            }
        }
        rc = out_json(a);
    } else {
        print_table(v, n);
    }
    aj_queue_list_free(v, n);
    return rc;
}

/* Parses `aj queue CMD QUEUE` with `flags`; checks the queue name. */
static int queue_command(cli *c, const char *cmd, const char *help, const arg_flag *flags, int argc,
                         char **argv, arg_result *r) {
    const arg_spec spec = {cmd, help, flags, "QUEUE", 1, 1, 0};
    int rc = args_parse(c, &spec, argc, argv, r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    int arc = aj_name_check("queue", r->pos[0]);
    if (arc != 0) {
        args_free(r);
        cli_fail(arc, "%s", cmd);
        return CLI_EXIT_USAGE;
    }
    return ARGS_PROCEED;
}

static int pause_or_resume(cli *c, int argc, char **argv, int pause) {
    const char *cmd = pause ? "aj queue pause" : "aj queue resume";
    arg_result r;
    int rc = queue_command(c, cmd, pause ? pause_help : resume_help, NULL, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *q = r.pos[0];
    rc = cli_open(c, NULL);
    if (rc == 0) {
        int arc = pause ? aj_queue_pause(c->engine, q) : aj_queue_resume(c->engine, q);
        if (arc != 0) {
            rc = cli_fail(arc, "cannot %s queue '%s'", pause ? "pause" : "resume", q);
        } else if (c->json) {
            rc = out_json(json_pack("{s:o, s:b}", "queue", out_str_json(q), "paused", pause));
        } else {
            printf("queue %s %s\n", q, pause ? "paused" : "resumed");
        }
    }
    args_free(&r);
    return rc;
}

int cmd_queue_pause(cli *c, int argc, char **argv) {
    return pause_or_resume(c, argc, argv, 1);
}

int cmd_queue_resume(cli *c, int argc, char **argv) {
    return pause_or_resume(c, argc, argv, 0);
}

int cmd_queue_limit(cli *c, int argc, char **argv) {
    const char *conc = NULL, *rate = NULL;
    const arg_flag flags[] = {
        {"--concurrency", &conc, NULL}, {"--rate", &rate, NULL}, {NULL, NULL, NULL}};
    arg_result r;
    int rc = queue_command(c, "aj queue limit", limit_help, flags, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *q = r.pos[0];
    int64_t concurrency = -1, rate_n = -1, window_ms = 0;
    if (conc == NULL && rate == NULL) {
        rc = args_usage_error("aj queue limit", "give --concurrency, --rate or both");
    }
    if (rc == ARGS_PROCEED && conc != NULL) {
        uint64_t n = 0;
        if (strcmp(conc, "none") == 0) {
            concurrency = 0;
        } else if (cli_parse_uint("--concurrency", conc, 0, AJ_QUEUE_CONCURRENCY_MAX, &n) != 0) {
            rc = CLI_EXIT_USAGE;
        } else {
            concurrency = (int64_t)n;
        }
    }
    if (rc == ARGS_PROCEED && rate != NULL) {
        uint32_t n = 0;
        if (aj_rate_parse(rate, &n, &window_ms) != 0) {
            rc = cli_bad_value("--rate", rate, "N/DURATION like 10/1s");
        } else {
            rate_n = n;
        }
    }
    if (rc == ARGS_PROCEED) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0) {
        int arc = aj_queue_limit(c->engine, q, concurrency, rate_n, window_ms);
        if (arc != 0) {
            rc = cli_fail(arc, "cannot limit queue '%s'", q);
        } else if (c->json) {
            json_t *o = json_pack("{s:o}", "queue", out_str_json(q));
            if (o != NULL && concurrency >= 0) {
                json_object_set_new(o, "concurrency", concurrency_json((uint32_t)concurrency));
            }
            if (o != NULL && rate_n >= 0) {
                json_object_set_new(o, "rate", rate_json((uint32_t)rate_n, window_ms));
            }
            rc = out_json(o);
        } else {
            printf("queue %s:", q);
            if (concurrency > 0) {
                printf(" concurrency %" PRId64, concurrency);
            } else if (concurrency == 0) {
                printf(" no concurrency limit");
            }
            if (rate_n > 0) {
                char d[64];
                aj_duration_format(window_ms, d, sizeof d);
                printf("%s rate %" PRId64 "/%s", concurrency >= 0 ? "," : "", rate_n, d);
            } else if (rate_n == 0) {
                printf("%s no rate limit", concurrency >= 0 ? "," : "");
            }
            printf("\n");
        }
    }
    args_free(&r);
    return rc;
}
