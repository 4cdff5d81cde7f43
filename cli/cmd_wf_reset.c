/*
 * cmd_wf_reset.c — `aj wf reset ID --to-event SEQ`: the operator's "restart from this step".
 * A new run replays the latest run's history up to SEQ and continues live from there.
 */
#include <inttypes.h>
#include <stdio.h>

#include <jansson.h>

#include "args.h"
#include "cli.h"
#include "out.h"

static const char reset_help[] =
    "Usage: aj wf reset ID --to-event SEQ [--reason TEXT]\n"
    "\n"
    "Starts a new run of workflow ID whose history is a copy of the latest run's events 1..SEQ\n"
    "followed by a workflow_reset event; workers then continue it live from there: what\n"
    "completed up to SEQ is not run again, everything after it is. The latest run, if still\n"
    "running (or parked), is terminated and the jobs it still waited for are cancelled. SEQ (see "
    "`aj wf show ID`) must be workflow_started (1),\n"
    "a step_completed, activity_completed, timer_fired or side_effect event, with no activity\n"
    "still waiting for its outcome at that point. Prints `ID run N`, N the new run's number\n"
    "(with --json: {\"id\":ID,\"run\":N,\"to_event\":SEQ}).\n"
    "\n"
    "Flags:\n"
    "  --to-event SEQ   the last event kept (required)\n"
    "  --reason TEXT    why, recorded in the workflow_reset event and the old run's end\n"
    "\n"
    "Exit codes: 0 reset, 1 store error, 2 bad input (SEQ missing, not an event of the run or\n"
    "not a reset point), 3 no such workflow, 5 reset, but the output failed.\n"
    "\n"
    "Example:\n"
    "  aj wf reset order-17 --to-event 6 --reason 'payment provider fixed'\n";

int cmd_wf_reset(cli *c, int argc, char **argv) {
    const char *seq_text = NULL, *reason = NULL;
    const arg_flag flags[] = {
        {"--to-event", &seq_text, NULL}, {"--reason", &reason, NULL}, {NULL, NULL, NULL}};
    const arg_spec spec = {"aj wf reset", reset_help, flags, "ID", 1, 1, 0};
    static const char *const what[] = {"workflow id"};
    const char *id;
    int rc = args_parse_names(c, &spec, argc, argv, what, &id);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    if (seq_text == NULL) {
        return args_usage_error("aj wf reset", "--to-event SEQ is required");
    }
    uint64_t seq = 0;
    if ((rc = cli_parse_uint("--to-event", seq_text, 1, UINT64_MAX, &seq)) != 0) {
        return rc;
    }
    if ((rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    uint32_t run = 0;
    int arc = aj_wf_reset(c->engine, id, seq, reason ? reason : "reset by an operator", &run);
    if (arc == AJ_ENOTFOUND) {
        return cli_error(CLI_EXIT_NOTFOUND, "%s", aj_errmsg());
    }
    if (arc == AJ_EINVAL) {
        return cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
    }
    if (arc != 0) {
        return cli_fail(arc, "cannot reset workflow '%s'", id);
    }
    out_committed("reset workflow %s to event %" PRIu64 " in run %u", id, seq, run);
    if (c->json) {
        return out_json(
            json_pack("{s:s,s:i,s:I}", "id", id, "run", (int)run, "to_event", (json_int_t)seq));
    }
    printf("%s run %u\n", id, run);
    return CLI_EXIT_OK;
}
