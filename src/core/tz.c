/*
 * tz.c — time zones from TZif files (see tz.h): the file parser, the POSIX TZ footer rule, and
 * the two conversions the scheduler needs (instant to local time, and local time to the first
 * instant that reaches it).
 *
 * Invariants: a loaded zone's transition instants strictly increase and every offset lies within
 * ±TZ_OFFSET_MAX_S, so local times computed from in-range instants never overflow. The parser
 * checks every count and length against the bytes it was given before reading, so a damaged or
 * hostile file gives AJ_EINVAL and never a crash (tests/fuzz/fuzz_cron.c feeds it garbage).
 *
 * Only the version 2+ data block (64-bit times) is used; the version 1 block is skipped. Leap
 * second records (the "right/" zones) are refused: schedules run on POSIX time.
 *
 * Core reads no files: the runtime reads zone files and caches the parsed zones
 * (src/runtime/tz_cache.c), and hands them to core through job_env.zone.
 */
#include "core/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/civil.h"
#include "util/err.h"
#include "util/mem.h"

/* Bytes of a TZif header: magic, version, 15 reserved, six 4-byte counts. */
#define TZIF_HEADER 44
/* Bytes of one local time type record: offset, is-DST, abbreviation index. */
#define TZIF_TYPE_LEN 6
/* Hours a POSIX rule time may reach in either direction (RFC 8536 allows -167..167). */
#define TZ_RULE_HOURS_MAX 167
/* Hours a POSIX offset may reach (24:59:59 in practice; TZif caps offsets at 25:59:59). */
#define TZ_POSIX_OFFSET_HOURS_MAX 25
/* Years on either side of an instant whose rule transitions are considered. */
#define TZ_RULE_YEARS 2
/* Seconds in a day. */
#define TZ_DAY_S 86400
/* Steps tz_from_local() takes through transitions: a window of 52 hours holds a handful in
 * real zones, and at most every transition of a hostile file. */
#define TZ_FROM_LOCAL_STEPS (TZ_TRANSITIONS_MAX + 16)

/* ----------------------------------------------------------------------------------------- */
/* Calendar                                                                                   */

int tz_weekday(int64_t days) {
    int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

/* ----------------------------------------------------------------------------------------- */
/* POSIX TZ strings                                                                           */

typedef struct px {
    const char *p;
    const char *text;
} px;

static int px_err(const px *s, const char *what) {
    return aj__err(AJ_EINVAL, "time zone rule '%.*s': %s at offset %d", TZ_POSIX_MAX, s->text, what,
                   (int)(s->p - s->text));
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

static int is_alpha(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits, '+' and '-'. */
static int px_name(px *s) {
    const char *start = s->p;
    if (*s->p == '<') {
        s->p++;
        while (is_alpha(*s->p) || is_digit(*s->p) || *s->p == '+' || *s->p == '-') {
            s->p++;
        }
        if (*s->p != '>' || s->p - start < 4) {
            return px_err(s, "expected a quoted abbreviation <...> of 3 or more characters");
        }
        s->p++;
        return 0;
    }
    while (is_alpha(*s->p)) {
        s->p++;
    }
    if (s->p - start < 3) {
        return px_err(s, "expected an abbreviation of 3 or more letters");
    }
    return 0;
}

static int px_num(px *s, int max_digits, int *out) {
    int n = 0, v = 0;
    while (is_digit(*s->p) && n < max_digits) {
        v = v * 10 + (*s->p - '0');
        s->p++;
        n++;
    }
    if (n == 0 || is_digit(*s->p)) {
        return px_err(s, "expected a number");
    }
    *out = v;
    return 0;
}

/* [+-]hh[:mm[:ss]] as seconds, hours up to max_hours. */
static int px_hms(px *s, int max_hours, int32_t *out) {
    int sign = 1;
    if (*s->p == '+' || *s->p == '-') {
        sign = *s->p == '-' ? -1 : 1;
        s->p++;
    }
    int h = 0, m = 0, sec = 0;
    int rc = px_num(s, 3, &h);
    if (rc == 0 && *s->p == ':') {
        s->p++;
        rc = px_num(s, 2, &m);
        if (rc == 0 && *s->p == ':') {
            s->p++;
            rc = px_num(s, 2, &sec);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (h > max_hours || m > 59 || sec > 59) {
        return px_err(s, "time out of range");
    }
    *out = (int32_t)(sign * (h * 3600 + m * 60 + sec));
    return 0;
}

static int px_rule(px *s, tz_rule *r) {
    int rc;
    memset(r, 0, sizeof *r);
    if (*s->p == 'J') {
        s->p++;
        r->kind = TZ_RULE_JULIAN1;
        rc = px_num(s, 3, &r->day);
        if (rc == 0 && (r->day < 1 || r->day > 365)) {
            return px_err(s, "Julian day out of range (1-365)");
        }
    } else if (*s->p == 'M') {
        s->p++;
        r->kind = TZ_RULE_MWD;
        rc = px_num(s, 2, &r->month);
        if (rc == 0 && *s->p++ != '.') {
            return px_err(s, "expected '.' in Mm.w.d");
        }
        rc = rc ? rc : px_num(s, 1, &r->week);
        if (rc == 0 && *s->p++ != '.') {
            return px_err(s, "expected '.' in Mm.w.d");
        }
        rc = rc ? rc : px_num(s, 1, &r->day);
        if (rc == 0 &&
            (r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->day > 6)) {
            return px_err(s, "Mm.w.d out of range");
        }
    } else {
        r->kind = TZ_RULE_JULIAN0;
        rc = px_num(s, 3, &r->day);
        if (rc == 0 && r->day > 365) {
            return px_err(s, "day out of range (0-365)");
        }
    }
    if (rc != 0) {
        return rc;
    }
    r->time = 2 * 3600;
    if (*s->p == '/') {
        s->p++;
        rc = px_hms(s, TZ_RULE_HOURS_MAX, &r->time);
    }
    return rc;
}

int tz_posix_parse(const char *text, tz_posix *out) {
    if (strlen(text) > TZ_POSIX_MAX) {
        return aj__err(AJ_EINVAL, "time zone rule is longer than %d bytes", TZ_POSIX_MAX);
    }
    px s = {text, text};
    tz_posix v;
    memset(&v, 0, sizeof v);
    int32_t off = 0;
    int rc = px_name(&s);
    rc = rc ? rc : px_hms(&s, TZ_POSIX_OFFSET_HOURS_MAX, &off);
    if (rc != 0) {
        return rc;
    }
    v.std_off = -off;
    v.dst_off = v.std_off + 3600;
    if (*s.p != '\0') {
        v.has_dst = 1;
        if ((rc = px_name(&s)) != 0) {
            return rc;
        }
        if (*s.p != ',' && *s.p != '\0') {
            if ((rc = px_hms(&s, TZ_POSIX_OFFSET_HOURS_MAX, &off)) != 0) {
                return rc;
            }
            v.dst_off = -off;
        }
        if (*s.p == '\0') {
            /* No rule given: POSIX leaves it to the implementation; glibc uses the US rule. */
            px dflt = {"M3.2.0,M11.1.0", "M3.2.0,M11.1.0"};
            px_rule(&dflt, &v.start);
            dflt.p++;
            px_rule(&dflt, &v.end);
        } else {
            if (*s.p++ != ',') {
                return px_err(&s, "expected ',' before the start rule");
            }
            if ((rc = px_rule(&s, &v.start)) != 0) {
                return rc;
            }
            if (*s.p++ != ',') {
                return px_err(&s, "expected ',' before the end rule");
            }
            if ((rc = px_rule(&s, &v.end)) != 0) {
                return rc;
            }
        }
    }
    if (*s.p != '\0') {
        return px_err(&s, "unexpected text");
    }
    *out = v;
    return 0;
}

/* The local time (seconds) at which rule r falls in year y. */
static int64_t rule_local(const tz_rule *r, int64_t y) {
    int64_t day;
    switch (r->kind) {
    case TZ_RULE_JULIAN1:
        /* Day 1..365, February 29 never counted. */
        day = aj__days_from_civil(y, 1, 1) + r->day - 1 + (aj__is_leap_year(y) && r->day >= 60);
        break;
    case TZ_RULE_JULIAN0:
        day = aj__days_from_civil(y, 1, 1) + r->day;
        break;
    default: {
        int64_t first = aj__days_from_civil(y, r->month, 1);
        int64_t d = first + (r->day - tz_weekday(first) + 7) % 7 + (int64_t)(r->week - 1) * 7;
        int64_t dim = aj__days_in_month(y, r->month);
        while (d >= first + dim) {
            d -= 7; /* week 5 means the last such weekday */
        }
        day = d;
        break;
    }
    }
    return day * TZ_DAY_S + r->time;
}

/* The year (UTC) of instant t. */
static int64_t year_of(int64_t t) {
    int64_t y;
    int m, d;
    aj__civil_from_days(aj__floor_div(t, TZ_DAY_S), &y, &m, &d);
    return y;
}

/* The rule's transitions around year y, sorted: instants and whether each starts daylight time. */
typedef struct rule_tr {
    int64_t at;
    int starts_dst;
} rule_tr;

static size_t rule_transitions(const tz_posix *p, int64_t y, rule_tr *out) {
    size_t n = 0;
    for (int64_t yy = y - TZ_RULE_YEARS; yy <= y + TZ_RULE_YEARS; yy++) {
        out[n].at = rule_local(&p->start, yy) - p->std_off;
        out[n++].starts_dst = 1;
        out[n].at = rule_local(&p->end, yy) - p->dst_off;
        out[n++].starts_dst = 0;
    }
    /* Insertion sort: ten entries. Equal instants keep end-before-start order within a year. */
    for (size_t i = 1; i < n; i++) {
        rule_tr x = out[i];
        size_t j = i;
        while (j > 0 && out[j - 1].at > x.at) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = x;
    }
    return n;
}

#define RULE_TR_MAX (4 * TZ_RULE_YEARS + 2)

static int32_t rule_offset_at(const tz_posix *p, int64_t t) {
    if (!p->has_dst) {
        return p->std_off;
    }
    rule_tr tr[RULE_TR_MAX];
    size_t n = rule_transitions(p, year_of(t), tr);
    int32_t off = p->std_off;
    for (size_t i = 0; i < n && tr[i].at <= t; i++) {
        off = tr[i].starts_dst ? p->dst_off : p->std_off;
    }
    return off;
}

static int64_t rule_next_change(const tz_posix *p, int64_t t) {
    if (!p->has_dst || p->std_off == p->dst_off) {
        return INT64_MAX;
    }
    rule_tr tr[RULE_TR_MAX];
    size_t n = rule_transitions(p, year_of(t), tr);
    for (size_t i = 0; i < n; i++) {
        if (tr[i].at > t && rule_offset_at(p, tr[i].at) != rule_offset_at(p, tr[i].at - 1)) {
            return tr[i].at;
        }
    }
    return INT64_MAX; /* daylight time all year (a rule like ",0/0,J365/25") */
}

/* ----------------------------------------------------------------------------------------- */
/* Offsets and conversions                                                                    */

/* The index of the last transition at or before t, or -1. */
static long last_at_or_before(const tz_zone *z, int64_t t) {
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return (long)lo - 1;
}

int32_t tz_offset_at(const tz_zone *z, int64_t t) {
    long i = last_at_or_before(z, t);
    if (i < 0) {
        return z->n == 0 && z->has_rule ? rule_offset_at(&z->rule, t) : z->first_off;
    }
    if ((size_t)i == z->n - 1 && z->has_rule) {
        return rule_offset_at(&z->rule, t);
    }
    return z->off[i];
}

int64_t tz_next_change(const tz_zone *z, int64_t t) {
    long i = last_at_or_before(z, t);
    int32_t cur = tz_offset_at(z, t);
    for (size_t j = (size_t)(i + 1); j < z->n; j++) {
        if (z->off[j] != cur) {
            return z->at[j];
        }
    }
    if (!z->has_rule) {
        return INT64_MAX;
    }
    /* Past the table, the rule decides (from the last transition on, or everywhere when the
     * table is empty). */
    int64_t from = z->n > 0 && t < z->at[z->n - 1] ? z->at[z->n - 1] : t;
    int64_t next = rule_next_change(&z->rule, from);
    while (next != INT64_MAX && tz_offset_at(z, next) == cur) {
        /* The table's last offset may already equal the rule's first change. */
        next = rule_next_change(&z->rule, next);
    }
    return next;
}

int64_t tz_to_local(const tz_zone *z, int64_t t) {
    return t + tz_offset_at(z, t);
}

int64_t tz_from_local(const tz_zone *z, int64_t local) {
    /* Before u0 no instant can show `local` or later: offsets are at most TZ_OFFSET_MAX_S. Walk
     * the spans of constant offset from there; in each, local time rises with the instant, so
     * the first instant reaching `local` is max(span start, local - offset) if inside the span. */
    int64_t u = local - TZ_OFFSET_MAX_S - 1;
    for (int step = 0; step < TZ_FROM_LOCAL_STEPS; step++) {
        int32_t off = tz_offset_at(z, u);
        int64_t end = tz_next_change(z, u);
        int64_t cand = local - off > u ? local - off : u;
        if (cand < end) {
            return cand;
        }
        u = end;
    }
    return local - tz_offset_at(z, local); /* unreachable with valid offsets */
}

/* ----------------------------------------------------------------------------------------- */
/* Loading                                                                                    */

int tz_name_check(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_MAX) {
        return aj__err(AJ_EINVAL, "time zone name must be 1 to %d bytes", TZ_NAME_MAX);
    }
    if (name[0] == '/' || name[0] == '-' || strstr(name, "..") != NULL || name[n - 1] == '/' ||
        strstr(name, "//") != NULL) {
        return aj__err(AJ_EINVAL, "time zone name '%s' is not an IANA name like Europe/Berlin",
                       name);
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!is_alpha(c) && !is_digit(c) && c != '/' && c != '_' && c != '+' && c != '-') {
            return aj__err(AJ_EINVAL,
                           "time zone name '%.*s' contains '%c'; IANA names use letters, digits "
                           "and /_+-",
                           TZ_NAME_MAX, name, c);
        }
    }
    return 0;
}

static int zone_new(const char *name, size_t n, tz_zone **out) {
    tz_zone *z = aj__calloc(1, sizeof *z);
    if (z == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory loading a time zone");
    }
    snprintf(z->name, sizeof z->name, "%s", name);
    if (n > 0) {
        z->at = aj__calloc(n, sizeof *z->at);
        z->off = aj__calloc(n, sizeof *z->off);
        if (z->at == NULL || z->off == NULL) {
            tz_free(z);
            return aj__err(AJ_ENOMEM, "out of memory loading a time zone");
        }
    }
    *out = z;
    return 0;
}

void tz_free(tz_zone *z) {
    if (z == NULL) {
        return;
    }
    aj__free(z->at);
    aj__free(z->off);
    aj__free(z);
}

int tz_utc(tz_zone **out) {
    return zone_new("UTC", 0, out);
}

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static int tzif_header(const char *name, aj_rd *r, uint8_t *version, tzif_counts *c) {
    const uint8_t *h = aj__rd_raw(r, TZIF_HEADER);
    if (h == NULL || memcmp(h, "TZif", 4) != 0) {
        return aj__err(AJ_EINVAL, "time zone file for '%s' is not a TZif file", name);
    }
    *version = h[4];
    c->isut = aj__get_u32be(h + 20);
    c->isstd = aj__get_u32be(h + 24);
    c->leap = aj__get_u32be(h + 28);
    c->time = aj__get_u32be(h + 32);
    c->type = aj__get_u32be(h + 36);
    c->chars = aj__get_u32be(h + 40);
    if (c->time > TZ_TRANSITIONS_MAX || c->type == 0 || c->type > TZ_TYPES_MAX ||
        c->leap > TZ_TRANSITIONS_MAX || c->chars > TZ_FILE_MAX ||
        (c->isut != 0 && c->isut != c->type) || (c->isstd != 0 && c->isstd != c->type)) {
        return aj__err(AJ_EINVAL, "time zone file for '%s' has an invalid header", name);
    }
    return 0;
}

/* Bytes of a data block with `tsize`-byte times. */
static size_t block_len(const tzif_counts *c, size_t tsize) {
    return (size_t)c->time * (tsize + 1) + (size_t)c->type * TZIF_TYPE_LEN + c->chars +
           (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

int tz_parse(const char *name, const uint8_t *data, size_t len, tz_zone **out) {
    aj_rd r;
    aj__rd_init(&r, data, len);
    uint8_t version = 0;
    tzif_counts c;
    int rc = tzif_header(name, &r, &version, &c);
    if (rc != 0) {
        return rc;
    }
    if (version < '2') {
        return aj__err(AJ_EINVAL,
                       "time zone file for '%s' is TZif version 1; version 2 or later "
                       "is needed",
                       name);
    }
    if (aj__rd_raw(&r, block_len(&c, 4)) == NULL) { /* the version 1 block */
        return aj__err(AJ_EINVAL, "time zone file for '%s' is truncated", name);
    }
    if ((rc = tzif_header(name, &r, &version, &c)) != 0) {
        return rc;
    }
    if (c.leap != 0) {
        return aj__err(AJ_EINVAL,
                       "time zone '%s' counts leap seconds (a right/ zone); use the plain zone",
                       name);
    }
    const uint8_t *times = aj__rd_raw(&r, (size_t)c.time * 8);
    const uint8_t *idx = aj__rd_raw(&r, c.time);
    const uint8_t *types = aj__rd_raw(&r, (size_t)c.type * TZIF_TYPE_LEN);
    aj__rd_raw(&r, (size_t)c.chars + c.isstd + c.isut);
    if (r.bad) {
        return aj__err(AJ_EINVAL, "time zone file for '%s' is truncated", name);
    }
    /* The footer: "\n" POSIX-TZ "\n". */
    size_t rest = r.len - r.off;
    const char *foot = (const char *)data + r.off;
    char footer[TZ_POSIX_MAX + 1] = "";
    if (rest < 2 || foot[0] != '\n') {
        return aj__err(AJ_EINVAL, "time zone file for '%s' has no footer", name);
    }
    const char *nl = memchr(foot + 1, '\n', rest - 1);
    if (nl == NULL || (size_t)(nl - foot - 1) > TZ_POSIX_MAX) {
        return aj__err(AJ_EINVAL, "time zone file for '%s' has an invalid footer", name);
    }
    memcpy(footer, foot + 1, (size_t)(nl - foot - 1));
    footer[nl - foot - 1] = '\0';
    int32_t offs[TZ_TYPES_MAX];
    for (uint32_t i = 0; i < c.type; i++) {
        offs[i] = (int32_t)aj__get_u32be(types + i * TZIF_TYPE_LEN);
        if (offs[i] < -TZ_OFFSET_MAX_S || offs[i] > TZ_OFFSET_MAX_S) {
            return aj__err(AJ_EINVAL, "time zone file for '%s' has an offset out of range", name);
        }
    }
    tz_zone *z = NULL;
    if ((rc = zone_new(name, c.time, &z)) != 0) {
        return rc;
    }
    z->first_off = offs[0];
    for (uint32_t i = 0; i < c.time; i++) {
        z->at[i] = (int64_t)aj__get_u64be(times + (size_t)i * 8);
        if (idx[i] >= c.type || (i > 0 && z->at[i] <= z->at[i - 1]) || z->at[i] < INT64_MIN / 2 ||
            z->at[i] > INT64_MAX / 2) {
            tz_free(z);
            return aj__err(AJ_EINVAL, "time zone file for '%s' has invalid transitions", name);
        }
        z->off[i] = offs[idx[i]];
    }
    z->n = c.time;
    if (footer[0] != '\0') {
        rc = tz_posix_parse(footer, &z->rule);
        if (rc != 0) {
            tz_free(z);
            return aj__err_wrap(rc, "time zone file for '%s'", name);
        }
        z->has_rule = 1;
    }
    *out = z;
    return 0;
}
