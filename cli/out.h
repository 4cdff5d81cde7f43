/*
 * out.h — how `aj` prints: jobs as JSON objects, as aligned `key: value` lines and as tables;
 * JSON arrays streamed page by page; times as RFC 3339.
 *
 * JSON is built with jansson and printed compact. A payload, result or metadata that is valid
 * JSON is spliced in as its own compact text (jansson cannot hold every JSON number), anything
 * else as a string (invalid UTF-8 replaced by U+FFFD).
 */
#ifndef AJ_CLI_OUT_H
#define AJ_CLI_OUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aj.h"
#include "cli.h"

/* Bytes of a formatted RFC 3339 time with milliseconds, and its NUL. */
#define OUT_TIME_MAX 40
/* Bytes of a formatted duration or backoff spec, and its NUL. */
#define OUT_SPEC_MAX 256

/* The job as one line of compact JSON text (malloc'd; NULL when out of memory): an object with
 * payload, result and metadata embedded as the JSON they are. */
char *out_job_text(const aj_job *job);
/* Prints out_job_text() and a newline to stdout. Returns 0 or CLI_EXIT_ERROR (printed). */
int out_job_print(const aj_job *job);
/* Bytes as compact JSON text when they are one JSON value (kept exactly, whitespace aside),
 * else as a JSON string; "null" for NULL. malloc'd; NULL when out of memory. */
char *out_raw_text(const void *data, size_t len);
/* Bytes as embedded JSON when they parse, else as a string; JSON null for NULL. */
json_t *out_bytes_json(const void *data, size_t len);
/* A C string as a JSON string (invalid UTF-8 replaced); JSON null for NULL. */
json_t *out_str_json(const char *s);
/* A time as an RFC 3339 string; JSON null for 0 (never happened). */
json_t *out_time_json(int64_t ms);
/* Formats a time as RFC 3339, or "-" for 0. Returns buf. */
const char *out_time(int64_t ms, char *buf, size_t size);

/* The object `value` (its reference dropped) as compact JSON text with `"key":raw` appended
 * in place of any member `key` it had, `raw` being JSON text spliced as it is: for what jansson
 * cannot hold, such as an unsigned 64-bit number over INT64_MAX. `key` is plain ASCII. malloc'd;
 * NULL when out of memory or `value` is not an object. */
char *out_object_splice(json_t *value, const char *key, const char *raw);

/* Prints `value` compact on one line to stdout and drops the reference. Returns 0, or
 * CLI_EXIT_ERROR (printed) when `value` is NULL (out of memory) or stdout fails. */
int out_json(json_t *value);

/* Prints the job as aligned `key: value` lines. */
void out_job_human(const aj_job *job);

/* A JSON array printed element by element, so lists of any length are never held at once. */
typedef struct out_array {
    size_t n; /* elements printed so far */
} out_array;
void out_array_begin(out_array *a);
/* Prints one element, JSON text that it frees (NULL: out of memory). Returns 0 or
 * CLI_EXIT_ERROR. */
int out_array_add(out_array *a, char *text);
void out_array_end(out_array *a);

/* Columns of a job table: the general one, or the dead-letter one (reason, error). */
typedef enum out_table_kind { OUT_TABLE_JOBS = 0, OUT_TABLE_DEAD = 1 } out_table_kind;

/* A table printed page by page: column widths come from the first page. */
typedef struct out_table {
    out_table_kind kind;
    int started;
    size_t width[8];
} out_table;
void out_table_init(out_table *t, out_table_kind kind);
void out_table_rows(out_table *t, aj_job *const *jobs, size_t n);
/* Prints the header alone when no row was printed. */
void out_table_end(out_table *t);

/* A list of jobs printed page by page: a JSON array with --json, else a table. */
typedef struct out_list {
    int json;
    out_array array;
    out_table table;
} out_list;
void out_list_begin(out_list *l, int json, out_table_kind kind);
/* A cli_visit_fn: prints a page of jobs to the out_list `ud`. */
int out_list_visit(cli *c, aj_job *const *jobs, size_t n, void *ud);
void out_list_end(out_list *l);
/* Opens the store and prints the jobs `filter` selects (at most `limit`, 0: all) as an out_list
 * of `kind`: `aj job ls`, `aj dlq ls` and `aj dlq export`. Returns the exit code. */
int out_list_jobs(cli *c, const aj_job_filter *filter, size_t limit, int json, out_table_kind kind);

/* Output that fails after a commit. A command that changed the store calls out_committed() (or
 * out_committed_ids()) right after the commit and before printing the outcome; when writing
 * stdout then fails (closed, full disk, closed pipe), out_finish() names that change on stderr
 * and the command exits CLI_EXIT_OUTPUT ("done, but the output failed") instead of the store-error
 * code a caller would retry. The first call also ignores SIGPIPE, so a closed pipe is reported
 * the same way. */
void out_committed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records "VERB NOUN(s) ID, ID-ID...", e.g. out_committed_ids("submitted", "job", ids, n). */
void out_committed_ids(const char *verb, const char *noun, const uint64_t *ids, size_t n);
/* Called when a write to stdout failed: CLI_EXIT_OUTPUT after a commit (out_finish() reports
 * it), else prints "cannot write to stdout: ..." and returns CLI_EXIT_ERROR. */
int out_write_failed(void);
/* Flushes stdout at exit and returns the exit code: `rc`, or CLI_EXIT_OUTPUT (reported) when
 * something was committed and any write to stdout failed, or CLI_EXIT_ERROR (reported) when
 * only the output failed. */
int out_finish(int rc);

#endif
