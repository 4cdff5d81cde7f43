/*
 * bench.c — the benchmark: durable-mode throughput and latency of the job engine on SQLite,
 * each figure printed beside the disk's raw fsync rate measured in the same run, because this
 * machine's fsync rate swings by more than 2x within minutes. Usage:
 *
 *   aj_bench [--dir DIR] [--jobs N] [--quick]
 *
 * Figures: raw fsync rate (write + fdatasync of 64-byte records, one thread) measured before and
 * after each figure; submit throughput one job per call and in batches; fsyncs per acknowledged
 * submit with many concurrent submitters; drain throughput of `echo` jobs with 1, 2 and 4 worker
 * threads; submit-to-start latency p50/p99 with idle workers in the same process; a 10 MiB
 * payload submitted and read back (stored as content-addressed chunks), against writing the same
 * bytes to a file with fsync and reading them back (--blobs-only runs just that).
 * Uses only the public API (aj.h).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aj.h"

int main(int argc, char **argv);

/* How long one raw fsync measurement runs. */
#define FSYNC_MEASURE_US 1000000
/* Concurrent submitting threads for the fsync-sharing figure. */
#define SUBMIT_THREADS 16
/* Jobs per batch in the bulk submit figure. */
#define BULK_BATCH 1000
/* Latency samples. */
#define LATENCY_SAMPLES 300

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "aj_bench: %s: %s (%s)\n", what, aj_strerror(rc), aj_errmsg());
    exit(1);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t percentile(int64_t *v, size_t n, double q) {
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

/* ----------------------------------------------------------------------------------------- */
/* Raw fsync rate                                                                            */

typedef struct fsync_result {
    double rate;
    int64_t p50_us, p99_us;
} fsync_result;

static fsync_result measure_fsync(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    static int64_t lat[200000];
    size_t n = 0;
    char rec[64];
    memset(rec, 'x', sizeof rec);
    int64_t start = now_us(), t = start;
    while (t - start < FSYNC_MEASURE_US && n < sizeof lat / sizeof lat[0]) {
        if (write(fd, rec, sizeof rec) != (ssize_t)sizeof rec || fdatasync(fd) != 0) {
            perror("fsync probe");
            exit(1);
        }
        int64_t t2 = now_us();
        lat[n++] = t2 - t;
        t = t2;
    }
    close(fd);
    unlink(path);
    fsync_result r;
    r.rate = (double)n * 1e6 / (double)(t - start);
    r.p50_us = percentile(lat, n, 0.50);
    r.p99_us = percentile(lat, n, 0.99);
    return r;
}

/* ----------------------------------------------------------------------------------------- */
/* Engine helpers                                                                            */

static aj_engine *open_store(const char *dir, const char *name) {
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s/%s", dir, name);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    aj_engine *e;
    int rc = aj_engine_open(&e, url, NULL);
    if (rc != 0) {
        die("open", rc);
    }
    return e;
}

static void echo_spec(aj_job_spec *s) {
    aj_job_spec_init(s);
    s->type = "echo";
    s->payload = "{\"n\":1}";
    s->payload_len = 7;
}

static uint64_t fsyncs_of(aj_engine *e) {
    aj_stats st;
    int rc = aj_stats_get(e, &st);
    if (rc != 0) {
        die("stats", rc);
    }
    return st.process.fsyncs;
}

/* One job per call from one thread: every submit waits for its own fsync. */
static double bench_submit_single(const char *dir, int n) {
    aj_engine *e = open_store(dir, "single.db");
    aj_job_spec s;
    echo_spec(&s);
    int64_t t0 = now_us();
    for (int i = 0; i < n; i++) {
        uint64_t id;
        int rc = aj_submit(e, &s, &id);
        if (rc != 0) {
            die("submit", rc);
        }
    }
    double rate = (double)n * 1e6 / (double)(now_us() - t0);
    aj_engine_close(e);
    return rate;
}

static double bench_submit_bulk(const char *dir, int n) {
    aj_engine *e = open_store(dir, "bulk.db");
    aj_job_spec *specs = calloc(BULK_BATCH, sizeof *specs);
    uint64_t *ids = calloc(BULK_BATCH, sizeof *ids);
    for (int i = 0; i < BULK_BATCH; i++) {
        echo_spec(&specs[i]);
    }
    int64_t t0 = now_us();
    for (int done = 0; done < n; done += BULK_BATCH) {
        int rc = aj_submit_batch(e, specs, BULK_BATCH, ids);
        if (rc != 0) {
            die("submit batch", rc);
        }
    }
    double rate = (double)n * 1e6 / (double)(now_us() - t0);
    free(specs);
    free(ids);
    aj_engine_close(e);
    return rate;
}

typedef struct submitter {
    aj_engine *e;
    int n;
} submitter;

static void *submit_thread(void *arg) {
    submitter *s = arg;
    aj_job_spec spec;
    echo_spec(&spec);
    for (int i = 0; i < s->n; i++) {
        uint64_t id;
        int rc = aj_submit(s->e, &spec, &id);
        if (rc != 0) {
            die("submit", rc);
        }
    }
    return NULL;
}

/* Many threads submitting one job per call: group commit shares fsyncs between them. */
static void bench_submit_concurrent(const char *dir, int n, double *rate, double *fsync_per) {
    aj_engine *e = open_store(dir, "concurrent.db");
    pthread_t th[SUBMIT_THREADS];
    submitter s = {e, n / SUBMIT_THREADS};
    uint64_t f0 = fsyncs_of(e);
    int64_t t0 = now_us();
    for (int i = 0; i < SUBMIT_THREADS; i++) {
        pthread_create(&th[i], NULL, submit_thread, &s);
    }
    for (int i = 0; i < SUBMIT_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    int total = s.n * SUBMIT_THREADS;
    *rate = (double)total * 1e6 / (double)(now_us() - t0);
    *fsync_per = (double)(fsyncs_of(e) - f0) / (double)total;
    aj_engine_close(e);
}

static double bench_drain(const char *dir, int n, uint32_t threads) {
    char name[64];
    snprintf(name, sizeof name, "drain%u.db", threads);
    aj_engine *e = open_store(dir, name);
    aj_job_spec *specs = calloc(BULK_BATCH, sizeof *specs);
    uint64_t *ids = calloc(BULK_BATCH, sizeof *ids);
    for (int i = 0; i < BULK_BATCH; i++) {
        echo_spec(&specs[i]);
    }
    for (int done = 0; done < n; done += BULK_BATCH) {
        int rc = aj_submit_batch(e, specs, BULK_BATCH, ids);
        if (rc != 0) {
            die("submit batch", rc);
        }
    }
    free(specs);
    free(ids);
    int rc = aj_register_builtins(e);
    if (rc != 0) {
        die("register", rc);
    }
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    o.concurrency = threads;
    int64_t t0 = now_us();
    if ((rc = aj_workers_start(e, &o)) != 0) {
        die("workers", rc);
    }
    if ((rc = aj_workers_drain(e, 0)) != 0) {
        die("drain", rc);
    }
    double rate = (double)n * 1e6 / (double)(now_us() - t0);
    aj_workers_stop(e);
    aj_stats st;
    if ((rc = aj_stats_get(e, &st)) != 0) {
        die("stats", rc);
    }
    if (st.jobs[AJ_STATE_COMPLETED] != (uint64_t)n) {
        fprintf(stderr, "aj_bench: drain completed %llu of %d jobs\n",
                (unsigned long long)st.jobs[AJ_STATE_COMPLETED], n);
        exit(1);
    }
    aj_engine_close(e);
    return rate;
}

/* Submit-to-start latency: the payload carries the submit time; the handler records the gap. */
static int64_t latencies[LATENCY_SAMPLES];
static atomic_int n_latencies;

static int latency_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ctx;
    (void)ud;
    int64_t t = now_us();
    int64_t sent = strtoll(job->payload, NULL, 10);
    int i = atomic_fetch_add(&n_latencies, 1);
    if (i < LATENCY_SAMPLES) {
        latencies[i] = t - sent;
    }
    return 0;
}

static void bench_latency(const char *dir, int64_t *p50, int64_t *p99) {
    aj_engine *e = open_store(dir, "latency.db");
    int rc = aj_register(e, "stamp", latency_handler, NULL);
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    o.concurrency = 2;
    if (rc != 0 || (rc = aj_workers_start(e, &o)) != 0) {
        die("workers", rc);
    }
    usleep(100000); /* let the workers go idle */
    for (int i = 0; i < LATENCY_SAMPLES; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "%lld", (long long)now_us());
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "stamp";
        s.payload = payload;
        s.payload_len = (size_t)len;
        uint64_t id;
        if ((rc = aj_submit(e, &s, &id)) != 0) {
            die("submit", rc);
        }
        usleep(2000); /* one at a time, to idle workers */
    }
    while (atomic_load(&n_latencies) < LATENCY_SAMPLES) {
        usleep(1000);
    }
    aj_workers_stop(e);
    aj_engine_close(e);
    *p50 = percentile(latencies, LATENCY_SAMPLES, 0.50);
    *p99 = percentile(latencies, LATENCY_SAMPLES, 0.99);
}

/* ----------------------------------------------------------------------------------------- */
/* Workflows                                                                                  */

/* Workflows in flight in the throughput figure. */
#define WF_IN_FLIGHT 50
/* Handler threads of the workflow figures. */
#define WF_WORKER_THREADS 32
/* Events in the long history whose replay is measured. */
#define WF_LONG_STEPS 10000

static int add_one(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)ud;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", in.len ? atoll(in.data) + 1 : 1);
    return aj_step_set_result(ctx, buf, (size_t)n);
}

static int three_steps(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a, b, c;
    char t1[32], t2[32];
    AJ_TRY(aj_step(wf, "one", add_one, NULL, input, &a));
    snprintf(t1, sizeof t1, "%.*s", (int)a.len, (const char *)a.data);
    aj_bytes in2 = {t1, strlen(t1)};
    AJ_TRY(aj_step(wf, "two", add_one, NULL, in2, &b));
    snprintf(t2, sizeof t2, "%.*s", (int)b.len, (const char *)b.data);
    aj_bytes in3 = {t2, strlen(t2)};
    AJ_TRY(aj_step(wf, "three", add_one, NULL, in3, &c));
    return aj_wf_set_result(wf, c.data, c.len);
}

static int one_step(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes a;
    AJ_TRY(aj_step(wf, "one", add_one, NULL, input, &a));
    return aj_wf_set_result(wf, a.data, a.len);
}

static int noop_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)ud;
    (void)arg;
    *out = malloc(3);
    memcpy(*out, "ok", 3);
    *len = 2;
    return 0;
}

static int long_history(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    AJ_TRY(aj_wf_set_query(wf, "noop", noop_query, NULL));
    for (int i = 0; i < WF_LONG_STEPS; i++) {
        char name[32];
        snprintf(name, sizeof name, "s%d", i);
        AJ_TRY(aj_step(wf, name, add_one, NULL, input, NULL));
    }
    AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    return 0;
}

typedef struct wf_runner {
    aj_engine *e;
    const char *type;
    int n;
    int64_t *lat;
} wf_runner;

static void *wf_thread(void *arg) {
    wf_runner *r = arg;
    for (int i = 0; i < r->n; i++) {
        int64_t t0 = now_us();
        char *id = NULL;
        int rc = aj_wf_start(r->e, r->type, "0", 1, NULL, &id);
        aj_wf_state st;
        if (rc == 0) {
            rc = aj_wf_wait(r->e, id, 60000, &st);
        }
        if (rc != 0 || st != AJ_WF_COMPLETED) {
            die("workflow", rc ? rc : AJ_EFAILED);
        }
        r->lat[i] = now_us() - t0;
        aj_free(id);
    }
    return NULL;
}

static aj_engine *open_wf_store(const char *dir, const char *name) {
    aj_engine *e = open_store(dir, name);
    int rc = aj_workflow_register(e, "three", three_steps, NULL);
    if (rc == 0) {
        rc = aj_workflow_register(e, "one", one_step, NULL);
    }
    if (rc == 0) {
        rc = aj_workflow_register(e, "long", long_history, NULL);
    }
    aj_worker_opts o;
    aj_worker_opts_init(&o);
    /* Workflow tasks spend most of their time waiting for their commit's fsync, so more
     * threads than cores keep the committer's batches full. */
    o.concurrency = WF_WORKER_THREADS;
    if (rc == 0) {
        rc = aj_workers_start(e, &o);
    }
    if (rc != 0) {
        die("workflow workers", rc);
    }
    return e;
}

/* Workflows of 3 inline steps, WF_IN_FLIGHT at once: workflows/s and latency. */
static double bench_wf_throughput(const char *dir, int n, int64_t *p50, int64_t *p99) {
    aj_engine *e = open_wf_store(dir, "wf3.db");
    pthread_t th[WF_IN_FLIGHT];
    wf_runner r[WF_IN_FLIGHT];
    int per = n / WF_IN_FLIGHT;
    int64_t *lat = calloc((size_t)per * WF_IN_FLIGHT, sizeof *lat);
    int64_t t0 = now_us();
    for (int i = 0; i < WF_IN_FLIGHT; i++) {
        r[i] = (wf_runner){e, "three", per, lat + (size_t)i * per};
        pthread_create(&th[i], NULL, wf_thread, &r[i]);
    }
    for (int i = 0; i < WF_IN_FLIGHT; i++) {
        pthread_join(th[i], NULL);
    }
    double rate = (double)per * WF_IN_FLIGHT * 1e6 / (double)(now_us() - t0);
    *p50 = percentile(lat, (size_t)per * WF_IN_FLIGHT, 0.50);
    *p99 = percentile(lat, (size_t)per * WF_IN_FLIGHT, 0.99);
    free(lat);
    aj_engine_close(e);
    return rate;
}

/* One single-step workflow at a time: end-to-end latency. */
static void bench_wf_latency(const char *dir, int n, int64_t *p50, int64_t *p99) {
    aj_engine *e = open_wf_store(dir, "wf1.db");
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    wf_runner r = {e, "one", n, lat};
    wf_thread(&r);
    *p50 = percentile(lat, (size_t)n, 0.50);
    *p99 = percentile(lat, (size_t)n, 0.99);
    free(lat);
    aj_engine_close(e);
}

/* A workflow with a 10,000-event history: the cost of replaying it from the store (a query) and
 * of a wake-up with the history cached (a signal to the end). */
static void bench_wf_replay(const char *dir, int64_t *from_store_us, int64_t *cached_us) {
    aj_engine *e = open_wf_store(dir, "wflong.db");
    aj_wf_start_opts o = {"long", 0, 0};
    int rc = aj_wf_start(e, "long", "0", 1, &o, NULL);
    /* Wait until all steps are recorded (the run waits for its signal). */
    for (int i = 0; rc == 0 && i < 6000; i++) {
        aj_wf_info *info;
        rc = aj_wf_get(e, "long", &info);
        uint64_t n = rc == 0 ? info->events : 0;
        aj_wf_info_free(info);
        if (n >= WF_LONG_STEPS + 1) {
            break;
        }
        usleep(10000);
    }
    char *out = NULL;
    size_t len;
    int64_t t0 = now_us();
    if (rc == 0) {
        rc = aj_wf_query(e, "long", "noop", &out, &len);
    }
    *from_store_us = now_us() - t0;
    free(out);
    t0 = now_us();
    aj_wf_state st;
    if (rc == 0) {
        rc = aj_wf_signal(e, "long", "go", "", 0);
    }
    if (rc == 0) {
        rc = aj_wf_wait(e, "long", 60000, &st);
    }
    *cached_us = now_us() - t0;
    if (rc != 0) {
        die("replay benchmark", rc);
    }
    aj_engine_close(e);
}

/* ----------------------------------------------------------------------------------------- */
/* Large payloads                                                                            */

/* Bytes of the large payload, and the runs each figure is the median of. */
#define BLOB_BENCH_BYTES ((size_t)10 << 20)
#define BLOB_BENCH_RUNS 5

typedef struct blob_figures {
    int64_t submit_us, resubmit_us, get_us; /* aj: new payload, the same again, read back */
    int64_t file_write_us, file_read_us;    /* the same bytes to a file, fsync, read back */
} blob_figures;

static void bench_blobs(const char *dir, blob_figures *out) {
    aj_engine *e = open_store(dir, "blobs.db");
    char *p = malloc(BLOB_BENCH_BYTES);
    char *back = malloc(BLOB_BENCH_BYTES);
    if (p == NULL || back == NULL) {
        die("blob benchmark", AJ_ENOMEM);
    }
    int64_t sub[BLOB_BENCH_RUNS], resub[BLOB_BENCH_RUNS], get[BLOB_BENCH_RUNS];
    int64_t fw[BLOB_BENCH_RUNS], fr[BLOB_BENCH_RUNS];
    for (int run = 0; run < BLOB_BENCH_RUNS; run++) {
        /* New content every run, so the first submit stores it and nothing is deduplicated. */
        uint32_t x = 12345u + (uint32_t)run;
        for (size_t i = 0; i < BLOB_BENCH_BYTES; i++) {
            x = x * 1103515245u + 12345u;
            p[i] = (char)(x >> 16);
        }
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "blob";
        s.payload = p;
        s.payload_len = BLOB_BENCH_BYTES;
        uint64_t id, id2;
        int64_t t0 = now_us();
        int rc = aj_submit(e, &s, &id);
        int64_t t1 = now_us();
        if (rc == 0) {
            rc = aj_submit(e, &s, &id2);
        }
        int64_t t2 = now_us();
        aj_job *j = NULL;
        if (rc == 0) {
            rc = aj_job_get(e, id, &j);
        }
        int64_t t3 = now_us();
        if (rc != 0) {
            die("blob benchmark", rc);
        }
        if (j->payload_len != BLOB_BENCH_BYTES || memcmp(j->payload, p, BLOB_BENCH_BYTES) != 0) {
            die("blob benchmark: payload read back differs", AJ_ECORRUPT);
        }
        aj_job_free(j);
        sub[run] = t1 - t0;
        resub[run] = t2 - t1;
        get[run] = t3 - t2;

        char path[4200];
        snprintf(path, sizeof path, "%s/blob-file-%d", dir, run);
        t0 = now_us();
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, p, BLOB_BENCH_BYTES) != (ssize_t)BLOB_BENCH_BYTES ||
            fsync(fd) != 0 || close(fd) != 0) {
            perror(path);
            exit(1);
        }
        t1 = now_us();
        fd = open(path, O_RDONLY);
        if (fd < 0 || read(fd, back, BLOB_BENCH_BYTES) != (ssize_t)BLOB_BENCH_BYTES) {
            perror(path);
            exit(1);
        }
        close(fd);
        t2 = now_us();
        unlink(path);
        fw[run] = t1 - t0;
        fr[run] = t2 - t1;
    }
    out->submit_us = percentile(sub, BLOB_BENCH_RUNS, 0.5);
    out->resubmit_us = percentile(resub, BLOB_BENCH_RUNS, 0.5);
    out->get_us = percentile(get, BLOB_BENCH_RUNS, 0.5);
    out->file_write_us = percentile(fw, BLOB_BENCH_RUNS, 0.5);
    out->file_read_us = percentile(fr, BLOB_BENCH_RUNS, 0.5);
    free(p);
    free(back);
    aj_engine_close(e);
}

static void print_blobs(const char *dir) {
    blob_figures b;
    bench_blobs(dir, &b);
    printf("10 MiB payload (median of %d): submit %.1f ms, submit again (deduplicated) %.1f ms, "
           "read back %.1f ms;\n  the same bytes to a file: write+fsync %.1f ms, read %.1f ms "
           "(page cache); submit/file ratio %.2fx\n",
           BLOB_BENCH_RUNS, (double)b.submit_us / 1000, (double)b.resubmit_us / 1000,
           (double)b.get_us / 1000, (double)b.file_write_us / 1000, (double)b.file_read_us / 1000,
           (double)b.submit_us / (double)b.file_write_us);
}

/* ----------------------------------------------------------------------------------------- */

typedef struct figure {
    const char *name;
    double value;
    double fsync_before, fsync_after;
} figure;

static void print_figure(const figure *f) {
    double mean = (f->fsync_before + f->fsync_after) / 2;
    printf("%-34s %10.0f /s   fsync %6.0f→%-6.0f /s   ratio %6.2fx\n", f->name, f->value,
           f->fsync_before, f->fsync_after, f->value / mean);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    int jobs = 20000;
    int quick = 0;
    int drain_only = 0; /* for profiling the worker path alone */
    int blobs_only = 0; /* the large-payload figures alone */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            jobs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--drain-only") == 0) {
            drain_only = 1;
        } else if (strcmp(argv[i], "--blobs-only") == 0) {
            blobs_only = 1;
        } else {
            fprintf(stderr, "usage: aj_bench [--dir DIR] [--jobs N] [--quick] [--drain-only] "
                            "[--blobs-only]\n");
            return 2;
        }
    }
    if (quick) {
        jobs = 2000;
    }
    jobs = (jobs + BULK_BATCH - 1) / BULK_BATCH * BULK_BATCH;
    char tmpl[] = "/tmp/ajbench.XXXXXX";
    if (dir == NULL) {
        dir = mkdtemp(tmpl);
        if (dir == NULL) {
            perror("mkdtemp");
            return 1;
        }
    }
    printf("aj %s benchmark, durable mode (fsync before acknowledging), store in %s\n",
           aj_version(), dir);
    fsync_result first = measure_fsync(dir);
    printf("raw fsync: %.0f/s, latency p50 %.3f ms, p99 %.3f ms\n\n", first.rate,
           first.p50_us / 1000.0, first.p99_us / 1000.0);

    if (blobs_only) {
        print_blobs(dir);
        return 0;
    }
    if (drain_only) {
        double rate = bench_drain(dir, jobs, 4);
        printf("drain echo, 4 worker threads: %.0f/s (%.2fx fsync rate)\n", rate,
               rate / measure_fsync(dir).rate);
        return 0;
    }
    figure figs[10];
    size_t nf = 0;
    double before = first.rate;
#define FIGURE(label, expr)                                                                        \
    do {                                                                                           \
        figs[nf].name = (label);                                                                   \
        figs[nf].fsync_before = before;                                                            \
        figs[nf].value = (expr);                                                                   \
        figs[nf].fsync_after = measure_fsync(dir).rate;                                            \
        before = figs[nf].fsync_after;                                                             \
        print_figure(&figs[nf]);                                                                   \
        nf++;                                                                                      \
    } while (0)

    FIGURE("submit, one job per call", bench_submit_single(dir, quick ? 300 : 2000));
    FIGURE("submit, batches of 1000", bench_submit_bulk(dir, jobs * 2));
    double conc_rate = 0, fsync_per = 0;
    FIGURE("submit, 16 threads one job each",
           (bench_submit_concurrent(dir, quick ? 1600 : 8000, &conc_rate, &fsync_per), conc_rate));
    FIGURE("drain echo, 1 worker thread", bench_drain(dir, jobs, 1));
    FIGURE("drain echo, 2 worker threads", bench_drain(dir, jobs, 2));
    FIGURE("drain echo, 4 worker threads", bench_drain(dir, jobs, 4));
    printf("\nfsyncs per acknowledged submit (16 threads): %.3f\n", fsync_per);

    int64_t wp50, wp99;
    FIGURE("workflows, 3 inline steps, 50 in flight",
           bench_wf_throughput(dir, quick ? 500 : 3000, &wp50, &wp99));
    printf("  3-step workflow latency: p50 %.3f ms, p99 %.3f ms\n", wp50 / 1000.0, wp99 / 1000.0);
    int64_t sp50, sp99;
    bench_wf_latency(dir, quick ? 50 : 300, &sp50, &sp99);
    printf("sequential single-step workflow latency: p50 %.3f ms, p99 %.3f ms\n", sp50 / 1000.0,
           sp99 / 1000.0);
    int64_t replay_store, replay_cached;
    bench_wf_replay(dir, &replay_store, &replay_cached);
    printf("replay of a %d-event history: from the store %lld us, wake-up with the history "
           "cached %lld us\n\n",
           WF_LONG_STEPS + 2, (long long)replay_store, (long long)replay_cached);

    print_blobs(dir);
    printf("\n");

    int64_t p50, p99;
    bench_latency(dir, &p50, &p99);
    fsync_result last = measure_fsync(dir);
    printf("submit-to-start latency (idle workers, same process): p50 %.3f ms, p99 %.3f ms\n",
           p50 / 1000.0, p99 / 1000.0);
    printf("raw fsync latency now: p50 %.3f ms, p99 %.3f ms (%.0f/s)\n", last.p50_us / 1000.0,
           last.p99_us / 1000.0, last.rate);
    if (dir == tmpl) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "aj_bench: could not remove %s\n", dir);
        }
    }
    return 0;
}
