/*
 * parse.c — the text parsers every front end shares: durations, priorities, queue and type
 * names, backoff specs and RFC 3339 times (see "Parsers" in aj.h).
 *
 * Invariants: parsers are pure and locale-independent (no strtod, no isalpha, no printf of a
 * double, no timegm or TZ), write their out-parameter only on success, and on failure set one line
 * of aj_errmsg() that quotes the offending text with non-printable bytes escaped. Every formatter
 * writes text its parser reads back to the same value, and returns the full length of that text
 * like snprintf() (the output is cut, still NUL-terminated, when `size` is too small).
 *
 * Grammar decisions (the contract tests and fuzz targets check):
 *  - Durations are groups NUMBER UNIT with units d, h, m, s, ms in strictly descending order, each
 *    at most once ("1h30m", "2m30s500ms", "90m"); "30s1h" and "1m1m" are rejected, so every
 *    duration has one canonical spelling and the formatter writes it. Leading zeros are allowed.
 *  - Backoff: every delay in a spec is at most AJ__BACKOFF_DELAY_MAX (1 day). `exp:` without MAX
 *    is capped by that global limit only; MAX below INITIAL is rejected. FACTOR is a decimal
 *    1..AJ__BACKOFF_FACTOR_MAX with at most 3 decimals, so it is exact in thousandths and formats
 *    back without a locale-dependent printf. aj_backoff_delay() and aj_backoff_format() take any
 *    struct (hand-built, or decoded from a corrupt record): fields are clamped to what the parser
 *    accepts, and an unknown kind formats as "invalid" and gives a delay of 0.
 *  - Times: "T"/"Z" may be lower case (RFC 3339 5.6); second 60 (a leap second) is accepted and,
 *    as POSIX time does, counts as the first second of the next minute; fractional seconds past
 *    milliseconds are truncated, never rounded into the next second.
 *
 * Layer: util; depends only on err.h, civil.h (calendar arithmetic) and the public header.
 */
#include "util/civil.h"
#include "util/err.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bytes of user text quoted in an error message; longer text is cut and ends with "...". */
#define AJ__QUOTE_MAX 60
/* Room for a quoted text: each byte may become a 4-byte escape, plus "..." and the NUL. */
#define AJ__QUOTE_BUF (AJ__QUOTE_MAX * 4 + 4)
/* Longest unit name quoted in an "unknown unit" message. */
#define AJ__UNIT_QUOTE_MAX 16
/* Largest delay anywhere in a backoff spec, and the cap of `exp:` without MAX. */
#define AJ__BACKOFF_DELAY_MAX AJ_DAY
/* Largest backoff factor. */
#define AJ__BACKOFF_FACTOR_MAX 100
/* Backoff factors are exact in 1/AJ__BACKOFF_FACTOR_SCALE (3 decimals). */
#define AJ__BACKOFF_FACTOR_SCALE 1000
#define AJ__BACKOFF_FACTOR_DECIMALS 3
/* Longest backoff spec accepted: 16 canonical list delays ("23h59m59s999ms", 14 bytes) with
 * separators need about 250 bytes; the rest is room for longer spellings such as "86400000ms". */
#define AJ__BACKOFF_TEXT_MAX 512
/* Most fractional-second digits in a time (nanoseconds); only milliseconds are kept. */
#define AJ__TIME_FRAC_DIGITS_MAX 9
/* Times are limited to what four year digits hold in UTC: 0000-01-01T00:00:00Z (-62167219200000)
 * to 9999-12-31T23:59:59.999Z (253402300799999). */
#define AJ__TIME_MIN_MS (-62167219200000LL)
#define AJ__TIME_MAX_MS 253402300799999LL
/* Largest time-zone offset hour. */
#define AJ__TIME_OFFSET_HOUR_MAX 23

/* ---------------------------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------------------------- */

/* Writes `s` into `dst` for an error message: printable ASCII as is (with ' and \ escaped),
 * everything else as \n, \r, \t or \xNN, so that a message stays one printable line. */
static const char *quote(char dst[AJ__QUOTE_BUF], const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i = 0;
    for (; s[i] != '\0' && i < AJ__QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\'' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            dst[o++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            dst[o++] = '\\';
            dst[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    if (s[i] != '\0') {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    assert(o < AJ__QUOTE_BUF);
    dst[o] = '\0';
    return dst;
}

/* quote() of one byte. */
static const char *quote_char(char dst[AJ__QUOTE_BUF], char c) {
    char one[2] = {c, '\0'};
    return quote(dst, one);
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

static int is_letter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* An snprintf-like writer: keeps what fits (always NUL-terminated) and counts the full length. */
typedef struct text_out {
    char *buf;
    size_t size;
    size_t len;
} text_out;

static void out_init(text_out *o, char *buf, size_t size) {
    o->buf = buf;
    o->size = size;
    o->len = 0;
    if (size > 0) {
        buf[0] = '\0';
    }
}

static void out_add(text_out *o, const char *s, size_t n) {
    if (o->size > 0 && o->len < o->size - 1) {
        size_t room = o->size - 1 - o->len;
        size_t k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->buf[o->len + k] = '\0';
    }
    o->len += n;
}

static void out_fmt(text_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(text_out *o, const char *fmt, ...) {
    char tmp[64]; /* every caller formats a few integers */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof tmp);
    out_add(o, tmp, (size_t)n);
}

/* ---------------------------------------------------------------------------------------------
 * Durations
 * ------------------------------------------------------------------------------------------- */

/* Units from largest to smallest: the order a duration must use and the formatter writes. */
static const struct {
    const char *name;
    int64_t ms;
} units[] = {
    {"d", AJ_DAY}, {"h", AJ_HOUR}, {"m", AJ_MINUTE}, {"s", AJ_SECOND}, {"ms", AJ_MS},
};
#define N_UNITS (sizeof units / sizeof units[0])

#define DURATION_UNITS "(ms, s, m, h, d)"

int aj_duration_parse(const char *text, int64_t *out_ms) {
    assert(out_ms != NULL);
    char q[AJ__QUOTE_BUF], qc[AJ__QUOTE_BUF];
    if (text == NULL || text[0] == '\0') {
        return aj__err(AJ_EINVAL, "invalid duration '': the text is empty");
    }
    quote(q, text);
    const char *p = text;
    size_t next_unit = 0; /* the largest unit the next group may use */
    int64_t total = 0;
    while (*p != '\0') {
        if (!is_digit(*p)) {
            if (is_space(*p)) {
                return aj__err(AJ_EINVAL, "invalid duration '%s': whitespace is not allowed", q);
            }
            if (*p == '-' && p == text) {
                return aj__err(AJ_EINVAL,
                               "invalid duration '%s': negative durations are not allowed", q);
            }
            if (*p == '+' && p == text) {
                return aj__err(AJ_EINVAL, "invalid duration '%s': a sign is not allowed", q);
            }
            if (is_letter(*p)) {
                return aj__err(AJ_EINVAL, "invalid duration '%s': a unit needs a number before it",
                               q);
            }
            return aj__err(AJ_EINVAL, "invalid duration '%s': unexpected character '%s'", q,
                           quote_char(qc, *p));
        }
        /* The number, saturating just above INT64_MAX so overflow is seen without UB. */
        uint64_t v = 0;
        int too_big = 0;
        while (is_digit(*p)) {
            unsigned d = (unsigned)(*p - '0');
            if (v > ((uint64_t)INT64_MAX - d) / 10) {
                too_big = 1;
            } else {
                v = v * 10 + d;
            }
            p++;
        }
        if (*p == '.' || *p == ',') {
            return aj__err(AJ_EINVAL,
                           "invalid duration '%s': fractions are not allowed (write 1h30m, not "
                           "1.5h)",
                           q);
        }
        const char *u = p;
        while (is_letter(*p)) {
            p++;
        }
        size_t ulen = (size_t)(p - u);
        if (ulen == 0) {
            if (*p == '\0') {
                return aj__err(AJ_EINVAL,
                               "invalid duration '%s': a number needs a unit " DURATION_UNITS, q);
            }
            if (is_space(*p)) {
                return aj__err(AJ_EINVAL, "invalid duration '%s': whitespace is not allowed", q);
            }
            return aj__err(AJ_EINVAL, "invalid duration '%s': unexpected character '%s'", q,
                           quote_char(qc, *p));
        }
        size_t k = 0;
        while (k < N_UNITS &&
               !(strlen(units[k].name) == ulen && memcmp(units[k].name, u, ulen) == 0)) {
            k++;
        }
        if (k == N_UNITS) {
            int shown = ulen > AJ__UNIT_QUOTE_MAX ? AJ__UNIT_QUOTE_MAX : (int)ulen;
            return aj__err(AJ_EINVAL, "invalid duration '%s': unknown unit '%.*s' " DURATION_UNITS,
                           q, shown, u);
        }
        if (k < next_unit) {
            return aj__err(AJ_EINVAL,
                           "invalid duration '%s': units must go from largest to smallest, each "
                           "at most once (d, h, m, s, ms)",
                           q);
        }
        next_unit = k + 1;
        if (too_big || v > (uint64_t)(INT64_MAX / units[k].ms) ||
            (int64_t)v * units[k].ms > INT64_MAX - total) {
            return aj__err(AJ_EINVAL,
                           "invalid duration '%s': larger than the largest duration "
                           "(%" PRId64 "ms)",
                           q, INT64_MAX);
        }
        total += (int64_t)v * units[k].ms;
    }
    *out_ms = total;
    return 0;
}

static void duration_write(text_out *o, int64_t ms) {
    /* Work in uint64_t so that INT64_MIN has a magnitude. */
    uint64_t u = (uint64_t)ms;
    if (ms < 0) {
        out_add(o, "-", 1);
        u = 0 - u;
    }
    if (u == 0) {
        out_add(o, "0ms", 3);
        return;
    }
    for (size_t k = 0; k < N_UNITS; k++) {
        uint64_t n = u / (uint64_t)units[k].ms;
        if (n != 0) {
            out_fmt(o, "%" PRIu64 "%s", n, units[k].name);
        }
        u %= (uint64_t)units[k].ms;
    }
}

/* Writes the canonical spelling; a negative value gets a leading '-', which the parser rejects. */
size_t aj_duration_format(int64_t ms, char *buf, size_t size) {
    text_out o;
    out_init(&o, buf, size);
    duration_write(&o, ms);
    return o.len;
}

/* ---------------------------------------------------------------------------------------------
 * Priorities
 * ------------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t value;
} priority_names[] = {
    {"critical", AJ_PRIORITY_CRITICAL},
    {"high", AJ_PRIORITY_HIGH},
    {"normal", AJ_PRIORITY_NORMAL},
    {"low", AJ_PRIORITY_LOW},
};

int aj_priority_parse(const char *text, uint32_t *out) {
    assert(out != NULL);
    char q[AJ__QUOTE_BUF];
    if (text == NULL || text[0] == '\0') {
        return aj__err(AJ_EINVAL, "invalid priority '': the text is empty");
    }
    for (size_t i = 0; i < sizeof priority_names / sizeof priority_names[0]; i++) {
        if (strcmp(text, priority_names[i].name) == 0) {
            *out = priority_names[i].value;
            return 0;
        }
    }
    quote(q, text);
    uint64_t v = 0;
    int too_big = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (!is_digit(*p)) {
            return aj__err(AJ_EINVAL,
                           "invalid priority '%s': use a number 0..%" PRIu32
                           " or critical, high, normal, low",
                           q, UINT32_MAX);
        }
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX) {
            too_big = 1;
            v = (uint64_t)UINT32_MAX + 1; /* keep scanning for a bad character without overflow */
        }
    }
    if (too_big) {
        return aj__err(AJ_EINVAL, "invalid priority '%s': larger than %" PRIu32, q, UINT32_MAX);
    }
    *out = (uint32_t)v;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------- */

static int name_byte_ok(char c) {
    return is_letter(c) || is_digit(c) || (c != '\0' && strchr("-+/;.$_()", c) != NULL);
}

int aj_name_check(const char *what, const char *name) {
    char q[AJ__QUOTE_BUF];
    char noun[64];
    if (what == NULL) {
        what = "";
    }
    /* "update name" names itself: say "update name is empty", not "update name name ...". */
    size_t wl = strlen(what);
    if (wl >= 5 && wl < sizeof noun && strcmp(what + wl - 5, " name") == 0) {
        memcpy(noun, what, wl - 5);
        noun[wl - 5] = '\0';
        what = noun;
    }
    const char *sep = what[0] != '\0' ? " " : "";
    if (name == NULL || name[0] == '\0') {
        return aj__err(AJ_EINVAL, "%s%sname is empty", what, sep);
    }
    /* strnlen: a huge string is rejected without walking all of it. */
    if (strnlen(name, AJ_NAME_MAX + 1) > AJ_NAME_MAX) {
        return aj__err(AJ_EINVAL, "%s%sname is longer than %d bytes", what, sep, AJ_NAME_MAX);
    }
    quote(q, name);
    if (name[0] == '-') {
        return aj__err(AJ_EINVAL, "%s%sname '%s' starts with '-'", what, sep, q);
    }
    for (const char *p = name; *p != '\0'; p++) {
        if (!name_byte_ok(*p)) {
            char qc[AJ__QUOTE_BUF];
            return aj__err(AJ_EINVAL,
                           "%s%sname '%s' contains '%s' (allowed: letters, digits and -+/;.$_())",
                           what, sep, q, quote_char(qc, *p));
        }
    }
    return 0;
}

int aj_idempotency_key_check(const char *key) {
    size_t n = key != NULL ? strnlen(key, AJ_IDEMPOTENCY_KEY_MAX + 1) : 0;
    if (n == 0 || n > AJ_IDEMPOTENCY_KEY_MAX) {
        return aj__err(AJ_EINVAL, "idempotency key must be 1 to %d bytes", AJ_IDEMPOTENCY_KEY_MAX);
    }
    char q[AJ__QUOTE_BUF];
    const unsigned char *s = (const unsigned char *)key;
    for (size_t i = 0; i < n;) {
        size_t k = aj_utf8_seq(s + i, n - i);
        if (k == 0) {
            return aj__err(AJ_EINVAL, "idempotency key '%s' is not valid UTF-8 (at byte %zu)",
                           quote(q, key), i + 1);
        }
        /* C0 controls and DEL are one byte; C1 controls (U+0080-U+009F) are C2 80..C2 9F. */
        int control = (k == 1 && (s[i] < 0x20 || s[i] == 0x7f)) ||
                      (k == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0);
        if (control) {
            return aj__err(AJ_EINVAL,
                           "idempotency key '%s' contains a control character (at byte %zu)",
                           quote(q, key), i + 1);
        }
        i += k;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Backoff
 * ------------------------------------------------------------------------------------------- */

#define BACKOFF_FORMS "none, fixed:DUR, exp:INITIAL[:FACTOR[:MAX]] or list:DUR[,DUR...]"

void aj_backoff_default(aj_backoff *out) {
    assert(out != NULL);
    memset(out, 0, sizeof *out);
    out->kind = AJ_BACKOFF_EXP;
    out->initial_ms = AJ_SECOND;
    out->factor = 2.0;
    out->max_ms = 5 * AJ_MINUTE;
}

/* One delay of a spec: a duration no larger than AJ__BACKOFF_DELAY_MAX. */
static int backoff_delay_parse(const char *q, const char *what, const char *text, int64_t *ms) {
    if (text[0] == '\0') {
        return aj__err(AJ_EINVAL, "invalid backoff '%s': %s is missing", q, what);
    }
    int rc = aj_duration_parse(text, ms);
    if (rc != 0) {
        return aj__err_wrap(rc, "invalid backoff '%s'", q);
    }
    if (*ms > AJ__BACKOFF_DELAY_MAX) {
        return aj__err(AJ_EINVAL, "invalid backoff '%s': %s is longer than 1d", q, what);
    }
    return 0;
}

/* FACTOR: digits with an optional '.' and 1..3 decimals, 1 <= value <= AJ__BACKOFF_FACTOR_MAX,
 * read as an exact count of thousandths. */
static int backoff_factor_parse(const char *q, const char *text, double *factor) {
    const char *p = text;
    int64_t milli = 0;
    int digits = 0;
    while (is_digit(*p)) {
        if (milli <= (int64_t)AJ__BACKOFF_FACTOR_MAX * AJ__BACKOFF_FACTOR_SCALE) {
            milli = milli * 10 + (*p - '0') * AJ__BACKOFF_FACTOR_SCALE;
        }
        digits++;
        p++;
    }
    int decimals = 0;
    if (digits > 0 && *p == '.') {
        p++;
        int scale = AJ__BACKOFF_FACTOR_SCALE;
        while (is_digit(*p) && decimals < AJ__BACKOFF_FACTOR_DECIMALS) {
            scale /= 10;
            milli += (*p - '0') * scale;
            decimals++;
            p++;
        }
        if (decimals == 0 || is_digit(*p)) {
            digits = 0; /* "2." or more than 3 decimals */
        }
    }
    if (digits == 0 || *p != '\0' || milli < AJ__BACKOFF_FACTOR_SCALE ||
        milli > (int64_t)AJ__BACKOFF_FACTOR_MAX * AJ__BACKOFF_FACTOR_SCALE) {
        return aj__err(AJ_EINVAL,
                       "invalid backoff '%s': factor must be a decimal from 1 to %d with at most "
                       "%d decimals (like 2 or 1.5)",
                       q, AJ__BACKOFF_FACTOR_MAX, AJ__BACKOFF_FACTOR_DECIMALS);
    }
    *factor = (double)milli / AJ__BACKOFF_FACTOR_SCALE;
    return 0;
}

int aj_backoff_parse(const char *text, aj_backoff *out) {
    assert(out != NULL);
    char q[AJ__QUOTE_BUF];
    char s[AJ__BACKOFF_TEXT_MAX + 1];
    aj_backoff b;
    memset(&b, 0, sizeof b);
    if (text == NULL || text[0] == '\0') {
        return aj__err(AJ_EINVAL, "invalid backoff '': the text is empty (use " BACKOFF_FORMS ")");
    }
    quote(q, text);
    size_t len = strnlen(text, AJ__BACKOFF_TEXT_MAX + 1);
    if (len > AJ__BACKOFF_TEXT_MAX) {
        return aj__err(AJ_EINVAL, "invalid backoff '%s': longer than %d bytes", q,
                       AJ__BACKOFF_TEXT_MAX);
    }
    /* A writable copy: separators are replaced by NULs to cut it into fields. */
    memcpy(s, text, len + 1);
    char *arg = strchr(s, ':');
    if (arg != NULL) {
        *arg++ = '\0';
    }
    int rc;
    if (strcmp(s, "none") == 0) {
        if (arg != NULL) {
            return aj__err(AJ_EINVAL, "invalid backoff '%s': none takes no parameters", q);
        }
        b.kind = AJ_BACKOFF_NONE;
    } else if (strcmp(s, "fixed") == 0) {
        if (arg == NULL) {
            return aj__err(AJ_EINVAL, "invalid backoff '%s': fixed needs a delay (fixed:DUR)", q);
        }
        if (strchr(arg, ':') != NULL) {
            return aj__err(AJ_EINVAL, "invalid backoff '%s': fixed takes one delay (fixed:DUR)", q);
        }
        b.kind = AJ_BACKOFF_FIXED;
        rc = backoff_delay_parse(q, "the delay", arg, &b.initial_ms);
        if (rc != 0) {
            return rc;
        }
    } else if (strcmp(s, "exp") == 0) {
        if (arg == NULL) {
            return aj__err(AJ_EINVAL,
                           "invalid backoff '%s': exp needs an initial delay "
                           "(exp:INITIAL[:FACTOR[:MAX]])",
                           q);
        }
        char *factor = strchr(arg, ':');
        char *max = NULL;
        if (factor != NULL) {
            *factor++ = '\0';
            max = strchr(factor, ':');
            if (max != NULL) {
                *max++ = '\0';
                if (strchr(max, ':') != NULL) {
                    return aj__err(AJ_EINVAL,
                                   "invalid backoff '%s': too many fields (exp:INITIAL[:FACTOR[:"
                                   "MAX]])",
                                   q);
                }
            }
        }
        b.kind = AJ_BACKOFF_EXP;
        b.factor = 2.0;
        b.max_ms = AJ__BACKOFF_DELAY_MAX;
        rc = backoff_delay_parse(q, "the initial delay", arg, &b.initial_ms);
        if (rc == 0 && factor != NULL) {
            rc = backoff_factor_parse(q, factor, &b.factor);
        }
        if (rc == 0 && max != NULL) {
            rc = backoff_delay_parse(q, "the maximum delay", max, &b.max_ms);
            if (rc == 0 && b.max_ms < b.initial_ms) {
                rc = aj__err(AJ_EINVAL,
                             "invalid backoff '%s': the maximum delay is less than the initial "
                             "delay",
                             q);
            }
        }
        if (rc != 0) {
            return rc;
        }
    } else if (strcmp(s, "list") == 0) {
        if (arg == NULL) {
            return aj__err(AJ_EINVAL, "invalid backoff '%s': list needs delays (list:DUR[,DUR...])",
                           q);
        }
        b.kind = AJ_BACKOFF_LIST;
        char *item = arg;
        for (;;) {
            char *comma = strchr(item, ',');
            if (comma != NULL) {
                *comma = '\0';
            }
            if (b.n_delays == AJ_BACKOFF_LIST_MAX) {
                return aj__err(AJ_EINVAL, "invalid backoff '%s': more than %d delays", q,
                               AJ_BACKOFF_LIST_MAX);
            }
            rc = backoff_delay_parse(q, "a delay", item, &b.delays_ms[b.n_delays]);
            if (rc != 0) {
                return rc;
            }
            b.n_delays++;
            if (comma == NULL) {
                break;
            }
            item = comma + 1;
        }
    } else {
        return aj__err(AJ_EINVAL, "invalid backoff '%s': unknown kind (use " BACKOFF_FORMS ")", q);
    }
    *out = b;
    return 0;
}

/* The factor in thousandths, clamped to what the parser accepts: the formatter and
 * aj_backoff_delay() both use it, so a hand-built struct behaves as its text says. */
static int64_t backoff_factor_milli(const aj_backoff *b) {
    double f = b->factor;
    if (!(f >= 1.0)) { /* also NaN */
        return AJ__BACKOFF_FACTOR_SCALE;
    }
    if (f >= AJ__BACKOFF_FACTOR_MAX) {
        return (int64_t)AJ__BACKOFF_FACTOR_MAX * AJ__BACKOFF_FACTOR_SCALE;
    }
    return (int64_t)llround(f * AJ__BACKOFF_FACTOR_SCALE);
}

/* Writes FACTOR as the shortest decimal: "2", "1.5", "1.125". */
static void backoff_factor_write(text_out *o, int64_t milli) {
    int64_t whole = milli / AJ__BACKOFF_FACTOR_SCALE;
    int64_t frac = milli % AJ__BACKOFF_FACTOR_SCALE;
    out_fmt(o, "%" PRId64, whole);
    if (frac != 0) {
        int decimals = AJ__BACKOFF_FACTOR_DECIMALS;
        while (frac % 10 == 0) {
            frac /= 10;
            decimals--;
        }
        out_fmt(o, ".%0*" PRId64, decimals, frac);
    }
}

size_t aj_backoff_format(const aj_backoff *b, char *buf, size_t size) {
    assert(b != NULL);
    text_out o;
    out_init(&o, buf, size);
    switch (b->kind) {
    case AJ_BACKOFF_NONE:
        out_add(&o, "none", 4);
        break;
    case AJ_BACKOFF_FIXED:
        out_add(&o, "fixed:", 6);
        duration_write(&o, b->initial_ms);
        break;
    case AJ_BACKOFF_EXP:
        out_add(&o, "exp:", 4);
        duration_write(&o, b->initial_ms);
        out_add(&o, ":", 1);
        backoff_factor_write(&o, backoff_factor_milli(b));
        out_add(&o, ":", 1);
        duration_write(&o, b->max_ms);
        break;
    case AJ_BACKOFF_LIST: {
        uint32_t n = b->n_delays < AJ_BACKOFF_LIST_MAX ? b->n_delays : AJ_BACKOFF_LIST_MAX;
        out_add(&o, "list:", 5);
        for (uint32_t i = 0; i < n; i++) {
            if (i > 0) {
                out_add(&o, ",", 1);
            }
            duration_write(&o, b->delays_ms[i]);
        }
        break;
    }
    default:
        /* Only a corrupt stored record gets here; show it rather than stop a front end. */
        out_add(&o, "invalid", 7);
        break;
    }
    return o.len;
}

/* Keeps a delay in 0..AJ__BACKOFF_DELAY_MAX, whatever a hand-built struct holds. */
static int64_t clamp_delay(int64_t ms) {
    return ms < 0 ? 0 : ms > AJ__BACKOFF_DELAY_MAX ? AJ__BACKOFF_DELAY_MAX : ms;
}

int64_t aj_backoff_delay(const aj_backoff *b, uint32_t attempt) {
    assert(b != NULL);
    if (attempt == 0) {
        attempt = 1; /* there is no retry 0: treat it as the first */
    }
    switch (b->kind) {
    case AJ_BACKOFF_NONE:
        return 0;
    case AJ_BACKOFF_FIXED:
        return clamp_delay(b->initial_ms);
    case AJ_BACKOFF_EXP: {
        int64_t initial = clamp_delay(b->initial_ms);
        int64_t cap = clamp_delay(b->max_ms);
        if (initial == 0 || cap == 0) {
            return 0; /* and 0 * infinity below would be NaN */
        }
        double factor = (double)backoff_factor_milli(b) / AJ__BACKOFF_FACTOR_SCALE;
        /* pow() saturates to infinity for huge attempts, so nothing overflows; the comparison
         * is written so that NaN would also pick the cap. */
        double d = (double)initial * pow(factor, (double)(attempt - 1));
        if (!(d < (double)cap)) {
            return cap;
        }
        return (int64_t)d;
    }
    case AJ_BACKOFF_LIST: {
        uint32_t n = b->n_delays < AJ_BACKOFF_LIST_MAX ? b->n_delays : AJ_BACKOFF_LIST_MAX;
        if (n == 0) {
            return 0;
        }
        return clamp_delay(b->delays_ms[(attempt < n ? attempt : n) - 1]);
    }
    default:
        return 0; /* a corrupt stored kind: retry like `none` rather than stop the engine */
    }
}

/* ---------------------------------------------------------------------------------------------
 * Times
 * ------------------------------------------------------------------------------------------- */

/* Reads exactly n digits at *p. */
static int digits_n(const char **p, int n, int64_t *v) {
    int64_t r = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i])) {
            return -1;
        }
        r = r * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = r;
    return 0;
}

#define TIME_EXAMPLE "like 2026-03-08T07:00:00Z"

int aj_time_parse(const char *text, int64_t *out_ms) {
    assert(out_ms != NULL);
    char q[AJ__QUOTE_BUF];
    if (text == NULL || text[0] == '\0') {
        return aj__err(AJ_EINVAL,
                       "invalid time '': the text is empty (use RFC 3339 " TIME_EXAMPLE ")");
    }
    quote(q, text);
    const char *p = text;
    int64_t y, mo, d, h, mi, s, ms = 0;
    if (digits_n(&p, 4, &y) != 0 || *p++ != '-' || digits_n(&p, 2, &mo) != 0 || *p++ != '-' ||
        digits_n(&p, 2, &d) != 0) {
        return aj__err(AJ_EINVAL,
                       "invalid time '%s': expected a date YYYY-MM-DD (" TIME_EXAMPLE ")", q);
    }
    if (*p != 'T' && *p != 't') {
        return aj__err(
            AJ_EINVAL,
            "invalid time '%s': expected 'T' and a time after the date (" TIME_EXAMPLE ")", q);
    }
    p++;
    if (digits_n(&p, 2, &h) != 0 || *p++ != ':' || digits_n(&p, 2, &mi) != 0 || *p++ != ':' ||
        digits_n(&p, 2, &s) != 0) {
        return aj__err(AJ_EINVAL, "invalid time '%s': expected a time HH:MM:SS (" TIME_EXAMPLE ")",
                       q);
    }
    if (*p == '.') {
        p++;
        int n = 0;
        while (is_digit(*p)) {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            }
            n++;
            p++;
        }
        if (n == 0) {
            return aj__err(AJ_EINVAL, "invalid time '%s': expected digits after '.'", q);
        }
        if (n > AJ__TIME_FRAC_DIGITS_MAX) {
            return aj__err(AJ_EINVAL, "invalid time '%s': more than %d fractional digits", q,
                           AJ__TIME_FRAC_DIGITS_MAX);
        }
        for (; n < 3; n++) {
            ms *= 10; /* ".25" is 250 ms */
        }
    }
    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int neg = *p == '-';
        int64_t oh, om;
        p++;
        if (digits_n(&p, 2, &oh) != 0 || *p++ != ':' || digits_n(&p, 2, &om) != 0) {
            return aj__err(AJ_EINVAL, "invalid time '%s': expected an offset +HH:MM or -HH:MM", q);
        }
        if (oh > AJ__TIME_OFFSET_HOUR_MAX || om > 59) {
            return aj__err(AJ_EINVAL, "invalid time '%s': offset is out of range (-23:59..+23:59)",
                           q);
        }
        offset_min = (neg ? -1 : 1) * (oh * 60 + om);
    } else {
        return aj__err(AJ_EINVAL,
                       "invalid time '%s': expected a time zone offset (Z or +HH:MM) after the "
                       "time",
                       q);
    }
    if (*p != '\0') {
        return aj__err(AJ_EINVAL, "invalid time '%s': unexpected text after the offset", q);
    }
    if (mo < 1 || mo > 12) {
        return aj__err(AJ_EINVAL, "invalid time '%s': month %02" PRId64 " is out of range (01-12)",
                       q, mo);
    }
    if (d < 1 || d > aj__days_in_month(y, (int)mo)) {
        return aj__err(AJ_EINVAL,
                       "invalid time '%s': day %02" PRId64 " is out of range (%04" PRId64
                       "-%02" PRId64 " has %d days)",
                       q, d, y, mo, aj__days_in_month(y, (int)mo));
    }
    if (h > 23) {
        return aj__err(AJ_EINVAL, "invalid time '%s': hour %02" PRId64 " is out of range (00-23)",
                       q, h);
    }
    if (mi > 59) {
        return aj__err(AJ_EINVAL, "invalid time '%s': minute %02" PRId64 " is out of range (00-59)",
                       q, mi);
    }
    if (s > 60) {
        return aj__err(AJ_EINVAL, "invalid time '%s': second %02" PRId64 " is out of range (00-60)",
                       q, s);
    }
    /* Second 60 simply adds up to the next minute's first second, as in POSIX time. */
    int64_t secs =
        aj__days_from_civil(y, (int)mo, (int)d) * 86400 + h * 3600 + mi * 60 + s - offset_min * 60;
    int64_t t = secs * 1000 + ms;
    /* An offset (or a leap second) can move a time past year 0000 or 9999 in UTC, where the
     * formatter could not write it back. */
    if (t < AJ__TIME_MIN_MS || t > AJ__TIME_MAX_MS) {
        return aj__err(AJ_EINVAL, "invalid time '%s': outside the years 0000..9999 in UTC", q);
    }
    *out_ms = t;
    return 0;
}

size_t aj_time_format(int64_t ms, char *buf, size_t size) {
    /* Floor division without multiplying back, so INT64_MIN cannot overflow. */
    int64_t days = ms / AJ_DAY;
    int64_t rem = ms % AJ_DAY;
    if (rem < 0) {
        rem += AJ_DAY;
        days--;
    }
    int64_t y;
    int mo, d;
    aj__civil_from_days(days, &y, &mo, &d);
    text_out o;
    out_init(&o, buf, size);
    /* Years outside 0000..9999 get a sign (ISO 8601 expanded form); the parser rejects them. */
    if (y >= 0 && y <= 9999) {
        out_fmt(&o, "%04" PRId64, y);
    } else {
        out_fmt(&o, "%+05" PRId64, y);
    }
    out_fmt(&o, "-%02d-%02dT%02" PRId64 ":%02" PRId64 ":%02" PRId64, mo, d, rem / AJ_HOUR,
            rem / AJ_MINUTE % 60, rem / AJ_SECOND % 60);
    if (rem % AJ_SECOND != 0) {
        out_fmt(&o, ".%03" PRId64, rem % AJ_SECOND);
    }
    out_add(&o, "Z", 1);
    return o.len;
}
