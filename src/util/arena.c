/*
 * arena.c — chunked bump allocation (see arena.h). Large requests get a chunk of their own.
 */
#include "util/arena.h"

#include <string.h>

#include "util/mem.h"

#define ARENA_CHUNK 65536 /* bytes of an ordinary chunk */

struct aj_arena_chunk {
    aj_arena_chunk *next;
    max_align_t data[];
};

void *aj__arena_alloc(aj_arena *a, size_t n) {
    size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (a->head == NULL || a->cap - a->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        aj_arena_chunk *c = aj__malloc(sizeof *c + cap);
        if (c == NULL) {
            return NULL;
        }
        if (a->head != NULL && n > ARENA_CHUNK) {
            /* Keep filling the current chunk: put the big one behind it. */
            c->next = a->head->next;
            a->head->next = c;
            return c->data;
        }
        c->next = a->head;
        a->head = c;
        a->used = 0;
        a->cap = cap;
    }
    void *p = (char *)a->head->data + a->used;
    a->used += n;
    return p;
}

void *aj__arena_dup(aj_arena *a, const void *p, size_t n) {
    return aj__copy0(aj__arena_alloc(a, n + 1), p, n);
}

void aj__arena_free(aj_arena *a) {
    aj_arena_chunk *c = a->head;
    while (c != NULL) {
        aj_arena_chunk *next = c->next;
        aj__free(c);
        c = next;
    }
    a->head = NULL;
    a->used = a->cap = 0;
}
