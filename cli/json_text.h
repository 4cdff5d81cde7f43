/*
 * json_text.h — checking JSON text exactly as RFC 8259 defines it, and compacting it.
 *
 * A payload is a JSON value kept as the bytes the user gave. jansson cannot stand in for the
 * grammar: it refuses valid text it cannot represent (integers beyond 64 bits, 1e999), and
 * re-encoding through it would change the value (duplicate keys, number spelling). So the CLI
 * checks payloads with this scanner and prints them by splicing the compact text itself.
 */
#ifndef AJ_CLI_JSON_TEXT_H
#define AJ_CLI_JSON_TEXT_H

#include <stddef.h>

/* Deepest nesting of arrays and objects accepted (jansson's own limit, so nothing the CLI
 * accepted before is refused now). */
#define JTEXT_DEPTH_MAX 2048
/* Bytes of an error description, and its NUL. */
#define JTEXT_WHY_MAX 128

/* Where and why text is not JSON. Lines and columns count from 1; columns count characters. */
typedef struct jtext_error {
    size_t line;
    size_t column;
    char why[JTEXT_WHY_MAX];
} jtext_error;

/* Checks that text[0..len) is exactly one JSON value, optionally surrounded by whitespace.
 * Strings must be valid UTF-8 and their \u escapes must not leave a surrogate unpaired. With
 * `compact` non-NULL, the value without insignificant whitespace is written there; the caller
 * provides `len` bytes, which always suffice, and *compact_len receives the length. Returns 0,
 * or -1 with `err` filled (when non-NULL). */
int jtext_check(const char *text, size_t len, char *compact, size_t *compact_len, jtext_error *err);

/* The length of the valid UTF-8 sequence at s (at most n bytes, n > 0), or 0 when it is not
 * valid (overlong, a surrogate, beyond U+10FFFF, or cut short). */
size_t jtext_utf8_seq(const unsigned char *s, size_t n);

#endif
