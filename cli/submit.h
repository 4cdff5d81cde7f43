/*
 * submit.h — the job flags of `aj submit` that `aj schedule add` reuses for its job template.
 *
 * Both commands declare these flags in their own tables, pointing at a submit_args, and then
 * build the job the same way (submit_job_template), so they accept and reject exactly the same
 * job options with the same messages. The functions live in cmd_submit.c.
 */
#ifndef AJ_CLI_SUBMIT_H
#define AJ_CLI_SUBMIT_H

#include "aj.h"
#include "args.h"

/* The values of the job flags, NULL (0) when not given; they point into argv. */
typedef struct submit_args {
    const char *queue;
    const char *type;
    const char *priority;
    const char *delay;
    const char *at;
    const char *timeout;
    const char *lease;
    const char *max_attempts;
    const char *backoff;
    const char *key;
    const char *metadata;
    const char *payload;
    const char *payload_file;
    const char *payload_lines;
    const char *require_tag; /* routing */
    const char *prefer_node;
    const char *prefer_wait;
    const char *avoid_node;
    int wait;
} submit_args;

/* Builds one job from the flags in `a` and, for a shell job, `-- PROGRAM ARG...` in `r`: chooses
 * the type, checks every flag and the payload (with `cmd`, e.g. "aj schedule add", in usage
 * messages), and fills `spec` (initialised by the caller). *payload receives the buffer the
 * spec's payload points into (free() it after the spec is used). Returns 0, or prints the
 * problem and returns the exit code (2 for bad input). */
int submit_job_template(const char *cmd, const submit_args *a, const arg_result *r,
                        aj_job_spec *spec, char **payload);

#endif
