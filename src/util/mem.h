/*
 * mem.h — every allocation of the library goes through these wrappers, so that tests can make
 * the Nth allocation fail and check that each caller handles it.
 */
#ifndef AJ_UTIL_MEM_H
#define AJ_UTIL_MEM_H

#include <stddef.h>

void *aj__malloc(size_t n);
void *aj__calloc(size_t count, size_t size);
void *aj__realloc(void *p, size_t n);
void aj__free(void *p);
/* Copies a string (NULL gives NULL without failing). */
char *aj__strdup(const char *s);
/* Copies n bytes and appends a NUL not counted in n. */
void *aj__memdup0(const void *p, size_t n);
/* The copy itself, into d of n + 1 bytes (NULL: returns NULL); shared with the arena's dup. */
void *aj__copy0(void *d, const void *p, size_t n);

/* Room for one more element in a growable array of `n` elements and capacity *cap (doubling,
 * from 16): returns the array (moved or not), or NULL when out of memory, leaving `v` and *cap
 * as they were. */
void *aj__grow(void *v, size_t *cap, size_t n, size_t elem);

/* Fault injection: the Nth allocation from now fails (1 = the next); 0 disarms. */
void aj__mem_fail_at(unsigned long n);

#endif
