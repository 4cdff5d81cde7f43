/*
 * json_def.c — field readers shared by the JSON definition parsers (json_def.h): one reading of
 * a duration field for graph, saga and state-machine definitions, so the three accept the same
 * texts.
 */
#include "core/json_def.h"

#include "aj.h"

int json_def_duration(const json_t *v, int64_t def, int64_t min_ms, int64_t max_ms, int64_t *out) {
    if (v == NULL) {
        *out = def;
        return 0;
    }
    int64_t ms = 0;
    if (!json_is_string(v) || aj_duration_parse(json_string_value(v), &ms) != 0 || ms < min_ms ||
        ms > max_ms) {
        return -1;
    }
    *out = ms;
    return 0;
}
