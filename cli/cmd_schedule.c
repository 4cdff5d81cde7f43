/*
 * cmd_schedule.c — `aj schedule add|ls|show|pause|resume|trigger|backfill|rm|preview`: schedules
 * that create jobs at cron times, at fixed intervals or once (aj.h, "Schedules"). `aj worker`
 * runs the service that fires them.
 *
 * As in `aj submit`, every input is validated before the store is opened, so bad input exits 2
 * and changes nothing; the job template takes the same flags as `aj submit` and is built by the
 * same code (submit.h). Output: one line or aligned `key: value` lines for people, one JSON value
 * with --json.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"
#include "submit.h"

/* Fire times `aj schedule preview` prints when --count is not given. */
#define SCHED_PREVIEW_DEFAULT 5
/* Bytes of a table cell or a formatted spec. */
#define SCHED_CELL_MAX 320
/* Columns of `aj schedule ls`. */
#define SCHED_COLS 6

static const char add_help[] =
    "Usage: aj schedule add NAME (--cron EXPR | --every DUR | --at TIME) [--tz ZONE]\n"
    "                       [--jitter DUR] [--catch-up skip|once|all] [--catch-up-limit N]\n"
    "                       [--overlap skip|buffer|allow|cancel] [job flags]\n"
    "                       [--type TYPE --payload JSON | -- PROGRAM [ARG...]]\n"
    "\n"
    "Creates a schedule that submits a job at each fire time, and prints its next fire time\n"
    "(with --json the schedule, as `aj schedule show --json` prints it). `aj worker` fires\n"
    "schedules; any number of workers may run: each fire time creates exactly one job.\n"
    "\n"
    "When:\n"
    "  --cron EXPR            a cron expression: 5 fields (minute hour day-of-month month\n"
    "                         day-of-week), 6 (a leading second) or 7 (and a trailing year);\n"
    "                         lists 1,5  ranges 1-5  steps */15 or 5/15  names JAN..DEC,\n"
    "                         SUN..SAT; day of week 0-7 (0 and 7: Sunday); L (last day of the\n"
    "                         month), LW (its last weekday), 15W (the weekday nearest the 15th),\n"
    "                         5L (the last Friday), FRI#2 (the second Friday). When both day\n"
    "                         fields are restricted a day matching either fires. Macros:\n"
    "                         @yearly @monthly @weekly @daily @hourly, @every DUR\n"
    "  --every DUR            every DUR (at least 10ms) from the moment the schedule is added\n"
    "  --at TIME              once, at an RFC 3339 time\n"
    "  --tz ZONE              the IANA time zone of --cron (default: UTC), e.g. Europe/Berlin.\n"
    "                         A local time skipped by a daylight-saving change fires once at\n"
    "                         the end of the gap; a repeated one fires once, the first time\n"
    "  --jitter DUR           delay each fire by a random time up to DUR (at most 1d)\n"
    "  --catch-up MODE        fires missed while no worker ran (found more than 5s late):\n"
    "                         skip none of them, once (default) one job for the latest, all\n"
    "                         one job each, the latest --catch-up-limit of them\n"
    "  --catch-up-limit N     1..10000 (default: 100)\n"
    "  --overlap MODE         when the previous job of the schedule has not finished: skip\n"
    "                         (default) the fire, buffer it (one) until the previous finishes,\n"
    "                         allow it, or cancel the previous job\n"
    "\n"
    "Job flags, as for `aj submit`: --queue Q, --type T, --priority P, --timeout DUR,\n"
    "--lease DUR, --max-attempts N, --backoff SPEC, --metadata JSON, --payload JSON,\n"
    "--payload-file FILE, or `-- PROGRAM ARG...` for a shell job; and the routing flags\n"
    "(docs/ROUTING.md), applied to every job the schedule creates:\n"
    "  --require-tag T        only a worker started with tag T (aj worker --tag) may run it\n"
    "  --prefer-node N        a worker on node N (aj worker --node) gets it; workers on other\n"
    "                         nodes may take it once it has been ready for --prefer-wait\n"
    "  --prefer-wait DUR      with --prefer-node: how long others wait (default: 30s)\n"
    "  --avoid-node N         never a worker on node N\n"
    "Each job gets metadata \"schedule\" (NAME) and \"scheduled_at\" (its nominal fire time,\n"
    "RFC 3339 UTC, without jitter); a shell job also gets it in the environment variable\n"
    "AJ_SCHEDULED_AT.\n"
    "\n"
    "Not accepted (exit 2), because a template is used for every fire: --after and\n"
    "--on-dep-failure (they name specific job ids, which every later fire would wait on\n"
    "again), --delay and job times (the schedule decides when jobs run),\n"
    "--idempotency-key (every fire would reuse it, so only the first would create a job),\n"
    "--payload-lines (one template has one payload) and --wait (add returns at once).\n"
    "\n"
    "NAME follows the rule for queue names (see 'aj --help').\n"
    "\n"
    "Exit codes: 0 added, 1 store error, 2 bad input (nothing added), 4 the name is taken,\n"
    "5 added, but the output failed.\n"
    "\n"
    "Examples:\n"
    "  aj schedule add nightly --cron '30 2 * * *' --tz Europe/Berlin -- /usr/local/bin/backup\n"
    "  aj schedule add poll --every 30s --overlap skip --type echo --payload '{\"x\":1}'\n"
    "  aj schedule add train --every 1h --require-tag gpu --prefer-node gpu-1 -- ./train.sh\n";

static const char ls_help[] =
    "Usage: aj schedule ls\n"
    "\n"
    "Lists every schedule in name order: a table of name, state (active, paused or done),\n"
    "next fire time, when, zone and jobs created; with --json an array of the objects\n"
    "`aj schedule show --json` prints.\n"
    "\n"
    "Exit codes: 0 listed, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj schedule ls --json\n";

static const char show_help[] =
    "Usage: aj schedule show NAME\n"
    "\n"
    "Prints one schedule as aligned `key: value` lines, or with --json as an object with name,\n"
    "kind (cron, every or at), cron, every, at, tz, jitter, catch_up, catch_up_limit, overlap,\n"
    "state (active, paused or done), next_fire, next_due (next_fire plus its jitter),\n"
    "last_fire, last_job_id, buffered, jobs_created, fires_skipped, created_at, updated_at and\n"
    "job (queue, type, payload, priority, timeout, lease, max_attempts, backoff, metadata,\n"
    "routing). routing is null, or an object with require_tag, prefer_node, prefer_wait and\n"
    "avoid_node (each null when not given), as in `aj job show --json`.\n"
    "Times are RFC 3339 UTC, or null.\n"
    "\n"
    "Exit codes: 0 shown, 1 store error, 2 bad NAME, 3 no such schedule.\n"
    "\n"
    "Example:\n"
    "  aj schedule show nightly\n";

static const char pause_help[] =
    "Usage: aj schedule pause NAME\n"
    "\n"
    "Stops a schedule's fires until `aj schedule resume`. Prints nothing\n"
    "({\"name\":NAME,\"state\":\"paused\"} with --json).\n"
    "\n"
    "Exit codes: 0 paused, 1 store error, 2 bad NAME, 3 no such schedule, 4 already paused.\n"
    "\n"
    "Example:\n"
    "  aj schedule pause nightly\n";

static const char resume_help[] =
    "Usage: aj schedule resume NAME\n"
    "\n"
    "Resumes a paused schedule from its first fire time after now: the fire times that passed\n"
    "while it was paused create no jobs. Prints nothing ({\"name\":NAME,\"state\":\"active\"}\n"
    "with --json).\n"
    "\n"
    "Exit codes: 0 resumed, 1 store error, 2 bad NAME, 3 no such schedule, 4 not paused.\n"
    "\n"
    "Example:\n"
    "  aj schedule resume nightly\n";

static const char trigger_help[] =
    "Usage: aj schedule trigger NAME\n"
    "\n"
    "Submits the schedule's job now, whatever its overlap policy and even when paused, and\n"
    "prints the job's id ({\"id\":N} with --json). Its scheduled_at is now; the next fire time\n"
    "does not change.\n"
    "\n"
    "Exit codes: 0 submitted, 1 store error, 2 bad NAME, 3 no such schedule, 5 submitted, but\n"
    "the output failed (stderr names the job).\n"
    "\n"
    "Example:\n"
    "  aj schedule trigger nightly\n";

static const char backfill_help[] =
    "Usage: aj schedule backfill NAME --from TIME --to TIME\n"
    "\n"
    "Submits one job for each fire time of the schedule in [--from, --to), oldest first, all\n"
    "in one transaction (at most 10000), whatever the overlap policy. Each job's scheduled_at\n"
    "is its fire time. Prints the job ids, one a line ({\"count\":N,\"ids\":[...]} with --json).\n"
    "\n"
    "Flags:\n"
    "  --from TIME    the first fire time included (RFC 3339)\n"
    "  --to TIME      the end of the range, excluded\n"
    "\n"
    "Exit codes: 0 submitted (also when the range holds no fire time), 1 store error, 2 bad\n"
    "input (an empty range, more than 10000 fire times), 3 no such schedule, 5 submitted, but the\n"
    "output failed (stderr names the jobs).\n"
    "\n"
    "Example:\n"
    "  aj schedule backfill nightly --from 2026-03-01T00:00:00Z --to 2026-03-08T00:00:00Z\n";

static const char rm_help[] = "Usage: aj schedule rm NAME\n"
                              "\n"
                              "Deletes a schedule. Jobs it already submitted stay. Prints "
                              "nothing ({\"name\":NAME,\"removed\":true}\n"
                              "with --json).\n"
                              "\n"
                              "Exit codes: 0 deleted, 1 store error, 2 bad NAME, 3 no such "
                              "schedule.\n"
                              "\n"
                              "Example:\n"
                              "  aj schedule rm nightly\n";

static const char preview_help[] =
    "Usage: aj schedule preview (NAME | --cron EXPR [--tz ZONE]) [--from TIME] [--count N]\n"
    "\n"
    "Prints the next N fire times strictly after --from, without jitter, one RFC 3339 UTC\n"
    "time a line (a JSON array of them with --json), e.g. 2026-03-08T07:00:00Z. With --cron\n"
    "nothing is read from the store (an @every expression counts from --from). Fewer lines\n"
    "when fewer fire times remain. An expression with no fire time after --from (such as\n"
    "'* * 31 2 *') is refused as `aj schedule add` refuses it: \"never fires\" (exit 2); a\n"
    "stored schedule with none left prints nothing and says so on stderr (exit 0).\n"
    "\n"
    "Flags:\n"
    "  --cron EXPR    an expression as for `aj schedule add`, instead of NAME\n"
    "  --tz ZONE      its IANA time zone (default: UTC)\n"
    "  --from TIME    an RFC 3339 time (default: now)\n"
    "  --count N      1..1000 (default: 5)\n"
    "\n"
    "Exit codes: 0 printed, 1 store error, 2 bad input, 3 no such schedule.\n"
    "\n"
    "Example:\n"
    "  aj schedule preview --cron '30 2 * * *' --tz America/New_York \\\n"
    "      --from 2026-03-07T00:00:00Z --count 3\n";

/* ----------------------------------------------------------------------------------------- */
/* Shared helpers                                                                             */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reports a failed call about schedule `name`: not found is exit 3. */
static int sched_error(int aj_rc, const char *name, const char *verb) {
    if (aj_rc == AJ_ENOTFOUND) {
        return cli_error(CLI_EXIT_NOTFOUND, "schedule '%s' not found", name);
    }
    if (aj_rc == AJ_ESTATE || aj_rc == AJ_EEXISTS) {
        return cli_error(CLI_EXIT_STATE, "%s", aj_errmsg()); /* it names the schedule */
    }
    return cli_fail(aj_rc, "cannot %s schedule '%s'", verb, name);
}

static int check_name(const char *name) {
    if (aj_name_check("schedule", name) != 0) {
        return cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
    }
    return 0;
}

static int parse_time(const char *flag, const char *text, int64_t *out) {
    if (aj_time_parse(text, out) != 0) {
        return cli_bad_value(flag, text, "an RFC 3339 time like 2026-03-08T07:00:00Z");
    }
    return 0;
}

/* Checks an expression and zone by computing one fire time: exit 2 with the library's message
 * (an unknown zone too: it is bad input here, not a missing record). */
static int check_cron(const char *expr, const char *tz) {
    int64_t t = 0;
    size_t n = 0;
    int rc = aj_cron_preview(expr, tz, now_ms(), 1, &t, &n);
    if (rc != 0) {
        return cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
    }
    if (n == 0) {
        return cli_error(CLI_EXIT_USAGE, "cron expression '%s' never fires", expr);
    }
    return 0;
}

static const char *kind_name(aj_schedule_kind k) {
    return k == AJ_SCHEDULE_CRON ? "cron" : k == AJ_SCHEDULE_EVERY ? "every" : "at";
}

static const char *state_name(const aj_schedule *s) {
    return s->paused ? "paused" : s->next_ms != 0 ? "active" : "done";
}

/* When the schedule fires, as given: the expression, "every DUR" or "at TIME". */
static const char *when_text(const aj_schedule *s, char *buf, size_t size) {
    char part[OUT_TIME_MAX];
    if (s->kind == AJ_SCHEDULE_CRON) {
        snprintf(buf, size, "%s", s->cron);
    } else if (s->kind == AJ_SCHEDULE_EVERY) {
        aj_duration_format(s->every_ms, part, sizeof part);
        snprintf(buf, size, "every %s", part);
    } else {
        snprintf(buf, size, "at %s", out_time(s->at_ms, part, sizeof part));
    }
    return buf;
}

static json_t *dur_json(int64_t ms) {
    char buf[OUT_SPEC_MAX];
    aj_duration_format(ms, buf, sizeof buf);
    return json_string(buf);
}

/* The template's routing (--require-tag, --prefer-node, --avoid-node), or null; the same shape
 * as a job's "routing" in `aj job show --json`. */
static json_t *routing_json(const aj_schedule *s) {
    if (s->require_tag == NULL && s->prefer_node == NULL && s->avoid_node == NULL) {
        return json_null();
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "require_tag", out_str_json(s->require_tag),
                     "prefer_node", out_str_json(s->prefer_node), "prefer_wait",
                     s->prefer_node != NULL ? dur_json(s->prefer_wait_ms) : json_null(),
                     "avoid_node", out_str_json(s->avoid_node));
}

static json_t *sched_json(const aj_schedule *s) {
    char backoff[OUT_SPEC_MAX];
    aj_backoff_format(&s->backoff, backoff, sizeof backoff);
    json_t *job = json_pack(
        "{s:o, s:o, s:o, s:I, s:o, s:o, s:I, s:s, s:o}", "queue", out_str_json(s->queue), "type",
        out_str_json(s->type), "payload", out_bytes_json(s->payload, s->payload_len), "priority",
        (json_int_t)s->priority, "timeout", dur_json(s->timeout_ms), "lease", dur_json(s->lease_ms),
        "max_attempts", (json_int_t)s->max_attempts, "backoff", backoff, "metadata",
        s->metadata != NULL ? out_bytes_json(s->metadata, strlen(s->metadata)) : json_null());
    if (job != NULL) {
        json_object_set_new(job, "routing", routing_json(s));
    }
    json_t *o =
        json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:s, s:s}", "name",
                  out_str_json(s->name), "kind", kind_name(s->kind), "cron", out_str_json(s->cron),
                  "every", s->kind == AJ_SCHEDULE_EVERY ? dur_json(s->every_ms) : json_null(), "at",
                  s->kind == AJ_SCHEDULE_AT ? out_time_json(s->at_ms) : json_null(), "tz",
                  out_str_json(s->tz), "jitter", dur_json(s->jitter_ms), "catch_up",
                  aj_catch_up_name(s->catch_up), "catch_up_limit", (json_int_t)s->catch_up_limit,
                  "overlap", aj_overlap_name(s->overlap), "state", state_name(s));
    if (o == NULL || job == NULL) {
        json_decref(o);
        json_decref(job);
        return NULL;
    }
    json_object_set_new(o, "next_fire", out_time_json(s->next_ms));
    json_object_set_new(o, "next_due", out_time_json(s->next_due_ms));
    json_object_set_new(o, "last_fire", out_time_json(s->last_fire_ms));
    json_object_set_new(o, "last_job_id",
                        s->last_job_id ? json_integer((json_int_t)s->last_job_id) : json_null());
    json_object_set_new(o, "buffered", out_time_json(s->buffered_ms));
    json_object_set_new(o, "jobs_created", json_integer((json_int_t)s->jobs_created));
    json_object_set_new(o, "fires_skipped", json_integer((json_int_t)s->fires_skipped));
    json_object_set_new(o, "created_at", out_time_json(s->created_ms));
    json_object_set_new(o, "updated_at", out_time_json(s->updated_ms));
    json_object_set_new(o, "job", job);
    return o;
}

static void kv_line(const char *key, const char *value) {
    printf("%-15s %s\n", key, value);
}

static void sched_human(const aj_schedule *s) {
    char buf[SCHED_CELL_MAX], t[OUT_TIME_MAX];
    kv_line("name:", s->name);
    kv_line("state:", state_name(s));
    kv_line("when:", when_text(s, buf, sizeof buf));
    kv_line("tz:", s->tz);
    aj_duration_format(s->jitter_ms, buf, sizeof buf);
    kv_line("jitter:", buf);
    snprintf(buf, sizeof buf, "%s (limit %" PRIu32 ")", aj_catch_up_name(s->catch_up),
             s->catch_up_limit);
    kv_line("catch_up:", buf);
    kv_line("overlap:", aj_overlap_name(s->overlap));
    kv_line("next_fire:", out_time(s->next_ms, t, sizeof t));
    kv_line("next_due:", out_time(s->next_due_ms, t, sizeof t));
    kv_line("last_fire:", out_time(s->last_fire_ms, t, sizeof t));
    snprintf(buf, sizeof buf, "%" PRIu64, s->last_job_id);
    kv_line("last_job_id:", s->last_job_id ? buf : "-");
    kv_line("buffered:", out_time(s->buffered_ms, t, sizeof t));
    snprintf(buf, sizeof buf, "%" PRIu64, s->jobs_created);
    kv_line("jobs_created:", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, s->fires_skipped);
    kv_line("fires_skipped:", buf);
    kv_line("created_at:", out_time(s->created_ms, t, sizeof t));
    kv_line("updated_at:", out_time(s->updated_ms, t, sizeof t));
    kv_line("queue:", s->queue);
    kv_line("type:", s->type);
    char *payload = out_raw_text(s->payload, s->payload_len);
    kv_line("payload:", payload != NULL ? payload : "");
    free(payload);
    snprintf(buf, sizeof buf, "%" PRIu32, s->priority);
    kv_line("priority:", buf);
    aj_duration_format(s->timeout_ms, buf, sizeof buf);
    kv_line("timeout:", buf);
    aj_duration_format(s->lease_ms, buf, sizeof buf);
    kv_line("lease:", buf);
    snprintf(buf, sizeof buf, "%" PRIu32, s->max_attempts);
    kv_line("max_attempts:", buf);
    aj_backoff_format(&s->backoff, buf, sizeof buf);
    kv_line("backoff:", buf);
    kv_line("metadata:", s->metadata != NULL ? s->metadata : "-");
    if (s->require_tag != NULL) {
        kv_line("require_tag:", s->require_tag);
    }
    if (s->prefer_node != NULL) {
        char wait[64];
        aj_duration_format(s->prefer_wait_ms, wait, sizeof wait);
        snprintf(buf, sizeof buf, "%.200s (others after %s)", s->prefer_node, wait);
        kv_line("prefer_node:", buf);
    }
    if (s->avoid_node != NULL) {
        kv_line("avoid_node:", s->avoid_node);
    }
}

/* Parses NAME as the only positional argument of a command without flags, and opens the store.
 * Returns ARGS_PROCEED (r to be freed by the caller) or the exit code to return at once. */
static int name_command(cli *c, const char *cmd, const char *help, int argc, char **argv,
                        arg_result *r) {
    const arg_spec spec = {cmd, help, NULL, "NAME", 1, 1, 0};
    int rc = args_parse(c, &spec, argc, argv, r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    rc = check_name(r->pos[0]);
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc != 0) {
        args_free(r);
        return rc;
    }
    return ARGS_PROCEED;
}

/* ----------------------------------------------------------------------------------------- */
/* add                                                                                        */

typedef struct add_args {
    const char *cron, *every, *at, *tz, *jitter, *catch_up, *catch_up_limit, *overlap;
    /* Flags of `aj submit` a template does not take: given, they are refused (refused_flag). */
    const char *after, *on_dep_failure, *delay, *key, *payload_lines;
    int wait;
} add_args;

/* Refuses the flags of `aj submit` that make no sense for a template, saying why. */
static int refused_flag(const add_args *a) {
    const char *cmd = "aj schedule add";
    if (a->after != NULL || a->on_dep_failure != NULL) {
        return args_usage_error(cmd,
                                "%s is not accepted: it names specific jobs, and a "
                                "schedule's template is used for every fire",
                                a->after != NULL ? "--after" : "--on-dep-failure");
    }
    if (a->delay != NULL) {
        return args_usage_error(cmd,
                                "--delay is not accepted: the schedule decides when its jobs run");
    }
    if (a->key != NULL) {
        return args_usage_error(cmd, "--idempotency-key is not accepted: every fire would reuse "
                                     "it, so only the first would create a job");
    }
    if (a->payload_lines != NULL) {
        return args_usage_error(cmd, "--payload-lines is not accepted: a schedule's template "
                                     "has one payload (--payload or --payload-file)");
    }
    if (a->wait) {
        return args_usage_error(cmd, "--wait is not accepted: a schedule's jobs are created "
                                     "later, at its fire times");
    }
    return 0;
}

static int add_from_flags(const add_args *a, aj_schedule_spec *s) {
    int given = (a->cron != NULL) + (a->every != NULL) + (a->at != NULL);
    if (given != 1) {
        return args_usage_error("aj schedule add", given == 0
                                                       ? "missing --cron, --every or --at"
                                                       : "--cron, --every and --at exclude each "
                                                         "other");
    }
    if (a->tz != NULL && a->cron == NULL) {
        return args_usage_error("aj schedule add", "--tz applies only to --cron");
    }
    int rc = 0;
    if (a->cron != NULL) {
        rc = check_cron(a->cron, a->tz);
        s->cron = a->cron;
        s->tz = a->tz;
    }
    if (rc == 0 && a->every != NULL) {
        rc = cli_parse_duration("--every", a->every, &s->every_ms);
        if (rc == 0 && s->every_ms < AJ_SCHEDULE_EVERY_MIN_MS) {
            rc = cli_error(CLI_EXIT_USAGE, "--every '%s' is shorter than %dms", a->every,
                           AJ_SCHEDULE_EVERY_MIN_MS);
        }
    }
    if (rc == 0 && a->at != NULL) {
        rc = parse_time("--at", a->at, &s->at_ms);
        if (rc == 0 && s->at_ms <= 0) {
            rc = cli_error(CLI_EXIT_USAGE, "--at '%s' is not after 1970", a->at);
        }
    }
    if (rc == 0 && a->jitter != NULL) {
        rc = cli_parse_duration("--jitter", a->jitter, &s->jitter_ms);
        if (rc == 0 && s->jitter_ms > AJ_SCHEDULE_JITTER_MAX_MS) {
            rc = cli_error(CLI_EXIT_USAGE, "--jitter '%s' is longer than 1d", a->jitter);
        }
    }
    if (rc == 0 && a->catch_up != NULL && aj_catch_up_parse(a->catch_up, &s->catch_up) != 0) {
        rc = cli_error(CLI_EXIT_USAGE, "--catch-up '%s' is not skip, once or all", a->catch_up);
    }
    if (rc == 0 && a->catch_up_limit != NULL) {
        uint64_t n = 0;
        rc = cli_parse_uint("--catch-up-limit", a->catch_up_limit, 1,
                            AJ_SCHEDULE_CATCH_UP_LIMIT_MAX, &n);
        s->catch_up_limit = (uint32_t)n;
    }
    if (rc == 0 && a->overlap != NULL && aj_overlap_parse(a->overlap, &s->overlap) != 0) {
        rc = cli_error(CLI_EXIT_USAGE, "--overlap '%s' is not skip, buffer, allow or cancel",
                       a->overlap);
    }
    return rc;
}

int cmd_schedule_add(cli *c, int argc, char **argv) {
    add_args a;
    submit_args j;
    memset(&a, 0, sizeof a);
    memset(&j, 0, sizeof j);
    const arg_flag flags[] = {
        {"--cron", &a.cron, NULL},
        {"--every", &a.every, NULL},
        {"--at", &a.at, NULL},
        {"--tz", &a.tz, NULL},
        {"--jitter", &a.jitter, NULL},
        {"--catch-up", &a.catch_up, NULL},
        {"--catch-up-limit", &a.catch_up_limit, NULL},
        {"--overlap", &a.overlap, NULL},
        {"--queue", &j.queue, NULL},
        {"--type", &j.type, NULL},
        {"--priority", &j.priority, NULL},
        {"--timeout", &j.timeout, NULL},
        {"--lease", &j.lease, NULL},
        {"--max-attempts", &j.max_attempts, NULL},
        {"--backoff", &j.backoff, NULL},
        {"--metadata", &j.metadata, NULL},
        {"--payload", &j.payload, NULL},
        {"--payload-file", &j.payload_file, NULL},
        {"--require-tag", &j.require_tag, NULL},
        {"--prefer-node", &j.prefer_node, NULL},
        {"--prefer-wait", &j.prefer_wait, NULL},
        {"--avoid-node", &j.avoid_node, NULL},
        {"--after", &a.after, NULL},
        {"--on-dep-failure", &a.on_dep_failure, NULL},
        {"--delay", &a.delay, NULL},
        {"--idempotency-key", &a.key, NULL},
        {"--payload-lines", &a.payload_lines, NULL},
        {"--wait", NULL, &a.wait},
        {NULL, NULL, NULL},
    };
    const arg_spec spec = {"aj schedule add", add_help, flags, "NAME", 1, 1, 1};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_schedule_spec s;
    aj_schedule_spec_init(&s);
    s.name = r.pos[0];
    char *payload = NULL;
    aj_schedule *got = NULL;
    rc = refused_flag(&a);
    if (rc == 0) {
        rc = check_name(s.name);
    }
    if (rc == 0) {
        rc = add_from_flags(&a, &s);
    }
    if (rc == 0) {
        rc = submit_job_template("aj schedule add", &j, &r, &s.job, &payload);
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0) {
        int arc = aj_schedule_add(c->engine, &s);
        if (arc == AJ_ENOTFOUND || arc == AJ_EINVAL || arc == AJ_ETOOBIG) {
            rc = cli_error(CLI_EXIT_USAGE, "cannot add schedule '%s': %s", s.name, aj_errmsg());
        } else if (arc != 0) {
            rc = sched_error(arc, s.name, "add");
        } else {
            out_committed("added schedule '%s'", s.name);
        }
    }
    if (rc == 0) {
        int arc = aj_schedule_get(c->engine, s.name, &got);
        rc = arc != 0 ? sched_error(arc, s.name, "read") : 0;
    }
    if (rc == 0 && c->json) {
        rc = out_json(sched_json(got));
    } else if (rc == 0) {
        char t[OUT_TIME_MAX];
        printf("%s next fire %s\n", got->name,
               got->next_ms != 0 ? out_time(got->next_due_ms, t, sizeof t) : "none");
    }
    aj_schedule_free(got);
    free(payload);
    args_free(&r);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* ls and show                                                                                */

int cmd_schedule_ls(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj schedule ls", ls_help, NULL, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    rc = cli_open(c, NULL);
    aj_schedule **list = NULL;
    size_t n = 0;
    if (rc == 0) {
        int arc = aj_schedule_list(c->engine, &list, &n);
        rc = arc != 0 ? cli_fail(arc, "cannot list schedules") : 0;
    }
    if (rc == 0 && c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++) {
            json_t *o = sched_json(list[i]);
            if (o == NULL || json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        rc = out_json(arr);
    } else if (rc == 0) {
        static const char *const head[SCHED_COLS] = {"NAME", "STATE", "NEXT", "WHEN", "TZ", "JOBS"};
        size_t width[SCHED_COLS];
        for (int k = 0; k < SCHED_COLS; k++) {
            width[k] = strlen(head[k]);
        }
        char(*cells)[SCHED_COLS][SCHED_CELL_MAX] = calloc(n + 1, sizeof *cells);
        if (cells == NULL) {
            rc = cli_error(CLI_EXIT_ERROR, "out of memory");
        }
        for (size_t i = 0; rc == 0 && i <= n; i++) {
            for (int k = 0; k < SCHED_COLS && i == 0; k++) {
                snprintf(cells[0][k], SCHED_CELL_MAX, "%s", head[k]);
            }
            if (i > 0) {
                const aj_schedule *s = list[i - 1];
                char t[OUT_TIME_MAX];
                snprintf(cells[i][0], SCHED_CELL_MAX, "%s", s->name);
                snprintf(cells[i][1], SCHED_CELL_MAX, "%s", state_name(s));
                snprintf(cells[i][2], SCHED_CELL_MAX, "%s", out_time(s->next_due_ms, t, sizeof t));
                when_text(s, cells[i][3], SCHED_CELL_MAX);
                snprintf(cells[i][4], SCHED_CELL_MAX, "%s", s->tz);
                snprintf(cells[i][5], SCHED_CELL_MAX, "%" PRIu64, s->jobs_created);
            }
            for (int k = 0; k < SCHED_COLS; k++) {
                size_t w = strlen(cells[i][k]);
                width[k] = w > width[k] ? w : width[k];
            }
        }
        for (size_t i = 0; rc == 0 && i <= n; i++) {
            for (int k = 0; k < SCHED_COLS; k++) {
                if (k == SCHED_COLS - 1) {
                    printf("%s\n", cells[i][k]);
                } else {
                    printf("%-*s  ", (int)width[k], cells[i][k]);
                }
            }
        }
        free(cells);
    }
    aj_schedule_list_free(list, n);
    return rc;
}

int cmd_schedule_show(cli *c, int argc, char **argv) {
    arg_result r;
    int rc = name_command(c, "aj schedule show", show_help, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_schedule *s = NULL;
    int arc = aj_schedule_get(c->engine, r.pos[0], &s);
    rc = arc != 0 ? sched_error(arc, r.pos[0], "read") : 0;
    if (rc == 0 && c->json) {
        rc = out_json(sched_json(s));
    } else if (rc == 0) {
        sched_human(s);
    }
    aj_schedule_free(s);
    args_free(&r);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* pause, resume, rm, trigger                                                                 */

static int simple_op(cli *c, int argc, char **argv, const char *cmd, const char *help,
                     int (*op)(aj_engine *, const char *), const char *verb, const char *key,
                     json_t *value) {
    arg_result r;
    int rc = name_command(c, cmd, help, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        json_decref(value);
        return rc;
    }
    int arc = op(c->engine, r.pos[0]);
    rc = arc != 0 ? sched_error(arc, r.pos[0], verb) : 0;
    if (rc == 0 && c->json) {
        rc = out_json(json_pack("{s:s, s:O}", "name", r.pos[0], key, value));
    }
    json_decref(value);
    args_free(&r);
    return rc;
}

int cmd_schedule_pause(cli *c, int argc, char **argv) {
    return simple_op(c, argc, argv, "aj schedule pause", pause_help, aj_schedule_pause, "pause",
                     "state", json_string("paused"));
}

int cmd_schedule_resume(cli *c, int argc, char **argv) {
    return simple_op(c, argc, argv, "aj schedule resume", resume_help, aj_schedule_resume, "resume",
                     "state", json_string("active"));
}

int cmd_schedule_rm(cli *c, int argc, char **argv) {
    return simple_op(c, argc, argv, "aj schedule rm", rm_help, aj_schedule_remove, "remove",
                     "removed", json_true());
}

int cmd_schedule_trigger(cli *c, int argc, char **argv) {
    arg_result r;
    int rc = name_command(c, "aj schedule trigger", trigger_help, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    uint64_t id = 0;
    int arc = aj_schedule_trigger(c->engine, r.pos[0], &id);
    rc = arc != 0 ? sched_error(arc, r.pos[0], "trigger") : 0;
    if (rc == 0) {
        out_committed_ids("submitted", "job", &id, 1);
        rc = c->json ? out_json(json_pack("{s:I}", "id", (json_int_t)id))
                     : (printf("%" PRIu64 "\n", id), CLI_EXIT_OK);
    }
    args_free(&r);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* backfill and preview                                                                       */

int cmd_schedule_backfill(cli *c, int argc, char **argv) {
    const char *from = NULL, *to = NULL;
    const arg_flag flags[] = {{"--from", &from, NULL}, {"--to", &to, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj schedule backfill", backfill_help, flags, "NAME", 1, 1, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    int64_t from_ms = 0, to_ms = 0;
    rc = check_name(r.pos[0]);
    if (rc == 0 && (from == NULL || to == NULL)) {
        rc = args_usage_error("aj schedule backfill", "missing %s",
                              from == NULL ? "--from" : "--to");
    }
    if (rc == 0) {
        rc = parse_time("--from", from, &from_ms);
    }
    if (rc == 0) {
        rc = parse_time("--to", to, &to_ms);
    }
    if (rc == 0 && to_ms <= from_ms) {
        rc = cli_error(CLI_EXIT_USAGE, "--to '%s' is not after --from '%s'", to, from);
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    uint64_t *ids = NULL;
    size_t n = 0;
    if (rc == 0) {
        int arc = aj_schedule_backfill(c->engine, r.pos[0], from_ms, to_ms, &ids, &n);
        if (arc == AJ_EINVAL) {
            rc = cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
        } else if (arc != 0) {
            rc = sched_error(arc, r.pos[0], "backfill");
        } else {
            out_committed_ids("submitted", "job", ids, n);
        }
    }
    if (rc == 0 && c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++) {
            json_array_append_new(arr, json_integer((json_int_t)ids[i]));
        }
        rc = out_json(json_pack("{s:I, s:o}", "count", (json_int_t)n, "ids", arr));
    } else if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            printf("%" PRIu64 "\n", ids[i]);
        }
    }
    aj_free(ids);
    args_free(&r);
    return rc;
}

int cmd_schedule_preview(cli *c, int argc, char **argv) {
    const char *cron = NULL, *tz = NULL, *from = NULL, *count = NULL;
    const arg_flag flags[] = {
        {"--cron", &cron, NULL},   {"--tz", &tz, NULL}, {"--from", &from, NULL},
        {"--count", &count, NULL}, {NULL, NULL, NULL},
    };
    const arg_spec spec = {"aj schedule preview", preview_help, flags, "NAME", 0, 1, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    rc = CLI_EXIT_OK;
    const char *name = r.n_pos > 0 ? r.pos[0] : NULL;
    int64_t from_ms = now_ms();
    uint64_t n_want = SCHED_PREVIEW_DEFAULT;
    if ((name == NULL) == (cron == NULL)) {
        rc = args_usage_error("aj schedule preview", name == NULL ? "missing NAME or --cron"
                                                                  : "NAME and --cron exclude "
                                                                    "each other");
    }
    if (rc == 0 && tz != NULL && cron == NULL) {
        rc = args_usage_error("aj schedule preview", "--tz applies only to --cron");
    }
    if (rc == 0 && name != NULL) {
        rc = check_name(name);
    }
    if (rc == 0 && from != NULL) {
        rc = parse_time("--from", from, &from_ms);
    }
    if (rc == 0 && count != NULL) {
        rc = cli_parse_uint("--count", count, 1, AJ_SCHEDULE_PREVIEW_MAX, &n_want);
    }
    int64_t *times = rc == 0 ? calloc(n_want, sizeof *times) : NULL;
    if (rc == 0 && times == NULL) {
        rc = cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    size_t n = 0;
    if (rc == 0 && cron != NULL) {
        if (aj_cron_preview(cron, tz, from_ms, (size_t)n_want, times, &n) != 0) {
            rc = cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
        } else if (n == 0) {
            /* The words of `schedule add`, so that trying an expression out tells the truth. */
            char t[OUT_TIME_MAX];
            aj_time_format(from_ms, t, sizeof t);
            rc = cli_error(CLI_EXIT_USAGE, "cron expression '%s' never fires after %s", cron, t);
        }
    } else if (rc == 0) {
        rc = cli_open(c, NULL);
        if (rc == 0) {
            int arc = aj_schedule_preview(c->engine, name, from_ms, (size_t)n_want, times, &n);
            rc = arc != 0 ? sched_error(arc, name, "preview") : 0;
        }
        if (rc == 0 && n == 0) {
            char t[OUT_TIME_MAX];
            aj_time_format(from_ms, t, sizeof t);
            fprintf(stderr, "aj: schedule '%s' has no fire time after %s\n", name, t);
        }
    }
    if (rc == 0 && c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr != NULL && i < n; i++) {
            char t[OUT_TIME_MAX];
            aj_time_format(times[i], t, sizeof t);
            json_array_append_new(arr, json_string(t));
        }
        rc = out_json(arr);
    } else if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            char t[OUT_TIME_MAX];
            aj_time_format(times[i], t, sizeof t);
            printf("%s\n", t);
        }
    }
    free(times);
    args_free(&r);
    return rc;
}
