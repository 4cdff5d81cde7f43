/*
 * cron.c — the cron parser and next-fire computation (see cron.h).
 *
 * A parsed expression is a set of bitmaps, one per field, plus the day-of-month and day-of-week
 * specials (L, LW, nW, nL, n#k). The next fire time is found in two steps: the next matching
 * local wall-clock second (a field-by-field search that skips whole years, months, days, hours
 * and minutes that cannot match, so even "never" answers in a few thousand steps), then the
 * first instant that reaches that local time (tz_from_local). Because that mapping never
 * decreases, walking matching local times in order and taking the first whose instant lies after
 * the given time yields the earliest fire time; the walk skips local times of an ambiguous hour
 * already passed (they fire at their first occurrence only) and merges the local times of a gap
 * into the one instant after it.
 *
 * Invariant: every bitmap holds only bits inside its field's range, so a parsed expression can
 * be searched without further checks. Parsing rejects anything it does not fully understand.
 */
#include "core/cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/civil.h"
#include "util/err.h"

/* Most steps of the local-time search; "never" needs about 7,000 for 230 years. */
#define CRON_SEARCH_STEPS 1000000
/* Most matching local times skipped while looking past an ambiguous hour (3,600 seconds). */
#define CRON_LOCAL_STEPS 100000
/* Most fields: second minute hour day-of-month month day-of-week year. */
#define CRON_FIELDS_MAX 7
/* Longest number in a field ("2199"), in digits. */
#define CRON_NUMBER_DIGITS 4
/* Digits of an over-long number quoted in an error message before it is cut with "...". */
#define CRON_QUOTED_DIGITS 20
/* Seconds in a day. */
#define DAY_S 86400

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_YEAR };

typedef struct field_def {
    const char *name;
    int min, max;
    const char *const *names; /* names for min.. (3 letters), or NULL */
} field_def;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_def fields[CRON_FIELDS_MAX] = {
    {"second", 0, 59, NULL},
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
    {"year", CRON_YEAR_MIN, CRON_YEAR_MAX, NULL},
};

/* A field's values while parsing: bit (v - min) for value v. */
typedef struct bits {
    uint64_t w[4];
} bits;

static void bit_set(bits *b, int i) {
    b->w[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Parser state: the whole expression (for messages) and the field being read. */
typedef struct parser {
    const char *text;
    const field_def *f;
    int fi;
    cron_expr *out;
} parser;

static int perr(const parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(const parser *p, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->f == NULL) {
        return aj__err(AJ_EINVAL, "cron expression '%s': %s", p->text, what);
    }
    return aj__err(AJ_EINVAL, "cron expression '%s': %s field: %s", p->text, p->f->name, what);
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

static int is_alpha(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char upper(char c) {
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Reads a number or a name at *s. Names are exactly three letters; `allow_l` lets a name be
 * followed by 'L' (FRIL). */
static int read_value(const parser *p, const char **s, int *out) {
    const char *q = *s;
    if (is_digit(*q)) {
        int v = 0, n = 0;
        while (is_digit(*q)) {
            if (++n > CRON_NUMBER_DIGITS) {
                return perr(p, "number '%.8s...' is too long", *s);
            }
            v = v * 10 + (*q++ - '0');
        }
        if (v < p->f->min || v > p->f->max) {
            return perr(p, "%d is out of range (%d-%d)", v, p->f->min, p->f->max);
        }
        *s = q;
        *out = v;
        return 0;
    }
    if (is_alpha(*q) && p->f->names != NULL) {
        char name[4] = {0};
        for (int i = 0; i < 3; i++) {
            if (!is_alpha(q[i])) {
                return perr(p, "'%.3s' is not a %s name", q, p->f->name);
            }
            name[i] = upper(q[i]);
        }
        for (int i = 0; p->f->names[i] != NULL; i++) {
            if (strcmp(name, p->f->names[i]) == 0) {
                *s = q + 3;
                *out = p->f->min + i;
                return 0;
            }
        }
        return perr(p, "'%.3s' is not a %s name (%s..%s)", q, p->f->name, p->f->names[0],
                    p->f == &fields[F_MON] ? "DEC" : "SAT");
    }
    if (*q == '\0' || *q == ',' || *q == '-' || *q == '/') {
        return perr(p, "expected a value");
    }
    return perr(p, "unexpected '%c'", *q);
}

/* Day-of-month specials: L, LW, nW. Returns 1 when the item was one (and was consumed). */
static int dom_special(parser *p, const char *item, size_t len, int *rc) {
    cron_expr *c = p->out;
    if (len == 1 && upper(item[0]) == 'L') {
        c->dom_last = 1;
        return 1;
    }
    if (len == 2 && upper(item[0]) == 'L' && upper(item[1]) == 'W') {
        c->dom_last_wday = 1;
        return 1;
    }
    if (len >= 2 && upper(item[len - 1]) == 'W' && is_digit(item[0])) {
        const char *s = item;
        int v = 0;
        *rc = read_value(p, &s, &v);
        if (*rc == 0 && s != item + len - 1) {
            *rc = perr(p, "'%.*s': W follows a single day, as in 15W", (int)len, item);
        }
        if (*rc == 0) {
            c->dom_w |= (uint32_t)1 << v;
        }
        return 1;
    }
    return 0;
}

/* Day-of-week specials: nL and n#k (n a number or a name). Returns 1 when the item was one. */
static int dow_special(parser *p, const char *item, size_t len, int *rc) {
    cron_expr *c = p->out;
    const char *hash = memchr(item, '#', len);
    int last = len >= 2 && upper(item[len - 1]) == 'L';
    if (len == 1 && upper(item[0]) == 'L') {
        *rc = perr(p, "'L' needs a day before it, as in 5L (the last Friday)");
        return 1;
    }
    if (hash == NULL && !last) {
        return 0;
    }
    const char *s = item;
    int wd = 0;
    *rc = read_value(p, &s, &wd);
    if (*rc != 0) {
        return 1;
    }
    wd %= 7;
    if (last) {
        if (s != item + len - 1) {
            *rc = perr(p, "'%.*s': L follows a single day, as in 5L", (int)len, item);
            return 1;
        }
        c->dow_last |= (uint8_t)(1u << wd);
        return 1;
    }
    if (s != hash || hash + 2 != item + len || hash[1] < '1' || hash[1] > '5') {
        *rc = perr(p, "'%.*s': expected DAY#N with N from 1 to 5, as in FRI#2", (int)len, item);
        return 1;
    }
    c->dow_nth[wd] |= (uint8_t)(1u << (hash[1] - '1'));
    return 1;
}

/* Reads one list item into `set`. */
static int parse_item(parser *p, const char *item, size_t len, bits *set) {
    const field_def *f = p->f;
    int rc = 0;
    if (p->fi == F_DOM && dom_special(p, item, len, &rc)) {
        return rc;
    }
    if (p->fi == F_DOW && dow_special(p, item, len, &rc)) {
        return rc;
    }
    char buf[CRON_EXPR_MAX + 1];
    memcpy(buf, item, len);
    buf[len] = '\0';
    const char *s = buf;
    int lo = f->min, hi = f->max, step = 1;
    int star = 0;
    if (*s == '*' || *s == '?') {
        if (*s == '?' && p->fi != F_DOM && p->fi != F_DOW) {
            return perr(p, "'?' is only allowed in the day-of-month and day-of-week fields");
        }
        if (*s == '?' && s[1] != '\0') {
            return perr(p, "'?' stands alone");
        }
        star = 1;
        s++;
        if (p->fi == F_DOW) {
            hi = 6; /* 7 is Sunday again */
        }
    } else {
        if ((rc = read_value(p, &s, &lo)) != 0) {
            return rc;
        }
        hi = lo;
        if (*s == '-') {
            s++;
            if ((rc = read_value(p, &s, &hi)) != 0) {
                return rc;
            }
            if (hi < lo) {
                return perr(p, "range %.*s is backwards", (int)len, item);
            }
        }
    }
    if (*s == '/') {
        s++;
        const char *start = s;
        int v = 0, n = 0;
        /* Every digit is read, so that the message quotes the number given, not its first
         * digits; only the first CRON_NUMBER_DIGITS are summed (more are out of range anyway). */
        while (is_digit(*s)) {
            if (n < CRON_NUMBER_DIGITS) {
                v = v * 10 + (*s - '0');
            }
            s++;
            n++;
        }
        if (n == 0) {
            return perr(p, "expected a step after '/' in '%s'", buf);
        }
        if (v == 0 || n > CRON_NUMBER_DIGITS || v > f->max - f->min + (p->fi == F_DOW ? 0 : 1)) {
            return perr(p, "step %.*s%s is out of range (1-%d)",
                        n < CRON_QUOTED_DIGITS ? n : CRON_QUOTED_DIGITS, start,
                        n > CRON_QUOTED_DIGITS ? "..." : "",
                        f->max - f->min + (p->fi == F_DOW ? 0 : 1));
        }
        step = v;
        if (!star && hi == lo && *s == '\0' && strchr(buf, '-') == NULL) {
            hi = p->fi == F_DOW ? 6 : f->max; /* a/n: from a to the end of the field */
        }
    }
    if (*s != '\0') {
        if (is_alpha(*s) && (upper(*s) == 'L' || upper(*s) == 'W' || *s == '#')) {
            return perr(p, "'%s': %c is not allowed here", buf, *s);
        }
        return perr(p, "unexpected '%c' in '%s'", *s, buf);
    }
    for (int v = lo; v <= hi; v += step) {
        int idx = v - f->min;
        if (p->fi == F_DOW && v == 7) {
            idx = 0;
        }
        bit_set(set, idx);
    }
    return 0;
}

static int parse_field(parser *p, const char *text, size_t len) {
    bits set;
    memset(&set, 0, sizeof set);
    cron_expr *c = p->out;
    if (p->fi == F_DOM) {
        c->dom_star = text[0] == '*' || (len == 1 && text[0] == '?');
    } else if (p->fi == F_DOW) {
        c->dow_star = text[0] == '*' || (len == 1 && text[0] == '?');
    }
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && text[j] != ',') {
            j++;
        }
        if (j == i) {
            return perr(p, "empty list item in '%.*s'", (int)len, text);
        }
        int rc = parse_item(p, text + i, j - i, &set);
        if (rc != 0) {
            return rc;
        }
        i = j + 1;
    }
    switch (p->fi) {
    case F_SEC:
        c->sec = set.w[0];
        break;
    case F_MIN:
        c->min = set.w[0];
        break;
    case F_HOUR:
        c->hour = (uint32_t)set.w[0];
        break;
    case F_DOM:
        c->dom = (uint32_t)(set.w[0] << 1); /* bit d for day d */
        break;
    case F_MON:
        c->mon = (uint16_t)(set.w[0] << 1);
        break;
    case F_DOW:
        c->dow = (uint8_t)(set.w[0] & 0x7f);
        break;
    default:
        memcpy(c->year, set.w, sizeof c->year);
        break;
    }
    return 0;
}

typedef struct macro {
    const char *name;
    const char *expr;
} macro;

static const macro macros[] = {
    {"@yearly", "0 0 0 1 1 *"},  {"@annually", "0 0 0 1 1 *"},
    {"@monthly", "0 0 0 1 * *"}, {"@weekly", "0 0 0 * * 0"},
    {"@daily", "0 0 0 * * *"},   {"@midnight", "0 0 0 * * *"},
    {"@hourly", "0 0 * * * *"},  {NULL, NULL},
};

static int is_space(char c) {
    return c == ' ' || c == '\t';
}

static int parse_every(parser *p, const char *rest) {
    while (is_space(*rest)) {
        rest++;
    }
    char dur[CRON_EXPR_MAX + 1];
    snprintf(dur, sizeof dur, "%s", rest);
    size_t n = strlen(dur);
    while (n > 0 && is_space(dur[n - 1])) {
        dur[--n] = '\0';
    }
    if (n == 0) {
        return perr(p, "@every needs a duration, as in @every 1h30m");
    }
    int64_t ms = 0;
    if (aj_duration_parse(dur, &ms) != 0) {
        return perr(p, "'%s' is not a duration like 90s or 1h30m", dur);
    }
    if (ms < CRON_EVERY_MIN_MS || ms > CRON_EVERY_MAX_MS) {
        return perr(p, "@every %s is out of range (%dms to 100 years)", dur, CRON_EVERY_MIN_MS);
    }
    p->out->kind = CRON_EVERY;
    p->out->every_ms = ms;
    return 0;
}

static int parse_fields(parser *p, const char *text) {
    const char *start[CRON_FIELDS_MAX];
    size_t len[CRON_FIELDS_MAX];
    int n = 0;
    const char *s = text;
    for (;;) {
        while (is_space(*s)) {
            s++;
        }
        if (*s == '\0') {
            break;
        }
        if (n == CRON_FIELDS_MAX) {
            return perr(p, "more than %d fields", CRON_FIELDS_MAX);
        }
        start[n] = s;
        while (*s != '\0' && !is_space(*s)) {
            s++;
        }
        len[n] = (size_t)(s - start[n]);
        n++;
    }
    if (n < 5) {
        return perr(p,
                    "%d field%s; expected 5 (minute hour day-of-month month day-of-week), 6 "
                    "(with seconds first) or 7 (and a year last)",
                    n, n == 1 ? "" : "s");
    }
    /* 5 fields have no seconds (second 0) and no year (any). */
    int first = n == 5 ? F_MIN : F_SEC;
    p->out->kind = CRON_FIELDS;
    p->out->sec = 1;
    memset(p->out->year, 0xff, sizeof p->out->year);
    for (int i = 0; i < n; i++) {
        p->fi = first + i;
        p->f = &fields[p->fi];
        int rc = parse_field(p, start[i], len[i]);
        if (rc != 0) {
            return rc;
        }
    }
    p->f = NULL;
    /* Keep the year bitmap inside its range. */
    int span = CRON_YEAR_MAX - CRON_YEAR_MIN + 1;
    for (int i = span; i < 256; i++) {
        p->out->year[i / 64] &= ~((uint64_t)1 << (i % 64));
    }
    return 0;
}

int cron_parse(const char *text, cron_expr *out) {
    parser p = {text, NULL, 0, NULL};
    if (text == NULL) {
        return aj__err(AJ_EINVAL, "cron expression is missing");
    }
    size_t n = strlen(text);
    if (n > CRON_EXPR_MAX) {
        return aj__err(AJ_EINVAL, "cron expression is %zu bytes, over the %d-byte limit", n,
                       CRON_EXPR_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 || ch >= 0x7f) {
            if (ch != '\t') {
                return aj__err(AJ_EINVAL, "cron expression contains byte 0x%02x at offset %zu", ch,
                               i);
            }
        }
    }
    cron_expr c;
    memset(&c, 0, sizeof c);
    p.out = &c;
    const char *s = text;
    while (is_space(*s)) {
        s++;
    }
    int rc;
    if (*s == '@') {
        size_t w = 0;
        while (s[w] != '\0' && !is_space(s[w])) {
            w++;
        }
        rc = AJ_EINVAL;
        int found = 0;
        if (w == 6 && strncmp(s, "@every", 6) == 0) {
            found = 1;
            rc = parse_every(&p, s + 6);
        }
        for (const macro *m = macros; !found && m->name != NULL; m++) {
            if (strlen(m->name) == w && strncmp(s, m->name, w) == 0) {
                found = 1;
                const char *after = s + w;
                while (is_space(*after)) {
                    after++;
                }
                if (*after != '\0') {
                    return perr(&p, "%s takes nothing after it", m->name);
                }
                rc = parse_fields(&p, m->expr);
            }
        }
        if (!found) {
            return perr(&p,
                        "unknown macro '%.*s' (expected @yearly, @annually, @monthly, "
                        "@weekly, @daily, @midnight, @hourly or @every DURATION)",
                        (int)(w > 32 ? 32 : w), s);
        }
    } else {
        rc = parse_fields(&p, s);
    }
    if (rc != 0) {
        return rc;
    }
    *out = c;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Next fire time                                                                             */

/* The smallest set bit >= from (and <= max), or -1. */
static int next_bit(uint64_t set, int from, int max) {
    if (from > max || from > 63) {
        return -1;
    }
    uint64_t rest = set >> from;
    if (rest == 0) {
        return -1;
    }
    int b = from + __builtin_ctzll(rest);
    return b <= max ? b : -1;
}

static int year_bit(const cron_expr *c, int64_t y) {
    int64_t i = y - CRON_YEAR_MIN;
    return i >= 0 && i < 256 && ((c->year[i / 64] >> (i % 64)) & 1);
}

typedef struct civil {
    int64_t y;
    int mo, d, h, mi, s;
} civil;

static void next_day(civil *t) {
    t->h = t->mi = t->s = 0;
    if (++t->d > aj__days_in_month(t->y, t->mo)) {
        t->d = 1;
        if (++t->mo > 12) {
            t->mo = 1;
            t->y++;
        }
    }
}

static void next_hour(civil *t) {
    t->mi = t->s = 0;
    if (++t->h == 24) {
        next_day(t);
    }
}

static void next_minute(civil *t) {
    t->s = 0;
    if (++t->mi == 60) {
        next_hour(t);
    }
}

/* The weekday nearest day n of the month (never leaving the month). */
static int nearest_weekday(int64_t y, int m, int n, int dim) {
    int wd = tz_weekday(aj__days_from_civil(y, m, n));
    if (wd == 6) {
        return n == 1 ? 3 : n - 1;
    }
    if (wd == 0) {
        return n == dim ? n - 2 : n + 1;
    }
    return n;
}

static int day_ok(const cron_expr *c, int64_t y, int m, int d) {
    int dim = aj__days_in_month(y, m);
    int wd = tz_weekday(aj__days_from_civil(y, m, d));
    int dom = (c->dom >> d) & 1;
    if (!dom && c->dom_last && d == dim) {
        dom = 1;
    }
    if (!dom && c->dom_last_wday && d == nearest_weekday(y, m, dim, dim)) {
        dom = 1;
    }
    for (int n = 1; !dom && c->dom_w != 0 && n <= dim; n++) {
        if (((c->dom_w >> n) & 1) && nearest_weekday(y, m, n, dim) == d) {
            dom = 1;
        }
    }
    int dow = (c->dow >> wd) & 1;
    if (!dow && ((c->dow_last >> wd) & 1) && d + 7 > dim) {
        dow = 1;
    }
    if (!dow && ((c->dow_nth[wd] >> ((d - 1) / 7)) & 1)) {
        dow = 1;
    }
    if (c->dom_star || c->dow_star) {
        return dom && dow;
    }
    return dom || dow;
}

/* The first matching local second after `after`. */
static int next_local(const cron_expr *c, int64_t after, int64_t *out) {
    int64_t t = after + 1;
    int64_t days = aj__floor_div(t, DAY_S);
    int64_t secs = t - days * DAY_S;
    civil v;
    aj__civil_from_days(days, &v.y, &v.mo, &v.d);
    v.h = (int)(secs / 3600);
    v.mi = (int)(secs / 60 % 60);
    v.s = (int)(secs % 60);
    if (v.y < CRON_YEAR_MIN) {
        v = (civil){CRON_YEAR_MIN, 1, 1, 0, 0, 0};
    }
    for (int step = 0; step < CRON_SEARCH_STEPS; step++) {
        if (v.y > CRON_YEAR_MAX) {
            return AJ_ENOTFOUND;
        }
        if (!year_bit(c, v.y)) {
            int64_t y = v.y + 1;
            while (y <= CRON_YEAR_MAX && !year_bit(c, y)) {
                y++;
            }
            v = (civil){y, 1, 1, 0, 0, 0};
            continue;
        }
        int mo = next_bit(c->mon, v.mo, 12);
        if (mo < 0) {
            v = (civil){v.y + 1, 1, 1, 0, 0, 0};
            continue;
        }
        if (mo != v.mo) {
            v = (civil){v.y, mo, 1, 0, 0, 0};
        }
        if (!day_ok(c, v.y, v.mo, v.d)) {
            next_day(&v);
            continue;
        }
        int h = next_bit(c->hour, v.h, 23);
        if (h < 0) {
            next_day(&v);
            continue;
        }
        if (h != v.h) {
            v.h = h;
            v.mi = v.s = 0;
        }
        int mi = next_bit(c->min, v.mi, 59);
        if (mi < 0) {
            next_hour(&v);
            continue;
        }
        if (mi != v.mi) {
            v.mi = mi;
            v.s = 0;
        }
        int s = next_bit(c->sec, v.s, 59);
        if (s < 0) {
            next_minute(&v);
            continue;
        }
        v.s = s;
        *out = aj__days_from_civil(v.y, v.mo, v.d) * DAY_S + v.h * 3600 + v.mi * 60 + v.s;
        return 0;
    }
    return AJ_ENOTFOUND;
}

int cron_next(const cron_expr *c, const tz_zone *z, int64_t anchor_ms, int64_t after_ms,
              int64_t *out_ms) {
    /* Past the search horizon there is nothing to find; this also keeps the arithmetic below
     * far from overflow for any input. */
    const int64_t horizon_ms =
        (aj__days_from_civil(CRON_YEAR_MAX + 1, 1, 1) + 2) * (int64_t)DAY_S * 1000;
    if (after_ms < -horizon_ms) {
        after_ms = -horizon_ms; /* nothing fires that early; keeps the sums below in range */
    }
    if (after_ms >= horizon_ms || anchor_ms >= horizon_ms || anchor_ms < -horizon_ms) {
        return aj__err(AJ_ENOTFOUND, "no fire time after the year %d", CRON_YEAR_MAX);
    }
    if (c->kind == CRON_EVERY) {
        /* The grid anchor + k * interval, before the anchor too (backfills reach back). */
        int64_t next =
            anchor_ms + (aj__floor_div(after_ms - anchor_ms, c->every_ms) + 1) * c->every_ms;
        if (next >= horizon_ms) {
            return aj__err(AJ_ENOTFOUND, "no fire time after the year %d", CRON_YEAR_MAX);
        }
        *out_ms = next;
        return 0;
    }
    int64_t t0 = aj__floor_div(after_ms, 1000);
    int64_t local = tz_to_local(z, t0);
    for (int i = 0; i < CRON_LOCAL_STEPS; i++) {
        int64_t next_l;
        if (next_local(c, local, &next_l) != 0) {
            return aj__err(AJ_ENOTFOUND, "no fire time before the end of the year %d",
                           CRON_YEAR_MAX);
        }
        int64_t u = tz_from_local(z, next_l);
        if (u > t0) {
            *out_ms = u * 1000;
            return 0;
        }
        local = next_l;
    }
    return aj__err(AJ_ENOTFOUND, "no fire time found");
}
