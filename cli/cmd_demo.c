/*
 * cmd_demo.c — `aj demo`: the main job the README runs. It submits a workload (many `echo`
 * jobs in batches, and a few `shell` jobs: some that say hello, one that fails its first attempt
 * and is retried, one that fails permanently and lands in the dead-letter queue), runs workers in
 * this process, prints progress and a summary, and exits 0 only if the outcome is exactly the
 * expected one.
 *
 * Each run uses a fresh queue named after its local start time (demo-YYYYMMDD-HHMMSS.mmm) and its
 * workers serve only that queue, so a demo store can be reused and the outcome is checked against
 * this run's jobs alone. Everything goes through the public API, in durable mode, as a user's
 * program would.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* The store the demo uses unless --db names one (AJ_DB is not used: a demo must not fill a
 * real store by accident). */
#define DEMO_DEFAULT_DB "sqlite:aj-demo.db"
/* Echo jobs submitted by default, and at most. */
#define DEMO_DEFAULT_JOBS 2000
#define DEMO_JOBS_MAX 1000000
/* Echo jobs per aj_submit_batch() call. */
#define DEMO_BATCH 500
/* Handler threads by default, and at most. */
#define DEMO_DEFAULT_CONCURRENCY 4
#define DEMO_CONCURRENCY_MAX 1024
/* Time between progress lines. */
#define DEMO_PROGRESS_MS 250
/* The demo gives up when its jobs are not all finished after this long. */
#define DEMO_TIMEOUT_MS (5 * AJ_MINUTE)
/* Shell jobs that print a greeting. */
#define DEMO_HELLO_JOBS 3
/* The retried job: attempts it is given, and the attempt on which it succeeds. */
#define DEMO_RETRY_ATTEMPTS 3
#define DEMO_RETRY_SUCCEEDS_ON 2
/* The exit status that makes a shell job fail permanently. */
#define DEMO_PERMANENT_EXIT 100
/* Bytes of one echo payload ({"n":N}). */
#define DEMO_PAYLOAD_MAX 32
/* Bytes of the demo's queue name. */
#define DEMO_QUEUE_MAX 48
/* Bytes of one "what was unexpected" message. */
#define DEMO_WHY_MAX 256

static const char demo_help[] =
    "Usage: aj demo [--jobs N] [--concurrency N] [--db URL]\n"
    "\n"
    "Runs a demo workload through workers in this process and prints progress and a summary:\n"
    "N echo jobs submitted in batches, 3 shell jobs that print a greeting, 1 shell job that\n"
    "fails its first attempt on purpose and is retried (backoff fixed:100ms), and 1 that exits\n"
    "100 and is dead-lettered at once. The summary shows jobs completed, retried and\n"
    "dead-lettered, wall time, throughput, fsyncs per job and submit-to-start latency.\n"
    "Every submit is durable (on disk before it returns).\n"
    "\n"
    "Each run uses a new queue named after its start time in local time,\n"
    "demo-YYYYMMDD-HHMMSS.mmm, so the store can be reused; inspect it afterwards with\n"
    "e.g. aj --db sqlite:aj-demo.db dlq ls.\n"
    "\n"
    "Flags:\n"
    "  --jobs N         echo jobs, 0..1000000 (default: 2000)\n"
    "  --concurrency N  worker threads, 1..1024 (default: 4)\n"
    "  --db URL         the store (default: sqlite:aj-demo.db; AJ_DB is not used here)\n"
    "  --json           print only the summary, as one JSON object\n"
    "\n"
    "Exit codes: 0 the outcome was exactly as expected, 1 it was not (or a store error),\n"
    "2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj demo --jobs 10000 --concurrency 4\n";

/* The shell jobs of the demo, by role. */
typedef struct demo_ids {
    uint64_t hello[DEMO_HELLO_JOBS];
    uint64_t retry;
    uint64_t dead;
} demo_ids;

/* The drain, run on its own thread so that this one can print progress meanwhile. */
typedef struct demo_drain {
    aj_engine *engine;
    int rc;
    int64_t end_ns;
    atomic_int done;
} demo_drain;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *drain_main(void *arg) {
    demo_drain *d = arg;
    d->rc = aj_workers_drain(d->engine, AJ_MINUTE);
    d->end_ns = mono_ns();
    atomic_store(&d->done, 1);
    return NULL;
}

/* Submits one shell job running `sh -c SCRIPT`. */
static int submit_sh(cli *c, const char *queue, const char *script, uint32_t max_attempts,
                     const char *backoff, uint64_t *id) {
    json_t *p = json_pack("{s:[s,s,s]}", "argv", "sh", "-c", script);
    char *payload = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (payload == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    aj_job_spec spec;
    aj_job_spec_init(&spec);
    spec.queue = queue;
    spec.type = "shell";
    spec.payload = payload;
    spec.payload_len = strlen(payload);
    spec.max_attempts = max_attempts;
    int rc = backoff != NULL ? aj_backoff_parse(backoff, &spec.backoff) : 0;
    if (rc == 0) {
        rc = aj_submit(c->engine, &spec, id);
    }
    free(payload);
    return rc != 0 ? cli_fail(rc, "cannot submit a demo job") : CLI_EXIT_OK;
}

static int submit_shell_jobs(cli *c, const char *queue, demo_ids *ids) {
    int rc = CLI_EXIT_OK;
    for (size_t i = 0; i < DEMO_HELLO_JOBS && rc == 0; i++) {
        rc = submit_sh(c, queue, "echo \"hello from job $AJ_JOB_ID (attempt $AJ_ATTEMPT)\"", 1,
                       NULL, &ids->hello[i]);
    }
    char script[DEMO_WHY_MAX];
    snprintf(script, sizeof script,
             "if [ \"$AJ_ATTEMPT\" -lt %d ]; then"
             " echo \"attempt $AJ_ATTEMPT fails on purpose\"; exit 1; fi;"
             " echo \"succeeded on attempt $AJ_ATTEMPT\"",
             DEMO_RETRY_SUCCEEDS_ON);
    if (rc == 0) {
        rc = submit_sh(c, queue, script, DEMO_RETRY_ATTEMPTS, "fixed:100ms", &ids->retry);
    }
    snprintf(script, sizeof script, "echo 'this job fails permanently'; exit %d",
             DEMO_PERMANENT_EXIT);
    if (rc == 0) {
        rc = submit_sh(c, queue, script, 1, NULL, &ids->dead);
    }
    return rc;
}

static int submit_echo_jobs(cli *c, const char *queue, size_t n) {
    static char payloads[DEMO_BATCH][DEMO_PAYLOAD_MAX];
    aj_job_spec specs[DEMO_BATCH];
    uint64_t ids[DEMO_BATCH];
    for (size_t done = 0; done < n;) {
        size_t batch = n - done < DEMO_BATCH ? n - done : DEMO_BATCH;
        for (size_t i = 0; i < batch; i++) {
            aj_job_spec_init(&specs[i]);
            specs[i].queue = queue;
            specs[i].type = "echo";
            int len = snprintf(payloads[i], DEMO_PAYLOAD_MAX, "{\"n\":%zu}", done + i + 1);
            specs[i].payload = payloads[i];
            specs[i].payload_len = (size_t)len;
        }
        int rc = aj_submit_batch(c->engine, specs, batch, ids);
        if (rc != 0) {
            return cli_fail(rc, "cannot submit demo jobs");
        }
        done += batch;
    }
    return CLI_EXIT_OK;
}

/* Prints one progress line: jobs finished by `at_ns`. Returns how many, 0 if it printed none. */
static uint64_t progress_line(cli *c, size_t total, int64_t start_ns, int64_t at_ns) {
    aj_stats s;
    if (c->json || aj_stats_get(c->engine, &s) != 0) {
        return 0;
    }
    uint64_t finished = s.process.completed + s.process.dead_lettered;
    double secs = (double)(at_ns - start_ns) / 1e9;
    printf("  %6.2fs  %" PRIu64 "/%zu jobs finished  %.0f jobs/s\n", secs, finished, total,
           secs > 0 ? (double)finished / secs : 0.0);
    fflush(stdout);
    return finished;
}

/* Prints a progress line every DEMO_PROGRESS_MS until the drain ends or the demo times out,
 * and a last one unless the last showed every job: stamped with the time the drain ended, so
 * it agrees with the summary's wall time. */
static int watch(cli *c, demo_drain *d, size_t total, int64_t start_ns) {
    int64_t deadline = start_ns + DEMO_TIMEOUT_MS * 1000000;
    uint64_t shown = 0;
    for (;;) {
        sleep_ms(DEMO_PROGRESS_MS);
        if (atomic_load(&d->done)) {
            break;
        }
        if (mono_ns() > deadline) {
            aj_workers_request_stop(c->engine);
            return cli_error(CLI_EXIT_ERROR, "the demo jobs did not finish within 5 minutes");
        }
        shown = progress_line(c, total, start_ns, mono_ns());
    }
    if (d->rc != 0) {
        return cli_fail(d->rc, "cannot drain the demo queue");
    }
    if (shown < total) {
        progress_line(c, total, start_ns, d->end_ns);
    }
    return CLI_EXIT_OK;
}

/* What the run produced, read back from the store. */
typedef struct demo_outcome {
    size_t completed;
    size_t dead;
    size_t other; /* neither completed nor dead: must be 0 */
    char why[DEMO_WHY_MAX];
} demo_outcome;

static int count_page(cli *c, aj_job *const *jobs, size_t n, void *ud) {
    (void)c;
    demo_outcome *o = ud;
    for (size_t i = 0; i < n; i++) {
        o->completed += jobs[i]->state == AJ_STATE_COMPLETED;
        o->dead += jobs[i]->state == AJ_STATE_DEAD;
        o->other += jobs[i]->state != AJ_STATE_COMPLETED && jobs[i]->state != AJ_STATE_DEAD;
    }
    return CLI_EXIT_OK;
}

/* Checks one job's state, attempts and (for dead jobs) reason; notes the first mismatch. */
static void expect_job(cli *c, demo_outcome *o, uint64_t id, aj_job_state state, uint32_t attempts,
                       aj_dead_reason reason) {
    aj_job *job = NULL;
    if (aj_job_get(c->engine, id, &job) != 0) {
        snprintf(o->why, sizeof o->why, "job %" PRIu64 " cannot be read", id);
    } else if (o->why[0] == '\0' &&
               (job->state != state || job->attempts != attempts || job->dead_reason != reason)) {
        snprintf(o->why, sizeof o->why,
                 "job %" PRIu64 " is %s after %" PRIu32 " attempts, expected %s after %" PRIu32, id,
                 aj_state_name(job->state), job->attempts, aj_state_name(state), attempts);
    }
    aj_job_free(job);
}

static void print_hello(cli *c, uint64_t id) {
    aj_job *job = NULL;
    if (aj_job_get(c->engine, id, &job) != 0) {
        return;
    }
    json_t *result = out_bytes_json(job->result, job->result_len);
    const char *output = json_string_value(json_object_get(result, "output"));
    printf("job %" PRIu64 " said: %s", id, output != NULL ? output : "(no output)\n");
    json_decref(result);
    aj_job_free(job);
}

static void print_summary(cli *c, const demo_ids *ids, size_t echo_jobs, size_t total,
                          const aj_stats *s, double wall, const demo_outcome *o) {
    aj_job *dead = NULL;
    const char *dead_error = "";
    if (aj_job_get(c->engine, ids->dead, &dead) == 0 && dead->error != NULL) {
        dead_error = dead->error;
    }
    double p50 = aj_latency_quantile_ms(s->process.start_latency_us, 0.50);
    double p99 = aj_latency_quantile_ms(s->process.start_latency_us, 0.99);
    double fsyncs = total > 0 ? (double)s->process.fsyncs / (double)total : 0.0;
    double rate = wall > 0 ? (double)total / wall : 0.0;
    int ok = o->why[0] == '\0';
    if (c->json) {
        out_json(json_pack("{s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:{s:I, s:I}, s:b, s:s}", "jobs",
                           (json_int_t)total, "completed", (json_int_t)o->completed, "retried",
                           (json_int_t)s->process.retried, "dead_lettered", (json_int_t)o->dead,
                           "wall_s", wall, "jobs_per_s", rate, "fsyncs_per_job", fsyncs,
                           "start_latency_us", "p50", (json_int_t)(p50 * 1000 + 0.5), "p99",
                           (json_int_t)(p99 * 1000 + 0.5), "as_expected", ok, "unexpected",
                           o->why));
    } else {
        printf("summary\n");
        printf("  %-18s %zu (%zu echo, %zu shell)\n", "jobs completed", o->completed, echo_jobs,
               o->completed >= echo_jobs ? o->completed - echo_jobs : 0);
        printf("  %-18s %" PRIu64 " (job %" PRIu64 " failed attempt 1 on purpose)\n", "retried",
               s->process.retried, ids->retry);
        printf("  %-18s %zu (job %" PRIu64 ": %s)\n", "dead-lettered", o->dead, ids->dead,
               dead_error);
        printf("  %-18s %.3f s\n", "wall time", wall);
        printf("  %-18s %.0f jobs/s\n", "throughput", rate);
        printf("  %-18s %.3f (%" PRIu64 " fsyncs)\n", "fsyncs per job", fsyncs, s->process.fsyncs);
        printf("  %-18s p50 %.3f ms, p99 %.3f ms\n", "submit-to-start", p50, p99);
        printf("outcome: %s%s\n", ok ? "as expected" : "NOT as expected: ", o->why);
    }
    aj_job_free(dead);
}

/* Reads the run back and compares it with what the workload must produce. */
static int verify(cli *c, const char *queue, const demo_ids *ids, size_t echo_jobs,
                  demo_outcome *o) {
    memset(o, 0, sizeof *o);
    aj_job_filter f;
    memset(&f, 0, sizeof f);
    f.queue = queue;
    int rc = cli_list_pages(c, &f, 0, count_page, o);
    if (rc != 0) {
        return rc;
    }
    size_t want_completed = echo_jobs + DEMO_HELLO_JOBS + 1;
    if (o->completed != want_completed || o->dead != 1 || o->other != 0) {
        snprintf(o->why, sizeof o->why,
                 "%zu completed, %zu dead, %zu unfinished; expected %zu, 1, 0", o->completed,
                 o->dead, o->other, want_completed);
    }
    for (size_t i = 0; i < DEMO_HELLO_JOBS; i++) {
        expect_job(c, o, ids->hello[i], AJ_STATE_COMPLETED, 1, AJ_DEAD_NONE);
    }
    expect_job(c, o, ids->retry, AJ_STATE_COMPLETED, DEMO_RETRY_SUCCEEDS_ON, AJ_DEAD_NONE);
    expect_job(c, o, ids->dead, AJ_STATE_DEAD, 1, AJ_DEAD_PERMANENT);
    return CLI_EXIT_OK;
}

/* Starts the pool, submits, watches the drain, stops. *wall receives the seconds taken. */
static int run(cli *c, const char *queue, size_t echo_jobs, uint32_t concurrency, demo_ids *ids,
               double *wall) {
    const char *queues[] = {queue};
    aj_worker_opts wopts;
    aj_worker_opts_init(&wopts);
    wopts.queues = queues;
    wopts.n_queues = 1;
    wopts.concurrency = concurrency;
    int arc = aj_register_builtins(c->engine);
    if (arc == 0) {
        arc = aj_workers_start(c->engine, &wopts);
    }
    if (arc != 0) {
        return cli_fail(arc, "cannot start the workers");
    }
    size_t total = echo_jobs + DEMO_HELLO_JOBS + 2;
    if (!c->json) {
        printf("demo: %zu echo jobs and %d shell jobs on queue %s in %s, %" PRIu32 " workers\n",
               echo_jobs, DEMO_HELLO_JOBS + 2, queue, c->db_url, concurrency);
        fflush(stdout);
    }
    int64_t start = mono_ns();
    int rc = submit_shell_jobs(c, queue, ids);
    if (rc == 0) {
        rc = submit_echo_jobs(c, queue, echo_jobs);
    }
    if (rc == 0 && !c->json) {
        double secs = (double)(mono_ns() - start) / 1e9;
        printf("  %6.2fs  %zu jobs submitted (%.0f jobs/s, each batch durable before the next)\n",
               secs, total, secs > 0 ? (double)total / secs : 0.0);
        fflush(stdout);
    }
    demo_drain d = {c->engine, 0, 0, 0};
    pthread_t thread;
    int started = 0;
    if (rc == 0) {
        started = pthread_create(&thread, NULL, drain_main, &d) == 0;
        rc = started ? watch(c, &d, total, start) : cli_error(CLI_EXIT_ERROR, "no thread");
    }
    if (rc != 0) {
        aj_workers_request_stop(c->engine); /* ends the drain too */
    }
    if (started) {
        pthread_join(thread, NULL);
    }
    *wall = (double)(d.end_ns - start) / 1e9;
    arc = aj_workers_stop(c->engine);
    if (arc != 0 && rc == 0) {
        rc = cli_fail(arc, "cannot stop the workers");
    }
    return rc;
}

int cmd_demo(cli *c, int argc, char **argv) {
    const char *jobs = NULL;
    const char *concurrency = NULL;
    const arg_flag flags[] = {
        {"--jobs", &jobs, NULL}, {"--concurrency", &concurrency, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj demo", demo_help, flags, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    uint64_t n_jobs = DEMO_DEFAULT_JOBS;
    uint64_t n_conc = DEMO_DEFAULT_CONCURRENCY;
    if (jobs != NULL && cli_parse_uint("--jobs", jobs, 0, DEMO_JOBS_MAX, &n_jobs) != 0) {
        return CLI_EXIT_USAGE;
    }
    if (concurrency != NULL &&
        cli_parse_uint("--concurrency", concurrency, 1, DEMO_CONCURRENCY_MAX, &n_conc) != 0) {
        return CLI_EXIT_USAGE;
    }
    if (!c->db_given) {
        c->db_url = DEMO_DEFAULT_DB;
    }
    aj_engine_opts opts;
    aj_engine_opts_init(&opts);
    opts.log = cli_log_stderr;
    opts.log_level = AJ_LOG_WARN; /* the demo's own output is the progress and summary */
    rc = cli_open(c, &opts);
    if (rc != 0) {
        return rc;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* Named after the run's local start time, to the millisecond, so that two runs a second
     * apart still get their own queue. */
    char queue[DEMO_QUEUE_MAX];
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    char stamp[24];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(queue, sizeof queue, "demo-%s.%03d", stamp, (int)(now.tv_nsec / 1000000));
    demo_ids ids;
    memset(&ids, 0, sizeof ids);
    double wall = 0;
    rc = run(c, queue, (size_t)n_jobs, (uint32_t)n_conc, &ids, &wall);
    if (rc != 0) {
        return rc;
    }
    demo_outcome o;
    rc = verify(c, queue, &ids, (size_t)n_jobs, &o);
    aj_stats s;
    int arc = rc == 0 ? aj_stats_get(c->engine, &s) : 0;
    if (arc != 0) {
        rc = cli_fail(arc, "cannot read statistics");
    }
    if (rc != 0) {
        return rc;
    }
    if (!c->json) {
        for (size_t i = 0; i < DEMO_HELLO_JOBS; i++) {
            print_hello(c, ids.hello[i]);
        }
    }
    print_summary(c, &ids, (size_t)n_jobs, (size_t)n_jobs + DEMO_HELLO_JOBS + 2, &s, wall, &o);
    return o.why[0] == '\0' ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}
