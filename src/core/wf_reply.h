/*
 * wf_reply.h — answers to workflow updates, waiting for the caller that sent them.
 *
 * Key 'y' sent_ms(8) req(8) → status(1) data. The caller of aj_wf_update knows both numbers
 * (it chose the request id and the time is in the inbox entry it wrote), polls the key and
 * deletes it once read; answers nobody read (the caller timed out or died) are collected
 * WF_REPLY_TTL_MS after the update was sent.
 */
#ifndef AJ_CORE_WF_REPLY_H
#define AJ_CORE_WF_REPLY_H

#include "aj.h"
#include "core/jobs.h"
#include "store/kv.h"

#define WF_REPLY_TTL_MS (3600 * AJ_SECOND)

enum { WF_REPLY_OK = 0, WF_REPLY_REJECTED = 1, WF_REPLY_FAILED = 2, WF_REPLY_GONE = 3 };

int wf_reply_put(kv_txn *t, int64_t sent_ms, uint64_t req, int status, aj_slice data);
/* 0 with *status and *data (borrowed), or AJ_ENOTFOUND. */
int wf_reply_get(kv_txn *t, int64_t sent_ms, uint64_t req, int *status, aj_slice *data);
int wf_reply_del(kv_txn *t, int64_t sent_ms, uint64_t req);
/* Deletes up to `limit` answers sent more than WF_REPLY_TTL_MS ago. */
int wf_reply_collect(kv_txn *t, const job_env *env, size_t limit, size_t *out_n);

#endif
