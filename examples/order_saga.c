/*
 * order_saga.c — an order-processing saga as a durable workflow in C. Each order reserves stock
 * (an inline step whose record writes commit with the step), charges the card (an activity: a
 * job of type "charge" that any worker registered for it runs) and ships (an inline step). After
 * each step succeeds the workflow pushes that step's compensation; when a later step fails, the
 * pushed compensations run in reverse order, each recorded in the history, and the order ends
 * `compensated`.
 *
 * The program starts three orders (one ships, one has an undeliverable address and fails at
 * ship, one has a declined card and fails at charge), runs the worker pool in this process,
 * waits for each, prints its final state and the compensations that ran, and reads the
 * reservation records back through a small `audit` workflow. It exits 0 only when every
 * outcome is exactly the expected one. It may be run again on the same store: each order id
 * then starts a new run.
 *
 *   cc order_saga.c $(pkg-config --cflags --libs aj) -o order_saga
 *   ./order_saga sqlite:orders.db
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aj.h>

/* How long the program waits for one workflow before it calls the run a failure. */
#define WAIT_MS (30 * AJ_SECOND)
/* Bytes of one extracted input field. */
#define FIELD_MAX 64

/* ----------------------------------------------------------------------------------------- */
/* Input: a flat JSON object, e.g. {"sku":"widget","qty":2,"amount":1998,"card":"4242",      */
/* "address_valid":true}. A real program would use a JSON library; this example reads the few */
/* flat fields it needs so that it depends on nothing but aj.h.                              */

/* Copies the value of "key" (a string without escapes, or a bare number or literal) into out.
 * Returns 0, or -1 when the field is absent or does not fit. */
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

static long long field_int(aj_bytes json, const char *key) {
    char v[FIELD_MAX];
    return field(json, key, v, sizeof v) == 0 ? atoll(v) : 0;
}

static aj_bytes bytes(const char *s) {
    aj_bytes b = {s, strlen(s)};
    return b;
}

/* ----------------------------------------------------------------------------------------- */
/* Steps and compensations. Inline steps run inside the workflow task's transaction: the       */
/* records they put commit together with the step's completion, so a reservation exists once  */
/* however often a crashed task is retried. They must not have effects outside the store.      */

/* What the order's steps share: its id and its input. */
typedef struct order {
    const char *id;
    aj_bytes input;
} order;

static int reserve_stock(aj_step_ctx *ctx, aj_bytes input, void *ud) {
    const order *o = ud;
    char key[AJ_WF_ID_MAX + 16], qty[FIELD_MAX];
    int klen = snprintf(key, sizeof key, "reservation/%s", o->id);
    if (field(input, "qty", qty, sizeof qty) != 0 || atoi(qty) <= 0) {
        return aj_step_fail(ctx, "the order has no quantity", 1); /* retrying cannot help */
    }
    AJ_TRY(aj_step_put(ctx, key, (size_t)klen, qty, strlen(qty)));
    return aj_step_set_result(ctx, qty, strlen(qty));
}

/* Compensation of reserve: the reservation record goes, in the compensation's transaction. */
static int release_stock(aj_step_ctx *ctx, aj_bytes order_id, void *ud) {
    (void)ud;
    char key[AJ_WF_ID_MAX + 16];
    int klen = snprintf(key, sizeof key, "reservation/%.*s", (int)order_id.len,
                        (const char *)order_id.data);
    return aj_step_del(ctx, key, (size_t)klen);
}

/* Compensation of charge: the data pushed with it is the charge's result. A real program would
 * call the payment provider with an idempotency key made from the charge id here. */
static int refund_charge(aj_step_ctx *ctx, aj_bytes charge, void *ud) {
    (void)ud;
    char key[AJ_WF_ID_MAX + 16], id[FIELD_MAX];
    if (field(charge, "charge", id, sizeof id) != 0) {
        return aj_step_fail(ctx, "the charge result names no charge", 1);
    }
    int klen = snprintf(key, sizeof key, "refund/%s", id);
    return aj_step_put(ctx, key, (size_t)klen, charge.data, charge.len);
}

static int ship_order(aj_step_ctx *ctx, aj_bytes input, void *ud) {
    const order *o = ud;
    char valid[FIELD_MAX];
    if (field(input, "address_valid", valid, sizeof valid) != 0 || strcmp(valid, "true") != 0) {
        /* Permanent: the address will not become deliverable by retrying. */
        return aj_step_fail(ctx, "the shipping address is not deliverable", 1);
    }
    char out[AJ_WF_ID_MAX + 32];
    int n = snprintf(out, sizeof out, "{\"tracking\":\"TRK-%s\"}", o->id);
    return aj_step_set_result(ctx, out, (size_t)n);
}

/* Compensation of ship. Nothing fails after shipping in this saga, so it never runs here; it is
 * pushed so that a step added later (say, "notify") is covered without touching this one. */
static int cancel_shipment(aj_step_ctx *ctx, aj_bytes shipment, void *ud) {
    (void)ud;
    return aj_step_put(ctx, "cancelled-shipment", 18, shipment.data, shipment.len);
}

/* The orders this program starts and how each must end. */
typedef struct order_case {
    const char *id;
    const char *input;
    aj_wf_state want;
    const char *want_compensations; /* in the order they ran */
    const char *want_failed;        /* the step or activity that failed; "" for none */
} order_case;

#define ORDERS 3
static const order_case orders[ORDERS] = {
    {"order-1",
     "{\"sku\":\"widget\",\"qty\":2,\"amount\":1998,\"card\":\"4242\",\"address_valid\":true}",
     AJ_WF_COMPLETED, "", ""},
    {"order-2",
     "{\"sku\":\"gadget\",\"qty\":1,\"amount\":4999,\"card\":\"4242\",\"address_valid\":false}",
     AJ_WF_COMPENSATED, "refund,release", "ship"},
    {"order-3",
     "{\"sku\":\"widget\",\"qty\":3,\"amount\":2997,\"card\":\"declined\",\"address_valid\":true}",
     AJ_WF_COMPENSATED, "release", "charge"},
};

/* ----------------------------------------------------------------------------------------- */
/* The activity: charging a card is a job, so it runs on any worker of the "payments" queue,  */
/* with its own retries, timeout and lease, and the workflow sleeps until it finishes.        */

static atomic_int charge_runs[ORDERS]; /* handler runs per order, to prove none is repeated */

static int charge_handler(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    aj_bytes payload = {job->payload, job->payload_len};
    char order_id[FIELD_MAX], card[FIELD_MAX];
    if (field(payload, "order", order_id, sizeof order_id) != 0 ||
        field(payload, "card", card, sizeof card) != 0) {
        return aj_ctx_fail(ctx, "malformed charge request", 1);
    }
    for (int i = 0; i < ORDERS; i++) {
        if (strcmp(orders[i].id, order_id) == 0) {
            atomic_fetch_add(&charge_runs[i], 1);
        }
    }
    if (strcmp(card, "declined") == 0) {
        /* Permanent: the job is dead-lettered at once and the activity fails. */
        return aj_ctx_fail(ctx, "card declined", 1);
    }
    char out[128];
    int len = snprintf(out, sizeof out, "{\"charge\":\"ch-%s\",\"amount\":%lld}", order_id,
                       field_int(payload, "amount"));
    return aj_ctx_set_result(ctx, out, (size_t)len);
}

/* ----------------------------------------------------------------------------------------- */
/* The workflow. It runs from the start on every wake-up: completed steps return their         */
/* recorded results, the compensations are pushed again in the same order, and only the first  */
/* call without a recorded outcome does any work.                                             */

/* Undoes the completed steps in reverse order, then fails the run; because compensations ran,
 * the run ends `compensated` (or `compensation_failed` when one of them failed for good). */
static int undo(aj_wf *wf, const char *why) {
    AJ_TRY(aj_saga_compensate(wf));
    return aj_wf_fail(wf, why);
}

static int order_workflow(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    const char *id = aj_wf_id(wf);
    order o = {id, input};

    int rc = aj_step(wf, "reserve", reserve_stock, &o, input, NULL);
    if (rc == AJ_EFAILED) {
        return aj_wf_fail(wf, "could not reserve stock"); /* nothing to undo yet */
    }
    AJ_TRY(rc); /* AJ_SUSPEND or a store error: return it unchanged */
    AJ_TRY(aj_saga_push(wf, "release", release_stock, NULL, bytes(id)));

    char card[FIELD_MAX], payload[256];
    if (field(input, "card", card, sizeof card) != 0) {
        return undo(wf, "the order has no card");
    }
    int n = snprintf(payload, sizeof payload, "{\"order\":\"%s\",\"card\":\"%s\",\"amount\":%lld}",
                     id, card, field_int(input, "amount"));
    aj_job_spec charge;
    aj_job_spec_init(&charge);
    charge.queue = "payments";
    charge.type = "charge";
    charge.payload = payload;
    charge.payload_len = (size_t)n;
    charge.timeout_ms = 30 * AJ_SECOND;
    aj_bytes receipt;
    rc = aj_activity(wf, "charge", &charge, &receipt);
    if (rc == AJ_EFAILED || rc == AJ_ECANCELLED) {
        /* Dead-lettered (declined, or out of retries), or the order was cancelled meanwhile. */
        return undo(wf, "payment failed");
    }
    AJ_TRY(rc);
    AJ_TRY(aj_saga_push(wf, "refund", refund_charge, NULL, receipt));

    aj_bytes shipment;
    rc = aj_step(wf, "ship", ship_order, &o, input, &shipment);
    if (rc == AJ_EFAILED) {
        return undo(wf, "shipping failed");
    }
    AJ_TRY(rc);
    AJ_TRY(aj_saga_push(wf, "cancel-shipment", cancel_shipment, NULL, shipment));
    return aj_wf_set_result(wf, shipment.data, shipment.len);
}

/* Reads records back: a workflow step is where the user's records are visible. The input is
 * keys separated by newlines; the result has one line "KEY=VALUE" (or "KEY=-") per key. */
static int read_records(aj_step_ctx *ctx, aj_bytes keys, void *ud) {
    (void)ud;
    char out[1024];
    size_t used = 0;
    const char *p = keys.data, *end = p + keys.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t klen = (size_t)((nl ? nl : end) - p);
        aj_bytes v;
        int rc = aj_step_get(ctx, p, klen, &v);
        if (rc != 0 && rc != AJ_ENOTFOUND) {
            return rc;
        }
        int n = snprintf(out + used, sizeof out - used, "%.*s=%.*s\n", (int)klen, p,
                         rc == 0 ? (int)v.len : 1, rc == 0 ? (const char *)v.data : "-");
        if (n < 0 || (size_t)n >= sizeof out - used) {
            return aj_step_fail(ctx, "too many keys", 1);
        }
        used += (size_t)n;
        p += klen + 1;
    }
    return aj_step_set_result(ctx, out, used);
}

static int audit_workflow(aj_wf *wf, aj_bytes input, void *ud) {
    (void)ud;
    aj_bytes out;
    AJ_TRY(aj_step(wf, "read", read_records, NULL, input, &out));
    return aj_wf_set_result(wf, out.data, out.len);
}

/* ----------------------------------------------------------------------------------------- */
/* The program                                                                                */

/* What the history says happened. */
typedef struct summary {
    char compensations[256]; /* names of compensation_completed events, comma-separated */
    char failed[64];         /* the step_failed name, or the final activity_failed name */
    int completions[3];      /* completion events of reserve, charge, ship */
} summary;

static void append(char *list, size_t size, const char *name) {
    size_t n = strlen(list);
    snprintf(list + n, size - n, "%s%s", n ? "," : "", name);
}

static int summarize(void *ud, const aj_wf_event *ev) {
    summary *s = ud;
    static const char *const steps[3] = {"reserve", "charge", "ship"};
    if (strcmp(ev->type, "compensation_completed") == 0) {
        append(s->compensations, sizeof s->compensations, ev->name);
    } else if (strcmp(ev->type, "step_failed") == 0 || strcmp(ev->type, "activity_failed") == 0) {
        /* activity_failed comes once per failed attempt; the charge here fails only once. */
        snprintf(s->failed, sizeof s->failed, "%s", ev->name);
    } else if (strcmp(ev->type, "step_completed") == 0 ||
               strcmp(ev->type, "activity_completed") == 0) {
        for (int i = 0; i < 3; i++) {
            s->completions[i] += strcmp(ev->name, steps[i]) == 0;
        }
    }
    return 0;
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "order_saga: %s: %s: %s\n", what, aj_strerror(rc), aj_errmsg());
    return 1;
}

/* Waits for one order and compares it with the expected outcome. Returns 1 when it matches. */
static int check_order(aj_engine *e, const order_case *c, int index) {
    aj_wf_state st;
    int rc = aj_wf_wait(e, c->id, WAIT_MS, &st);
    if (rc != 0) {
        return !fail(c->id, rc);
    }
    aj_wf_info *info;
    if ((rc = aj_wf_get(e, c->id, &info)) != 0) {
        return !fail(c->id, rc);
    }
    summary s;
    memset(&s, 0, sizeof s);
    if ((rc = aj_wf_history(e, c->id, 0, summarize, &s)) != 0) {
        aj_wf_info_free(info);
        return !fail(c->id, rc);
    }
    printf("%s: %s", c->id, aj_wf_state_name(st));
    if (info->result != NULL) {
        printf(" result=%s", (const char *)info->result);
    }
    if (info->error != NULL) {
        printf(" error=\"%s\" failed_at=%s", info->error, s.failed);
    }
    printf(" compensations=[%s] charge_runs=%d\n", s.compensations,
           atomic_load(&charge_runs[index]));
    /* Each step that ran completed exactly once; the charge job ran exactly once. */
    int want_charge = strcmp(c->want_failed, "charge") == 0 ? 0 : 1;
    int ok = st == c->want && strcmp(s.compensations, c->want_compensations) == 0 &&
             strcmp(s.failed, c->want_failed) == 0 && s.completions[0] == 1 &&
             s.completions[1] == want_charge &&
             s.completions[2] == (c->want == AJ_WF_COMPLETED ? 1 : 0) &&
             atomic_load(&charge_runs[index]) == 1;
    if (!ok) {
        fprintf(stderr,
                "order_saga: %s: expected %s, compensations [%s], failure at '%s' "
                "(completions reserve=%d charge=%d ship=%d)\n",
                c->id, aj_wf_state_name(c->want), c->want_compensations, c->want_failed,
                s.completions[0], s.completions[1], s.completions[2]);
    }
    aj_wf_info_free(info);
    return ok;
}

/* Runs the audit workflow; the reservation of the shipped order stays, the others were
 * released by their compensations. */
static int check_records(aj_engine *e) {
    static const char keys[] = "reservation/order-1\nreservation/order-2\nreservation/order-3\n"
                               "refund/ch-order-2";
    static const char want[] = "reservation/order-1=2\nreservation/order-2=-\n"
                               "reservation/order-3=-\nrefund/ch-order-2="
                               "{\"charge\":\"ch-order-2\",\"amount\":4999}\n";
    aj_wf_start_opts o = {"order-audit", 1, 0};
    aj_wf_state st;
    aj_wf_info *info = NULL;
    int rc = aj_wf_start(e, "audit", keys, strlen(keys), &o, NULL);
    if (rc == 0) {
        rc = aj_wf_wait(e, "order-audit", WAIT_MS, &st);
    }
    if (rc == 0) {
        rc = aj_wf_get(e, "order-audit", &info);
    }
    if (rc != 0) {
        return !fail("audit", rc);
    }
    int ok =
        info->state == AJ_WF_COMPLETED && info->result != NULL && strcmp(info->result, want) == 0;
    printf("records:\n%s", info->result ? (const char *)info->result : "(none)\n");
    if (!ok) {
        fprintf(stderr, "order_saga: the records are not as expected; wanted:\n%s", want);
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
    /* Types and handlers first: a worker pool only runs what was registered before it started. */
    if ((rc = aj_register(e, "charge", charge_handler, NULL)) != 0 ||
        (rc = aj_workflow_register(e, "order", order_workflow, NULL)) != 0 ||
        (rc = aj_workflow_register(e, "audit", audit_workflow, NULL)) != 0 ||
        (rc = aj_workers_start(e, NULL)) != 0) {
        aj_engine_close(e);
        return fail("start workers", rc);
    }
    int ok = 1;
    for (int i = 0; i < ORDERS && ok; i++) {
        /* allow_rerun: running the example again on a SQLite store starts new runs. */
        aj_wf_start_opts o = {orders[i].id, 1, 0};
        if ((rc = aj_wf_start(e, "order", orders[i].input, strlen(orders[i].input), &o, NULL))) {
            ok = !fail(orders[i].id, rc);
        }
    }
    int started = ok;
    /* Check every order even after a mismatch, so that the output shows them all. */
    for (int i = 0; i < ORDERS && started; i++) {
        ok = check_order(e, &orders[i], i) && ok;
    }
    ok = ok && check_records(e);
    aj_workers_stop(e);
    aj_engine_close(e);
    printf("%s\n", ok ? "all orders ended as expected" : "UNEXPECTED OUTCOME");
    return ok ? 0 : 1;
}
