/*
 * buf.h — a growable byte buffer, and a bounds-checked reader over bytes.
 *
 * Numbers inside keys are fixed-width big-endian so that memcmp order is numeric order. Records use
 * the same helpers plus length-prefixed byte strings. The reader never reads past its end: a short
 * or malformed input sets `bad` and every later read returns zeros, so a decoder checks once.
 */
#ifndef AJ_UTIL_BUF_H
#define AJ_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct aj_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
    int oom; /* set when an append could not allocate; the content is then incomplete */
} aj_buf;

#define AJ_BUF_INIT                                                                                \
    { NULL, 0, 0, 0 }

void aj__buf_free(aj_buf *b);
void aj__buf_reset(aj_buf *b);
/* Ensures room for n more bytes: 0 or AJ_ENOMEM (and sets oom). */
int aj__buf_reserve(aj_buf *b, size_t n);
void aj__buf_add(aj_buf *b, const void *p, size_t n);
void aj__buf_add_u8(aj_buf *b, uint8_t v);
void aj__buf_add_u32be(aj_buf *b, uint32_t v);
void aj__buf_add_u64be(aj_buf *b, uint64_t v);
/* A string followed by a NUL separator (for variable-length parts of keys). */
void aj__buf_add_cstr0(aj_buf *b, const char *s);
/* A varint (LEB128) length followed by the bytes. */
void aj__buf_add_varint(aj_buf *b, uint64_t v);
/* A signed value as a zig-zag varint, so that small negative values stay small and round-trip
 * (the form every record codec uses for times and other int64 fields). */
void aj__buf_add_svarint(aj_buf *b, int64_t v);
void aj__buf_add_bytes(aj_buf *b, const void *p, size_t n);
/* formatted text (no NUL) */
void aj__buf_printf(aj_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a NUL without counting it in len, so b->p is a C string. */
void aj__buf_nul(aj_buf *b);

void aj__put_u32be(uint8_t *p, uint32_t v);
void aj__put_u64be(uint8_t *p, uint64_t v);
uint32_t aj__get_u32be(const uint8_t *p);
uint64_t aj__get_u64be(const uint8_t *p);

typedef struct aj_rd {
    const uint8_t *p;
    size_t len;
    size_t off;
    int bad;
} aj_rd;

void aj__rd_init(aj_rd *r, const void *p, size_t len);
uint8_t aj__rd_u8(aj_rd *r);
uint32_t aj__rd_u32be(aj_rd *r);
uint64_t aj__rd_u64be(aj_rd *r);
uint64_t aj__rd_varint(aj_rd *r);
/* The inverse of aj__buf_add_svarint. */
int64_t aj__rd_svarint(aj_rd *r);
/* A varint-prefixed byte string: returns a pointer into the input and its length. */
const uint8_t *aj__rd_bytes(aj_rd *r, size_t *len);
/* Reads n raw bytes. */
const uint8_t *aj__rd_raw(aj_rd *r, size_t n);

#endif
