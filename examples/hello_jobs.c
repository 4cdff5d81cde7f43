/*
 * hello_jobs.c — the smallest useful program on libaj: submit jobs, run them on a worker pool
 * with a handler of our own, and read their results.
 *
 *   cc hello_jobs.c $(pkg-config --cflags --libs aj) -o hello_jobs
 *   ./hello_jobs sqlite:hello.db
 */
#include <stdio.h>
#include <string.h>

#include <aj.h>

/* A handler: the payload is a name; the result is a greeting. */
static int greet(aj_job_ctx *ctx, const aj_job *job, void *ud) {
    (void)ud;
    char out[256];
    int n = snprintf(out, sizeof out, "\"hello, %.*s (attempt %u)\"", (int)job->payload_len - 2,
                     (const char *)job->payload + 1, aj_ctx_attempt(ctx));
    return aj_ctx_set_result(ctx, out, (size_t)n);
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "hello_jobs: %s: %s: %s\n", what, aj_strerror(rc), aj_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "mem:";
    aj_engine *e;
    int rc = aj_engine_open(&e, url, NULL);
    if (rc != 0) {
        return fail("open", rc);
    }
    const char *names[] = {"\"ada\"", "\"grace\"", "\"linus\""};
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        aj_job_spec s;
        aj_job_spec_init(&s);
        s.type = "greet";
        s.payload = names[i];
        s.payload_len = strlen(names[i]);
        if ((rc = aj_submit(e, &s, &ids[i])) != 0) {
            aj_engine_close(e);
            return fail("submit", rc);
        }
    }
    if ((rc = aj_register(e, "greet", greet, NULL)) != 0 || (rc = aj_workers_start(e, NULL)) != 0 ||
        (rc = aj_workers_drain(e, 0)) != 0) {
        aj_engine_close(e);
        return fail("workers", rc);
    }
    aj_workers_stop(e);
    for (int i = 0; i < 3; i++) {
        aj_job *j;
        if ((rc = aj_job_get(e, ids[i], &j)) != 0) {
            aj_engine_close(e);
            return fail("get", rc);
        }
        printf("job %llu %s: %s\n", (unsigned long long)j->id, aj_state_name(j->state),
               j->result ? (const char *)j->result : "(none)");
        aj_job_free(j);
    }
    aj_engine_close(e);
    printf("libaj %s\n", aj_version());
    return 0;
}
