/*
 * cli.h — what every `aj` subcommand shares: the invocation context (store URL, output mode, the
 * open engine), exit codes, one-line error reporting, and the entry point of each command.
 *
 * The CLI sits on top of the layers and talks to the library only through aj.h.
 */
#ifndef AJ_CLI_H
#define AJ_CLI_H

#include <stdint.h>

#include "aj.h"

/* Exit codes: the contract scripts rely on. */
enum {
    CLI_EXIT_OK = 0,       /* success */
    CLI_EXIT_ERROR = 1,    /* store or internal error */
    CLI_EXIT_USAGE = 2,    /* bad input: nothing was changed */
    CLI_EXIT_NOTFOUND = 3, /* no such job */
    CLI_EXIT_STATE = 4,    /* conflict, or the job is in the wrong state */
    CLI_EXIT_OUTPUT = 5,   /* done (submitted, changed), but printing the outcome failed: the
                            * change is named on stderr; retrying would repeat it */
    /* The store's server went away after the change was sent and its outcome is unknown: it may
     * have been applied (AJ_EAMBIGUOUS). Look before repeating it. */
    CLI_EXIT_AMBIGUOUS = 6,
};

/* The store used when neither --db nor AJ_DB names one. */
#define CLI_DEFAULT_DB "sqlite:aj.db"

/* One invocation of `aj`. */
typedef struct cli {
    const char *db_url; /* --db, else AJ_DB, else CLI_DEFAULT_DB */
    int db_given;       /* 1 when --db was on the command line */
    int json;           /* --json: every command prints JSON */
    aj_engine *engine;  /* opened by cli_open(), closed by main */
} cli;

/* Maps a library error code to an exit code. */
int cli_exit_code(int aj_rc);
/* Prints "aj: MESSAGE" to stderr as one line and returns `exit_code`. */
int cli_error(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "aj: MESSAGE: <aj_errmsg()>" for a failed library call and returns its exit code. */
int cli_fail(int aj_rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Opens the store named by c->db_url with `opts` (NULL: the defaults of a short command, which
 * runs no background duty threads). Returns 0, or prints the problem and returns
 * CLI_EXIT_ERROR: a store that cannot be opened is a store error. */
int cli_open(cli *c, const aj_engine_opts *opts);
/* Writes one library log line to stderr in logfmt, prefixed with a timestamp. An aj_log_fn. */
void cli_log_stderr(void *ud, aj_log_level level, const char *line);

/* Parses a job id: a positive decimal integer. Prints the problem and returns CLI_EXIT_USAGE,
 * or returns 0. */
int cli_parse_id(const char *text, uint64_t *out);
/* Parses an unsigned decimal in [min, max] for flag `flag`; same convention. */
int cli_parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out);
/* Parses a duration for flag `flag` with aj_duration_parse(), at most CLI_DURATION_MAX; same
 * convention. */
int cli_parse_duration(const char *flag, const char *text, int64_t *out_ms);
/* Reports that the library's parser refused `text` for `flag`: "FLAG: <the parser's message>",
 * or "FLAG 'TEXT' is not WHAT" when it left none. Returns CLI_EXIT_USAGE. */
int cli_bad_value(const char *flag, const char *text, const char *what);
/* Reads a whole file ("-": stdin) of at most `max` bytes into a NUL-terminated buffer the caller
 * frees. Problems name the file, after `flag` when not NULL ("cannot read --payload-file 'x':
 * ..."); same convention. */
int cli_read_file(const char *flag, const char *path, size_t max, char **out, size_t *out_len);
/* Checks the --queue and --type filters of a job list (NULL: not given); same convention. */
int cli_check_queue_type(const char *queue, const char *type);

/* Longest duration any flag takes: 100 years. The library adds durations to the current time,
 * and longer ones (up to what a duration can spell, 2^63 ms) would overflow that sum. It is
 * also the library's own limit on a delay. */
#define CLI_DURATION_MAX ((int64_t)36500 * AJ_DAY)

/* Bytes of a job id or count printed in decimal, and its NUL. */
#define CLI_NUM_MAX 24
/* Jobs read from the store per page when listing. */
#define CLI_PAGE 1000

/* Reports a failed call about job `id`: "job N not found" (exit 3) or "cannot VERB job N: ..." */
int cli_job_error(int aj_rc, uint64_t id, const char *verb);
/* Opens the store and reads job `id` into *job (the caller frees it): 0, or the exit code after
 * printing the problem (as cli_job_error words it). */
int cli_open_job(cli *c, uint64_t id, aj_job **job);
/* The exit code of a job that finished: 0 if completed; else prints "job N ended dead
 * (reason): error" and returns CLI_EXIT_STATE. */
int cli_job_outcome(const aj_job *job);

/* Calls `visit` with each page of jobs matching `filter` in id order, at most `limit` jobs in
 * all (0: every one). Stops at the first non-zero return of `visit` and returns it. */
typedef int (*cli_visit_fn)(cli *c, aj_job *const *jobs, size_t n, void *ud);
int cli_list_pages(cli *c, const aj_job_filter *filter, size_t limit, cli_visit_fn visit, void *ud);

/* The commands. argv holds the arguments after the command words, global flags included. */
int cmd_submit(cli *c, int argc, char **argv);
int cmd_dag_submit(cli *c, int argc, char **argv);
int cmd_dag_show(cli *c, int argc, char **argv);
/* The dependency lines of `aj job show` (cmd_dag.c): printed after the job's own lines, or a
 * JSON object's text (malloc'd; NULL on failure) whose members join the job's object. */
void dag_job_lines(aj_engine *e, uint64_t id);
char *dag_job_json(aj_engine *e, uint64_t id);
int cmd_worker(cli *c, int argc, char **argv);
int cmd_job_show(cli *c, int argc, char **argv);
int cmd_job_wait(cli *c, int argc, char **argv);
int cmd_job_ls(cli *c, int argc, char **argv);
int cmd_job_cancel(cli *c, int argc, char **argv);
int cmd_job_progress(cli *c, int argc, char **argv);
int cmd_dlq_ls(cli *c, int argc, char **argv);
int cmd_dlq_show(cli *c, int argc, char **argv);
int cmd_dlq_redrive(cli *c, int argc, char **argv);
int cmd_dlq_purge(cli *c, int argc, char **argv);
int cmd_dlq_export(cli *c, int argc, char **argv);
int cmd_dlq_stats(cli *c, int argc, char **argv);
int cmd_dlq_analyze(cli *c, int argc, char **argv);
int cmd_schedule_add(cli *c, int argc, char **argv);
int cmd_schedule_ls(cli *c, int argc, char **argv);
int cmd_schedule_show(cli *c, int argc, char **argv);
int cmd_schedule_pause(cli *c, int argc, char **argv);
int cmd_schedule_resume(cli *c, int argc, char **argv);
int cmd_schedule_trigger(cli *c, int argc, char **argv);
int cmd_schedule_backfill(cli *c, int argc, char **argv);
int cmd_schedule_rm(cli *c, int argc, char **argv);
int cmd_schedule_preview(cli *c, int argc, char **argv);
int cmd_stats(cli *c, int argc, char **argv);
int cmd_backup(cli *c, int argc, char **argv);
int cmd_check(cli *c, int argc, char **argv);
int cmd_demo(cli *c, int argc, char **argv);
int cmd_wf_start(cli *c, int argc, char **argv);
int cmd_wf_ls(cli *c, int argc, char **argv);
int cmd_wf_show(cli *c, int argc, char **argv);
int cmd_wf_result(cli *c, int argc, char **argv);
int cmd_wf_signal(cli *c, int argc, char **argv);
int cmd_wf_query(cli *c, int argc, char **argv);
int cmd_wf_cancel(cli *c, int argc, char **argv);
int cmd_wf_terminate(cli *c, int argc, char **argv);
int cmd_wf_resume(cli *c, int argc, char **argv);
int cmd_wf_history(cli *c, int argc, char **argv);
int cmd_queue_ls(cli *c, int argc, char **argv);
int cmd_queue_pause(cli *c, int argc, char **argv);
int cmd_queue_resume(cli *c, int argc, char **argv);
int cmd_queue_limit(cli *c, int argc, char **argv);
int cmd_workers(cli *c, int argc, char **argv);
int cmd_wf_update(cli *c, int argc, char **argv);
/* Checks that bytes are one JSON value within a workflow's data limit (AJ_WF_DATA_MAX): 0, or
 * CLI_EXIT_USAGE after naming `what` and the problem (wf start's input, signal and update
 * payloads). */
int wf_check_json(const char *what, const char *text, size_t len);
int cmd_wf_reset(cli *c, int argc, char **argv);

#endif
