/*
 * progress.c — a job's progress state: merge, local operations, the pipe's line protocol, the
 * encoding and the 'P' record (see progress.h for the lattice and why truncation keeps it one).
 *
 * Invariants: every state handled here is canonical — maps sorted by key with each key once,
 * counts within their named limits, texts within their byte limits — and every function that
 * changes a state leaves it canonical. Merge and the operations are pure (no clock, no store, no
 * allocation); only progress_read/merge_into_store/delete touch the transaction they are given.
 * Part of core/: depends on store/kv.h and util/ only.
 */
#include "core/progress.h"

#include <string.h>

#include "core/keys.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* Orders                                                                                     */

/* Names compare by bytes, a prefix first. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : (alen > blen);
}

/* Last-writer-wins order: stamp, then writer, then text, so that equal stamps of two writers
 * (or forged states in tests) still have one winner wherever they meet. */
static int lww_cmp(const progress_lww *a, const progress_lww *b) {
    int c = aj__hlc_cmp(a->ts, b->ts);
    if (c != 0) {
        return c;
    }
    if (a->writer != b->writer) {
        return a->writer < b->writer ? -1 : 1;
    }
    return name_cmp(a->text, a->len, b->text, b->len);
}

/* Completed steps rank by completion stamp, then name: the first to complete are kept. */
static int done_rank_cmp(const progress_done *a, const progress_done *b) {
    int c = aj__hlc_cmp(a->ts, b->ts);
    return c != 0 ? c : name_cmp(a->name, a->len, b->name, b->len);
}

static aj_hlc_ts ts_max(aj_hlc_ts a, aj_hlc_ts b) {
    return aj__hlc_cmp(a, b) >= 0 ? a : b;
}

/* ----------------------------------------------------------------------------------------- */
/* Merge                                                                                      */

void progress_init(progress_state *s) {
    memset(s, 0, sizeof *s);
}

static void lww_merge(progress_lww *into, const progress_lww *from) {
    if (lww_cmp(from, into) > 0) {
        into->ts = from->ts;
        into->writer = from->writer;
        into->len = from->len;
        memcpy(into->text, from->text, from->len);
        into->text[from->len] = '\0';
    }
}

/* Adds (name, ts) to the completed steps: the earliest stamp of a name wins; when full, the
 * entry ranking last by (stamp, name) makes way for a better one. */
static void done_add(progress_state *s, const char *name, size_t len, aj_hlc_ts ts) {
    progress_done d;
    d.ts = ts;
    d.len = (uint8_t)len;
    memcpy(d.name, name, len);
    d.name[len] = '\0';
    uint32_t pos = 0;
    while (pos < s->n_done && name_cmp(s->done[pos].name, s->done[pos].len, name, len) < 0) {
        pos++;
    }
    if (pos < s->n_done && name_cmp(s->done[pos].name, s->done[pos].len, name, len) == 0) {
        if (aj__hlc_cmp(ts, s->done[pos].ts) < 0) {
            s->done[pos].ts = ts;
        }
        return;
    }
    if (s->n_done == AJ_PROGRESS_STEPS_MAX) {
        uint32_t worst = 0;
        for (uint32_t i = 1; i < s->n_done; i++) {
            if (done_rank_cmp(&s->done[i], &s->done[worst]) > 0) {
                worst = i;
            }
        }
        if (done_rank_cmp(&d, &s->done[worst]) >= 0) {
            return;
        }
        memmove(&s->done[worst], &s->done[worst + 1], (s->n_done - worst - 1) * sizeof s->done[0]);
        s->n_done--;
        if (worst < pos) {
            pos--;
        }
    }
    memmove(&s->done[pos + 1], &s->done[pos], (s->n_done - pos) * sizeof s->done[0]);
    s->done[pos] = d;
    s->n_done++;
}

/* Sets the writer's count to at least `value`; when full, the smallest writer (the oldest
 * attempt) makes way for a larger one. */
static void gc_raise(progress_gcounter *g, uint64_t writer, uint64_t value) {
    uint32_t pos = 0;
    while (pos < g->n && g->w[pos].writer < writer) {
        pos++;
    }
    if (pos < g->n && g->w[pos].writer == writer) {
        if (value > g->w[pos].value) {
            g->w[pos].value = value;
        }
        return;
    }
    if (g->n == PROGRESS_WRITERS_MAX) {
        if (pos == 0) {
            return; /* older than every writer kept */
        }
        memmove(&g->w[0], &g->w[1], (size_t)(pos - 1) * sizeof g->w[0]);
        pos--;
        g->n--;
    } else {
        memmove(&g->w[pos + 1], &g->w[pos], (g->n - pos) * sizeof g->w[0]);
    }
    g->w[pos].writer = writer;
    g->w[pos].value = value;
    g->n++;
}

static uint64_t gc_get(const progress_gcounter *g, uint64_t writer) {
    for (uint32_t i = 0; i < g->n; i++) {
        if (g->w[i].writer == writer) {
            return g->w[i].value;
        }
    }
    return 0;
}

static void gc_merge(progress_gcounter *into, const progress_gcounter *from) {
    for (uint32_t i = 0; i < from->n; i++) {
        gc_raise(into, from->w[i].writer, from->w[i].value);
    }
}

uint64_t progress_gcounter_value(const progress_gcounter *g) {
    uint64_t sum = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        sum = g->w[i].value > UINT64_MAX - sum ? UINT64_MAX : sum + g->w[i].value;
    }
    return sum;
}

/* The counter named `name`, inserted empty if absent; NULL when it would fall outside the
 * AJ_PROGRESS_COUNTERS_MAX smallest names (or, with `no_evict`, when the map is full). */
static progress_counter *counter_slot(progress_state *s, const char *name, size_t len,
                                      int no_evict) {
    uint32_t pos = 0;
    while (pos < s->n_counters &&
           name_cmp(s->counters[pos].name, s->counters[pos].len, name, len) < 0) {
        pos++;
    }
    if (pos < s->n_counters &&
        name_cmp(s->counters[pos].name, s->counters[pos].len, name, len) == 0) {
        return &s->counters[pos];
    }
    if (s->n_counters == AJ_PROGRESS_COUNTERS_MAX) {
        if (no_evict || pos == s->n_counters) {
            return NULL;
        }
        s->n_counters--; /* the largest name goes */
    }
    memmove(&s->counters[pos + 1], &s->counters[pos],
            (s->n_counters - pos) * sizeof s->counters[0]);
    progress_counter *c = &s->counters[pos];
    memset(c, 0, sizeof *c);
    c->len = (uint8_t)len;
    memcpy(c->name, name, len);
    s->n_counters++;
    return c;
}

void progress_merge(progress_state *into, const progress_state *from) {
    if (from->has_percent) {
        into->has_percent = 1;
        if (from->percent > into->percent) {
            into->percent = from->percent;
        }
    }
    into->updated = ts_max(into->updated, from->updated);
    lww_merge(&into->message, &from->message);
    lww_merge(&into->step, &from->step);
    for (uint32_t i = 0; i < from->n_done; i++) {
        done_add(into, from->done[i].name, from->done[i].len, from->done[i].ts);
    }
    for (uint32_t i = 0; i < from->n_counters; i++) {
        const progress_counter *fc = &from->counters[i];
        progress_counter *c = counter_slot(into, fc->name, fc->len, 0);
        if (c != NULL) {
            gc_merge(&c->g, &fc->g);
        }
    }
    gc_merge(&into->malformed, &from->malformed);
}

static int lww_equal(const progress_lww *a, const progress_lww *b) {
    return lww_cmp(a, b) == 0;
}

static int gc_equal(const progress_gcounter *a, const progress_gcounter *b) {
    if (a->n != b->n) {
        return 0;
    }
    for (uint32_t i = 0; i < a->n; i++) {
        if (a->w[i].writer != b->w[i].writer || a->w[i].value != b->w[i].value) {
            return 0;
        }
    }
    return 1;
}

int progress_equal(const progress_state *a, const progress_state *b) {
    if (a->has_percent != b->has_percent || a->percent != b->percent ||
        aj__hlc_cmp(a->updated, b->updated) != 0 || !lww_equal(&a->message, &b->message) ||
        !lww_equal(&a->step, &b->step) || a->n_done != b->n_done ||
        a->n_counters != b->n_counters || !gc_equal(&a->malformed, &b->malformed)) {
        return 0;
    }
    for (uint32_t i = 0; i < a->n_done; i++) {
        if (done_rank_cmp(&a->done[i], &b->done[i]) != 0) {
            return 0;
        }
    }
    for (uint32_t i = 0; i < a->n_counters; i++) {
        const progress_counter *x = &a->counters[i], *y = &b->counters[i];
        if (name_cmp(x->name, x->len, y->name, y->len) != 0 || !gc_equal(&x->g, &y->g)) {
            return 0;
        }
    }
    return 1;
}

/* ----------------------------------------------------------------------------------------- */
/* Local operations                                                                           */

/* 0 when text is UTF-8 without control characters (tab allowed when allow_tab); else the
 * problem's description. */
static const char *text_problem(const char *text, size_t len, int allow_tab) {
    const uint8_t *p = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        size_t k = aj_utf8_seq(p + i, len - i);
        if (k == 0) {
            return "is not valid UTF-8";
        }
        if (k == 1 && (p[i] < 0x20 || p[i] == 0x7f) && !(allow_tab && p[i] == '\t')) {
            return "contains a control character";
        }
        i += k;
    }
    return NULL;
}

int progress_name_check(const char *what, const char *name, size_t len, int is_counter) {
    if (name == NULL || len == 0) {
        return aj__err(AJ_EINVAL, "%s name is empty", what);
    }
    if (len > AJ_PROGRESS_NAME_MAX) {
        return aj__err(AJ_EINVAL, "%s name is %zu bytes, over the %d-byte limit", what, len,
                       AJ_PROGRESS_NAME_MAX);
    }
    const char *problem = text_problem(name, len, 0);
    if (problem != NULL) {
        return aj__err(AJ_EINVAL, "%s name %s", what, problem);
    }
    if (is_counter && memchr(name, ' ', len) != NULL) {
        return aj__err(AJ_EINVAL, "%s name contains a space", what);
    }
    return 0;
}

int progress_message_check(const char *text, size_t len, size_t *out_len) {
    const char *problem = text_problem(text, len, 1);
    if (problem != NULL) {
        return aj__err(AJ_EINVAL, "progress message %s", problem);
    }
    if (len > AJ_PROGRESS_MESSAGE_MAX) {
        len = AJ_PROGRESS_MESSAGE_MAX;
        while (len > 0 && ((uint8_t)text[len] & 0xC0) == 0x80) {
            len--; /* text[len] continues a character: cut before that character */
        }
    }
    *out_len = len;
    return 0;
}

static void touch(progress_state *s, aj_hlc_ts ts) {
    s->updated = ts_max(s->updated, ts);
}

void progress_op_percent(progress_state *s, aj_hlc_ts ts, uint32_t percent) {
    if (percent > PROGRESS_PERCENT_MAX) {
        percent = PROGRESS_PERCENT_MAX;
    }
    s->has_percent = 1;
    if (percent > s->percent) {
        s->percent = percent;
    }
    touch(s, ts);
}

static void lww_set(progress_lww *r, aj_hlc_ts ts, uint64_t writer, const char *text, size_t len) {
    progress_lww v;
    v.ts = ts;
    v.writer = writer;
    v.len = (uint16_t)len;
    memcpy(v.text, text, len);
    v.text[len] = '\0';
    lww_merge(r, &v);
}

void progress_op_message(progress_state *s, aj_hlc_ts ts, uint64_t writer, const char *text,
                         size_t len) {
    lww_set(&s->message, ts, writer, text, len);
    touch(s, ts);
}

void progress_op_step(progress_state *s, aj_hlc_ts ts, uint64_t writer, const char *name,
                      size_t len) {
    if (s->step.len > 0 && s->step.writer == writer &&
        name_cmp(s->step.text, s->step.len, name, len) != 0) {
        done_add(s, s->step.text, s->step.len, ts);
    }
    lww_set(&s->step, ts, writer, name, len);
    touch(s, ts);
}

int progress_op_count(progress_state *s, aj_hlc_ts ts, uint64_t writer, const char *name,
                      size_t len, uint64_t n) {
    progress_counter *c = counter_slot(s, name, len, 1);
    if (c == NULL) {
        return aj__err(AJ_ETOOBIG, "a job reports at most %d counters", AJ_PROGRESS_COUNTERS_MAX);
    }
    uint64_t v = gc_get(&c->g, writer);
    gc_raise(&c->g, writer, n > UINT64_MAX - v ? UINT64_MAX : v + n);
    touch(s, ts);
    return 0;
}

void progress_op_malformed(progress_state *s, aj_hlc_ts ts, uint64_t writer) {
    uint64_t v = gc_get(&s->malformed, writer);
    gc_raise(&s->malformed, writer, v == UINT64_MAX ? v : v + 1);
    touch(s, ts);
}

void progress_op_complete(progress_state *s, aj_hlc_ts ts, uint64_t writer) {
    if (s->step.len > 0 && s->step.writer == writer) {
        done_add(s, s->step.text, s->step.len, ts);
        touch(s, ts);
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Line protocol                                                                              */

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* The next word of [*pos, len): its start and length; *pos moves past it and the blanks after
 * it. */
static size_t next_word(const char *line, size_t len, size_t *pos, const char **word) {
    size_t i = *pos;
    size_t start = i;
    while (i < len && !is_blank(line[i])) {
        i++;
    }
    *word = line + start;
    size_t n = i - start;
    while (i < len && is_blank(line[i])) {
        i++;
    }
    *pos = i;
    return n;
}

/* "0".."100" with at most two decimals, in hundredths. */
static int parse_percent(const char *w, size_t n, uint32_t *out) {
    uint32_t whole = 0;
    size_t i = 0;
    while (i < n && w[i] >= '0' && w[i] <= '9' && i < 3) {
        whole = whole * 10 + (uint32_t)(w[i] - '0');
        i++;
    }
    if (i == 0) {
        return aj__err(AJ_EINVAL, "progress needs a percentage from 0 to 100 first");
    }
    uint32_t frac = 0;
    if (i < n && w[i] == '.') {
        size_t digits = 0;
        i++;
        while (i < n && w[i] >= '0' && w[i] <= '9' && digits < 2) {
            frac = frac * 10 + (uint32_t)(w[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0) {
            return aj__err(AJ_EINVAL, "percentage has a '.' without decimals");
        }
        if (digits == 1) {
            frac *= 10;
        }
    }
    if (i != n) {
        return aj__err(AJ_EINVAL,
                       "percentage must be a decimal from 0 to 100 with at most two decimals");
    }
    uint32_t v = whole * PROGRESS_PERCENT_SCALE + frac;
    if (v > PROGRESS_PERCENT_MAX) {
        return aj__err(AJ_EINVAL, "percentage is over 100");
    }
    *out = v;
    return 0;
}

static int parse_count(const char *w, size_t n, uint64_t *out) {
    if (n == 0 || n > 20) {
        return aj__err(AJ_EINVAL, "count needs a whole number to add");
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] < '0' || w[i] > '9') {
            return aj__err(AJ_EINVAL, "count must be a whole number");
        }
        uint64_t d = (uint64_t)(w[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return aj__err(AJ_EINVAL, "count is too large");
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int progress_line_parse(const char *line, size_t len, progress_line *out) {
    memset(out, 0, sizeof *out);
    if (len > AJ_PROGRESS_LINE_MAX) {
        return aj__err(AJ_EINVAL, "progress line is over %d bytes", AJ_PROGRESS_LINE_MAX);
    }
    while (len > 0 && (is_blank(line[len - 1]) || line[len - 1] == '\r')) {
        len--;
    }
    size_t pos = 0;
    while (pos < len && is_blank(line[pos])) {
        pos++;
    }
    if (pos == len) {
        out->kind = PROGRESS_LINE_BLANK;
        return 0;
    }
    const char *kw;
    size_t kwn = next_word(line, len, &pos, &kw);
    int rc;
    if (kwn == 8 && memcmp(kw, "progress", 8) == 0) {
        const char *w;
        size_t wn = next_word(line, len, &pos, &w);
        if ((rc = parse_percent(w, wn, &out->percent)) != 0) {
            return rc;
        }
        if (pos < len) {
            size_t keep;
            if ((rc = progress_message_check(line + pos, len - pos, &keep)) != 0) {
                return rc;
            }
            out->text = line + pos;
            out->text_len = keep;
        }
        out->kind = PROGRESS_LINE_PERCENT;
        return 0;
    }
    if (kwn == 4 && memcmp(kw, "step", 4) == 0) {
        if ((rc = progress_name_check("step", line + pos, len - pos, 0)) != 0) {
            return rc;
        }
        out->kind = PROGRESS_LINE_STEP;
        out->text = line + pos;
        out->text_len = len - pos;
        return 0;
    }
    if (kwn == 5 && memcmp(kw, "count", 5) == 0) {
        const char *name;
        size_t nn = next_word(line, len, &pos, &name);
        const char *num;
        size_t numn = next_word(line, len, &pos, &num);
        if (pos != len) {
            return aj__err(AJ_EINVAL, "count takes a name and a number, nothing more");
        }
        if ((rc = progress_name_check("counter", name, nn, 1)) != 0 ||
            (rc = parse_count(num, numn, &out->n)) != 0) {
            return rc;
        }
        out->kind = PROGRESS_LINE_COUNT;
        out->text = name;
        out->text_len = nn;
        return 0;
    }
    return aj__err(AJ_EINVAL, "a progress line starts with progress, step or count");
}

/* ----------------------------------------------------------------------------------------- */
/* Encoding                                                                                   */

static void put_ts(aj_buf *b, aj_hlc_ts ts) {
    aj__buf_add_varint(b, (uint64_t)ts.ms);
    aj__buf_add_varint(b, ts.logical);
}

static void put_lww(aj_buf *b, const progress_lww *r) {
    put_ts(b, r->ts);
    aj__buf_add_varint(b, r->writer);
    aj__buf_add_bytes(b, r->text, r->len);
}

static void put_gc(aj_buf *b, const progress_gcounter *g) {
    aj__buf_add_varint(b, g->n);
    for (uint32_t i = 0; i < g->n; i++) {
        aj__buf_add_varint(b, g->w[i].writer);
        aj__buf_add_varint(b, g->w[i].value);
    }
}

int progress_encode(const progress_state *s, aj_buf *b) {
    aj__buf_add_u8(b, PROGRESS_FORMAT);
    aj__buf_add_varint(b, s->has_percent);
    aj__buf_add_varint(b, s->percent);
    put_ts(b, s->updated);
    put_lww(b, &s->message);
    put_lww(b, &s->step);
    aj__buf_add_varint(b, s->n_done);
    for (uint32_t i = 0; i < s->n_done; i++) {
        aj__buf_add_bytes(b, s->done[i].name, s->done[i].len);
        put_ts(b, s->done[i].ts);
    }
    aj__buf_add_varint(b, s->n_counters);
    for (uint32_t i = 0; i < s->n_counters; i++) {
        aj__buf_add_bytes(b, s->counters[i].name, s->counters[i].len);
        put_gc(b, &s->counters[i].g);
    }
    put_gc(b, &s->malformed);
    return b->oom ? aj__err(AJ_ENOMEM, "out of memory encoding progress") : 0;
}

/* Decoding fails soft: each reader sets `bad` and the caller checks once at the end. */
typedef struct dec {
    aj_rd r;
    int bad;
} dec;

static uint64_t get_num(dec *d, uint64_t max) {
    uint64_t v = aj__rd_varint(&d->r);
    if (v > max) {
        d->bad = 1;
    }
    return v;
}

static aj_hlc_ts get_ts(dec *d) {
    aj_hlc_ts ts;
    ts.ms = (int64_t)get_num(d, INT64_MAX);
    ts.logical = (uint32_t)get_num(d, UINT32_MAX);
    return ts;
}

/* A byte string of 0..max bytes (min..max) copied into out, NUL-terminated. */
static size_t get_text(dec *d, char *out, size_t min, size_t max) {
    size_t n = 0;
    const uint8_t *p = aj__rd_bytes(&d->r, &n);
    if (d->r.bad || p == NULL || n < min || n > max) {
        d->bad = 1;
        out[0] = '\0';
        return 0;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return n;
}

static void get_lww(dec *d, progress_lww *r, size_t max) {
    r->ts = get_ts(d);
    r->writer = get_num(d, UINT64_MAX);
    r->len = (uint16_t)get_text(d, r->text, 0, max);
}

static void get_gc(dec *d, progress_gcounter *g) {
    g->n = (uint32_t)get_num(d, PROGRESS_WRITERS_MAX);
    for (uint32_t i = 0; i < g->n && !d->bad; i++) {
        g->w[i].writer = get_num(d, UINT64_MAX);
        g->w[i].value = get_num(d, UINT64_MAX);
        if (i > 0 && g->w[i].writer <= g->w[i - 1].writer) {
            d->bad = 1; /* not canonical */
        }
    }
}

int progress_decode(const uint8_t *p, size_t n, progress_state *s) {
    progress_init(s);
    dec d = {{0}, 0};
    aj__rd_init(&d.r, p, n);
    uint8_t format = aj__rd_u8(&d.r);
    if (!d.r.bad && format > PROGRESS_FORMAT) {
        return aj__err(AJ_EFORMAT, "progress record format %u is newer than this aj supports (%d)",
                       format, PROGRESS_FORMAT);
    }
    if (format != PROGRESS_FORMAT) {
        d.bad = 1;
    }
    s->has_percent = (uint8_t)get_num(&d, 1);
    s->percent = (uint32_t)get_num(&d, PROGRESS_PERCENT_MAX);
    s->updated = get_ts(&d);
    get_lww(&d, &s->message, AJ_PROGRESS_MESSAGE_MAX);
    get_lww(&d, &s->step, AJ_PROGRESS_NAME_MAX);
    s->n_done = (uint32_t)get_num(&d, AJ_PROGRESS_STEPS_MAX);
    for (uint32_t i = 0; i < s->n_done && !d.bad; i++) {
        progress_done *x = &s->done[i];
        x->len = (uint8_t)get_text(&d, x->name, 1, AJ_PROGRESS_NAME_MAX);
        x->ts = get_ts(&d);
        if (i > 0 && name_cmp(s->done[i - 1].name, s->done[i - 1].len, x->name, x->len) >= 0) {
            d.bad = 1;
        }
    }
    s->n_counters = d.bad ? 0 : (uint32_t)get_num(&d, AJ_PROGRESS_COUNTERS_MAX);
    for (uint32_t i = 0; i < s->n_counters && !d.bad; i++) {
        progress_counter *c = &s->counters[i];
        c->len = (uint8_t)get_text(&d, c->name, 1, AJ_PROGRESS_NAME_MAX);
        get_gc(&d, &c->g);
        if (i > 0 &&
            name_cmp(s->counters[i - 1].name, s->counters[i - 1].len, c->name, c->len) >= 0) {
            d.bad = 1;
        }
    }
    if (!d.bad) {
        get_gc(&d, &s->malformed);
    }
    if (d.bad || d.r.bad || d.r.off != d.r.len) {
        progress_init(s);
        return aj__err(AJ_ECORRUPT, "progress record is corrupt");
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Storage                                                                                    */

static void progress_key(akey *k, uint64_t id) {
    key_prefix(k, KEY_PROGRESS);
    aj__put_u64be(k->b + 1, id);
    k->n = 9;
}

int progress_read(kv_txn *t, uint64_t id, progress_state *out, int *found) {
    akey k;
    progress_key(&k, id);
    const uint8_t *v;
    size_t n;
    int rc = kv_get(t, k.b, k.n, &v, &n);
    if (rc == AJ_ENOTFOUND) {
        progress_init(out);
        *found = 0;
        return 0;
    }
    if (rc == 0) {
        rc = progress_decode(v, n, out);
    }
    if (rc != 0) {
        return aj__err_wrap(rc, "job %llu", (unsigned long long)id);
    }
    *found = 1;
    return 0;
}

int progress_merge_into_store(kv_txn *t, uint64_t id, const progress_state *delta,
                              progress_state *scratch) {
    int found;
    int rc = progress_read(t, id, scratch, &found);
    if (rc != 0) {
        return rc;
    }
    /* Writing is skipped when the merge changes nothing (a re-sent state). */
    int changed = !found;
    if (found) {
        progress_state *before = aj__malloc(sizeof *before);
        if (before == NULL) {
            return aj__err(AJ_ENOMEM, "out of memory merging progress");
        }
        *before = *scratch;
        progress_merge(scratch, delta);
        changed = !progress_equal(before, scratch);
        aj__free(before);
    } else {
        progress_merge(scratch, delta);
    }
    if (!changed) {
        return 0;
    }
    aj_buf b = AJ_BUF_INIT;
    rc = progress_encode(scratch, &b);
    if (rc == 0) {
        akey k;
        progress_key(&k, id);
        rc = kv_put(t, k.b, k.n, b.p, b.len);
    }
    aj__buf_free(&b);
    return rc;
}

int progress_delete(kv_txn *t, uint64_t id) {
    akey k;
    progress_key(&k, id);
    return kv_del(t, k.b, k.n);
}

/* ----------------------------------------------------------------------------------------- */
/* Public copy                                                                                */

void aj_progress_free(aj_progress *p) {
    if (p == NULL) {
        return;
    }
    aj__free(p->message);
    aj__free(p->step);
    for (size_t i = 0; i < p->n_steps_done; i++) {
        aj__free(p->steps_done[i]);
    }
    aj__free(p->steps_done);
    for (size_t i = 0; i < p->n_counters; i++) {
        aj__free(p->counters[i].name);
    }
    aj__free(p->counters);
    aj__free(p);
}

aj_progress *progress_to_public(const progress_state *s, uint64_t job_id) {
    aj_progress *p = aj__calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    p->job_id = job_id;
    p->reported = s->updated.ms != 0 || s->updated.logical != 0;
    p->has_percent = s->has_percent;
    p->percent = (double)s->percent / PROGRESS_PERCENT_SCALE;
    p->malformed = progress_gcounter_value(&s->malformed);
    p->updated_ms = s->updated.ms;
    int ok = 1;
    if (s->message.len > 0) {
        p->message = aj__memdup0(s->message.text, s->message.len);
        ok = ok && p->message != NULL;
    }
    if (s->step.len > 0) {
        p->step = aj__memdup0(s->step.text, s->step.len);
        ok = ok && p->step != NULL;
    }
    if (ok && s->n_done > 0) {
        p->steps_done = aj__calloc(s->n_done, sizeof *p->steps_done);
        ok = p->steps_done != NULL;
        /* Completion order: repeatedly take the best-ranked step not yet taken (n <= 64). */
        const progress_done *prev = NULL;
        for (uint32_t k = 0; ok && k < s->n_done; k++) {
            const progress_done *best = NULL;
            for (uint32_t i = 0; i < s->n_done; i++) {
                const progress_done *d = &s->done[i];
                if ((prev == NULL || done_rank_cmp(d, prev) > 0) &&
                    (best == NULL || done_rank_cmp(d, best) < 0)) {
                    best = d;
                }
            }
            p->steps_done[k] = aj__memdup0(best->name, best->len);
            ok = p->steps_done[k] != NULL;
            p->n_steps_done = k + 1;
            prev = best;
        }
    }
    if (ok && s->n_counters > 0) {
        p->counters = aj__calloc(s->n_counters, sizeof *p->counters);
        ok = p->counters != NULL;
        for (uint32_t i = 0; ok && i < s->n_counters; i++) {
            p->counters[i].name = aj__memdup0(s->counters[i].name, s->counters[i].len);
            p->counters[i].value = progress_gcounter_value(&s->counters[i].g);
            ok = p->counters[i].name != NULL;
            p->n_counters = i + 1;
        }
    }
    if (!ok) {
        aj_progress_free(p);
        return NULL;
    }
    return p;
}
