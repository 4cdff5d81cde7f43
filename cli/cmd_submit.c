/*
 * cmd_submit.c — `aj submit`: one job from flags (or from `-- PROGRAM ARG...`, a shell job), or
 * one job per line of a file submitted as one all-or-nothing batch.
 *
 * Every input is validated before the store is opened, so bad input exits 2 and changes nothing.
 * The library validates again (it is the authority); validating here first is what lets the CLI
 * name the flag and the line at fault.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"
#include "submit.h"

/* Most attempts a job may be given (counting the first run). */
#define SUBMIT_MAX_ATTEMPTS_MAX 1000000
/* Largest input read from a file or stdin: --payload-lines holds up to AJ_BATCH_MAX lines. */
#define SUBMIT_INPUT_MAX ((size_t)1 << 30)
/* Bytes of a formatted size ("1 MiB"). */
#define SUBMIT_SIZE_TEXT 32
/* Bytes of one validation message. */
#define SUBMIT_WHY_MAX 256
/* Most "env" entries of a shell payload: the shell runner's own limit (src/runtime/shell.c). */
#define SUBMIT_SHELL_ENV_MAX 1024

static const char submit_help[] =
    "Usage: aj submit --type TYPE [flags] [--payload JSON | --payload-file FILE]\n"
    "       aj submit [flags] -- PROGRAM [ARG...]\n"
    "       aj submit --type TYPE [flags] --payload-lines FILE|-\n"
    "\n"
    "Submits a job and prints its id (a decimal integer) alone on stdout ({\"id\":N} with\n"
    "--json). The job is on disk before the id is printed. With `-- PROGRAM ARG...` the job is\n"
    "of type shell with payload {\"argv\":[PROGRAM, ARG...]}; a worker runs it without a shell.\n"
    "\n"
    "Flags:\n"
    "  --queue Q              queue name (default: default). Names are 1-200 bytes of letters,\n"
    "                         digits and -+/;.$_(), not starting with '-'\n"
    "  --type T               job type, e.g. shell or echo (required without `--`)\n"
    "  --priority P           0..4294967295, lower runs first, or critical (0), high (512),\n"
    "                         normal (1024), low (2048) (default: normal). FIFO within a priority\n"
    "  --delay DUR            become ready after DUR (default: at once)\n"
    "  --at TIME              become ready at an RFC 3339 time, not before 1970; a past time\n"
    "                         means at once (excludes --delay)\n"
    "  --timeout DUR          execution timeout of one attempt (default: 5m); an attempt that\n"
    "                         runs longer fails (a shell job's process group is killed) and is\n"
    "                         retried, or dead-lettered with reason timeout\n"
    "  --lease DUR            lease length, renewed by heartbeats while it runs (default: 30s,\n"
    "                         at least 1s)\n"
    "  --max-attempts N       runs allowed, counting the first, 1..1000000 (default: 3)\n"
    "  --backoff SPEC         delay before a retry (default: exp:1s:2:5m); SPEC is one of\n"
    "                           none                      retry at once\n"
    "                           fixed:DUR                 the same delay every time\n"
    "                           exp:INITIAL[:FACTOR[:MAX]]  INITIAL*FACTOR^(n-1), capped at MAX\n"
    "                           list:DUR[,DUR...]         one delay per retry, the last repeated\n"
    "                         Each delay is at most 1d, FACTOR is 1-100 (2, 1.5), a list holds\n"
    "                         up to 16 delays. Up to 10% jitter is added to every delay.\n"
    "  --idempotency-key K    1-256 bytes of UTF-8 without control characters; the same key in\n"
    "                         the same queue within 24h returns the first job's id and creates\n"
    "                         nothing (a different job: exit 4)\n"
    "  --metadata JSON        a JSON object (at most 64 KiB) stored with the job\n"
    "  --payload JSON         the payload: any JSON value, at most 64 MiB not counting the\n"
    "                         whitespace around it, kept as given (default: null). Payloads\n"
    "                         over 256 KiB are stored once per distinct content, in chunks\n"
    "  --payload-file FILE    read the payload from FILE (- for stdin), as for --payload\n"
    "  --payload-lines FILE   one job per line of FILE (- for stdin), every line a JSON payload;\n"
    "                         all lines are checked first and submitted together or not at all;\n"
    "                         a blank line is an error. Prints the number of jobs\n"
    "                         ({\"count\":N,\"ids\":[...]} with --json). At most 100000 lines\n"
    "  --require-tag T        only a worker started with tag T (aj worker --tag) may run it\n"
    "  --prefer-node N        a worker on node N (aj worker --node) gets it; workers on other\n"
    "                         nodes may take it once it has been ready for --prefer-wait\n"
    "  --prefer-wait DUR      with --prefer-node: how long others wait (default: 30s)\n"
    "  --avoid-node N         never a worker on node N\n"
    "  --after ID[,ID...]     wait until these jobs have completed (the job stays scheduled\n"
    "                         until then); at most 10000 ids, a path of at most 100 jobs\n"
    "  --on-dep-failure P     when a job it waits on is dead-lettered or cancelled: cascade\n"
    "                         (default: this job becomes dead, reason dependency_failed, and so\n"
    "                         do the jobs waiting on it), ignore (count it as satisfied) or wait\n"
    "                         (until it is redriven and completes; a cancelled dependency can\n"
    "                         never complete, so it fails this job even under wait)\n"
    "  --wait                 after submitting, wait until the job finishes; exit 0 only if it\n"
    "                         completed, else 4 with the reason\n"
    "  --db URL, --json       see 'aj --help'\n"
    "\n"
    "A shell payload is {\"argv\":[...]} with optional \"env\" (an object of strings, names\n"
    "without '=') and \"cwd\" (a directory); strings may not hold \\u0000. Optional \"stdin\"\n"
    "(a string) is the program's standard input (else it reads /dev/null).\n"
    "The program gets AJ_JOB_ID, AJ_ATTEMPT and AJ_QUEUE; exit 0 completes the job, exit 100 is\n"
    "a permanent failure (dead-lettered at once), anything else is retried.\n"
    "\n"
    "Exit codes: 0 submitted (and with --wait: completed), 1 store error, 2 bad input (nothing\n"
    "submitted), 4 idempotency key used by a different job, or --wait saw it end dead/cancelled,\n"
    "5 submitted, but the output failed (stdout closed or full): stderr names the submitted ids\n"
    "(\"aj: submitted jobs 7-9, but writing the output failed: ...\"); do not submit again.\n"
    "\n"
    "Examples:\n"
    "  aj submit --queue mail --priority high -- /usr/local/bin/send-mail --to ops\n"
    "  aj submit --type echo --payload '{\"n\":1}' --delay 1h30m --backoff fixed:10s\n"
    "  seq 1000 | aj submit --type echo --payload-lines -\n";

static void size_text(size_t bytes, char *buf, size_t size) {
    if (bytes % ((size_t)1 << 20) == 0) {
        snprintf(buf, size, "%zu MiB", bytes >> 20);
    } else if (bytes % 1024 == 0) {
        snprintf(buf, size, "%zu KiB", bytes >> 10);
    } else {
        snprintf(buf, size, "%zu bytes", bytes);
    }
}

/* Checks the shape the built-in shell type needs, by the rules its runner applies, so a typo
 * fails now rather than as a dead job at run time. */
static int shell_payload_ok(const char *data, size_t len, char *why, size_t size) {
    json_error_t jerr;
    /* Without JSON_ALLOW_NUL, as the runner reads it: a NUL cannot reach execve(). */
    json_t *v = json_loadb(data, len, 0, &jerr);
    if (v == NULL && strstr(jerr.text, "\\u0000") != NULL) {
        snprintf(why, size,
                 "a string holds \\u0000, which no argument, environment variable "
                 "or directory name can");
        return 0;
    }
    if (v == NULL) {
        snprintf(why, size, "the shell runner cannot read it: %s", jerr.text);
        return 0;
    }
    int ok = 0;
    const json_t *argv = json_object_get(v, "argv");
    const json_t *env = json_object_get(v, "env");
    const json_t *cwd = json_object_get(v, "cwd");
    if (!json_is_object(v) || !json_is_array(argv) || json_array_size(argv) == 0) {
        snprintf(why, size, "a shell payload needs \"argv\", a non-empty array of strings");
        goto done;
    }
    for (size_t i = 0; i < json_array_size(argv); i++) {
        if (!json_is_string(json_array_get(argv, i))) {
            snprintf(why, size, "shell payload \"argv\" item %zu is not a string", i);
            goto done;
        }
    }
    if (env != NULL) {
        if (!json_is_object(env)) {
            snprintf(why, size, "shell payload \"env\" must be an object of strings");
            goto done;
        }
        if (json_object_size(env) > SUBMIT_SHELL_ENV_MAX) {
            snprintf(why, size, "shell payload \"env\" has more than %d entries",
                     SUBMIT_SHELL_ENV_MAX);
            goto done;
        }
        const char *k = NULL;
        const json_t *val = NULL;
        json_object_foreach((json_t *)env, k, val) {
            if (k[0] == '\0' || strchr(k, '=') != NULL) {
                snprintf(why, size, "shell payload \"env\" names must be non-empty, without '='");
                goto done;
            }
            if (!json_is_string(val)) {
                snprintf(why, size, "shell payload \"env\" must be an object of strings");
                goto done;
            }
        }
    }
    if (cwd != NULL && (!json_is_string(cwd) || json_string_length(cwd) == 0)) {
        snprintf(why, size, "shell payload \"cwd\" must be a non-empty string");
        goto done;
    }
    const json_t *in = json_object_get(v, "stdin");
    if (in != NULL && !json_is_string(in)) {
        snprintf(why, size, "shell payload \"stdin\" must be a string");
        goto done;
    }
    ok = 1;
done:
    json_decref(v);
    return ok;
}

/* JSON's insignificant whitespace. */
static int json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Validates one payload; `where` names it in messages ("payload", "--payload-lines line 3"), and
 * `one_line` leaves line numbers out of them. The whitespace around the value is not part of
 * it (a file's final newline would otherwise count against the limit): *data and *len are
 * narrowed to the value itself. */
static int payload_ok(const char *where, int one_line, const char *type, const char **data,
                      size_t *len) {
    const char *p = *data;
    size_t n = *len;
    while (n > 0 && json_space(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && json_space(p[n - 1])) {
        n--;
    }
    char limit[SUBMIT_SIZE_TEXT];
    size_text(AJ_PAYLOAD_MAX, limit, sizeof limit);
    if (n > AJ_PAYLOAD_MAX) {
        return cli_error(CLI_EXIT_USAGE, "%s is %zu bytes, over the %s limit", where, n, limit);
    }
    aj_json_error jerr;
    if (aj_json_check(*data, *len, NULL, NULL, &jerr) != 0) {
        if (one_line) {
            return cli_error(CLI_EXIT_USAGE, "%s is not valid JSON: column %zu: %s", where,
                             jerr.column, jerr.why);
        }
        return cli_error(CLI_EXIT_USAGE, "%s is not valid JSON: line %zu, column %zu: %s", where,
                         jerr.line, jerr.column, jerr.why);
    }
    char why[SUBMIT_WHY_MAX];
    if (strcmp(type, "shell") == 0 && !shell_payload_ok(p, n, why, sizeof why)) {
        return cli_error(CLI_EXIT_USAGE, "%s: %s", where, why);
    }
    *data = p;
    *len = n;
    return CLI_EXIT_OK;
}

/* Builds {"argv":[PROGRAM, ARG...]} for `-- PROGRAM ARG...`. */
static int argv_payload(const char **args, size_t n, char **out) {
    json_t *arr = json_array();
    json_t *obj = json_pack("{s:o}", "argv", arr);
    if (obj == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(args[i]);
        if (s == NULL) {
            json_decref(obj);
            /* Not quoted: the bytes that are not UTF-8 would garble the message. */
            return cli_error(CLI_EXIT_USAGE,
                             "argument %zu after '--' is not valid UTF-8 (a shell payload is "
                             "JSON, which holds only text)",
                             i + 1);
        }
        json_array_append_new(arr, s);
    }
    *out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return *out != NULL ? CLI_EXIT_OK : cli_error(CLI_EXIT_ERROR, "out of memory");
}

/* The routing flags (docs/ROUTING.md). */
static int submit_routing(const char *cmd, const submit_args *a, aj_job_spec *spec) {
    const char *names[] = {"--require-tag", "--prefer-node", "--avoid-node"};
    const char *values[] = {a->require_tag, a->prefer_node, a->avoid_node};
    const char *what[] = {"tag", "node", "node"};
    for (size_t i = 0; i < 3; i++) {
        int rc = values[i] != NULL ? aj_name_check(what[i], values[i]) : 0;
        if (rc != 0) {
            cli_fail(rc, "%s", names[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (a->prefer_wait != NULL) {
        if (a->prefer_node == NULL) {
            return args_usage_error(cmd, "--prefer-wait needs --prefer-node");
        }
        if (cli_parse_duration("--prefer-wait", a->prefer_wait, &spec->prefer_wait_ms) != 0) {
            return CLI_EXIT_USAGE;
        }
    }
    if (a->prefer_node != NULL && a->avoid_node != NULL &&
        strcmp(a->prefer_node, a->avoid_node) == 0) {
        return args_usage_error(cmd, "--prefer-node and --avoid-node name the same node '%s'",
                                a->prefer_node);
    }
    spec->require_tag = a->require_tag;
    spec->prefer_node = a->prefer_node;
    spec->avoid_node = a->avoid_node;
    return CLI_EXIT_OK;
}

/* Fills the spec from every flag except the type and payload, checking each; `cmd` names the
 * command in usage messages. */
static int spec_from_flags(const char *cmd, const submit_args *a, aj_job_spec *spec) {
    int rc = 0;
    if (a->queue != NULL) {
        rc = aj_name_check("queue", a->queue);
        if (rc != 0) {
            return cli_fail(rc, "--queue");
        }
        spec->queue = a->queue;
    }
    rc = aj_name_check("type", spec->type);
    if (rc != 0) {
        return cli_fail(rc, "--type");
    }
    if (a->priority != NULL) {
        if (aj_priority_parse(a->priority, &spec->priority) != 0) {
            return cli_bad_value("--priority", a->priority,
                                 "0..4294967295, critical, high, normal or low");
        }
    }
    if (a->delay != NULL && a->at != NULL) {
        return args_usage_error(cmd, "--delay and --at exclude each other");
    }
    if (a->delay != NULL && cli_parse_duration("--delay", a->delay, &spec->delay_ms) != 0) {
        return CLI_EXIT_USAGE;
    }
    if (a->at != NULL) {
        if (aj_time_parse(a->at, &spec->run_at_ms) != 0) {
            return cli_bad_value("--at", a->at, "an RFC 3339 time like 2026-03-08T07:00:00Z");
        }
        if (spec->run_at_ms < 0) {
            return cli_error(CLI_EXIT_USAGE, "--at '%s' is before 1970", a->at);
        }
    }
    if (a->timeout != NULL) {
        if (cli_parse_duration("--timeout", a->timeout, &spec->timeout_ms) != 0) {
            return CLI_EXIT_USAGE;
        }
        if (spec->timeout_ms <= 0) {
            return cli_error(CLI_EXIT_USAGE, "--timeout must be longer than 0ms");
        }
    }
    if (a->lease != NULL) {
        if (cli_parse_duration("--lease", a->lease, &spec->lease_ms) != 0) {
            return CLI_EXIT_USAGE;
        }
        if (spec->lease_ms < AJ_LEASE_MIN_MS) {
            /* A shorter lease can expire while an ordinary commit is in flight (aj.h). */
            return cli_error(CLI_EXIT_USAGE, "--lease '%s' is shorter than the minimum lease, %ds",
                             a->lease, AJ_LEASE_MIN_MS / 1000);
        }
    }
    if (a->max_attempts != NULL) {
        uint64_t n = 0;
        if (cli_parse_uint("--max-attempts", a->max_attempts, 1, SUBMIT_MAX_ATTEMPTS_MAX, &n) !=
            0) {
            return CLI_EXIT_USAGE;
        }
        spec->max_attempts = (uint32_t)n;
    }
    if (a->backoff != NULL) {
        if (aj_backoff_parse(a->backoff, &spec->backoff) != 0) {
            return cli_bad_value("--backoff", a->backoff,
                                 "none, fixed:DUR, exp:INITIAL[:FACTOR[:MAX]] or "
                                 "list:DUR[,DUR...]");
        }
    }
    if (a->key != NULL) {
        size_t len = strlen(a->key);
        if (len == 0 || len > AJ_IDEMPOTENCY_KEY_MAX) {
            return cli_error(CLI_EXIT_USAGE, "--idempotency-key is %zu bytes; it must be 1 to %d",
                             len, AJ_IDEMPOTENCY_KEY_MAX);
        }
        spec->idempotency_key = a->key;
    }
    if (a->metadata != NULL) {
        char limit[SUBMIT_SIZE_TEXT];
        size_text(AJ_METADATA_MAX, limit, sizeof limit);
        size_t len = strlen(a->metadata);
        if (len > AJ_METADATA_MAX) {
            return cli_error(CLI_EXIT_USAGE, "--metadata is %zu bytes, over the %s limit", len,
                             limit);
        }
        json_error_t jerr;
        json_t *v = json_loads(a->metadata, 0, &jerr);
        int is_object = json_is_object(v);
        json_decref(v);
        if (!is_object) {
            return cli_error(CLI_EXIT_USAGE, "--metadata is not a JSON object%s%s",
                             v == NULL ? ": " : "", v == NULL ? jerr.text : "");
        }
        spec->metadata = a->metadata;
    }
    return submit_routing(cmd, a, spec);
}

/* Splits `buf` into lines with the library's payload-lines parser (every line one JSON value,
 * all checked first) and checks each against the job type. Fills *out_specs (owned by the
 * caller) with one copy of `proto` per line, pointing into `buf`. */
static int lines_to_specs(const char *path, char *buf, size_t len, const aj_job_spec *proto,
                          aj_job_spec **out_specs, size_t *out_n) {
    (void)path;
    aj_span *spans = NULL;
    size_t n = 0;
    int arc = aj_payload_lines_split(buf, len, &spans, &n);
    if (arc != 0) {
        return cli_error(cli_exit_code(arc), "--payload-lines %s", aj_errmsg());
    }
    aj_job_spec *specs = calloc(n, sizeof *specs);
    if (specs == NULL) {
        aj_free(spans);
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char where[SUBMIT_WHY_MAX];
        snprintf(where, sizeof where, "--payload-lines line %zu", i + 1);
        const char *value = buf + spans[i].off;
        size_t value_len = spans[i].len;
        int rc = payload_ok(where, 1, proto->type, &value, &value_len);
        if (rc != 0) {
            free(specs);
            aj_free(spans);
            return rc;
        }
        specs[i] = *proto;
        specs[i].payload = value;
        specs[i].payload_len = value_len;
    }
    aj_free(spans);
    *out_specs = specs;
    *out_n = n;
    return CLI_EXIT_OK;
}

/* Waits for each job; exit 0 only if every one completed (the first failure is reported). */
/* Sends the ids out before --wait waits. A failure is noted with its errno, which the wait
 * would overwrite, for out_finish()'s report ("submitted ..., but writing the output failed");
 * the wait still runs. */
static void flush_before_wait(void) {
    errno = 0;
    if (fflush(stdout) != 0) {
        (void)out_write_failed();
    }
}

static int wait_all(cli *c, const uint64_t *ids, size_t n) {
    int result = CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        aj_job_state state = 0;
        aj_job *job = NULL;
        int rc = aj_job_wait(c->engine, ids[i], -1, &state);
        if (rc == 0) {
            rc = aj_job_get(c->engine, ids[i], &job);
        }
        if (rc != 0) {
            return cli_job_error(rc, ids[i], "wait for");
        }
        if (result == CLI_EXIT_OK) {
            result = cli_job_outcome(job);
        }
        aj_job_free(job);
    }
    return result;
}

static int submit_lines(cli *c, const submit_args *a, const aj_job_spec *proto) {
    char *buf = NULL;
    size_t len = 0;
    aj_job_spec *specs = NULL;
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = cli_read_file("--payload-lines", a->payload_lines, SUBMIT_INPUT_MAX, &buf, &len);
    if (rc == 0) {
        rc = lines_to_specs(a->payload_lines, buf, len, proto, &specs, &n);
    }
    if (rc == 0) {
        ids = calloc(n, sizeof *ids);
        rc = ids == NULL ? cli_error(CLI_EXIT_ERROR, "out of memory") : 0;
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0) {
        int arc = aj_submit_batch(c->engine, specs, n, ids);
        rc = arc != 0 ? cli_fail(arc, "cannot submit %zu jobs", n) : 0;
    }
    if (rc == 0) {
        out_committed_ids("submitted", "job", ids, n);
    }
    if (rc == 0 && c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n && arr != NULL; i++) {
            json_array_append_new(arr, json_integer((json_int_t)ids[i]));
        }
        rc = out_json(json_pack("{s:I, s:o}", "count", (json_int_t)n, "ids", arr));
    } else if (rc == 0) {
        printf("%zu\n", n);
    }
    if (rc == 0 && a->wait) {
        flush_before_wait();
        rc = wait_all(c, ids, n);
    }
    free(ids);
    free(specs);
    free(buf);
    return rc;
}

/* Parses `--after ID[,ID...]` into *out (malloc'd, owned by the caller). */
static int parse_after(const char *text, uint64_t **out, size_t *out_n) {
    size_t n = 1;
    for (const char *p = text; *p; p++) {
        n += *p == ',';
    }
    if (n > AJ_DEPS_MAX) {
        return cli_error(CLI_EXIT_USAGE, "--after names %zu jobs, over the limit of %d", n,
                         AJ_DEPS_MAX);
    }
    uint64_t *ids = calloc(n, sizeof *ids);
    if (ids == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    const char *p = text;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[32];
        int ok = len > 0 && len < sizeof item;
        if (ok) {
            memcpy(item, p, len);
            item[len] = '\0';
            ok = cli_parse_uint(NULL, item, 1, UINT64_MAX, &ids[i]) == 0;
        }
        if (!ok) {
            free(ids);
            return cli_error(CLI_EXIT_USAGE,
                             "--after '%s': item %zu is not a job id (a positive decimal "
                             "integer); give ID[,ID...]",
                             text, i + 1);
        }
        p = end ? end + 1 : p + len;
    }
    *out = ids;
    *out_n = n;
    return CLI_EXIT_OK;
}

/* Picks the one payload source given and loads it into *payload (owned by the caller). */
static int load_payload(const submit_args *a, const arg_result *r, char **payload, size_t *len) {
    if (a->payload != NULL) {
        *payload = strdup(a->payload);
        *len = strlen(a->payload);
        return *payload != NULL ? CLI_EXIT_OK : cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    if (a->payload_file != NULL) {
        return cli_read_file("--payload-file", a->payload_file, SUBMIT_INPUT_MAX, payload, len);
    }
    if (r->dashes) {
        int rc = argv_payload(r->rest, r->n_rest, payload);
        *len = rc == 0 ? strlen(*payload) : 0;
        return rc;
    }
    static const char none[] = "null"; /* payloads are JSON values: none given is JSON null */
    *payload = strdup(none);
    *len = sizeof none - 1;
    return *payload != NULL ? CLI_EXIT_OK : cli_error(CLI_EXIT_ERROR, "out of memory");
}

/* Checks that the payload sources and the type fit together; sets the job's type. */
static int choose_type(const char *cmd, const submit_args *a, const arg_result *r,
                       aj_job_spec *spec) {
    const char *given[4];
    size_t n = 0;
    if (a->payload != NULL) {
        given[n++] = "--payload";
    }
    if (a->payload_file != NULL) {
        given[n++] = "--payload-file";
    }
    if (a->payload_lines != NULL) {
        given[n++] = "--payload-lines";
    }
    if (r->dashes) {
        given[n++] = "'-- PROGRAM'";
    }
    if (n > 1) {
        return args_usage_error(cmd, "%s and %s exclude each other", given[0], given[1]);
    }
    if (r->dashes && r->n_rest == 0) {
        return args_usage_error(cmd, "missing PROGRAM after '--'");
    }
    if (r->dashes && a->type != NULL && strcmp(a->type, "shell") != 0) {
        return args_usage_error(cmd,
                                "--type %s conflicts with '-- PROGRAM', which submits "
                                "a shell job",
                                a->type);
    }
    if (a->payload_lines != NULL && a->key != NULL) {
        return args_usage_error(cmd, "--idempotency-key cannot apply to every line of "
                                     "--payload-lines");
    }
    spec->type = r->dashes ? "shell" : a->type;
    if (spec->type == NULL) {
        return args_usage_error(cmd, "missing --type (or '-- PROGRAM ARG...' for a shell job)");
    }
    return CLI_EXIT_OK;
}

int cmd_submit(cli *c, int argc, char **argv) {
    submit_args a;
    memset(&a, 0, sizeof a);
    const char *after_text = NULL;
    const char *policy_text = NULL;
    uint64_t *after = NULL;
    const arg_flag flags[] = {
        {"--queue", &a.queue, NULL},
        {"--type", &a.type, NULL},
        {"--priority", &a.priority, NULL},
        {"--delay", &a.delay, NULL},
        {"--at", &a.at, NULL},
        {"--timeout", &a.timeout, NULL},
        {"--lease", &a.lease, NULL},
        {"--max-attempts", &a.max_attempts, NULL},
        {"--backoff", &a.backoff, NULL},
        {"--idempotency-key", &a.key, NULL},
        {"--metadata", &a.metadata, NULL},
        {"--payload", &a.payload, NULL},
        {"--payload-file", &a.payload_file, NULL},
        {"--payload-lines", &a.payload_lines, NULL},
        {"--require-tag", &a.require_tag, NULL},
        {"--prefer-node", &a.prefer_node, NULL},
        {"--prefer-wait", &a.prefer_wait, NULL},
        {"--avoid-node", &a.avoid_node, NULL},
        {"--wait", NULL, &a.wait},
        {"--after", &after_text, NULL},
        {"--on-dep-failure", &policy_text, NULL},
        {NULL, NULL, NULL},
    };
    const arg_spec spec_args = {"aj submit", submit_help, flags, NULL, 0, 0, 1};
    arg_result r;
    int rc = args_parse(c, &spec_args, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_job_spec spec;
    aj_job_spec_init(&spec);
    char *payload = NULL;
    const char *payload_at = NULL; /* the value within payload, without surrounding space */
    size_t len = 0;
    uint64_t id = 0;
    rc = choose_type("aj submit", &a, &r, &spec);
    if (rc == 0) {
        rc = spec_from_flags("aj submit", &a, &spec);
    }
    if (rc == 0 && after_text != NULL) {
        rc = parse_after(after_text, &after, &spec.n_after);
        spec.after = after;
    }
    if (rc == 0 && policy_text != NULL) {
        if (after_text == NULL) {
            rc = args_usage_error("aj submit", "--on-dep-failure needs --after");
        } else if (aj_dep_policy_parse(policy_text, &spec.on_dep_failure) != 0) {
            rc = cli_bad_value("--on-dep-failure", policy_text, "cascade, ignore or wait");
        }
    }
    if (rc == 0 && a.payload_lines != NULL) {
        rc = submit_lines(c, &a, &spec);
        goto done;
    }
    if (rc == 0) {
        rc = load_payload(&a, &r, &payload, &len);
    }
    if (rc == 0) {
        payload_at = payload;
        rc = payload_ok("payload", 0, spec.type, &payload_at, &len);
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0) {
        spec.payload = payload_at;
        spec.payload_len = len;
        int arc = aj_submit(c->engine, &spec, &id);
        rc = arc != 0 ? cli_fail(arc, "cannot submit the job") : 0;
    }
    if (rc == 0) {
        out_committed_ids("submitted", "job", &id, 1);
    }
    if (rc == 0) {
        rc = c->json ? out_json(json_pack("{s:I}", "id", (json_int_t)id))
                     : (printf("%" PRIu64 "\n", id), CLI_EXIT_OK);
    }
    if (rc == 0 && a.wait) {
        flush_before_wait();
        rc = wait_all(c, &id, 1);
    }
done:
    free(after);
    free(payload);
    args_free(&r);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* The job flags shared with `aj schedule add` (submit.h)                                     */

int submit_job_template(const char *cmd, const submit_args *a, const arg_result *r,
                        aj_job_spec *spec, char **payload) {
    size_t len = 0;
    const char *payload_at = NULL;
    *payload = NULL;
    int rc = choose_type(cmd, a, r, spec);
    if (rc == 0) {
        rc = spec_from_flags(cmd, a, spec);
    }
    if (rc == 0) {
        rc = load_payload(a, r, payload, &len);
    }
    if (rc == 0) {
        payload_at = *payload;
        rc = payload_ok("payload", 0, spec->type, &payload_at, &len);
    }
    if (rc != 0) {
        free(*payload);
        *payload = NULL;
        return rc;
    }
    spec->payload = payload_at;
    spec->payload_len = len;
    return CLI_EXIT_OK;
}
