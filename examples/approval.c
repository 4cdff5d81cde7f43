/*
 * approval.c — a human-approval workflow: a request waits for the signal "approve" for at most
 * a deadline given in its input, and a query "status" tells anyone asking where it stands. The
 * wait is durable: the timeout is a recorded timer and the signal is buffered until the
 * workflow consumes it, so neither a restart nor an approval sent before the workflow reached
 * its wait loses anything.
 *
 * The program starts two requests, approves the first with aj_wf_signal, lets the second time
 * out after 300 ms, queries both, checks that a late approval of the expired one is refused,
 * and exits 0 only when every outcome is the expected one. It may be run again on the same
 * store: each id then starts a new run.
 *
 *   cc approval.c $(pkg-config --cflags --libs aj) -o approval
 *   ./approval sqlite:approvals.db
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aj.h>

/* How long the program waits for one workflow before it calls the run a failure. */
#define WAIT_MS (30 * AJ_SECOND)
/* Bytes of the status text and of one extracted input field. */
#define STATUS_MAX 128
#define FIELD_MAX 64

/* Copies the value of "key" in a flat JSON object (a string without escapes, or a bare number)
 * into out. Returns 0, or -1 when absent or too long. A real program would use a JSON library;
 * this example depends on nothing but aj.h. */
static int field(aj_bytes json, const char *key, char *out, size_t size) {
    const char *p = json.data;
    size_t len = json.len, klen = strlen(key);
    for (size_t i = 0; i + klen + 2 <= len; i++) {
        if (p[i] != '"' || memcmp(p + i + 1, key, klen) != 0 || p[i + klen + 1] != '"') {
            continue;
        }
        i += klen + 2;
        while (i < len && (p[i] == ' ' || p[i] == ':')) {
            i++;
        }
        int quoted = i < len && p[i] == '"';
        i += (size_t)quoted;
        size_t n = 0;
        while (i + n < len && (quoted ? p[i + n] != '"' : (p[i + n] != ',' && p[i + n] != '}'))) {
            n++;
        }
        if (n + 1 > size) {
            return -1;
        }
        memcpy(out, p + i, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

/* ----------------------------------------------------------------------------------------- */
/* The workflow                                                                               */

/* The query handler reads the workflow function's own local: a query replays the function
 * read-only and calls the handler where the run is waiting (or where it sets its outcome), so
 * the local holds exactly what the run knew at that point. The answer must be malloc'd. */
static int status_query(void *ud, aj_bytes arg, char **out, size_t *len) {
    (void)arg;
    const char *status = ud;
    *len = strlen(status);
    *out = malloc(*len + 1);
    if (*out == NULL) {
        return AJ_ENOMEM;
    }
    memcpy(*out, status, *len + 1);
    return 0;
}

/* Input: {"request":"...","timeout_ms":N}. Result: {"decision":"approved","by":"..."} or
 * {"decision":"expired"}. Expiry is an ordinary business outcome, so the run completes. */
static int approval_workflow(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    char status[STATUS_MAX] = "waiting for approval";
    AJ_TRY(aj_wf_set_query(wf, "status", status_query, status));

    char timeout[FIELD_MAX];
    if (field(input, "timeout_ms", timeout, sizeof timeout) != 0) {
        return aj_wf_fail(wf, "the request has no timeout_ms");
    }
    aj_bytes sig;
    int rc = aj_wait_signal(wf, "approve", atoll(timeout), &sig);
    if (rc == AJ_ETIMEDOUT) {
        snprintf(status, sizeof status, "expired after %s ms", timeout);
        static const char expired[] = "{\"decision\":\"expired\"}";
        return aj_wf_set_result(wf, expired, sizeof expired - 1);
    }
    if (rc == AJ_ECANCELLED) {
        /* Record the reason with aj_wf_fail before returning: a query on the finished run is
         * answered there, while `status` is still alive. Returning AJ_ECANCELLED (rather than
         * aj_wf_fail's AJ_EFAILED) ends the run `cancelled` instead of `failed`. */
        snprintf(status, sizeof status, "withdrawn");
        aj_wf_fail(wf, "the request was withdrawn");
        return AJ_ECANCELLED;
    }
    AJ_TRY(rc); /* AJ_SUSPEND while waiting */

    char by[FIELD_MAX], result[STATUS_MAX];
    if (field(sig, "by", by, sizeof by) != 0) {
        snprintf(by, sizeof by, "someone");
    }
    snprintf(status, sizeof status, "approved by %s", by);
    int n = snprintf(result, sizeof result, "{\"decision\":\"approved\",\"by\":\"%s\"}", by);
    return aj_wf_set_result(wf, result, (size_t)n);
}

/* ----------------------------------------------------------------------------------------- */
/* The program                                                                                */

static int fail(const char *what, int rc) {
    fprintf(stderr, "approval: %s: %s: %s\n", what, aj_strerror(rc), aj_errmsg());
    return 1;
}

/* Asks the "status" query; 1 when the answer is `want`. */
static int check_status(aj_engine *e, const char *id, const char *want) {
    char *out = NULL;
    size_t len = 0;
    int rc = aj_wf_query(e, id, "status", &out, &len);
    if (rc != 0) {
        return !fail("query", rc);
    }
    printf("%s: status \"%.*s\"\n", id, (int)len, out);
    int ok = len == strlen(want) && memcmp(out, want, len) == 0;
    if (!ok) {
        fprintf(stderr, "approval: %s: expected status \"%s\"\n", id, want);
    }
    aj_free(out);
    return ok;
}

typedef struct counts {
    int signals, timers_fired, timers_cancelled;
} counts;

static int count_events(void *ud, const aj_wf_event *ev) {
    counts *c = ud;
    c->signals += strcmp(ev->type, "signal_received") == 0;
    c->timers_fired += strcmp(ev->type, "timer_fired") == 0;
    c->timers_cancelled += strcmp(ev->type, "timer_cancelled") == 0;
    return 0;
}

/* Waits for a request; 1 when it completed with `want_result` and its history shows the
 * expected ending of the wait (a signal that cancelled the timeout, or the timeout firing). */
static int check_outcome(aj_engine *e, const char *id, const char *want_result, int approved) {
    aj_wf_state st;
    aj_wf_info *info = NULL;
    counts c = {0, 0, 0};
    int rc = aj_wf_wait(e, id, WAIT_MS, &st);
    if (rc == 0) {
        rc = aj_wf_get(e, id, &info);
    }
    if (rc == 0) {
        rc = aj_wf_history(e, id, 0, count_events, &c);
    }
    if (rc != 0) {
        aj_wf_info_free(info);
        return !fail(id, rc);
    }
    printf("%s: %s result=%s\n", id, aj_wf_state_name(info->state),
           info->result ? (const char *)info->result : "(none)");
    int ok = info->state == AJ_WF_COMPLETED && info->result != NULL &&
             strcmp(info->result, want_result) == 0 && c.signals == approved &&
             c.timers_cancelled == approved && c.timers_fired == !approved;
    if (!ok) {
        fprintf(stderr,
                "approval: %s: expected completed with %s (signals %d, timers fired %d, "
                "cancelled %d)\n",
                id, want_result, c.signals, c.timers_fired, c.timers_cancelled);
    }
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
    if ((rc = aj_workflow_register(e, "approval", approval_workflow, NULL)) != 0 ||
        (rc = aj_workers_start(e, NULL)) != 0) {
        aj_engine_close(e);
        return fail("start workers", rc);
    }
    /* The first request would wait a minute; the second expires after 300 ms. allow_rerun
     * lets the example run again on a SQLite store. */
    static const char first[] = "{\"request\":\"laptop for ana\",\"timeout_ms\":60000}";
    static const char second[] = "{\"request\":\"team offsite\",\"timeout_ms\":300}";
    aj_wf_start_opts o1 = {"approval-1", 1, 0}, o2 = {"approval-2", 1, 0};
    int ok = 1;
    if ((rc = aj_wf_start(e, "approval", first, sizeof first - 1, &o1, NULL)) != 0 ||
        (rc = aj_wf_start(e, "approval", second, sizeof second - 1, &o2, NULL)) != 0) {
        ok = !fail("start", rc);
    }
    if (ok) {
        /* Both are waiting now (a query answers from the history even before a worker ran the
         * workflow: the replay stops at the same wait). */
        ok = check_status(e, "approval-1", "waiting for approval");
        static const char by[] = "{\"by\":\"maria\"}";
        if (ok && (rc = aj_wf_signal(e, "approval-1", "approve", by, sizeof by - 1)) != 0) {
            ok = !fail("signal", rc);
        }
    }
    if (ok) {
        ok = check_outcome(e, "approval-1", "{\"decision\":\"approved\",\"by\":\"maria\"}", 1);
        ok = check_outcome(e, "approval-2", "{\"decision\":\"expired\"}", 0) && ok;
        ok = check_status(e, "approval-1", "approved by maria") && ok;
        ok = check_status(e, "approval-2", "expired after 300 ms") && ok;
        /* An approval that comes too late is refused: the run has finished. */
        rc = aj_wf_signal(e, "approval-2", "approve", "{}", 2);
        printf("approval-2: late approval refused: %s\n", aj_err_name(rc));
        if (rc != AJ_ESTATE) {
            fprintf(stderr, "approval: expected AJ_ESTATE for a late signal, got %s\n",
                    aj_err_name(rc));
            ok = 0;
        }
    }
    aj_workers_stop(e);
    aj_engine_close(e);
    printf("%s\n", ok ? "all approvals ended as expected" : "UNEXPECTED OUTCOME");
    return ok ? 0 : 1;
}
