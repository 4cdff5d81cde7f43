/*
 * worker_registry.h — the registry of running worker pools (issue 4 §7).
 *
 * 'w' worker_id → entry: node, host, tags, pid, start time, last-seen time. A pool writes its
 * entry when it starts, refreshes last-seen every AJ_WORKER_BEAT_MS and deletes it when it stops;
 * the refresh also deletes entries not seen for AJ_WORKER_COLLECT_MS (pools that died), so the
 * registry needs no separate collector. Routing itself never reads the registry: a claimer
 * states its node and tags in the claim (jobs.h), which is what makes routing exact.
 */
#ifndef AJ_CORE_WORKER_REGISTRY_H
#define AJ_CORE_WORKER_REGISTRY_H

#include <stdint.h>

#include "aj.h"
#include "core/jobs.h"
#include "store/kv.h"

enum { KEY_WORKER = 'w' };

typedef struct wreg_entry {
    const char *id;
    const char *node;
    const char *host;
    const char *const *tags;
    size_t n_tags;
    int64_t pid;
    int64_t started_ms;
} wreg_entry;

/* Writes the entry with last-seen = now. */
int wreg_put(kv_txn *t, const job_env *env, const wreg_entry *w);
/* Refreshes last-seen (rewriting the whole entry, so an entry collected while this process was
 * stalled comes back) and deletes entries of others not seen for AJ_WORKER_COLLECT_MS. */
int wreg_touch(kv_txn *t, const job_env *env, const wreg_entry *w);
int wreg_del(kv_txn *t, const char *id);
/* Every entry, in id order; free with aj_worker_list_free(). */
int wreg_list(kv_txn *t, const job_env *env, aj_worker_info **out, size_t *n);

#endif
