/*
 * dlq.c — dead-letter analytics (see dlq.h): error grouping, the streaming accumulator, the
 * report and its findings.
 *
 * Invariants: the accumulator's tables hold at most AJ_DLQ_NAMES_MAX names each plus "(other)",
 * so memory follows the variety of dead letters, not their number; adding a record never fails
 * except for lack of memory, and then the accumulator is unchanged. Reports are built from the
 * accumulator without changing it. Every finding's message cites the counts it rests on. Part
 * of core/: no clock (the caller gives `now`), no threads; dlq_scan() is the only function that
 * reads the store, through job_list().
 */
#include "core/dlq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/mem.h"

/* Name that collects everything past AJ_DLQ_NAMES_MAX distinct names. */
#define DLQ_OTHER "(other)"
/* Group of a dead letter without an error message. */
#define DLQ_NO_ERROR "(no error)"
/* A word of this many characters or more that looks like a number or hex id is an "<id>". */
#define DLQ_ID_MIN 8
/* Initial slots of a name table (a power of two); it doubles at 70% load. */
#define DLQ_TABLE_INITIAL 64
/* Bytes of a finding's message or recommendation. */
#define DLQ_TEXT_MAX 1024
/* Longest literal piece of an error group quoted in a recommended --error filter. */
#define DLQ_FILTER_TEXT_MAX 80

/* ----------------------------------------------------------------------------------------- */
/* Error groups                                                                              */

/* Where to cut p so that the first byte left out, p[cut], does not continue a character: at
 * most 3 bytes back (a character has at most 3 continuation bytes), so text that is not UTF-8
 * loses no more than that. p[cut] must be readable. */
static size_t utf8_cut(const unsigned char *p, size_t cut) {
    for (int i = 0; i < 3 && cut > 0 && (p[cut] & 0xC0) == 0x80; i++) {
        cut--;
    }
    return cut;
}

/* The group being built: AJ_DLQ_GROUP_MAX bytes and a few more, so that a cut can see whether
 * it splits a character. */
typedef struct group_out {
    char b[AJ_DLQ_GROUP_MAX + 4];
    size_t len;
} group_out;

static void gadd(group_out *o, const char *s, size_t n) {
    for (size_t i = 0; i < n && o->len < sizeof o->b; i++) {
        o->b[o->len++] = s[i];
    }
}

static int is_word(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static int is_hex_letter(unsigned char c) {
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\0';
}

/* A word that is a number or an id as a whole: digits with hex letters only, or 0x + hex. */
static int word_is_number(const unsigned char *w, size_t n) {
    size_t i = 0;
    if (n > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X')) {
        i = 2;
    }
    int digit = 0;
    for (size_t k = i; k < n; k++) {
        if (is_digit(w[k])) {
            digit = 1;
        } else if (!is_hex_letter(w[k])) {
            return 0;
        }
    }
    return digit || i == 2;
}

/* The group of n bytes of error text (the rules are in aj.h). */
static size_t group_of(const unsigned char *s, size_t n, char *buf, size_t size) {
    group_out o;
    o.len = 0;
    size_t i = 0;
    int pending_space = 0;
    while (i < n && is_space(s[i])) {
        i++;
    }
    if (i == n) {
        gadd(&o, DLQ_NO_ERROR, strlen(DLQ_NO_ERROR));
    }
    while (i < n && o.len < sizeof o.b) {
        if (is_space(s[i])) {
            pending_space = 1;
            i++;
            continue;
        }
        if (pending_space) {
            gadd(&o, " ", 1);
            pending_space = 0;
        }
        if (!is_word(s[i])) {
            gadd(&o, (const char *)s + i, 1);
            i++;
            continue;
        }
        size_t start = i;
        int has_digit = 0;
        while (i < n && is_word(s[i])) {
            has_digit |= is_digit(s[i]);
            i++;
        }
        const unsigned char *w = s + start;
        size_t wn = i - start;
        if (has_digit && word_is_number(w, wn)) {
            gadd(&o, wn >= DLQ_ID_MIN ? "<id>" : "<n>", wn >= DLQ_ID_MIN ? 4 : 3);
            continue;
        }
        for (size_t k = 0; k < wn;) {
            if (is_digit(w[k])) {
                while (k < wn && is_digit(w[k])) {
                    k++;
                }
                gadd(&o, "<n>", 3);
            } else {
                gadd(&o, (const char *)w + k, 1);
                k++;
            }
        }
    }
    size_t cut = o.len > AJ_DLQ_GROUP_MAX ? AJ_DLQ_GROUP_MAX : o.len;
    if (size > 0 && cut > size - 1) {
        cut = size - 1;
    }
    if (cut < o.len) {
        /* o.b[cut] is the first byte left out: if it continues a character, leave that whole
         * character out. */
        cut = utf8_cut((const unsigned char *)o.b, cut);
        while (cut > 0 && o.b[cut - 1] == ' ') {
            cut--; /* a cut right after a space must not leave it trailing */
        }
    }
    if (size > 0) {
        memcpy(buf, o.b, cut);
        buf[cut] = '\0';
    }
    return cut;
}

size_t aj_dlq_error_group(const char *error, char *buf, size_t size) {
    const char *s = error != NULL ? error : "";
    return group_of((const unsigned char *)s, strlen(s), buf, size);
}

/* ----------------------------------------------------------------------------------------- */
/* Name tables                                                                                */

typedef struct dlq_entry {
    char *name; /* NULL: an empty slot */
    uint64_t count;
    uint64_t ex_id; /* the newest dead letter with this name */
    int64_t ex_ms;
    char *example; /* error tables: that dead letter's error, cut to AJ_DLQ_EXAMPLE_MAX */
} dlq_entry;

typedef struct dlq_table {
    dlq_entry *slots;
    size_t cap; /* a power of two */
    size_t n;   /* names held, "(other)" included */
    int has_other;
} dlq_table;

static void table_free(dlq_table *t) {
    for (size_t i = 0; i < t->cap; i++) {
        aj__free(t->slots[i].name);
        aj__free(t->slots[i].example);
    }
    aj__free(t->slots);
    memset(t, 0, sizeof *t);
}

static size_t table_find(const dlq_table *t, const char *name, size_t len) {
    size_t mask = t->cap - 1;
    size_t i = (size_t)aj__fnv1a(AJ_FNV_INIT, name, len) & mask;
    while (t->slots[i].name != NULL &&
           !(strlen(t->slots[i].name) == len && memcmp(t->slots[i].name, name, len) == 0)) {
        i = (i + 1) & mask;
    }
    return i;
}

static int table_grow(dlq_table *t) {
    size_t cap = t->cap ? t->cap * 2 : DLQ_TABLE_INITIAL;
    dlq_entry *slots = aj__calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    dlq_table nt = {slots, cap, t->n, t->has_other};
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].name != NULL) {
            nt.slots[table_find(&nt, t->slots[i].name, strlen(t->slots[i].name))] = t->slots[i];
        }
    }
    aj__free(t->slots);
    *t = nt;
    return 0;
}

/* Counts one dead letter under `name` (len bytes); `example` (may be NULL) is kept for the
 * newest one. Past AJ_DLQ_NAMES_MAX names, new names count as "(other)". */
static int table_count(dlq_table *t, const char *name, size_t len, const job_rec *r,
                       int64_t dead_ms, aj_slice example) {
    if (t->cap == 0 || (t->n + 1) * 10 > t->cap * 7) {
        int rc = table_grow(t);
        if (rc != 0) {
            return rc;
        }
    }
    size_t i = table_find(t, name, len);
    dlq_entry *e = &t->slots[i];
    if (e->name == NULL) {
        int is_other = len == strlen(DLQ_OTHER) && memcmp(name, DLQ_OTHER, len) == 0;
        if (!is_other && t->n - (size_t)t->has_other >= AJ_DLQ_NAMES_MAX) {
            return table_count(t, DLQ_OTHER, strlen(DLQ_OTHER), r, dead_ms, example);
        }
        char *copy = aj__memdup0(name, len);
        if (copy == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
        }
        e->name = copy;
        t->n++;
        t->has_other |= is_other;
    }
    int newer = e->count == 0 || dead_ms > e->ex_ms || (dead_ms == e->ex_ms && r->id > e->ex_id);
    if (newer && example.p != NULL) {
        size_t n = example.n;
        if (n > AJ_DLQ_EXAMPLE_MAX) {
            n = utf8_cut(example.p, AJ_DLQ_EXAMPLE_MAX);
        }
        char *copy = aj__memdup0(example.p, n);
        if (copy == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
        }
        aj__free(e->example);
        e->example = copy;
    }
    if (newer) {
        e->ex_id = r->id;
        e->ex_ms = dead_ms;
    }
    e->count++;
    return 0;
}

/* Largest count first, then name. */
static int entry_cmp(const void *a, const void *b) {
    const dlq_entry *x = *(const dlq_entry *const *)a, *y = *(const dlq_entry *const *)b;
    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

/* The table's entries sorted by entry_cmp (an array of pointers into it; aj__free it). */
static int table_sorted(const dlq_table *t, const dlq_entry ***out) {
    const dlq_entry **v = aj__malloc((t->n ? t->n : 1) * sizeof *v);
    if (v == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    size_t k = 0;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].name != NULL) {
            v[k++] = &t->slots[i];
        }
    }
    qsort(v, k, sizeof *v, entry_cmp);
    *out = v;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* The accumulator                                                                            */

struct dlq_acc {
    aj_dlq_analyze_opts opts;
    int64_t now_ms;
    uint64_t total;
    dlq_table queues, types, reasons, errors;
    uint64_t oldest_id, newest_id;
    int64_t oldest_ms, newest_ms;
    long double age_sum_ms;
    uint64_t redriven, redrives;
    uint32_t redrives_max;
    uint64_t redrives_max_id;
    uint64_t redrive_hist[AJ_DLQ_REDRIVE_BUCKETS];
    uint64_t stale;
    uint64_t repeated;
};

void aj_dlq_analyze_opts_init(aj_dlq_analyze_opts *o) {
    memset(o, 0, sizeof *o);
    o->stale_after_ms = 7 * AJ_DAY;
    o->redrive_threshold = 2;
    o->dominant_percent = 50;
    o->dominant_min = 5;
    o->top_errors = 10;
}

int dlq_opts_check(const aj_dlq_analyze_opts *o) {
    if (o->stale_after_ms < 0) {
        return aj__err(AJ_EINVAL, "the stale age must not be negative");
    }
    if (o->redrive_threshold < 1) {
        return aj__err(AJ_EINVAL, "the redrive threshold must be at least 1");
    }
    if (o->dominant_percent < 1 || o->dominant_percent > 100) {
        return aj__err(AJ_EINVAL, "the dominant share must be a percentage from 1 to 100");
    }
    if (o->top_errors > AJ_DLQ_NAMES_MAX) {
        return aj__err(AJ_EINVAL, "at most %d error groups can be listed", AJ_DLQ_NAMES_MAX);
    }
    return 0;
}

int dlq_acc_new(dlq_acc **out, const aj_dlq_analyze_opts *opts, int64_t now_ms) {
    aj_dlq_analyze_opts o;
    if (opts != NULL) {
        o = *opts;
    } else {
        aj_dlq_analyze_opts_init(&o);
    }
    int rc = dlq_opts_check(&o);
    if (rc != 0) {
        return rc;
    }
    dlq_acc *a = aj__calloc(1, sizeof *a);
    if (a == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    a->opts = o;
    a->now_ms = now_ms;
    *out = a;
    return 0;
}

void dlq_acc_free(dlq_acc *a) {
    if (a == NULL) {
        return;
    }
    table_free(&a->queues);
    table_free(&a->types);
    table_free(&a->reasons);
    table_free(&a->errors);
    aj__free(a);
}

int dlq_acc_add(dlq_acc *a, const job_rec *r) {
    if (r->state != AJ_STATE_DEAD) {
        return 0;
    }
    int64_t dead_ms = r->dead_ms > 0 ? r->dead_ms : r->updated_ms;
    const char *reason = aj_dead_reason_name(r->dead_reason);
    if (reason == NULL || reason[0] == '\0') {
        reason = "(none)";
    }
    char group[AJ_DLQ_GROUP_MAX + 1];
    size_t glen = group_of(r->error.p != NULL ? r->error.p : (const uint8_t *)"", r->error.n, group,
                           sizeof group);
    aj_slice none = {NULL, 0};
    aj_slice example = r->error.p != NULL ? r->error : aj__slice_str("");
    /* A table that fails (out of memory) leaves the counts of the others off by one at worst;
     * the caller abandons the analysis on any error. */
    int rc = table_count(&a->queues, (const char *)r->queue.p, r->queue.n, r, dead_ms, none);
    if (rc == 0) {
        rc = table_count(&a->types, (const char *)r->type.p, r->type.n, r, dead_ms, none);
    }
    if (rc == 0) {
        rc = table_count(&a->reasons, reason, strlen(reason), r, dead_ms, none);
    }
    if (rc == 0) {
        rc = table_count(&a->errors, group, glen, r, dead_ms, example);
    }
    if (rc != 0) {
        return rc;
    }
    a->total++;
    if (a->oldest_id == 0 || dead_ms < a->oldest_ms ||
        (dead_ms == a->oldest_ms && r->id < a->oldest_id)) {
        a->oldest_id = r->id;
        a->oldest_ms = dead_ms;
    }
    if (a->newest_id == 0 || dead_ms > a->newest_ms ||
        (dead_ms == a->newest_ms && r->id > a->newest_id)) {
        a->newest_id = r->id;
        a->newest_ms = dead_ms;
    }
    int64_t age = a->now_ms - dead_ms;
    if (age < 0) {
        age = 0;
    }
    a->age_sum_ms += (long double)age;
    if (age > a->opts.stale_after_ms) {
        a->stale++;
    }
    if (r->redrives > 0) {
        a->redriven++;
        a->redrives += r->redrives;
    }
    if (r->redrives > a->redrives_max ||
        (r->redrives == a->redrives_max && r->redrives > 0 && r->id < a->redrives_max_id)) {
        a->redrives_max = r->redrives;
        a->redrives_max_id = r->id;
    }
    a->redrive_hist[r->redrives < AJ_DLQ_REDRIVE_BUCKETS ? r->redrives
                                                         : AJ_DLQ_REDRIVE_BUCKETS - 1]++;
    if (r->redrives >= a->opts.redrive_threshold) {
        a->repeated++;
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Stats and report                                                                           */

static void counts_free(aj_dlq_count *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        aj__free(v[i].name);
    }
    aj__free(v);
}

static void stats_clear(aj_dlq_stats *s) {
    counts_free(s->by_queue, s->n_queues);
    counts_free(s->by_type, s->n_types);
    counts_free(s->by_reason, s->n_reasons);
    memset(s, 0, sizeof *s);
}

void aj_dlq_stats_free(aj_dlq_stats *s) {
    if (s != NULL) {
        stats_clear(s);
        aj__free(s);
    }
}

static int counts_from(const dlq_table *t, aj_dlq_count **out, size_t *n) {
    const dlq_entry **v = NULL;
    int rc = table_sorted(t, &v);
    if (rc != 0) {
        return rc;
    }
    aj_dlq_count *c = aj__calloc(t->n ? t->n : 1, sizeof *c);
    if (c == NULL) {
        aj__free(v);
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    size_t k = 0;
    for (; k < t->n; k++) {
        c[k].name = aj__strdup(v[k]->name);
        c[k].count = v[k]->count;
        if (c[k].name == NULL) {
            break;
        }
    }
    aj__free(v);
    if (k < t->n) {
        counts_free(c, k);
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    *out = c;
    *n = t->n;
    return 0;
}

static int stats_fill(const dlq_acc *a, aj_dlq_stats *s) {
    memset(s, 0, sizeof *s);
    s->total = a->total;
    int rc = counts_from(&a->queues, &s->by_queue, &s->n_queues);
    if (rc == 0) {
        rc = counts_from(&a->types, &s->by_type, &s->n_types);
    }
    if (rc == 0) {
        rc = counts_from(&a->reasons, &s->by_reason, &s->n_reasons);
    }
    if (rc != 0) {
        stats_clear(s);
    }
    return rc;
}

int dlq_acc_stats(const dlq_acc *a, aj_dlq_stats **out) {
    aj_dlq_stats *s = aj__calloc(1, sizeof *s);
    if (s == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    int rc = stats_fill(a, s);
    if (rc != 0) {
        aj__free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void aj_dlq_report_free(aj_dlq_report *r) {
    if (r == NULL) {
        return;
    }
    stats_clear(&r->stats);
    for (size_t i = 0; i < r->n_top_errors; i++) {
        aj__free(r->top_errors[i].group);
        aj__free(r->top_errors[i].example);
    }
    aj__free(r->top_errors);
    for (size_t i = 0; i < r->n_findings; i++) {
        aj__free(r->findings[i].subject);
        aj__free(r->findings[i].message);
        aj__free(r->findings[i].recommendation);
    }
    aj__free(r->findings);
    aj__free(r);
}

const char *aj_dlq_finding_name(aj_dlq_finding_kind kind) {
    switch (kind) {
    case AJ_DLQ_FINDING_STALE:
        return "stale";
    case AJ_DLQ_FINDING_REPEATED_REDRIVE:
        return "repeated_redrive";
    case AJ_DLQ_FINDING_DOMINANT_ERROR:
        return "dominant_error";
    case AJ_DLQ_FINDING_DOMINANT_TYPE:
        return "dominant_type";
    }
    return NULL;
}

/* A duration for people: whole seconds past a minute, whole minutes past a day. */
static void age_text(int64_t ms, char *buf, size_t size) {
    if (ms >= AJ_DAY) {
        ms -= ms % AJ_MINUTE;
    } else if (ms >= AJ_MINUTE) {
        ms -= ms % AJ_SECOND;
    }
    aj_duration_format(ms, buf, size);
}

/* The percentage count/total, rounded down. */
static unsigned share(uint64_t count, uint64_t total) {
    return total == 0 ? 0 : (unsigned)((long double)count * 100 / (long double)total);
}

/* 1 when count is at least `percent` of total and at least `min`. */
static int dominant(uint64_t count, uint64_t total, uint32_t percent, uint64_t min) {
    return total > 0 && count >= min && count > 0 &&
           (long double)count * 100 >= (long double)percent * (long double)total;
}

static char *textf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *textf(const char *fmt, ...) {
    char buf[DLQ_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return aj__strdup(buf);
}

/* Quotes s for a POSIX shell into out: 'text', with each ' written as '\''. */
static void sh_quote(const char *s, char *out, size_t size) {
    size_t k = 0;
    if (size < 3) {
        if (size > 0) {
            out[0] = '\0';
        }
        return;
    }
    out[k++] = '\'';
    for (; *s != '\0' && k + 6 < size; s++) {
        if (*s == '\'') {
            memcpy(out + k, "'\\''", 4);
            k += 4;
        } else {
            out[k++] = *s;
        }
    }
    out[k++] = '\'';
    out[k] = '\0';
}

/* The longest piece of a group without placeholders, trimmed, for an --error filter (which
 * matches a substring of the stored error). Empty when there is none worth quoting. */
static void literal_piece(const char *group, char *out, size_t size) {
    const char *best = NULL;
    size_t best_n = 0;
    const char *p = group;
    while (*p != '\0') {
        const char *hole = strstr(p, "<n>");
        const char *hole2 = strstr(p, "<id>");
        if (hole == NULL || (hole2 != NULL && hole2 < hole)) {
            hole = hole2;
        }
        const char *end = hole != NULL ? hole : p + strlen(p);
        const char *s = p;
        const char *e = end;
        while (s < e && *s == ' ') {
            s++;
        }
        while (e > s && e[-1] == ' ') {
            e--;
        }
        if ((size_t)(e - s) > best_n) {
            best = s;
            best_n = (size_t)(e - s);
        }
        if (hole == NULL) {
            break;
        }
        p = hole + (hole[1] == 'n' ? 3 : 4);
    }
    if (best_n < 3 || strcmp(group, DLQ_NO_ERROR) == 0) {
        out[0] = '\0';
        return;
    }
    if (best_n > DLQ_FILTER_TEXT_MAX) {
        best_n = utf8_cut((const unsigned char *)best, DLQ_FILTER_TEXT_MAX);
    }
    if (best_n >= size) {
        best_n = size - 1;
    }
    memcpy(out, best, best_n);
    out[best_n] = '\0';
}

/* The largest entry of a table that is not "(other)", or NULL. */
static const dlq_entry *table_top(const dlq_table *t) {
    const dlq_entry *top = NULL;
    for (size_t i = 0; i < t->cap; i++) {
        const dlq_entry *e = &t->slots[i];
        if (e->name == NULL || strcmp(e->name, DLQ_OTHER) == 0) {
            continue;
        }
        if (top == NULL || e->count > top->count ||
            (e->count == top->count && strcmp(e->name, top->name) < 0)) {
            top = e;
        }
    }
    return top;
}

typedef struct findings {
    aj_dlq_finding v[4];
    size_t n;
    int oom;
} findings;

static void add_finding(findings *f, aj_dlq_finding_kind kind, uint64_t count, uint64_t total,
                        const char *subject, int64_t threshold, uint64_t example_id, char *message,
                        char *recommendation) {
    aj_dlq_finding *x = &f->v[f->n++];
    x->kind = kind;
    x->count = count;
    x->total = total;
    x->subject = subject != NULL ? aj__strdup(subject) : NULL;
    x->threshold = threshold;
    x->example_id = example_id;
    x->message = message;
    x->recommendation = recommendation;
    if (message == NULL || recommendation == NULL || (subject != NULL && x->subject == NULL)) {
        f->oom = 1;
    }
}

static void find_all(const dlq_acc *a, findings *f) {
    const aj_dlq_analyze_opts *o = &a->opts;
    uint64_t total = a->total;
    char dur[64], q[2 * DLQ_FILTER_TEXT_MAX + 16], piece[DLQ_FILTER_TEXT_MAX + 1];
    if (a->stale > 0) {
        char oldest[64];
        aj_duration_format(o->stale_after_ms, dur, sizeof dur);
        age_text(a->now_ms - a->oldest_ms, oldest, sizeof oldest);
        add_finding(
            f, AJ_DLQ_FINDING_STALE, a->stale, total, NULL, o->stale_after_ms, a->oldest_id,
            textf("%llu of %llu dead letters are older than %s (the oldest, job %llu, died %s "
                  "ago)",
                  (unsigned long long)a->stale, (unsigned long long)total, dur,
                  (unsigned long long)a->oldest_id, oldest),
            textf("Dead letters are kept until someone decides: redrive them if their cause is "
                  "fixed (aj dlq redrive --all --older-than %s) or purge them (aj dlq purge "
                  "--all --older-than %s).",
                  dur, dur));
    }
    if (a->repeated > 0) {
        add_finding(
            f, AJ_DLQ_FINDING_REPEATED_REDRIVE, a->repeated, total, NULL, o->redrive_threshold,
            a->redrives_max_id,
            textf("%llu of %llu dead letters died again after %u or more redrives (job %llu: "
                  "%u redrives)",
                  (unsigned long long)a->repeated, (unsigned long long)total, o->redrive_threshold,
                  (unsigned long long)a->redrives_max_id, a->redrives_max),
            textf("Redriving them again will not help: find out why they fail (aj dlq show "
                  "%llu), fix the handler or the data, then redrive once, or purge them.",
                  (unsigned long long)a->redrives_max_id));
    }
    const dlq_entry *e = table_top(&a->errors);
    if (e != NULL && dominant(e->count, total, o->dominant_percent, o->dominant_min)) {
        literal_piece(e->name, piece, sizeof piece);
        char *rec;
        if (piece[0] != '\0') {
            sh_quote(piece, q, sizeof q);
            rec = textf("Fix this one cause first. See them with aj dlq ls --error %s; once it "
                        "is fixed, aj dlq redrive --all --error %s runs them again.",
                        q, q);
        } else {
            rec = textf("Fix this one cause first (an example: aj dlq show %llu), then redrive "
                        "the jobs it killed.",
                        (unsigned long long)e->ex_id);
        }
        add_finding(f, AJ_DLQ_FINDING_DOMINANT_ERROR, e->count, total, e->name, o->dominant_percent,
                    e->ex_id,
                    textf("%llu of %llu dead letters (%u%%) failed with the same error: %s",
                          (unsigned long long)e->count, (unsigned long long)total,
                          share(e->count, total), e->name),
                    rec);
    }
    e = table_top(&a->types);
    if (e != NULL && dominant(e->count, total, o->dominant_percent, o->dominant_min)) {
        add_finding(f, AJ_DLQ_FINDING_DOMINANT_TYPE, e->count, total, e->name, o->dominant_percent,
                    e->ex_id,
                    textf("%llu of %llu dead letters (%u%%) are jobs of type %s",
                          (unsigned long long)e->count, (unsigned long long)total,
                          share(e->count, total), e->name),
                    textf("Look at the handler of type %s and the jobs it is given: aj dlq ls "
                          "--type %s.",
                          e->name, e->name));
    }
}

int dlq_acc_report(const dlq_acc *a, aj_dlq_report **out) {
    aj_dlq_report *r = aj__calloc(1, sizeof *r);
    if (r == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
    }
    int rc = stats_fill(a, &r->stats);
    if (rc != 0) {
        aj__free(r);
        return rc;
    }
    r->now_ms = a->now_ms;
    r->oldest_id = a->oldest_id;
    r->oldest_ms = a->oldest_ms;
    r->newest_id = a->newest_id;
    r->newest_ms = a->newest_ms;
    r->average_age_ms = a->total > 0 ? (int64_t)(a->age_sum_ms / (long double)a->total) : 0;
    r->redriven = a->redriven;
    r->redrives = a->redrives;
    r->redrives_max = a->redrives_max;
    memcpy(r->redrive_hist, a->redrive_hist, sizeof r->redrive_hist);
    r->error_groups = a->errors.n;

    const dlq_entry **v = NULL;
    rc = table_sorted(&a->errors, &v);
    size_t top = a->opts.top_errors < a->errors.n ? a->opts.top_errors : a->errors.n;
    if (rc == 0 && top > 0) {
        r->top_errors = aj__calloc(top, sizeof *r->top_errors);
        if (r->top_errors == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
        }
    }
    for (size_t i = 0; rc == 0 && i < top; i++) {
        aj_dlq_error_count *c = &r->top_errors[i];
        r->n_top_errors = i + 1;
        c->group = aj__strdup(v[i]->name);
        c->example = aj__strdup(v[i]->example != NULL ? v[i]->example : "");
        c->example_id = v[i]->ex_id;
        c->count = v[i]->count;
        if (c->group == NULL || c->example == NULL) {
            rc = aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
        }
    }
    aj__free(v);

    findings f;
    memset(&f, 0, sizeof f);
    if (rc == 0) {
        find_all(a, &f);
        if (f.n > 0) {
            r->findings = aj__calloc(f.n, sizeof *r->findings);
            if (r->findings != NULL) {
                memcpy(r->findings, f.v, f.n * sizeof f.v[0]);
                r->n_findings = f.n;
            }
        }
        if (f.n > 0 && r->findings == NULL) {
            for (size_t i = 0; i < f.n; i++) {
                aj__free(f.v[i].subject);
                aj__free(f.v[i].message);
                aj__free(f.v[i].recommendation);
            }
            f.oom = 1;
        }
        if (f.oom) {
            rc = aj__err(AJ_ENOMEM, "out of memory analysing dead letters");
        }
    }
    if (rc != 0) {
        aj_dlq_report_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Over a transaction                                                                         */

static int scan_cb(void *ud, const job_rec *rec) {
    int rc = dlq_acc_add(ud, rec);
    return rc < 0 ? rc : 0;
}

int dlq_scan(kv_txn *t, const job_env *env, const aj_job_filter *filter, dlq_acc *a) {
    aj_job_filter f;
    if (filter != NULL) {
        f = *filter;
    } else {
        memset(&f, 0, sizeof f);
    }
    f.state = AJ_STATE_DEAD;
    f.after_id = 0;
    f.limit = 0;
    return job_list(t, env, &f, scan_cb, a);
}
