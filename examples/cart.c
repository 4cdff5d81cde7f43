/*
 * cart.c — a shopping cart workflow that takes updates and memoizes an activity.
 *
 * Items are added with the update "add" ({"sku":"A-1","qty":2}): the validator refuses a
 * missing sku or a quantity outside 1..100 (the caller gets the message and nothing is
 * recorded); the handler adds the items and answers {"items":N}. The cart fetches the price list
 * with a cached activity (global scope, declared version "2026-11", one hour): only the first
 * cart runs the job, later carts record a cache hit. The signal "checkout" ends the cart with
 * {"items":N,"prices":...}.
 *
 *   ./cart URL            the demonstration: two carts, updates accepted and refused, checks
 *                         every outcome, exits 0 when all are as expected
 *   ./cart URL --worker   runs the workers only, until SIGINT or SIGTERM, so that `aj wf start
 *                         cart`, `aj wf update`, `aj wf signal` can drive carts from a shell
 *
 *   cc cart.c $(pkg-config --cflags --libs aj) -o cart
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aj.h>

#define WAIT_MS (30 * AJ_SECOND)

static atomic_int price_jobs;

/* The value after "key": in a flat JSON object (see approval.c); -1 when absent. */
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

/* The price-list job (an activity): a real one would call a pricing service. */
static int price_list(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)job;
    (void)ud;
    atomic_fetch_add(&price_jobs, 1);
    const char *prices = "{\"A-1\":250,\"B-2\":1200}";
    return aj_ctx_set_result(ctx, prices, strlen(prices));
}

typedef struct cart {
    long items;
} cart;

static int add_validate(void *ud, aj_bytes arg, char **out_error) {
    (void)ud;
    char sku[64], qty[16];
    char *end = NULL;
    long n = field(arg, "qty", qty, sizeof qty) == 0 ? strtol(qty, &end, 10) : 0;
    const char *why = NULL;
    if (field(arg, "sku", sku, sizeof sku) != 0 || sku[0] == '\0') {
        why = "an item needs a \"sku\"";
    } else if (end == NULL || *end != '\0' || n < 1 || n > 100) {
        why = "\"qty\" must be a whole number from 1 to 100";
    }
    if (why != NULL) {
        *out_error = malloc(strlen(why) + 1);
        if (*out_error != NULL) {
            strcpy(*out_error, why);
        }
        return AJ_EINVAL;
    }
    return 0;
}

static int add_handler(void *ud, aj_bytes arg, char **out, size_t *len) {
    cart *c = ud;
    char qty[16];
    field(arg, "qty", qty, sizeof qty); /* the validator checked it */
    c->items += atol(qty);
    *out = malloc(32);
    if (*out == NULL) {
        return AJ_ENOMEM;
    }
    *len = (size_t)snprintf(*out, 32, "{\"items\":%ld}", c->items);
    return 0;
}

static int cart_fn(aj_wf *wf, aj_bytes input, void *ud) {
    (void)input;
    (void)ud;
    cart c = {0};
    AJ_TRY(aj_wf_set_update(wf, "add", add_validate, add_handler, &c));
    aj_job_spec s;
    aj_job_spec_init(&s);
    s.queue = "cart";
    s.type = "price-list";
    aj_activity_cache cache = {"2026-11", 1, AJ_HOUR};
    aj_bytes prices;
    AJ_TRY(aj_activity_cached(wf, "price-list", &s, &cache, &prices));
    AJ_TRY(aj_wait_signal(wf, "checkout", -1, NULL));
    char result[256];
    int n = snprintf(result, sizeof result, "{\"items\":%ld,\"prices\":%.*s}", c.items,
                     (int)prices.len, (const char *)prices.data);
    return aj_wf_set_result(wf, result, (size_t)n);
}

static int setup(aj_engine *e) {
    int rc = aj_register(e, "price-list", price_list, NULL);
    if (rc == 0) {
        rc = aj_workflow_register(e, "cart", cart_fn, NULL);
    }
    if (rc == 0) {
        rc = aj_workers_start(e, NULL);
    }
    return rc;
}

static int check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "cart: %s (%s)\n", what, aj_errmsg());
    }
    return ok ? 0 : 1;
}

static int count_updates(void *ud, const aj_wf_event *ev) {
    *(int *)ud += strncmp(ev->type, "update_", 7) == 0;
    return 0;
}

static int demo(aj_engine *e) {
    int bad = 0;
    aj_wf_start_opts o = {"cart-1", 1, 0};
    bad += check(aj_wf_start(e, "cart", "{}", 2, &o, NULL) == 0, "start cart-1");
    char *out = NULL;
    size_t len = 0;
    const char *item = "{\"sku\":\"A-1\",\"qty\":2}";
    bad += check(aj_wf_update(e, "cart-1", "add", item, strlen(item), WAIT_MS, &out, &len) == 0 &&
                     strcmp(out, "{\"items\":2}") == 0,
                 "add two items");
    printf("add A-1 x2 -> %s\n", out ? out : "?");
    aj_free(out);
    out = NULL;
    const char *zero = "{\"sku\":\"B-2\",\"qty\":0}";
    int rc = aj_wf_update(e, "cart-1", "add", zero, strlen(zero), WAIT_MS, &out, &len);
    printf("add B-2 x0 -> refused: %s\n", aj_errmsg());
    bad += check(rc == AJ_EINVAL && strstr(aj_errmsg(), "from 1 to 100") != NULL,
                 "a zero quantity is refused");
    int updates = 0;
    bad += check(aj_wf_history(e, "cart-1", 0, count_updates, &updates) == 0 && updates == 2,
                 "only the accepted update is recorded");
    bad += check(aj_wf_signal(e, "cart-1", "checkout", "", 0) == 0, "checkout");
    aj_wf_state st;
    aj_wf_info *info = NULL;
    bad += check(aj_wf_wait(e, "cart-1", WAIT_MS, &st) == 0 && st == AJ_WF_COMPLETED &&
                     aj_wf_get(e, "cart-1", &info) == 0,
                 "cart-1 completes");
    if (info != NULL) {
        printf("cart-1: %s\n", (const char *)info->result);
        bad += check(strstr(info->result, "\"items\":2") != NULL, "cart-1 holds two items");
        aj_wf_info_free(info);
    }
    /* A second cart: the price list comes from the cache. */
    o.id = "cart-2";
    int jobs_before = atomic_load(&price_jobs);
    bad += check(aj_wf_start(e, "cart", "{}", 2, &o, NULL) == 0 &&
                     aj_wf_signal(e, "cart-2", "checkout", "", 0) == 0 &&
                     aj_wf_wait(e, "cart-2", WAIT_MS, &st) == 0 && st == AJ_WF_COMPLETED,
                 "cart-2 completes");
    bad += check(atomic_load(&price_jobs) == jobs_before, "cart-2's price list is a cache hit");
    aj_stats stats;
    if (aj_stats_get(e, &stats) == 0) {
        printf("activity cache: %llu hits, %llu misses, %llu entries\n",
               (unsigned long long)stats.process.activity_cache_hits,
               (unsigned long long)stats.process.activity_cache_misses,
               (unsigned long long)stats.activity_cache_entries);
    }
    return bad == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "mem:";
    int worker = argc > 2 && strcmp(argv[2], "--worker") == 0;
    if (argc > 3 || (argc > 2 && !worker)) {
        fprintf(stderr, "usage: cart [URL] [--worker]\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (worker) {
        pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts: they inherit it */
    }
    aj_engine *e = NULL;
    if (aj_engine_open(&e, url, NULL) != 0 || setup(e) != 0) {
        fprintf(stderr, "cart: %s\n", aj_errmsg());
        aj_engine_close(e);
        return 1;
    }
    int rc = 0;
    if (worker) {
        int sig = 0;
        sigwait(&set, &sig);
    } else {
        rc = demo(e);
    }
    aj_engine_close(e);
    return rc;
}
