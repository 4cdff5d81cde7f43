/*
 * cmd_workers.c — `aj workers`: the worker registry (aj.h, "Worker registry"): every `aj worker`
 * (and every program running a worker pool) with its node, tags and when it was last seen.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"

static const char workers_help[] =
    "Usage: aj workers\n"
    "\n"
    "Lists the registered workers: id, node, tags, host, pid, start time, when each was last\n"
    "seen, and whether it is alive. A worker refreshes its entry every 5s and removes it when\n"
    "it stops; one not seen for 30s is shown as lost, and one not seen for 10m is deleted by\n"
    "the next worker that refreshes its own entry.\n"
    "\n"
    "With --json, an array of objects:\n"
    "  {\"id\":ID, \"node\":N, \"tags\":[T...], \"host\":H, \"pid\":P, \"started_at\":TIME,\n"
    "   \"last_seen\":TIME, \"last_seen_ago_ms\":N, \"alive\":BOOL}\n"
    "\n"
    "Exit codes: 0 listed, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj workers --json\n";

/* Bytes of a worker's tags joined with commas. */
#define WORKERS_TAGS_TEXT (AJ_WORKER_TAGS_MAX * (AJ_NAME_MAX + 1) + 1)

static void join_tags(const aj_worker_info *w, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < w->n_tags && n < size; i++) {
        int k = snprintf(buf + n, size - n, "%s%s", i > 0 ? "," : "", w->tags[i]);
        if (k < 0) {
            break;
        }
        n += (size_t)k;
    }
    if (w->n_tags == 0) {
        snprintf(buf, size, "-");
    }
}

static json_t *worker_json(const aj_worker_info *w, int64_t now_ms) {
    json_t *tags = json_array();
    for (size_t i = 0; i < w->n_tags && tags != NULL; i++) {
        json_array_append_new(tags, out_str_json(w->tags[i]));
    }
    int64_t ago = now_ms - w->seen_ms;
    return json_pack("{s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:I, s:b}", "id", out_str_json(w->id),
                     "node", out_str_json(w->node), "tags", tags, "host", out_str_json(w->host),
                     "pid", (json_int_t)w->pid, "started_at", out_time_json(w->started_ms),
                     "last_seen", out_time_json(w->seen_ms), "last_seen_ago_ms",
                     (json_int_t)(ago > 0 ? ago : 0), "alive", w->alive);
}

int cmd_workers(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj workers", workers_help, NULL, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    aj_worker_info *v = NULL;
    size_t n = 0;
    int arc = aj_worker_list(c->engine, &v, &n);
    if (arc != 0) {
        return cli_fail(arc, "cannot list workers");
    }
    /* Ages are shown against this process's clock, as the library judged `alive`. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (c->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n && a != NULL; i++) {
            if (json_array_append_new(a, worker_json(&v[i], now_ms)) != 0) {
                json_decref(a);
                a = NULL;
            }
        }
        rc = out_json(a);
    } else {
        printf("%-32s %-20s %-20s %-20s %8s %-24s %-24s %-10s %s\n", "ID", "NODE", "TAGS", "HOST",
               "PID", "STARTED", "LAST SEEN", "AGO", "STATUS");
        static char tags[WORKERS_TAGS_TEXT];
        for (size_t i = 0; i < n; i++) {
            char t[OUT_TIME_MAX], st[OUT_TIME_MAX], ago[64];
            join_tags(&v[i], tags, sizeof tags);
            int64_t a = now_ms - v[i].seen_ms;
            aj_duration_format(a > 0 ? a / 1000 * 1000 : 0, ago, sizeof ago);
            printf("%-32s %-20s %-20s %-20s %8" PRId64 " %-24s %-24s %-10s %s\n", v[i].id,
                   v[i].node, tags, v[i].host, v[i].pid, out_time(v[i].started_ms, st, sizeof st),
                   out_time(v[i].seen_ms, t, sizeof t), ago, v[i].alive ? "alive" : "lost");
        }
    }
    aj_worker_list_free(v, n);
    return rc;
}
