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
    X(EXISTS, -17, "already exists")                                                               \
    X(FAILED, -18, "failed")                                                                       \
    X(BUSY, -19, "store busy: another process held its lock too long")                             \
    X(AMBIGUOUS, -20, "commit outcome unknown: it may have been applied")                          \
    X(UNAVAILABLE, -21, "store server unreachable")

enum {
    AJ_OK = 0,
#define AJ__ERRNO_ENUM(name, code, text) AJ_E##name = (code),
    AJ_ERRNO_MAP(AJ__ERRNO_ENUM)
#undef AJ__ERRNO_ENUM
};

/* Two codes come from networked stores (PostgreSQL) only:
 *  - AJ_EUNAVAILABLE: the store's server could not be reached (down, restarting, cut off, or
 *    refusing the connection) and nothing was changed. It passes: retry after a while. A worker
 *    pool waits it out for as long as it runs (aj_workers_error never reports it).
 *  - AJ_EAMBIGUOUS: the connection broke after the commit was sent and its outcome could not be
 *    learned in time (the store's aj_resolve_ms): the change MAY HAVE BEEN APPLIED. Read the
 *    state before doing it again, or repeat it only when repeating is harmless (aj_submit with
 *    an idempotency key returns the job the first attempt made). A commit whose outcome the
 *    store could learn is reported as what happened (0, or an error that changed nothing), and
 *    the engine never applies an operation twice on its own: a job outcome of unknown fate is
 *    recorded again under the same lease epoch, which the store refuses if the first one held.
 * Every function that changes the store may return either. */

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

/* Largest payload or result accepted, in bytes (64 MiB). Those over the engine's
 * blob_threshold are stored content-addressed in chunks, once per distinct content. */
#define AJ_PAYLOAD_MAX ((size_t)64 << 20)
/* Shortest lease a job may have (1 s). A lease is renewed when a third of it has passed; a
 * shorter one could expire while an ordinary commit (an fsync, a busy store) is in flight and
 * hand a healthy job to a second worker. A spec below it is refused (AJ_EINVAL); a job stored
 * with a shorter lease by an older version is leased for AJ_LEASE_MIN_MS. */
#define AJ_LEASE_MIN_MS 1000
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
/* Checks an idempotency key: 1..AJ_IDEMPOTENCY_KEY_MAX bytes of valid UTF-8 without control
 * characters (U+0000-U+001F, U+007F-U+009F), which would make it unprintable in logs, listings and
 * errors. AJ_EINVAL with aj_errmsg() naming the problem; every submit checks its key with it. */
int aj_idempotency_key_check(const char *key);

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

/* JSON text exactly as RFC 8259 defines it. A payload is kept as the bytes the caller gave, so
 * the check is a grammar scanner rather than a parser: it accepts values a JSON library could
 * not represent (integers beyond 64 bits, 1e999) and never rewrites them. */
#define AJ_JSON_DEPTH_MAX 2048 /* deepest nesting of arrays and objects accepted */
#define AJ_JSON_WHY_MAX 128    /* bytes of an error description, with its NUL */

/* Where and why text is not JSON. Lines and columns count from 1; columns count characters. */
typedef struct aj_json_error {
    size_t line;
    size_t column;
    char why[AJ_JSON_WHY_MAX];
} aj_json_error;

/* Checks that text[0..len) is exactly one JSON value, optionally surrounded by whitespace.
 * Strings must be valid UTF-8 and their \u escapes must not leave a surrogate unpaired. With
 * `compact` non-NULL, the value without insignificant whitespace is written there (the caller
 * provides `len` bytes, which always suffice) and *compact_len receives its length. Returns 0,
 * or -1 with `err` filled (when non-NULL). Pure and thread-safe. */
int aj_json_check(const char *text, size_t len, char *compact, size_t *compact_len,
                  aj_json_error *err);
/* The length of the valid UTF-8 sequence at s (at most n bytes, n > 0), or 0 when it is not
 * valid (overlong, a surrogate, beyond U+10FFFF, or cut short). */
size_t aj_utf8_seq(const unsigned char *s, size_t n);

/* The payload-lines format of `aj submit --payload-lines`: one JSON value per line, checked with
 * aj_json_check. */
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
    size_t blob_threshold;  /* payloads and results longer than this are stored as shared,
                               reference-counted chunks (AJ_BLOB_THRESHOLD_DEFAULT, 256 KiB;
                               AJ_BLOB_THRESHOLD_MIN..AJ_BLOB_THRESHOLD_MAX) */
} aj_engine_opts;

#define AJ_BLOB_THRESHOLD_DEFAULT ((size_t)256 << 10)
#define AJ_BLOB_THRESHOLD_MIN ((size_t)1 << 10)
#define AJ_BLOB_THRESHOLD_MAX ((size_t)16 << 20)

void aj_engine_opts_init(aj_engine_opts *opts);

/* Opens the store at `url`: "sqlite:PATH" (created with mode 0600 if missing; its directory must
 * exist), "sqlite:PATH?vfs=NAME" (the same, every connection through the registered SQLite VFS
 * NAME; an unknown parameter or VFS is AJ_EINVAL), "postgres://..." or "postgresql://..." (a
 * libpq URI with aj_ options: docs/POSTGRES.md) or "mem:" (a private in-memory store). `opts`
 * may be NULL. */
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

/* What a job does when one of its dependencies fails (is dead-lettered or cancelled). */
typedef enum aj_dep_policy {
    AJ_DEP_CASCADE = 0, /* default: the job becomes dead (dependency_failed), transitively */
    AJ_DEP_IGNORE = 1,  /* the failed dependency counts as satisfied */
    AJ_DEP_WAIT = 2,    /* keep waiting until the dependency is redriven and completes */
} aj_dep_policy;

/* "cascade", "ignore", "wait"; NULL for an unknown value. */
const char *aj_dep_policy_name(aj_dep_policy p);
/* Parses a policy name; AJ_EINVAL for an unknown one. */
int aj_dep_policy_parse(const char *text, aj_dep_policy *out);

/* Most dependencies one job may name. */
#define AJ_DEPS_MAX 10000
/* Most jobs on one dependency path (a job with no dependencies is a path of 1). */
#define AJ_DEPS_DEPTH_MAX 100
/* Most jobs in one graph (aj_dag_submit). */
#define AJ_DAG_JOBS_MAX 100000
/* Longest job name in a graph, in bytes. */
#define AJ_DAG_NAME_MAX 200
/* run_at_ms of a job waiting on dependencies: past every time a job may be given (9999). */
#define AJ_RUN_AT_DEPS ((int64_t)253402300800000)

typedef struct aj_job_spec {
    const char *queue;   /* NULL: "default" */
    const char *type;    /* required */
    const void *payload; /* bytes, conventionally JSON; may be NULL when payload_len is 0 */
    size_t payload_len;
    uint32_t priority;           /* AJ_PRIORITY_NORMAL */
    int64_t delay_ms;            /* 0: ready at once; exclusive with run_at_ms */
    int64_t run_at_ms;           /* 0: none */
    int64_t timeout_ms;          /* execution timeout of one attempt: 5 minutes */
    int64_t lease_ms;            /* lease length, renewed by heartbeats: 30 s; >= AJ_LEASE_MIN_MS */
    uint32_t max_attempts;       /* counting the first run: 3 */
    aj_backoff backoff;          /* exp:1s:2:5m */
    const char *idempotency_key; /* NULL: none */
    const char *metadata;        /* a JSON object as text, or NULL */
    /* Routing (docs/ROUTING.md): only a worker with this tag may claim it (NULL: any). */
    const char *require_tag;
    /* A worker on this node gets it; others only once it has been ready prefer_wait_ms (NULL:
     * no preference). */
    const char *prefer_node;
    int64_t prefer_wait_ms; /* AJ_PREFER_WAIT_DEFAULT_MS */
    const char *avoid_node; /* never a worker on this node (NULL: none) */
    /* Dependencies: the job stays scheduled until every job in after[] has completed (subject
     * to on_dep_failure), then becomes ready (or scheduled, if its delay has not passed). An
     * unknown id is AJ_ENOTFOUND; a chain longer than AJ_DEPS_DEPTH_MAX is AJ_EINVAL. */
    const uint64_t *after;        /* NULL: none */
    size_t n_after;               /* at most AJ_DEPS_MAX */
    aj_dep_policy on_dep_failure; /* AJ_DEP_CASCADE */
} aj_job_spec;

/* How long a job preferring a node waits for it before other workers may take it: 30 s. */
#define AJ_PREFER_WAIT_DEFAULT_MS (30 * AJ_SECOND)

void aj_job_spec_init(aj_job_spec *spec);

/* Submits one job; *out_id receives its id. Returns after the job is durable. With an
 * idempotency key already used in the queue within its TTL, returns the first job's id and
 * creates nothing; if that job had another type or payload, AJ_ECONFLICT. */
int aj_submit(aj_engine *e, const aj_job_spec *spec, uint64_t *out_id);
/* Submits up to AJ_BATCH_MAX jobs in one durable commit, all or nothing. out_ids[i] receives
 * the id of specs[i]. */
int aj_submit_batch(aj_engine *e, const aj_job_spec *specs, size_t n, uint64_t *out_ids);

/* --- Dependency graphs (docs/DEPENDENCIES.md) --- */

/* One job of a graph: a unique name, its spec (spec.after may name existing jobs by id), and
 * the jobs of the same graph it waits for, by name. */
typedef struct aj_dag_job {
    const char *name; /* 1..AJ_DAG_NAME_MAX bytes, unique in the graph, no whitespace */
    aj_job_spec spec;
    const char *const *after_names;
    size_t n_after_names;
} aj_dag_job;

/* Submits a graph of up to AJ_DAG_JOBS_MAX jobs, all or nothing; out_ids[i] receives the id of
 * jobs[i]. AJ_EINVAL naming the problem for a cycle ("cycle: a -> b -> a"), a self-edge, an
 * unknown or duplicate name, a path over AJ_DEPS_DEPTH_MAX jobs or too many jobs; AJ_ENOTFOUND
 * for an unknown id. Nothing is stored on error. A graph too large for one store transaction is
 * written in batches, inactive, and activated by one final commit. */
int aj_dag_submit(aj_engine *e, const aj_dag_job *jobs, size_t n, uint64_t *out_ids);

/* A parsed graph definition: {"jobs":[{"name":"a","run":["PROG","ARG"]},{"name":"b",
 * "after":["a"],"type":"echo","payload":{...}}, ...]} (the full shape is in
 * docs/DEPENDENCIES.md). Owned; free with aj_dag_free(). The jobs point into it. */
typedef struct aj_dag {
    aj_dag_job *jobs;
    size_t n;
    void *priv;
} aj_dag;

/* Parses a graph definition. AJ_EINVAL with aj_errmsg() naming the job and field at fault; the
 * graph's shape (cycles, unknown names) is checked by aj_dag_check(). Thread-safe. */
int aj_dag_parse(const char *text, size_t len, aj_dag **out);
void aj_dag_free(aj_dag *dag);
/* Checks a graph's shape without a store: names, self-edges, cycles, depth, size. */
int aj_dag_check(const aj_dag_job *jobs, size_t n);

/* A job's place in a dependency graph. Owned by the caller with the arrays it points to; free
 * with aj_dag_nodes_free(). */
typedef struct aj_dag_node {
    uint64_t id;
    char *name;           /* its name in a submitted graph, or NULL */
    aj_job_state state;   /* 0 when the job no longer exists (collected) */
    aj_dep_policy policy; /* on_dep_failure */
    uint32_t pending;     /* dependencies not yet satisfied */
    size_t n_after;       /* what it waits on */
    uint64_t *after;
    aj_job_state *after_state; /* 0: collected */
    size_t n_waited_by;        /* what waits on it */
    uint64_t *waited_by;
} aj_dag_node;

/* The dependencies of one job (a job with none gives a node with empty lists). AJ_ENOTFOUND
 * for an unknown job. */
int aj_job_deps(aj_engine *e, uint64_t id, aj_dag_node **out);
/* The whole graph containing a job: every job reachable through dependencies in either
 * direction, and every member of the submitted graph it belongs to, in id order (*out an array of
 * *n nodes); *out_graph receives the graph's id when it was submitted with aj_dag_submit, else 0.
 */
int aj_dag_show(aj_engine *e, uint64_t id, aj_dag_node **out, size_t *n, uint64_t *out_graph);
void aj_dag_nodes_free(aj_dag_node *nodes, size_t n);

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
    uint64_t epoch;           /* lease epoch: increases on every claim and revocation */
    int64_t lease_expires_ms; /* while running */
    char *worker;             /* the worker holding or last holding the lease; may be NULL */
    char *error;              /* the last error; may be NULL */
    aj_dead_reason dead_reason;
    int64_t dead_ms;       /* when it was dead-lettered */
    uint32_t redrives;     /* times redriven from the dead-letter queue */
    char *idempotency_key; /* may be NULL */
    char *metadata;        /* JSON object text; may be NULL */
    char *require_tag;     /* routing as submitted; NULL when absent */
    char *prefer_node;
    int64_t prefer_wait_ms; /* meaningful with prefer_node */
    char *avoid_node;
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
/* Paused queues and queue limits apply. The claimer has no node and no tags: it never takes a
 * job that requires a tag, and takes one preferring a node only after its prefer wait. */
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

/* Most names aj_shell_env_set() passes through. */
#define AJ_SHELL_PASS_ENV_MAX 64
/* Decides what the programs of `shell` jobs run by this engine get of the process environment,
 * which may hold secrets. By default: all of it except AJ_DB, the store's location (a program
 * that has it can open the store and change other jobs). With env_clear: none of it but the
 * variables named in pass_env (PATH included: without it, programs are searched for in
 * /bin:/usr/bin). AJ_DB reaches a program only when named in pass_env. The payload's "env" and
 * the job's own variables (AJ_JOB_ID, AJ_ATTEMPT, AJ_QUEUE, AJ_PROGRESS_FD) are set on top
 * either way. pass_env holds n_pass_env names (copied; at most AJ_SHELL_PASS_ENV_MAX), each
 * non-empty, without '=' (AJ_EINVAL names the bad one). Replaces an earlier policy. Call it
 * before aj_workers_start(): AJ_ESTATE while workers run. */
int aj_shell_env_set(aj_engine *e, int env_clear, const char *const *pass_env, size_t n_pass_env);

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
    uint32_t concurrency;         /* handler threads: 4 */
    int64_t shutdown_deadline_ms; /* time in-flight jobs get to finish on stop: 30 s */
    const char *worker_id;        /* NULL: "host:pid:random" */
    const char *node;             /* the node this pool runs on, for routing: NULL: host name */
    const char *const *tags;      /* the pool's tags, for jobs that require one */
    size_t n_tags;                /* at most AJ_WORKER_TAGS_MAX */
} aj_worker_opts;

/* Most tags one worker pool may carry. */
#define AJ_WORKER_TAGS_MAX 32

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
 * stopped first, the store's error if the pool stopped on one (aj_workers_error). */
int aj_workers_drain(aj_engine *e, int64_t horizon_ms);
/* 0 while the pool works; the error that stopped it otherwise, with aj_errmsg() naming it. The
 * pool stops by itself when claims keep failing with a store error that waiting does not cure
 * (a damaged file: AJ_ECORRUPT, AJ_EFORMAT, AJ_EIO), after 10 attempts in a row 0.5 s apart;
 * a busy or full store is waited out, and so is a store server that cannot be reached
 * (AJ_EUNAVAILABLE, AJ_EAMBIGUOUS): claims and job outcomes are retried after a backoff (0.1 s
 * doubling to 5 s) for as long as the pool runs, each failure logged, and an outcome is recorded
 * once the server is back (so an outage shorter than a job's lease does not run it again). A
 * program running a pool should check this now and then and call aj_workers_stop when it is not 0.
 */
int aj_workers_error(aj_engine *e);

/* ---------------------------------------------------------------------------------------------
 * Durable workflows
 *
 * A workflow is a registered C function that the engine runs from the start on every wake-up,
 * against its recorded history: each durable call (aj_step, aj_activity, aj_sleep, ...) returns
 * the recorded outcome when the history has one, and otherwise does its work live and records
 * it. A call that cannot finish now (an activity still running, a timer not yet due, a signal
 * not yet sent) returns AJ_SUSPEND, which the workflow must return at once (AJ_TRY does this).
 * The workflow ends when the function returns 0 (completed, with the result set by
 * aj_wf_set_result) or an error (failed, with the message given to aj_wf_fail).
 *
 * Rules for workflow code: make the same durable calls in the same order on every run (read the
 * time, random numbers and ids through aj_wf_now/aj_wf_random/aj_wf_uuid, which are recorded);
 * do side effects only inside steps and activities. A call whose kind or name differs from the
 * history parks the workflow (state `parked`) with a message naming both; fix the code, then
 * aj_wf_resume().
 *
 * Workflow tasks run on the worker pool (aj_workers_start) of any process that registered the
 * type, as jobs of the internal queue "aj.wf/TYPE".
 * ------------------------------------------------------------------------------------------- */

#define AJ_SUSPEND 1 /* positive: not an error; return it from the workflow function */
#define AJ_TRY(expr)                                                                               \
    do {                                                                                           \
        int aj__try_rc = (expr);                                                                   \
        if (aj__try_rc != 0) {                                                                     \
            return aj__try_rc;                                                                     \
        }                                                                                          \
    } while (0)

/* Workflow ids: 1..AJ_WF_ID_MAX bytes, the same characters as queue names. */
#define AJ_WF_ID_MAX 200
/* Largest workflow input, result, step result or signal payload (1 MiB). */
#define AJ_WF_DATA_MAX ((size_t)1 << 20)
/* Most events in one run of a workflow. */
#define AJ_WF_EVENTS_MAX 50000
/* Continue-as-new is suggested from this many events on (80% of the limit). */
#define AJ_WF_EVENTS_SUGGEST (AJ_WF_EVENTS_MAX / 5 * 4)

typedef enum aj_wf_state {
    AJ_WF_RUNNING = 1,
    AJ_WF_COMPENSATING = 2,
    AJ_WF_COMPLETED = 3,
    AJ_WF_FAILED = 4,
    AJ_WF_CANCELLED = 5,
    AJ_WF_TERMINATED = 6,
    AJ_WF_TIMED_OUT = 7,
    AJ_WF_COMPENSATED = 8,
    AJ_WF_COMPENSATION_FAILED = 9,
    AJ_WF_PARKED = 10,
    AJ_WF_CONTINUED = 11, /* an earlier run that continued as new (never a workflow's latest) */
} aj_wf_state;
#define AJ_WF_STATE_COUNT 12

/* "running", "compensating", ...; NULL for an unknown value. */
const char *aj_wf_state_name(aj_wf_state s);
int aj_wf_state_parse(const char *text, aj_wf_state *out);
/* 1 for the states a run ends in (all but running, compensating and parked). */
int aj_wf_state_is_final(aj_wf_state s);

/* Bytes owned by the library, valid as documented by the call that returned them. */
typedef struct aj_bytes {
    const void *data;
    size_t len;
} aj_bytes;

typedef struct aj_wf aj_wf;
typedef int (*aj_workflow_fn)(aj_wf *wf, aj_bytes input, void *ud);

/* Registers the function for a workflow type. Call before starting workers. */
int aj_workflow_register(aj_engine *e, const char *type, aj_workflow_fn fn, void *ud);

typedef struct aj_wf_start_opts {
    const char *id;               /* NULL: a generated id */
    int allow_rerun;              /* 1: a finished id starts a new run; else AJ_EEXISTS */
    int64_t execution_timeout_ms; /* 0: none; past it the run ends timed_out */
} aj_wf_start_opts;

/* 1 when some process has registered the workflow type with this store (or it is built in:
 * `saga`), else 0. Front ends use it to refuse a start that no worker could run. */
int aj_wf_type_known(aj_engine *e, const char *type);
/* Starts a workflow (durable on return). *out_id (may be NULL) receives its id: free with
 * aj_free(). A running id: AJ_EEXISTS. */
int aj_wf_start(aj_engine *e, const char *type, const void *input, size_t len,
                const aj_wf_start_opts *opts, char **out_id);
/* Sends a signal, buffered until the workflow consumes it. AJ_ENOTFOUND, or AJ_ESTATE when the
 * workflow has finished. */
int aj_wf_signal(aj_engine *e, const char *id, const char *name, const void *payload, size_t len);
/* Signals the workflow, starting it first (with `input`) if it is not running. */
int aj_wf_signal_with_start(aj_engine *e, const char *type, const char *id, const void *input,
                            size_t input_len, const char *name, const void *payload, size_t len);
/* Asks a workflow to cancel: its code sees aj_wf_cancel_requested() (and durable waits return
 * AJ_ECANCELLED) and may clean up; a saga compensates. */
int aj_wf_cancel(aj_engine *e, const char *id);
/* Ends a workflow at once; no more of its code runs. */
int aj_wf_terminate(aj_engine *e, const char *id, const char *reason);
/* Retries a parked workflow (after its code was fixed). AJ_ESTATE if it is not parked. */
int aj_wf_resume(aj_engine *e, const char *id);
/* Answers a query by replaying the workflow read-only on this process (which must have
 * registered the type) and calling the handler the code set with aj_wf_set_query. *out is
 * owned by the caller (aj_free). */
int aj_wf_query(aj_engine *e, const char *id, const char *name, char **out, size_t *out_len);

/* For tests of workflow code: replays the stored history of workflow `id` against `fn`
 * read-only (nothing runs, nothing is written) and reports whether the code still makes the
 * recorded calls. 0 when it does; AJ_ESTATE when it diverges, with *out_report (may be NULL;
 * free with aj_free) naming the first divergence: the recorded event and the call the code
 * makes now. Use it before deploying changed workflow code against histories of live runs. */
int aj_wf_replay_check(aj_engine *e, const char *id, aj_workflow_fn fn, void *ud,
                       char **out_report);

/* A snapshot of a workflow's latest run. Owned; free with aj_wf_info_free(). */
typedef struct aj_wf_info {
    char *id;
    char *type;
    uint32_t run;
    aj_wf_state state;
    void *input; /* NUL-terminated like job payloads */
    size_t input_len;
    void *result; /* NULL until completed */
    size_t result_len;
    char *error; /* NULL unless failed, parked, ... */
    uint64_t events;
    int64_t created_ms, updated_ms, finished_ms, deadline_ms;
    int cancel_requested;
} aj_wf_info;

void aj_wf_info_free(aj_wf_info *info);
int aj_wf_get(aj_engine *e, const char *id, aj_wf_info **out);

typedef struct aj_wf_filter {
    aj_wf_state state; /* 0: any */
    const char *type;  /* NULL: any */
    size_t limit;      /* 0: no limit */
} aj_wf_filter;

int aj_wf_list(aj_engine *e, const aj_wf_filter *f, aj_wf_info ***out, size_t *n);
void aj_wf_list_free(aj_wf_info **list, size_t n);
/* Waits until the workflow's run is final (or parked) or timeout_ms passes (-1: forever). */
int aj_wf_wait(aj_engine *e, const char *id, int64_t timeout_ms, aj_wf_state *out_state);

/* One history event. */
typedef struct aj_wf_event {
    uint64_t seq;     /* 1-based */
    const char *type; /* "workflow_started", "step_completed", ... */
    const char *name; /* the step, activity, timer or signal name; "" when none */
    int64_t time_ms;  /* when it was recorded (from the HLC stamp) */
    uint64_t hlc;
    uint64_t id, prev_id; /* chain: prev_id is the id of event seq-1 (0 for the first) */
    aj_bytes data;        /* result, error text, payload or input, per type */
    uint64_t aux;         /* job id, fire time, attempt, ... per type */
} aj_wf_event;

/* Reads a run's history (run 0: the latest), validating the chain. Calls fn for each event;
 * pointers are valid during the call. */
int aj_wf_history(aj_engine *e, const char *id, uint32_t run,
                  int (*fn)(void *ud, const aj_wf_event *ev), void *ud);
/* A snapshot of one run (run 0: the latest, as aj_wf_get). An earlier run's state, result,
 * error, input and times come from its own history (its first and last events); its state is
 * `continued` when it continued as new. AJ_ENOTFOUND for an unknown id or run. */
int aj_wf_get_run(aj_engine *e, const char *id, uint32_t run, aj_wf_info **out);

/* What happens to a running child workflow when its parent's run ends (completes, fails, is
 * cancelled, terminated or times out, or continues as new): terminated (the default, as in
 * Temporal), asked to cancel, or left running (abandoned). Under `cancel`, cancelling the
 * parent also asks the child to cancel at once. */
typedef enum aj_parent_close {
    AJ_PARENT_CLOSE_TERMINATE = 1,
    AJ_PARENT_CLOSE_CANCEL = 2,
    AJ_PARENT_CLOSE_ABANDON = 3,
} aj_parent_close;

/* "terminate", "cancel", "abandon"; NULL for an unknown value. */
const char *aj_parent_close_name(aj_parent_close p);
int aj_parent_close_parse(const char *text, aj_parent_close *out);

/* A parent-child link, as the store holds it. */
typedef struct aj_wf_link {
    char id[AJ_WF_ID_MAX + 1];  /* the other workflow: the child (aj_wf_children) or the parent */
    char name[AJ_NAME_MAX + 1]; /* the child's name in its parent's code */
    uint32_t run;               /* the parent's run that started the child */
    uint64_t seq;               /* the child_started event in that run */
    aj_parent_close parent_close;
} aj_wf_link;

/* The parent of a child workflow: AJ_ENOTFOUND when `id` was not started as a child. */
int aj_wf_parent(aj_engine *e, const char *id, aj_wf_link *out);
/* The children every run of `id` started, in start order. *out (free with aj_free) holds *n. */
int aj_wf_children(aj_engine *e, const char *id, aj_wf_link **out, size_t *n);

/* --- Inside a workflow function --- */

const char *aj_wf_id(const aj_wf *wf);
/* 1 once cancellation was requested. */
int aj_wf_cancel_requested(const aj_wf *wf);
/* 1 when the history has passed AJ_WF_EVENTS_SUGGEST events. */
int aj_wf_continue_suggested(const aj_wf *wf);
/* Sets the result (copied) returned by aj_wf_get once the function returns 0. */
int aj_wf_set_result(aj_wf *wf, const void *data, size_t len);
/* Records why the workflow fails; returns AJ_EFAILED for the function to return. A function
 * that returns another error fails with that error's message, except store errors (AJ_EIO,
 * AJ_EFULL, AJ_ENOMEM, ...), after which the task is retried. */
int aj_wf_fail(aj_wf *wf, const char *error);

/* A step's context: its function sets a result and may read and write the user's own records
 * in the engine's store; those writes commit in the same transaction that records the step's
 * completion, so they happen exactly once. */
typedef struct aj_step_ctx aj_step_ctx;
typedef int (*aj_step_fn)(aj_step_ctx *ctx, aj_bytes input, void *ud);
int aj_step_set_result(aj_step_ctx *ctx, const void *data, size_t len);
/* Fails the attempt: retried per the step's policy unless `permanent`. */
int aj_step_fail(aj_step_ctx *ctx, const char *error, int permanent);
/* The user's key space (keys up to 512 bytes, values up to 1 MiB). get: *out valid until the
 * step returns; AJ_ENOTFOUND when absent. */
int aj_step_get(aj_step_ctx *ctx, const void *key, size_t klen, aj_bytes *out);
int aj_step_put(aj_step_ctx *ctx, const void *key, size_t klen, const void *val, size_t vlen);
int aj_step_del(aj_step_ctx *ctx, const void *key, size_t klen);

typedef struct aj_step_policy {
    uint32_t max_attempts; /* 3 */
    aj_backoff backoff;    /* exp:100ms:2:10s */
} aj_step_policy;

void aj_step_policy_init(aj_step_policy *p);
/* Runs fn inline (memoized: on replay the recorded result is returned without running it).
 * *out (may be NULL) is valid until the workflow function returns. A step that failed all its
 * attempts returns AJ_EFAILED (recorded too, so replay returns it again). */
int aj_step(aj_wf *wf, const char *name, aj_step_fn fn, void *ud, aj_bytes input, aj_bytes *out);
int aj_step_with(aj_wf *wf, const char *name, const aj_step_policy *policy, aj_step_fn fn, void *ud,
                 aj_bytes input, aj_bytes *out);
/* Runs a job (spec: queue, type, payload, retries, timeout, lease) on any worker and waits for
 * it: AJ_SUSPEND until it finishes; then 0 with its result, or AJ_EFAILED when it was
 * dead-lettered or cancelled (AJ_ECANCELLED when the workflow is being cancelled). */
int aj_activity(aj_wf *wf, const char *name, const aj_job_spec *spec, aj_bytes *out);
/* Starts an activity without waiting (records activity_scheduled and returns 0), so a workflow
 * can run many jobs at once; collect each outcome with aj_activity_wait. A name used twice in
 * one run is AJ_EEXISTS; AJ_ECANCELLED when the workflow is being cancelled. */
int aj_activity_start(aj_wf *wf, const char *name, const aj_job_spec *spec);
/* Waits for the activity started as `name`: AJ_SUSPEND until its final outcome is in; then 0
 * with its result in *out (may be NULL; valid until the workflow function returns), or
 * AJ_EFAILED when it was dead-lettered or cancelled. A task that ends waiting here records a
 * `wait_point` (as do aj_child_wait and aj_wait_signal without a timeout), so replay knows how
 * far the code got. When the workflow is being cancelled its
 * job is cancelled too and the call returns once the job's outcome is in (AJ_ECANCELLED, or 0
 * when it completed first). AJ_EINVAL when no activity of that name was started. */
int aj_activity_wait(aj_wf *wf, const char *name, aj_bytes *out);
/* Durable timers. */
int aj_sleep(aj_wf *wf, int64_t ms);
int aj_sleep_until(aj_wf *wf, int64_t at_ms);
/* Waits for the next signal `name` (timeout_ms < 0: forever): 0 with its payload, or
 * AJ_ETIMEDOUT. Without a timeout, a task that ends waiting here records a `wait_point`. */
int aj_wait_signal(aj_wf *wf, const char *name, int64_t timeout_ms, aj_bytes *out);
/* Deterministic helpers, recorded as side effects. */
int aj_wf_now(aj_wf *wf, int64_t *out_ms);
int aj_wf_random(aj_wf *wf, uint64_t *out);
int aj_wf_uuid(aj_wf *wf, char out[37]);
/* Query handlers: set *out (malloc'd) and *len. A query replays the workflow read-only and
 * calls the handler while the function is still running — at the first durable call that has no
 * recorded outcome (where the run is waiting), or at aj_wf_set_result/aj_wf_fail — so `ud` may
 * point to the function's own locals. A run that returned without either cannot answer
 * (AJ_ESTATE). */
typedef int (*aj_query_fn)(void *ud, aj_bytes arg, char **out, size_t *len);
int aj_wf_set_query(aj_wf *wf, const char *name, aj_query_fn fn, void *ud);

/* Sagas: after a step succeeds, push its compensation; on failure or cancellation,
 * aj_saga_compensate() runs the pushed compensations in reverse order, each recorded
 * (compensation_started/completed/failed), and the run ends `compensated` or
 * `compensation_failed` when the function then returns. */
int aj_saga_push(aj_wf *wf, const char *name, aj_step_fn fn, void *ud, aj_bytes data);
/* Pushes a compensation that runs as a job (like an activity: any worker, any process, with the
 * spec's retries, timeout and lease); it counts as failed when the job is dead-lettered. The spec
 * is copied; its idempotency key is ignored. */
int aj_saga_push_job(aj_wf *wf, const char *name, const aj_job_spec *spec);
int aj_saga_compensate(aj_wf *wf);

/* --- Composition and evolution (docs/WORKFLOWS.md, "Child workflows", "Continue-as-new",
 * "Version patches") --- */

/* Most children one run may start. */
#define AJ_WF_CHILDREN_MAX 10000

typedef struct aj_child_opts {
    const char *id;               /* NULL: derived from the parent id and the name, "PARENT/NAME" */
    aj_parent_close parent_close; /* 0: AJ_PARENT_CLOSE_TERMINATE */
    int64_t execution_timeout_ms; /* 0: none */
} aj_child_opts;

/* Starts a child workflow of `type` (any registered type, or `saga`) in the same transaction
 * that records `child_started` in the parent's history; the child's outcome reaches the parent
 * as `child_completed` or `child_failed`. `name` (the rules for queue names) identifies the
 * child within the run: a name used twice in one run is AJ_EEXISTS. A child id that is running
 * already cannot start: that is recorded as `child_failed` and returns AJ_EFAILED (a finished
 * id starts a new run). opts may be NULL. Returns 0 once started: collect the result later with
 * aj_child_wait, so one parent can fan out many children and then wait for each. */
int aj_child_start(aj_wf *wf, const char *name, const char *type, const void *input, size_t len,
                   const aj_child_opts *opts);
/* Waits for the child started as `name`: AJ_SUSPEND until it ends; then 0 with its result in
 * *out (may be NULL; valid until the workflow function returns), or AJ_EFAILED when it ended in
 * another state (the message names the state and error). AJ_ECANCELLED when the parent is being
 * cancelled and the child's policy is not `cancel` (under `cancel` the child is asked to cancel
 * too, and its outcome is awaited). AJ_EINVAL when no child of that name was started. */
int aj_child_wait(aj_wf *wf, const char *name, aj_bytes *out);
/* aj_child_start then aj_child_wait. */
int aj_child(aj_wf *wf, const char *name, const char *type, const void *input, size_t len,
             const aj_child_opts *opts, aj_bytes *out);

#define AJ_CONTINUE_AS_NEW 2 /* positive: return it from the workflow function */
/* Ends this run and starts the next one under the same id with `input` (copied), in the same
 * transaction: the run's history ends with `continued_as_new` (carrying the input), the run's
 * state becomes `continued` (aj_wf_get_run), and run N+1 starts with `workflow_started`. Returns
 * AJ_CONTINUE_AS_NEW, which the function must return at once. Children of the run get their
 * parent-close policy; signals sent after it reach the new run. The execution timeout spans the
 * whole chain. AJ_ETOOBIG for input over AJ_WF_DATA_MAX. Use it when
 * aj_wf_continue_suggested() says so, or to bound an endless loop's history. */
int aj_wf_continue_as_new(aj_wf *wf, const void *input, size_t len);

/* Most distinct patch ids one run may ask about. */
#define AJ_WF_PATCHES_MAX 64
/* Version patches (Temporal's patched/deprecatePatch): change the code of a workflow while
 * runs recorded by the old code are in flight. `if (aj_patched(wf, "id")) new path; else old`.
 * Returns 1 when the run takes the new path: live, the first time a run gets here, it records a
 * `version_marker` event named patch_id; on replay, a marker at this point in the history.
 * Returns 0 when the run was recorded by the old code: replay reaches this point with recorded
 * commands after it and no marker, or with the `wait_point` of a wait the run reached beyond
 * this point (docs/WORKFLOWS.md, "Version patches"; also 0, recording nothing, at the end of the
 * commands of a run recorded by an aj older than wait points, in its first task under this one).
 * The answer is fixed per run at the first call (later calls with the same id return it again
 * without recording). Negative on bad input (AJ_EINVAL) or more than AJ_WF_PATCHES_MAX ids. */
int aj_patched(aj_wf *wf, const char *patch_id);
/* The cleanup step, once no run without the marker is left: keep only the new path and call
 * this instead of aj_patched. It records the marker live (so older code still running elsewhere
 * takes the new path) and accepts a history with or without it. Markers the code no longer asks
 * about are skipped on replay, so the call itself may be removed later. */
int aj_deprecate_patch(aj_wf *wf, const char *patch_id);
/* Activity result cache (docs/WORKFLOW_CACHE_UPDATES_RESET.md). An activity run with a cache
 * is memoized by a hash of (spec->type, version, spec->payload): while an unexpired entry exists
 * in its scope, no job runs and the recorded result is returned. The hit is recorded in the
 * history like an execution (activity_scheduled + activity_completed whose aux has
 * AJ_WF_EVENT_CACHED), so replay never consults the cache again. A job that completes fills the
 * cache in the transaction that completes it. */
typedef struct aj_activity_cache {
    const char *version; /* the activity's declared version (NULL: ""); change it to invalidate */
    int global;          /* 1: shared by every workflow; 0: this workflow id's runs only */
    int64_t ttl_ms;      /* how long an entry is served, > 0 */
} aj_activity_cache;
#define AJ_WF_EVENT_CACHED ((uint64_t)1 << 62) /* aux bit: the result came from the cache */
/* aj_activity with a cache (NULL: plain aj_activity). */
int aj_activity_cached(aj_wf *wf, const char *name, const aj_job_spec *spec,
                       const aj_activity_cache *cache, aj_bytes *out);

/* Updates (docs/WORKFLOW_CACHE_UPDATES_RESET.md): a signal that returns a result. The workflow
 * code sets a handler per update name with a validator; a validator that returns nonzero rejects
 * the update (*out_error, malloc'd or NULL, is the caller's message) and nothing is recorded. An
 * accepted update is recorded (update_accepted), its handler runs and its result is recorded
 * (update_completed) and returned to the caller; on replay the handler runs again at the same
 * point of the history with the same argument, so it may change the function's locals (ud). A
 * handler result: *out malloc'd (or NULL) and *len; a nonzero return fails the update. Updates are
 * handled where the code waits (a durable call returns AJ_SUSPEND) or ends. */
typedef int (*aj_update_validate_fn)(void *ud, aj_bytes arg, char **out_error);
typedef int (*aj_update_fn)(void *ud, aj_bytes arg, char **out, size_t *len);
int aj_wf_set_update(aj_wf *wf, const char *name, aj_update_validate_fn validate,
                     aj_update_fn handler, void *ud);
/* Sends update `name` and waits up to timeout_ms (-1: forever) for its result: 0 with *out
 * (malloc'd, NUL-terminated; free with aj_free) and *out_len; AJ_EINVAL when the workflow
 * rejected it (the validator's message in aj_errmsg(), nothing recorded); AJ_EFAILED when its
 * handler failed; AJ_ESTATE when the workflow finished (or was reset) before handling it;
 * AJ_ETIMEDOUT. */
int aj_wf_update(aj_engine *e, const char *id, const char *name, const void *payload, size_t len,
                 int64_t timeout_ms, char **out, size_t *out_len);

/* Reset (docs/WORKFLOW_CACHE_UPDATES_RESET.md): starts a new run of workflow `id` whose history is
 * a copy of the latest run's events 1..to_seq, then continues live: what completed up to to_seq is
 * not run again, everything after is. to_seq must be workflow_started (1), step_completed,
 * activity_completed, timer_fired or side_effect, with no activity still running at that point
 * (else AJ_EINVAL naming why). A run still running is terminated first, and the jobs its
 * activities were waiting for after to_seq are cancelled. *out_run (may be NULL)
 * receives the new run's number. */
int aj_wf_reset(aj_engine *e, const char *id, uint64_t to_seq, const char *reason,
                uint32_t *out_run);

/* ---------------------------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------------------------- */
#define AJ_HIST_BUCKETS 24 /* bucket i counts values in [2^(i-1), 2^i) (bucket 0: < 1) */
/* Latency histograms fine enough for real percentiles (log-linear, as in HdrHistogram): values
 * below AJ_LAT_SUB count exactly; above, each power of two [2^e, 2^(e+1)) is split into
 * AJ_LAT_SUB equal buckets, so a bucket's midpoint is within 1/(2 * AJ_LAT_SUB) (1.6%) of any
 * value in it. Values of 2^36 and more (19 hours in microseconds) count in the last bucket. */
#define AJ_LAT_SUB 32
#define AJ_LAT_BUCKETS 1024

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
    uint64_t conflicts;                           /* storage commit conflicts */
    uint64_t retries;                             /* transactions retried after a conflict */
    uint64_t commits;                             /* storage commit batches */
    uint64_t fsyncs;                              /* durable commit batches */
    uint64_t commit_batch_hist[AJ_HIST_BUCKETS];  /* transactions per commit batch */
    uint64_t start_latency_hist[AJ_HIST_BUCKETS]; /* ready-to-claimed, in microseconds */
    /* Workflows (appended, so older counter records keep their meaning). */
    uint64_t wf_tasks;           /* workflow tasks committed */
    uint64_t wf_events_appended; /* history events written */
    uint64_t wf_events_replayed; /* history events a task replayed */
    uint64_t wf_replay_us;       /* time spent running workflow code, microseconds */
    uint64_t wf_cache_hits;      /* tasks that found the history in this process's cache */
    uint64_t wf_cache_misses;    /* tasks that loaded the whole history from the store */
    uint64_t wf_parked;          /* runs parked on non-determinism */
    /* Sagas: runs that registered a compensation (C sagas and the built-in `saga`). */
    uint64_t wf_sagas_started;         /* runs that registered their first compensation */
    uint64_t wf_sagas_completed;       /* ... and then completed */
    uint64_t wf_sagas_compensated;     /* runs that ended compensated */
    uint64_t wf_compensation_failures; /* compensations that failed for good */
    uint64_t wf_timers_scheduled;      /* durable timers (sleeps, signal timeouts) */
    uint64_t wf_timers_fired;
    uint64_t wf_timer_lag_hist[AJ_HIST_BUCKETS]; /* fire time to firing, in milliseconds */
    /* Transactions (every state change is an optimistic compare-and-swap of what it read). */
    uint64_t txn_attempts; /* transactions tried, first tries and retries */
    uint64_t txn_gave_up;  /* gave up after repeated conflicts (AJ_ERETRIES) */
    /* The activity result cache. */
    uint64_t activity_cache_hits;    /* cached activities answered from the cache */
    uint64_t activity_cache_misses;  /* cached activities that had to run their job */
    uint64_t activity_cache_fills;   /* entries written by a completed job */
    uint64_t activity_cache_expired; /* expired entries collected */
    /* Job records a claim or duty could not decode (a newer format, or damage) and left
     * untouched; each counted once by each process that met it. `aj check` names them. */
    uint64_t jobs_unreadable;
    /* Ready-to-claimed in microseconds, finely (AJ_LAT_BUCKETS): aj_latency_quantile_ms. */
    uint64_t start_latency_us[AJ_LAT_BUCKETS];
} aj_counters;

/* The q-quantile (0 < q <= 1) of a latency histogram in microseconds (AJ_LAT_BUCKETS), in
 * milliseconds: the midpoint of the bucket holding that rank, within 1.6% of the true value.
 * 0 for an empty histogram. */
double aj_latency_quantile_ms(const uint64_t hist[AJ_LAT_BUCKETS], double q);

typedef struct aj_stats {
    uint64_t jobs[AJ_STATE_COUNT];         /* exact count of jobs in each state, whole store */
    uint64_t workflows[AJ_WF_STATE_COUNT]; /* exact count of workflows in each state */
    aj_counters process;                   /* this process since open */
    aj_counters total; /* every process, as last flushed to the store, plus this one */
    uint64_t activity_cache_entries; /* entries in the activity result cache (expired or not) */
} aj_stats;

int aj_stats_get(aj_engine *e, aj_stats *out);

/* Large payloads and results (over the engine's blob_threshold) as stored: one blob per
 * distinct content, however many jobs refer to it. */
typedef struct aj_blob_stats {
    uint64_t count;        /* blobs stored */
    uint64_t chunks;       /* their chunks (256 KiB each, the last one of a blob shorter) */
    uint64_t bytes;        /* their content, each blob counted once */
    uint64_t refs;         /* references held by jobs (payloads and results) */
    uint64_t unreferenced; /* blobs no job refers to, waiting for collection */
} aj_blob_stats;

/* Counts the stored blobs. Reads one small record per blob, never the chunks. */
int aj_blob_stats_get(aj_engine *e, aj_blob_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Maintenance
 * ------------------------------------------------------------------------------------------- */

/* Writes a consistent copy of the store to `path` while it stays in use (SQLite only). The copy
 * is written to `path`.partial (locked while written), synced and renamed to `path` only when
 * whole, so a failed or killed backup leaves nothing under `path`. AJ_EEXISTS when `path`
 * exists (never overwritten); AJ_EBUSY when another backup is writing the same path. */
int aj_backup(aj_engine *e, const char *path);
/* Verifies every record against its indexes and every index entry against its record. Problems
 * are described through `report` (one line each); returns 0 when consistent, AJ_ECORRUPT when
 * not. A store that cannot be read to the end (a damaged file) is another error, AJ_EIO, whose
 * message names the storage error; then nothing is said about consistency. */
int aj_check(aj_engine *e, void (*report)(void *ud, const char *line), void *ud,
             uint64_t *out_records);

/* ---------------------------------------------------------------------------------------------
 * Dead-letter analytics and job progress
 *
 * Dead-letter analytics read the dead-letter queue in one consistent snapshot and summarise it:
 * counts by queue, type and reason (aj_dlq_stats_get), and a report with the top errors, ages,
 * redrive counts and findings with recommendations (aj_dlq_analyze). They only read.
 *
 * Progress: a running handler reports how far its job has got (aj_ctx_progress, aj_ctx_step,
 * aj_ctx_count; a `shell` job writes lines to the descriptor named in $AJ_PROGRESS_FD) and
 * anyone reads it back (aj_job_progress). Progress is a conflict-free replicated state, so
 * reports of several attempts of a job (a retry, or a worker that lost its lease and still runs)
 * merge without coordination and in any order:
 *   percent          a max-register: the highest percentage reported, never going back
 *   message, step    last-writer-wins registers ordered by a hybrid logical clock (HLC)
 *   completed steps  a grow-only set: a step is completed when its attempt reports another step,
 *                    or when the attempt completes the job
 *   counters         grow-only: each attempt (identified by its lease epoch) adds to its own
 *                    count, and a counter's value is the sum over attempts (a G-counter), so work
 *                    a retry repeats is counted again
 * A worker keeps reports in memory and writes them in batches: at most every
 * AJ_PROGRESS_FLUSH_MS while the job runs, and with the job's outcome, never one commit per
 * report. Progress is deleted with its job (collection after retention, or purge).
 * ------------------------------------------------------------------------------------------- */

/* Bytes of a normalised error group; longer groups are cut. */
#define AJ_DLQ_GROUP_MAX 200
/* Bytes of the example error kept with a group; longer errors are cut. */
#define AJ_DLQ_EXAMPLE_MAX 512
/* Distinct queues, types or error groups counted one by one; the rest count as "(other)". */
#define AJ_DLQ_NAMES_MAX 10000
/* Buckets of aj_dlq_report.redrive_hist. */
#define AJ_DLQ_REDRIVE_BUCKETS 6

/* Writes the group of an error message into buf (always NUL-terminated when size > 0) and
 * returns its length. Errors that differ only in numbers and ids share a group:
 *   1. a word (a maximal run of ASCII letters, digits and '_') that contains a digit and
 *      otherwise only hex letters (a-f, A-F), or that is 0x followed by hex digits, becomes
 *      "<id>" when it has 8 or more characters and "<n>" otherwise ("job 42" -> "job <n>",
 *      "req 9f86d081" -> "req <id>", a UUID -> "<id>-<n>-<n>-<n>-<id>");
 *   2. in any other word, each run of digits becomes "<n>" ("31s" -> "<n>s", "utf8" ->
 *      "utf<n>"), so "timeout after 31s" and "timeout after 32s" share "timeout after <n>s";
 *   3. runs of whitespace become one space, and leading and trailing whitespace goes;
 *   4. the result is cut to AJ_DLQ_GROUP_MAX bytes at a UTF-8 character boundary.
 * A NULL or empty error is "(no error)". Pure and thread-safe. */
size_t aj_dlq_error_group(const char *error, char *buf, size_t size);

/* A name and how many dead letters carry it. */
typedef struct aj_dlq_count {
    char *name; /* a queue, type or reason name, or "(other)" past AJ_DLQ_NAMES_MAX */
    uint64_t count;
} aj_dlq_count;

/* Dead letters counted three ways. Each list is sorted by count, largest first, then by name. */
typedef struct aj_dlq_stats {
    uint64_t total;
    aj_dlq_count *by_queue;
    size_t n_queues;
    aj_dlq_count *by_type;
    size_t n_types;
    aj_dlq_count *by_reason; /* names as aj_dead_reason_name() */
    size_t n_reasons;
} aj_dlq_stats;

/* Counts the dead letters matching `filter` (NULL: all; its state is taken to be dead, and its
 * after_id and limit are ignored). *out is owned: free it with aj_dlq_stats_free(). */
int aj_dlq_stats_get(aj_engine *e, const aj_job_filter *filter, aj_dlq_stats **out);
void aj_dlq_stats_free(aj_dlq_stats *s);

typedef enum aj_dlq_finding_kind {
    AJ_DLQ_FINDING_STALE = 1,            /* dead letters older than stale_after_ms */
    AJ_DLQ_FINDING_REPEATED_REDRIVE = 2, /* dead again after redrive_threshold or more redrives */
    AJ_DLQ_FINDING_DOMINANT_ERROR = 3,   /* one error group holds dominant_percent or more */
    AJ_DLQ_FINDING_DOMINANT_TYPE = 4,    /* one job type holds dominant_percent or more */
} aj_dlq_finding_kind;

/* "stale", "repeated_redrive", "dominant_error", "dominant_type"; NULL for an unknown kind. */
const char *aj_dlq_finding_name(aj_dlq_finding_kind kind);

/* One finding: what was seen, the counts behind it and what to do about it. */
typedef struct aj_dlq_finding {
    aj_dlq_finding_kind kind;
    uint64_t count;       /* dead letters behind the finding */
    uint64_t total;       /* dead letters analysed */
    char *subject;        /* the error group or the job type; NULL for the other kinds */
    int64_t threshold;    /* stale: the age in ms; repeated_redrive: the redrive count;
                             dominant kinds: the percentage */
    uint64_t example_id;  /* a dead letter behind it: the oldest stale one, the most redriven
                             one, the newest of the error group or type */
    char *message;        /* one sentence citing the counts */
    char *recommendation; /* what to do, with an `aj` command where one helps */
} aj_dlq_finding;

/* An error group and how many dead letters fell into it. */
typedef struct aj_dlq_error_count {
    char *group;         /* the normalised error (aj_dlq_error_group) */
    char *example;       /* the error of the newest dead letter in the group, as stored (cut to
                            AJ_DLQ_EXAMPLE_MAX bytes) */
    uint64_t example_id; /* that dead letter */
    uint64_t count;
} aj_dlq_error_count;

typedef struct aj_dlq_analyze_opts {
    int64_t stale_after_ms;     /* dead letters older than this are stale: 7 days */
    uint32_t redrive_threshold; /* redriven this many times or more and dead again: 2 */
    uint32_t dominant_percent;  /* an error group or type with this share or more: 50 */
    uint64_t dominant_min;      /* ... and at least this many dead letters: 5 */
    size_t top_errors;          /* error groups listed in the report: 10 */
} aj_dlq_analyze_opts;

void aj_dlq_analyze_opts_init(aj_dlq_analyze_opts *opts);

/* The analysis of a set of dead letters. Ages are measured from now_ms. */
typedef struct aj_dlq_report {
    aj_dlq_stats stats; /* total, and counts by queue, type and reason */
    int64_t now_ms;
    uint64_t oldest_id; /* the dead letter that died first; 0 when there is none */
    int64_t oldest_ms;  /* when it died */
    uint64_t newest_id; /* the dead letter that died last */
    int64_t newest_ms;
    int64_t average_age_ms;
    uint64_t redriven; /* dead letters that had been redriven at least once */
    uint64_t redrives; /* their redrives, summed */
    uint32_t redrives_max;
    uint64_t redrive_hist[AJ_DLQ_REDRIVE_BUCKETS]; /* [i]: dead letters redriven i times; the
                                                      last bucket: that many or more */
    uint64_t error_groups;                         /* distinct error groups */
    aj_dlq_error_count *top_errors; /* the largest groups, largest first, then by group */
    size_t n_top_errors;
    aj_dlq_finding *findings; /* in the order of aj_dlq_finding_kind; empty when all is well */
    size_t n_findings;
} aj_dlq_report;

/* Analyses the dead letters matching `filter` (as for aj_dlq_stats_get) with `opts` (NULL: the
 * defaults). AJ_EINVAL for options out of range (dominant_percent above 100, a negative age).
 * *out is owned: free it with aj_dlq_report_free(). */
int aj_dlq_analyze(aj_engine *e, const aj_job_filter *filter, const aj_dlq_analyze_opts *opts,
                   aj_dlq_report **out);
void aj_dlq_report_free(aj_dlq_report *r);

/* Bytes of a step or counter name: 1..AJ_PROGRESS_NAME_MAX of UTF-8 without control
 * characters; a counter name has no whitespace either. */
#define AJ_PROGRESS_NAME_MAX 64
/* Bytes of a progress message; a longer one is cut at a character boundary. */
#define AJ_PROGRESS_MESSAGE_MAX 256
/* Completed steps kept per job: the first ones to complete (by HLC). */
#define AJ_PROGRESS_STEPS_MAX 64
/* Counters kept per job (a job may report no more names; merges keep the first by name). */
#define AJ_PROGRESS_COUNTERS_MAX 32
/* Bytes of one line of the progress pipe, without its newline; a longer line is malformed. */
#define AJ_PROGRESS_LINE_MAX 1024
/* A running job's reports are written at most this often (they are also written with its
 * outcome). */
#define AJ_PROGRESS_FLUSH_MS 250

/* Reports a percentage (0..100; hundredths are kept) and, unless `message` is NULL, a message.
 * AJ_EINVAL for a percentage out of range or a message that is not UTF-8 or holds control
 * characters (tabs are allowed). Cheap: nothing is written until the next flush. */
int aj_ctx_progress(aj_job_ctx *ctx, double percent, const char *message);
/* Reports that the job is now at step `name`; the step it was at before, if another, is
 * completed. AJ_EINVAL for a bad name. */
int aj_ctx_step(aj_job_ctx *ctx, const char *name);
/* Adds n to counter `name`. AJ_EINVAL for a bad name; AJ_ETOOBIG for a new name past
 * AJ_PROGRESS_COUNTERS_MAX. */
int aj_ctx_count(aj_job_ctx *ctx, const char *name, uint64_t n);
/* Applies one line of the progress pipe protocol (len bytes, without the newline):
 *   progress PCT [MESSAGE]   PCT a decimal 0..100 with at most two decimals
 *   step NAME                NAME the rest of the line
 *   count NAME N             NAME one word, N a decimal to add
 * Words are separated by spaces or tabs; surrounding whitespace and a trailing CR are ignored.
 * A blank line is ignored. A malformed line changes nothing but the job's count of malformed
 * lines, and returns AJ_EINVAL naming the problem. */
int aj_ctx_progress_line(aj_job_ctx *ctx, const char *line, size_t len);

typedef struct aj_progress_counter {
    char *name;
    uint64_t value; /* summed over attempts */
} aj_progress_counter;

/* A job's progress. Owned; free with aj_progress_free(). */
typedef struct aj_progress {
    uint64_t job_id;
    int reported;      /* 0 until something is reported; then every field below may be set */
    double percent;    /* the highest percentage reported; 0 if none */
    int has_percent;   /* 1 once a percentage was reported */
    char *message;     /* the latest message; NULL if none */
    char *step;        /* the latest step; NULL if none */
    char **steps_done; /* completed steps in the order they completed */
    size_t n_steps_done;
    aj_progress_counter *counters; /* sorted by name */
    size_t n_counters;
    uint64_t malformed; /* malformed lines of the progress pipe, over all attempts */
    int64_t updated_ms; /* wall time of the latest report (from its HLC stamp); 0 if none */
} aj_progress;

/* Reads a job's progress as last written (a running job's may lag by up to
 * AJ_PROGRESS_FLUSH_MS plus a commit). AJ_ENOTFOUND when the job does not exist. */
int aj_job_progress(aj_engine *e, uint64_t id, aj_progress **out);
void aj_progress_free(aj_progress *p);

/* ---------------------------------------------------------------------------------------------
 * Schedules
 *
 * A schedule is a stored record that creates a job from its template at each of its fire times:
 * a cron expression evaluated in an IANA time zone, a fixed interval, or one time. The schedule
 * service (aj_schedules_start(), which `aj worker` runs) fires what is due; any number of
 * processes may run it on one store. Each fire time creates exactly one job: the job, the fire
 * and the schedule's advance to its next fire time are written in one transaction that read the
 * schedule record, so a second process attempting the same fire conflicts and then finds it
 * done.
 *
 * Cron expressions: 5 fields (minute hour day-of-month month day-of-week), 6 (a leading second)
 * or 7 (and a trailing year, 1970-2199); lists, ranges and steps (`1,5`, `1-5`, `0-59/15`,
 * `5/15`); names (JAN..DEC, SUN..SAT); day of week 0-7 with 0 and 7 both Sunday; `L` (last day
 * of the month), `LW` (its last weekday), `15W` (the weekday nearest the 15th), `5L` (the last
 * Friday), `FRI#2` (the second Friday); when both day fields are restricted, a day matching
 * either fires (the Vixie rule). Macros: @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight), @hourly, and @every DURATION (a fixed interval anchored at creation).
 *
 * Time zones are read from the system's zoneinfo files ($TZDIR or /usr/share/zoneinfo), never
 * through the process-wide TZ. A local time that does not exist (clocks turned forward) fires
 * once, at the first instant after the gap; an ambiguous one (clocks turned back) fires once, at
 * its first occurrence.
 *
 * The job a fire creates is the template with metadata {"schedule":NAME,"scheduled_at":TIME}
 * merged into the template's metadata object, where TIME is the nominal fire time (without
 * jitter) in RFC 3339 UTC as aj_time_format() writes it; a `shell` job also gets
 * AJ_SCHEDULED_AT=TIME in its payload's "env". Trigger uses the time of the trigger.
 *
 * Rules:
 *  1. Jitter: each fire is delayed by a random amount in [0, jitter_ms], decided when the fire
 *     time is computed and stored with it, so every process agrees.
 *  2. Catch-up: a fire is missed when it is found more than AJ_SCHEDULE_GRACE_MS past its due
 *     time (no service ran). The fires due by then are handled together: skip creates no job for
 *     them; once (the default) creates one, for the latest; all creates one for each, at most
 *     catch_up_limit (the latest ones), oldest first.
 *  3. Overlap, when the schedule's previous job has not finished at a fire: skip (the default)
 *     creates no job; buffer keeps that one fire and creates its job when the previous job
 *     finishes (a fire while one is buffered creates no job); allow creates the job anyway;
 *     cancel cancels the previous job, then creates the new one.
 *  4. Pause stops the fires; resume continues from the first fire time after the resume (fires
 *     while paused are not caught up). Trigger creates a job now, whatever the rules above, and
 *     leaves the next fire time alone. Backfill creates one job per fire time in [from, to),
 *     oldest first, in one transaction, whatever the rules above.
 *  5. A one-shot schedule (at_ms) stays listed after its fire, with no next fire time.
 *
 * Thread-safety: every call may be made from any thread.
 * ------------------------------------------------------------------------------------------- */

/* A fire found later than this after its due time is missed (rule 2). */
#define AJ_SCHEDULE_GRACE_MS (5 * AJ_SECOND)
/* Longest jitter. */
#define AJ_SCHEDULE_JITTER_MAX_MS AJ_DAY
/* Default and largest catch_up_limit. */
#define AJ_SCHEDULE_CATCH_UP_LIMIT_DEFAULT 100
#define AJ_SCHEDULE_CATCH_UP_LIMIT_MAX 10000
/* Shortest interval (every_ms, @every). */
#define AJ_SCHEDULE_EVERY_MIN_MS 10
/* Most jobs one backfill creates, and most times one preview returns. */
#define AJ_SCHEDULE_BACKFILL_MAX 10000
#define AJ_SCHEDULE_PREVIEW_MAX 1000
/* Largest job payload of a schedule's template (1 MiB): the template is kept in the schedule
 * record, which every fire rewrites. */
#define AJ_SCHEDULE_PAYLOAD_MAX ((size_t)1 << 20)
/* Longest cron expression and time zone name, in bytes. */
#define AJ_CRON_EXPR_MAX 256
#define AJ_TZ_NAME_MAX 64

typedef enum aj_schedule_kind {
    AJ_SCHEDULE_CRON = 1,  /* a cron expression (or macro) in a time zone */
    AJ_SCHEDULE_EVERY = 2, /* every every_ms, anchored at creation: created + k * every_ms */
    AJ_SCHEDULE_AT = 3,    /* once, at at_ms */
} aj_schedule_kind;

typedef enum aj_catch_up {
    AJ_CATCH_UP_SKIP = 1,
    AJ_CATCH_UP_ONCE = 2,
    AJ_CATCH_UP_ALL = 3,
} aj_catch_up;

typedef enum aj_overlap {
    AJ_OVERLAP_SKIP = 1,
    AJ_OVERLAP_BUFFER = 2,
    AJ_OVERLAP_ALLOW = 3,
    AJ_OVERLAP_CANCEL = 4,
} aj_overlap;

/* "skip", "once", "all"; NULL for an unknown value. */
const char *aj_catch_up_name(aj_catch_up c);
int aj_catch_up_parse(const char *text, aj_catch_up *out);
/* "skip", "buffer", "allow", "cancel"; NULL for an unknown value. */
const char *aj_overlap_name(aj_overlap o);
int aj_overlap_parse(const char *text, aj_overlap *out);

typedef struct aj_schedule_spec {
    const char *name;     /* required; the rule for queue names */
    const char *cron;     /* exactly one of cron, every_ms and at_ms */
    int64_t every_ms;     /* >= AJ_SCHEDULE_EVERY_MIN_MS */
    int64_t at_ms;        /* a one-shot time; one in the past fires at once (rule 2 applies) */
    const char *tz;       /* NULL: "UTC"; cron only */
    int64_t jitter_ms;    /* 0 */
    aj_catch_up catch_up; /* AJ_CATCH_UP_ONCE */
    uint32_t
        catch_up_limit; /* AJ_SCHEDULE_CATCH_UP_LIMIT_DEFAULT; 1..AJ_SCHEDULE_CATCH_UP_LIMIT_MAX */
    aj_overlap overlap; /* AJ_OVERLAP_SKIP */
    aj_job_spec job;    /* the job template, routing included; delay_ms, run_at_ms,
                         * idempotency_key and after unset */
} aj_schedule_spec;

void aj_schedule_spec_init(aj_schedule_spec *spec);

/* A snapshot of one schedule. Owned by the caller; free with aj_schedule_free(). */
typedef struct aj_schedule {
    char *name;
    aj_schedule_kind kind;
    char *cron; /* AJ_SCHEDULE_CRON: the expression; else NULL */
    int64_t every_ms;
    int64_t at_ms;
    char *tz; /* "UTC" unless a zone was given */
    int64_t jitter_ms;
    aj_catch_up catch_up;
    uint32_t catch_up_limit;
    aj_overlap overlap;
    int paused;
    int64_t created_ms;
    int64_t updated_ms;
    int64_t next_ms;        /* the next nominal fire time; 0: none (paused, or nothing left) */
    int64_t next_due_ms;    /* when that fire is due: next_ms plus its jitter */
    int64_t last_fire_ms;   /* the nominal time of the latest job created; 0: none */
    uint64_t last_job_id;   /* the latest job created by a fire or trigger; 0: none */
    int64_t buffered_ms;    /* a fire waiting for the previous job (overlap buffer); 0: none */
    uint64_t jobs_created;  /* by fires, triggers and backfills */
    uint64_t fires_skipped; /* fire times that created no job (overlap, catch-up) */
    /* The job template. */
    char *queue;
    char *type;
    void *payload; /* payload_len bytes, followed by a NUL not counted */
    size_t payload_len;
    uint32_t priority;
    int64_t timeout_ms;
    int64_t lease_ms;
    uint32_t max_attempts;
    aj_backoff backoff;
    char *metadata; /* may be NULL */
    /* The template's routing (docs/ROUTING.md), as in aj_job_spec; NULL when absent. */
    char *require_tag;
    char *prefer_node;
    int64_t prefer_wait_ms; /* meaningful with prefer_node */
    char *avoid_node;
} aj_schedule;

void aj_schedule_free(aj_schedule *s);

/* Creates a schedule. AJ_EINVAL naming the problem (a bad cron expression names its field),
 * AJ_ENOTFOUND for an unknown time zone, AJ_EEXISTS when the name is taken. */
int aj_schedule_add(aj_engine *e, const aj_schedule_spec *spec);
/* Reads one schedule; AJ_ENOTFOUND when there is none of that name. */
int aj_schedule_get(aj_engine *e, const char *name, aj_schedule **out);
/* Every schedule, in name order. Free with aj_schedule_list_free(). */
int aj_schedule_list(aj_engine *e, aj_schedule ***out, size_t *n);
void aj_schedule_list_free(aj_schedule **list, size_t n);
/* Pauses or resumes a schedule. AJ_ESTATE when it already is paused (or running). */
int aj_schedule_pause(aj_engine *e, const char *name);
int aj_schedule_resume(aj_engine *e, const char *name);
/* Creates a job now (rule 4); *out_id (may be NULL) receives its id. */
int aj_schedule_trigger(aj_engine *e, const char *name, uint64_t *out_id);
/* Creates one job per fire time in [from_ms, to_ms) (rule 4), all or none. *out_ids (may be
 * NULL) receives their ids in fire-time order (free with aj_free()) and *out_n their number.
 * AJ_EINVAL when to_ms <= from_ms or more than AJ_SCHEDULE_BACKFILL_MAX fall in the range. */
int aj_schedule_backfill(aj_engine *e, const char *name, int64_t from_ms, int64_t to_ms,
                         uint64_t **out_ids, size_t *out_n);
/* Deletes a schedule (its jobs stay). */
int aj_schedule_remove(aj_engine *e, const char *name);
/* The schedule's next `count` (1..AJ_SCHEDULE_PREVIEW_MAX) nominal fire times strictly after
 * after_ms, without jitter, into out_times (room for `count`); *out_n may be less at the end. */
int aj_schedule_preview(aj_engine *e, const char *name, int64_t after_ms, size_t count,
                        int64_t *out_times, size_t *out_n);
/* The same for a cron expression in zone `tz` (NULL: UTC), without a stored schedule (@every is
 * anchored at after_ms). Pure apart from reading the zone file; thread-safe. */
int aj_cron_preview(const char *expr, const char *tz, int64_t after_ms, size_t count,
                    int64_t *out_times, size_t *out_n);

/* Starts the schedule service: a thread that fires due schedules, sleeping until the next due
 * time or a change to the store. One per engine; aj_engine_close() stops it. */
int aj_schedules_start(aj_engine *e);
/* Stops the service and waits for it. Safe to call when it is not running. */
void aj_schedules_stop(aj_engine *e);
/* Fires everything due now, once, on the calling thread (for callers without the service, such
 * as tests driving a simulated clock). *out_next_ms (may be NULL) receives the next due time
 * (INT64_MAX: none). */
int aj_schedules_tick(aj_engine *e, int64_t *out_next_ms);

/* ---------------------------------------------------------------------------------------------
 * Queue controls (docs/ROUTING.md)
 *
 * A queue may be paused (nothing is claimed from it; its jobs stay ready and submits still
 * work) and limited: at most `concurrency` leases held at once across every process, and at
 * most rate_n claims in any window of rate_window_ms. Controls are stored, so they survive
 * restarts and apply to every process on the store. Thread-safe.
 * ------------------------------------------------------------------------------------------- */

/* Highest concurrency limit. */
#define AJ_QUEUE_CONCURRENCY_MAX 100000u
/* Highest rate limit count (claims per window): the window keeps one time per claim. */
#define AJ_QUEUE_RATE_MAX 1000u
/* Longest rate limit window: one day. */
#define AJ_QUEUE_RATE_WINDOW_MAX AJ_DAY

/* Parses "N/DUR" (e.g. "10/1s", "100/1m") into a count 1..AJ_QUEUE_RATE_MAX and a window of
 * 1 ms..AJ_QUEUE_RATE_WINDOW_MAX; "0" and "none" give 0/0 (no limit). AJ_EINVAL naming the
 * problem. */
int aj_rate_parse(const char *text, uint32_t *out_n, int64_t *out_window_ms);

/* One queue: its jobs by state, its controls, and the leases counted against its limit. */
typedef struct aj_queue_info {
    char *name;
    uint64_t jobs[AJ_STATE_COUNT];
    int paused;
    uint32_t concurrency;    /* 0: no limit */
    uint32_t rate_n;         /* 0: no rate limit */
    int64_t rate_window_ms;  /* with rate_n */
    uint32_t leases_counted; /* leases counted against the concurrency limit now */
} aj_queue_info;

/* Every queue that has jobs, was ever submitted to, or has controls, in name order. Counting
 * reads every job record: an operator's command, not a hot path. Free with
 * aj_queue_list_free(). */
int aj_queue_list(aj_engine *e, aj_queue_info **out, size_t *n);
void aj_queue_list_free(aj_queue_info *list, size_t n);
/* Pauses or resumes a queue (a queue without jobs may be paused: the control is created). */
int aj_queue_pause(aj_engine *e, const char *queue);
int aj_queue_resume(aj_engine *e, const char *queue);
/* Sets the limits: concurrency < 0 keeps the current one, 0 removes it; rate_n < 0 keeps the
 * current rate, 0 removes it, otherwise rate_window_ms gives its window. Setting a concurrency
 * limit counts the queue's running jobs against it at once. */
int aj_queue_limit(aj_engine *e, const char *queue, int64_t concurrency, int64_t rate_n,
                   int64_t rate_window_ms);

/* ---------------------------------------------------------------------------------------------
 * Worker registry
 *
 * A worker pool registers itself (id, node, tags, host, pid, start time) when it starts,
 * refreshes its last-seen time every AJ_WORKER_BEAT_MS and removes its entry when it stops.
 * An entry not seen for AJ_WORKER_EXPIRY_MS is listed as not alive; one not seen for
 * AJ_WORKER_COLLECT_MS is deleted by the next pool that refreshes its own. Thread-safe.
 * ------------------------------------------------------------------------------------------- */

#define AJ_WORKER_BEAT_MS (5 * AJ_SECOND)
#define AJ_WORKER_EXPIRY_MS (30 * AJ_SECOND)
#define AJ_WORKER_COLLECT_MS (10 * AJ_MINUTE)

typedef struct aj_worker_info {
    char *id;
    char *node;
    char *host;
    char **tags;
    size_t n_tags;
    int64_t pid;
    int64_t started_ms;
    int64_t seen_ms; /* last heartbeat */
    int alive;       /* seen within AJ_WORKER_EXPIRY_MS */
} aj_worker_info;

/* Every registered worker, in id order. Free with aj_worker_list_free(). */
int aj_worker_list(aj_engine *e, aj_worker_info **out, size_t *n);
void aj_worker_list_free(aj_worker_info *list, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* AJ_H */
