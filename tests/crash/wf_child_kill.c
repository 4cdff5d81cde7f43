/*
 * wf_child_kill.c — child workflows and parent-close policies under SIGKILL of worker processes.
 *
 * The test process starts, on one SQLite store, parents that fan out children (FANOUT_PARENTS
 * x FANOUT_CHILDREN) and parents that start one waiting child under each parent-close policy
 * and then end; then it forks worker processes (each opens the store, registers the types and
 * runs a worker pool) and SIGKILLs one at random moments for CHAOS_MS, starting a new one each
 * time. Afterwards it drains the rest in-process and proves:
 *   - every parent completed, with the sum of its children's results;
 *   - each parent's history has exactly one child_started and one child_completed per child;
 *   - each child completed with exactly one completion of its step, which ran at least once (a
 *     ledger file) and whose writes in the engine's store committed exactly once (a count the
 *     child reads back and checks);
 *   - under the policies: the `terminate` child was terminated naming its parent, the `cancel`
 *     child ended cancelled, the `abandon` child was still running (and completes when
 *     signalled);
 *   - the store is consistent (aj_check).
 * AJ_CRASH_SEED picks the kill schedule; a failure prints it.
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FANOUT_PARENTS 12
#define FANOUT_CHILDREN 20
#define CLOSERS 8
#define WORKERS 3
#define CHAOS_MS 8000
#define DRAIN_HORIZON_MS (60 * AJ_SECOND)
#define LEDGER_LINE 256

static char ledger_path[600];
static unsigned seed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                 \
            fprintf(stderr, " (seed %u)\n", seed);                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long to_ll(aj_bytes b) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)b.len, (const char *)b.data);
    return atoll(buf);
}

/* The side effect, at least once: one ledger line per execution. Also, in the engine's store,
 * a count of the step's executions whose writes committed: the writes commit with the step's
 * completion, so the count is exactly 1 unless a completed step ran again in a committed task.
 * (Wall times cannot tell the two apart: a duplicate task whose commit will conflict may start
 * running the step after another task's completion of it has committed.) */
static int work(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    const char *id = ud;
    sleep_ms(100 + (to_ll(in) * 37) % 100); /* spread the work over the chaos */
    if (aj_test_ledger_add(ledger_path, id, strlen(id)) != 0) {
        return aj_step_fail(ctx, "cannot write the ledger", 0);
    }
    char key[LEDGER_LINE], count[32];
    int klen = snprintf(key, sizeof key, "runs:%s", id);
    aj_bytes old;
    long long runs = aj_step_get(ctx, key, (size_t)klen, &old) == 0 ? to_ll(old) : 0;
    int clen = snprintf(count, sizeof count, "%lld", runs + 1);
    AJ_TRY(aj_step_put(ctx, key, (size_t)klen, count, (size_t)clen));
    char out[32];
    int n = snprintf(out, sizeof out, "%lld", 2 * to_ll(in));
    return aj_step_set_result(ctx, out, (size_t)n);
}

static int read_count(aj_step_ctx *ctx, aj_bytes in, void *ud) {
    (void)in;
    const char *id = ud;
    char key[LEDGER_LINE];
    int klen = snprintf(key, sizeof key, "runs:%s", id);
    aj_bytes v;
    AJ_TRY(aj_step_get(ctx, key, (size_t)klen, &v));
    return aj_step_set_result(ctx, v.data, v.len);
}

static int kchild(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes out, count;
    AJ_TRY(aj_step(wf, "work", work, (void *)aj_wf_id(wf), input, &out));
    AJ_TRY(aj_step(wf, "count", read_count, (void *)aj_wf_id(wf), input, &count));
    if (to_ll(count) != 1) {
        return aj_wf_fail(wf, "the step's writes committed more than once");
    }
    return aj_wf_set_result(wf, out.data, out.len);
}

static int kparent(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    char name[32], in[32];
    for (int i = 0; i < FANOUT_CHILDREN; i++) {
        snprintf(name, sizeof name, "k%d", i);
        snprintf(in, sizeof in, "%d", i);
        AJ_TRY(aj_child_start(wf, name, "kchild", in, strlen(in), NULL));
    }
    long long sum = 0;
    for (int i = 0; i < FANOUT_CHILDREN; i++) {
        snprintf(name, sizeof name, "k%d", i);
        aj_bytes out;
        AJ_TRY(aj_child_wait(wf, name, &out));
        sum += to_ll(out);
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", sum);
    return aj_wf_set_result(wf, buf, (size_t)n);
}

static int kwait(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    int64_t now;
    AJ_TRY(aj_wf_now(wf, &now));
    AJ_TRY(aj_wait_signal(wf, "go", -1, NULL));
    return aj_wf_set_result(wf, "went", 4);
}

static int closer(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    const aj_parent_close policies[3] = {AJ_PARENT_CLOSE_TERMINATE, AJ_PARENT_CLOSE_CANCEL,
                                         AJ_PARENT_CLOSE_ABANDON};
    const char *names[3] = {"t", "c", "a"};
    for (int i = 0; i < 3; i++) {
        aj_child_opts o = {NULL, policies[i], 0};
        AJ_TRY(aj_child_start(wf, names[i], "kwait", "", 0, &o));
    }
    AJ_TRY(aj_sleep(wf, 300));
    return aj_wf_set_result(wf, "closed", 6);
}

static aj_engine *open_engine(const char *url, int workers) {
    aj_engine *e = NULL;
    CHECK(aj_engine_open(&e, url, NULL) == 0, "open: %s", aj_errmsg());
    CHECK(aj_workflow_register(e, "kchild", kchild, NULL) == 0 &&
              aj_workflow_register(e, "kparent", kparent, NULL) == 0 &&
              aj_workflow_register(e, "kwait", kwait, NULL) == 0 &&
              aj_workflow_register(e, "closer", closer, NULL) == 0,
          "register: %s", aj_errmsg());
    if (workers) {
        aj_worker_opts wo;
        aj_worker_opts_init(&wo);
        wo.concurrency = 4;
        CHECK(aj_workers_start(e, &wo) == 0, "workers: %s", aj_errmsg());
    }
    return e;
}

static pid_t spawn_worker(const char *url) {
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        open_engine(url, 1);
        for (;;) {
            pause(); /* until SIGKILL */
        }
    }
    return pid;
}

typedef struct hist {
    int started, completed, steps;
} hist;

static int hist_cb(void *ud, const aj_wf_event *ev) {
    hist *h = ud;
    h->started += strcmp(ev->type, "child_started") == 0;
    h->completed += strcmp(ev->type, "child_completed") == 0;
    h->steps += strcmp(ev->type, "step_completed") == 0 && strcmp(ev->name, "work") == 0;
    return 0;
}

static hist history(aj_engine *e, const char *id) {
    hist h;
    memset(&h, 0, sizeof h);
    CHECK(aj_wf_history(e, id, 0, hist_cb, &h) == 0, "history of %s: %s", id, aj_errmsg());
    return h;
}

static aj_wf_info *get(aj_engine *e, const char *id) {
    aj_wf_info *info = NULL;
    CHECK(aj_wf_get(e, id, &info) == 0, "get %s: %s", id, aj_errmsg());
    return info;
}

/* How many times the ledger says a child's step ran. */
static int ledger_runs(const char *id) {
    FILE *f = fopen(ledger_path, "r");
    CHECK(f != NULL, "no ledger");
    char line[LEDGER_LINE];
    size_t n = strlen(id);
    int runs = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        runs += strncmp(line, id, n) == 0 && line[n] == '\n';
    }
    fclose(f);
    return runs;
}

static void report(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "check: %s\n", line);
}

int main(void) {
    const char *s = getenv("AJ_CRASH_SEED");
    seed = s ? (unsigned)atoi(s) : (unsigned)time(NULL);
    srand(seed);
    printf("child workflow crash test: seed %u\n", seed);
    char *dir = aj_test_tmpdir();
    char url[700];
    snprintf(url, sizeof url, "sqlite:%s/aj.db", dir);
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger", dir);

    aj_engine *e = open_engine(url, 0);
    char id[64];
    for (int p = 0; p < FANOUT_PARENTS; p++) {
        snprintf(id, sizeof id, "fan-%d", p);
        aj_wf_start_opts o = {id, 0, 0};
        CHECK(aj_wf_start(e, "kparent", "", 0, &o, NULL) == 0, "start: %s", aj_errmsg());
    }
    for (int p = 0; p < CLOSERS; p++) {
        snprintf(id, sizeof id, "close-%d", p);
        aj_wf_start_opts o = {id, 0, 0};
        CHECK(aj_wf_start(e, "closer", "", 0, &o, NULL) == 0, "start: %s", aj_errmsg());
    }
    aj_engine_close(e); /* no engine (and no threads) across fork */

    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = spawn_worker(url);
    }
    int kills = 0;
    int64_t end = wall_ms() + CHAOS_MS;
    while (wall_ms() < end) {
        sleep_ms(150 + rand() % 600);
        int w = rand() % WORKERS;
        kill(pids[w], SIGKILL);
        waitpid(pids[w], NULL, 0);
        kills++;
        pids[w] = spawn_worker(url);
    }
    for (int w = 0; w < WORKERS; w++) {
        kill(pids[w], SIGKILL);
        waitpid(pids[w], NULL, 0);
    }
    printf("killed %d worker processes\n", kills + WORKERS);

    /* Drain what is left here (leases of killed workers expire first). */
    e = open_engine(url, 1);
    CHECK(aj_workers_drain(e, DRAIN_HORIZON_MS) == 0, "drain: %s", aj_errmsg());
    int extra = 0; /* executions of a step beyond the first: tasks that did not commit */
    for (int p = 0; p < FANOUT_PARENTS; p++) {
        snprintf(id, sizeof id, "fan-%d", p);
        aj_wf_state st;
        CHECK(aj_wf_wait(e, id, 120000, &st) == 0, "wait %s: %s", id, aj_errmsg());
        aj_wf_info *info = get(e, id);
        CHECK(st == AJ_WF_COMPLETED, "%s ended %s: %s", id, aj_wf_state_name(st),
              info->error ? info->error : "");
        char want[32];
        snprintf(want, sizeof want, "%d", FANOUT_CHILDREN * (FANOUT_CHILDREN - 1));
        CHECK(strcmp(info->result, want) == 0, "%s: result %s, wanted %s", id,
              (const char *)info->result, want);
        aj_wf_info_free(info);
        hist h = history(e, id);
        CHECK(h.started == FANOUT_CHILDREN && h.completed == FANOUT_CHILDREN,
              "%s: %d child_started and %d child_completed events", id, h.started, h.completed);
        for (int c = 0; c < FANOUT_CHILDREN; c++) {
            char cid[96];
            snprintf(cid, sizeof cid, "%s/k%d", id, c);
            aj_wf_info *ci = get(e, cid);
            CHECK(ci->state == AJ_WF_COMPLETED && ci->run == 1, "%s ended %s in run %u", cid,
                  aj_wf_state_name(ci->state), ci->run);
            aj_wf_info_free(ci);
            hist ch = history(e, cid);
            CHECK(ch.steps == 1, "%s: %d completions of its step", cid, ch.steps);
            int runs = ledger_runs(cid);
            CHECK(runs >= 1, "%s: the step never ran", cid);
            extra += runs - 1;
        }
    }
    for (int p = 0; p < CLOSERS; p++) {
        snprintf(id, sizeof id, "close-%d", p);
        aj_wf_state st;
        CHECK(aj_wf_wait(e, id, 120000, &st) == 0 && st == AJ_WF_COMPLETED, "%s ended %s", id,
              aj_wf_state_name(st));
        char cid[96];
        snprintf(cid, sizeof cid, "%s/t", id);
        CHECK(aj_wf_wait(e, cid, 120000, &st) == 0, "wait %s", cid);
        aj_wf_info *ci = get(e, cid);
        CHECK(st == AJ_WF_TERMINATED && ci->error && strstr(ci->error, id) != NULL,
              "%s (terminate) ended %s: %s", cid, aj_wf_state_name(st), ci->error ? ci->error : "");
        aj_wf_info_free(ci);
        snprintf(cid, sizeof cid, "%s/c", id);
        CHECK(aj_wf_wait(e, cid, 120000, &st) == 0 && st == AJ_WF_CANCELLED, "%s (cancel) ended %s",
              cid, aj_wf_state_name(st));
        snprintf(cid, sizeof cid, "%s/a", id);
        ci = get(e, cid);
        CHECK(ci->state == AJ_WF_RUNNING, "%s (abandon) is %s", cid, aj_wf_state_name(ci->state));
        aj_wf_info_free(ci);
        CHECK(aj_wf_signal(e, cid, "go", "", 0) == 0, "signal %s: %s", cid, aj_errmsg());
        CHECK(aj_wf_wait(e, cid, 120000, &st) == 0 && st == AJ_WF_COMPLETED,
              "%s (abandon) ended %s after its signal", cid, aj_wf_state_name(st));
    }
    uint64_t records = 0;
    CHECK(aj_check(e, report, NULL, &records) == 0, "the store is inconsistent");
    aj_workers_stop(e);
    aj_engine_close(e);
    aj_test_rmtree(dir);
    free(dir);
    printf("child workflow crash test passed (%d steps ran again before their completion "
           "committed; %llu records checked)\n",
           extra, (unsigned long long)records);
    return 0;
}
