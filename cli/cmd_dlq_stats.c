/*
 * cmd_dlq_stats.c — `aj dlq stats` and `aj dlq analyze`: the dead-letter inspector.
 *
 * Both print what the library computed (aj_dlq_stats_get, aj_dlq_analyze) from one snapshot of
 * the dead-letter queue; the analysis itself, its error grouping and its findings live in the
 * library (src/core/dlq.c), where they are unit-tested. They take the filters of every dlq
 * command (dlq.h) and change nothing. Findings never change the exit code: an analysis that
 * ran is a success.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "dlq.h"
#include "out.h"

/* Most error groups `aj dlq analyze --top` may list. */
#define DLQ_TOP_MAX 1000

static const char stats_help[] =
    "Usage: aj dlq stats [filters]\n"
    "\n"
    "Counts dead jobs by queue, by type and by reason, largest first. With --json, an object:\n"
    "{\"total\":N,\"by_queue\":{Q:N,...},\"by_type\":{T:N,...},\"by_reason\":{R:N,...}}.\n"
    "\n"
    "Flags:\n" DLQ_FILTER_HELP "\n"
    "Exit codes: 0 counted, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj dlq stats --queue mail\n";

static const char analyze_help[] =
    "Usage: aj dlq analyze [filters] [--stale-after DUR] [--redrive-threshold N]\n"
    "                      [--dominant-share PCT] [--dominant-min N] [--top N]\n"
    "\n"
    "Analyses dead jobs: the oldest and newest, their average age, how often they had been\n"
    "redriven, the most common errors, and findings with a recommendation each:\n"
    "  stale             dead jobs older than --stale-after\n"
    "  repeated_redrive  dead jobs that died again after --redrive-threshold or more redrives\n"
    "  dominant_error    one error accounts for --dominant-share of the dead jobs, and at\n"
    "                    least --dominant-min of them\n"
    "  dominant_type     one job type does, by the same measure\n"
    "Each finding cites the counts behind it.\n"
    "\n"
    "Errors are grouped after numbers and ids are replaced: a word that is a number or a hex\n"
    "id becomes <n> (or <id> from 8 characters on), other digit runs become <n>, and\n"
    "whitespace is collapsed, so \"timeout after 31s\" and \"timeout after 32s\" are one group,\n"
    "\"timeout after <n>s\".\n"
    "\n"
    "With --json, an object: total, now, oldest and newest ({id, dead_at, age_ms} or null),\n"
    "average_age_ms, redrives {redriven, total, max, histogram}, error_groups, top_errors\n"
    "[{error, count, share, example, example_id}], by_queue, by_type, by_reason, and findings\n"
    "[{kind, message, count, total, subject, threshold, example_id, recommendation}].\n"
    "\n"
    "Flags:\n" DLQ_FILTER_HELP
    "  --stale-after DUR        dead jobs older than this are stale (default: 7d)\n"
    "  --redrive-threshold N    redrives that make a repeated failure (default: 2)\n"
    "  --dominant-share PCT     share of the dead jobs, 1 to 100, that makes an error or a\n"
    "                           type dominant (default: 50)\n"
    "  --dominant-min N         fewest dead jobs a dominant error or type needs (default: 5)\n"
    "  --top N                  error groups listed (default: 10)\n"
    "\n"
    "Exit codes: 0 analysed (findings or not), 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj dlq analyze --stale-after 3d\n";

/* A list of counts as a JSON object, in list order. */
static json_t *counts_json(const aj_dlq_count *v, size_t n) {
    json_t *o = json_object();
    for (size_t i = 0; i < n && o != NULL; i++) {
        json_object_set_new(o, v[i].name, json_integer((json_int_t)v[i].count));
    }
    return o;
}

static void counts_human(const char *title, const aj_dlq_count *v, size_t n) {
    size_t width = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(v[i].name);
        width = len > width ? len : width;
    }
    printf("%s:\n", title);
    for (size_t i = 0; i < n; i++) {
        printf("  %-*s  %" PRIu64 "\n", (int)width, v[i].name, v[i].count);
    }
}

int cmd_dlq_stats(cli *c, int argc, char **argv) {
    aj_job_filter f;
    int rc = dlq_parse_filter(c, "aj dlq stats", stats_help, argc, argv, &f);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    aj_dlq_stats *s = NULL;
    int arc = aj_dlq_stats_get(c->engine, &f, &s);
    if (arc != 0) {
        return cli_fail(arc, "cannot count dead jobs");
    }
    if (c->json) {
        rc = out_json(json_pack("{s:I, s:o, s:o, s:o}", "total", (json_int_t)s->total, "by_queue",
                                counts_json(s->by_queue, s->n_queues), "by_type",
                                counts_json(s->by_type, s->n_types), "by_reason",
                                counts_json(s->by_reason, s->n_reasons)));
    } else {
        printf("total: %" PRIu64 "\n", s->total);
        if (s->total > 0) {
            counts_human("by queue", s->by_queue, s->n_queues);
            counts_human("by type", s->by_type, s->n_types);
            counts_human("by reason", s->by_reason, s->n_reasons);
        }
    }
    aj_dlq_stats_free(s);
    return rc;
}

/* A duration for people: whole seconds past a minute, whole minutes past a day. */
static const char *age_text(int64_t ms, char *buf, size_t size) {
    if (ms >= AJ_DAY) {
        ms -= ms % AJ_MINUTE;
    } else if (ms >= AJ_MINUTE) {
        ms -= ms % AJ_SECOND;
    }
    aj_duration_format(ms < 0 ? 0 : ms, buf, size);
    return buf;
}

static json_t *end_json(uint64_t id, int64_t dead_ms, int64_t now_ms) {
    if (id == 0) {
        return json_null();
    }
    return json_pack("{s:I, s:o, s:I}", "id", (json_int_t)id, "dead_at", out_time_json(dead_ms),
                     "age_ms", (json_int_t)(now_ms - dead_ms));
}

static json_t *report_json(const aj_dlq_report *r) {
    json_t *hist = json_object();
    for (int i = 0; i < AJ_DLQ_REDRIVE_BUCKETS && hist != NULL; i++) {
        char key[CLI_NUM_MAX];
        snprintf(key, sizeof key, "%d%s", i, i == AJ_DLQ_REDRIVE_BUCKETS - 1 ? "+" : "");
        json_object_set_new(hist, key, json_integer((json_int_t)r->redrive_hist[i]));
    }
    json_t *top = json_array();
    for (size_t i = 0; i < r->n_top_errors && top != NULL; i++) {
        const aj_dlq_error_count *e = &r->top_errors[i];
        double share = r->stats.total ? (double)e->count * 100.0 / (double)r->stats.total : 0;
        json_array_append_new(top, json_pack("{s:o, s:I, s:f, s:o, s:I}", "error",
                                             out_str_json(e->group), "count", (json_int_t)e->count,
                                             "share", share, "example", out_str_json(e->example),
                                             "example_id", (json_int_t)e->example_id));
    }
    json_t *findings = json_array();
    for (size_t i = 0; i < r->n_findings && findings != NULL; i++) {
        const aj_dlq_finding *f = &r->findings[i];
        json_array_append_new(
            findings, json_pack("{s:s, s:o, s:I, s:I, s:o, s:I, s:I, s:o}", "kind",
                                aj_dlq_finding_name(f->kind), "message", out_str_json(f->message),
                                "count", (json_int_t)f->count, "total", (json_int_t)f->total,
                                "subject", out_str_json(f->subject), "threshold",
                                (json_int_t)f->threshold, "example_id", (json_int_t)f->example_id,
                                "recommendation", out_str_json(f->recommendation)));
    }
    json_t *redrives =
        json_pack("{s:I, s:I, s:I, s:o}", "redriven", (json_int_t)r->redriven, "total",
                  (json_int_t)r->redrives, "max", (json_int_t)r->redrives_max, "histogram", hist);
    return json_pack("{s:I, s:o, s:o, s:o, s:I, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "total",
                     (json_int_t)r->stats.total, "now", out_time_json(r->now_ms), "oldest",
                     end_json(r->oldest_id, r->oldest_ms, r->now_ms), "newest",
                     end_json(r->newest_id, r->newest_ms, r->now_ms), "average_age_ms",
                     (json_int_t)r->average_age_ms, "redrives", redrives, "error_groups",
                     (json_int_t)r->error_groups, "top_errors", top, "by_queue",
                     counts_json(r->stats.by_queue, r->stats.n_queues), "by_type",
                     counts_json(r->stats.by_type, r->stats.n_types), "by_reason",
                     counts_json(r->stats.by_reason, r->stats.n_reasons), "findings", findings);
}

static void report_human(const aj_dlq_report *r) {
    char t[OUT_TIME_MAX], age[OUT_SPEC_MAX];
    printf("dead letters: %" PRIu64 "\n", r->stats.total);
    if (r->stats.total == 0) {
        printf("findings: none\n");
        return;
    }
    printf("oldest:       job %" PRIu64 ", dead since %s (%s ago)\n", r->oldest_id,
           out_time(r->oldest_ms, t, sizeof t),
           age_text(r->now_ms - r->oldest_ms, age, sizeof age));
    printf("newest:       job %" PRIu64 ", dead since %s (%s ago)\n", r->newest_id,
           out_time(r->newest_ms, t, sizeof t),
           age_text(r->now_ms - r->newest_ms, age, sizeof age));
    printf("average age:  %s\n", age_text(r->average_age_ms, age, sizeof age));
    printf("redriven:     %" PRIu64 " had been redriven (%" PRIu64 " redrives, at most %" PRIu32
           " for one job)\n",
           r->redriven, r->redrives, r->redrives_max);
    printf("\ntop errors (%" PRIu64 " groups):\n", r->error_groups);
    printf("  %7s  %5s  %s\n", "COUNT", "SHARE", "ERROR");
    for (size_t i = 0; i < r->n_top_errors; i++) {
        const aj_dlq_error_count *e = &r->top_errors[i];
        unsigned share = (unsigned)(e->count * 100 / r->stats.total);
        printf("  %7" PRIu64 "  %4u%%  %s\n", e->count, share, e->group);
    }
    printf("\n");
    counts_human("by queue", r->stats.by_queue, r->stats.n_queues);
    counts_human("by type", r->stats.by_type, r->stats.n_types);
    counts_human("by reason", r->stats.by_reason, r->stats.n_reasons);
    printf("\nfindings:%s\n", r->n_findings == 0 ? " none" : "");
    for (size_t i = 0; i < r->n_findings; i++) {
        const aj_dlq_finding *f = &r->findings[i];
        printf("  %s: %s\n    recommendation: %s\n", aj_dlq_finding_name(f->kind), f->message,
               f->recommendation);
    }
}

int cmd_dlq_analyze(cli *c, int argc, char **argv) {
    dlq_filter_args a;
    memset(&a, 0, sizeof a);
    const char *stale = NULL, *redrive = NULL, *share = NULL, *min = NULL, *top = NULL;
    const arg_flag flags[] = {DLQ_FILTER_FLAGS(a),
                              {"--stale-after", &stale, NULL},
                              {"--redrive-threshold", &redrive, NULL},
                              {"--dominant-share", &share, NULL},
                              {"--dominant-min", &min, NULL},
                              {"--top", &top, NULL},
                              {NULL, NULL, NULL}};
    const arg_spec spec = {"aj dlq analyze", analyze_help, flags, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_job_filter f;
    aj_dlq_analyze_opts o;
    aj_dlq_analyze_opts_init(&o);
    uint64_t v = 0;
    rc = dlq_filter(&a, &f);
    if (rc == 0 && stale != NULL) {
        rc = cli_parse_duration("--stale-after", stale, &o.stale_after_ms);
    }
    if (rc == 0 && redrive != NULL) {
        rc = cli_parse_uint("--redrive-threshold", redrive, 1, UINT32_MAX, &v);
        o.redrive_threshold = (uint32_t)v;
    }
    if (rc == 0 && share != NULL) {
        rc = cli_parse_uint("--dominant-share", share, 1, 100, &v);
        o.dominant_percent = (uint32_t)v;
    }
    if (rc == 0 && min != NULL) {
        rc = cli_parse_uint("--dominant-min", min, 1, UINT64_MAX, &o.dominant_min);
    }
    if (rc == 0 && top != NULL) {
        rc = cli_parse_uint("--top", top, 0, DLQ_TOP_MAX, &v);
        o.top_errors = (size_t)v;
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc != 0) {
        return rc;
    }
    aj_dlq_report *rep = NULL;
    int arc = aj_dlq_analyze(c->engine, &f, &o, &rep);
    if (arc != 0) {
        return cli_fail(arc, "cannot analyse dead jobs");
    }
    if (c->json) {
        rc = out_json(report_json(rep));
    } else {
        report_human(rep);
    }
    aj_dlq_report_free(rep);
    return rc;
}
