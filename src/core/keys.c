/*
 * keys.c — builds the keys described in keys.h. Times are stored as unsigned big-endian after a
 * bias-free cast: every time the engine stores is after 1970, so the cast keeps order.
 */
#include "core/keys.h"

#include <assert.h>
#include <string.h>

static void add(akey *k, const void *p, size_t n) {
    assert(k->n + n <= KEY_MAX);
    memcpy(k->b + k->n, p, n);
    k->n += n;
}

static void add_u64(akey *k, uint64_t v) {
    assert(k->n + 8 <= KEY_MAX);
    aj__put_u64be(k->b + k->n, v);
    k->n += 8;
}

static void start(akey *k, uint8_t kind) {
    k->b[0] = kind;
    k->n = 1;
}

static uint64_t time_bits(int64_t t) {
    return t < 0 ? 0 : (uint64_t)t;
}

void key_prefix(akey *k, uint8_t kind) {
    start(k, kind);
}

void key_job(akey *k, uint64_t id) {
    start(k, KEY_JOB);
    add_u64(k, id);
}

void key_state_prefix(akey *k, aj_job_state s) {
    start(k, KEY_STATE);
    uint8_t b = (uint8_t)s;
    add(k, &b, 1);
}

void key_state(akey *k, aj_job_state s, uint64_t id) {
    key_state_prefix(k, s);
    add_u64(k, id);
}

void key_ready_prefix(akey *k, const char *queue, size_t qlen) {
    start(k, KEY_READY);
    add(k, queue, qlen);
    uint8_t z = 0;
    add(k, &z, 1);
}

void key_ready(akey *k, const char *queue, size_t qlen, uint32_t prio, int64_t ready_us,
               uint64_t id) {
    key_ready_prefix(k, queue, qlen);
    uint8_t p[4];
    aj__put_u32be(p, prio);
    add(k, p, 4);
    add_u64(k, time_bits(ready_us));
    add_u64(k, id);
}

void key_time_id(akey *k, uint8_t kind, int64_t t, uint64_t id) {
    start(k, kind);
    add_u64(k, time_bits(t));
    add_u64(k, id);
}

void key_idem(akey *k, const char *queue, size_t qlen, const char *ikey, size_t ilen) {
    start(k, KEY_IDEM);
    add(k, queue, qlen);
    uint8_t z = 0;
    add(k, &z, 1);
    add(k, ikey, ilen);
}

void key_idem_expiry(akey *k, int64_t expires, const char *queue, size_t qlen, const char *ikey,
                     size_t ilen) {
    start(k, KEY_IDEM_EXPIRY);
    add_u64(k, time_bits(expires));
    add(k, queue, qlen);
    uint8_t z = 0;
    add(k, &z, 1);
    add(k, ikey, ilen);
}

void key_queue(akey *k, const char *queue, size_t qlen) {
    start(k, KEY_QUEUE);
    add(k, queue, qlen);
}

void key_counters(akey *k, uint64_t instance) {
    start(k, KEY_COUNTERS);
    add_u64(k, instance);
}

void key_meta(akey *k, const char *name) {
    start(k, KEY_META);
    add(k, name, strlen(name));
}

uint64_t key_tail_id(const uint8_t *key, size_t klen) {
    assert(klen >= 9);
    return aj__get_u64be(key + klen - 8);
}

int64_t key_time(const uint8_t *key, size_t klen) {
    assert(klen >= 9);
    return (int64_t)aj__get_u64be(key + 1);
}

int key_batch_cb(void *ud, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                 uint64_t version) {
    (void)val;
    (void)vlen;
    (void)version;
    key_batch *l = ud;
    if (l->n == KEY_BATCH_MAX || klen > KEY_MAX) {
        return 1;
    }
    memcpy(l->keys[l->n].b, key, klen);
    l->keys[l->n].n = klen;
    l->n++;
    return 0;
}
