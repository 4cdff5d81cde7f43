/*
 * arena.h — a chunked bump allocator: many small copies freed together (the events and results a
 * workflow task holds while it runs). Pointers stay valid until aj__arena_free.
 */
#ifndef AJ_UTIL_ARENA_H
#define AJ_UTIL_ARENA_H

#include <stddef.h>

typedef struct aj_arena_chunk aj_arena_chunk;

typedef struct aj_arena {
    aj_arena_chunk *head;
    size_t used, cap; /* of the head chunk */
} aj_arena;

#define AJ_ARENA_INIT                                                                              \
    { NULL, 0, 0 }

/* n bytes aligned for any type; NULL when out of memory. */
void *aj__arena_alloc(aj_arena *a, size_t n);
/* A copy of n bytes followed by a NUL (not counted). */
void *aj__arena_dup(aj_arena *a, const void *p, size_t n);
void aj__arena_free(aj_arena *a);

#endif
