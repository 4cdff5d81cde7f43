/*
 * child_fanout.c — a parent workflow that fans out child workflows and collects their results.
 *
 * The parent `batch` starts one child `square` per item (the child's id is derived from the
 * parent id and the child's name, "batch-1/item-7"), then waits for each in turn and sums the
 * results. Starting all children before waiting for any lets them run in parallel on every
 * worker; each start is recorded as `child_started` in the parent's history and each outcome
 * arrives as `child_completed`, so a crash at any point resumes without starting a child twice.
 * A child that fails makes aj_child_wait return AJ_EFAILED: this parent then fails too, and the
 * default parent-close policy (terminate) ends every child still running.
 *
 * The program runs a batch of 250 items and checks the sum, the number of child_started and
 * child_completed events and the parent-child links, and exits 0 only when all agree.
 *
 *   cc child_fanout.c $(pkg-config --cflags --libs aj) -o child_fanout
 *   ./child_fanout sqlite:batches.db
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aj.h>

/* Items in the batch the program runs. */
#define ITEMS 250
/* How long the program waits for the batch before it calls the run a failure. */
#define WAIT_MS (120 * AJ_SECOND)
/* Bytes of a number as text. */
#define NUM_MAX 32

static long long number(aj_bytes b) {
    char buf[NUM_MAX];
    snprintf(buf, sizeof buf, "%.*s", (int)b.len, (const char *)b.data);
    return atoll(buf);
}

/* The child's work, in a step so that it runs once and its result is recorded. */
static int square_step(aj_step_ctx *ctx, aj_bytes input, void *ud) {
    (void)ud;
    long long n = number(input);
    char out[NUM_MAX];
    int len = snprintf(out, sizeof out, "%lld", n * n);
    return aj_step_set_result(ctx, out, (size_t)len);
}

static int square_workflow(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes out;
    AJ_TRY(aj_step(wf, "square", square_step, NULL, input, &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

/* Input: the number of items. Result: the sum of their squares. */
static int batch_workflow(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    long long items = number(input);
    char name[NUM_MAX], arg[NUM_MAX];
    /* Fan out: every child starts in this task's transaction, recorded with the parent's
     * history; on replay these calls only match the recorded child_started events. */
    for (long long i = 0; i < items; i++) {
        snprintf(name, sizeof name, "item-%lld", i);
        int len = snprintf(arg, sizeof arg, "%lld", i);
        AJ_TRY(aj_child_start(wf, name, "square", arg, (size_t)len, NULL));
    }
    /* Collect: the first child still running suspends the parent; each child that ends wakes
     * it, and the replay gets past every child that has already answered. */
    long long sum = 0;
    for (long long i = 0; i < items; i++) {
        snprintf(name, sizeof name, "item-%lld", i);
        aj_bytes out;
        int rc = aj_child_wait(wf, name, &out);
        if (rc == AJ_SUSPEND) {
            return rc;
        }
        if (rc != 0) {
            return aj_wf_fail(wf, aj_errmsg());
        }
        sum += number(out);
    }
    char result[NUM_MAX];
    int len = snprintf(result, sizeof result, "%lld", sum);
    return aj_wf_set_result(wf, result, (size_t)len);
}

typedef struct counts {
    int started, completed;
} counts;

static int count_events(void *ud, const aj_wf_event *ev) {
    counts *c = ud;
    c->started += strcmp(ev->type, "child_started") == 0;
    c->completed += strcmp(ev->type, "child_completed") == 0;
    return 0;
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "child_fanout: %s: %s (%s)\n", what, aj_errmsg(), aj_err_name(rc));
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "mem:";
    aj_engine *e;
    int rc = aj_engine_open(&e, url, NULL);
    if (rc != 0) {
        return fail("open", rc);
    }
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = 8;
    if ((rc = aj_workflow_register(e, "batch", batch_workflow, NULL)) != 0 ||
        (rc = aj_workflow_register(e, "square", square_workflow, NULL)) != 0 ||
        (rc = aj_workers_start(e, &wo)) != 0) {
        aj_engine_close(e);
        return fail("start workers", rc);
    }
    char items[NUM_MAX];
    snprintf(items, sizeof items, "%d", ITEMS);
    aj_wf_start_opts o = {"batch-1", 1, 0}; /* allow_rerun: the program may run again */
    aj_wf_state st = AJ_WF_RUNNING;
    aj_wf_info *info = NULL;
    counts c = {0, 0};
    aj_wf_link *kids = NULL;
    size_t n_kids = 0;
    if ((rc = aj_wf_start(e, "batch", items, strlen(items), &o, NULL)) != 0 ||
        (rc = aj_wf_wait(e, "batch-1", WAIT_MS, &st)) != 0 ||
        (rc = aj_wf_get(e, "batch-1", &info)) != 0 ||
        (rc = aj_wf_history(e, "batch-1", 0, count_events, &c)) != 0 ||
        (rc = aj_wf_children(e, "batch-1", &kids, &n_kids)) != 0) {
        aj_wf_info_free(info);
        aj_workers_stop(e);
        aj_engine_close(e);
        return fail("run the batch", rc);
    }
    long long want = 0;
    for (long long i = 0; i < ITEMS; i++) {
        want += i * i;
    }
    char want_text[NUM_MAX];
    snprintf(want_text, sizeof want_text, "%lld", want);
    aj_wf_link parent;
    int linked = aj_wf_parent(e, "batch-1/item-7", &parent) == 0 &&
                 strcmp(parent.id, "batch-1") == 0 && strcmp(parent.name, "item-7") == 0;
    printf("batch-1: %s result=%s, %d children started, %d completed, %zu linked\n",
           aj_wf_state_name(st), info->result ? (const char *)info->result : "(none)", c.started,
           c.completed, n_kids);
    int ok = st == AJ_WF_COMPLETED && info->result != NULL &&
             strcmp(info->result, want_text) == 0 && c.started == ITEMS && c.completed == ITEMS &&
             n_kids >= ITEMS && linked;
    aj_free(kids);
    aj_wf_info_free(info);
    aj_workers_stop(e);
    aj_engine_close(e);
    printf("%s\n", ok ? "the fan-out ended as expected" : "UNEXPECTED OUTCOME");
    return ok ? 0 : 1;
}
