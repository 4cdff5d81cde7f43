/*
 * cmd_wf_update.c — `aj wf update ID NAME`: sends a workflow update (a signal that returns a
 * result) and waits for the workflow's answer. The workflow validates it first; a rejected update
 * leaves nothing in its history.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* How long `aj wf update` waits by default. */
#define WF_UPDATE_DEFAULT_TIMEOUT_MS (30 * AJ_SECOND)

static const char update_help[] =
    "Usage: aj wf update ID NAME [--payload JSON] [--timeout DUR]\n"
    "\n"
    "Sends update NAME to a running workflow and waits for its result, which it prints (with\n"
    "--json: the result, embedded as JSON when it is JSON). The workflow's code handles the\n"
    "update where it waits: its validator may reject it (nothing is recorded, and the\n"
    "validator's message is printed); an accepted update is recorded in the history\n"
    "(update_accepted, update_completed) and replays with it. A worker that runs the workflow's\n"
    "type must be running.\n"
    "\n"
    "Flags:\n"
    "  --payload JSON   the update's argument, a JSON value (default: null), at most 1 MiB\n"
    "  --timeout DUR    how long to wait for the answer, more than zero (default: 30s)\n"
    "\n"
    "Exit codes: 0 answered (result printed), 1 store error, the handler failed or no answer\n"
    "in time, 2 bad input or rejected by the workflow, 3 no such workflow, 4 it has finished\n"
    "(or finished before handling the update), 5 answered, but the output failed (do not send\n"
    "it again).\n"
    "\n"
    "Example:\n"
    "  aj wf update order-17 add-item --payload '{\"sku\":\"A-1\",\"qty\":2}' --timeout 10s\n";

int cmd_wf_update(cli *c, int argc, char **argv) {
    const char *payload = NULL, *timeout_text = NULL;
    const arg_flag flags[] = {
        {"--payload", &payload, NULL}, {"--timeout", &timeout_text, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj wf update", update_help, flags, "ID NAME", 2, 2, 0};
    static const char *const what[] = {"workflow id", "update name"};
    const char *pos[2];
    int rc = args_parse_names(c, &spec, argc, argv, what, pos);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *id = pos[0], *name = pos[1];
    int64_t timeout = WF_UPDATE_DEFAULT_TIMEOUT_MS;
    if (timeout_text != NULL &&
        (rc = cli_parse_duration("--timeout", timeout_text, &timeout)) != 0) {
        return rc;
    }
    if (timeout <= 0) {
        return cli_error(CLI_EXIT_USAGE, "--timeout '%s' must be more than zero", timeout_text);
    }
    if (payload == NULL) {
        payload = "null";
    }
    size_t len = strlen(payload);
    if ((rc = wf_check_json("--payload", payload, len)) != 0 || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    char *out = NULL;
    size_t out_len = 0;
    int arc = aj_wf_update(c->engine, id, name, payload, len, timeout, &out, &out_len);
    if (arc == AJ_ENOTFOUND) {
        return cli_error(CLI_EXIT_NOTFOUND, "%s", aj_errmsg());
    }
    if (arc == AJ_EINVAL || arc == AJ_ESTATE || arc == AJ_EFAILED || arc == AJ_ETIMEDOUT) {
        return cli_error(arc == AJ_EFAILED || arc == AJ_ETIMEDOUT ? CLI_EXIT_ERROR
                                                                  : cli_exit_code(arc),
                         "%s", aj_errmsg());
    }
    if (arc != 0) {
        return cli_fail(arc, "cannot update workflow '%s'", id);
    }
    out_committed("sent update '%s' to workflow %s", name, id);
    if (c->json) {
        rc = out_json(out_bytes_json(out, out_len));
    } else {
        printf("%.*s\n", (int)out_len, out);
    }
    aj_free(out);
    return rc;
}
