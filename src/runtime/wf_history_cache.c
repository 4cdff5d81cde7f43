/*
 * wf_history_cache.c — the process's cache of recently run workflow histories. A task takes its
 * workflow's entry out (wf_context.c, aj__wf_load) and puts it back only once its transaction
 * committed (aj__wf_cache_put from aj__wf_task_done), so an entry always matches committed
 * history and two tasks never share one; an entry of another run, or ahead of the stored
 * history, is dropped. Bounded by entries and by events in all (LRU). Runtime layer: holds a
 * mutex; the engine owns the cache (engine.h) and frees it on close.
 */
#include <pthread.h>
#include <string.h>

#include "runtime/engine.h"
#include "runtime/wf_ctx.h"
#include "util/err.h"
#include "util/mem.h"

/* ----------------------------------------------------------------------------------------- */
/* The history cache                                                                          */

/* Histories of recently run workflows kept by this process, so a wake-up reads only the events
 * appended since (usually the inbox it drains) instead of the whole history. A task takes its
 * workflow's entry out of the cache and puts it back only after its transaction committed, so
 * an entry always matches committed history, and two tasks never share one. */
#define WF_CACHE_ENTRIES 512    /* workflows kept */
#define WF_CACHE_EVENTS 2000000 /* events kept in all */

struct aj__wf_cache {
    pthread_mutex_t mu;
    wf_cache_entry entries[WF_CACHE_ENTRIES];
    size_t n;
    size_t events; /* in all entries */
    uint64_t clock;
};

void wfx_cache_entry_free(wf_cache_entry *c) {
    aj__free(c->id);
    aj__free(c->events);
    aj__free(c->consumed);
    aj__arena_free(&c->arena);
    memset(c, 0, sizeof *c);
}

aj__wf_cache *wfx_cache_of(aj_engine *e) {
    pthread_mutex_lock(&e->mu);
    if (e->wf_cache == NULL) {
        aj__wf_cache *c = aj__calloc(1, sizeof *c);
        if (c != NULL) {
            pthread_mutex_init(&c->mu, NULL);
        }
        e->wf_cache = c;
    }
    aj__wf_cache *c = e->wf_cache;
    pthread_mutex_unlock(&e->mu);
    return c;
}

void aj__wf_cache_free(aj__wf_cache *c) {
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        wfx_cache_entry_free(&c->entries[i]);
    }
    pthread_mutex_destroy(&c->mu);
    aj__free(c);
}

/* Removes and returns the entry of a workflow (found=0 when there is none). */
int wfx_cache_take(aj__wf_cache *c, aj_slice id, wf_cache_entry *out) {
    int found = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        if (aj__slice_eq(id, c->entries[i].id)) {
            *out = c->entries[i];
            c->events -= out->n;
            c->entries[i] = c->entries[--c->n];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* Puts a committed task's history into the cache (consuming wf). */
void aj__wf_cache_put(aj_engine *e, aj_wf *wf) {
    aj__wf_cache *c = wfx_cache_of(e);
    char *id = c ? aj__memdup0(wf->w.id.p, wf->w.id.n) : NULL;
    if (c == NULL || id == NULL || wf->n_events > WF_CACHE_EVENTS) {
        aj__free(id);
        aj__wf_free(wf);
        return;
    }
    wf_cache_entry ent = {id,           wf->w.run,    wf->w.seq,      wf->w.last_id, wf->events,
                          wf->consumed, wf->n_events, wf->cap_events, wf->arena,     0};
    wf->events = NULL;
    wf->consumed = NULL;
    memset(&wf->arena, 0, sizeof wf->arena);
    aj__wf_free(wf);
    pthread_mutex_lock(&c->mu);
    ent.used = ++c->clock;
    while (c->n > 0 && (c->n == WF_CACHE_ENTRIES || c->events + ent.n > WF_CACHE_EVENTS)) {
        size_t lru = 0;
        for (size_t i = 1; i < c->n; i++) {
            if (c->entries[i].used < c->entries[lru].used) {
                lru = i;
            }
        }
        c->events -= c->entries[lru].n;
        wfx_cache_entry_free(&c->entries[lru]);
        c->entries[lru] = c->entries[--c->n];
    }
    c->entries[c->n++] = ent;
    c->events += ent.n;
    pthread_mutex_unlock(&c->mu);
}
