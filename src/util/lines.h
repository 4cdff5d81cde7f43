/*
 * lines.h — the payload-lines parser behind `aj submit --payload-lines FILE`: one JSON value per
 * line, every line checked before any job is submitted, so a batch is all or nothing.
 */
#ifndef AJ_UTIL_LINES_H
#define AJ_UTIL_LINES_H

#include <stddef.h>

/* The parser is public: aj_payload_lines_split() in aj.h. */
#include "aj.h"

#endif
