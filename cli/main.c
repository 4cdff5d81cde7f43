/*
 * main.c — the `aj` command: global flags, the command tree and dispatch, and the helpers every
 * command shares (errors, exit codes, opening the store, argument values).
 *
 * The CLI is the top layer: it uses only the public contract in aj.h, so anything it can do a
 * user's program can do too. main() finds the command words (skipping global flags, which may
 * appear anywhere), hands the remaining arguments to the command, and closes the engine.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* Bytes of one error line, without the "aj: " prefix. */
#define CLI_ERR_MAX 1024
/* Bytes of a command path such as "aj dlq redrive". */
#define CLI_PATH_MAX 64

typedef struct command {
    const char *name;
    int (*run)(cli *c, int argc, char **argv); /* a leaf */
    const struct command *subs;                /* a group: terminated by a NULL name */
    const char *help;                          /* a group's help */
} command;

static const char top_help[] =
    "Usage: aj [--db URL] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Aspen Jobs: a durable job queue on an embedded SQLite store.\n"
    "\n"
    "Commands:\n"
    "  submit    submit a job, or one job per line of a file\n"
    "  worker    run the built-in job types (shell, echo) until stopped, or until drained\n"
    "  workers   list registered workers: node, tags, last seen\n"
    "  queue     list queues; pause, resume and limit them (concurrency, rate)\n"
    "  job       show, wait for, list and cancel jobs\n"
    "  dag       submit a graph of jobs with dependencies, show a job's graph\n"
    "  dlq       list, show, redrive, purge and export dead-lettered jobs\n"
    "  schedule  add, list, pause, trigger, backfill and preview schedules (cron, intervals)\n"
    "  stats     job counts per state and the engine's counters\n"
    "  backup    write a consistent copy of the store while it stays in use\n"
    "  check     verify every record against its indexes\n"
    "  demo      run a demo workload through in-process workers and print a summary\n"
    "  wf        durable workflows: start, ls, show, result, signal, query, cancel, ...\n"
    "  help      show the help of a command: aj help dlq redrive\n"
    "\n"
    "Global flags, allowed anywhere on the line:\n"
    "  --db URL     the store: sqlite:PATH or mem: (default: $AJ_DB, else sqlite:aj.db),\n"
    "               or postgres://USER@HOST:PORT/DB (libpq URI; see docs/POSTGRES.md).\n"
    "               sqlite:PATH?vfs=NAME opens the file through SQLite VFS NAME.\n"
    "               A missing SQLite file is created (mode 0600) when its directory exists;\n"
    "               a missing directory is a store error (exit 1), a malformed URL bad\n"
    "               input (exit 2). mem: lives only as long as the command, for trying out.\n"
    "  --json       print JSON instead of text (errors stay one line of text on stderr)\n"
    "  -h, --help   show help; every command and subcommand has its own\n"
    "  --version    print the version\n"
    "  --           end of flags (for submit: PROGRAM ARG... follows)\n"
    "\n"
    "Formats used by the flags:\n"
    "  DURATION     integers with units ms, s, m, h, d, largest first, combinable: 250ms,\n"
    "               30s, 1h30m. A bare number (30) or a negative one is refused; at most\n"
    "               36500d (100 years)\n"
    "  PRIORITY     0..4294967295, lower runs first, or critical (0), high (512),\n"
    "               normal (1024), low (2048)\n"
    "  TIME         RFC 3339 with a zone: 2026-03-08T07:00:00Z, 2026-03-08T09:00:00+02:00\n"
    "  NAME         queues and types: 1-200 bytes of letters, digits and -+/;.$_(), not\n"
    "               starting with '-'\n"
    "\n"
    "Exit codes:\n"
    "  0 success   1 store or internal error   2 bad input (nothing changed)\n"
    "  3 job not found   4 conflict or wrong state\n"
    "  5 done, but the output failed: the change (a submitted job...) is in the store and\n"
    "    stderr names it; stdout was closed or full. Do not retry: it would submit again\n"
    "  6 outcome unknown: the store's server went away after the change was sent, it may\n"
    "    have been applied (PostgreSQL); look before repeating it\n"
    "\n"
    "Example:\n"
    "  aj submit -- echo hello && aj worker --drain && aj job ls\n";

static const char job_help[] = "Usage: aj job COMMAND [ARGS...]\n"
                               "\n"
                               "Inspect and control jobs.\n"
                               "\n"
                               "Commands:\n"
                               "  show ID       print one job\n"
                               "  wait ID       wait until a job is completed, dead or cancelled\n"
                               "  ls            list jobs, filtered by queue, state or type\n"
                               "  cancel ID     cancel a job that has not finished\n"
                               "  progress ID   show a job's progress, or follow it (--follow)\n"
                               "\n"
                               "Run 'aj job COMMAND --help' for details.\n"
                               "\n"
                               "Example:\n"
                               "  aj job ls --state dead --limit 20\n";

static const char dlq_help[] =
    "Usage: aj dlq COMMAND [ARGS...]\n"
    "\n"
    "The dead-letter queue: jobs that failed permanently, ran out of attempts or timed out.\n"
    "\n"
    "Commands:\n"
    "  ls                       list dead jobs\n"
    "  show ID                  print one dead job\n"
    "  redrive (ID... | --all)  make dead jobs ready again, same id, attempts reset\n"
    "  purge (ID... | --all)    delete dead jobs\n"
    "  export                   print dead jobs as a JSON array\n"
    "  stats                    count dead jobs by queue, type and reason\n"
    "  analyze                  top errors, ages, redrives, and findings with advice\n"
    "\n"
    "Run 'aj dlq COMMAND --help' for details.\n"
    "\n"
    "Example:\n"
    "  aj dlq redrive --all --reason timeout\n";

static const char schedule_help[] =
    "Usage: aj schedule COMMAND [ARGS...]\n"
    "\n"
    "Schedules submit a job at cron times, at fixed intervals or once; `aj worker` fires them.\n"
    "\n"
    "Commands:\n"
    "  add NAME (--cron EXPR | --every DUR | --at TIME) [flags] [-- PROGRAM ARG...]\n"
    "                         create a schedule\n"
    "  ls                     list schedules\n"
    "  show NAME              print one schedule\n"
    "  pause NAME             stop its fires\n"
    "  resume NAME            fire again, from the next fire time after now\n"
    "  trigger NAME           submit its job now\n"
    "  backfill NAME --from TIME --to TIME\n"
    "                         submit one job per fire time in [from, to)\n"
    "  rm NAME                delete a schedule\n"
    "  preview (NAME | --cron EXPR [--tz ZONE]) [--from TIME] [--count N]\n"
    "                         print the next fire times\n"
    "\n"
    "Run 'aj schedule COMMAND --help' for details.\n"
    "\n"
    "Example:\n"
    "  aj schedule add nightly --cron '30 2 * * *' --tz Europe/Berlin -- /usr/local/bin/backup\n";

static const command schedule_cmds[] = {
    {"add", cmd_schedule_add, NULL, NULL},           {"ls", cmd_schedule_ls, NULL, NULL},
    {"show", cmd_schedule_show, NULL, NULL},         {"pause", cmd_schedule_pause, NULL, NULL},
    {"resume", cmd_schedule_resume, NULL, NULL},     {"trigger", cmd_schedule_trigger, NULL, NULL},
    {"backfill", cmd_schedule_backfill, NULL, NULL}, {"rm", cmd_schedule_rm, NULL, NULL},
    {"preview", cmd_schedule_preview, NULL, NULL},   {NULL, NULL, NULL, NULL},
};

static const char dag_help[] = "Usage: aj dag COMMAND [ARGS...]\n"
                               "\n"
                               "Graphs of jobs with dependencies (see also aj submit --after).\n"
                               "\n"
                               "Commands:\n"
                               "  submit FILE.json   submit a graph, all or nothing\n"
                               "  show JOBID         show the graph containing a job\n"
                               "\n"
                               "Run 'aj dag COMMAND --help' for details.\n"
                               "\n"
                               "Example:\n"
                               "  aj dag submit pipeline.json && aj dag show 42\n";

static const command dag_cmds[] = {
    {"submit", cmd_dag_submit, NULL, NULL},
    {"show", cmd_dag_show, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

static const command job_cmds[] = {
    {"show", cmd_job_show, NULL, NULL},
    {"wait", cmd_job_wait, NULL, NULL},
    {"ls", cmd_job_ls, NULL, NULL},
    {"cancel", cmd_job_cancel, NULL, NULL},
    {"progress", cmd_job_progress, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

static const command dlq_cmds[] = {
    {"ls", cmd_dlq_ls, NULL, NULL},           {"show", cmd_dlq_show, NULL, NULL},
    {"redrive", cmd_dlq_redrive, NULL, NULL}, {"purge", cmd_dlq_purge, NULL, NULL},
    {"export", cmd_dlq_export, NULL, NULL},   {"stats", cmd_dlq_stats, NULL, NULL},
    {"analyze", cmd_dlq_analyze, NULL, NULL}, {NULL, NULL, NULL, NULL},
};

static const char wf_help[] =
    "Usage: aj wf COMMAND [ARGS...]\n"
    "\n"
    "Durable workflows: start them, talk to them, read their histories. `aj worker` runs them\n"
    "(the built-in `saga` and `statemachine` types, and C workflow types registered by worker\n"
    "programs).\n"
    "\n"
    "Commands:\n"
    "  start TYPE        start a workflow; prints its id\n"
    "  ls                list workflows by state or type\n"
    "  show ID           state, result or error, and the history as a timeline\n"
    "  result ID         print the result (--wait to wait for it)\n"
    "  signal ID NAME    send a signal\n"
    "  query ID NAME     ask a query handler\n"
    "  cancel ID         ask it to cancel (a saga compensates)\n"
    "  terminate ID      end it at once\n"
    "  resume ID         retry a parked workflow\n"
    "  history ID        the raw history, one JSON event a line\n"
    "  update ID NAME    send an update and print its result\n"
    "  reset ID          restart from an event (--to-event SEQ) in a new run\n"
    "\n"
    "Run 'aj wf COMMAND --help' for details.\n"
    "\n"
    "Example:\n"
    "  aj wf start saga --input-file order.json && aj worker --drain\n";

static const command wf_cmds[] = {
    {"start", cmd_wf_start, NULL, NULL},
    {"ls", cmd_wf_ls, NULL, NULL},
    {"show", cmd_wf_show, NULL, NULL},
    {"result", cmd_wf_result, NULL, NULL},
    {"signal", cmd_wf_signal, NULL, NULL},
    {"query", cmd_wf_query, NULL, NULL},
    {"cancel", cmd_wf_cancel, NULL, NULL},
    {"terminate", cmd_wf_terminate, NULL, NULL},
    {"resume", cmd_wf_resume, NULL, NULL},
    {"history", cmd_wf_history, NULL, NULL},
    {"update", cmd_wf_update, NULL, NULL},
    {"reset", cmd_wf_reset, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

static const char queue_help[] =
    "Usage: aj queue COMMAND [ARGS...]\n"
    "\n"
    "Queue controls, stored and applied by every worker on the store.\n"
    "\n"
    "Commands:\n"
    "  ls                                        queues: jobs by state, paused, limits\n"
    "  pause QUEUE                               stop claims from a queue\n"
    "  resume QUEUE                              claim from it again\n"
    "  limit QUEUE [--concurrency N] [--rate N/DUR]  limit leases held at once and claims\n"
    "                                            per window\n"
    "\n"
    "Run 'aj queue COMMAND --help' for details.\n"
    "\n"
    "Example:\n"
    "  aj queue limit reports --concurrency 2 --rate 10/1s\n";

static const command queue_cmds[] = {
    {"ls", cmd_queue_ls, NULL, NULL},
    {"pause", cmd_queue_pause, NULL, NULL},
    {"resume", cmd_queue_resume, NULL, NULL},
    {"limit", cmd_queue_limit, NULL, NULL},
    {NULL, NULL, NULL, NULL},
};

static const command top_cmds[] = {
    {"wf", NULL, wf_cmds, wf_help},       {"submit", cmd_submit, NULL, NULL},
    {"worker", cmd_worker, NULL, NULL},   {"job", NULL, job_cmds, job_help},
    {"dlq", NULL, dlq_cmds, dlq_help},    {"schedule", NULL, schedule_cmds, schedule_help},
    {"dag", NULL, dag_cmds, dag_help},    {"stats", cmd_stats, NULL, NULL},
    {"backup", cmd_backup, NULL, NULL},   {"check", cmd_check, NULL, NULL},
    {"demo", cmd_demo, NULL, NULL},       {"queue", NULL, queue_cmds, queue_help},
    {"workers", cmd_workers, NULL, NULL}, {NULL, NULL, NULL, NULL},
};

/* Writes one error line: newlines in library messages must not split it. */
static void print_error(const char *msg) {
    char line[CLI_ERR_MAX];
    snprintf(line, sizeof line, "%s", msg);
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    fprintf(stderr, "aj: %s\n", line);
}

int cli_error(int exit_code, const char *fmt, ...) {
    char msg[CLI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error(msg);
    return exit_code;
}

int cli_fail(int aj_rc, const char *fmt, ...) {
    char msg[CLI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Callers pass plain values, so the detail still belongs to the call that failed. */
    const char *detail = aj_errmsg();
    if (detail[0] == '\0') {
        detail = aj_strerror(aj_rc);
    }
    if (n >= 0 && (size_t)n < sizeof msg) {
        snprintf(msg + n, sizeof msg - (size_t)n, ": %s", detail);
    }
    print_error(msg);
    return cli_exit_code(aj_rc);
}

int cli_exit_code(int aj_rc) {
    switch (aj_rc) {
    case AJ_OK:
        return CLI_EXIT_OK;
    case AJ_EINVAL:
    case AJ_ETOOBIG:
        return CLI_EXIT_USAGE;
    case AJ_ENOTFOUND:
        return CLI_EXIT_NOTFOUND;
    case AJ_ESTATE:
    case AJ_ECONFLICT:
    case AJ_EEXISTS:
    case AJ_ESTALE:
        return CLI_EXIT_STATE;
    case AJ_EAMBIGUOUS:
        return CLI_EXIT_AMBIGUOUS;
    default:
        return CLI_EXIT_ERROR;
    }
}

int cli_open(cli *c, const aj_engine_opts *opts) {
    const char *url = c->db_url;
    const char *colon = strchr(url, ':');
    if (colon == NULL || colon == url) {
        return cli_error(CLI_EXIT_USAGE,
                         "store URL '%s' is not sqlite:PATH, postgres://... or mem:", url);
    }
    aj_engine_opts defaults;
    if (opts == NULL) {
        /* A short command leaves the periodic duties (promoting, reaping, collecting) to the
         * long-running workers, and so never waits for a duty thread on exit. Its counters are
         * still flushed when the engine closes. */
        aj_engine_opts_init(&defaults);
        defaults.background = 0;
        opts = &defaults;
    }
    aj_engine *e = NULL;
    int rc = aj_engine_open(&e, url, opts);
    if (rc != 0) {
        /* A URL the library does not understand (AJ_EINVAL: an unknown scheme, "sqlite:" without
         * a path) is bad input, like one without a scheme above. Any other reason a store cannot
         * be opened is a store error (exit 1), whatever code the backend gave it. */
        cli_fail(rc, "cannot open store '%s'", url);
        return rc == AJ_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    c->engine = e;
    return CLI_EXIT_OK;
}

void cli_log_stderr(void *ud, aj_log_level level, const char *line) {
    (void)ud;
    (void)level;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char t[OUT_TIME_MAX];
    aj_time_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, t, sizeof t);
    /* One fprintf per line: stdio locks the stream, so lines from threads never interleave. */
    fprintf(stderr, "ts=%s %s\n", t, line);
}

int cli_parse_id(const char *text, uint64_t *out) {
    uint64_t id = 0;
    if (cli_parse_uint(NULL, text, 1, UINT64_MAX, &id) != 0) {
        return cli_error(CLI_EXIT_USAGE, "job id '%s' is not a positive decimal integer", text);
    }
    *out = id;
    return 0;
}

int cli_parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out) {
    int ok = text[0] >= '0' && text[0] <= '9';
    uint64_t v = 0;
    if (ok) {
        char *end = NULL;
        errno = 0;
        unsigned long long parsed = strtoull(text, &end, 10);
        ok = errno == 0 && *end == '\0' && parsed >= min && parsed <= max;
        v = (uint64_t)parsed;
    }
    if (!ok) {
        if (flag == NULL) {
            return CLI_EXIT_USAGE; /* the caller words the message */
        }
        return cli_error(CLI_EXIT_USAGE,
                         "%s '%s' is not a whole number from %" PRIu64 " to %" PRIu64, flag, text,
                         min, max);
    }
    *out = v;
    return 0;
}

int cli_bad_value(const char *flag, const char *text, const char *what) {
    /* The parsers' own messages quote the value and say what is wrong with it; saying more
     * here would only repeat them. */
    const char *detail = aj_errmsg();
    if (detail[0] != '\0') {
        return cli_error(CLI_EXIT_USAGE, "%s: %s", flag, detail);
    }
    return cli_error(CLI_EXIT_USAGE, "%s '%s' is not %s", flag, text, what);
}

int cli_read_file(const char *flag, const char *path, size_t max, char **out, size_t *out_len) {
    /* "FLAG 'PATH'" or "'PATH'": how every message names the file. */
    const char *sep = flag != NULL ? " " : "";
    flag = flag != NULL ? flag : "";
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        return cli_error(CLI_EXIT_USAGE, "cannot read %s%s'%s': %s", flag, sep, path,
                         strerror(errno));
    }
    int rc = CLI_EXIT_OK;
    size_t cap = 0;
    size_t len = 0;
    char *buf = NULL;
    for (;;) {
        if (len + 1 >= cap) {
            size_t ncap = cap == 0 ? 64 * 1024 : cap * 2;
            char *nbuf = ncap <= max + 1 ? realloc(buf, ncap) : NULL;
            if (nbuf == NULL) {
                rc = cli_error(CLI_EXIT_USAGE, "%s%s'%s' is too large to read", flag, sep, path);
                goto done;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        rc =
            cli_error(CLI_EXIT_USAGE, "cannot read %s%s'%s': %s", flag, sep, path, strerror(errno));
        goto done;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
done:
    free(buf);
    if (f != stdin) {
        fclose(f);
    }
    return rc;
}

int cli_check_queue_type(const char *queue, const char *type) {
    if (queue != NULL && aj_name_check("queue", queue) != 0) {
        return cli_fail(AJ_EINVAL, "--queue");
    }
    if (type != NULL && aj_name_check("type", type) != 0) {
        return cli_fail(AJ_EINVAL, "--type");
    }
    return 0;
}

int cli_parse_duration(const char *flag, const char *text, int64_t *out_ms) {
    int64_t ms = 0;
    if (aj_duration_parse(text, &ms) != 0) {
        return cli_bad_value(flag, text, "a duration like 30s or 1h30m");
    }
    if (ms > CLI_DURATION_MAX) {
        char max[CLI_NUM_MAX];
        aj_duration_format(CLI_DURATION_MAX, max, sizeof max);
        return cli_error(CLI_EXIT_USAGE, "%s '%s' is longer than %s (100 years)", flag, text, max);
    }
    *out_ms = ms;
    return 0;
}

static const command *lookup(const command *table, const char *name) {
    for (const command *cmd = table; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            return cmd;
        }
    }
    return NULL;
}

/* Writes the names of the commands of `table` as "a, b or c". */
static void command_names(const command *table, char *buf, size_t size) {
    size_t n = 0;
    while (table[n].name != NULL) {
        n++;
    }
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + len, size - len, "%s%s", sep, table[i].name);
        len += w > 0 ? (size_t)w : 0;
    }
}

/* `aj help WORD...`: the help of that command. */
static int run_help(cli *c, int argc, char **argv) {
    const command *table = top_cmds;
    const char *help = top_help;
    char path[CLI_PATH_MAX] = "aj";
    for (int i = 0; i < argc; i++) {
        const command *cmd = table != NULL ? lookup(table, argv[i]) : NULL;
        if (cmd == NULL) {
            return args_usage_error(path, "unknown command '%s' for '%s'", argv[i], path);
        }
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, " %s", argv[i]);
        if (cmd->run != NULL) {
            char flag[] = "--help";
            char *args[] = {flag, NULL};
            return cmd->run(c, 1, args);
        }
        table = cmd->subs;
        help = cmd->help;
    }
    fputs(help, stdout);
    return CLI_EXIT_OK;
}

/* Finds the command words, then runs the command with the other arguments. */
static int dispatch(cli *c, int argc, char **argv, char **rest) {
    const command *table = top_cmds;
    const char *help = top_help;
    const command *leaf = NULL;
    char path[CLI_PATH_MAX] = "aj";
    int n_rest = 0;
    int want_help = 0;
    int want_version = 0;
    int i = 1;
    for (; i < argc && leaf == NULL; i++) {
        const char *arg = argv[i];
        int takes_value = 0;
        if (strcmp(arg, "--") == 0) {
            break;
        }
        if (args_is_global(arg, &takes_value)) {
            /* Kept for the command, which reads global flags wherever they are. */
            rest[n_rest++] = argv[i];
            const char *value = NULL;
            if (takes_value && i + 1 < argc && !args_is_flag_word(NULL, argv[i + 1])) {
                value = argv[++i];
                rest[n_rest++] = argv[i];
            } else if (takes_value) {
                return args_usage_error(path, "flag '%s' needs a value", arg);
            }
            args_apply_global(c, arg, value, &want_help, &want_version);
            continue;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            return args_usage_error(path, "unknown flag '%s' for '%s'", arg, path);
        }
        if (table == top_cmds && strcmp(arg, "help") == 0) {
            return run_help(c, argc - i - 1, argv + i + 1);
        }
        const command *cmd = lookup(table, arg);
        if (cmd == NULL) {
            return args_usage_error(path, "unknown command '%s' for '%s'", arg, path);
        }
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, " %s", arg);
        if (cmd->run != NULL) {
            leaf = cmd;
        } else {
            table = cmd->subs;
            help = cmd->help;
        }
    }
    if (leaf == NULL) {
        if (want_help) {
            fputs(help, stdout);
            return CLI_EXIT_OK;
        }
        if (want_version) {
            return args_print_version(c);
        }
        /* A bare group is bad input like any other: one line, which names the choices. */
        char names[CLI_ERR_MAX];
        command_names(table, names, sizeof names);
        return args_usage_error(path, "missing command for '%s': %s", path, names);
    }
    for (; i < argc; i++) {
        rest[n_rest++] = argv[i];
    }
    return leaf->run(c, n_rest, rest);
}

int main(int argc, char **argv) {
    cli c;
    memset(&c, 0, sizeof c);
    const char *env_db = getenv("AJ_DB");
    c.db_url = env_db != NULL && env_db[0] != '\0' ? env_db : CLI_DEFAULT_DB;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (rest == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    int rc = dispatch(&c, argc, argv, rest);
    aj_engine_close(c.engine);
    free(rest);
    return out_finish(rc);
}
