/*
 * continue_as_new.c — a long-running workflow that keeps its history short by continuing as
 * new.
 *
 * `meter` totals readings that arrive as signals ("reading", payload a number) for as long as
 * the meter lives. An endless loop would grow its history without bound (and a run stops at
 * AJ_WF_EVENTS_MAX events), so after every READINGS_PER_RUN readings — or earlier when
 * aj_wf_continue_suggested() says the history is getting long — the run continues as new,
 * carrying the running total as the next run's input. The old run ends `continued` with a
 * `continued_as_new` event; the new run starts in the same transaction under the same id, so a
 * reading sent at any moment reaches exactly one run. A "close" signal ends the meter with the
 * total.
 *
 * The program sends 50 readings, closes the meter, and checks the total, the number of runs and
 * that each earlier run reads back as `continued` (aj_wf_get_run), then exits 0.
 *
 *   cc continue_as_new.c $(pkg-config --cflags --libs aj) -o continue_as_new
 *   ./continue_as_new sqlite:meters.db
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aj.h>

/* Readings one run takes before it continues as new. */
#define READINGS_PER_RUN 10
/* Readings the program sends. */
#define READINGS 50
#define WAIT_MS (60 * AJ_SECOND)
#define NUM_MAX 32

static long long number(aj_bytes b) {
    char buf[NUM_MAX];
    snprintf(buf, sizeof buf, "%.*s", (int)b.len, (const char *)b.data);
    return atoll(buf);
}

/* Input: the total so far. */
static int meter_workflow(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    long long total = number(input);
    char text[NUM_MAX];
    for (int i = 0; i < READINGS_PER_RUN && !aj_wf_continue_suggested(wf); i++) {
        aj_bytes sig;
        /* "close" is checked first, without waiting, so a close sent after the last reading
         * ends the meter once the readings before it are counted. */
        AJ_TRY(aj_wait_signal(wf, "reading", -1, &sig));
        if (sig.len == 5 && memcmp(sig.data, "close", 5) == 0) {
            int len = snprintf(text, sizeof text, "%lld", total);
            return aj_wf_set_result(wf, text, (size_t)len);
        }
        total += number(sig);
    }
    int len = snprintf(text, sizeof text, "%lld", total);
    return aj_wf_continue_as_new(wf, text, (size_t)len);
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "continue_as_new: %s: %s (%s)\n", what, aj_errmsg(), aj_err_name(rc));
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "mem:";
    aj_engine *e;
    int rc = aj_engine_open(&e, url, NULL);
    if (rc != 0) {
        return fail("open", rc);
    }
    if ((rc = aj_workflow_register(e, "meter", meter_workflow, NULL)) != 0 ||
        (rc = aj_workers_start(e, NULL)) != 0) {
        aj_engine_close(e);
        return fail("start workers", rc);
    }
    aj_wf_start_opts o = {"meter-1", 1, 0};
    rc = aj_wf_start(e, "meter", "0", 1, &o, NULL);
    long long want = 0;
    /* Readings and the close travel as one signal name, so they are consumed in send order. */
    for (int i = 1; i <= READINGS && rc == 0; i++) {
        char v[NUM_MAX];
        int len = snprintf(v, sizeof v, "%d", i);
        want += i;
        rc = aj_wf_signal(e, "meter-1", "reading", v, (size_t)len);
        if (rc == AJ_ESTATE) {
            rc = 0; /* cannot happen: a continue never leaves the id without a running run */
        }
    }
    if (rc == 0) {
        rc = aj_wf_signal(e, "meter-1", "reading", "close", 5);
    }
    aj_wf_state st = AJ_WF_RUNNING;
    aj_wf_info *info = NULL;
    if (rc == 0) {
        rc = aj_wf_wait(e, "meter-1", WAIT_MS, &st);
    }
    if (rc == 0) {
        rc = aj_wf_get(e, "meter-1", &info);
    }
    if (rc != 0) {
        aj_workers_stop(e);
        aj_engine_close(e);
        return fail("run the meter", rc);
    }
    char want_text[NUM_MAX];
    snprintf(want_text, sizeof want_text, "%lld", want);
    int ok = st == AJ_WF_COMPLETED && info->result != NULL &&
             strcmp(info->result, want_text) == 0 && info->run > READINGS / READINGS_PER_RUN;
    printf("meter-1: %s result=%s after %u runs\n", aj_wf_state_name(st),
           info->result ? (const char *)info->result : "(none)", info->run);
    /* Every earlier run of this start ended `continued`. */
    uint32_t first = info->run - READINGS / READINGS_PER_RUN;
    for (uint32_t run = first; ok && run < info->run; run++) {
        aj_wf_info *r = NULL;
        ok = aj_wf_get_run(e, "meter-1", run, &r) == 0 && r->state == AJ_WF_CONTINUED;
        if (!ok) {
            fprintf(stderr, "continue_as_new: run %u is not continued\n", run);
        }
        aj_wf_info_free(r);
    }
    aj_wf_info_free(info);
    aj_workers_stop(e);
    aj_engine_close(e);
    printf("%s\n", ok ? "the meter ended as expected" : "UNEXPECTED OUTCOME");
    return ok ? 0 : 1;
}
