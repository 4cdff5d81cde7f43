/*
 * tz_cache.h — time zones for schedules, read from the system's TZif files by the runtime and
 * kept parsed for the engine's life, so that core (which reads no files) gets a parsed zone
 * through job_env.zone and a schedule step costs no file access.
 *
 * Thread-safety: the cache has its own mutex; a zone it hands out is immutable and lives until
 * the cache is freed (engine close), so any number of threads may read it at once.
 */
#ifndef AJ_RUNTIME_TZ_CACHE_H
#define AJ_RUNTIME_TZ_CACHE_H

#include "core/tz.h"

/* Where the zone files live when the caller names no directory ($TZDIR overrides it). */
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
/* Zones one cache keeps: more than the zone files of any tzdata (about 1,800 with aliases). */
#define TZ_CACHE_MAX 4096

typedef struct aj__tz_cache aj__tz_cache;

/* Loads zone `name` from directory `dir` (NULL: $TZDIR, else TZ_DEFAULT_DIR). "UTC" is built in
 * and needs no file. AJ_ENOTFOUND for an unknown zone; AJ_EINVAL for a bad name or a file that is
 * not TZif version 2 or later; AJ_ENOMEM. Free the zone with tz_free(). */
int tz_load(const char *name, const char *dir, tz_zone **out);

int aj__tz_cache_new(aj__tz_cache **out);
void aj__tz_cache_free(aj__tz_cache *c);
/* The zone `name`, loaded on first use (errors as tz_load; a failed load is not cached, so a
 * zone installed later is found). *out is borrowed from the cache. */
int aj__tz_cache_get(aj__tz_cache *c, const char *name, const tz_zone **out);

#endif
