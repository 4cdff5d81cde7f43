/*
 * progress.h — a job's progress as a conflict-free replicated state (a join-semilattice), its
 * pure merge, the local operations an attempt applies, the line protocol of a shell job's
 * progress pipe, and its stored form under the key 'P' id.
 *
 * The state (see aj.h for what a user sees):
 *   has_percent, percent   max-registers (percent in hundredths, 0..10000)
 *   updated                a max-register: the HLC stamp of the latest local operation
 *   message, step          last-writer-wins registers, ordered by (stamp, writer, text)
 *   done                   completed steps: a map name -> earliest completion stamp, keeping the
 *                          AJ_PROGRESS_STEPS_MAX smallest by (stamp, name)
 *   counters               a map name -> G-counter, keeping the AJ_PROGRESS_COUNTERS_MAX
 *                          smallest names; a G-counter maps writer -> count (pointwise max),
 *                          keeping the PROGRESS_WRITERS_MAX largest writers, and its value is
 *                          the sum
 *   malformed              a G-counter of ignored pipe lines
 * A writer is one attempt of the job, named by its lease epoch, which no other attempt shares.
 *
 * Truncating a map to its K best keys by an order that merging can only improve (a smaller
 * stamp, a larger writer, a fixed name) keeps the merge a join: an entry dropped anywhere had K
 * entries better than it, and they stay better. So progress_merge() is commutative, associative
 * and idempotent (tests/unit/test_progress.c checks this on random states), and a worker can
 * write its whole local state again and again without counting anything twice.
 *
 * A state is canonical: maps sorted by key, each key once, within bounds. The functions keep it
 * so; progress_decode() refuses anything else (AJ_ECORRUPT).
 */
#ifndef AJ_CORE_PROGRESS_H
#define AJ_CORE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "aj.h"
#include "store/kv.h"
#include "util/buf.h"
#include "util/hlc.h"

/* Bump with a written upgrade rule when the encoding changes. */
#define PROGRESS_FORMAT 1
/* Attempts (writers) remembered per G-counter: the latest ones by lease epoch. */
#define PROGRESS_WRITERS_MAX 16
/* Percentages are kept in hundredths. */
#define PROGRESS_PERCENT_SCALE 100
#define PROGRESS_PERCENT_MAX (100 * PROGRESS_PERCENT_SCALE)

typedef struct progress_lww {
    aj_hlc_ts ts; /* {0, 0}: never written */
    uint64_t writer;
    uint16_t len;
    char text[AJ_PROGRESS_MESSAGE_MAX + 1];
} progress_lww;

typedef struct progress_done {
    aj_hlc_ts ts; /* when it completed (the earliest report of it) */
    uint8_t len;
    char name[AJ_PROGRESS_NAME_MAX + 1];
} progress_done;

typedef struct progress_gcounter {
    uint32_t n;
    struct {
        uint64_t writer;
        uint64_t value;
    } w[PROGRESS_WRITERS_MAX]; /* sorted by writer */
} progress_gcounter;

typedef struct progress_counter {
    uint8_t len;
    char name[AJ_PROGRESS_NAME_MAX + 1];
    progress_gcounter g;
} progress_counter;

typedef struct progress_state {
    uint8_t has_percent;
    uint32_t percent;  /* hundredths of a percent */
    aj_hlc_ts updated; /* the latest operation's stamp */
    progress_lww message;
    progress_lww step;
    uint32_t n_done;
    progress_done done[AJ_PROGRESS_STEPS_MAX]; /* sorted by name */
    uint32_t n_counters;
    progress_counter counters[AJ_PROGRESS_COUNTERS_MAX]; /* sorted by name */
    progress_gcounter malformed;
} progress_state;

/* An empty state (nothing reported). */
void progress_init(progress_state *s);
/* into := into ⊔ from. Pure. */
void progress_merge(progress_state *into, const progress_state *from);
/* 1 when the two states are the same. */
int progress_equal(const progress_state *a, const progress_state *b);
/* The value of a G-counter: the sum over writers, saturating at UINT64_MAX. */
uint64_t progress_gcounter_value(const progress_gcounter *g);

/* --- Local operations of one writer, each stamped `ts` by the caller's HLC. --- */

/* Checks a step or counter name (len bytes): AJ_EINVAL naming the problem. */
int progress_name_check(const char *what, const char *name, size_t len, int is_counter);
/* Checks a message and returns in *out_len the bytes kept (cut to AJ_PROGRESS_MESSAGE_MAX at a
 * character boundary): AJ_EINVAL for invalid UTF-8 or control characters other than tab. */
int progress_message_check(const char *text, size_t len, size_t *out_len);

void progress_op_percent(progress_state *s, aj_hlc_ts ts, uint32_t percent);
/* The text must have passed progress_message_check (len already cut). */
void progress_op_message(progress_state *s, aj_hlc_ts ts, uint64_t writer, const char *text,
                         size_t len);
/* Moves the writer to step `name` (checked): its previous step, if another, is completed. */
void progress_op_step(progress_state *s, aj_hlc_ts ts, uint64_t writer, const char *name,
                      size_t len);
/* Adds n to the writer's count of counter `name` (checked). AJ_ETOOBIG for a new name when
 * AJ_PROGRESS_COUNTERS_MAX are in use. */
int progress_op_count(progress_state *s, aj_hlc_ts ts, uint64_t writer, const char *name,
                      size_t len, uint64_t n);
/* Counts one malformed pipe line for the writer. */
void progress_op_malformed(progress_state *s, aj_hlc_ts ts, uint64_t writer);
/* The writer's job completed: its current step is completed too. */
void progress_op_complete(progress_state *s, aj_hlc_ts ts, uint64_t writer);

/* --- The progress pipe's line protocol (aj_ctx_progress_line in aj.h). --- */

typedef enum progress_line_kind {
    PROGRESS_LINE_BLANK = 0,
    PROGRESS_LINE_PERCENT = 1,
    PROGRESS_LINE_STEP = 2,
    PROGRESS_LINE_COUNT = 3,
} progress_line_kind;

typedef struct progress_line {
    progress_line_kind kind;
    uint32_t percent; /* PERCENT: hundredths */
    const char *text; /* PERCENT: the message (NULL if none); STEP, COUNT: the name */
    size_t text_len;  /* bytes of text (a message already cut to its limit) */
    uint64_t n;       /* COUNT */
} progress_line;

/* Parses one line (without its newline). text points into `line`. AJ_EINVAL names the
 * problem. Pure; never reads past len. */
int progress_line_parse(const char *line, size_t len, progress_line *out);

/* --- Stored form. --- */

/* Appends the encoding of a canonical state. AJ_ENOMEM when b ran out of memory. */
int progress_encode(const progress_state *s, aj_buf *b);
/* Decodes; AJ_ECORRUPT when malformed or not canonical, AJ_EFORMAT when newer. */
int progress_decode(const uint8_t *p, size_t n, progress_state *out);

/* Reads job `id`'s stored progress: *found 0 (and an empty state) when there is none. */
int progress_read(kv_txn *t, uint64_t id, progress_state *out, int *found);
/* Merges `delta` into job `id`'s stored progress; writes only when that changes it. `scratch`
 * is caller memory for the stored state (progress states are large for a stack). */
int progress_merge_into_store(kv_txn *t, uint64_t id, const progress_state *delta,
                              progress_state *scratch);
/* Deletes job `id`'s progress (nothing happens when there is none). */
int progress_delete(kv_txn *t, uint64_t id);

/* A public copy of the state (owned; aj_progress_free), or NULL when out of memory. */
aj_progress *progress_to_public(const progress_state *s, uint64_t job_id);

#endif
