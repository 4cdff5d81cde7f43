/*
 * cmd_stats.c — `aj stats`: exact job counts per state in the whole store, and the engine's
 * counters (this process, and every process as last flushed to the store).
 *
 * The counts come from aj_stats_get(), which counts from the state indexes; nothing here scans
 * jobs. Large payloads and results come from aj_blob_stats_get(), one small record per blob.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "out.h"

static const char stats_help[] =
    "Usage: aj stats\n"
    "\n"
    "Prints the exact number of jobs in each state in the whole store, the counters of every\n"
    "process that used the store (as last flushed) and the submit-to-start latency.\n"
    "\n"
    "With --json, one object:\n"
    "  {\"jobs\":{\"scheduled\":N,\"ready\":N,\"running\":N,\"completed\":N,\"dead\":N,\n"
    "           \"cancelled\":N},\n"
    "   \"counters\":{...this process...}, \"totals\":{...every process...},\n"
    "   \"latency_us\":{\"p50\":N,\"p99\":N},\n"
    "   \"blobs\":{\"count\":N,\"chunks\":N,\"bytes\":N,\"refs\":N,\"unreferenced\":N}}\n"
    "Blobs are the payloads and results over the engine's threshold (256 KiB), each distinct\n"
    "content stored once in 256 KiB chunks: count blobs, their chunks and bytes, the references\n"
    "jobs hold to them, and blobs no job refers to any more (collected soon).\n"
    "Counters: submitted, claimed, completed, failed (attempts), retried, dead_lettered,\n"
    "lease_expired, cancelled, redriven, conflicts, retries, commits, fsyncs; workflows: "
    "wf_tasks,\n"
    "wf_events_appended, wf_events_replayed, wf_replay_us, wf_cache_hits, wf_cache_misses,\n"
    "wf_parked, wf_sagas_started (runs that registered a compensation), wf_sagas_completed,\n"
    "wf_sagas_compensated, wf_compensation_failures, wf_timers_scheduled, wf_timers_fired;\n"
    "every state change is a compare-and-swap transaction: txn_attempts, retries (after a\n"
    "conflict) and txn_gave_up (retries exhausted); jobs_unreadable (job records of a newer\n"
    "format or damaged, left untouched and skipped; each process counts one once; `aj check`\n"
    "names them); and the histograms commit_batch_hist, start_latency_hist_us and\n"
    "wf_timer_lag_hist_ms (bucket i counts values in [2^(i-1), 2^i)).\n"
    "Latencies are upper bounds of the histogram bucket (\"at most\"), in microseconds.\n"
    "The job counts per state are read from the store and always exact. Counters are kept in\n"
    "memory by each process and flushed to the store about every second and when it exits\n"
    "cleanly: a process killed with SIGKILL (or a machine crash) loses what it counted since its\n"
    "last flush, so the totals can undercount; count jobs with \"jobs\", not \"submitted\".\n"
    "\n"
    "Exit codes: 0 printed, 1 store error, 2 bad input (an argument or unknown flag).\n"
    "\n"
    "Example:\n"
    "  aj stats --json\n";

/* The job states in the order they are printed. */
static const aj_job_state stats_states[] = {AJ_STATE_SCHEDULED, AJ_STATE_READY, AJ_STATE_RUNNING,
                                            AJ_STATE_COMPLETED, AJ_STATE_DEAD,  AJ_STATE_CANCELLED};
#define STATS_N_STATES (sizeof stats_states / sizeof stats_states[0])

typedef struct counter_field {
    const char *name;
    size_t offset;
} counter_field;

#define COUNTER(f)                                                                                 \
    { #f, offsetof(aj_counters, f) }
static const counter_field counter_fields[] = {
    COUNTER(submitted),
    COUNTER(claimed),
    COUNTER(completed),
    COUNTER(failed),
    COUNTER(retried),
    COUNTER(dead_lettered),
    COUNTER(lease_expired),
    COUNTER(cancelled),
    COUNTER(redriven),
    COUNTER(conflicts),
    COUNTER(retries),
    COUNTER(commits),
    COUNTER(fsyncs),
    COUNTER(wf_tasks),
    COUNTER(wf_events_appended),
    COUNTER(wf_events_replayed),
    COUNTER(wf_replay_us),
    COUNTER(wf_cache_hits),
    COUNTER(wf_cache_misses),
    COUNTER(wf_parked),
    COUNTER(wf_sagas_started),
    COUNTER(wf_sagas_completed),
    COUNTER(wf_sagas_compensated),
    COUNTER(wf_compensation_failures),
    COUNTER(wf_timers_scheduled),
    COUNTER(wf_timers_fired),
    COUNTER(txn_attempts),
    COUNTER(txn_gave_up),
    COUNTER(activity_cache_hits),
    COUNTER(activity_cache_misses),
    COUNTER(activity_cache_fills),
    COUNTER(activity_cache_expired),
    COUNTER(jobs_unreadable),
};
#define STATS_N_COUNTERS (sizeof counter_fields / sizeof counter_fields[0])

static uint64_t counter_value(const aj_counters *k, const counter_field *f) {
    uint64_t v = 0;
    memcpy(&v, (const char *)k + f->offset, sizeof v);
    return v;
}

static json_t *hist_json(const uint64_t hist[AJ_HIST_BUCKETS]) {
    json_t *a = json_array();
    for (size_t i = 0; i < AJ_HIST_BUCKETS && a != NULL; i++) {
        json_array_append_new(a, json_integer((json_int_t)hist[i]));
    }
    return a;
}

static json_t *counters_json(const aj_counters *k) {
    json_t *o = json_object();
    for (size_t i = 0; i < STATS_N_COUNTERS && o != NULL; i++) {
        json_object_set_new(o, counter_fields[i].name,
                            json_integer((json_int_t)counter_value(k, &counter_fields[i])));
    }
    if (o != NULL) {
        json_object_set_new(o, "commit_batch_hist", hist_json(k->commit_batch_hist));
        json_object_set_new(o, "start_latency_hist_us", hist_json(k->start_latency_hist));
        json_object_set_new(o, "wf_timer_lag_hist_ms", hist_json(k->wf_timer_lag_hist));
    }
    return o;
}

static int print_json(const aj_stats *s, const aj_blob_stats *b) {
    json_t *jobs = json_object();
    for (size_t i = 0; i < STATS_N_STATES && jobs != NULL; i++) {
        json_object_set_new(jobs, aj_state_name(stats_states[i]),
                            json_integer((json_int_t)s->jobs[stats_states[i]]));
    }
    json_t *wfs = json_object();
    for (int st = 1; st < AJ_WF_STATE_COUNT && wfs != NULL; st++) {
        json_object_set_new(wfs, aj_wf_state_name((aj_wf_state)st),
                            json_integer((json_int_t)s->workflows[st]));
    }
    const uint64_t *lat = s->total.start_latency_us;
    json_t *blobs = json_pack("{s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)b->count, "chunks",
                              (json_int_t)b->chunks, "bytes", (json_int_t)b->bytes, "refs",
                              (json_int_t)b->refs, "unreferenced", (json_int_t)b->unreferenced);
    return out_json(json_pack(
        "{s:o, s:o, s:o, s:o, s:{s:I, s:I}, s:{s:I}, s:o}", "jobs", jobs, "workflows", wfs,
        "counters", counters_json(&s->process), "totals", counters_json(&s->total), "latency_us",
        "p50", (json_int_t)(aj_latency_quantile_ms(lat, 0.50) * 1000 + 0.5), "p99",
        (json_int_t)(aj_latency_quantile_ms(lat, 0.99) * 1000 + 0.5), "activity_cache", "entries",
        (json_int_t)s->activity_cache_entries, "blobs", blobs));
}

static void print_human(const aj_stats *s, const aj_blob_stats *b) {
    uint64_t total = 0;
    printf("jobs\n");
    for (size_t i = 0; i < STATS_N_STATES; i++) {
        printf("  %-15s %" PRIu64 "\n", aj_state_name(stats_states[i]), s->jobs[stats_states[i]]);
        total += s->jobs[stats_states[i]];
    }
    printf("  %-15s %" PRIu64 "\n", "total", total);
    printf("workflows\n");
    for (int st = 1; st < AJ_WF_STATE_COUNT; st++) {
        if (s->workflows[st] > 0) {
            printf("  %-19s %" PRIu64 "\n", aj_wf_state_name((aj_wf_state)st), s->workflows[st]);
        }
    }
    printf("activity cache\n  %-15s %" PRIu64 "\n", "entries", s->activity_cache_entries);
    printf("counters (every process)\n");
    for (size_t i = 0; i < STATS_N_COUNTERS; i++) {
        printf("  %-26s %" PRIu64 "\n", counter_fields[i].name,
               counter_value(&s->total, &counter_fields[i]));
    }
    const uint64_t *lat = s->total.start_latency_us;
    printf("submit-to-start latency\n");
    printf("  %-15s %.3f ms\n", "p50", aj_latency_quantile_ms(lat, 0.50));
    printf("  %-15s %.3f ms\n", "p99", aj_latency_quantile_ms(lat, 0.99));
    printf("large payloads and results (blobs)\n");
    printf("  %-15s %" PRIu64 "\n", "count", b->count);
    printf("  %-15s %" PRIu64 "\n", "chunks", b->chunks);
    printf("  %-15s %" PRIu64 "\n", "bytes", b->bytes);
    printf("  %-15s %" PRIu64 "\n", "refs", b->refs);
    printf("  %-15s %" PRIu64 "\n", "unreferenced", b->unreferenced);
}

int cmd_stats(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj stats", stats_help, NULL, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    aj_stats s;
    int arc = aj_stats_get(c->engine, &s);
    if (arc != 0) {
        return cli_fail(arc, "cannot read statistics");
    }
    aj_blob_stats b;
    arc = aj_blob_stats_get(c->engine, &b);
    if (arc != 0) {
        return cli_fail(arc, "cannot read blob statistics");
    }
    if (c->json) {
        return print_json(&s, &b);
    }
    print_human(&s, &b);
    return CLI_EXIT_OK;
}
