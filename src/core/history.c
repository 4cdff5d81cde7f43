/*
 * history.c — encoding, chaining and reading of workflow history events (see history.h).
 */
#include "core/history.h"

#include <string.h>

#include "util/err.h"
#include "util/hash.h"

static const char *const event_names[EV_TYPE_COUNT] = {
    NULL,
    "workflow_started",
    "step_completed",
    "step_failed",
    "activity_scheduled",
    "activity_started",
    "activity_completed",
    "activity_failed",
    "timer_scheduled",
    "timer_fired",
    "timer_cancelled",
    "signal_received",
    "side_effect",
    "compensation_started",
    "compensation_completed",
    "compensation_failed",
    "cancel_requested",
    "workflow_parked",
    "workflow_resumed",
    "workflow_completed",
    "workflow_failed",
    "workflow_cancelled",
    "workflow_terminated",
    "workflow_timed_out",
    "workflow_compensated",
    "workflow_compensation_failed",
    "child_started",
    "child_completed",
    "child_failed",
    "continued_as_new",
    "version_marker",
    "update_accepted",
    "update_completed",
    "workflow_reset",
    "update_requested",
    "wait_point",
};

const char *wf_event_name(int type) {
    if (type <= 0 || type >= EV_TYPE_COUNT) {
        return NULL;
    }
    return event_names[type];
}

static uint64_t hash_u64(uint64_t h, uint64_t v) {
    uint8_t b[8];
    aj__put_u64be(b, v);
    return aj__fnv1a(h, b, 8);
}

uint64_t hist_event_id(const wf_event *ev) {
    uint64_t h = hash_u64(AJ_FNV_INIT, ev->prev_id);
    h = hash_u64(h, ev->seq);
    h = hash_u64(h, ev->type);
    h = hash_u64(h, ev->hlc);
    h = hash_u64(h, ev->aux);
    h = hash_u64(h, ev->ref);
    h = hash_u64(h, ev->name.n);
    h = aj__fnv1a(h, ev->name.p, ev->name.n);
    h = hash_u64(h, ev->data.n);
    h = aj__fnv1a(h, ev->data.p, ev->data.n);
    return h == 0 ? 1 : h; /* 0 means "no predecessor" */
}

int hist_encode(const wf_event *ev, aj_buf *b) {
    aj__buf_add_u8(b, HIST_FORMAT);
    aj__buf_add_u8(b, ev->type);
    aj__buf_add_varint(b, ev->seq);
    aj__buf_add_u64be(b, ev->hlc);
    aj__buf_add_u64be(b, ev->id);
    aj__buf_add_u64be(b, ev->prev_id);
    aj__buf_add_varint(b, ev->aux);
    aj__buf_add_varint(b, ev->ref);
    aj__buf_add_bytes(b, ev->name.p, ev->name.n);
    aj__buf_add_bytes(b, ev->data.p, ev->data.n);
    return b->oom ? AJ_ENOMEM : 0;
}

int hist_decode(const uint8_t *p, size_t n, wf_event *out) {
    aj_rd r;
    aj__rd_init(&r, p, n);
    wf_event ev;
    memset(&ev, 0, sizeof ev);
    uint8_t format = aj__rd_u8(&r);
    if (!r.bad && format > HIST_FORMAT) {
        return aj__err(AJ_EFORMAT, "history event format %u is newer than this aj supports (%d)",
                       format, HIST_FORMAT);
    }
    ev.type = aj__rd_u8(&r);
    ev.seq = aj__rd_varint(&r);
    ev.hlc = aj__rd_u64be(&r);
    ev.id = aj__rd_u64be(&r);
    ev.prev_id = aj__rd_u64be(&r);
    ev.aux = aj__rd_varint(&r);
    ev.ref = aj__rd_varint(&r);
    ev.name.p = aj__rd_bytes(&r, &ev.name.n);
    ev.data.p = aj__rd_bytes(&r, &ev.data.n);
    if (r.bad || r.off != n || wf_event_name(ev.type) == NULL) {
        return aj__err(AJ_ECORRUPT, "history event is corrupt (%zu bytes)", n);
    }
    if (hist_event_id(&ev) != ev.id) {
        return aj__err(AJ_ECORRUPT, "history event %llu does not match its id",
                       (unsigned long long)ev.seq);
    }
    *out = ev;
    return 0;
}

void key_event_run_prefix(akey *k, aj_slice wf_id, uint32_t run) {
    k->b[0] = 'E';
    memcpy(k->b + 1, wf_id.p, wf_id.n);
    k->b[1 + wf_id.n] = 0;
    aj__put_u32be(k->b + 2 + wf_id.n, run);
    k->n = 6 + wf_id.n;
}

void key_event(akey *k, aj_slice wf_id, uint32_t run, uint64_t seq) {
    key_event_run_prefix(k, wf_id, run);
    aj__put_u64be(k->b + k->n, seq);
    k->n += 8;
}

uint64_t hlc_next(uint64_t last, int64_t now_ms) {
    uint64_t physical = (uint64_t)(now_ms < 0 ? 0 : now_ms) << 16;
    return physical > last ? physical : last + 1;
}

typedef struct read_walk {
    uint64_t want_seq;
    uint64_t prev_id;
    int (*fn)(void *ud, const wf_event *ev);
    void *ud;
    int rc;
} read_walk;

static int read_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   uint64_t version) {
    (void)key;
    (void)klen;
    (void)version;
    read_walk *w = ud;
    wf_event ev;
    int rc = hist_decode(val, vlen, &ev);
    if (rc == 0 && (ev.seq != w->want_seq || ev.prev_id != w->prev_id)) {
        rc = aj__err(AJ_ECORRUPT,
                     "history chain broken at event %llu (expected seq %llu after event id "
                     "%016llx)",
                     (unsigned long long)ev.seq, (unsigned long long)w->want_seq,
                     (unsigned long long)w->prev_id);
    }
    if (rc == 0) {
        rc = w->fn(w->ud, &ev);
    }
    if (rc != 0) {
        w->rc = rc;
        return 1;
    }
    w->want_seq++;
    w->prev_id = ev.id;
    return 0;
}

int hist_read(kv_txn *t, aj_slice wf_id, uint32_t run, uint64_t from, uint64_t to, uint64_t prev_id,
              int (*fn)(void *ud, const wf_event *ev), void *ud) {
    akey start, end;
    key_event(&start, wf_id, run, from);
    if (to == 0) {
        key_event_run_prefix(&end, wf_id, run + 1);
    } else {
        key_event(&end, wf_id, run, to + 1);
    }
    read_walk w = {from, prev_id, fn, ud, 0};
    int rc = kv_scan(t, start.b, start.n, end.b, end.n, 0, 0, read_cb, &w);
    if (rc == 0 && w.rc == 0 && to != 0 && w.want_seq != to + 1) {
        return aj__err(AJ_ECORRUPT, "history ends at event %llu, expected %llu",
                       (unsigned long long)(w.want_seq - 1), (unsigned long long)to);
    }
    return rc != 0 ? rc : w.rc;
}
