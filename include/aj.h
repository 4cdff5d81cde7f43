/*
 * aj.h — the public contract of libaj, the Aspen Jobs durable job queue.
 *
 * Lifecycle rules:
 *  1. aj_engine_open() opens (and creates) a store; aj_engine_close() closes it. Every close and
 *     free function accepts NULL.
 *  2. Functions return 0 on success and a negative AJ_E* code on failure. aj_strerror() names a
 *     code; aj_errmsg() gives the detail of the last failure on the calling thread.
 *  3. Out-parameters are written only on success.
 *  4. Memory the library returns is owned by the caller and freed with the named free function.
 *     Memory the caller passes in is copied before the call returns.
 *  5. An aj_engine is safe to use from any number of threads at once.
 *
 * Times are milliseconds since the Unix epoch (int64_t); durations are milliseconds.
 */
#ifndef AJ_H
#define AJ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AJ_VERSION_MAJOR 0
#define AJ_VERSION_MINOR 1
#define AJ_VERSION_PATCH 0
#define AJ_VERSION_STRING "0.1.0"

/* The library's version string, e.g. "0.1.0". */
const char *aj_version(void);

/* ---------------------------------------------------------------------------------------------
 * Errors. The table is append-only: codes are never renumbered or removed.
 * ------------------------------------------------------------------------------------------- */
#define AJ_ERRNO_MAP(X)                                                                            \
    X(INVAL, -1, "invalid argument")                                                               \
    X(NOTFOUND, -2, "not found")                                                                   \
    X(STATE, -3, "wrong state for this operation")                                                 \
    X(CONFLICT, -4, "conflict")                                                                    \
    X(STALE, -5, "stale lease epoch")                                                              \
    X(NOMEM, -6, "out of memory")                                                                  \
    X(IO, -7, "storage I/O error")                                                                 \
    X(FULL, -8, "storage full")                                                                    \
    X(TOOBIG, -9, "over a size limit")                                                             \
    X(RETRIES, -10, "retries exhausted")                                                           \
    X(FORMAT, -11, "unsupported stored format")                                                    \
    X(CLOSED, -12, "engine is closing")                                                            \
    X(TIMEDOUT, -13, "timed out")                                                                  \
    X(CANCELLED, -14, "cancelled")                                                                 \
    X(CORRUPT, -15, "stored record is corrupt")                                                    \
    X(INTERNAL, -16, "internal error")                                                             \
    X(EXISTS, -17, "already exists")

enum {
    AJ_OK = 0,
#define AJ__ERRNO_ENUM(name, code, text) AJ_E##name = (code),
    AJ_ERRNO_MAP(AJ__ERRNO_ENUM)
#undef AJ__ERRNO_ENUM
};

/* A static description of an AJ_E* code ("not found"). Never NULL. */
const char *aj_strerror(int code);
/* The symbolic name of an AJ_E* code ("AJ_ENOTFOUND"). Never NULL. */
const char *aj_err_name(int code);
/* The detail of the last failure on the calling thread ("queue name 'a b' contains ' '").
 * Borrowed; valid until the thread's next libaj call. Never NULL. */
const char *aj_errmsg(void);

/* ---------------------------------------------------------------------------------------------
 * Units and limits
 * ------------------------------------------------------------------------------------------- */
#define AJ_MS ((int64_t)1)
#define AJ_SECOND ((int64_t)1000)
#define AJ_MINUTE (60 * AJ_SECOND)
#define AJ_HOUR (60 * AJ_MINUTE)
#define AJ_DAY (24 * AJ_HOUR)

/* Largest payload or result accepted, in bytes (1 MiB). */
#define AJ_PAYLOAD_MAX ((size_t)1 << 20)
/* Queue and type names: 1..AJ_NAME_MAX bytes of [A-Za-z0-9-+/;.$_()], not starting with '-'. */
#define AJ_NAME_MAX 200
/* Idempotency keys: 1..AJ_IDEMPOTENCY_KEY_MAX bytes. */
#define AJ_IDEMPOTENCY_KEY_MAX 256
/* Largest metadata (a JSON object) in bytes. */
#define AJ_METADATA_MAX ((size_t)64 << 10)
/* Largest error text kept with a failed attempt, in bytes; longer text is cut. */
#define AJ_ERROR_MAX 4096
/* Most delays in a `list:` backoff. */
#define AJ_BACKOFF_LIST_MAX 16
/* Most jobs in one aj_submit_batch() call. */
#define AJ_BATCH_MAX 100000

/* Named priorities: lower runs first. Any value 0..UINT32_MAX is allowed. */
#define AJ_PRIORITY_CRITICAL 0u
#define AJ_PRIORITY_HIGH 512u
#define AJ_PRIORITY_NORMAL 1024u
#define AJ_PRIORITY_LOW 2048u

/* ---------------------------------------------------------------------------------------------
 * Parsers shared by the library and every front end (pure; thread-safe).
 * ------------------------------------------------------------------------------------------- */

/* Parses "1h30m", "250ms", "2d": integers with units ms, s, m, h, d, combinable. A bare number,
 * a negative value, an unknown unit or an overflow is AJ_EINVAL. */
int aj_duration_parse(const char *text, int64_t *out_ms);
/* Formats a duration as the parser reads it ("1h30m", "0ms"). Returns the length written. */
size_t aj_duration_format(int64_t ms, char *buf, size_t size);

/* Parses a priority: a decimal 0..4294967295 or critical, high, normal, low. */
int aj_priority_parse(const char *text, uint32_t *out);

/* Checks a queue or type name; AJ_EINVAL with aj_errmsg() naming the problem. `what` names the
 * thing in the message ("queue"). */
int aj_name_check(const char *what, const char *name);

typedef enum aj_backoff_kind {
    AJ_BACKOFF_NONE = 0,  /* retry at once */
    AJ_BACKOFF_FIXED = 1, /* initial_ms every time */
    AJ_BACKOFF_EXP = 2,   /* initial_ms * factor^(attempt-1), capped at max_ms */
    AJ_BACKOFF_LIST = 3,  /* delays_ms[attempt-1], the last one repeated */
} aj_backoff_kind;

typedef struct aj_backoff {
    aj_backoff_kind kind;
    int64_t initial_ms;
    double factor;
    int64_t max_ms;
    uint32_t n_delays;
    int64_t delays_ms[AJ_BACKOFF_LIST_MAX];
} aj_backoff;

/* The default backoff: exp:1s:2:5m. */
void aj_backoff_default(aj_backoff *out);
/* Parses none | fixed:DUR | exp:INITIAL[:FACTOR[:MAX]] | list:DUR[,DUR...]. */
int aj_backoff_parse(const char *text, aj_backoff *out);
/* Formats a backoff as the parser reads it. Returns the length written. */
size_t aj_backoff_format(const aj_backoff *b, char *buf, size_t size);
/* The delay before retry number `attempt` (1 = the retry after the first failed run), before
 * jitter. */
int64_t aj_backoff_delay(const aj_backoff *b, uint32_t attempt);

/* Parses an RFC 3339 time ("2026-03-08T07:00:00Z", "...+02:00", fractional seconds allowed). */
int aj_time_parse(const char *text, int64_t *out_ms);
/* Formats a time as RFC 3339 UTC, with milliseconds only when not whole. Returns the length. */
size_t aj_time_format(int64_t ms, char *buf, size_t size);

/* The payload-lines format of `aj submit --payload-lines`: one JSON value per line. */
/* A part of a caller's text: `len` bytes at offset `off`. */
typedef struct aj_span {
    size_t off, len;
} aj_span;

/* Splits text into lines (LF, an optional CR before it is dropped; the last line may lack LF; a
 * trailing LF does not create an extra line; a CR ending the last line is dropped too). Validates
 * EVERY line before returning: each must be a single JSON value with nothing but JSON whitespace
 * after it, of at most AJ_PAYLOAD_MAX bytes; an empty or whitespace-only line is an error. A span
 * is the whole line (surrounding whitespace included), without its CR and LF.
 *
 * Errors: AJ_EINVAL naming the 1-based line and the problem ("line 3 is blank", "line 2 is not
 * valid JSON (column 4: ...)" with jansson's column); AJ_ETOOBIG for a line over AJ_PAYLOAD_MAX
 * bytes ("line 2 is 1048578 bytes, over the 1 MiB limit") or more than AJ_BATCH_MAX lines;
 * AJ_EINVAL "no payload lines" for empty text; AJ_ENOMEM.
 *
 * On success *out is an array of *n spans into `text` (free it with aj_free()); `text` may be
 * NULL only when len is 0. Pure and thread-safe. */
int aj_payload_lines_split(const char *text, size_t len, aj_span **out, size_t *n);

/* Frees memory the library returned where no more specific free function is named. */
void aj_free(void *p);

/* ---------------------------------------------------------------------------------------------
 * Engine
 * ------------------------------------------------------------------------------------------- */
typedef struct aj_engine aj_engine;

typedef enum aj_log_level {
    AJ_LOG_DEBUG = 0,
    AJ_LOG_INFO = 1,
    AJ_LOG_WARN = 2,
    AJ_LOG_ERROR = 3,
} aj_log_level;

/* Receives one logfmt line without a trailing newline. Called from any thread. */
typedef void (*aj_log_fn)(void *ud, aj_log_level level, const char *line);

/* A clock: now() returns Unix milliseconds. Tests inject a simulated one. */
typedef struct aj_clock {
    int64_t (*now_ms)(void *ud);
    void *ud;
} aj_clock;

typedef enum aj_durability {
    AJ_DURABLE = 0, /* a submit returns after its commit is on disk (fsync) */
    AJ_RELAXED = 1, /* SQLite synchronous=NORMAL: commits reach the OS at once and the disk at
                       the next WAL checkpoint (about every 1000 pages written); a process crash
                       loses nothing, a power loss may drop the commits since that checkpoint */
} aj_durability;

typedef struct aj_engine_opts {
    aj_durability durability;   /* AJ_DURABLE */
    int64_t retention_ms;       /* finished jobs are kept this long: 7 days */
    int64_t idempotency_ttl_ms; /* an idempotency key holds this long: 24 hours */
    aj_log_fn log;              /* NULL: no logging */
    void *log_ud;
    aj_log_level log_level; /* AJ_LOG_INFO */
    const aj_clock *clock;  /* NULL: the system clock. Copied. */
    uint64_t seed;          /* PRNG seed for jitter; 0: from the OS */
    int background;         /* 1 (default): run the promoter, reaper, collector and counter flusher
                               threads; 0 (tests): call aj_engine_tick() instead */
} aj_engine_opts;

void aj_engine_opts_init(aj_engine_opts *opts);

/* Opens the store at `url`: "sqlite:PATH" (created with mode 0600 if missing; its directory must
 * exist) or "mem:" (a private in-memory store). `opts` may be NULL. */
int aj_engine_open(aj_engine **out, const char *url, const aj_engine_opts *opts);
/* Stops workers (finishing in-flight jobs within their deadline), flushes and closes. */
void aj_engine_close(aj_engine *e);
/* Runs the periodic duties once (promote due jobs, reap expired leases, collect old records,
 * flush counters). Background threads call it; tests without them call it directly. */
int aj_engine_tick(aj_engine *e);

/* ---------------------------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------------------------- */
typedef enum aj_job_state {
    AJ_STATE_SCHEDULED = 1, /* delayed, or waiting to retry */
    AJ_STATE_READY = 2,
    AJ_STATE_RUNNING = 3, /* leased by a worker */
    AJ_STATE_COMPLETED = 4,
    AJ_STATE_DEAD = 5, /* dead-lettered */
    AJ_STATE_CANCELLED = 6,
} aj_job_state;
#define AJ_STATE_COUNT 7 /* one more than the largest state, for arrays indexed by state */

/* "scheduled", "ready", ...; NULL for an unknown value. */
const char *aj_state_name(aj_job_state s);
/* Parses a state name; AJ_EINVAL for an unknown one. */
int aj_state_parse(const char *text, aj_job_state *out);
/* 1 for completed, dead and cancelled. */
int aj_state_is_final(aj_job_state s);

/* Why a job was dead-lettered. */
typedef enum aj_dead_reason {
    AJ_DEAD_NONE = 0,
    AJ_DEAD_MAX_ATTEMPTS = 1,
    AJ_DEAD_PERMANENT = 2,
    AJ_DEAD_TIMEOUT = 3,
    AJ_DEAD_LEASE_EXPIRED = 4,
    AJ_DEAD_DEPENDENCY = 5,
} aj_dead_reason;

/* "max_attempts", "permanent_failure", "timeout", "lease_expired", "dependency_failed"; "" for
 * AJ_DEAD_NONE. */
const char *aj_dead_reason_name(aj_dead_reason r);
int aj_dead_reason_parse(const char *text, aj_dead_reason *out);

typedef struct aj_job_spec {
    const char *queue;   /* NULL: "default" */
    const char *type;    /* required */
    const void *payload; /* bytes, conventionally JSON; may be NULL when payload_len is 0 */
    size_t payload_len;
    uint32_t priority;        /* AJ_PRIORITY_NORMAL */
    int64_t delay_ms;         /* 0: ready at once; exclusive with run_at_ms */
    int64_t run_at_ms;        /* 0: none */
    int64_t timeout_ms;       /* execution timeout of one attempt: 5 minutes */
    int64_t lease_ms;         /* lease length, renewed by heartbeats: 30 s */
    uint32_t max_attempts;    /* counting the first run: 3 */
    aj_backoff backoff;       /* exp:1s:2:5m */
    const char *idempotency_key; /* NULL: none */
    const char *metadata;     /* a JSON object as text, or NULL */
} aj_job_spec;

void aj_job_spec_init(aj_job_spec *spec);

/* Submits one job; *out_id receives its id. Returns after the job is durable. With an
 * idempotency key already used in the queue within its TTL, returns the first job's id and
 * creates nothing; if that job had another type or payload, AJ_ECONFLICT. */
int aj_submit(aj_engine *e, const aj_job_spec *spec, uint64_t *out_id);
/* Submits up to AJ_BATCH_MAX jobs in one durable commit, all or nothing. out_ids[i] receives
 * the id of specs[i]. */
int aj_submit_batch(aj_engine *e, const aj_job_spec *specs, size_t n, uint64_t *out_ids);

/* A snapshot of one job. Owned by the caller; free with aj_job_free(). */
typedef struct aj_job {
    uint64_t id;
    char *queue;
    char *type;
    aj_job_state state;
    void *payload; /* payload_len bytes, followed by a NUL not counted in the length */
    size_t payload_len;
    void *result; /* NULL when there is none; NUL-terminated like payload */
    size_t result_len;
    uint32_t priority;
    uint32_t attempts; /* runs started so far */
    uint32_t max_attempts;
    aj_backoff backoff;
    int64_t timeout_ms;
    int64_t lease_ms;
    int64_t created_ms;
    int64_t run_at_ms;   /* when it becomes (or became) ready */
    int64_t started_ms;  /* start of the latest attempt; 0 if none */
    int64_t finished_ms; /* 0 until final */
    int64_t updated_ms;
    uint64_t epoch;            /* lease epoch: increases on every claim and revocation */
    int64_t lease_expires_ms;  /* while running */
    char *worker;              /* the worker holding or last holding the lease; may be NULL */
    char *error;               /* the last error; may be NULL */
    aj_dead_reason dead_reason;
    int64_t dead_ms;           /* when it was dead-lettered */
    uint32_t redrives;         /* times redriven from the dead-letter queue */
    char *idempotency_key;     /* may be NULL */
    char *metadata;            /* JSON object text; may be NULL */
} aj_job;

void aj_job_free(aj_job *job);

/* Reads one job. AJ_ENOTFOUND if no such job exists (or it was collected). */
int aj_job_get(aj_engine *e, uint64_t id, aj_job **out);

typedef struct aj_job_filter {
    const char *queue;          /* NULL: any */
    const char *type;           /* NULL: any */
    aj_job_state state;         /* 0: any */
    aj_dead_reason dead_reason; /* AJ_DEAD_NONE: any */
    const char *error_contains; /* NULL: any; substring of the last error */
    int64_t older_than_ms;      /* 0: any; else only jobs last updated before now - this */
    uint64_t after_id;          /* start after this id (for paging); 0 from the start */
    size_t limit;               /* 0: no limit */
} aj_job_filter;

/* Lists jobs matching the filter in id order. *out is an array of *n jobs; free it with
 * aj_job_list_free(). */
int aj_job_list(aj_engine *e, const aj_job_filter *filter, aj_job ***out, size_t *n);
void aj_job_list_free(aj_job **jobs, size_t n);

/* Cancels an unfinished job. A running job's lease is revoked at once: its worker learns at its
 * next heartbeat (a shell job's process group is killed) and its completion is refused.
 * AJ_ESTATE for a finished job. */
int aj_job_cancel(aj_engine *e, uint64_t id);

/* Waits until the job is final or timeout_ms passes (-1: forever): AJ_ETIMEDOUT. *out_state
 * receives the final state. */
int aj_job_wait(aj_engine *e, uint64_t id, int64_t timeout_ms, aj_job_state *out_state);

/* --- Leases: the low-level protocol behind workers, for callers that run their own loop. --- */

/* Claims up to `max` ready jobs from the named queues (NULL or n_queues 0: every queue), in
 * priority order, then by the time each became ready. Each claimed job is running with a new
 * epoch and a lease of its lease_ms. *out receives an array of *n jobs (possibly 0): free it with
 * aj_job_list_free(). */
int aj_claim(aj_engine *e, const char *const *queues, size_t n_queues, const char *worker,
             size_t max, aj_job ***out, size_t *n);
/* Extends a lease by the job's lease_ms. AJ_ESTALE if the epoch is no longer current (the lease
 * expired and was reaped, or the job was cancelled: then AJ_ECANCELLED). */
int aj_heartbeat(aj_engine *e, uint64_t id, uint64_t epoch);
/* Completes a job with a result, durably. AJ_ESTALE if the epoch is not current. */
int aj_complete(aj_engine *e, uint64_t id, uint64_t epoch, const void *result, size_t len);
/* Records a failed attempt: retried after its backoff while attempts remain and `permanent` is
 * 0, otherwise dead-lettered (reason permanent_failure or max_attempts). AJ_ESTALE as above. */
int aj_fail(aj_engine *e, uint64_t id, uint64_t epoch, const char *error, int permanent);
/* Like aj_fail() for an attempt that ran past its timeout (dead reason `timeout`). */
int aj_fail_timeout(aj_engine *e, uint64_t id, uint64_t epoch, const char *error);
/* Gives a job back without counting the attempt; it becomes ready after delay_ms. */
int aj_release(aj_engine *e, uint64_t id, uint64_t epoch, int64_t delay_ms);

/* --- Dead letters --- */

/* Moves a dead job back to ready with the same id and its attempts reset. AJ_ESTATE if not dead. */
int aj_dlq_redrive(aj_engine *e, uint64_t id);
/* Deletes a dead job. AJ_ESTATE if not dead. */
int aj_dlq_purge(aj_engine *e, uint64_t id);

/* ---------------------------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------------------------- */

/* What a handler sees of the job it runs. Valid only during the handler call. */
typedef struct aj_job_ctx aj_job_ctx;

/* Runs one job. Return 0 for success (the result is what aj_ctx_set_result() set, or empty),
 * or call aj_ctx_fail() and return its value. A handler runs on a worker thread; many run at once.
 */
typedef int (*aj_handler_fn)(aj_job_ctx *ctx, const aj_job *job, void *ud);

/* Registers the handler for a job type (replacing any earlier one). Call before starting. */
int aj_register(aj_engine *e, const char *type, aj_handler_fn fn, void *ud);
/* Registers the built-in types `shell` and `echo`. */
int aj_register_builtins(aj_engine *e);

/* Sets the result (copied). At most AJ_PAYLOAD_MAX bytes. */
int aj_ctx_set_result(aj_job_ctx *ctx, const void *data, size_t len);
/* Marks the attempt failed with a message; returns a code the handler returns. */
int aj_ctx_fail(aj_job_ctx *ctx, const char *error, int permanent);
/* 1 once the job was cancelled, its lease lost, its timeout passed or shutdown's deadline
 * passed: the handler should stop soon. Cheap; heartbeats happen in the background. */
int aj_ctx_should_stop(const aj_job_ctx *ctx);
/* When the attempt's execution timeout passes (Unix ms). */
int64_t aj_ctx_deadline(const aj_job_ctx *ctx);
/* The job's attempt number, 1 for the first run. */
uint32_t aj_ctx_attempt(const aj_job_ctx *ctx);

typedef struct aj_worker_opts {
    const char *const *queues; /* NULL: every queue */
    size_t n_queues;
    uint32_t concurrency;        /* handler threads: 4 */
    int64_t shutdown_deadline_ms; /* time in-flight jobs get to finish on stop: 30 s */
    const char *worker_id;        /* NULL: "host:pid:random" */
} aj_worker_opts;

void aj_worker_opts_init(aj_worker_opts *opts);

/* Starts the worker pool. One pool per engine. */
int aj_workers_start(aj_engine *e, const aj_worker_opts *opts);
/* Asks the pool to stop: no more claims; in-flight jobs get the shutdown deadline, then their
 * handlers are told to stop and unfinished jobs are released. Returns at once; safe from a
 * signal handler. */
void aj_workers_request_stop(aj_engine *e);
/* Stops the pool as above and waits for it. */
int aj_workers_stop(aj_engine *e);
/* Waits until every job of the pool's queues in the store is final, or scheduled more than
 * `horizon_ms` ahead, or the pool is asked to stop. Returns 0 when drained, AJ_ECANCELLED if
 * stopped first. */
int aj_workers_drain(aj_engine *e, int64_t horizon_ms);

/* ---------------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------------- */
#define AJ_HIST_BUCKETS 24 /* bucket i counts values in [2^(i-1), 2^i) (bucket 0: < 1) */

typedef struct aj_counters {
    uint64_t submitted;
    uint64_t claimed;
    uint64_t completed;
    uint64_t failed; /* failed attempts */
    uint64_t retried;
    uint64_t dead_lettered;
    uint64_t lease_expired;
    uint64_t cancelled;
    uint64_t redriven;
    uint64_t conflicts;      /* storage commit conflicts */
    uint64_t retries;        /* transactions retried after a conflict */
    uint64_t commits;        /* storage commit batches */
    uint64_t fsyncs;         /* durable commit batches */
    uint64_t commit_batch_hist[AJ_HIST_BUCKETS];  /* transactions per commit batch */
    uint64_t start_latency_hist[AJ_HIST_BUCKETS]; /* ready-to-claimed, in microseconds */
} aj_counters;

typedef struct aj_stats {
    uint64_t jobs[AJ_STATE_COUNT]; /* exact count of jobs in each state, whole store */
    aj_counters process;           /* this process since open */
    aj_counters total;             /* every process, as last flushed to the store, plus this one */
} aj_stats;

int aj_stats_get(aj_engine *e, aj_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Maintenance
 * ------------------------------------------------------------------------------------------- */

/* Writes a consistent copy of the store to `path` while it stays in use (SQLite only). */
int aj_backup(aj_engine *e, const char *path);
/* Verifies every record against its indexes and every index entry against its record. Problems
 * are described through `report` (one line each); returns 0 when consistent, AJ_ECORRUPT when
 * not. */
int aj_check(aj_engine *e, void (*report)(void *ud, const char *line), void *ud,
             uint64_t *out_records);

#ifdef __cplusplus
}
#endif
#endif /* AJ_H */
