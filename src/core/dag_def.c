/*
 * dag_def.c — graph definitions: the JSON parser (aj_dag_parse) and the shape check
 * (aj_dag_check: names, self-edges, cycles, depth, size), both pure, so the CLI can reject a bad
 * file before opening a store and the fuzz target can drive them directly. The store-side
 * checks (ids that must exist, depth through existing jobs) are in dag_api.c and deps.c.
 *
 * A parsed aj_dag owns everything its jobs point to: the jansson document (names, types,
 * queues are its strings) and one dag_store per job (payload text, after lists).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "aj.h"
#include "core/dag_plan.h"
#include "core/json_def.h"
#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

/* Largest definition accepted, in bytes. */
#define DAG_TEXT_MAX ((size_t)512 << 20)

typedef struct dag_store {
    char *payload;  /* from json_dumps */
    char *metadata; /* from json_dumps */
    const char **after_names;
    uint64_t *after_ids;
} dag_store;

typedef struct dag_priv {
    json_t *root;
    dag_store *st;
    size_t n;
} dag_priv;

void aj_dag_free(aj_dag *dag) {
    if (dag == NULL) {
        return;
    }
    dag_priv *p = dag->priv;
    if (p != NULL) {
        for (size_t i = 0; i < p->n; i++) {
            free(p->st[i].payload); /* from json_dumps: jansson's allocator */
            free(p->st[i].metadata);
            aj__free(p->st[i].after_names);
            aj__free(p->st[i].after_ids);
        }
        aj__free(p->st);
        json_decref(p->root);
        aj__free(p);
    }
    aj__free(dag->jobs);
    aj__free(dag);
}

/* Bytes of a name or value quoted in a message. */
#define DAG_SHOWN_MAX 60

/* Up to DAG_SHOWN_MAX bytes of s for a one-line message: control bytes become '?'. */
static const char *shown(const char *s, char buf[DAG_SHOWN_MAX + 1]) {
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i < DAG_SHOWN_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    buf[i] = '\0';
    return buf;
}

/* 1 when a name holds whitespace or a control byte: `NAME ID` output lines would be ambiguous,
 * or could not be shown on one line. */
static int has_space_or_control(const char *s) {
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* "job 3 ('a')" or "job 3" before the name is known. */
static void job_where(char *buf, size_t size, size_t i, const char *name) {
    if (name != NULL) {
        char b[DAG_SHOWN_MAX + 1];
        snprintf(buf, size, "job %zu ('%s')", i + 1, shown(name, b));
    } else {
        snprintf(buf, size, "job %zu", i + 1);
    }
}

static int str_field(const char *where, const char *field, json_t *v, const char **out) {
    if (!json_is_string(v)) {
        return aj__err(AJ_EINVAL, "%s: \"%s\" must be a string", where, field);
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return aj__err(AJ_EINVAL, "%s: \"%s\" holds \\u0000", where, field);
    }
    *out = json_string_value(v);
    return 0;
}

static int duration_field(const char *where, const char *field, json_t *v, int64_t *out) {
    const char *s = NULL;
    int rc = str_field(where, field, v, &s);
    if (rc == 0 && json_def_duration(v, 0, INT64_MIN, INT64_MAX, out) != 0) {
        char b[DAG_SHOWN_MAX + 1];
        rc = aj__err(AJ_EINVAL, "%s: \"%s\" is not a duration like 30s or 1h30m: '%s'", where,
                     field, shown(s, b));
    }
    return rc;
}

static int uint_field(const char *where, const char *field, json_t *v, uint64_t max,
                      uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        return aj__err(AJ_EINVAL, "%s: \"%s\" must be an integer from 0 to %" PRIu64, where, field,
                       max);
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_after(const char *where, json_t *v, dag_store *st, aj_dag_job *j) {
    if (!json_is_array(v)) {
        return aj__err(AJ_EINVAL, "%s: \"after\" must be an array of job names or ids", where);
    }
    size_t n = json_array_size(v);
    if (n > AJ_DEPS_MAX) {
        return aj__err(AJ_EINVAL, "%s: \"after\" names %zu jobs, over the limit of %d", where, n,
                       AJ_DEPS_MAX);
    }
    st->after_names = aj__calloc(n ? n : 1, sizeof *st->after_names);
    st->after_ids = aj__calloc(n ? n : 1, sizeof *st->after_ids);
    if (st->after_names == NULL || st->after_ids == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory reading the graph");
    }
    size_t nn = 0, ni = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_string(e)) {
            int rc = str_field(where, "after", e, &st->after_names[nn]);
            if (rc != 0) {
                return rc;
            }
            nn++;
        } else if (json_is_integer(e) && json_integer_value(e) > 0) {
            st->after_ids[ni++] = (uint64_t)json_integer_value(e);
        } else {
            return aj__err(AJ_EINVAL,
                           "%s: \"after\" item %zu must be a job name (a string) or an existing "
                           "job's id (a positive integer)",
                           where, i + 1);
        }
    }
    j->after_names = st->after_names;
    j->n_after_names = nn;
    j->spec.after = st->after_ids;
    j->spec.n_after = ni;
    return 0;
}

/* {"argv":[...]} for "run". */
static int parse_run(const char *where, json_t *v, dag_store *st) {
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return aj__err(AJ_EINVAL, "%s: \"run\" must be a non-empty array of strings", where);
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = NULL;
        int rc = str_field(where, "run", json_array_get(v, i), &s);
        if (rc != 0) {
            return rc;
        }
    }
    json_t *obj = json_pack("{s:O}", "argv", v);
    st->payload = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return st->payload ? 0 : aj__err(AJ_ENOMEM, "out of memory reading the graph");
}

static int parse_job(size_t i, json_t *o, dag_store *st, aj_dag_job *j) {
    char where[96];
    job_where(where, sizeof where, i, NULL);
    if (!json_is_object(o)) {
        return aj__err(AJ_EINVAL, "%s must be an object", where);
    }
    aj_job_spec_init(&j->spec);
    json_t *name = json_object_get(o, "name");
    if (name == NULL) {
        return aj__err(AJ_EINVAL, "%s has no \"name\"", where);
    }
    int rc = str_field(where, "name", name, &j->name);
    if (rc != 0) {
        return rc;
    }
    size_t nlen = strlen(j->name);
    if (nlen == 0 || nlen > AJ_DAG_NAME_MAX) {
        return aj__err(AJ_EINVAL, "%s: \"name\" must be 1 to %d bytes", where, AJ_DAG_NAME_MAX);
    }
    if (has_space_or_control(j->name)) {
        return aj__err(AJ_EINVAL, "%s: \"name\" may not hold whitespace or control characters",
                       where);
    }
    job_where(where, sizeof where, i, j->name);
    json_t *run = json_object_get(o, "run");
    json_t *type = json_object_get(o, "type");
    json_t *payload = json_object_get(o, "payload");
    if (run != NULL && payload != NULL) {
        return aj__err(AJ_EINVAL, "%s: \"run\" and \"payload\" exclude each other", where);
    }
    if (run == NULL && type == NULL) {
        return aj__err(AJ_EINVAL, "%s needs \"run\" (a program and its arguments) or \"type\"",
                       where);
    }
    const char *key = NULL;
    json_t *v = NULL;
    json_object_foreach(o, key, v) {
        uint64_t u = 0;
        char b[DAG_SHOWN_MAX + 1];
        rc = 0;
        if (strcmp(key, "name") == 0) {
            continue;
        } else if (strcmp(key, "run") == 0) {
            rc = parse_run(where, v, st);
        } else if (strcmp(key, "type") == 0) {
            rc = str_field(where, key, v, &j->spec.type);
        } else if (strcmp(key, "payload") == 0) {
            st->payload = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            rc = st->payload ? 0 : aj__err(AJ_ENOMEM, "out of memory reading the graph");
        } else if (strcmp(key, "after") == 0) {
            rc = parse_after(where, v, st, j);
        } else if (strcmp(key, "queue") == 0) {
            rc = str_field(where, key, v, &j->spec.queue);
        } else if (strcmp(key, "priority") == 0) {
            if (json_is_string(v)) {
                if (aj_priority_parse(json_string_value(v), &j->spec.priority) != 0) {
                    rc = aj__err(AJ_EINVAL,
                                 "%s: \"priority\" must be 0..4294967295, critical, high, normal "
                                 "or low",
                                 where);
                }
            } else if ((rc = uint_field(where, key, v, UINT32_MAX, &u)) == 0) {
                j->spec.priority = (uint32_t)u;
            }
        } else if (strcmp(key, "max_attempts") == 0) {
            rc = uint_field(where, key, v, 1000000, &u);
            j->spec.max_attempts = (uint32_t)u;
        } else if (strcmp(key, "timeout") == 0) {
            rc = duration_field(where, key, v, &j->spec.timeout_ms);
        } else if (strcmp(key, "lease") == 0) {
            rc = duration_field(where, key, v, &j->spec.lease_ms);
        } else if (strcmp(key, "delay") == 0) {
            rc = duration_field(where, key, v, &j->spec.delay_ms);
        } else if (strcmp(key, "at") == 0) {
            const char *s = NULL;
            rc = str_field(where, key, v, &s);
            if (rc == 0 && aj_time_parse(s, &j->spec.run_at_ms) != 0) {
                rc = aj__err(AJ_EINVAL, "%s: \"at\" is not an RFC 3339 time", where);
            }
        } else if (strcmp(key, "backoff") == 0) {
            const char *s = NULL;
            rc = str_field(where, key, v, &s);
            if (rc == 0 && aj_backoff_parse(s, &j->spec.backoff) != 0) {
                rc = aj__err(AJ_EINVAL,
                             "%s: \"backoff\" must be none, fixed:DUR, exp:INITIAL[:FACTOR[:MAX]] "
                             "or list:DUR[,DUR...]",
                             where);
            }
        } else if (strcmp(key, "idempotency_key") == 0) {
            rc = str_field(where, key, v, &j->spec.idempotency_key);
        } else if (strcmp(key, "metadata") == 0) {
            if (!json_is_object(v)) {
                rc = aj__err(AJ_EINVAL, "%s: \"metadata\" must be an object", where);
            } else {
                free(st->metadata);
                st->metadata = json_dumps(v, JSON_COMPACT);
                j->spec.metadata = st->metadata;
                rc = st->metadata ? 0 : aj__err(AJ_ENOMEM, "out of memory reading the graph");
            }
        } else if (strcmp(key, "on_dep_failure") == 0) {
            const char *s = NULL;
            rc = str_field(where, key, v, &s);
            if (rc == 0 && aj_dep_policy_parse(s, &j->spec.on_dep_failure) != 0) {
                rc = aj__err(AJ_EINVAL,
                             "%s: \"on_dep_failure\" must be cascade, ignore or wait, not '%s'",
                             where, shown(s, b));
            }
        } else {
            rc = aj__err(AJ_EINVAL, "%s: unknown field \"%s\"", where, shown(key, b));
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (run != NULL) {
        if (j->spec.type != NULL && strcmp(j->spec.type, "shell") != 0) {
            char tb[DAG_SHOWN_MAX + 1];
            return aj__err(AJ_EINVAL, "%s: \"run\" makes a shell job, but \"type\" is '%s'", where,
                           shown(j->spec.type, tb));
        }
        j->spec.type = "shell";
    }
    if (st->payload == NULL) {
        st->payload = json_dumps(json_null(), JSON_ENCODE_ANY);
        if (st->payload == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory reading the graph");
        }
    }
    j->spec.payload = st->payload;
    j->spec.payload_len = strlen(st->payload);
    if (j->spec.queue != NULL && (rc = aj_name_check("queue", j->spec.queue)) != 0) {
        return aj__err_wrap(rc, "%s", where);
    }
    if ((rc = aj_name_check("type", j->spec.type)) != 0) {
        return aj__err_wrap(rc, "%s", where);
    }
    return 0;
}

int aj_dag_parse(const char *text, size_t len, aj_dag **out) {
    if (text == NULL || len > DAG_TEXT_MAX) {
        return aj__err(AJ_EINVAL, "graph definition is missing or over %zu MiB",
                       DAG_TEXT_MAX >> 20);
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        for (char *c = jerr.text; *c; c++) { /* it may quote the input: keep one line */
            *c = (unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c;
        }
        return aj__err(AJ_EINVAL, "graph definition is not valid JSON: line %d, column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    }
    aj_dag *d = aj__calloc(1, sizeof *d);
    dag_priv *p = aj__calloc(1, sizeof *p);
    int rc = 0;
    if (d == NULL || p == NULL) {
        aj__free(d);
        aj__free(p);
        json_decref(root);
        return aj__err(AJ_ENOMEM, "out of memory reading the graph");
    }
    d->priv = p;
    p->root = root;
    json_t *jobs = json_object_get(root, "jobs");
    if (!json_is_object(root)) {
        rc = aj__err(AJ_EINVAL, "graph definition must be an object {\"jobs\":[...]}");
    } else if (json_object_size(root) != 1 || jobs == NULL) {
        const char *key = NULL;
        json_t *v = NULL;
        const char *extra = NULL;
        json_object_foreach(root, key, v) {
            if (strcmp(key, "jobs") != 0 && extra == NULL) {
                extra = key;
            }
        }
        char b[DAG_SHOWN_MAX + 1];
        rc = extra ? aj__err(AJ_EINVAL, "graph definition: unknown field \"%s\"", shown(extra, b))
                   : aj__err(AJ_EINVAL, "graph definition has no \"jobs\"");
    } else if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
        rc = aj__err(AJ_EINVAL, "graph definition: \"jobs\" must be a non-empty array");
    } else if (json_array_size(jobs) > AJ_DAG_JOBS_MAX) {
        rc = aj__err(AJ_EINVAL, "graph has %zu jobs, over the limit of %d", json_array_size(jobs),
                     AJ_DAG_JOBS_MAX);
    }
    if (rc == 0) {
        size_t n = json_array_size(jobs);
        d->jobs = aj__calloc(n, sizeof *d->jobs);
        p->st = aj__calloc(n, sizeof *p->st);
        if (d->jobs == NULL || p->st == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory reading the graph");
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            p->n = i + 1;
            d->n = i + 1;
            rc = parse_job(i, json_array_get(jobs, i), &p->st[i], &d->jobs[i]);
        }
    }
    if (rc != 0) {
        aj_dag_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Shape                                                                                     */

/* An open-addressing table from name to job index. */
typedef struct name_map {
    size_t *slot; /* index + 1; 0 empty */
    size_t mask;
} name_map;

static size_t *name_find(name_map *m, const aj_dag_job *jobs, const char *name) {
    size_t i = (size_t)aj__fnv1a(AJ_FNV_INIT, name, strlen(name)) & m->mask;
    while (m->slot[i] != 0 && strcmp(jobs[m->slot[i] - 1].name, name) != 0) {
        i = (i + 1) & m->mask;
    }
    return &m->slot[i];
}

void dag_plan_free(dag_plan *p) {
    aj__free(p->order);
    aj__free(p->depth);
    aj__free(p->parents);
    aj__free(p->first_parent);
    memset(p, 0, sizeof *p);
}

/* Names a cycle among the jobs Kahn's algorithm could not order (each has an unordered
 * parent): walk parents from one of them until a job repeats. */
static int cycle_error(const aj_dag_job *jobs, size_t n, const dag_plan *p, const uint32_t *indeg) {
    size_t start = 0;
    while (start < n && indeg[start] == 0) {
        start++;
    }
    size_t *seen_at = aj__calloc(n, sizeof *seen_at); /* position in the walk + 1 */
    size_t *walk = aj__calloc(n + 1, sizeof *walk);
    if (seen_at == NULL || walk == NULL) {
        aj__free(seen_at);
        aj__free(walk);
        return aj__err(AJ_EINVAL, "the graph has a cycle");
    }
    size_t *walk_mem = walk;
    size_t len = 0, cur = start;
    while (seen_at[cur] == 0) {
        seen_at[cur] = len + 1;
        walk[len++] = cur;
        size_t next = cur;
        for (size_t e = p->first_parent[cur]; e < p->first_parent[cur + 1]; e++) {
            if (indeg[p->parents[e]] != 0) {
                next = p->parents[e];
                break;
            }
        }
        cur = next;
    }
    /* walk[seen_at[cur]-1 .. len) is the cycle, each job waiting on the next: print it in run
     * order (x -> y: y runs after x), starting from the job that comes first in the file. */
    size_t from = seen_at[cur] - 1, len_c = len - from, first = 0;
    size_t *cyc = seen_at; /* done with it: len_c <= n entries */
    for (size_t k = 0; k < len_c; k++) {
        cyc[k] = walk[len - 1 - k]; /* reversed into run order */
    }
    walk = cyc;
    for (size_t k = 1; k < len_c; k++) {
        first = walk[k] < walk[first] ? k : first;
    }
    char msg[1024];
    size_t used = (size_t)snprintf(msg, sizeof msg, "cycle: %s", jobs[walk[first]].name);
    for (size_t k = 1; k <= len_c && used < sizeof msg; k++) {
        used += (size_t)snprintf(msg + used, sizeof msg - used, " -> %s",
                                 jobs[walk[(first + k) % len_c]].name);
    }
    aj__free(seen_at);
    aj__free(walk_mem);
    return aj__err(AJ_EINVAL, "%s", msg);
}

int dag_plan_make(const aj_dag_job *jobs, size_t n, dag_plan *out) {
    char b[DAG_SHOWN_MAX + 1], b2[DAG_SHOWN_MAX + 1];
    memset(out, 0, sizeof *out);
    if (n == 0) {
        return aj__err(AJ_EINVAL, "a graph needs at least one job");
    }
    if (n > AJ_DAG_JOBS_MAX) {
        return aj__err(AJ_EINVAL, "graph has %zu jobs, over the limit of %d", n, AJ_DAG_JOBS_MAX);
    }
    size_t cap = 16;
    while (cap < n * 2) {
        cap *= 2;
    }
    name_map m = {aj__calloc(cap, sizeof(size_t)), cap - 1};
    size_t edges = 0;
    for (size_t i = 0; i < n; i++) {
        edges += jobs[i].n_after_names;
    }
    dag_plan *p = out;
    p->order = aj__calloc(n, sizeof *p->order);
    p->depth = aj__calloc(n, sizeof *p->depth);
    p->parents = aj__calloc(edges ? edges : 1, sizeof *p->parents);
    p->first_parent = aj__calloc(n + 1, sizeof *p->first_parent);
    uint32_t *indeg = aj__calloc(n, sizeof *indeg);
    size_t *kid_first = aj__calloc(n + 1, sizeof *kid_first);
    size_t *kids = aj__calloc(edges ? edges : 1, sizeof *kids);
    int rc = 0;
    if (m.slot == NULL || p->order == NULL || p->depth == NULL || p->parents == NULL ||
        p->first_parent == NULL || indeg == NULL || kid_first == NULL || kids == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory checking the graph");
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (jobs[i].name == NULL || jobs[i].name[0] == '\0' ||
            strlen(jobs[i].name) > AJ_DAG_NAME_MAX || has_space_or_control(jobs[i].name)) {
            rc = aj__err(AJ_EINVAL,
                         "job %zu: a name must be 1 to %d bytes, without whitespace or control "
                         "characters",
                         i + 1, AJ_DAG_NAME_MAX);
            break;
        }
        size_t *s = name_find(&m, jobs, jobs[i].name);
        if (*s != 0) {
            rc = aj__err(AJ_EINVAL, "duplicate job name '%s' (jobs %zu and %zu)",
                         shown(jobs[i].name, b), *s, i + 1);
            break;
        }
        *s = i + 1;
    }
    /* Parents by index, without repeats. */
    size_t e = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        p->first_parent[i] = e;
        for (size_t a = 0; a < jobs[i].n_after_names && rc == 0; a++) {
            const char *pn = jobs[i].after_names[a];
            size_t *s = pn ? name_find(&m, jobs, pn) : NULL;
            if (s == NULL || *s == 0) {
                rc = aj__err(AJ_EINVAL, "job '%s' waits on unknown job '%s'",
                             shown(jobs[i].name, b), pn ? shown(pn, b2) : "(null)");
                break;
            }
            size_t pi = *s - 1;
            if (pi == i) {
                rc = aj__err(AJ_EINVAL, "job '%s' depends on itself", shown(jobs[i].name, b));
                break;
            }
            int dup = 0;
            for (size_t q = p->first_parent[i]; q < e; q++) {
                dup |= p->parents[q] == pi;
            }
            if (!dup) {
                p->parents[e++] = pi;
            }
        }
    }
    if (rc != 0) {
        goto done;
    }
    p->first_parent[n] = e;
    /* Children lists for Kahn's algorithm. */
    for (size_t i = 0; i < n; i++) {
        indeg[i] = (uint32_t)(p->first_parent[i + 1] - p->first_parent[i]);
        for (size_t q = p->first_parent[i]; q < p->first_parent[i + 1]; q++) {
            kid_first[p->parents[q] + 1]++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        kid_first[i + 1] += kid_first[i];
    }
    {
        size_t *fill = aj__calloc(n, sizeof *fill);
        if (fill == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory checking the graph");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            for (size_t q = p->first_parent[i]; q < p->first_parent[i + 1]; q++) {
                size_t pi = p->parents[q];
                kids[kid_first[pi] + fill[pi]++] = i;
            }
        }
        aj__free(fill);
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n; i++) {
        if (indeg[i] == 0) {
            p->order[tail++] = i;
            p->depth[i] = 1;
        }
    }
    while (head < tail) {
        size_t i = p->order[head++];
        for (size_t q = kid_first[i]; q < kid_first[i + 1]; q++) {
            size_t c = kids[q];
            if (p->depth[i] + 1 > p->depth[c]) {
                p->depth[c] = p->depth[i] + 1;
            }
            if (--indeg[c] == 0) {
                p->order[tail++] = c;
            }
        }
    }
    if (tail < n) {
        rc = cycle_error(jobs, n, p, indeg);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (p->depth[i] > AJ_DEPS_DEPTH_MAX) {
            rc = aj__err(AJ_EINVAL,
                         "job '%s' is at depth %u: a dependency path of %u jobs ends at it, "
                         "over the limit of %d",
                         jobs[i].name, p->depth[i], p->depth[i], AJ_DEPS_DEPTH_MAX);
            break;
        }
    }
done:
    aj__free(m.slot);
    aj__free(indeg);
    aj__free(kid_first);
    aj__free(kids);
    if (rc != 0) {
        dag_plan_free(p);
    }
    return rc;
}

int aj_dag_check(const aj_dag_job *jobs, size_t n) {
    dag_plan p;
    int rc = dag_plan_make(jobs, n, &p);
    if (rc == 0) {
        dag_plan_free(&p);
    }
    return rc;
}
