/*
 * aj_soak.c — the soak load: a steady mixed workload on one SQLite store for a given time,
 * sampled at a fixed interval into a CSV, so that growth (memory, descriptors, threads, store
 * size) and latency drift show up. Driven by scripts/soak.sh, which plots and judges the CSV.
 *
 *   aj_soak --dir DIR --duration-s N --interval-s N [--rate JOBS_PER_S] [--retention-s N]
 *
 * The load, each second: `rate` jobs of type `soak` (one in DEAD_EVERY fails permanently and is
 * dead-lettered), WF_PER_S two-step workflows, and a schedule firing every second; every
 * DLQ_SWEEP_S the dead letters are swept: one in REDRIVE_EVERY redriven (it then fails again),
 * the rest purged. Finished jobs and workflows go after `retention` (the engine's collector), so
 * the store should level off once the first retention period has passed.
 *
 * CSV columns: t_s, rss_kb, fds, threads, store_kb (database plus WAL), submitted (so far),
 * completed (jobs completed or dead-lettered by this process in the interval), submit_p50_ms,
 * submit_p99_ms (the aj_submit calls of the interval), start_p50_ms, start_p99_ms (ready to
 * claimed, the interval's claims), ready, running, dead (exact counts in the store). Uses only the
 * public API (aj.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aj.h"

int main(int argc, char **argv);

#define DEAD_EVERY 20            /* one job in this many fails for good */
#define REDRIVE_EVERY 10         /* one dead letter in this many is redriven, the rest purged */
#define DLQ_SWEEP_S 10           /* seconds between dead-letter sweeps */
#define WF_PER_S 2               /* workflows started each second */
#define TICKS_PER_S 10           /* the load is spread over this many slices of a second */
#define SUBMIT_SAMPLES_MAX 65536 /* submit latencies kept per interval (later ones not sampled) */
#define WORKERS 4                /* handler threads */

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "aj_soak: %s: %s (%s)\n", what, aj_strerror(rc), aj_errmsg());
    exit(1);
}

static int soak_job(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    if (job->payload_len > 0 && strstr(job->payload, "\"fail\"") != NULL) {
        return aj_ctx_fail(ctx, "soak: planned permanent failure", 1);
    }
    return aj_ctx_set_result(ctx, "{\"ok\":1}", 8);
}

static int add_one(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d", atoi(in.len > 0 ? in.data : "0") + 1);
    return aj_step_set_result(ctx, buf, (size_t)n);
}

static int soak_wf(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a, b;
    AJ_TRY(aj_step(wf, "one", add_one, NULL, input, &a));
    AJ_TRY(aj_step(wf, "two", add_one, NULL, a, &b));
    return aj_wf_set_result(wf, b.data, b.len);
}

/* A field of /proc/self/status ("VmRSS:", "Threads:"), or -1. */
static long proc_status(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, n) == 0) {
            v = atol(line + n);
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

static long open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    return n - 1; /* the descriptor of the listing itself */
}

static long long file_kb(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size / 1024 : 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(int64_t *v, size_t n, double q) {
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, cmp_i64);
    return (double)v[(size_t)(q * (double)(n - 1) + 0.5)] / 1000.0;
}

/* Purges the dead letters, redriving one in REDRIVE_EVERY. */
static void sweep_dlq(aj_engine *e, uint64_t *swept) {
    aj_job_filter f = {0};
    f.state = AJ_STATE_DEAD;
    f.limit = 1000;
    aj_job **jobs = NULL;
    size_t n = 0;
    int rc = aj_job_list(e, &f, &jobs, &n);
    if (rc != 0) {
        die("listing dead letters", rc);
    }
    for (size_t i = 0; i < n; i++) {
        rc = ++*swept % REDRIVE_EVERY == 0 ? aj_dlq_redrive(e, jobs[i]->id)
                                           : aj_dlq_purge(e, jobs[i]->id);
        if (rc != 0 && rc != AJ_ESTATE) {
            die("sweeping a dead letter", rc);
        }
    }
    aj_job_list_free(jobs, n);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    long duration_s = 3600, interval_s = 60, rate = 50, retention_s = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--duration-s") == 0) {
            duration_s = atol(argv[i + 1]);
        } else if (strcmp(argv[i], "--interval-s") == 0) {
            interval_s = atol(argv[i + 1]);
        } else if (strcmp(argv[i], "--rate") == 0) {
            rate = atol(argv[i + 1]);
        } else if (strcmp(argv[i], "--retention-s") == 0) {
            retention_s = atol(argv[i + 1]);
        } else {
            fprintf(stderr, "aj_soak: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (dir == NULL || duration_s <= 0 || interval_s <= 0 || rate <= 0 || retention_s <= 0) {
        fprintf(stderr, "usage: aj_soak --dir DIR --duration-s N --interval-s N [--rate JOBS_PER_S]"
                        " [--retention-s N] (positive numbers)\n");
        return 2;
    }
    char url[1200], db[1100], wal[1100];
    snprintf(db, sizeof db, "%s/soak.db", dir);
    snprintf(wal, sizeof wal, "%s/soak.db-wal", dir);
    snprintf(url, sizeof url, "sqlite:%s", db);
    aj_engine_opts o;
    aj_engine_opts_init(&o);
    o.retention_ms = retention_s * AJ_SECOND;
    aj_engine *e = NULL;
    int rc = aj_engine_open(&e, url, &o);
    if (rc != 0) {
        die("opening the store", rc);
    }
    if ((rc = aj_register(e, "soak", soak_job, NULL)) != 0 ||
        (rc = aj_workflow_register(e, "soak-wf", soak_wf, NULL)) != 0) {
        die("registering", rc);
    }
    aj_schedule_spec ss;
    aj_schedule_spec_init(&ss);
    ss.name = "soak-tick";
    ss.every_ms = AJ_SECOND;
    ss.job.queue = "soak";
    ss.job.type = "soak";
    if ((rc = aj_schedule_add(e, &ss)) != 0 && rc != AJ_EEXISTS) {
        die("adding the schedule", rc);
    }
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = WORKERS;
    if ((rc = aj_workers_start(e, &wo)) != 0 || (rc = aj_schedules_start(e)) != 0) {
        die("starting workers and schedules", rc);
    }

    static int64_t lat[SUBMIT_SAMPLES_MAX];
    static aj_stats st, prev;
    size_t n_lat = 0;
    uint64_t submitted = 0, wfs = 0, swept = 0;
    printf("t_s,rss_kb,fds,threads,store_kb,submitted,completed,submit_p50_ms,submit_p99_ms,"
           "start_p50_ms,start_p99_ms,ready,running,dead\n");
    fflush(stdout);
    if ((rc = aj_stats_get(e, &prev)) != 0) {
        die("reading stats", rc);
    }
    int64_t start = mono_us(), next_sample = start + interval_s * 1000000;
    int64_t next_sweep = start + DLQ_SWEEP_S * 1000000;
    for (long tick = 0;; tick++) {
        int64_t slot = start + tick * (1000000 / TICKS_PER_S);
        int64_t now = mono_us();
        if (now < slot) {
            usleep((useconds_t)(slot - now));
        }
        if (mono_us() - start >= duration_s * 1000000) {
            break;
        }
        if ((rc = aj_workers_error(e)) != 0) {
            die("worker pool stopped", rc);
        }
        /* This slice's share of the second's jobs, spread evenly. */
        long due = rate * (tick % TICKS_PER_S + 1) / TICKS_PER_S -
                   rate * (tick % TICKS_PER_S) / TICKS_PER_S;
        for (long j = 0; j < due; j++) {
            char payload[64];
            int n = snprintf(payload, sizeof payload, "{\"n\":%llu,\"do\":\"%s\"}",
                             (unsigned long long)submitted,
                             submitted % DEAD_EVERY == DEAD_EVERY - 1 ? "fail" : "work");
            aj_job_spec s;
            aj_job_spec_init(&s);
            s.queue = "soak";
            s.type = "soak";
            s.payload = payload;
            s.payload_len = (size_t)n;
            uint64_t id;
            int64_t t0 = mono_us();
            if ((rc = aj_submit(e, &s, &id)) != 0) {
                die("submitting", rc);
            }
            if (n_lat < SUBMIT_SAMPLES_MAX) {
                lat[n_lat++] = mono_us() - t0;
            }
            submitted++;
        }
        if (tick % (TICKS_PER_S / WF_PER_S) == 0) {
            char in[32];
            int n = snprintf(in, sizeof in, "%llu", (unsigned long long)wfs++);
            if ((rc = aj_wf_start(e, "soak-wf", in, (size_t)n, NULL, NULL)) != 0) {
                die("starting a workflow", rc);
            }
        }
        if (mono_us() >= next_sweep) {
            sweep_dlq(e, &swept);
            next_sweep += DLQ_SWEEP_S * 1000000;
        }
        if (mono_us() >= next_sample) {
            if ((rc = aj_stats_get(e, &st)) != 0) {
                die("reading stats", rc);
            }
            uint64_t d[AJ_LAT_BUCKETS];
            for (size_t b = 0; b < AJ_LAT_BUCKETS; b++) {
                d[b] = st.process.start_latency_us[b] - prev.process.start_latency_us[b];
            }
            uint64_t done = st.process.completed + st.process.dead_lettered;
            uint64_t done_prev = prev.process.completed + prev.process.dead_lettered;
            printf("%.0f,%ld,%ld,%ld,%lld,%llu,%lld,%.2f,%.2f,%.2f,%.2f,%llu,%llu,%llu\n",
                   (double)(mono_us() - start) / 1e6, proc_status("VmRSS:"), open_fds(),
                   proc_status("Threads:"), file_kb(db) + file_kb(wal),
                   (unsigned long long)submitted, (long long)done - (long long)done_prev,
                   pct_ms(lat, n_lat, 0.5), pct_ms(lat, n_lat, 0.99),
                   aj_latency_quantile_ms(d, 0.5), aj_latency_quantile_ms(d, 0.99),
                   (unsigned long long)st.jobs[AJ_STATE_READY],
                   (unsigned long long)st.jobs[AJ_STATE_RUNNING],
                   (unsigned long long)st.jobs[AJ_STATE_DEAD]);
            fflush(stdout);
            prev = st;
            n_lat = 0;
            next_sample += interval_s * 1000000;
        }
    }
    aj_engine_close(e);
    return 0;
}
