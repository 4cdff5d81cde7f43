/*
 * scheduler.c — the schedule service and the public schedule calls (aj.h, "Schedules").
 *
 * The service is one thread per engine. Each round it reads, in one snapshot, which schedules are
 * due and which buffered fires may run (sched_poll), then gives each of them sched_step()
 * transactions until it has nothing more to do now; then it sleeps until the next due time or
 * until the store changes (a schedule added or resumed by another process, a job finishing that
 * a buffered fire waits for), whichever comes first. Sleeping to the due time rather than
 * polling is what gives sub-second precision without load.
 *
 * Exactly once across processes comes from the core (schedule.h): a step commits the fire, its
 * job and the record's advance together, and a step that raced another process conflicts,
 * retries (eng_run) and finds nothing left to do. Ids for new jobs are reserved here before the
 * transaction, as aj_submit does; an id a step did not use is kept for the next one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cron.h"
#include "core/schedule.h"
#include "core/tz.h"
#include "runtime/engine.h"
#include "runtime/tz_cache.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* Longest sleep of the service when nothing is due (it also wakes on every store change). */
#define SVC_IDLE_MS 1000
/* The service waits in slices this long so that a stop is noticed quickly. */
#define SVC_SLICE_MS 20
/* Shortest time between two rounds: bounds the cost of waking on every store change under a
 * heavy job load (each round is one read of the due index), and adds at most this much to the
 * lateness of a fire. */
#define SVC_MIN_INTERVAL_US 10000
/* Schedules handled per round; more due ones are handled by the next round at once. */
#define SVC_BATCH 256
/* Steps one schedule gets per round (a catch-up of many fires continues next round). */
#define SVC_STEPS_PER_NAME 1000
/* The least time between two error lines in the log. */
#define SVC_ERROR_LOG_US (10 * 1000 * 1000)

struct aj_sched_svc {
    pthread_t thread;
    atomic_int stop;
};

/* ----------------------------------------------------------------------------------------- */
/* One round                                                                                  */

typedef struct name_list {
    char (*v)[AJ_NAME_MAX + 1];
    size_t n;
} name_list;

static int add_name(void *ud, const char *name) {
    name_list *l = ud;
    if (l->n < SVC_BATCH * 2) {
        snprintf(l->v[l->n++], AJ_NAME_MAX + 1, "%s", name);
    }
    return 0;
}

typedef struct poll_ctx {
    name_list *names;
    int64_t next;
} poll_ctx;

static int poll_txn(kv_txn *t, const job_env *env, void *ud) {
    poll_ctx *p = ud;
    p->names->n = 0;
    int rc = sched_poll(t, env->now_ms, SVC_BATCH, add_name, p->names, &p->next);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

typedef struct step_ctx {
    const char *name;
    uint64_t id;
    sched_step_out out;
} step_ctx;

static int step_txn(kv_txn *t, const job_env *env, void *ud) {
    step_ctx *s = ud;
    int rc = sched_step(t, env, s->name, s->id, &s->out);
    if (rc == 0 && !s->out.progressed) {
        return ENG_READ_ONLY;
    }
    return rc;
}

/* Steps one schedule until it has nothing more to do now. */
static int run_schedule(aj_engine *e, const char *name, uint64_t *spare_id, int *have_id,
                        int64_t *next) {
    for (int k = 0; k < SVC_STEPS_PER_NAME; k++) {
        if (!*have_id) {
            int rc = eng_ids(e, 1, spare_id);
            if (rc != 0) {
                return rc;
            }
            *have_id = 1;
        }
        step_ctx s = {name, *spare_id, {0, 0, INT64_MAX}};
        int rc = eng_run(e, step_txn, &s, KV_SYNC);
        if (rc != 0) {
            return aj__err_wrap(rc, "schedule '%s'", name);
        }
        if (s.out.used_id) {
            *have_id = 0;
            char q[AJ_NAME_MAX * 2];
            aj__log(&e->log, AJ_LOG_DEBUG, "msg=\"schedule fired\" schedule=%s job=%llu",
                    aj__logq(q, sizeof q, name), (unsigned long long)*spare_id);
        }
        if (!s.out.progressed || s.out.next_due > eng_now_ms(e)) {
            if (s.out.next_due < *next) {
                *next = s.out.next_due;
            }
            return 0;
        }
    }
    *next = eng_now_ms(e); /* a long catch-up: continue at once, after the others */
    return 0;
}

int aj_schedules_tick(aj_engine *e, int64_t *out_next_ms) {
    name_list names = {aj__malloc(SVC_BATCH * 2 * sizeof *names.v), 0};
    if (names.v == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory running schedules");
    }
    poll_ctx p = {&names, INT64_MAX};
    int rc = eng_run(e, poll_txn, &p, KV_SYNC);
    int64_t next = p.next;
    uint64_t spare_id = 0;
    int have_id = 0;
    for (size_t i = 0; rc == 0 && i < names.n; i++) {
        /* One failing schedule must not starve the others: keep going, report the first. */
        int src = run_schedule(e, names.v[i], &spare_id, &have_id, &next);
        if (src != 0) {
            rc = src;
            char q[AJ_NAME_MAX * 2];
            aj__log(&e->log, AJ_LOG_ERROR, "msg=\"schedule step failed\" schedule=%s error=%s",
                    aj__logq(q, sizeof q, names.v[i]), aj_errmsg());
        }
    }
    aj__free(names.v);
    if (out_next_ms != NULL) {
        *out_next_ms = next;
    }
    return rc;
}

/* ----------------------------------------------------------------------------------------- */
/* The service thread                                                                         */

static void *svc_main(void *arg) {
    aj_engine *e = arg;
    struct aj_sched_svc *svc = e->sched;
    int64_t last_error_log = 0;
    while (!atomic_load(&svc->stop) && !atomic_load(&e->closing)) {
        uint64_t seen = kv_change_seq(e->kv);
        int64_t started = aj__mono_us();
        int64_t next = INT64_MAX;
        int rc = aj_schedules_tick(e, &next);
        if (rc != 0 && rc != AJ_ECLOSED) {
            if (started - last_error_log > SVC_ERROR_LOG_US) {
                aj__log(&e->log, AJ_LOG_ERROR, "msg=\"schedule service round failed\" error=%s",
                        aj_errmsg());
                last_error_log = started;
            }
            int64_t retry = eng_now_ms(e) + SVC_IDLE_MS;
            next = next < retry ? next : retry;
        }
        for (;;) {
            int64_t wait = next == INT64_MAX ? SVC_IDLE_MS : next - eng_now_ms(e);
            if (wait > SVC_IDLE_MS) {
                wait = SVC_IDLE_MS;
            }
            if (wait <= 0 || atomic_load(&svc->stop) || atomic_load(&e->closing) ||
                kv_change_seq(e->kv) != seen) {
                break;
            }
            kv_wait_change(e->kv, seen, wait < SVC_SLICE_MS ? wait : SVC_SLICE_MS);
            if (next == INT64_MAX && aj__mono_us() - started >= SVC_IDLE_MS * 1000) {
                break;
            }
        }
        int64_t spent = aj__mono_us() - started;
        if (spent < SVC_MIN_INTERVAL_US) {
            struct timespec ts = {0, (long)(SVC_MIN_INTERVAL_US - spent) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int aj_schedules_start(aj_engine *e) {
    pthread_mutex_lock(&e->mu);
    if (e->sched != NULL) {
        pthread_mutex_unlock(&e->mu);
        return aj__err(AJ_ESTATE, "the schedule service is already running");
    }
    struct aj_sched_svc *svc = aj__calloc(1, sizeof *svc);
    if (svc == NULL) {
        pthread_mutex_unlock(&e->mu);
        return aj__err(AJ_ENOMEM, "out of memory starting the schedule service");
    }
    e->sched = svc;
    if (pthread_create(&svc->thread, NULL, svc_main, e) != 0) {
        e->sched = NULL;
        pthread_mutex_unlock(&e->mu);
        aj__free(svc);
        return aj__err(AJ_EINTERNAL, "cannot start the schedule service thread");
    }
    pthread_mutex_unlock(&e->mu);
    aj__log(&e->log, AJ_LOG_INFO, "msg=\"schedule service started\"");
    return 0;
}

void aj_schedules_stop(aj_engine *e) {
    if (e == NULL) {
        return;
    }
    pthread_mutex_lock(&e->mu);
    struct aj_sched_svc *svc = e->sched;
    pthread_mutex_unlock(&e->mu);
    if (svc == NULL) {
        return;
    }
    atomic_store(&svc->stop, 1);
    pthread_join(svc->thread, NULL);
    pthread_mutex_lock(&e->mu);
    e->sched = NULL;
    pthread_mutex_unlock(&e->mu);
    aj__free(svc);
}

void eng_sched_destroy(aj_engine *e) {
    aj_schedules_stop(e);
}

/* ----------------------------------------------------------------------------------------- */
/* Public calls                                                                               */

void aj_schedule_spec_init(aj_schedule_spec *s) {
    memset(s, 0, sizeof *s);
    s->catch_up = AJ_CATCH_UP_ONCE;
    s->catch_up_limit = AJ_SCHEDULE_CATCH_UP_LIMIT_DEFAULT;
    s->overlap = AJ_OVERLAP_SKIP;
    aj_job_spec_init(&s->job);
}

static int name_arg(const char *name) {
    if (name == NULL) {
        return aj__err(AJ_EINVAL, "a schedule name is required");
    }
    return aj_name_check("schedule", name);
}

static int add_txn(kv_txn *t, const job_env *env, void *ud) {
    return sched_add(t, env, ud);
}

int aj_schedule_add(aj_engine *e, const aj_schedule_spec *spec) {
    if (spec == NULL) {
        return aj__err(AJ_EINVAL, "aj_schedule_add needs a spec");
    }
    int rc = sched_spec_check(spec);
    if (rc == 0) {
        rc = eng_sched_spec_check(e, spec);
    }
    if (rc == 0) {
        rc = eng_note_queue(e, spec->job.queue != NULL ? spec->job.queue : "default");
    }
    if (rc == 0) {
        rc = eng_run(e, add_txn, (void *)spec, KV_SYNC);
    }
    return rc;
}

typedef struct get_ctx {
    const char *name;
    aj_schedule *out;
} get_ctx;

static int get_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    get_ctx *g = ud;
    sched_rec r;
    int rc = sched_read(t, g->name, &r);
    if (rc != 0) {
        return rc;
    }
    aj_schedule_free(g->out);
    g->out = sched_rec_to_public(&r);
    if (g->out == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory reading schedule '%s'", g->name);
    }
    return ENG_READ_ONLY;
}

int aj_schedule_get(aj_engine *e, const char *name, aj_schedule **out) {
    int rc = name_arg(name);
    if (rc != 0) {
        return rc;
    }
    get_ctx g = {name, NULL};
    rc = eng_run(e, get_txn, &g, KV_SYNC);
    if (rc != 0) {
        aj_schedule_free(g.out);
        return rc;
    }
    *out = g.out;
    return 0;
}

typedef struct list_ctx {
    aj_schedule **v;
    size_t n, cap;
} list_ctx;

static int list_add(void *ud, const sched_rec *r) {
    list_ctx *l = ud;
    aj_schedule **nv = aj__grow(l->v, &l->cap, l->n, sizeof *nv);
    if (nv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing schedules");
    }
    l->v = nv;
    aj_schedule *s = sched_rec_to_public(r);
    if (s == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory listing schedules");
    }
    l->v[l->n++] = s;
    return 0;
}

static int list_txn(kv_txn *t, const job_env *env, void *ud) {
    (void)env;
    list_ctx *l = ud;
    for (size_t i = 0; i < l->n; i++) {
        aj_schedule_free(l->v[i]);
    }
    l->n = 0;
    int rc = sched_list(t, list_add, l);
    return rc != 0 ? rc : ENG_READ_ONLY;
}

void aj_schedule_list_free(aj_schedule **list, size_t n) {
    for (size_t i = 0; list != NULL && i < n; i++) {
        aj_schedule_free(list[i]);
    }
    aj__free(list);
}

int aj_schedule_list(aj_engine *e, aj_schedule ***out, size_t *n) {
    list_ctx l = {NULL, 0, 0};
    int rc = eng_run(e, list_txn, &l, KV_SYNC);
    if (rc != 0) {
        aj_schedule_list_free(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

typedef enum sched_op { OP_PAUSE, OP_RESUME, OP_REMOVE, OP_TRIGGER, OP_BACKFILL } sched_op;

typedef struct op_ctx {
    sched_op op;
    const char *name;
    uint64_t id;
    int64_t from, to;
    size_t max, n;
} op_ctx;

static int op_txn(kv_txn *t, const job_env *env, void *ud) {
    op_ctx *o = ud;
    switch (o->op) {
    case OP_PAUSE:
        return sched_pause(t, env, o->name);
    case OP_RESUME:
        return sched_resume(t, env, o->name);
    case OP_REMOVE:
        return sched_remove(t, env, o->name);
    case OP_TRIGGER:
        return sched_trigger(t, env, o->name, o->id);
    case OP_BACKFILL:
        o->n = 0;
        return sched_backfill(t, env, o->name, o->from, o->to, o->id, o->max, &o->n);
    }
    return aj__err(AJ_EINTERNAL, "unknown schedule operation");
}

static int run_op(aj_engine *e, sched_op op, const char *name) {
    int rc = name_arg(name);
    if (rc != 0) {
        return rc;
    }
    op_ctx o = {op, name, 0, 0, 0, 0, 0};
    return eng_run(e, op_txn, &o, KV_SYNC);
}

int aj_schedule_pause(aj_engine *e, const char *name) {
    return run_op(e, OP_PAUSE, name);
}

int aj_schedule_resume(aj_engine *e, const char *name) {
    return run_op(e, OP_RESUME, name);
}

int aj_schedule_remove(aj_engine *e, const char *name) {
    return run_op(e, OP_REMOVE, name);
}

int aj_schedule_trigger(aj_engine *e, const char *name, uint64_t *out_id) {
    int rc = name_arg(name);
    op_ctx o = {OP_TRIGGER, name, 0, 0, 0, 0, 0};
    if (rc == 0) {
        rc = eng_ids(e, 1, &o.id);
    }
    if (rc == 0) {
        rc = eng_run(e, op_txn, &o, KV_SYNC);
    }
    if (rc == 0 && out_id != NULL) {
        *out_id = o.id;
    }
    return rc;
}

typedef struct times_ctx {
    const char *name;
    int64_t after, before;
    size_t max;
    int64_t *out;
    size_t n;
} times_ctx;

static int times_txn(kv_txn *t, const job_env *env, void *ud) {
    times_ctx *c = ud;
    sched_rec r;
    int rc = sched_read(t, c->name, &r);
    if (rc == 0) {
        rc = sched_fire_times(env, &r, c->after, c->before, c->max, c->out, &c->n);
    }
    return rc != 0 ? rc : ENG_READ_ONLY;
}

int aj_schedule_backfill(aj_engine *e, const char *name, int64_t from_ms, int64_t to_ms,
                         uint64_t **out_ids, size_t *out_n) {
    int rc = name_arg(name);
    if (rc != 0) {
        return rc;
    }
    if (to_ms <= from_ms) {
        return aj__err(AJ_EINVAL, "backfill range is empty: 'to' must be after 'from'");
    }
    /* Count the fire times first, to reserve exactly that many ids. */
    int64_t *times = aj__malloc((AJ_SCHEDULE_BACKFILL_MAX + 1) * sizeof *times);
    if (times == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory backfilling schedule '%s'", name);
    }
    times_ctx c = {name, from_ms - 1, to_ms, AJ_SCHEDULE_BACKFILL_MAX + 1, times, 0};
    rc = eng_run(e, times_txn, &c, KV_SYNC);
    aj__free(times);
    if (rc == 0 && c.n > AJ_SCHEDULE_BACKFILL_MAX) {
        rc = aj__err(AJ_EINVAL, "backfill of schedule '%s' covers more than %d fire times", name,
                     AJ_SCHEDULE_BACKFILL_MAX);
    }
    op_ctx o = {OP_BACKFILL, name, 0, from_ms, to_ms, c.n, 0};
    if (rc == 0 && c.n > 0) {
        rc = eng_ids(e, c.n, &o.id);
        if (rc == 0) {
            rc = eng_run(e, op_txn, &o, KV_SYNC);
        }
    }
    uint64_t *ids = NULL;
    if (rc == 0 && out_ids != NULL && o.n > 0) {
        ids = aj__malloc(o.n * sizeof *ids);
        if (ids == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory listing backfilled jobs");
        }
        for (size_t i = 0; ids != NULL && i < o.n; i++) {
            ids[i] = o.id + i;
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (out_ids != NULL) {
        *out_ids = ids;
    }
    if (out_n != NULL) {
        *out_n = o.n;
    }
    return 0;
}

static int count_arg(size_t count) {
    if (count < 1 || count > AJ_SCHEDULE_PREVIEW_MAX) {
        return aj__err(AJ_EINVAL, "a preview shows 1 to %d fire times", AJ_SCHEDULE_PREVIEW_MAX);
    }
    return 0;
}

int aj_schedule_preview(aj_engine *e, const char *name, int64_t after_ms, size_t count,
                        int64_t *out_times, size_t *out_n) {
    int rc = name_arg(name);
    if (rc == 0) {
        rc = count_arg(count);
    }
    if (rc != 0) {
        return rc;
    }
    times_ctx c = {name, after_ms, INT64_MAX, count, out_times, 0};
    rc = eng_run(e, times_txn, &c, KV_SYNC);
    if (rc == 0) {
        *out_n = c.n;
    }
    return rc;
}

int aj_cron_preview(const char *expr, const char *tz, int64_t after_ms, size_t count,
                    int64_t *out_times, size_t *out_n) {
    int rc = count_arg(count);
    cron_expr c;
    if (rc == 0) {
        rc = cron_parse(expr, &c);
    }
    tz_zone *z = NULL;
    if (rc == 0) {
        rc = tz_load(tz != NULL ? tz : "UTC", NULL, &z);
    }
    size_t n = 0;
    int64_t x = after_ms;
    while (rc == 0 && n < count && cron_next(&c, z, after_ms, x, &x) == 0) {
        out_times[n++] = x;
    }
    tz_free(z);
    if (rc == 0) {
        aj__err_clear();
        *out_n = n;
    }
    return rc;
}
