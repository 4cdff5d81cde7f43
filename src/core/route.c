/*
 * route.c — encoding and evaluation of a job's routing (see route.h). Pure functions: the
 * claim (job_claim.c) asks route_allows() about each candidate that carries a routing field.
 *
 * Encoding: a format byte, a presence byte, then the present fields in order (require tag,
 * preferred node, prefer wait as a varint of ms, avoided node), strings length-prefixed.
 */
#include "core/route.h"

#include <string.h>

#include "util/err.h"

enum { HAS_REQUIRE = 1, HAS_PREFER = 2, HAS_AVOID = 4 };

/* Longest prefer wait (about 100 years), so that times stay in range. */
#define ROUTE_WAIT_MAX ((int64_t)100 * 365 * AJ_DAY)

int route_spec_has(const aj_job_spec *s) {
    return s->require_tag != NULL || s->prefer_node != NULL || s->avoid_node != NULL;
}

int route_spec_check(const aj_job_spec *s) {
    int rc;
    if (s->require_tag != NULL && (rc = aj_name_check("required tag", s->require_tag)) != 0) {
        return rc;
    }
    if (s->prefer_node != NULL && (rc = aj_name_check("preferred node", s->prefer_node)) != 0) {
        return rc;
    }
    if (s->avoid_node != NULL && (rc = aj_name_check("avoided node", s->avoid_node)) != 0) {
        return rc;
    }
    if (s->prefer_wait_ms < 0 || s->prefer_wait_ms > ROUTE_WAIT_MAX) {
        return aj__err(AJ_EINVAL, "prefer wait must be between 0 and 100 years");
    }
    if (s->prefer_node != NULL && s->avoid_node != NULL &&
        strcmp(s->prefer_node, s->avoid_node) == 0) {
        return aj__err(AJ_EINVAL, "node '%s' is both preferred and avoided", s->prefer_node);
    }
    return 0;
}

int route_encode(const aj_job_spec *s, aj_buf *b) {
    uint8_t present =
        (uint8_t)((s->require_tag ? HAS_REQUIRE : 0) | (s->prefer_node ? HAS_PREFER : 0) |
                  (s->avoid_node ? HAS_AVOID : 0));
    aj__buf_add_u8(b, ROUTE_FORMAT);
    aj__buf_add_u8(b, present);
    if (s->require_tag != NULL) {
        aj__buf_add_bytes(b, s->require_tag, strlen(s->require_tag));
    }
    if (s->prefer_node != NULL) {
        aj__buf_add_bytes(b, s->prefer_node, strlen(s->prefer_node));
        aj__buf_add_varint(b, (uint64_t)s->prefer_wait_ms);
    }
    if (s->avoid_node != NULL) {
        aj__buf_add_bytes(b, s->avoid_node, strlen(s->avoid_node));
    }
    return b->oom ? AJ_ENOMEM : 0;
}

int route_decode(aj_slice enc, job_route *out) {
    job_route v;
    memset(&v, 0, sizeof v);
    aj_rd r;
    aj__rd_init(&r, enc.p, enc.n);
    uint8_t format = aj__rd_u8(&r);
    if (!r.bad && format > ROUTE_FORMAT) {
        return aj__err(AJ_EFORMAT, "job routing format %u is newer than this aj supports (%d)",
                       format, ROUTE_FORMAT);
    }
    uint8_t present = aj__rd_u8(&r);
    if (present & HAS_REQUIRE) {
        v.require_tag = job_rd_slice(&r);
    }
    if (present & HAS_PREFER) {
        v.prefer_node = job_rd_slice(&r);
        uint64_t w = aj__rd_varint(&r);
        if (w > (uint64_t)ROUTE_WAIT_MAX) {
            r.bad = 1;
        }
        v.prefer_wait_ms = (int64_t)w;
    }
    if (present & HAS_AVOID) {
        v.avoid_node = job_rd_slice(&r);
    }
    if (r.bad || r.off != enc.n || (present & ~(HAS_REQUIRE | HAS_PREFER | HAS_AVOID)) != 0) {
        return aj__err(AJ_ECORRUPT, "job routing field is corrupt (%zu bytes)", enc.n);
    }
    *out = v;
    return 0;
}

int route_allows(const job_route *r, const route_claimer *who, int64_t now_us, int64_t ready_us,
                 int64_t *wait_until_ms) {
    const char *node = who != NULL ? who->node : NULL;
    if (r->require_tag.p != NULL) {
        int found = 0;
        for (size_t i = 0; who != NULL && i < who->n_tags && !found; i++) {
            found = aj__slice_eq(r->require_tag, who->tags[i]);
        }
        if (!found) {
            return 0;
        }
    }
    if (r->avoid_node.p != NULL && node != NULL && aj__slice_eq(r->avoid_node, node)) {
        return 0;
    }
    if (r->prefer_node.p != NULL && !(node != NULL && aj__slice_eq(r->prefer_node, node))) {
        int64_t open_us = ready_us + r->prefer_wait_ms * 1000;
        if (now_us < open_us) {
            int64_t at_ms = (open_us + 999) / 1000;
            if (wait_until_ms != NULL && at_ms < *wait_until_ms) {
                *wait_until_ms = at_ms;
            }
            return 0;
        }
    }
    return 1;
}
