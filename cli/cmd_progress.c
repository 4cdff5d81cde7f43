/*
 * cmd_progress.c — `aj job progress ID [--follow]`: a job's progress as its handler reported it
 * (aj_job_progress), once, or as it changes until the job is final.
 *
 * --follow polls: it waits for the job to finish (aj_job_wait) at most FOLLOW_POLL_MS at a time
 * and prints the progress again whenever it differs from what was printed last — one line per
 * change, JSON Lines with --json — so the last line is always the final state. Workers write
 * progress about every AJ_PROGRESS_FLUSH_MS, so a faster poll would only see the same thing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* How long --follow waits between looks at the job, in milliseconds. */
#define FOLLOW_POLL_MS 250
/* Bytes of a percentage printed as text ("100", "45.25"). */
#define PERCENT_MAX 16

static const char progress_help[] =
    "Usage: aj job progress ID [--follow]\n"
    "\n"
    "Prints a job's progress as its handler reported it: the percentage (the highest\n"
    "reported), the latest message and step, the completed steps in order, the counters, and\n"
    "how many malformed progress lines were ignored. A shell job reports by writing lines to\n"
    "the descriptor named in $AJ_PROGRESS_FD:\n"
    "  progress PCT [MESSAGE]   PCT from 0 to 100, at most two decimals\n"
    "  step NAME                the job is now at step NAME (the step before is completed)\n"
    "  count NAME N             add N to counter NAME\n"
    "e.g.  echo \"progress 40 loading rows\" >&\"$AJ_PROGRESS_FD\"\n"
    "\n"
    "With --json, an object: id, state, percent (null before any), message, step, steps_done,\n"
    "counters {NAME: N}, malformed_lines, updated_at.\n"
    "\n"
    "Flags:\n"
    "  --follow     print the progress again each time it changes, one line each (one JSON\n"
    "               object per line with --json), until the job is completed, dead or\n"
    "               cancelled\n"
    "\n"
    "Exit codes: 0 shown (with --follow: the job completed), 1 store error, 2 bad input, 3 no\n"
    "such job, 4 with --follow: the job ended dead or cancelled.\n"
    "\n"
    "Example:\n"
    "  aj job progress 42 --follow\n";

static const char *percent_text(double pct, char *buf, size_t size) {
    snprintf(buf, size, "%.2f", pct);
    char *dot = strchr(buf, '.');
    if (dot != NULL) {
        char *end = buf + strlen(buf);
        while (end > dot && (end[-1] == '0' || end[-1] == '.')) {
            *--end = '\0';
            if (end == dot) {
                break;
            }
        }
    }
    return buf;
}

static json_t *progress_json(const aj_job *job, const aj_progress *p) {
    json_t *done = json_array();
    for (size_t i = 0; i < p->n_steps_done && done != NULL; i++) {
        json_array_append_new(done, out_str_json(p->steps_done[i]));
    }
    json_t *counters = json_object();
    for (size_t i = 0; i < p->n_counters && counters != NULL; i++) {
        json_object_set_new(counters, p->counters[i].name,
                            json_integer((json_int_t)p->counters[i].value));
    }
    return json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:o}", "id", (json_int_t)job->id,
                     "state", aj_state_name(job->state), "percent",
                     p->has_percent ? json_real(p->percent) : json_null(), "message",
                     out_str_json(p->message), "step", out_str_json(p->step), "steps_done", done,
                     "counters", counters, "malformed_lines", (json_int_t)p->malformed,
                     "updated_at", out_time_json(p->updated_ms));
}

/* `key: value` lines, as `aj job show` prints. */
static void progress_block(const aj_job *job, const aj_progress *p) {
    char pct[PERCENT_MAX], t[OUT_TIME_MAX];
    printf("%-17s %" PRIu64 "\n", "id:", job->id);
    printf("%-17s %s\n", "state:", aj_state_name(job->state));
    printf("%-17s %s%s\n",
           "percent:", p->has_percent ? percent_text(p->percent, pct, sizeof pct) : "-",
           p->has_percent ? "%" : "");
    printf("%-17s %s\n", "message:", p->message != NULL ? p->message : "-");
    printf("%-17s %s\n", "step:", p->step != NULL ? p->step : "-");
    printf("%-17s", "steps done:");
    for (size_t i = 0; i < p->n_steps_done; i++) {
        printf("%s%s", i == 0 ? " " : ", ", p->steps_done[i]);
    }
    printf("%s\n", p->n_steps_done == 0 ? " -" : "");
    printf("%-17s", "counters:");
    for (size_t i = 0; i < p->n_counters; i++) {
        printf(" %s=%" PRIu64, p->counters[i].name, p->counters[i].value);
    }
    printf("%s\n", p->n_counters == 0 ? " -" : "");
    printf("%-17s %" PRIu64 "\n", "malformed lines:", p->malformed);
    printf("%-17s %s\n", "updated at:", out_time(p->updated_ms, t, sizeof t));
}

/* One line for --follow: STATE PCT% [step S] [done N] [NAME=V...] [- MESSAGE]. Malloc'd. */
static char *progress_line(const aj_job *job, const aj_progress *p) {
    char pct[PERCENT_MAX];
    size_t cap = 256 + (p->message ? strlen(p->message) : 0) + (p->step ? strlen(p->step) : 0);
    for (size_t i = 0; i < p->n_counters; i++) {
        cap += strlen(p->counters[i].name) + CLI_NUM_MAX + 2;
    }
    char *s = malloc(cap);
    if (s == NULL) {
        return NULL;
    }
    size_t n = (size_t)snprintf(s, cap, "%s %s%s", aj_state_name(job->state),
                                p->has_percent ? percent_text(p->percent, pct, sizeof pct) : "-",
                                p->has_percent ? "%" : "");
    if (p->step != NULL) {
        n += (size_t)snprintf(s + n, cap - n, " step %s", p->step);
    }
    if (p->n_steps_done > 0) {
        n += (size_t)snprintf(s + n, cap - n, " (%zu done)", p->n_steps_done);
    }
    for (size_t i = 0; i < p->n_counters; i++) {
        n += (size_t)snprintf(s + n, cap - n, " %s=%" PRIu64, p->counters[i].name,
                              p->counters[i].value);
    }
    if (p->message != NULL) {
        snprintf(s + n, cap - n, " - %s", p->message);
    }
    return s;
}

/* The text printed for one look at the job (malloc'd; NULL when out of memory). */
static char *render(const cli *c, const aj_job *job, const aj_progress *p) {
    if (!c->json) {
        return progress_line(job, p);
    }
    json_t *o = progress_json(job, p);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    return text;
}

/* Reads the job and its progress. Prints the problem and returns the exit code on failure. */
static int look(cli *c, uint64_t id, aj_job **job, aj_progress **p) {
    int arc = aj_job_get(c->engine, id, job);
    if (arc == 0) {
        arc = aj_job_progress(c->engine, id, p);
        if (arc != 0) {
            aj_job_free(*job);
            *job = NULL;
        }
    }
    return arc != 0 ? cli_job_error(arc, id, "read the progress of") : CLI_EXIT_OK;
}

static int follow(cli *c, uint64_t id) {
    char *last = NULL;
    int rc = CLI_EXIT_OK;
    for (;;) {
        aj_job *job = NULL;
        aj_progress *p = NULL;
        rc = look(c, id, &job, &p);
        if (rc != 0) {
            break;
        }
        char *text = render(c, job, p);
        if (text == NULL) {
            rc = cli_error(CLI_EXIT_ERROR, "out of memory");
        } else if (last == NULL || strcmp(text, last) != 0) {
            printf("%s\n", text);
            fflush(stdout);
        }
        free(last);
        last = text;
        int final = aj_state_is_final(job->state);
        if (rc == 0 && final) {
            rc = cli_job_outcome(job);
        }
        aj_progress_free(p);
        aj_job_free(job);
        if (rc != 0 || final) {
            break;
        }
        aj_job_state st;
        int arc = aj_job_wait(c->engine, id, FOLLOW_POLL_MS, &st);
        if (arc != 0 && arc != AJ_ETIMEDOUT) {
            rc = cli_job_error(arc, id, "wait for");
            break;
        }
    }
    free(last);
    return rc;
}

int cmd_job_progress(cli *c, int argc, char **argv) {
    int want_follow = 0;
    const arg_flag flags[] = {{"--follow", NULL, &want_follow}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj job progress", progress_help, flags, "ID", 1, 1, 0};
    uint64_t id = 0;
    int rc = args_parse_id(c, &spec, argc, argv, &id);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    if (want_follow) {
        return follow(c, id);
    }
    aj_job *job = NULL;
    aj_progress *p = NULL;
    rc = look(c, id, &job, &p);
    if (rc == 0 && c->json) {
        rc = out_json(progress_json(job, p));
    } else if (rc == 0) {
        progress_block(job, p);
    }
    aj_progress_free(p);
    aj_job_free(job);
    return rc;
}
