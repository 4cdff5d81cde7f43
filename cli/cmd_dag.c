/*
 * cmd_dag.c — `aj dag submit FILE.json` (a whole dependency graph, all or nothing) and
 * `aj dag show JOBID` (the graph containing a job), plus the dependency lines `aj job show`
 * adds. The definition is parsed and its shape checked (aj_dag_parse, aj_dag_check) before the
 * store is opened, so a bad file exits 2 and changes nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* Largest definition file read. */
#define DAG_FILE_MAX ((size_t)512 << 20)

static const char dag_submit_help[] =
    "Usage: aj dag submit FILE.json\n"
    "\n"
    "Submits a graph of jobs with dependencies, all or nothing, and prints one `NAME ID` line\n"
    "per job in file order (with --json, an object from name to id). FILE may be - for stdin.\n"
    "\n"
    "The file: {\"jobs\":[JOB, ...]}, each JOB an object with\n"
    "  \"name\"             unique in the file, 1-200 bytes, no whitespace or control\n"
    "                     characters (required)\n"
    "  \"run\"              [PROGRAM, ARG...]: a shell job, or else\n"
    "  \"type\", \"payload\"  a job type and any JSON payload (default null)\n"
    "  \"after\"            [NAME or existing job ID, ...]: what it waits on\n"
    "  \"on_dep_failure\"   cascade (default), ignore or wait (see aj submit --help)\n"
    "  and any submit option: \"queue\", \"priority\" (number or name), \"max_attempts\",\n"
    "  \"timeout\", \"lease\", \"delay\" (durations like \"30s\"), \"at\" (RFC 3339), "
    "\"backoff\",\n"
    "  \"idempotency_key\", \"metadata\" (an object).\n"
    "A job without \"after\" is ready at once; the others stay scheduled until what they wait on\n"
    "has completed. Rejected, with nothing stored: cycles (the message names the cycle path),\n"
    "self-edges, unknown names or ids, duplicate names, unknown fields, a path of more than 100\n"
    "jobs, more than 100000 jobs.\n"
    "\n"
    "Exit codes: 0 submitted, 1 store error, 2 bad file, 3 an existing job named by id was not\n"
    "found, 4 conflicting state (an idempotency key already used by a different job), 5 "
    "submitted,\n"
    "but the output failed (stderr names the ids; do not submit again).\n"
    "\n"
    "Example:\n"
    "  echo '{\"jobs\":[{\"name\":\"a\",\"run\":[\"true\"]},{\"name\":\"b\",\"after\":[\"a\"],\n"
    "        \"run\":[\"echo\",\"b\"]}]}' | aj dag submit -\n";

static const char dag_show_help[] =
    "Usage: aj dag show JOBID\n"
    "\n"
    "Shows the dependency graph containing a job: every job of the graph it was submitted in\n"
    "(aj dag submit) and every job linked to it through dependencies in either direction, with\n"
    "its name (for a submitted graph), state, failure policy and what it waits on, then the\n"
    "edges `FROM -> TO` (TO runs after FROM). With --json: {\"graph\":ID or\n"
    "null, \"jobs\":[{\"id\",\"name\",\"state\",\"on_dep_failure\",\"pending\",\"after\",\n"
    "\"waited_by\"}], \"edges\":[{\"from\",\"to\"}]}. A job that was collected shows state\n"
    "\"collected\".\n"
    "\n"
    "Exit codes: 0 shown, 1 store error, 2 bad JOBID, 3 no such job.\n"
    "\n"
    "Example:\n"
    "  aj dag show 42 --json\n";

int cmd_dag_submit(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj dag submit", dag_submit_help, NULL, "FILE.json", 1, 1, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    char *text = NULL;
    size_t len = 0;
    aj_dag *dag = NULL;
    uint64_t *ids = NULL;
    rc = cli_read_file(NULL, r.pos[0], DAG_FILE_MAX, &text, &len);
    if (rc == 0 && aj_dag_parse(text, len, &dag) != 0) {
        rc = cli_error(CLI_EXIT_USAGE, "%s: %s", r.pos[0], aj_errmsg());
    }
    if (rc == 0 && aj_dag_check(dag->jobs, dag->n) != 0) {
        rc = cli_error(CLI_EXIT_USAGE, "%s: %s", r.pos[0], aj_errmsg());
    }
    if (rc == 0) {
        ids = calloc(dag->n, sizeof *ids);
        rc = ids == NULL ? cli_error(CLI_EXIT_ERROR, "out of memory") : 0;
    }
    if (rc == 0) {
        rc = cli_open(c, NULL);
    }
    if (rc == 0) {
        int arc = aj_dag_submit(c->engine, dag->jobs, dag->n, ids);
        rc = arc != 0 ? cli_fail(arc, "cannot submit the graph") : 0;
    }
    if (rc == 0) {
        out_committed_ids("submitted", "job", ids, dag->n);
    }
    if (rc == 0 && c->json) {
        json_t *o = json_object();
        for (size_t i = 0; i < dag->n && o != NULL; i++) {
            json_object_set_new(o, dag->jobs[i].name, json_integer((json_int_t)ids[i]));
        }
        rc = out_json(o);
    } else if (rc == 0) {
        for (size_t i = 0; i < dag->n; i++) {
            printf("%s %" PRIu64 "\n", dag->jobs[i].name, ids[i]);
        }
    }
    free(ids);
    aj_dag_free(dag);
    free(text);
    args_free(&r);
    return rc;
}

static const char *state_text(aj_job_state s) {
    return s == 0 ? "collected" : aj_state_name(s);
}

static json_t *ids_json(const uint64_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n && a != NULL; i++) {
        json_array_append_new(a, json_integer((json_int_t)ids[i]));
    }
    return a;
}

static json_t *node_json(const aj_dag_node *nd) {
    /* A job without dependencies has no policy: null, as `aj job show --json` says. */
    return json_pack("{s:I, s:o, s:s, s:o, s:I, s:o, s:o}", "id", (json_int_t)nd->id, "name",
                     nd->name ? json_string(nd->name) : json_null(), "state", state_text(nd->state),
                     "on_dep_failure",
                     nd->n_after ? json_string(aj_dep_policy_name(nd->policy)) : json_null(),
                     "pending", (json_int_t)nd->pending, "after", ids_json(nd->after, nd->n_after),
                     "waited_by", ids_json(nd->waited_by, nd->n_waited_by));
}

int cmd_dag_show(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj dag show", dag_show_help, NULL, "JOBID", 1, 1, 0};
    uint64_t id = 0;
    int rc = args_parse_id(c, &spec, argc, argv, &id);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    uint64_t graph = 0;
    aj_dag_node *nodes = NULL;
    size_t n = 0;
    rc = cli_open(c, NULL);
    if (rc == 0) {
        int arc = aj_dag_show(c->engine, id, &nodes, &n, &graph);
        rc = arc != 0 ? cli_job_error(arc, id, "show the graph of") : 0;
    }
    if (rc == 0 && c->json) {
        json_t *jobs = json_array(), *edges = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(jobs, node_json(&nodes[i]));
            for (size_t a = 0; a < nodes[i].n_after; a++) {
                json_array_append_new(edges,
                                      json_pack("{s:I, s:I}", "from", (json_int_t)nodes[i].after[a],
                                                "to", (json_int_t)nodes[i].id));
            }
        }
        rc = out_json(json_pack("{s:o, s:o, s:o}", "graph",
                                graph ? json_integer((json_int_t)graph) : json_null(), "jobs", jobs,
                                "edges", edges));
    } else if (rc == 0) {
        if (graph != 0) {
            printf("graph %" PRIu64 ": %zu job%s\n", graph, n, n == 1 ? "" : "s");
        } else {
            printf("%zu job%s linked by dependencies\n", n, n == 1 ? "" : "s");
        }
        printf("%-12s %-20s %-10s %-8s %s\n", "ID", "NAME", "STATE", "POLICY", "WAITS ON");
        for (size_t i = 0; i < n; i++) {
            const aj_dag_node *nd = &nodes[i];
            printf("%-12" PRIu64 " %-20s %-10s %-8s", nd->id, nd->name ? nd->name : "-",
                   state_text(nd->state), nd->n_after ? aj_dep_policy_name(nd->policy) : "-");
            for (size_t a = 0; a < nd->n_after; a++) {
                printf("%s%" PRIu64, a ? "," : " ", nd->after[a]);
            }
            printf("%s\n", nd->n_after ? "" : " -");
        }
        printf("edges:\n");
        for (size_t i = 0; i < n; i++) {
            for (size_t a = 0; a < nodes[i].n_after; a++) {
                printf("  %" PRIu64 " -> %" PRIu64 "\n", nodes[i].after[a], nodes[i].id);
            }
        }
    }
    aj_dag_nodes_free(nodes, n);
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* `aj job show`                                                                             */

void dag_job_lines(aj_engine *e, uint64_t id) {
    aj_dag_node *nd = NULL;
    if (aj_job_deps(e, id, &nd) != 0) {
        return;
    }
    if (nd->n_after > 0) {
        printf("%-17s %s, %" PRIu32 " pending\n", "on dep failure:", aj_dep_policy_name(nd->policy),
               nd->pending);
    }
    for (size_t i = 0; i < nd->n_after; i++) {
        printf("%-17s %" PRIu64 " (%s)\n", i == 0 ? "waits on:" : "", nd->after[i],
               state_text(nd->after_state[i]));
    }
    for (size_t i = 0; i < nd->n_waited_by; i++) {
        printf("%-17s %" PRIu64 "\n", i == 0 ? "waited on by:" : "", nd->waited_by[i]);
    }
    aj_dag_nodes_free(nd, 1);
}

char *dag_job_json(aj_engine *e, uint64_t id) {
    aj_dag_node *nd = NULL;
    if (aj_job_deps(e, id, &nd) != 0) {
        return NULL;
    }
    json_t *after = json_array();
    for (size_t i = 0; i < nd->n_after && after != NULL; i++) {
        json_array_append_new(after, json_pack("{s:I, s:s}", "id", (json_int_t)nd->after[i],
                                               "state", state_text(nd->after_state[i])));
    }
    json_t *o = json_pack("{s:o, s:o, s:o, s:I}", "after", after, "waited_by",
                          ids_json(nd->waited_by, nd->n_waited_by), "on_dep_failure",
                          nd->n_after ? json_string(aj_dep_policy_name(nd->policy)) : json_null(),
                          "deps_pending", (json_int_t)nd->pending);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    aj_dag_nodes_free(nd, 1);
    return text;
}
