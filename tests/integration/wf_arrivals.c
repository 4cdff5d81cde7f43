/*
 * wf_arrivals.c — arrivals for a workflow under contention, without any crash: none is lost,
 * none makes the transaction that writes it conflict, and none costs a re-run of user code.
 *
 * Signals: ARR_SENDERS senders (ARR_SENDER_PROCS processes of two threads, each its own engine
 * on one SQLite store) send ARR_SIGNALS signals each to one workflow, which consumes them as
 * they come, run by ARR_WORKERS worker processes. The workflow's result says how many distinct
 * signals it saw and how many twice; all must arrive once. Each sender runs the signal's
 * transaction itself, exactly as eng_run does (kv_begin, wf_signal, kv_commit, then the fold of
 * the woken workflow), so that it can count the conflicts of the arrival's own transaction — the
 * public counters mix them with the folds', which may conflict (bookkeeping, never repeating
 * the arrival). Those must be 0: signals conflict neither with each other nor with the tasks of
 * the workflow consuming them.
 *
 * Activities: ARR_FANS workflows each run an inline step, start ARR_ACTIVITIES activities and
 * wait for each; the activities' outcomes arrive together from the worker processes. A ledger
 * counts executions of the step and of each activity: the step must run once per workflow (a
 * re-run is user code repeated by contention alone) and every activity at least once (re-runs
 * are reported). The workers' transaction counters are printed, not asserted (timing).
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/wf_wakeq.h"
#include "core/workflow.h"
#include "runtime/engine.h"
#include "runtime/wf_wakeq.h"

#define ARR_SENDER_PROCS 4
#define ARR_SENDER_THREADS 2
#define ARR_SENDERS (ARR_SENDER_PROCS * ARR_SENDER_THREADS)
#define ARR_SIGNALS 50
#define ARR_WORKERS 3
#define ARR_FANS 4
#define ARR_ACTIVITIES 50
/* How long a workflow may take on a slow, loaded machine. */
#define ARR_WAIT_MS (300 * AJ_SECOND)
#define LEDGER_LINE 128

static char ledger_path[600];

/* Consumes every signal, counting the distinct ones and the repeats. */
static int sink(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    unsigned char seen[ARR_SENDERS * ARR_SIGNALS] = {0};
    int distinct = 0, repeats = 0, odd = 0;
    for (int i = 0; i < ARR_SENDERS * ARR_SIGNALS; i++) {
        aj_bytes b;
        AJ_TRY(aj_wait_signal(wf, "s", -1, &b));
        char text[32];
        snprintf(text, sizeof text, "%.*s", (int)b.len, (const char *)b.data);
        int s = -1, k = -1;
        if (sscanf(text, "%d:%d", &s, &k) != 2 || s < 0 || s >= ARR_SENDERS || k < 0 ||
            k >= ARR_SIGNALS) {
            odd++;
            continue;
        }
        repeats += seen[s * ARR_SIGNALS + k];
        distinct += !seen[s * ARR_SIGNALS + k];
        seen[s * ARR_SIGNALS + k] = 1;
    }
    char out[64];
    int n = snprintf(out, sizeof out, "%d distinct %d repeats %d odd", distinct, repeats, odd);
    return aj_wf_set_result(wf, out, (size_t)n);
}

static int before_fan_out(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)in;
    const char *id = ud;
    if (aj_test_ledger_add(ledger_path, id, strlen(id)) != 0) {
        return aj_step_fail(ctx, "cannot write the ledger", 0);
    }
    return aj_step_set_result(ctx, "1", 1);
}

static int fan(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(aj_step(wf, "before", before_fan_out, (void *)aj_wf_id(wf), input, NULL));
    char name[32], payload[96];
    for (int i = 0; i < ARR_ACTIVITIES; i++) {
        snprintf(name, sizeof name, "a%d", i);
        snprintf(payload, sizeof payload, "%s/a%d", aj_wf_id(wf), i);
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "arr_act";
        s.payload = payload;
        s.payload_len = strlen(payload);
        AJ_TRY(aj_activity_start(wf, name, &s));
    }
    int sum = 0;
    for (int i = 0; i < ARR_ACTIVITIES; i++) {
        snprintf(name, sizeof name, "a%d", i);
        aj_bytes out;
        AJ_TRY(aj_activity_wait(wf, name, &out));
        sum += out.len == 1 && ((const char *)out.data)[0] == '1';
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d", sum);
    return aj_wf_set_result(wf, buf, (size_t)n);
}

static int activity(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    if (aj_test_ledger_add(ledger_path, job->payload, job->payload_len) != 0) {
        return aj_ctx_fail(ctx, "cannot write the ledger", 0);
    }
    return aj_ctx_set_result(ctx, "1", 1);
}

static aj_engine *open_engine(const char *url) {
    aj_engine *e = NULL;
    AJ_TEST_CHECK(aj_engine_open(&e, url, NULL) == 0, "open: %s", aj_errmsg());
    AJ_TEST_CHECK(aj_workflow_register(e, "arr_sink", sink, NULL) == 0 &&
                      aj_workflow_register(e, "arr_fan", fan, NULL) == 0 &&
                      aj_register(e, "arr_act", activity, NULL) == 0,
                  "register: %s", aj_errmsg());
    return e;
}

/* A worker process until SIGTERM (aj_test_worker_process). */
static pid_t spawn_worker(const char *url) {
    pid_t pid = (pid_t)aj_test_worker_process(url, open_engine);
    AJ_TEST_CHECK(pid >= 0, "fork");
    return pid;
}

typedef struct sender {
    aj_engine *e;
    int index;
    long conflicts;
} sender;

/* Sends ARR_SIGNALS signals, each as eng_run would, counting the conflicts of the signal's own
 * transaction (the fold after it is eng_run's, as in aj_wf_signal). */
static void *send_signals(void *arg) {
    sender *s = arg;
    for (int k = 0; k < ARR_SIGNALS; k++) {
        char payload[32];
        snprintf(payload, sizeof payload, "%d:%d", s->index, k);
        for (;;) {
            kv_txn *t = NULL;
            AJ_TEST_CHECK(kv_begin(s->e->kv, &t) == 0, "begin: %s", aj_errmsg());
            job_env env;
            eng_id_src ids; /* a signal creates no job: its deferred wake-up does, later */
            eng_env(s->e, &env, NULL, &ids);
            wf_woken woken = WF_WOKEN_INIT;
            env.woken = &woken;
            int rc = wf_signal(t, &env, "sink", "s", aj__slice_str(payload));
            if (rc != 0) {
                kv_abort(t);
                AJ_TEST_CHECK(0, "signal %s: %s", payload, aj_errmsg());
            }
            rc = kv_commit(t, KV_SYNC, NULL, NULL, NULL);
            if (rc == AJ_ECONFLICT) {
                s->conflicts++;
                wf_woken_free(&woken);
                continue;
            }
            AJ_TEST_CHECK(rc == 0, "commit of signal %s: %s", payload, aj_errmsg());
            aj__wf_fold_woken(s->e, &woken);
            wf_woken_free(&woken);
            break;
        }
    }
    return NULL;
}

/* A sender process: ARR_SENDER_THREADS senders; writes their conflicts and the folds' to `fd`. */
static pid_t spawn_senders(const char *url, int proc, int fd) {
    pid_t pid = fork();
    AJ_TEST_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        aj_engine *e = open_engine(url);
        pthread_t th[ARR_SENDER_THREADS];
        sender s[ARR_SENDER_THREADS];
        for (int i = 0; i < ARR_SENDER_THREADS; i++) {
            s[i] = (sender){e, proc * ARR_SENDER_THREADS + i, 0};
            AJ_TEST_CHECK(pthread_create(&th[i], NULL, send_signals, &s[i]) == 0, "thread");
        }
        long counts[2] = {0, 0}; /* the signals' conflicts, the folds' (eng_run's counters) */
        for (int i = 0; i < ARR_SENDER_THREADS; i++) {
            pthread_join(th[i], NULL);
            counts[0] += s[i].conflicts;
        }
        aj_stats st;
        AJ_TEST_CHECK(aj_stats_get(e, &st) == 0, "stats: %s", aj_errmsg());
        counts[1] = (long)st.process.conflicts;
        aj_engine_close(e);
        AJ_TEST_CHECK(write(fd, counts, sizeof counts) == (ssize_t)sizeof counts, "pipe");
        _exit(0);
    }
    return pid;
}

static void wait_ok(pid_t pid, const char *what) {
    int status = 0;
    waitpid(pid, &status, 0);
    AJ_TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s did not end cleanly", what);
}

static void test_signals(const char *url) {
    aj_engine *e = open_engine(url);
    aj_wf_start_opts o = {"sink", 0, 0};
    AJ_TEST_CHECK(aj_wf_start(e, "arr_sink", "", 0, &o, NULL) == 0, "start: %s", aj_errmsg());
    aj_engine_close(e); /* no engine (and no threads) across fork */

    int fds[2];
    AJ_TEST_CHECK(pipe(fds) == 0, "pipe");
    pid_t pids[ARR_SENDER_PROCS];
    for (int p = 0; p < ARR_SENDER_PROCS; p++) {
        pids[p] = spawn_senders(url, p, fds[1]);
    }
    long conflicts = 0, fold_conflicts = 0;
    for (int p = 0; p < ARR_SENDER_PROCS; p++) {
        wait_ok(pids[p], "a sender process");
        long c[2] = {0, 0};
        AJ_TEST_CHECK(read(fds[0], c, sizeof c) == (ssize_t)sizeof c, "a sender reported nothing");
        conflicts += c[0];
        fold_conflicts += c[1];
    }
    close(fds[0]);
    close(fds[1]);

    e = open_engine(url);
    aj_wf_state st;
    AJ_TEST_CHECK(aj_wf_wait(e, "sink", ARR_WAIT_MS, &st) == 0, "wait sink: %s", aj_errmsg());
    aj_wf_info *info = NULL;
    AJ_TEST_CHECK(aj_wf_get(e, "sink", &info) == 0, "get sink: %s", aj_errmsg());
    char want[64];
    snprintf(want, sizeof want, "%d distinct 0 repeats 0 odd", ARR_SENDERS * ARR_SIGNALS);
    AJ_TEST_CHECK(st == AJ_WF_COMPLETED && strcmp(info->result, want) == 0, "sink ended %s: %s",
                  aj_wf_state_name(st),
                  st == AJ_WF_COMPLETED ? (const char *)info->result : info->error);
    aj_wf_info_free(info);
    aj_engine_close(e);
    printf("signals: %d senders x %d to one workflow, all consumed once; conflicts of the "
           "signals' own transactions: %ld (of the folds after them: %ld)\n",
           ARR_SENDERS, ARR_SIGNALS, conflicts, fold_conflicts);
    AJ_TEST_CHECK(conflicts == 0,
                  "%ld conflicts of signal transactions (arrivals must not conflict)", conflicts);
}

static void test_activities(const char *url) {
    aj_engine *e = open_engine(url);
    char id[64];
    for (int f = 0; f < ARR_FANS; f++) {
        snprintf(id, sizeof id, "fan-%d", f);
        aj_wf_start_opts o = {id, 0, 0};
        AJ_TEST_CHECK(aj_wf_start(e, "arr_fan", "", 0, &o, NULL) == 0, "start: %s", aj_errmsg());
    }
    char want[32];
    snprintf(want, sizeof want, "%d", ARR_ACTIVITIES);
    for (int f = 0; f < ARR_FANS; f++) {
        snprintf(id, sizeof id, "fan-%d", f);
        aj_wf_state st;
        AJ_TEST_CHECK(aj_wf_wait(e, id, ARR_WAIT_MS, &st) == 0, "wait %s: %s", id, aj_errmsg());
        aj_wf_info *info = NULL;
        AJ_TEST_CHECK(aj_wf_get(e, id, &info) == 0, "get %s: %s", id, aj_errmsg());
        AJ_TEST_CHECK(st == AJ_WF_COMPLETED && strcmp(info->result, want) == 0, "%s ended %s: %s",
                      id, aj_wf_state_name(st),
                      st == AJ_WF_COMPLETED ? (const char *)info->result : info->error);
        aj_wf_info_free(info);
    }
    aj_engine_close(e);

    static int steps[ARR_FANS], acts[ARR_FANS][ARR_ACTIVITIES];
    FILE *fl = fopen(ledger_path, "r");
    AJ_TEST_CHECK(fl != NULL, "no ledger");
    char line[LEDGER_LINE];
    while (fgets(line, sizeof line, fl) != NULL) {
        int f = -1, a = -1;
        int n = sscanf(line, "fan-%d/a%d", &f, &a);
        AJ_TEST_CHECK(n >= 1 && f >= 0 && f < ARR_FANS &&
                          (n == 1 || (a >= 0 && a < ARR_ACTIVITIES)),
                      "a ledger line names nothing: %s", line);
        if (n == 1) {
            steps[f]++;
        } else {
            acts[f][a]++;
        }
    }
    fclose(fl);
    int step_reruns = 0, act_reruns = 0;
    for (int f = 0; f < ARR_FANS; f++) {
        AJ_TEST_CHECK(steps[f] >= 1, "fan-%d never ran its step", f);
        step_reruns += steps[f] - 1;
        for (int a = 0; a < ARR_ACTIVITIES; a++) {
            AJ_TEST_CHECK(acts[f][a] >= 1, "fan-%d/a%d never ran", f, a);
            act_reruns += acts[f][a] - 1;
        }
    }
    printf("activities: %d workflows x %d activities: inline step re-runs %d, activity re-runs "
           "%d\n",
           ARR_FANS, ARR_ACTIVITIES, step_reruns, act_reruns);
    AJ_TEST_CHECK(step_reruns == 0, "the inline step before the fan-out ran again %d times",
                  step_reruns);
}

int main(void) {
    char *dir = aj_test_tmpdir();
    char url[700];
    snprintf(url, sizeof url, "sqlite:%s/aj.db", dir);
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger", dir);
    aj_engine_close(open_engine(url)); /* create the store before several processes open it */

    pid_t workers[ARR_WORKERS];
    for (int w = 0; w < ARR_WORKERS; w++) {
        workers[w] = spawn_worker(url);
    }
    test_signals(url);
    test_activities(url);
    for (int w = 0; w < ARR_WORKERS; w++) {
        kill(workers[w], SIGTERM);
        wait_ok(workers[w], "a worker process");
    }
    aj_engine *e = open_engine(url);
    aj_stats s;
    AJ_TEST_CHECK(aj_stats_get(e, &s) == 0, "stats: %s", aj_errmsg());
    printf("all processes: transactions %llu, conflicts %llu, gave up %llu\n",
           (unsigned long long)s.total.txn_attempts, (unsigned long long)s.total.conflicts,
           (unsigned long long)s.total.txn_gave_up);
    aj_engine_close(e);
    aj_test_rmtree(dir);
    free(dir);
    return 0;
}
