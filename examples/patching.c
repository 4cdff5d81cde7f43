/*
 * patching.c — changing a workflow's code while runs of the old code are in flight, with a
 * version patch.
 *
 * Version 1 of `shipment` packs an order, notifies the customer by e-mail, then waits for the
 * "ship" signal. Version 2 notifies by SMS instead. Runs already waiting at "ship" recorded the
 * e-mail step, so on replay they must make the same calls: version 2 asks
 * aj_patched(wf, "sms-notify"), which is 0 for a history recorded before the patch (the next
 * recorded call is the e-mail step, with no marker) and 1 for a run that gets there with the new
 * code (it records a `version_marker`). Once no old run is left, the branch and the old path
 * are deleted and aj_deprecate_patch(wf, "sms-notify") is called instead (version 3); later the
 * call itself may go.
 *
 * Real deployments swap versions by restarting workers with a new build; this program swaps the
 * function the registered type runs (an atomic), so one process shows both against one store.
 * It starts an order under version 1, deploys version 2, starts another order, ships both, and
 * checks that the old run kept the e-mail path and the new one took SMS, that the old history
 * still replays against version 2 (aj_wf_replay_check) and diverges from a version 2 without
 * the patch call.
 *
 *   cc patching.c $(pkg-config --cflags --libs aj) -o patching
 *   ./patching sqlite:shipments.db
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <aj.h>

#define WAIT_MS (30 * AJ_SECOND)
/* How long the program waits for a run to reach its wait, in 10 ms polls. */
#define POLLS 3000

/* The version the workers run: 1, 2 or 3. */
static atomic_int deployed = 1;

static int act(aj_step_ctx *ctx, aj_bytes input, void *ud) {
    (void)ud;
    /* A real step would call the mail or SMS gateway here. */
    return aj_step_set_result(ctx, input.data, input.len);
}

static int step(aj_wf *wf, const char *name) {
    aj_bytes in = {name, strlen(name)};
    return aj_step(wf, name, act, NULL, in, NULL);
}

static int finish(aj_wf *wf, const char *notified) {
    AJ_TRY(aj_wait_signal(wf, "ship", -1, NULL));
    AJ_TRY(step(wf, "ship"));
    return aj_wf_set_result(wf, notified, strlen(notified));
}

static int shipment_v1(aj_wf *wf) {
    AJ_TRY(step(wf, "pack"));
    AJ_TRY(step(wf, "notify-email"));
    return finish(wf, "email");
}

static int shipment_v2(aj_wf *wf) {
    AJ_TRY(step(wf, "pack"));
    int patched = aj_patched(wf, "sms-notify");
    if (patched < 0) {
        return patched;
    }
    if (patched) {
        AJ_TRY(step(wf, "notify-sms"));
        return finish(wf, "sms");
    }
    AJ_TRY(step(wf, "notify-email")); /* the old path, for runs recorded before the patch */
    return finish(wf, "email");
}

/* After every old run has ended: only the new path, and the marker still accepted. */
static int shipment_v3(aj_wf *wf) {
    AJ_TRY(step(wf, "pack"));
    AJ_TRY(aj_deprecate_patch(wf, "sms-notify"));
    AJ_TRY(step(wf, "notify-sms"));
    return finish(wf, "sms");
}

static int shipment(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    switch (atomic_load(&deployed)) {
    case 1:
        return shipment_v1(wf);
    case 2:
        return shipment_v2(wf);
    default:
        return shipment_v3(wf);
    }
}

/* Version 2 with the patch call forgotten: what the replay check must catch. */
static int shipment_unpatched(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    AJ_TRY(step(wf, "pack"));
    AJ_TRY(step(wf, "notify-sms"));
    return finish(wf, "sms");
}

static int shipment_as_v2(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    return shipment_v2(wf);
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "patching: %s: %s (%s)\n", what, aj_errmsg(), aj_err_name(rc));
    return 1;
}

/* Waits until a run has recorded `events` events (it is waiting for "ship"). */
static int reached(aj_engine *e, const char *id, uint64_t events) {
    for (int i = 0; i < POLLS; i++) {
        aj_wf_info *info = NULL;
        if (aj_wf_get(e, id, &info) == 0 && info->events >= events) {
            aj_wf_info_free(info);
            return 1;
        }
        aj_wf_info_free(info);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "patching: %s never reached its wait\n", id);
    return 0;
}

static int outcome(aj_engine *e, const char *id, const char *want) {
    aj_wf_state st;
    aj_wf_info *info = NULL;
    int rc = aj_wf_wait(e, id, WAIT_MS, &st);
    if (rc == 0) {
        rc = aj_wf_get(e, id, &info);
    }
    if (rc != 0) {
        return !fail(id, rc);
    }
    printf("%s: %s, notified by %s\n", id, aj_wf_state_name(st),
           info->result ? (const char *)info->result : "(none)");
    int ok = st == AJ_WF_COMPLETED && info->result != NULL && strcmp(info->result, want) == 0;
    aj_wf_info_free(info);
    return ok;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "mem:";
    aj_engine *e;
    int rc = aj_engine_open(&e, url, NULL);
    if (rc != 0) {
        return fail("open", rc);
    }
    if ((rc = aj_workflow_register(e, "shipment", shipment, NULL)) != 0 ||
        (rc = aj_workers_start(e, NULL)) != 0) {
        aj_engine_close(e);
        return fail("start workers", rc);
    }
    aj_wf_start_opts old = {"order-old", 1, 0}, young = {"order-new", 1, 0},
                     late = {"order-late", 1, 0};
    int ok = (rc = aj_wf_start(e, "shipment", "{}", 2, &old, NULL)) == 0;
    /* started, pack, notify-email: waiting for "ship" */
    ok = ok && reached(e, "order-old", 3);
    atomic_store(&deployed, 2); /* deploy version 2 while order-old is in flight */
    ok = ok && (rc = aj_wf_start(e, "shipment", "{}", 2, &young, NULL)) == 0;
    ok = ok && reached(e, "order-new", 4); /* started, pack, version_marker, notify-sms */
    ok = ok && (rc = aj_wf_signal(e, "order-old", "ship", "", 0)) == 0;
    ok = ok && (rc = aj_wf_signal(e, "order-new", "ship", "", 0)) == 0;
    ok = ok && outcome(e, "order-old", "email") && outcome(e, "order-new", "sms");
    if (ok) {
        /* Before deploying, check the new code against recorded histories. */
        char *report = NULL;
        ok = aj_wf_replay_check(e, "order-old", shipment_as_v2, NULL, NULL) == 0 &&
             aj_wf_replay_check(e, "order-old", shipment_unpatched, NULL, &report) == AJ_ESTATE;
        printf("replay check: version 2 replays order-old; without the patch: %s\n",
               report ? report : "(no divergence!)");
        aj_free(report);
    }
    /* Every old run has ended: deploy the cleanup version. */
    atomic_store(&deployed, 3);
    ok = ok && (rc = aj_wf_start(e, "shipment", "{}", 2, &late, NULL)) == 0;
    ok = ok && reached(e, "order-late", 4) &&
         (rc = aj_wf_signal(e, "order-late", "ship", "", 0)) == 0 &&
         outcome(e, "order-late", "sms");
    aj_workers_stop(e);
    aj_engine_close(e);
    printf("%s\n", ok ? "old and new runs took their own paths" : "UNEXPECTED OUTCOME");
    return ok ? 0 : 1;
}
