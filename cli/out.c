/*
 * out.c — printing jobs and values for `aj` (see out.h).
 *
 * Everything the CLI prints goes through here, so human and JSON output stay in step: a field
 * added to a job appears in both. Jobs are rendered from aj_job snapshots only (the public API).
 */
#include "out.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of one table cell, and its NUL; longer text is cut. */
#define OUT_CELL_MAX 96
/* Characters of the error column shown in a table before it is cut with "...". */
#define OUT_ERROR_COLUMN 60
/* Significant digits of a real number in JSON output (timings, ratios). */
#define OUT_REAL_DIGITS 6
/* Columns in a job table. */
#define OUT_COLS 7

/* What the command committed, for the report when its output then fails (out_committed()).
 * stdout is one per process, and so is what was promised on it. */
static struct {
    char *text; /* phrases joined by "; " (malloc'd); NULL when nothing was committed */
    size_t len; /* bytes of text */
    int oom;    /* a phrase could not be kept: the report says that more was committed */
    int errnum; /* errno of the first failed write to stdout, 0 if none was seen */
} committed;

/* A JSON string of arbitrary bytes: valid UTF-8 is kept, each invalid byte becomes U+FFFD. */
static json_t *bytes_string(const void *data, size_t len) {
    json_t *s = json_stringn(data, len);
    if (s != NULL) {
        return s;
    }
    /* Each byte becomes at most three (U+FFFD is EF BF BD). */
    unsigned char *clean = malloc(len * 3 + 1);
    if (clean == NULL) {
        return NULL;
    }
    const unsigned char *in = data;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = aj_utf8_seq(in + i, len - i);
        if (k == 0) {
            memcpy(clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, in + i, k);
            o += k;
            i += k;
        }
    }
    s = json_stringn((const char *)clean, o);
    free(clean);
    return s;
}

json_t *out_bytes_json(const void *data, size_t len) {
    if (data == NULL) {
        return json_null();
    }
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v != NULL) {
        return v;
    }
    return bytes_string(data, len);
}

json_t *out_str_json(const char *s) {
    if (s == NULL) {
        return json_null();
    }
    return bytes_string(s, strlen(s));
}

const char *out_time(int64_t ms, char *buf, size_t size) {
    if (ms == 0) {
        snprintf(buf, size, "-");
    } else {
        aj_time_format(ms, buf, size);
    }
    return buf;
}

json_t *out_time_json(int64_t ms) {
    if (ms == 0) {
        return json_null();
    }
    char buf[OUT_TIME_MAX];
    aj_time_format(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *duration_json(int64_t ms) {
    char buf[OUT_SPEC_MAX];
    aj_duration_format(ms, buf, sizeof buf);
    return json_string(buf);
}

char *out_raw_text(const void *data, size_t len) {
    if (data == NULL) {
        return strdup("null");
    }
    char *text = malloc(len + 1);
    size_t n = 0;
    if (text != NULL && aj_json_check(data, len, text, &n, NULL) == 0) {
        text[n] = '\0';
        return text;
    }
    free(text);
    json_t *s = bytes_string(data, len);
    text = s != NULL ? json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    return text;
}

/* The job's routing (aj submit --require-tag, --prefer-node, --avoid-node), or null. */
static json_t *routing_json(const aj_job *j) {
    if (j->require_tag == NULL && j->prefer_node == NULL && j->avoid_node == NULL) {
        return json_null();
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "require_tag", out_str_json(j->require_tag),
                     "prefer_node", out_str_json(j->prefer_node), "prefer_wait",
                     j->prefer_node != NULL ? duration_json(j->prefer_wait_ms) : json_null(),
                     "avoid_node", out_str_json(j->avoid_node));
}

/* The fields of a job that are plain values (everything but payload, result and metadata). */
static json_t *job_scalars(const aj_job *j) {
    char backoff[OUT_SPEC_MAX];
    aj_backoff_format(&j->backoff, backoff, sizeof backoff);
    const char *reason = aj_dead_reason_name(j->dead_reason);
    const char *state = aj_state_name(j->state);
    /* json_pack's "o" steals each reference; a NULL one (out of memory) fails the whole pack. */
    json_t *o = json_pack(
        "{s:I, s:o, s:o, s:s, s:I, s:I, s:I, s:s, s:o, s:o}", "id", (json_int_t)j->id, "queue",
        out_str_json(j->queue), "type", out_str_json(j->type), "state",
        state != NULL ? state : "unknown", "priority", (json_int_t)j->priority, "attempts",
        (json_int_t)j->attempts, "max_attempts", (json_int_t)j->max_attempts, "backoff", backoff,
        "timeout", duration_json(j->timeout_ms), "lease", duration_json(j->lease_ms));
    if (o == NULL) {
        return NULL;
    }
    int bad = 0;
    bad |= json_object_set_new(o, "error", out_str_json(j->error));
    bad |= json_object_set_new(o, "dead_reason",
                               reason[0] != '\0' ? json_string(reason) : json_null());
    bad |= json_object_set_new(o, "created_at", out_time_json(j->created_ms));
    bad |= json_object_set_new(o, "run_at",
                               j->run_at_ms == AJ_RUN_AT_DEPS
                                   ? json_null() /* after its dependencies */
                                   : out_time_json(j->run_at_ms));
    bad |= json_object_set_new(o, "started_at", out_time_json(j->started_ms));
    bad |= json_object_set_new(o, "finished_at", out_time_json(j->finished_ms));
    bad |= json_object_set_new(o, "updated_at", out_time_json(j->updated_ms));
    bad |= json_object_set_new(o, "dead_at", out_time_json(j->dead_ms));
    bad |=
        json_object_set_new(o, "lease_expires_at",
                            out_time_json(j->state == AJ_STATE_RUNNING ? j->lease_expires_ms : 0));
    bad |= json_object_set_new(o, "epoch", json_integer((json_int_t)j->epoch));
    bad |= json_object_set_new(o, "worker", out_str_json(j->worker));
    bad |= json_object_set_new(o, "redrives", json_integer((json_int_t)j->redrives));
    bad |= json_object_set_new(o, "idempotency_key", out_str_json(j->idempotency_key));
    bad |= json_object_set_new(o, "routing", routing_json(j));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *out_job_text(const aj_job *j) {
    /* jansson cannot hold every JSON value (64-bit integers at most, no 1e999) and would
     * re-encode the rest, so the user's own JSON is spliced in as compact text. */
    static const char *const names[] = {"payload", "result", "metadata"};
    const void *data[] = {j->payload, j->result, j->metadata};
    size_t lens[] = {j->payload_len, j->result_len, j->metadata != NULL ? strlen(j->metadata) : 0};
    char *raw[3] = {NULL, NULL, NULL};
    char *text = NULL;
    json_t *o = job_scalars(j);
    char *head = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    size_t total = head != NULL ? strlen(head) : 0;
    int ok = head != NULL && total >= 2 && head[total - 1] == '}';
    for (size_t k = 0; k < 3 && ok; k++) {
        raw[k] = out_raw_text(data[k], lens[k]);
        ok = raw[k] != NULL;
        total += ok ? strlen(names[k]) + strlen(raw[k]) + 4 : 0; /* ,"name": */
    }
    if (ok) {
        text = malloc(total + 1);
    }
    if (text != NULL) {
        size_t n = strlen(head) - 1; /* without its closing brace */
        memcpy(text, head, n);
        for (size_t k = 0; k < 3; k++) {
            n += (size_t)sprintf(text + n, ",\"%s\":%s", names[k], raw[k]);
        }
        text[n++] = '}';
        text[n] = '\0';
    }
    for (size_t k = 0; k < 3; k++) {
        free(raw[k]);
    }
    free(head);
    return text;
}

int out_job_print(const aj_job *job) {
    char *text = out_job_text(job);
    if (text == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    int rc = fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF;
    free(text);
    return rc != 0 ? out_write_failed() : CLI_EXIT_OK;
}

char *out_object_splice(json_t *value, const char *key, const char *raw) {
    /* The spliced member replaces one of the same key, as json_object_set would: a second
     * member with the same key is not sane JSON (parsers keep either one). */
    if (value != NULL && json_is_object(value)) {
        json_object_del(value, key);
    }
    char *head = value != NULL && json_is_object(value)
                     ? json_dumps(value, JSON_COMPACT | JSON_REAL_PRECISION(OUT_REAL_DIGITS))
                     : NULL;
    json_decref(value);
    size_t n = head != NULL ? strlen(head) : 0;
    char *text = n >= 2 ? malloc(n + strlen(key) + strlen(raw) + 8) : NULL;
    if (text != NULL) {
        /* Without its closing brace; a comma unless the object was empty. */
        sprintf(text, "%.*s%s\"%s\":%s}", (int)(n - 1), head, n > 2 ? "," : "", key, raw);
    }
    free(head);
    return text;
}

int out_json(json_t *value) {
    if (value == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    int rc = json_dumpf(value, stdout,
                        JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(OUT_REAL_DIGITS));
    json_decref(value);
    if (rc != 0 || fputc('\n', stdout) == EOF) {
        return out_write_failed();
    }
    return CLI_EXIT_OK;
}

/* Prints one `key: value` line with the values aligned. */
static void kv(const char *key, const char *value) {
    printf("%-17s %s\n", key, value);
}

/* Prints bytes as compact JSON (a JSON string when they are not JSON), "-" for none. */
static void kv_bytes(const char *key, const void *data, size_t len) {
    char *text = data != NULL ? out_raw_text(data, len) : NULL;
    kv(key, data == NULL ? "-" : text != NULL ? text : "(out of memory)");
    free(text);
}

void out_job_human(const aj_job *j) {
    char buf[OUT_SPEC_MAX];
    char t[OUT_TIME_MAX];
    snprintf(buf, sizeof buf, "%" PRIu64, j->id);
    kv("id:", buf);
    kv("queue:", j->queue);
    kv("type:", j->type);
    kv("state:", aj_state_name(j->state) != NULL ? aj_state_name(j->state) : "unknown");
    snprintf(buf, sizeof buf, "%" PRIu32, j->priority);
    kv("priority:", buf);
    snprintf(buf, sizeof buf, "%" PRIu32 " of %" PRIu32, j->attempts, j->max_attempts);
    kv("attempts:", buf);
    aj_backoff_format(&j->backoff, buf, sizeof buf);
    kv("backoff:", buf);
    aj_duration_format(j->timeout_ms, buf, sizeof buf);
    kv("timeout:", buf);
    aj_duration_format(j->lease_ms, buf, sizeof buf);
    kv("lease:", buf);
    kv("created:", out_time(j->created_ms, t, sizeof t));
    kv("run at:", j->run_at_ms == AJ_RUN_AT_DEPS ? "after its dependencies"
                                                 : out_time(j->run_at_ms, t, sizeof t));
    kv("started:", out_time(j->started_ms, t, sizeof t));
    kv("finished:", out_time(j->finished_ms, t, sizeof t));
    if (j->state == AJ_STATE_RUNNING) {
        kv("lease expires:", out_time(j->lease_expires_ms, t, sizeof t));
    }
    snprintf(buf, sizeof buf, "%" PRIu64, j->epoch);
    kv("epoch:", buf);
    kv("worker:", j->worker != NULL ? j->worker : "-");
    if (j->state == AJ_STATE_DEAD || j->dead_reason != AJ_DEAD_NONE) {
        kv("dead reason:", aj_dead_reason_name(j->dead_reason));
        kv("dead at:", out_time(j->dead_ms, t, sizeof t));
    }
    kv("error:", j->error != NULL ? j->error : "-");
    snprintf(buf, sizeof buf, "%" PRIu32, j->redrives);
    kv("redrives:", buf);
    kv("idempotency key:", j->idempotency_key != NULL ? j->idempotency_key : "-");
    if (j->require_tag != NULL) {
        kv("require tag:", j->require_tag);
    }
    if (j->prefer_node != NULL) {
        char wait[64];
        char line[AJ_NAME_MAX + 96];
        aj_duration_format(j->prefer_wait_ms, wait, sizeof wait);
        snprintf(line, sizeof line, "%.200s (others after %s)", j->prefer_node, wait);
        kv("prefer node:", line);
    }
    if (j->avoid_node != NULL) {
        kv("avoid node:", j->avoid_node);
    }
    kv_bytes("metadata:", j->metadata, j->metadata != NULL ? strlen(j->metadata) : 0);
    kv_bytes("payload:", j->payload, j->payload_len);
    kv_bytes("result:", j->result, j->result_len);
}

void out_array_begin(out_array *a) {
    a->n = 0;
    fputc('[', stdout);
}

int out_array_add(out_array *a, char *text) {
    if (text == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    fputs(a->n == 0 ? "\n" : ",\n", stdout);
    int rc = fputs(text, stdout);
    free(text);
    a->n++;
    return rc != EOF ? CLI_EXIT_OK : out_write_failed();
}

void out_array_end(out_array *a) {
    fputs(a->n == 0 ? "]\n" : "\n]\n", stdout);
}

static const char *const jobs_header[OUT_COLS] = {"ID",       "QUEUE",    "TYPE",   "STATE",
                                                  "PRIORITY", "ATTEMPTS", "CREATED"};
static const char *const dead_header[OUT_COLS] = {"ID",       "QUEUE",   "TYPE", "REASON",
                                                  "ATTEMPTS", "DEAD AT", "ERROR"};

/* Copies text into a cell: control characters become spaces, long text is cut with "...". */
static void cell(char *dst, const char *src, size_t max_chars) {
    size_t cap = max_chars < OUT_CELL_MAX - 4 ? max_chars : OUT_CELL_MAX - 4;
    size_t n = 0;
    for (; src[n] != '\0' && n < cap; n++) {
        dst[n] = (unsigned char)src[n] < 0x20 ? ' ' : src[n];
    }
    if (src[n] != '\0') {
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) {
            n--; /* do not cut a UTF-8 sequence in two */
        }
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

static void job_cells(out_table_kind kind, const aj_job *j, char cells[OUT_COLS][OUT_CELL_MAX]) {
    char t[OUT_TIME_MAX];
    snprintf(cells[0], OUT_CELL_MAX, "%" PRIu64, j->id);
    cell(cells[1], j->queue, OUT_CELL_MAX);
    cell(cells[2], j->type, OUT_CELL_MAX);
    if (kind == OUT_TABLE_JOBS) {
        const char *state = aj_state_name(j->state);
        cell(cells[3], state != NULL ? state : "unknown", OUT_CELL_MAX);
        snprintf(cells[4], OUT_CELL_MAX, "%" PRIu32, j->priority);
        snprintf(cells[5], OUT_CELL_MAX, "%" PRIu32 "/%" PRIu32, j->attempts, j->max_attempts);
        cell(cells[6], out_time(j->created_ms, t, sizeof t), OUT_CELL_MAX);
    } else {
        cell(cells[3], aj_dead_reason_name(j->dead_reason), OUT_CELL_MAX);
        snprintf(cells[4], OUT_CELL_MAX, "%" PRIu32 "/%" PRIu32, j->attempts, j->max_attempts);
        cell(cells[5], out_time(j->dead_ms, t, sizeof t), OUT_CELL_MAX);
        cell(cells[6], j->error != NULL ? j->error : "-", OUT_ERROR_COLUMN);
    }
}

static void print_row(const out_table *t, char cells[OUT_COLS][OUT_CELL_MAX]) {
    for (size_t c = 0; c < OUT_COLS; c++) {
        if (c + 1 == OUT_COLS) {
            printf("%s\n", cells[c]); /* no padding after the last column */
        } else {
            printf("%-*s  ", (int)t->width[c], cells[c]);
        }
    }
}

void out_table_init(out_table *t, out_table_kind kind) {
    memset(t, 0, sizeof *t);
    t->kind = kind;
}

static void table_start(out_table *t, aj_job *const *jobs, size_t n) {
    const char *const *header = t->kind == OUT_TABLE_JOBS ? jobs_header : dead_header;
    char cells[OUT_COLS][OUT_CELL_MAX];
    for (size_t c = 0; c < OUT_COLS; c++) {
        t->width[c] = strlen(header[c]);
    }
    for (size_t i = 0; i < n; i++) {
        job_cells(t->kind, jobs[i], cells);
        for (size_t c = 0; c < OUT_COLS; c++) {
            size_t w = strlen(cells[c]);
            t->width[c] = w > t->width[c] ? w : t->width[c];
        }
    }
    for (size_t c = 0; c < OUT_COLS; c++) {
        snprintf(cells[c], OUT_CELL_MAX, "%s", header[c]);
    }
    print_row(t, cells);
    t->started = 1;
}

void out_table_rows(out_table *t, aj_job *const *jobs, size_t n) {
    if (!t->started) {
        table_start(t, jobs, n);
    }
    char cells[OUT_COLS][OUT_CELL_MAX];
    for (size_t i = 0; i < n; i++) {
        job_cells(t->kind, jobs[i], cells);
        print_row(t, cells);
    }
}

void out_table_end(out_table *t) {
    if (!t->started) {
        table_start(t, NULL, 0);
    }
}

void out_list_begin(out_list *l, int json, out_table_kind kind) {
    memset(l, 0, sizeof *l);
    l->json = json;
    if (json) {
        out_array_begin(&l->array);
    } else {
        out_table_init(&l->table, kind);
    }
}

int out_list_visit(cli *c, aj_job *const *jobs, size_t n, void *ud) {
    (void)c;
    out_list *l = ud;
    if (!l->json) {
        out_table_rows(&l->table, jobs, n);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = out_array_add(&l->array, out_job_text(jobs[i]));
        if (rc != 0) {
            return rc;
        }
    }
    return CLI_EXIT_OK;
}

void out_list_end(out_list *l) {
    if (l->json) {
        out_array_end(&l->array);
    } else {
        out_table_end(&l->table);
    }
}

int out_list_jobs(cli *c, const aj_job_filter *filter, size_t limit, int json,
                  out_table_kind kind) {
    int rc = cli_open(c, NULL);
    if (rc != 0) {
        return rc;
    }
    out_list list;
    out_list_begin(&list, json, kind);
    rc = cli_list_pages(c, filter, limit, out_list_visit, &list);
    out_list_end(&list);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* Output that fails after a commit                                                          */

void out_committed(const char *fmt, ...) {
    /* From now on a reader that closes the pipe must not kill the command with SIGPIPE before it
     * says what it committed: the write fails with EPIPE instead and is reported. Nothing is
     * written to stdout before the first commit, so commands that only read keep the usual
     * quiet death of `aj job ls | head`. */
    signal(SIGPIPE, SIG_IGN);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t sep = committed.len > 0 ? 2 : 0;
    char *grown = n >= 0 ? realloc(committed.text, committed.len + sep + (size_t)n + 1) : NULL;
    if (grown == NULL) {
        committed.oom = 1;
        return;
    }
    committed.text = grown;
    if (sep > 0) {
        memcpy(grown + committed.len, "; ", sep);
    }
    va_start(ap, fmt);
    vsnprintf(grown + committed.len + sep, (size_t)n + 1, fmt, ap);
    va_end(ap);
    committed.len += sep + (size_t)n;
}

void out_committed_ids(const char *verb, const char *noun, const uint64_t *ids, size_t n) {
    if (n == 0) {
        return;
    }
    /* Ids of one batch are allocated in blocks, so runs of consecutive ids ("12-1011") keep even
     * a long list short. Each id needs at most CLI_NUM_MAX bytes with its separator. */
    char *list = malloc(n * (2 * CLI_NUM_MAX) + 1);
    if (list == NULL) {
        out_committed("%s %zu %ss", verb, n, noun);
        return;
    }
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && ids[j + 1] == ids[j] + 1) {
            j++;
        }
        len += (size_t)sprintf(list + len, "%s%" PRIu64, i > 0 ? ", " : "", ids[i]);
        if (j > i) {
            len += (size_t)sprintf(list + len, "-%" PRIu64, ids[j]);
        }
        i = j + 1;
    }
    out_committed("%s %s%s %s", verb, noun, n > 1 ? "s" : "", list);
    free(list);
}

int out_write_failed(void) {
    if (committed.errnum == 0) {
        committed.errnum = errno != 0 ? errno : EIO;
    }
    if (committed.text != NULL || committed.oom) {
        return CLI_EXIT_OUTPUT; /* out_finish() names what was committed */
    }
    return cli_error(CLI_EXIT_ERROR, "cannot write to stdout: %s", strerror(committed.errnum));
}

int out_finish(int rc) {
    errno = 0;
    int failed = fflush(stdout) != 0;
    if (failed && committed.errnum == 0) {
        committed.errnum = errno != 0 ? errno : EIO;
    }
    failed = failed || ferror(stdout) || committed.errnum != 0;
    if (failed && (committed.text != NULL || committed.oom)) {
        /* The store has the change: a store-error exit would make a caller retry it and, for a
         * submit, run the job twice. Name what was done so that the caller can pick it up. */
        fprintf(stderr, "aj: %s%s, but writing the output failed: %s\n",
                committed.text != NULL ? committed.text : "committed changes",
                committed.oom ? " (and more)" : "", strerror(committed.errnum));
        if (rc == CLI_EXIT_OK || rc == CLI_EXIT_OUTPUT) {
            rc = CLI_EXIT_OUTPUT;
        }
    } else if (failed && rc == CLI_EXIT_OK) {
        rc = cli_error(CLI_EXIT_ERROR, "cannot write to stdout: %s", strerror(committed.errnum));
    }
    free(committed.text);
    committed.text = NULL;
    return rc;
}
