/*
 * cmd_wf.c — `aj wf start|ls|show|result|signal|query|cancel|terminate|resume|history`: durable
 * workflows from the command line. Workers (`aj worker`) run them; these commands start them,
 * talk to them and read their histories.
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

/* Bytes of a workflow input read from a file. */
#define WF_INPUT_FILE_MAX (AJ_WF_DATA_MAX + 1)
/* Workflows one `--input-lines` start may create. */
#define WF_LINES_MAX 100000
/* Characters of event data shown per line in the human timeline. */
#define WF_TIMELINE_DATA 100

static const char start_help[] =
    "Usage: aj wf start TYPE [--id ID] [--input JSON | --input-file F | --input-lines F]\n"
    "                   [--timeout DUR] [--rerun]\n"
    "\n"
    "Starts a workflow of TYPE and prints its id (one id a line with --input-lines; with\n"
    "--json an object {\"id\":...} or {\"ids\":[...]}). The built-in type `saga` runs a "
    "declarative\n"
    "saga: "
    "{\"steps\":[{\"name\":\"reserve\",\"run\":[\"PROGRAM\",\"ARG\"],\"compensate\":[...]},...]}\n"
    "(see docs/WORKFLOWS.md). The built-in type `statemachine` runs states of jobs with\n"
    "transitions: "
    "{\"initial\":\"build\",\"states\":{\"build\":{\"jobs\":[...],\"on\":{...}},...}}\n"
    "(see docs/STATEMACHINE.md). Other types are C functions registered by a worker program; the\n"
    "type must have been registered with this store.\n"
    "\n"
    "Flags:\n"
    "  --id ID            the workflow id (default: a generated UUID); 1-200 bytes of letters,\n"
    "                     digits and -+/;.$_()\n"
    "  --input JSON       the input, a JSON value (default: null), at most 1 MiB\n"
    "  --input-file F     read the input from file F (- for stdin)\n"
    "  --input-lines F    start one workflow per line of F (- for stdin), all or nothing\n"
    "  --timeout DUR      execution timeout: past it the run ends timed_out\n"
    "  --rerun            start a new run when the id has already finished\n"
    "\n"
    "Exit codes: 0 started, 1 store error, 2 bad input (unknown type, malformed or oversize\n"
    "input), 4 the id is running (or finished, without --rerun), 5 started, but the output\n"
    "failed (stderr names the workflows; do not start them again).\n"
    "\n"
    "Example:\n"
    "  aj wf start saga --id order-17 --input-file order-saga.json\n"
    "  aj wf start statemachine --id release-3 --input-file examples/statemachine/release.json\n";

static const char ls_help[] =
    "Usage: aj wf ls [--state S] [--type T] [--limit N]\n"
    "\n"
    "Lists workflows in id order: a table, or with --json an array of\n"
    "objects with id, type, run, state, events, result, error, created_at,\n"
    "updated_at, finished_at (result embedded as JSON when it is JSON; times\n"
    "RFC 3339, null when not yet).\n"
    "\n"
    "Flags:\n"
    "  --state S    running, compensating, completed, failed, cancelled,\n"
    "               terminated, timed_out, compensated,\n"
    "               compensation_failed or parked\n"
    "  --type T     only workflows of type T\n"
    "  --limit N    at most N (default: all)\n"
    "\n"
    "Exit codes: 0 listed, 1 store error, 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj wf ls --state parked\n";

static const char show_help[] =
    "Usage: aj wf show ID [--run N]\n"
    "\n"
    "Prints a workflow run's state, result or error, its parent (when it was started as a child\n"
    "workflow), the children it started, and its history as a timeline. An earlier run shows\n"
    "its own state (`continued` when it continued as new), result and error. With --json:\n"
    "{\"id\",\"type\",\"run\",\"state\",\"result\",\"error\",\"parent\",\"children\","
    "\"events\":[{\"seq\",\n"
    "\"type\",\"name\",\"time\",\"data\",\"aux\"},...]} (result and data embedded as JSON when "
    "they are\n"
    "JSON); parent is null or {\"id\",\"run\",\"name\",\"parent_close\"}, children a list of\n"
    "{\"id\",\"name\",\"run\",\"parent_close\",\"state\"} in start order.\n"
    "\n"
    "Flags:\n"
    "  --run N    an earlier run of the id (default: the latest; 1 is the first)\n"
    "\n"
    "Exit codes: 0 shown, 1 store error, 2 bad input, 3 no such workflow or run.\n"
    "\n"
    "Examples:\n"
    "  aj wf show order-17\n"
    "  aj wf show meter-1 --run 2      # a run that continued as new\n";

static const char result_help[] =
    "Usage: aj wf result ID [--wait] [--timeout DUR]\n"
    "\n"
    "Prints the result of a completed workflow. With --wait, waits until the run ends (or is\n"
    "parked) first.\n"
    "\n"
    "Exit codes: 0 completed (result printed), 1 store error, 2 bad input, 3 no such workflow,\n"
    "4 not completed (its state and error are printed on stderr).\n"
    "\n"
    "Example:\n"
    "  aj wf result order-17 --wait --timeout 5m\n";

static const char signal_help[] =
    "Usage: aj wf signal ID NAME [--payload JSON]\n"
    "\n"
    "Sends signal NAME to a running workflow; it is buffered until the workflow waits for it.\n"
    "\n"
    "Exit codes: 0 sent, 1 store error, 2 bad input, 3 no such workflow, 4 it has finished,\n"
    "5 sent, but the output failed (do not send it again).\n"
    "\n"
    "Example:\n"
    "  aj wf signal approval-9 approved --payload '{\"by\":\"ana\"}'\n";

static const char query_help[] =
    "Usage: aj wf query ID NAME\n"
    "\n"
    "Asks a workflow's query handler NAME and prints the answer. The workflow is replayed\n"
    "read-only by a process that registered its type (this one for `saga`, else a worker).\n"
    "Sagas and state machines answer `status`.\n"
    "\n"
    "Exit codes: 0 answered, 1 store error or no worker answered, 2 bad input, 3 no such\n"
    "workflow or handler.\n"
    "\n"
    "Example:\n"
    "  aj wf query order-17 status\n";

static const char cancel_help[] =
    "Usage: aj wf cancel ID\n"
    "\n"
    "Asks a running workflow to cancel: its code sees the request and may clean up; a saga runs\n"
    "its compensations.\n"
    "\n"
    "Exit codes: 0 requested, 1 store error, 2 bad input, 3 no such workflow, 4 finished.\n"
    "\n"
    "Example:\n"
    "  aj wf cancel order-17\n";

static const char terminate_help[] =
    "Usage: aj wf terminate ID [--reason TEXT]\n"
    "\n"
    "Ends a workflow at once; none of its code runs again (no compensation).\n"
    "\n"
    "Exit codes: 0 terminated, 1 store error, 2 bad input, 3 no such workflow, 4 finished.\n"
    "\n"
    "Example:\n"
    "  aj wf terminate order-17 --reason 'duplicate order'\n";

static const char resume_help[] =
    "Usage: aj wf resume ID\n"
    "\n"
    "Retries a parked workflow (parked when its code no longer matched its history) after the\n"
    "code was fixed.\n"
    "\n"
    "Exit codes: 0 resumed, 1 store error, 2 bad input, 3 no such workflow, 4 not parked.\n"
    "\n"
    "Example:\n"
    "  aj wf resume order-17\n";

static const char history_help[] =
    "Usage: aj wf history ID [--run N]\n"
    "\n"
    "Prints the raw history, one JSON object a line: seq, type, name, time, hlc, id, prev_id,\n"
    "data, aux. The chain (each event's prev_id) is validated while reading.\n"
    "\n"
    "Exit codes: 0 printed, 1 store error or a broken chain, 2 bad input, 3 no such workflow.\n"
    "\n"
    "Example:\n"
    "  aj wf history order-17 | jq .type\n";

/* Reports a failed call about workflow `id`. */
static int wf_error(int rc, const char *id, const char *verb) {
    if (rc == AJ_ENOTFOUND) {
        return cli_error(CLI_EXIT_NOTFOUND, "%s", aj_errmsg());
    }
    return cli_fail(rc, "cannot %s workflow '%s'", verb, id);
}

/* What args_parse_names checks a lone workflow id as. */
static const char *const wf_id_what[] = {"workflow id"};

static int check_id(const char *id) {
    if (aj_name_check("workflow id", id) != 0) {
        return cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
    }
    return 0;
}

/* Reads a whole file (or stdin for "-") up to `max` bytes. */
static int read_all(const char *path, size_t max, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        return cli_error(CLI_EXIT_USAGE, "cannot read '%s': %s", path, strerror(errno));
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : cli_error(CLI_EXIT_ERROR, "out of memory");
    while (rc == 0) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                rc = cli_error(CLI_EXIT_ERROR, "out of memory");
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            rc = cli_error(CLI_EXIT_USAGE, "'%s' is over the %zu-byte limit", path, max - 1);
        }
        if (got == 0) {
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

int wf_check_json(const char *what, const char *text, size_t len) {
    if (len > AJ_WF_DATA_MAX) {
        return cli_error(CLI_EXIT_USAGE, "%s is %zu bytes, over the 1 MiB limit", what, len);
    }
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &err);
    if (v == NULL) {
        return cli_error(CLI_EXIT_USAGE, "%s is not valid JSON (line %d, column %d: %s)", what,
                         err.line, err.column, err.text);
    }
    json_decref(v);
    return 0;
}

static int start_one(cli *c, const char *type, const char *id, const char *input, size_t len,
                     int64_t timeout, int rerun, char **out_id) {
    aj_wf_start_opts o = {id, rerun, timeout};
    int rc = aj_wf_start(c->engine, type, input, len, &o, out_id);
    if (rc == AJ_EEXISTS) {
        return cli_error(CLI_EXIT_STATE, "%s", aj_errmsg());
    }
    if (rc != 0) {
        return cli_fail(rc, "cannot start a %s workflow", type);
    }
    out_committed("started workflow %s", *out_id);
    return 0;
}

int cmd_wf_start(cli *c, int argc, char **argv) {
    const char *id = NULL, *input = NULL, *input_file = NULL, *input_lines = NULL;
    const char *timeout_text = NULL;
    int rerun = 0;
    const arg_flag flags[] = {{"--id", &id, NULL},
                              {"--input", &input, NULL},
                              {"--input-file", &input_file, NULL},
                              {"--input-lines", &input_lines, NULL},
                              {"--timeout", &timeout_text, NULL},
                              {"--rerun", NULL, &rerun},
                              {NULL, NULL, NULL}};
    const arg_spec spec = {"aj wf start", start_help, flags, "TYPE", 1, 1, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *type = r.pos[0];
    args_free(&r);
    int sources = (input != NULL) + (input_file != NULL) + (input_lines != NULL);
    if (sources > 1) {
        return args_usage_error("aj wf start",
                                "give one of --input, --input-file and --input-lines");
    }
    if (aj_name_check("workflow type", type) != 0) {
        return cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
    }
    if (id != NULL && (rc = check_id(id)) != 0) {
        return rc;
    }
    if (id != NULL && input_lines != NULL) {
        return args_usage_error("aj wf start", "--id cannot be used with --input-lines");
    }
    int64_t timeout = 0;
    if (timeout_text != NULL && (rc = cli_parse_duration("--timeout", timeout_text, &timeout))) {
        return rc;
    }
    char *buf = NULL;
    size_t len = 0;
    if (input != NULL) {
        len = strlen(input);
        rc = wf_check_json("--input", input, len);
    } else if (input_file != NULL) {
        rc = read_all(input_file, WF_INPUT_FILE_MAX, &buf, &len);
        if (rc == 0) {
            rc = wf_check_json(input_file, buf, len);
        }
        input = buf;
    } else if (input_lines != NULL) {
        rc = read_all(input_lines, (size_t)WF_LINES_MAX * (AJ_WF_DATA_MAX + 1), &buf, &len);
    } else {
        input = "null";
        len = 4;
    }
    aj_span *spans = NULL;
    size_t n_spans = 0;
    if (rc == 0 && input_lines != NULL) {
        if (aj_payload_lines_split(buf, len, &spans, &n_spans) != 0) {
            rc = cli_error(CLI_EXIT_USAGE, "%s: %s", input_lines, aj_errmsg());
        }
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0 && !aj_wf_type_known(c->engine, type)) {
        rc = cli_error(CLI_EXIT_USAGE,
                       "unknown workflow type '%s': no worker has registered it with this store "
                       "(the built-in types are saga and statemachine)",
                       type);
    }
    if (rc == 0 && input_lines == NULL) {
        char *out_id = NULL;
        rc = start_one(c, type, id, input, len, timeout, rerun, &out_id);
        if (rc == 0) {
            if (c->json) {
                rc = out_json(json_pack("{s:s}", "id", out_id));
            } else {
                printf("%s\n", out_id);
            }
        }
        aj_free(out_id);
    } else if (rc == 0) {
        /* Every line was checked; the saga type checks its own shape on each start. */
        json_t *ids = json_array();
        for (size_t i = 0; i < n_spans && rc == 0; i++) {
            char *out_id = NULL;
            rc = start_one(c, type, NULL, buf + spans[i].off, spans[i].len, timeout, 0, &out_id);
            if (rc == 0) {
                if (c->json) {
                    json_array_append_new(ids, json_string(out_id));
                } else {
                    printf("%s\n", out_id);
                }
            } else if (i > 0) {
                fprintf(stderr, "aj: line %zu failed; the %zu workflows before it started\n", i + 1,
                        i);
            }
            aj_free(out_id);
        }
        if (rc == 0 && c->json) {
            rc = out_json(json_pack("{s:o}", "ids", ids));
        } else {
            json_decref(ids);
        }
    }
    aj_free(spans);
    free(buf);
    return rc;
}

static json_t *info_json(const aj_wf_info *w) {
    json_t *o = json_object();
    json_object_set_new(o, "id", out_str_json(w->id));
    json_object_set_new(o, "type", out_str_json(w->type));
    json_object_set_new(o, "run", json_integer(w->run));
    json_object_set_new(o, "state", json_string(aj_wf_state_name(w->state)));
    json_object_set_new(o, "events", json_integer((json_int_t)w->events));
    json_object_set_new(o, "result", out_bytes_json(w->result, w->result_len));
    json_object_set_new(o, "error", out_str_json(w->error));
    json_object_set_new(o, "created_at", out_time_json(w->created_ms));
    json_object_set_new(o, "updated_at", out_time_json(w->updated_ms));
    json_object_set_new(o, "finished_at", out_time_json(w->finished_ms));
    return o;
}

int cmd_wf_ls(cli *c, int argc, char **argv) {
    const char *state = NULL, *type = NULL, *limit_text = NULL;
    const arg_flag flags[] = {{"--state", &state, NULL},
                              {"--type", &type, NULL},
                              {"--limit", &limit_text, NULL},
                              {NULL, NULL, NULL}};
    const arg_spec spec = {"aj wf ls", ls_help, flags, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    aj_wf_filter f = {0, type, 0};
    if (state != NULL && aj_wf_state_parse(state, &f.state) != 0) {
        return cli_error(CLI_EXIT_USAGE, "--state: %s", aj_errmsg());
    }
    if (type != NULL && aj_name_check("workflow type", type) != 0) {
        return cli_error(CLI_EXIT_USAGE, "--type: %s", aj_errmsg());
    }
    uint64_t limit = 0;
    if (limit_text != NULL &&
        (rc = cli_parse_uint("--limit", limit_text, 0, 100000000, &limit)) != 0) {
        return rc;
    }
    f.limit = (size_t)limit;
    if ((rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    aj_wf_info **list = NULL;
    size_t n = 0;
    int arc = aj_wf_list(c->engine, &f, &list, &n);
    if (arc != 0) {
        return cli_fail(arc, "cannot list workflows");
    }
    if (c->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(a, info_json(list[i]));
        }
        rc = out_json(a);
    } else {
        printf("%-38s %-14s %-20s %4s %7s  %s\n", "ID", "TYPE", "STATE", "RUN", "EVENTS",
               "UPDATED");
        for (size_t i = 0; i < n; i++) {
            char t[OUT_TIME_MAX];
            printf("%-38s %-14s %-20s %4u %7" PRIu64 "  %s\n", list[i]->id, list[i]->type,
                   aj_wf_state_name(list[i]->state), list[i]->run, list[i]->events,
                   out_time(list[i]->updated_ms, t, sizeof t));
        }
    }
    aj_wf_list_free(list, n);
    return rc;
}

/* Prints `text` (NULL: out of memory) and a newline, and frees it. */
static int print_text(char *text) {
    if (text == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    int bad = printf("%s\n", text) < 0;
    free(text);
    return bad ? cli_error(CLI_EXIT_ERROR, "cannot write to stdout") : CLI_EXIT_OK;
}

/* An event's aux as JSON text: unsigned (its top bit may be a flag), which jansson cannot hold. */
static char *event_text(json_t *o, uint64_t aux) {
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, aux);
    return out_object_splice(o, "aux", num);
}

typedef struct show_ctx {
    cli *c;
    int json;
    /* With --json: the events as the text of a JSON array, without its closing bracket (each
     * event is text: see event_text). */
    char *events;
    size_t len, cap;
} show_ctx;

static int show_event(void *ud, const aj_wf_event *ev) {
    show_ctx *s = ud;
    if (s->json) {
        json_t *o = json_object();
        json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
        json_object_set_new(o, "type", json_string(ev->type));
        json_object_set_new(o, "name", out_str_json(ev->name));
        json_object_set_new(o, "time", out_time_json(ev->time_ms));
        json_object_set_new(
            o, "data", ev->data.len ? out_bytes_json(ev->data.data, ev->data.len) : json_null());
        if (strcmp(ev->type, "activity_completed") == 0 && (ev->aux & AJ_WF_EVENT_CACHED)) {
            json_object_set_new(o, "cached", json_true());
        }
        char *text = event_text(o, ev->aux);
        size_t n = text != NULL ? strlen(text) : 0;
        if (text != NULL && s->len + n + 3 > s->cap) {
            size_t cap = (s->len + n + 3) * 2;
            char *grown = realloc(s->events, cap);
            if (grown == NULL) {
                free(text);
                text = NULL;
            } else {
                s->events = grown;
                s->cap = cap;
            }
        }
        if (text == NULL) {
            return AJ_ENOMEM;
        }
        char sep = s->len == 0 ? '[' : ',';
        s->events[s->len++] = sep;
        memcpy(s->events + s->len, text, n + 1);
        s->len += n;
        free(text);
        return 0;
    }
    char t[OUT_TIME_MAX];
    int n = (int)(ev->data.len > WF_TIMELINE_DATA ? WF_TIMELINE_DATA : ev->data.len);
    printf("  %4" PRIu64 "  %s  %-24s %-16s %.*s%s\n", ev->seq, out_time(ev->time_ms, t, sizeof t),
           ev->type, ev->name, n, (const char *)ev->data.data,
           ev->data.len > WF_TIMELINE_DATA ? "..." : "");
    return 0;
}

/* A child's current state: "collected" once its record is gone. */
static const char *child_state(cli *c, const aj_wf_link *l) {
    aj_wf_info *i = NULL;
    int rc = aj_wf_get(c->engine, l->id, &i);
    if (rc != 0) {
        return rc == AJ_ENOTFOUND ? "collected" : "unknown";
    }
    const char *name = aj_wf_state_name(i->state);
    aj_wf_info_free(i);
    return name;
}

static json_t *child_json(cli *c, const aj_wf_link *l) {
    return json_pack("{s:o, s:o, s:I, s:s, s:s}", "id", out_str_json(l->id), "name",
                     out_str_json(l->name), "run", (json_int_t)l->run, "parent_close",
                     aj_parent_close_name(l->parent_close), "state", child_state(c, l));
}

/* `aj wf show` and `aj wf history` take one workflow id and an optional --run: parses them and
 * opens the store. Returns ARGS_PROCEED, or the exit code to return at once. */
static int id_run_open(cli *c, const char *cmd, const char *help, int argc, char **argv,
                       const char **id, uint32_t *run) {
    const char *run_text = NULL;
    const arg_flag flags[] = {{"--run", &run_text, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {cmd, help, flags, "ID", 1, 1, 0};
    int rc = args_parse_names(c, &spec, argc, argv, wf_id_what, id);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    uint64_t n = 0;
    if ((run_text != NULL && (rc = cli_parse_uint("--run", run_text, 1, UINT32_MAX, &n))) ||
        (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    *run = (uint32_t)n;
    return ARGS_PROCEED;
}

int cmd_wf_show(cli *c, int argc, char **argv) {
    const char *id;
    uint32_t run;
    int rc = id_run_open(c, "aj wf show", show_help, argc, argv, &id, &run);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    rc = CLI_EXIT_OK;
    aj_wf_info *w = NULL;
    int arc = aj_wf_get_run(c->engine, id, run, &w);
    if (arc != 0) {
        return wf_error(arc, id, "read");
    }
    aj_wf_link parent;
    int has_parent = 0;
    aj_wf_link *children = NULL;
    size_t n_children = 0;
    arc = aj_wf_parent(c->engine, id, &parent);
    if (arc == 0) {
        has_parent = 1;
    } else if (arc == AJ_ENOTFOUND) {
        arc = aj_wf_children(c->engine, id, &children, &n_children);
    }
    if (arc == 0 && has_parent) {
        arc = aj_wf_children(c->engine, id, &children, &n_children);
    }
    if (arc != 0) {
        aj_wf_info_free(w);
        return wf_error(arc, id, "read the links of");
    }
    show_ctx s = {c, c->json, NULL, 0, 0};
    if (c->json) {
        json_t *o = info_json(w);
        json_object_set_new(
            o, "parent",
            has_parent ? json_pack("{s:o, s:I, s:o, s:s}", "id", out_str_json(parent.id), "run",
                                   (json_int_t)parent.run, "name", out_str_json(parent.name),
                                   "parent_close", aj_parent_close_name(parent.parent_close))
                       : json_null());
        json_t *kids = json_array();
        for (size_t i = 0; i < n_children; i++) {
            json_array_append_new(kids, child_json(c, &children[i]));
        }
        json_object_set_new(o, "children", kids);
        arc = aj_wf_history(c->engine, id, run, show_event, &s);
        if (arc == 0 && s.events != NULL) {
            memcpy(s.events + s.len, "]", 2); /* show_event keeps room for it */
        }
        if (arc == 0) {
            rc = print_text(out_object_splice(o, "events", s.events != NULL ? s.events : "[]"));
        } else {
            json_decref(o);
        }
        free(s.events);
    } else {
        char t[OUT_TIME_MAX];
        printf("id:        %s\ntype:      %s\nrun:       %u\nstate:     %s\n", w->id, w->type,
               w->run, aj_wf_state_name(w->state));
        printf("created:   %s\n", out_time(w->created_ms, t, sizeof t));
        if (w->result != NULL) {
            printf("result:    %s\n", (const char *)w->result);
        }
        if (w->error != NULL) {
            printf("error:     %s\n", w->error);
        }
        if (has_parent) {
            printf("parent:    %s (run %u, child '%s', on parent close: %s)\n", parent.id,
                   parent.run, parent.name, aj_parent_close_name(parent.parent_close));
        }
        if (n_children > 0) {
            printf("children:  %zu\n", n_children);
            for (size_t i = 0; i < n_children; i++) {
                printf("  %-38s %-20s run %-4u %-10s %s\n", children[i].id, children[i].name,
                       children[i].run, aj_parent_close_name(children[i].parent_close),
                       child_state(c, &children[i]));
            }
        }
        printf("history:\n");
        arc = aj_wf_history(c->engine, id, run, show_event, &s);
    }
    aj_free(children);
    aj_wf_info_free(w);
    if (arc != 0) {
        return wf_error(arc, id, "read the history of");
    }
    return rc;
}

int cmd_wf_result(cli *c, int argc, char **argv) {
    const char *timeout_text = NULL;
    int wait = 0;
    const arg_flag flags[] = {
        {"--wait", NULL, &wait}, {"--timeout", &timeout_text, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj wf result", result_help, flags, "ID", 1, 1, 0};
    const char *id;
    int rc = args_parse_names(c, &spec, argc, argv, wf_id_what, &id);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    int64_t timeout = -1;
    if ((timeout_text != NULL && (rc = cli_parse_duration("--timeout", timeout_text, &timeout)))) {
        return rc;
    }
    if ((rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    if (wait) {
        aj_wf_state st;
        int arc = aj_wf_wait(c->engine, id, timeout, &st);
        if (arc == AJ_ETIMEDOUT) {
            return cli_error(CLI_EXIT_STATE, "%s", aj_errmsg());
        }
        if (arc != 0) {
            return wf_error(arc, id, "wait for");
        }
    }
    aj_wf_info *w = NULL;
    int arc = aj_wf_get(c->engine, id, &w);
    if (arc != 0) {
        return wf_error(arc, id, "read");
    }
    if (w->state != AJ_WF_COMPLETED) {
        rc = cli_error(CLI_EXIT_STATE, "workflow '%s' is %s%s%s", id, aj_wf_state_name(w->state),
                       w->error ? ": " : "", w->error ? w->error : "");
    } else if (c->json) {
        rc = out_json(out_bytes_json(w->result, w->result_len));
    } else {
        printf("%s\n", w->result ? (const char *)w->result : "");
    }
    aj_wf_info_free(w);
    return rc;
}

int cmd_wf_signal(cli *c, int argc, char **argv) {
    const char *payload = NULL;
    const arg_flag flags[] = {{"--payload", &payload, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj wf signal", signal_help, flags, "ID NAME", 2, 2, 0};
    static const char *const what[] = {"workflow id", "signal name"};
    const char *pos[2];
    int rc = args_parse_names(c, &spec, argc, argv, what, pos);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *id = pos[0], *name = pos[1];
    if (payload == NULL) {
        payload = "null";
    }
    if ((rc = wf_check_json("--payload", payload, strlen(payload))) != 0 ||
        (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    int arc = aj_wf_signal(c->engine, id, name, payload, strlen(payload));
    if (arc == AJ_ESTATE) {
        return cli_error(CLI_EXIT_STATE, "%s", aj_errmsg());
    }
    if (arc != 0) {
        return wf_error(arc, id, "signal");
    }
    out_committed("sent signal '%s' to workflow %s", name, id);
    return c->json ? out_json(json_pack("{s:s,s:s}", "id", id, "signal", name)) : CLI_EXIT_OK;
}

int cmd_wf_query(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj wf query", query_help, NULL, "ID NAME", 2, 2, 0};
    static const char *const what[] = {"workflow id", "query name"};
    const char *pos[2];
    int rc = args_parse_names(c, &spec, argc, argv, what, pos);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *id = pos[0], *name = pos[1];
    if ((rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    /* This process can answer for the built-in types. */
    aj_register_builtins(c->engine);
    char *out = NULL;
    size_t len = 0;
    int arc = aj_wf_query(c->engine, id, name, &out, &len);
    if (arc != 0) {
        return wf_error(arc, id, "query");
    }
    if (c->json) {
        rc = out_json(out_bytes_json(out, len));
    } else {
        printf("%.*s\n", (int)len, out);
    }
    aj_free(out);
    return rc;
}

/* cancel, terminate, resume: one id, one call. */
static int simple(cli *c, int argc, char **argv, const char *cmd, const char *help, int kind) {
    const char *reason = NULL;
    const arg_flag flags[] = {{"--reason", &reason, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {cmd, help, kind == 1 ? flags : NULL, "ID", 1, 1, 0};
    const char *id;
    int rc = args_parse_names(c, &spec, argc, argv, wf_id_what, &id);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    static const char *const verbs[] = {"cancel", "terminate", "resume"};
    static const char *const states[] = {"cancel_requested", "terminated", "running"};
    int arc = kind == 0   ? aj_wf_cancel(c->engine, id)
              : kind == 1 ? aj_wf_terminate(c->engine, id, reason)
                          : aj_wf_resume(c->engine, id);
    if (arc == AJ_ESTATE) {
        return cli_error(CLI_EXIT_STATE, "%s", aj_errmsg());
    }
    if (arc != 0) {
        return wf_error(arc, id, verbs[kind]);
    }
    return c->json ? out_json(json_pack("{s:s,s:s}", "id", id, "state", states[kind]))
                   : CLI_EXIT_OK;
}

int cmd_wf_cancel(cli *c, int argc, char **argv) {
    return simple(c, argc, argv, "aj wf cancel", cancel_help, 0);
}

int cmd_wf_terminate(cli *c, int argc, char **argv) {
    return simple(c, argc, argv, "aj wf terminate", terminate_help, 1);
}

int cmd_wf_resume(cli *c, int argc, char **argv) {
    return simple(c, argc, argv, "aj wf resume", resume_help, 2);
}

static int history_line(void *ud, const aj_wf_event *ev) {
    (void)ud;
    char hex[2][20];
    snprintf(hex[0], sizeof hex[0], "%016" PRIx64, ev->id);
    snprintf(hex[1], sizeof hex[1], "%016" PRIx64, ev->prev_id);
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
    json_object_set_new(o, "type", json_string(ev->type));
    json_object_set_new(o, "name", out_str_json(ev->name));
    json_object_set_new(o, "time", out_time_json(ev->time_ms));
    json_object_set_new(o, "hlc", json_integer((json_int_t)ev->hlc));
    json_object_set_new(o, "id", json_string(hex[0]));
    json_object_set_new(o, "prev_id", json_string(hex[1]));
    json_object_set_new(o, "data",
                        ev->data.len ? out_bytes_json(ev->data.data, ev->data.len) : json_null());
    return print_text(event_text(o, ev->aux)) == CLI_EXIT_OK ? 0 : AJ_EIO;
}

int cmd_wf_history(cli *c, int argc, char **argv) {
    const char *id;
    uint32_t run;
    int rc = id_run_open(c, "aj wf history", history_help, argc, argv, &id, &run);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    int arc = aj_wf_history(c->engine, id, run, history_line, NULL);
    return arc != 0 ? wf_error(arc, id, "read the history of") : CLI_EXIT_OK;
}
