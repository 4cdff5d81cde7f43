/*
 * cmd_worker.c — `aj worker`: runs the built-in job types (shell, echo) in a pool of threads
 * until SIGTERM/SIGINT, or with --drain until nothing of its queues is left to do soon.
 *
 * Signals: SIGINT and SIGTERM are blocked before the engine starts any thread, so every library
 * thread inherits the block and only this thread ever takes them, at points it chooses (in
 * sigsuspend() or while draining and stopping). The handler only records the signal and calls
 * aj_workers_request_stop(), which is async-signal-safe; a second signal during shutdown leaves
 * at once with _exit(). Logs are logfmt lines on stderr, from the library and from here.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* How often a long-running worker looks whether its pool stopped on a store error. */
#define WORKER_POLL_MS 200
/* Most queues one worker serves (--queue a,b,...). */
#define WORKER_QUEUES_MAX 64
/* Most handler threads (--concurrency). */
#define WORKER_CONCURRENCY_MAX 1024
/* --drain exits once nothing is ready or running and nothing becomes ready within this. */
#define WORKER_DRAIN_HORIZON_MS AJ_MINUTE
/* Bytes of one log line written here. */
#define WORKER_LOG_MAX 512

static const char worker_help[] =
    "Usage: aj worker [--queue Q[,Q...]] [--concurrency N] [--drain] [--shutdown-timeout DUR]\n"
    "                 [--node NAME] [--tag T[,T...]] [--env-clear] [--pass-env NAME]...\n"
    "\n"
    "Runs the built-in job types until SIGTERM or SIGINT:\n"
    "  shell  payload {\"argv\":[...], \"env\":{...}, \"cwd\":\"...\"}: runs the program without\n"
    "         a shell, stdin from /dev/null, with AJ_JOB_ID, AJ_ATTEMPT (1 for the first run),\n"
    "         AJ_QUEUE and AJ_PROGRESS_FD (a pipe for progress lines: 'aj job progress')\n"
    "         set, the payload's \"env\", and this process's environment except\n"
    "         AJ_DB (see --env-clear). Exit 0 completes the job with result\n"
    "         {\"exit_code\":N,\"signal\":S,\"output\":\"last 64 KiB of stdout+stderr\"};\n"
    "         exit 100 is a permanent failure (dead-lettered at once); anything else, or a\n"
    "         signal, is retried after the job's backoff while attempts remain.\n"
    "  echo   completes with the payload as the result.\n"
    "Jobs of other types are left ready for the workers that run them (programs using libaj);\n"
    "--drain waits for those too, so drain only queues that hold shell and echo jobs.\n"
    "It also runs the schedule service: due schedules (see 'aj schedule') submit their jobs;\n"
    "several workers may run it on one store, and each fire time still submits one job.\n"
    "On SIGTERM/SIGINT it stops claiming, lets running jobs finish within --shutdown-timeout,\n"
    "then stops them and gives them back. A second signal exits at once.\n"
    "Time: a job's --timeout counts on the monotonic clock from its start, so a step of the\n"
    "wall clock neither cuts nor stretches it. When the wall clock steps, the worker renews its\n"
    "leases at once and, for 30s after a forward step, reaps leases by the clock of before it\n"
    "(docs/DURABILITY.md, \"Clocks\"). It never expires a lease it still renews itself.\n"
    "Store errors: when an outcome cannot be recorded (disk full, I/O error, busy store), the\n"
    "worker keeps the job's lease and tries again with backoff (up to 5s apart) until it is\n"
    "recorded, or until --shutdown-timeout after a stop signal; the job does not run again.\n"
    "Logs go to stderr in logfmt.\n"
    "\n"
    "Flags:\n"
    "  --queue Q[,Q...]        serve only these queues (default: every queue)\n"
    "  --concurrency N         jobs run at once, 1..1024 (default: 4)\n"
    "  --drain                 exit 0 once, in the whole store, no job of these queues is ready\n"
    "                          or running and none becomes ready within the next 60s (paused\n"
    "                          queues do not count)\n"
    "  --shutdown-timeout DUR  time running jobs get to finish on stop (default: 30s)\n"
    "  --node NAME             the node this worker runs on, for routing (default: the host\n"
    "                          name): jobs submitted with --prefer-node/--avoid-node name it\n"
    "  --tag T[,T...]          tags of this worker (at most 32): a job submitted with\n"
    "                          --require-tag T runs only on workers that have tag T\n"
    "  --env-clear             shell jobs get none of this process's environment (which may\n"
    "                          hold secrets) but the variables named by --pass-env; without\n"
    "                          PATH, programs are searched for in /bin:/usr/bin\n"
    "  --pass-env NAME         pass variable NAME to shell jobs (repeatable, at most 64): with\n"
    "                          --env-clear, the ones they get; AJ_DB, the store's location, is\n"
    "                          never passed otherwise (a job that has it can open the store and\n"
    "                          change other jobs)\n"
    "The worker registers itself (see 'aj workers') and refreshes its entry every 5s; queue\n"
    "controls (see 'aj queue') apply to its claims.\n"
    "\n"
    "Exit codes: 0 stopped by a signal or drained, 1 store error (or --drain interrupted by a\n"
    "signal), 2 bad input. A busy or full store is waited out; a store error that waiting does\n"
    "not cure (a damaged or unreadable file) is logged at every attempt and stops the worker\n"
    "with exit 1 after 10 failed claims in a row.\n"
    "\n"
    "Examples:\n"
    "  aj worker --queue mail,reports --concurrency 8\n"
    "  aj worker --env-clear --pass-env PATH --pass-env HOME --pass-env LANG\n"
    "  aj worker --drain\n";

/* The engine the signal handler stops; set only while the pool runs. */
static aj_engine *volatile worker_engine;
/* The first stop signal received, 0 before. */
static volatile sig_atomic_t worker_signal;

static void on_stop_signal(int sig) {
    if (worker_signal != 0) {
        _exit(CLI_EXIT_ERROR); /* a second signal: the user does not want to wait */
    }
    worker_signal = sig;
    aj_engine *e = worker_engine;
    if (e != NULL) {
        aj_workers_request_stop(e);
    }
}

static void wlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wlog(const char *fmt, ...) {
    char line[WORKER_LOG_MAX];
    int n = snprintf(line, sizeof line, "level=info ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    cli_log_stderr(NULL, AJ_LOG_INFO, line);
}

static const char *signal_name(int sig) {
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

/* Splits the value of `flag`, "a,b", in place into at most `max` names of kind `what` (a name
 * for aj_name_check; `empty` and `plural` word the messages), checking each. A name given twice
 * is kept once: the library does not merge duplicate queues (its claim would meet the same ready
 * job twice in one transaction and fail every claim). */
static int split_names(char *list, const char *flag, const char *what, const char *empty,
                       const char *plural, size_t max, const char **names, size_t *n) {
    *n = 0;
    char *save = NULL;
    if (list[0] == '\0' || list[0] == ',' || list[strlen(list) - 1] == ',' ||
        strstr(list, ",,") != NULL) {
        return cli_error(CLI_EXIT_USAGE, "%s '%s' has an empty %s", flag, list, empty);
    }
    for (char *q = strtok_r(list, ",", &save); q != NULL; q = strtok_r(NULL, ",", &save)) {
        int rc = aj_name_check(what, q);
        if (rc != 0) {
            cli_fail(rc, "%s", flag);
            return CLI_EXIT_USAGE;
        }
        int seen = 0;
        for (size_t i = 0; i < *n && !seen; i++) {
            seen = strcmp(names[i], q) == 0;
        }
        if (seen) {
            continue;
        }
        if (*n == max) {
            return cli_error(CLI_EXIT_USAGE, "%s names more than %zu %s", flag, max, plural);
        }
        names[(*n)++] = q;
    }
    return CLI_EXIT_OK;
}

/* 1 for a portable environment variable name: [A-Za-z_][A-Za-z0-9_]*. */
static int env_name_ok(const char *name) {
    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) {
        return 0;
    }
    for (const char *p = name; *p != '\0'; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '_';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* Runs the pool until a signal, or until drained. Signals are blocked on entry. */
static int run_pool(cli *c, int drain, const sigset_t *stop_set) {
    sigset_t waitmask;
    pthread_sigmask(SIG_BLOCK, NULL, &waitmask);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGTERM);
    int rc = CLI_EXIT_OK;
    if (drain) {
        pthread_sigmask(SIG_UNBLOCK, stop_set, NULL);
        int arc = aj_workers_drain(c->engine, WORKER_DRAIN_HORIZON_MS);
        if (arc == 0) {
            char horizon[OUT_SPEC_MAX];
            aj_duration_format(WORKER_DRAIN_HORIZON_MS, horizon, sizeof horizon);
            wlog("msg=drained horizon=%s", horizon);
        } else if (arc == AJ_ECANCELLED && worker_signal != 0) {
            rc = cli_error(CLI_EXIT_ERROR, "drain interrupted by %s", signal_name(worker_signal));
        } else {
            rc = cli_fail(arc, "cannot drain");
        }
    } else {
        /* Wakes now and then to see whether the pool stopped on a store error that persisted. */
        int perr = 0;
        while (worker_signal == 0 && (perr = aj_workers_error(c->engine)) == 0) {
            struct timespec ts = {0, WORKER_POLL_MS * 1000000L};
            ppoll(NULL, 0, &ts, &waitmask);
        }
        pthread_sigmask(SIG_UNBLOCK, stop_set, NULL); /* a second signal may now cut it short */
        if (perr != 0) {
            rc = cli_fail(perr, "the worker pool stopped");
        }
    }
    if (worker_signal != 0) {
        wlog("msg=\"stopping\" signal=%s", signal_name(worker_signal));
    }
    int arc = aj_workers_stop(c->engine);
    if (arc != 0 && rc == CLI_EXIT_OK) {
        rc = cli_fail(arc, "cannot stop the workers");
    }
    wlog("msg=exiting status=%d", rc);
    return rc;
}

int cmd_worker(cli *c, int argc, char **argv) {
    const char *queue = NULL;
    const char *concurrency = NULL;
    const char *shutdown = NULL;
    const char *node = NULL;
    const char *tag = NULL;
    const char *pass_missing = NULL; /* a --pass-env left without a value */
    int drain = 0;
    int env_clear = 0;
    const char **pass = calloc((size_t)argc + 1, sizeof *pass);
    size_t n_pass = 0;
    if (pass == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    args_take_repeated("--pass-env", &argc, argv, pass, &n_pass);
    const arg_flag flags[] = {
        {"--queue", &queue, NULL},
        {"--concurrency", &concurrency, NULL},
        {"--shutdown-timeout", &shutdown, NULL},
        {"--node", &node, NULL},
        {"--tag", &tag, NULL},
        {"--drain", NULL, &drain},
        {"--env-clear", NULL, &env_clear},
        {"--pass-env", &pass_missing, NULL},
        {NULL, NULL, NULL},
    };
    const arg_spec spec = {"aj worker", worker_help, flags, NULL, 0, 0, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        free(pass);
        return rc;
    }
    args_free(&r);
    rc = CLI_EXIT_OK;
    if (pass_missing != NULL) {
        pass[n_pass++] = pass_missing; /* `--pass-env -X`: taken by args_parse, refused below */
    }
    if (n_pass > AJ_SHELL_PASS_ENV_MAX) {
        free(pass);
        return cli_error(CLI_EXIT_USAGE, "--pass-env is given %zu times, over the limit of %d",
                         n_pass, AJ_SHELL_PASS_ENV_MAX);
    }
    for (size_t i = 0; i < n_pass; i++) {
        if (!env_name_ok(pass[i])) {
            rc = cli_error(CLI_EXIT_USAGE,
                           "--pass-env '%s' is not a variable name (letters, digits and '_', "
                           "not starting with a digit)",
                           pass[i]);
            free(pass);
            return rc;
        }
    }
    aj_worker_opts wopts;
    aj_worker_opts_init(&wopts);
    const char *names[WORKER_QUEUES_MAX];
    char *queue_list = queue != NULL ? strdup(queue) : NULL;
    if (queue != NULL && queue_list == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    if (queue_list != NULL) {
        rc = split_names(queue_list, "--queue", "queue", "queue name", "queues", WORKER_QUEUES_MAX,
                         names, &wopts.n_queues);
        wopts.queues = names;
    }
    const char *tags[AJ_WORKER_TAGS_MAX];
    char *tag_list = tag != NULL ? strdup(tag) : NULL;
    if (tag != NULL && tag_list == NULL) {
        free(queue_list);
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    if (rc == 0 && tag_list != NULL) {
        rc = split_names(tag_list, "--tag", "tag", "tag", "tags", AJ_WORKER_TAGS_MAX, tags,
                         &wopts.n_tags);
        wopts.tags = tags;
    }
    if (rc == 0 && node != NULL) {
        int nrc = aj_name_check("node", node);
        if (nrc != 0) {
            cli_fail(nrc, "--node");
            rc = CLI_EXIT_USAGE;
        }
        wopts.node = node;
    }
    uint64_t n = 0;
    if (rc == 0 && concurrency != NULL) {
        rc = cli_parse_uint("--concurrency", concurrency, 1, WORKER_CONCURRENCY_MAX, &n);
        wopts.concurrency = (uint32_t)n;
    }
    if (rc == 0 && shutdown != NULL) {
        rc = cli_parse_duration("--shutdown-timeout", shutdown, &wopts.shutdown_deadline_ms);
    }
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL); /* before any library thread exists */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    aj_engine_opts opts;
    aj_engine_opts_init(&opts);
    opts.log = cli_log_stderr;
    opts.log_level = AJ_LOG_INFO;
    if (rc == 0) {
        rc = cli_open(c, &opts);
    }
    int arc = rc == 0 ? aj_register_builtins(c->engine) : 0;
    if (arc == 0 && rc == 0) {
        arc = aj_shell_env_set(c->engine, env_clear, pass, n_pass);
    }
    if (arc == 0 && rc == 0) {
        worker_engine = c->engine;
        arc = aj_workers_start(c->engine, &wopts);
        if (arc == 0) {
            arc = aj_schedules_start(c->engine); /* stopped when the engine closes */
        }
    }
    if (arc != 0) {
        rc = cli_fail(arc, "cannot start the workers");
    }
    if (rc == 0) {
        wlog("msg=serving queues=%s concurrency=%" PRIu32 " drain=%d", queue != NULL ? queue : "*",
             wopts.concurrency, drain);
        rc = run_pool(c, drain, &stop_set);
    }
    /* The engine closes in main; block the signals first so the handler never sees it go. */
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    worker_engine = NULL;
    free(queue_list);
    free(tag_list);
    free(pass);
    return rc;
}
