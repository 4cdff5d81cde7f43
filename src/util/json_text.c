/*
 * json_text.c — an RFC 8259 scanner that checks one JSON value and writes its compact form
 * (aj_json_check in aj.h). The one JSON grammar check of the library and of `aj`.
 *
 * It never builds a tree: one pass over the bytes with an explicit stack of open containers, so
 * neither deep nesting nor a 1 MiB payload costs more than the bytes themselves. Numbers are
 * checked against the grammar only; their size is the reader's business, as RFC 8259 says.
 */
#include "aj.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct scan {
    const unsigned char *p;
    size_t n;
    size_t i;
    char *out; /* NULL: check only */
    size_t o;
    size_t line;       /* of p[i], from 1 */
    size_t line_start; /* index of the first byte of that line */
    aj_json_error *err;
} scan;

size_t aj_utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    int overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

static int fail(scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(scan *s, const char *fmt, ...) {
    if (s->err == NULL) {
        return -1;
    }
    s->err->line = s->line;
    /* Columns count characters, so a message about line 1 of a UTF-8 text points right. */
    size_t col = 1;
    for (size_t k = s->line_start; k < s->i && k < s->n; k++) {
        col += (s->p[k] & 0xC0) != 0x80;
    }
    s->err->column = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err->why, sizeof s->err->why, fmt, ap);
    va_end(ap);
    return -1;
}

/* Names the byte at the scan position for a message: 'x', or byte 0xNN. */
static const char *what(const scan *s, char *buf, size_t size) {
    if (s->i >= s->n) {
        snprintf(buf, size, "the end of the text");
    } else if (s->p[s->i] > 0x20 && s->p[s->i] < 0x7F) {
        snprintf(buf, size, "'%c'", s->p[s->i]);
    } else {
        snprintf(buf, size, "byte 0x%02X", s->p[s->i]);
    }
    return buf;
}

static int unexpected(scan *s, const char *wanted) {
    char buf[32];
    return fail(s, "expected %s, found %s", wanted, what(s, buf, sizeof buf));
}

static void emit(scan *s, size_t from, size_t to) {
    if (s->out != NULL) {
        memcpy(s->out + s->o, s->p + from, to - from);
        s->o += to - from;
    }
}

static void skip_ws(scan *s) {
    while (s->i < s->n) {
        unsigned char c = s->p[s->i];
        if (c == '\n') {
            s->line++;
            s->line_start = s->i + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        s->i++;
    }
}

static int hex4(scan *s, size_t at, unsigned *out) {
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        if (at + k >= s->n) {
            return -1;
        }
        unsigned char c = s->p[at + k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) {
            return -1;
        }
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* A string, from its opening quote to its closing one, copied as it is. */
static int string(scan *s) {
    size_t start = s->i;
    if (s->i >= s->n || s->p[s->i] != '"') {
        return unexpected(s, "a string");
    }
    s->i++;
    for (;;) {
        if (s->i >= s->n) {
            s->i = start;
            return fail(s, "the string starting here has no closing quote");
        }
        unsigned char c = s->p[s->i];
        if (c == '"') {
            s->i++;
            emit(s, start, s->i);
            return 0;
        }
        if (c < 0x20) {
            return fail(s, "control character 0x%02X inside a string (write it as \\u%04X)", c, c);
        }
        if (c >= 0x80) {
            size_t k = aj_utf8_seq(s->p + s->i, s->n - s->i);
            if (k == 0) {
                return fail(s, "invalid UTF-8 (byte 0x%02X) inside a string", c);
            }
            s->i += k;
            continue;
        }
        if (c != '\\') {
            s->i++;
            continue;
        }
        unsigned char e = s->i + 1 < s->n ? s->p[s->i + 1] : 0;
        if (e != 'u') {
            if (e == 0 || strchr("\"\\/bfnrt", e) == NULL) {
                return fail(s, "invalid escape in a string (use \\\" \\\\ \\/ \\b \\f \\n "
                               "\\r \\t or \\uXXXX)");
            }
            s->i += 2;
            continue;
        }
        unsigned u = 0;
        if (hex4(s, s->i + 2, &u) != 0) {
            return fail(s, "\\u must be followed by four hex digits");
        }
        if (u >= 0xDC00 && u <= 0xDFFF) {
            return fail(s, "\\u%04X is a low surrogate without a high one before it", u);
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
            unsigned lo = 0;
            if (s->i + 7 >= s->n || s->p[s->i + 6] != '\\' || s->p[s->i + 7] != 'u' ||
                hex4(s, s->i + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                return fail(s, "\\u%04X is a high surrogate without a low one after it", u);
            }
            s->i += 6;
        }
        s->i += 6;
    }
}

static int digits(scan *s) {
    size_t from = s->i;
    while (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9') {
        s->i++;
    }
    return s->i > from ? 0 : -1;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(scan *s) {
    size_t start = s->i;
    if (s->p[s->i] == '-') {
        s->i++;
    }
    if (s->i < s->n && s->p[s->i] == '0') {
        s->i++;
        if (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9') {
            return fail(s, "a number may not start with 0 unless it is 0");
        }
    } else if (digits(s) != 0) {
        return unexpected(s, "a digit");
    }
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (digits(s) != 0) {
            return unexpected(s, "a digit after the decimal point");
        }
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-')) {
            s->i++;
        }
        if (digits(s) != 0) {
            return unexpected(s, "a digit in the exponent");
        }
    }
    emit(s, start, s->i);
    return 0;
}

static int literal(scan *s, const char *word) {
    size_t len = strlen(word);
    if (s->n - s->i < len || memcmp(s->p + s->i, word, len) != 0) {
        return fail(s, "expected %s (literals are true, false and null, in lower case)", word);
    }
    emit(s, s->i, s->i + len);
    s->i += len;
    return 0;
}

/* An object member's key and its colon, the scan left at the member's value. */
static int key(scan *s) {
    skip_ws(s);
    if (s->i >= s->n || s->p[s->i] != '"') {
        return unexpected(s, "a string key");
    }
    if (string(s) != 0) {
        return -1;
    }
    skip_ws(s);
    if (s->i >= s->n || s->p[s->i] != ':') {
        return unexpected(s, "':' after the key");
    }
    emit(s, s->i, s->i + 1);
    s->i++;
    return 0;
}

int aj_json_check(const char *text, size_t len, char *compact, size_t *compact_len,
                  aj_json_error *err) {
    scan s = {(const unsigned char *)text, len, 0, compact, 0, 1, 0, err};
    unsigned char open[AJ_JSON_DEPTH_MAX]; /* '[' or '{' for each container not yet closed */
    size_t depth = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        /* Editors on some systems add one; the byte-level message would not say what it is. */
        return fail(&s, "a UTF-8 byte order mark is not JSON (save the text without it)");
    }
    skip_ws(&s);
    if (s.i >= s.n) {
        return fail(&s, "no JSON value (the text is empty or blank)");
    }
    for (;;) {
        /* A value. */
        skip_ws(&s);
        if (s.i >= s.n) {
            return unexpected(&s, "a JSON value");
        }
        unsigned char c = s.p[s.i];
        int rc = 0;
        if (c == '[' || c == '{') {
            if (depth == AJ_JSON_DEPTH_MAX) {
                return fail(&s, "arrays and objects nest deeper than %d", AJ_JSON_DEPTH_MAX);
            }
            open[depth++] = c;
            emit(&s, s.i, s.i + 1);
            s.i++;
            skip_ws(&s);
            unsigned char close = c == '[' ? ']' : '}';
            if (s.i < s.n && s.p[s.i] == close) {
                emit(&s, s.i, s.i + 1);
                s.i++;
                depth--;
            } else if (c == '{') {
                if (key(&s) != 0) {
                    return -1;
                }
                continue;
            } else {
                continue;
            }
        } else if (c == '"') {
            rc = string(&s);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = number(&s);
        } else if (c == 't') {
            rc = literal(&s, "true");
        } else if (c == 'f') {
            rc = literal(&s, "false");
        } else if (c == 'n') {
            rc = literal(&s, "null");
        } else {
            rc = unexpected(&s, "a JSON value");
        }
        if (rc != 0) {
            return -1;
        }
        /* After a value: close containers, or go on to the next element. */
        for (;;) {
            skip_ws(&s);
            if (depth == 0) {
                if (s.i < s.n) {
                    char buf[32];
                    return fail(&s, "unexpected %s after the JSON value",
                                what(&s, buf, sizeof buf));
                }
                if (compact_len != NULL) {
                    *compact_len = s.o;
                }
                return 0;
            }
            unsigned char top = open[depth - 1];
            unsigned char close = top == '[' ? ']' : '}';
            if (s.i < s.n && s.p[s.i] == close) {
                emit(&s, s.i, s.i + 1);
                s.i++;
                depth--;
                continue;
            }
            if (s.i >= s.n || s.p[s.i] != ',') {
                return unexpected(&s, top == '[' ? "',' or ']'" : "',' or '}'");
            }
            emit(&s, s.i, s.i + 1);
            s.i++;
            if (top == '{' && key(&s) != 0) {
                return -1;
            }
            break;
        }
    }
}
