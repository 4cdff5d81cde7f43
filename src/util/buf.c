/*
 * buf.c — growable buffer and bounds-checked reader (see buf.h).
 */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "aj.h"
#include "util/mem.h"

void aj__buf_free(aj_buf *b) {
    aj__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void aj__buf_reset(aj_buf *b) {
    b->len = 0;
    b->oom = 0;
}

int aj__buf_reserve(aj_buf *b, size_t n) {
    if (b->oom) {
        return AJ_ENOMEM;
    }
    if (n <= b->cap - b->len) {
        return 0;
    }
    size_t want = b->len + n;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want) {
        cap *= 2;
    }
    uint8_t *p = aj__realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return AJ_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void aj__buf_add(aj_buf *b, const void *p, size_t n) {
    if (n == 0 || aj__buf_reserve(b, n) != 0) {
        return;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void aj__buf_add_u8(aj_buf *b, uint8_t v) {
    aj__buf_add(b, &v, 1);
}

void aj__buf_add_u32be(aj_buf *b, uint32_t v) {
    uint8_t t[4];
    aj__put_u32be(t, v);
    aj__buf_add(b, t, 4);
}

void aj__buf_add_u64be(aj_buf *b, uint64_t v) {
    uint8_t t[8];
    aj__put_u64be(t, v);
    aj__buf_add(b, t, 8);
}

void aj__buf_add_cstr0(aj_buf *b, const char *s) {
    aj__buf_add(b, s, strlen(s) + 1);
}

void aj__buf_add_varint(aj_buf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        t[n++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
    aj__buf_add(b, t, n);
}

void aj__buf_add_svarint(aj_buf *b, int64_t v) {
    aj__buf_add_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void aj__buf_add_bytes(aj_buf *b, const void *p, size_t n) {
    aj__buf_add_varint(b, n);
    aj__buf_add(b, p, n);
}

void aj__buf_printf(aj_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof small) {
        aj__buf_add(b, small, (size_t)n);
        return;
    }
    if (aj__buf_reserve(b, (size_t)n + 1) != 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void aj__buf_nul(aj_buf *b) {
    if (aj__buf_reserve(b, 1) == 0) {
        b->p[b->len] = '\0';
    }
}

void aj__put_u32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void aj__put_u64be(uint8_t *p, uint64_t v) {
    aj__put_u32be(p, (uint32_t)(v >> 32));
    aj__put_u32be(p + 4, (uint32_t)v);
}

uint32_t aj__get_u32be(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t aj__get_u64be(const uint8_t *p) {
    return ((uint64_t)aj__get_u32be(p) << 32) | aj__get_u32be(p + 4);
}

void aj__rd_init(aj_rd *r, const void *p, size_t len) {
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = 0;
}

const uint8_t *aj__rd_raw(aj_rd *r, size_t n) {
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t aj__rd_u8(aj_rd *r) {
    const uint8_t *p = aj__rd_raw(r, 1);
    return p ? p[0] : 0;
}

uint32_t aj__rd_u32be(aj_rd *r) {
    const uint8_t *p = aj__rd_raw(r, 4);
    return p ? aj__get_u32be(p) : 0;
}

uint64_t aj__rd_u64be(aj_rd *r) {
    const uint8_t *p = aj__rd_raw(r, 8);
    return p ? aj__get_u64be(p) : 0;
}

uint64_t aj__rd_varint(aj_rd *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        const uint8_t *p = aj__rd_raw(r, 1);
        if (p == NULL) {
            return 0;
        }
        v |= (uint64_t)(p[0] & 0x7f) << shift;
        if ((p[0] & 0x80) == 0) {
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

int64_t aj__rd_svarint(aj_rd *r) {
    uint64_t u = aj__rd_varint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

const uint8_t *aj__rd_bytes(aj_rd *r, size_t *len) {
    uint64_t n = aj__rd_varint(r);
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        *len = 0;
        return NULL;
    }
    *len = (size_t)n;
    return aj__rd_raw(r, (size_t)n);
}
