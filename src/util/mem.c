/*
 * mem.c — allocation wrappers with a fault-injection counter (see mem.h). The counter is atomic
 * so the wrappers stay cheap and thread-safe when injection is disarmed.
 */
#include "aj.h"
#include "util/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong fail_countdown;

static int should_fail(void) {
    unsigned long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n == 0) {
        return 0;
    }
    while (n != 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1)) {
            return n == 1;
        }
    }
    return 0;
}

void aj__mem_fail_at(unsigned long n) {
    atomic_store(&fail_countdown, n);
}

void *aj__malloc(size_t n) {
    return should_fail() ? NULL : malloc(n == 0 ? 1 : n);
}

void *aj__calloc(size_t count, size_t size) {
    return should_fail() ? NULL : calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
}

void *aj__realloc(void *p, size_t n) {
    return should_fail() ? NULL : realloc(p, n == 0 ? 1 : n);
}

void aj__free(void *p) {
    free(p);
}

char *aj__strdup(const char *s) {
    if (s == NULL) {
        return NULL;
    }
    return aj__memdup0(s, strlen(s));
}

void *aj__copy0(void *d, const void *p, size_t n) {
    if (d == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(d, p, n);
    }
    ((char *)d)[n] = '\0';
    return d;
}

void *aj__memdup0(const void *p, size_t n) {
    return aj__copy0(aj__malloc(n + 1), p, n);
}

void aj_free(void *p) {
    aj__free(p);
}

void *aj__grow(void *v, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) {
        return v;
    }
    size_t want = *cap ? *cap * 2 : 16;
    void *nv = aj__realloc(v, want * elem);
    if (nv != NULL) {
        *cap = want;
    }
    return nv;
}
