/*
 * json_def.h — field readers shared by the JSON definition parsers: graph definitions
 * (core/dag_def.c), declarative sagas and state machines (runtime/saga_builtin.c,
 * runtime/sm_def.c).
 *
 * Each parser words its own errors (they name the step, state or job in the parser's terms), so
 * these readers only say whether a field is acceptable; the caller names the place.
 */
#ifndef AJ_CORE_JSON_DEF_H
#define AJ_CORE_JSON_DEF_H

#include <jansson.h>
#include <stdint.h>

/* A duration field ("30s", "1h30m") in milliseconds: v NULL (the field is absent) gives def;
 * otherwise v must be a JSON string that aj_duration_parse accepts, from min_ms to max_ms.
 * Returns 0 with *out set, or -1 (and *out untouched) when the field is not such a duration. */
int json_def_duration(const json_t *v, int64_t def, int64_t min_ms, int64_t max_ms, int64_t *out);

#endif
