/*
 * lines.c — splits a payload-lines file into one span per line and validates every line as one
 * JSON value before anything is submitted (see lines.h).
 *
 * Invariants: spans point into the caller's text in order, never include a CR or LF, and each
 * holds exactly one JSON value (aj_json_check: the RFC 8259 grammar, trailing garbage refused) of
 * at most AJ_PAYLOAD_MAX bytes, whitespace around it not counted. The line count is checked against
 * AJ_BATCH_MAX before any line is parsed, so a huge file fails fast. Nothing is written to the
 * out-parameters unless every line is valid.
 *
 * Layer: util; depends on err.h, mem.h and json_text.c.
 */
#include "util/lines.h"

#include <assert.h>
#include <string.h>

#include "util/err.h"
#include "util/mem.h"

/* The size limit is written in MiB in messages. */
_Static_assert(AJ_PAYLOAD_MAX % ((size_t)1 << 20) == 0, "AJ_PAYLOAD_MAX is whole MiB");

/* Bytes of the scanner's error text copied into a message. */
#define AJ__LINES_ERRTEXT_MAX 160

/* Copies the scanner's error text with control and non-ASCII bytes escaped, so the message stays
 * one printable line whatever bytes the offending token held. */
static void escape_text(char *dst, size_t size, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0' && i < AJ__LINES_ERRTEXT_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 5 > size) {
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
}

/* 1 if the line holds only JSON whitespace (CR included: one may remain inside a line). */
static int is_blank(const char *p, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

/* The bounds of the line starting at `off`: its content length (without CR/LF) and where the
 * next line starts. */
static void next_line(const char *text, size_t len, size_t off, size_t *line_len, size_t *next) {
    const char *lf = memchr(text + off, '\n', len - off);
    size_t end = lf != NULL ? (size_t)(lf - text) : len;
    *next = lf != NULL ? end + 1 : len;
    if (end > off && text[end - 1] == '\r') {
        end--;
    }
    *line_len = end - off;
}

static int is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int check_line(const char *p, size_t len, size_t lineno) {
    /* The limit is on the value: whitespace around it is not counted. */
    size_t b = 0, e = len;
    while (b < e && is_json_space(p[b])) {
        b++;
    }
    while (e > b && is_json_space(p[e - 1])) {
        e--;
    }
    if (e - b > AJ_PAYLOAD_MAX) {
        return aj__err(AJ_ETOOBIG, "line %zu is %zu bytes, over the %zu MiB limit", lineno, e - b,
                       AJ_PAYLOAD_MAX >> 20);
    }
    if (is_blank(p, len)) {
        return aj__err(AJ_EINVAL, "line %zu is blank (each line must hold one JSON value)", lineno);
    }
    aj_json_error jerr;
    if (aj_json_check(p, len, NULL, NULL, &jerr) != 0) {
        char text[AJ__LINES_ERRTEXT_MAX * 4 + 1];
        escape_text(text, sizeof text, jerr.why);
        return aj__err(AJ_EINVAL, "line %zu is not valid JSON: column %zu: %s", lineno, jerr.column,
                       text);
    }
    return 0;
}

int aj_payload_lines_split(const char *text, size_t len, aj_span **out, size_t *n) {
    assert(out != NULL && n != NULL);
    assert(text != NULL || len == 0);
    if (len == 0) {
        return aj__err(AJ_EINVAL, "the text holds no lines");
    }
    /* Count first: every LF ends a line, and so does the end of text after a last line without
     * one. */
    size_t count = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        count++;
        if (count > AJ_BATCH_MAX) {
            return aj__err(AJ_ETOOBIG, "payload lines are over the batch limit of %d",
                           AJ_BATCH_MAX);
        }
        if (lf == NULL) {
            break;
        }
        p = lf + 1;
    }
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        size_t line_len, next;
        next_line(text, len, off, &line_len, &next);
        int rc = check_line(text + off, line_len, i + 1);
        if (rc != 0) {
            return rc;
        }
        off = next;
    }
    assert(off == len);
    aj_span *spans = aj__malloc(count * sizeof *spans);
    if (spans == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory for %zu payload lines", count);
    }
    off = 0;
    for (size_t i = 0; i < count; i++) {
        size_t line_len, next;
        next_line(text, len, off, &line_len, &next);
        spans[i].off = off;
        spans[i].len = line_len;
        off = next;
    }
    *out = spans;
    *n = count;
    return 0;
}
