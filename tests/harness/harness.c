/*
 * harness.c — shared test helpers (see harness.h).
 */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

char *aj_test_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/ajtest.XXXXXX", base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

void aj_test_rmtree(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    int rc = system(cmd);
    (void)rc;
}

char *aj_test_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int64_t test_now(void *ud) {
    aj_test_clock *c = ud;
    return __atomic_load_n(&c->now, __ATOMIC_SEQ_CST);
}

void aj_test_clock_init(aj_test_clock *c, int64_t start_ms) {
    c->clock.now_ms = test_now;
    c->clock.ud = c;
    c->now = start_ms;
}

void aj_test_clock_advance(aj_test_clock *c, int64_t ms) {
    __atomic_add_fetch(&c->now, ms, __ATOMIC_SEQ_CST);
}

void aj_test_wf_start(aj_engine *e, const char *type, const char *id, const char *input) {
    aj_wf_start_opts o = {id, 0, 0};
    if (aj_wf_start(e, type, input, strlen(input), &o, NULL) != 0) {
        fail_msg("start %s: %s", type, aj_errmsg());
    }
}

aj_wf_info *aj_test_wf_finish(aj_engine *e, const char *id, aj_wf_state want) {
    aj_wf_state st;
    if (aj_wf_wait(e, id, 60000, &st) != 0) {
        fail_msg("wait for %s: %s", id, aj_errmsg());
    }
    aj_wf_info *info;
    assert_int_equal(aj_wf_get(e, id, &info), 0);
    if (st != want) {
        fail_msg("workflow %s ended %s (%s), wanted %s", id, aj_wf_state_name(st),
                 info->error ? info->error : "", aj_wf_state_name(want));
    }
    return info;
}

int aj_test_worker_process(const char *url, aj_engine *(*open_engine)(const char *url)) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        return (int)pid;
    }
    /* A test that fails (or is killed) before it stops its workers must not leave them running
     * for ever, holding ctest's output pipe: they get SIGTERM when the test process dies. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        _exit(1); /* the test died before prctl took effect */
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: all inherit it */
    aj_engine *e = open_engine(url);
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    if (aj_workers_start(e, &wo) != 0) {
        fprintf(stderr, "worker process: %s\n", aj_errmsg());
        _exit(1);
    }
    int sig = 0;
    sigwait(&set, &sig);
    aj_workers_stop(e);
    aj_engine_close(e);
    _exit(0);
}

void aj_test_wf_wait_events(aj_engine *e, const char *id, uint64_t events) {
    for (int i = 0; i < 6000; i++) {
        aj_wf_info *info = NULL;
        if (aj_wf_get(e, id, &info) == 0) {
            uint64_t n = info->events;
            aj_wf_info_free(info);
            if (n >= events) {
                return;
            }
        }
        usleep(10000);
    }
    fail_msg("%s never reached %llu events", id, (unsigned long long)events);
}

int aj_test_ledger_add(const char *path, const char *text, size_t n) {
    char line[258];
    int len = snprintf(line, sizeof line, "%.*s\n", (int)(n > 256 ? 256 : n), text);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    int ok = fd >= 0 && write(fd, line, (size_t)len) == len;
    if (fd >= 0) {
        close(fd);
    }
    return ok ? 0 : -1;
}
