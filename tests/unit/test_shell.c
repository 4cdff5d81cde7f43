/*
 * test_shell.c — the shell job runner (runtime/shell.h): argv without a shell, exit statuses and
 * signals, the output ring and its JSON, the environment, cwd, stdin, payload validation, the
 * killing of the whole process group on timeout, on request and when the worker dies (alone and
 * with concurrent jobs), the host's signal state, allocation failures; and the built-in `echo`
 * and `shell` handlers (runtime/builtins.c) end to end through a "mem:" engine.
 *
 * Liveness is read from /proc: a killed process may stay a zombie until someone reaps it (here
 * perhaps an init that never does), so "gone" means absent or a zombie.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/shell.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/mem.h"

/* How long a test waits for something that should happen at once (pidfile, death), in ms. */
#define WAIT_MS 5000
/* How soon the group must be gone after the worker is killed, in ms. */
#define DEATH_MS 2500
/* How often the waits look, in ms. */
#define STEP_MS 10

/* --- helpers ---------------------------------------------------------------------------------- */

/* A payload {"argv":[...], "env":env?, "cwd":cwd?}; env is stolen. Heap string. */
static char *payload(const char *const *argv, json_t *env, const char *cwd) {
    json_t *o = json_object();
    json_t *a = json_array();
    for (size_t i = 0; argv[i] != NULL; i++) {
        json_array_append_new(a, json_string(argv[i]));
    }
    json_object_set_new(o, "argv", a);
    if (env != NULL) {
        json_object_set_new(o, "env", env);
    }
    if (cwd != NULL) {
        json_object_set_new(o, "cwd", json_string(cwd));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(s);
    return s;
}

static void job_init(aj__shell_job *j, const char *pl) {
    memset(j, 0, sizeof *j);
    j->job_id = 7;
    j->attempt = 1;
    j->queue = "default";
    j->payload = pl;
    j->payload_len = pl != NULL ? strlen(pl) : 0;
}

/* Parses res->json, checks it against the status fields, and returns the output (heap, with
 * its length in *len). */
static char *result_output(const aj__shell_result *res, size_t *len) {
    json_error_t err;
    json_t *o = json_loadb((const char *)res->json.p, res->json.len, JSON_ALLOW_NUL, &err);
    if (o == NULL) {
        fail_msg("result is not JSON: %s", err.text);
    }
    assert_int_equal(json_object_size(o), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), res->exit_code);
    assert_int_equal(json_integer_value(json_object_get(o, "signal")), res->signal);
    json_t *out = json_object_get(o, "output");
    assert_true(json_is_string(out));
    size_t n = json_string_length(out);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, json_string_value(out), n + 1);
    json_decref(o);
    if (len != NULL) {
        *len = n;
    }
    return s;
}

/* Runs argv; expects success of the call; returns the output (heap). */
static char *run_argv(const char *const *argv, json_t *env, const char *cwd,
                      aj__shell_result *res) {
    char *pl = payload(argv, env, cwd);
    aj__shell_job j;
    job_init(&j, pl);
    int rc = aj__shell_run(&j, res);
    if (rc != 0) {
        fail_msg("aj__shell_run: %s: %s", aj_err_name(rc), aj_errmsg());
    }
    free(pl);
    char *out = result_output(res, NULL);
    aj__buf_free(&res->json);
    return out;
}

static char *run_sh(const char *script, aj__shell_result *res) {
    const char *argv[] = {"sh", "-c", script, NULL};
    return run_argv(argv, NULL, NULL, res);
}

/* 1 while pid exists and is not a zombie. */
static int pid_alive(pid_t pid) {
    char path[64];
    char buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    if (rp == NULL) {
        return 0;
    }
    return rp[2] != 'Z' && rp[2] != 'X';
}

/* 1 while some live (non-zombie) process belongs to process group pgid. */
static int group_alive(pid_t pgid) {
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int alive = 0;
    struct dirent *de;
    while (!alive && (de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) {
            continue;
        }
        char path[64];
        char buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        int pgrp;
        if (rp != NULL && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 &&
            pgrp == (int)pgid && state != 'Z' && state != 'X') {
            alive = 1;
        }
    }
    closedir(d);
    return alive;
}

/* Waits until the pidfile "A B" exists (looking at least once); returns 1 and the two pids, or
 * 0 on timeout. */
static int read_pids(const char *file, pid_t *a, pid_t *b, int timeout_ms) {
    for (int t = 0; t <= timeout_ms; t += STEP_MS) {
        FILE *f = fopen(file, "r");
        if (f != NULL) {
            int x = 0;
            int y = 0;
            int n = fscanf(f, "%d %d", &x, &y);
            fclose(f);
            if (n == 2) {
                *a = x;
                *b = y;
                return 1;
            }
        }
        aj__sleep_ms(STEP_MS);
    }
    return 0;
}

/* Waits until neither pid nor group has a live process; returns the ms waited, or -1. */
static int64_t wait_gone(pid_t pid, pid_t pgid, int timeout_ms) {
    int64_t start = aj__mono_us();
    for (;;) {
        int64_t waited = (aj__mono_us() - start) / 1000;
        if ((pid <= 0 || !pid_alive(pid)) && (pgid <= 0 || !group_alive(pgid))) {
            return waited;
        }
        if (waited >= timeout_ms) {
            return -1;
        }
        aj__sleep_ms(STEP_MS);
    }
}

/* A script that starts a background sleep, records "$$ $!" in pidfile atomically, then waits
 * (or exits at once when `stay` is 0). Heap string. */
static char *spawner_script(const char *pidfile, int stay) {
    char *s = malloc(2 * PATH_MAX + 128);
    assert_non_null(s);
    sprintf(s, "sleep 100 & echo \"$$ $!\" > '%s.tmp' && mv '%s.tmp' '%s'%s", pidfile, pidfile,
            pidfile, stay ? "; wait" : "");
    return s;
}

/* --- argv, exit status, signals ------------------------------------------------------------- */

static void test_argv_verbatim(void **state) {
    (void)state;
    aj__shell_result res;
    /* Spaces, ';', '$', '*' and quotes reach the program untouched: there is no shell. */
    const char *argv[] = {"printf", "[%s]", "a b", "x; echo injected", "$HOME", "*", "'q'", NULL};
    char *out = run_argv(argv, NULL, NULL, &res);
    assert_string_equal(out, "[a b][x; echo injected][$HOME][*]['q']");
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.signal, 0);
    assert_false(res.timed_out);
    assert_false(res.stopped);
    free(out);
}

static void test_exit_codes(void **state) {
    (void)state;
    static const struct {
        const char *script;
        int code;
    } cases[] = {{"exit 0", 0}, {"exit 3", 3}, {"exit 100", 100}, {"exit 255", 255}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aj__shell_result res;
        free(run_sh(cases[i].script, &res));
        assert_int_equal(res.exit_code, cases[i].code);
        assert_int_equal(res.signal, 0);
    }
}

static void test_killed_by_signal(void **state) {
    (void)state;
    aj__shell_result res;
    free(run_sh("kill -9 $$", &res));
    assert_int_equal(res.exit_code, -1);
    assert_int_equal(res.signal, SIGKILL);
    free(run_sh("kill -USR1 $$", &res));
    assert_int_equal(res.exit_code, -1);
    assert_int_equal(res.signal, SIGUSR1);
    assert_false(res.timed_out);
}

/* --- output ------------------------------------------------------------------------------- */

static void test_output_merged(void **state) {
    (void)state;
    aj__shell_result res;
    char *out = run_sh("echo out; echo err >&2; echo out2", &res);
    assert_string_equal(out, "out\nerr\nout2\n");
    free(out);
}

static void test_output_keeps_last_64k(void **state) {
    (void)state;
    /* 25600 numbered lines of 8 bytes: 200 KiB. The last 64 KiB are exactly the last 8192
     * lines, 17408 to 25599. */
    aj__shell_result res;
    char *out = run_sh("awk 'BEGIN { for (i = 0; i < 25600; i++) printf \"%07d\\n\", i }'", &res);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(strlen(out), AJ__SHELL_OUTPUT_MAX);
    assert_memory_equal(out, "0017408\n0017409\n", 16);
    assert_string_equal(out + AJ__SHELL_OUTPUT_MAX - 16, "0025598\n0025599\n");
    free(out);
}

static void test_output_invalid_utf8(void **state) {
    (void)state;
    aj__shell_result res;
    /* Invalid bytes, an overlong form, a surrogate, a truncated sequence, a NUL and valid
     * multi-byte text. */
    const char *argv[] = {"printf",
                          "\\377a\\300\\257b\\355\\240\\200c\\000d\xc3\xa9\xe2\x82\xac\\342", NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    int rc = aj__shell_run(&j, &res);
    assert_int_equal(rc, 0);
    size_t len;
    char *out = result_output(&res, &len);
    const char want[] = "\xEF\xBF\xBD"
                        "a\xEF\xBF\xBD\xEF\xBF\xBD"
                        "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                        "c\0d\xc3\xa9\xe2\x82\xac\xEF\xBF\xBD";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(out, want, sizeof want - 1);
    free(out);
    aj__buf_free(&res.json);
    free(pl);
}

static void test_output_cut_inside_a_character(void **state) {
    (void)state;
    /* "xy" and 21845 three-byte euros: 65537 bytes. The cut drops "x" and lands on a character
     * boundary: the output starts with "y". */
    aj__shell_result res;
    char *out = run_sh("awk 'BEGIN { printf \"xy\"; for (i = 0; i < 21845; i++) printf "
                       "\"\\342\\202\\254\" }'",
                       &res);
    assert_int_equal(strlen(out), AJ__SHELL_OUTPUT_MAX);
    assert_int_equal(out[0], 'y');
    free(out);
    /* "x", 21845 euros, "zz": 65538 bytes. The cut drops "x" and the first byte of a euro; the
     * two orphaned continuation bytes are skipped rather than shown as U+FFFD. */
    out = run_sh("awk 'BEGIN { printf \"x\"; for (i = 0; i < 21845; i++) printf "
                 "\"\\342\\202\\254\"; printf \"zz\" }'",
                 &res);
    assert_int_equal(strlen(out), AJ__SHELL_OUTPUT_MAX - 2);
    assert_memory_equal(out, "\xe2\x82\xac", 3);
    assert_string_equal(out + AJ__SHELL_OUTPUT_MAX - 2 - 5, "\xe2\x82\xaczz");
    free(out);
}

/* --- environment, cwd, stdin, descriptors ---------------------------------------------------- */

static void test_env(void **state) {
    (void)state;
    setenv("AJ_TEST_INHERITED", "from-worker", 1);
    setenv("AJ_TEST_OVERRIDDEN", "from-worker", 1);
    const char *argv[] = {"sh", "-c",
                          "echo \"$AJ_JOB_ID|$AJ_ATTEMPT|$AJ_QUEUE|$AJ_TEST_INHERITED|"
                          "$AJ_TEST_OVERRIDDEN|$AJ_TEST_EXTRA|$AJ_TEST_SPACE\"",
                          NULL};
    json_t *env = json_pack("{s:s,s:s,s:s}", "AJ_TEST_OVERRIDDEN", "from-payload", "AJ_JOB_ID",
                            "payload-cannot-set-this", "AJ_TEST_SPACE", "a b;c");
    char *pl = payload(argv, env, NULL);
    const char *extra[] = {"AJ_TEST_EXTRA=extra", NULL};
    aj__shell_job j;
    job_init(&j, pl);
    j.job_id = 1234567890123ull;
    j.attempt = 3;
    j.queue = "emails";
    j.extra_env = extra;
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), 0);
    char *out = result_output(&res, NULL);
    assert_string_equal(out, "1234567890123|3|emails|from-worker|from-payload|extra|a b;c\n");
    free(out);
    aj__buf_free(&res.json);
    free(pl);
    unsetenv("AJ_TEST_INHERITED");
    unsetenv("AJ_TEST_OVERRIDDEN");
}

/* Runs `sh -c ECHO` under `policy` and checks its output. */
static void expect_env_output(const aj__shell_env *policy, const char *want) {
    const char *argv[] = {"sh", "-c", "echo \"${AJ_DB-unset}|${AJ_TEST_SECRET-unset}\"", NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    j.env = policy;
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), 0);
    char *out = result_output(&res, NULL);
    assert_string_equal(out, want);
    free(out);
    aj__buf_free(&res.json);
    free(pl);
}

/* The store's location never reaches a program unless passed; --env-clear keeps only what is
 * passed. */
static void test_env_policy(void **state) {
    (void)state;
    setenv("AJ_DB", "sqlite:/secret/place.db", 1);
    setenv("AJ_TEST_SECRET", "s3cret", 1);
    expect_env_output(NULL, "unset|s3cret\n");
    aj__shell_env deflt = {0, NULL, 0};
    expect_env_output(&deflt, "unset|s3cret\n");
    aj__shell_env clear = {1, NULL, 0};
    expect_env_output(&clear, "unset|unset\n");
    char *names[] = {"AJ_DB", "AJ_TEST_SECRET_NOT"};
    aj__shell_env pass_db = {0, names, 1};
    expect_env_output(&pass_db, "sqlite:/secret/place.db|s3cret\n");
    aj__shell_env clear_pass = {1, names, 2};
    expect_env_output(&clear_pass, "sqlite:/secret/place.db|unset\n");
    unsetenv("AJ_DB");
    unsetenv("AJ_TEST_SECRET");
}

static void test_path_from_job_env(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    /* A script without #!: execvp runs it with /bin/sh, and so do we. */
    char *script = aj_test_path(dir, "aj-test-tool");
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs("echo tool ran with \"$1\"\n", f);
    fclose(f);
    assert_int_equal(chmod(script, 0755), 0);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "/nonexistent:%s:/usr/bin:/bin", dir);
    const char *argv[] = {"aj-test-tool", "arg 1", NULL};
    aj__shell_result res;
    char *out = run_argv(argv, json_pack("{s:s}", "PATH", path), NULL, &res);
    assert_string_equal(out, "tool ran with arg 1\n");
    assert_int_equal(res.exit_code, 0);
    free(out);
    /* Not executable: 126 with the reason. */
    assert_int_equal(chmod(script, 0644), 0);
    out = run_argv(argv, json_pack("{s:s}", "PATH", path), NULL, &res);
    assert_int_equal(res.exit_code, AJ__SHELL_EXIT_NOEXEC);
    assert_non_null(strstr(out, "cannot run 'aj-test-tool': Permission denied"));
    free(out);
    free(script);
    aj_test_rmtree(dir);
    free(dir);
}

static void test_cwd(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    strcat(real, "\n");
    const char *argv[] = {"pwd", "-P", NULL};
    aj__shell_result res;
    char *out = run_argv(argv, NULL, dir, &res);
    assert_string_equal(out, real);
    free(out);
    /* A missing directory is the job's failure, reported like a shell would. */
    char *missing = aj_test_path(dir, "missing");
    out = run_argv(argv, NULL, missing, &res);
    assert_int_equal(res.exit_code, AJ__SHELL_EXIT_NOTFOUND);
    assert_int_equal(res.signal, 0);
    assert_non_null(strstr(out, "cannot change directory to"));
    assert_non_null(strstr(out, "No such file or directory"));
    free(out);
    free(missing);
    aj_test_rmtree(dir);
    free(dir);
}

static void test_stdin_is_devnull(void **state) {
    (void)state;
    aj__shell_result res;
    char *out = run_sh("readlink /proc/self/fd/0; cat; echo \"cat=$?\"", &res);
    assert_string_equal(out, "/dev/null\ncat=0\n");
    free(out);
}

/* The payload's "stdin" string is the program's standard input, byte for byte, from the start,
 * and not through a pipe that could fill up: 1 MiB arrives whole. */
static void test_stdin_from_payload(void **state) {
    (void)state;
    const char *pl = "{\"argv\":[\"sh\",\"-c\",\"od -An -c | tr -s ' '\"],"
                     "\"stdin\":\"a\\tb\\n\"}";
    aj__shell_job j;
    job_init(&j, pl);
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), 0);
    assert_int_equal(res.exit_code, 0);
    size_t n;
    char *out = result_output(&res, &n);
    assert_string_equal(out, " a \\t b \\n\n");
    free(out);
    aj__buf_free(&res.json);

    size_t big = (size_t)1 << 20;
    char *p = malloc(big + 64);
    assert_non_null(p);
    int k = snprintf(p, 64, "{\"argv\":[\"wc\",\"-c\"],\"stdin\":\"");
    memset(p + k, 'x', big);
    memcpy(p + k + big, "\"}", 3);
    job_init(&j, p);
    assert_int_equal(aj__shell_run(&j, &res), 0);
    out = result_output(&res, &n);
    assert_string_equal(out, "1048576\n");
    free(out);
    aj__buf_free(&res.json);
    free(p);
}

static void test_no_descriptor_leaks(void **state) {
    (void)state;
    /* A descriptor of the host without close-on-exec must not reach the program either: the
     * supervisor closes everything but its own. */
    int leaky = open("/dev/null", O_RDONLY);
    assert_true(leaky >= 0);
    aj__shell_result res;
    /* ls opens /proc/self/fd itself: that is fd 3. */
    char *out = run_sh("ls /proc/self/fd", &res);
    assert_string_equal(out, "0\n1\n2\n3\n");
    free(out);
    close(leaky);
}

/* --- the progress pipe ------------------------------------------------------------------------ */

/* What a job's on_progress received: the lines, joined by '|'. */
typedef struct lines_seen {
    char text[4096];
    size_t n;
    size_t longest;
} lines_seen;

static void collect_line(void *ud, const char *line, size_t len) {
    lines_seen *l = ud;
    l->n++;
    l->longest = len > l->longest ? len : l->longest;
    size_t used = strlen(l->text);
    size_t room = sizeof l->text - used - 1;
    size_t take = len < 64 ? len : 64; /* long lines are checked by length only */
    if (used > 0 && room > 0) {
        l->text[used++] = '|';
        room--;
    }
    if (take > room) {
        take = room;
    }
    memcpy(l->text + used, line, take);
    l->text[used + take] = '\0';
}

/* Runs a script with a progress callback; returns its output (heap). */
static char *run_with_progress(const char *script, lines_seen *l, aj__shell_result *res) {
    const char *argv[] = {"sh", "-c", script, NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    memset(l, 0, sizeof *l);
    j.on_progress = collect_line;
    j.progress_ud = l;
    int rc = aj__shell_run(&j, res);
    if (rc != 0) {
        fail_msg("aj__shell_run: %s: %s", aj_err_name(rc), aj_errmsg());
    }
    free(pl);
    char *out = result_output(res, NULL);
    aj__buf_free(&res->json);
    return out;
}

static void test_progress_lines(void **state) {
    (void)state;
    lines_seen l;
    aj__shell_result res;
    /* Lines arrive in order, apart from the output; a last line without a newline counts. */
    char *out = run_with_progress("echo \"fd=$AJ_PROGRESS_FD\"; echo 'step one' >&3; "
                                  "echo out; printf 'progress 5\\n\\ncount n 2\\nlast' >&3",
                                  &l, &res);
    assert_string_equal(out, "fd=3\nout\n");
    assert_string_equal(l.text, "step one|progress 5||count n 2|last");
    assert_int_equal(l.n, 5);
    free(out);

    /* A line over the limit arrives cut to one byte more than the limit, so it reads as too
     * long; the next line is whole. */
    char script[256];
    snprintf(script, sizeof script,
             "head -c %d /dev/zero | tr '\\0' x >&3; echo >&3; echo 'step after' >&3",
             AJ_PROGRESS_LINE_MAX * 3);
    out = run_with_progress(script, &l, &res);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.longest, AJ_PROGRESS_LINE_MAX + 1);
    assert_non_null(strstr(l.text, "|step after"));
    free(out);

    /* The program sees its descriptors 0-2 and the progress pipe, nothing else (ls opens
     * /proc/self/fd itself: that is fd 4). */
    out = run_with_progress("ls /proc/self/fd", &l, &res);
    assert_string_equal(out, "0\n1\n2\n3\n4\n");
    free(out);

    /* A program that closes the pipe at once, or never writes, is fine. */
    out = run_with_progress("exec 3>&-; echo closed", &l, &res);
    assert_string_equal(out, "closed\n");
    assert_int_equal(l.n, 0);
    assert_int_equal(res.exit_code, 0);
    free(out);
}

static void test_no_progress_fd_without_callback(void **state) {
    (void)state;
    aj__shell_result res;
    char *out =
        run_sh("echo \"[${AJ_PROGRESS_FD-unset}]\"; { echo x >&3; } 2>/dev/null || echo no3", &res);
    assert_string_equal(out, "[unset]\nno3\n");
    free(out);
}

/* --- bad payloads, missing programs ----------------------------------------------------------- */

static void test_bad_payloads(void **state) {
    (void)state;
    static const struct {
        const char *payload;
        const char *msg;
    } cases[] = {
        {"", "payload is empty"},
        {"not json", "payload is not valid JSON"},
        {"[\"ls\"]", "payload must be an object with \"argv\": a non-empty array of strings"},
        {"{}", "payload must be an object with \"argv\": a non-empty array of strings"},
        {"{\"argv\":\"ls -l\"}", "a non-empty array of strings"},
        {"{\"argv\":[]}", "a non-empty array of strings"},
        {"{\"argv\":[\"ls\",1]}", "(argv[1] is not a string)"},
        {"{\"argv\":[\"ls\"],\"env\":[\"A=B\"]}", "\"env\" must be an object of string values"},
        {"{\"argv\":[\"ls\"],\"env\":{\"A\":1}}", "\"env\" must be an object of string values"},
        {"{\"argv\":[\"ls\"],\"env\":{\"A=B\":\"x\"}}", "contain no '='"},
        {"{\"argv\":[\"ls\"],\"cwd\":5}", "\"cwd\" must be a non-empty string"},
        {"{\"argv\":[\"cat\"],\"stdin\":5}", "\"stdin\" must be a string"},
        {"{\"argv\":[\"ls\\u0000x\"]}", "payload is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aj__shell_job j;
        job_init(&j, cases[i].payload);
        aj__shell_result res;
        memset(&res, 0xA5, sizeof res);
        int rc = aj__shell_run(&j, &res);
        if (rc != AJ_EINVAL || strstr(aj_errmsg(), cases[i].msg) == NULL) {
            fail_msg("payload %s: got %s \"%s\", want AJ_EINVAL \"%s\"", cases[i].payload,
                     aj_err_name(rc), aj_errmsg(), cases[i].msg);
        }
        /* Out-parameters are written only on success. */
        assert_int_equal(res.exit_code, (int)0xA5A5A5A5);
    }
    aj__shell_job j;
    job_init(&j, NULL);
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), AJ_EINVAL);
}

static void test_program_not_found(void **state) {
    (void)state;
    aj__shell_result res;
    const char *argv[] = {"aj-no-such-program-xyz", "x", NULL};
    char *out = run_argv(argv, NULL, NULL, &res);
    assert_int_equal(res.exit_code, AJ__SHELL_EXIT_NOTFOUND);
    assert_int_equal(res.signal, 0);
    assert_string_equal(
        out, "aj-shell: cannot run 'aj-no-such-program-xyz': No such file or directory\n");
    free(out);
    const char *argv2[] = {"/nonexistent/prog", NULL};
    out = run_argv(argv2, NULL, NULL, &res);
    assert_int_equal(res.exit_code, AJ__SHELL_EXIT_NOTFOUND);
    free(out);
    const char *argv3[] = {"", NULL};
    out = run_argv(argv3, NULL, NULL, &res);
    assert_int_equal(res.exit_code, AJ__SHELL_EXIT_NOTFOUND);
    free(out);
}

/* --- killing the group ------------------------------------------------------------------------ */

static void test_timeout_kills_group(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char *pidfile = aj_test_path(dir, "pids");
    char *script = spawner_script(pidfile, 1);
    const char *argv[] = {"sh", "-c", script, NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    int64_t start = aj__mono_us();
    j.deadline_mono_us = start + 300 * 1000;
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), 0);
    int64_t took_ms = (aj__mono_us() - start) / 1000;
    assert_true(res.timed_out);
    assert_false(res.stopped);
    assert_int_equal(res.exit_code, -1);
    assert_int_equal(res.signal, SIGTERM); /* sh dies of the SIGTERM, within the grace */
    assert_true(took_ms >= 300 && took_ms < 300 + AJ__SHELL_KILL_GRACE_MS);
    pid_t sh = 0;
    pid_t bg = 0;
    assert_true(read_pids(pidfile, &sh, &bg, 0));
    assert_true(wait_gone(bg, 0, WAIT_MS) >= 0);
    assert_false(pid_alive(sh));
    aj__buf_free(&res.json);
    free(pl);
    free(script);
    free(pidfile);
    aj_test_rmtree(dir);
    free(dir);
}

static void test_timeout_sigkill_after_grace(void **state) {
    (void)state;
    /* The program ignores SIGTERM: SIGKILL follows the grace period. */
    const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 100; echo survived", NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    int64_t start = aj__mono_us();
    j.deadline_mono_us = start + 100 * 1000;
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), 0);
    int64_t took_ms = (aj__mono_us() - start) / 1000;
    assert_true(res.timed_out);
    assert_int_equal(res.signal, SIGKILL);
    assert_true(took_ms >= 100 + AJ__SHELL_KILL_GRACE_MS &&
                took_ms < 100 + 3 * AJ__SHELL_KILL_GRACE_MS);
    char *out = result_output(&res, NULL);
    assert_null(strstr(out, "survived"));
    free(out);
    aj__buf_free(&res.json);
    free(pl);
}

static void test_leftovers_killed_on_exit(void **state) {
    (void)state;
    /* The program exits at once, leaving a background child that holds its stdout: the run
     * ends promptly anyway and the child is killed with the group. */
    char *dir = aj_test_tmpdir();
    char *pidfile = aj_test_path(dir, "pids");
    char *script = spawner_script(pidfile, 0);
    int64_t start = aj__mono_us();
    aj__shell_result res;
    free(run_sh(script, &res));
    assert_int_equal(res.exit_code, 0);
    assert_true((aj__mono_us() - start) / 1000 < AJ__SHELL_KILL_GRACE_MS);
    pid_t sh = 0;
    pid_t bg = 0;
    assert_true(read_pids(pidfile, &sh, &bg, 0));
    assert_true(wait_gone(bg, 0, WAIT_MS) >= 0);
    free(script);
    free(pidfile);
    aj_test_rmtree(dir);
    free(dir);
}

typedef struct stop_after {
    int64_t at_us;
    int calls;
} stop_after;

static int stop_when_due(void *ud) {
    stop_after *s = ud;
    s->calls++;
    return aj__mono_us() >= s->at_us;
}

static void test_should_stop_kills(void **state) {
    (void)state;
    const char *argv[] = {"sleep", "100", NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    int64_t start = aj__mono_us();
    stop_after s = {start + 200 * 1000, 0};
    j.should_stop = stop_when_due;
    j.stop_ud = &s;
    aj__shell_result res;
    assert_int_equal(aj__shell_run(&j, &res), 0);
    int64_t took_ms = (aj__mono_us() - start) / 1000;
    assert_true(res.stopped);
    assert_false(res.timed_out);
    assert_int_equal(res.signal, SIGTERM);
    /* Polled about every AJ__SHELL_POLL_MS: the stop is noticed within a few polls. */
    assert_true(took_ms >= 200 && took_ms < 200 + 10 * AJ__SHELL_POLL_MS + 200);
    assert_true(s.calls >= 200 / AJ__SHELL_POLL_MS / 2);
    aj__buf_free(&res.json);
    free(pl);
}

static void test_worker_death_kills_group(void **state) {
    (void)state;
    char *dir = aj_test_tmpdir();
    char *pidfile = aj_test_path(dir, "pids");
    char *script = spawner_script(pidfile, 1);
    const char *argv[] = {"sh", "-c", script, NULL};
    char *pl = payload(argv, NULL, NULL);
    pid_t worker = fork();
    assert_true(worker >= 0);
    if (worker == 0) {
        aj__shell_job j;
        job_init(&j, pl);
        aj__shell_result res;
        int rc = aj__shell_run(&j, &res);
        _exit(rc == 0 ? 0 : 1); /* not reached: the test kills this process */
    }
    pid_t sh = 0;
    pid_t bg = 0;
    int started = read_pids(pidfile, &sh, &bg, WAIT_MS);
    pid_t pgid = started ? getpgid(sh) : -1;
    kill(worker, SIGKILL);
    int status;
    assert_int_equal(waitpid(worker, &status, 0), worker);
    assert_true(started);
    /* The program runs in its own group, led by the supervisor. */
    assert_true(pgid > 0);
    assert_int_not_equal(pgid, getpgrp());
    assert_int_equal(getpgid(bg), pgid);
    int64_t waited = wait_gone(bg, pgid, DEATH_MS);
    if (waited < 0) {
        kill(-pgid, SIGKILL);
        fail_msg("process group %d still alive %d ms after the worker died", (int)pgid, DEATH_MS);
    }
    assert_false(pid_alive(sh));
    free(pl);
    free(script);
    free(pidfile);
    aj_test_rmtree(dir);
    free(dir);
}

typedef struct death_arg {
    const char *payload;
} death_arg;

static void *death_job_main(void *p) {
    death_arg *a = p;
    aj__shell_job j;
    job_init(&j, a->payload);
    aj__shell_result res;
    if (aj__shell_run(&j, &res) == 0) {
        aj__buf_free(&res.json);
    }
    return NULL;
}

static void test_worker_death_with_concurrent_jobs(void **state) {
    (void)state;
    /* Two jobs on two threads of the dying worker: each job's supervisor must not hold the
     * other's descriptors, or neither would see its worker go. */
    enum { JOBS = 2 };
    char *dir = aj_test_tmpdir();
    char *pidfile[JOBS];
    char *script[JOBS];
    char *pl[JOBS];
    for (int i = 0; i < JOBS; i++) {
        char name[16];
        snprintf(name, sizeof name, "pids%d", i);
        pidfile[i] = aj_test_path(dir, name);
        script[i] = spawner_script(pidfile[i], 1);
        const char *argv[] = {"sh", "-c", script[i], NULL};
        pl[i] = payload(argv, NULL, NULL);
    }
    pid_t worker = fork();
    assert_true(worker >= 0);
    if (worker == 0) {
        pthread_t t[JOBS];
        death_arg a[JOBS];
        for (int i = 0; i < JOBS; i++) {
            a[i].payload = pl[i];
            if (pthread_create(&t[i], NULL, death_job_main, &a[i]) != 0) {
                _exit(1);
            }
        }
        for (int i = 0; i < JOBS; i++) {
            pthread_join(t[i], NULL);
        }
        _exit(0); /* not reached: the test kills this process */
    }
    pid_t sh[JOBS] = {0};
    pid_t bg[JOBS] = {0};
    int started = 1;
    for (int i = 0; i < JOBS; i++) {
        started = started && read_pids(pidfile[i], &sh[i], &bg[i], WAIT_MS);
    }
    kill(worker, SIGKILL);
    int status;
    assert_int_equal(waitpid(worker, &status, 0), worker);
    assert_true(started);
    pid_t pgid[JOBS];
    for (int i = 0; i < JOBS; i++) {
        pgid[i] = getpgid(bg[i]);
        assert_true(pgid[i] > 0);
    }
    int gone = 1;
    for (int i = 0; i < JOBS; i++) {
        gone = gone && wait_gone(bg[i], pgid[i], DEATH_MS) >= 0 && !pid_alive(sh[i]);
    }
    if (!gone) {
        for (int i = 0; i < JOBS; i++) {
            kill(-pgid[i], SIGKILL);
        }
        fail_msg("a job's process group outlived its worker");
    }
    for (int i = 0; i < JOBS; i++) {
        free(pl[i]);
        free(script[i]);
        free(pidfile[i]);
    }
    aj_test_rmtree(dir);
    free(dir);
}

/* --- the host's signal state ---------------------------------------------------------------- */

static volatile sig_atomic_t host_sigchld;

static void host_on_sigchld(int sig) {
    (void)sig;
    host_sigchld++;
}

static void test_host_signal_state(void **state) {
    (void)state;
    /* The host has its own SIGCHLD handler, ignores SIGPIPE and blocks SIGTERM on this thread. */
    struct sigaction sa;
    struct sigaction old_chld;
    struct sigaction old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = host_on_sigchld;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGCHLD, &sa, &old_chld), 0);
    sa.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGPIPE, &sa, &old_pipe), 0);
    sigset_t block;
    sigset_t old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
    host_sigchld = 0;

    /* The program starts with no signal blocked or ignored: `yes` dies of SIGPIPE quietly. */
    aj__shell_result res;
    char *out = run_sh("grep -E '^Sig(Blk|Ign)' /proc/self/status; yes | head -n 1", &res);
    assert_string_equal(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\ny\n");
    free(out);
    /* Our handler is still installed and saw the supervisor's exit: nothing was taken from it. */
    struct sigaction now;
    assert_int_equal(sigaction(SIGCHLD, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, host_on_sigchld);
    assert_true(host_sigchld >= 1);

    /* A host that lets the kernel reap its children (SIGCHLD ignored) works too. */
    sa.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGCHLD, &sa, NULL), 0);
    free(run_sh("exit 5", &res));
    assert_int_equal(res.exit_code, 5);

    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);
    assert_int_equal(sigaction(SIGPIPE, &old_pipe, NULL), 0);
    assert_int_equal(sigaction(SIGCHLD, &old_chld, NULL), 0);
}

/* --- allocation failures ------------------------------------------------------------------- */

static void test_allocation_failures(void **state) {
    (void)state;
    /* Fail each allocation in turn: every one is reported as AJ_ENOMEM, nothing leaks (ASan),
     * and once none fails the run succeeds. */
    const char *argv[] = {"echo", "hello", NULL};
    json_t *env = json_pack("{s:s}", "AJ_TEST_VAR", "x");
    char *pl = payload(argv, env, NULL);
    int succeeded = 0;
    for (unsigned long n = 1; n < 10000 && !succeeded; n++) {
        aj__shell_job j;
        job_init(&j, pl);
        aj__shell_result res;
        aj__mem_fail_at(n);
        int rc = aj__shell_run(&j, &res);
        aj__mem_fail_at(0);
        if (rc == 0) {
            char *out = result_output(&res, NULL);
            assert_string_equal(out, "hello\n");
            free(out);
            aj__buf_free(&res.json);
            succeeded = 1;
        } else if (rc != AJ_ENOMEM) {
            fail_msg("allocation %lu failing gave %s: %s", n, aj_err_name(rc), aj_errmsg());
        }
    }
    assert_true(succeeded);
    free(pl);
}

/* --- concurrency -------------------------------------------------------------------------- */

/* Concurrent runs per test, each on its own thread. */
#define CONCURRENT_RUNS 4

typedef struct conc_arg {
    uint64_t id;
    int rc;
    char out[64];
    int64_t took_ms;
} conc_arg;

static void *conc_main(void *p) {
    conc_arg *a = p;
    /* Job 0 runs long; the others must not be held up by it (no shared descriptors). */
    const char *argv[] = {"sh", "-c", a->id == 0 ? "sleep 0.6; echo $AJ_JOB_ID" : "echo $AJ_JOB_ID",
                          NULL};
    char *pl = payload(argv, NULL, NULL);
    aj__shell_job j;
    job_init(&j, pl);
    j.job_id = a->id;
    aj__shell_result res;
    int64_t start = aj__mono_us();
    a->rc = aj__shell_run(&j, &res);
    a->took_ms = (aj__mono_us() - start) / 1000;
    if (a->rc == 0) {
        snprintf(a->out, sizeof a->out, "%.*s", (int)res.json.len, (const char *)res.json.p);
        aj__buf_free(&res.json);
    }
    free(pl);
    return NULL;
}

static void test_concurrent_runs(void **state) {
    (void)state;
    pthread_t t[CONCURRENT_RUNS];
    conc_arg a[CONCURRENT_RUNS];
    for (int i = 0; i < CONCURRENT_RUNS; i++) {
        memset(&a[i], 0, sizeof a[i]);
        a[i].id = (uint64_t)i;
        assert_int_equal(pthread_create(&t[i], NULL, conc_main, &a[i]), 0);
    }
    for (int i = 0; i < CONCURRENT_RUNS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(a[i].rc, 0);
        char want[64];
        snprintf(want, sizeof want, "{\"exit_code\":0,\"signal\":0,\"output\":\"%d\\n\"}", i);
        assert_string_equal(a[i].out, want);
        if (i > 0) {
            assert_true(a[i].took_ms < 500);
        }
    }
}

/* --- the built-in handlers, through the engine ------------------------------------------ */

/* Submits a job of `type` and waits for it to be final; returns it (free with aj_job_free). */
static aj_job *submit_and_wait(aj_engine *e, const char *type, const char *pl,
                               uint32_t max_attempts, int64_t timeout_ms) {
    aj_job_spec spec;
    aj_job_spec_init(&spec);
    spec.type = type;
    spec.payload = pl;
    spec.payload_len = strlen(pl);
    spec.max_attempts = max_attempts;
    assert_int_equal(aj_backoff_parse("none", &spec.backoff), 0);
    if (timeout_ms > 0) {
        spec.timeout_ms = timeout_ms;
    }
    uint64_t id;
    assert_int_equal(aj_submit(e, &spec, &id), 0);
    aj_job_state st;
    int rc = aj_job_wait(e, id, WAIT_MS, &st);
    if (rc != 0) {
        fail_msg("job %s: aj_job_wait: %s: %s", pl, aj_err_name(rc), aj_errmsg());
    }
    aj_job *job = NULL;
    assert_int_equal(aj_job_get(e, id, &job), 0);
    return job;
}

static void expect_dead(aj_engine *e, const char *pl, uint32_t max_attempts, int64_t timeout_ms,
                        aj_dead_reason reason, const char *error, uint32_t attempts) {
    aj_job *job = submit_and_wait(e, "shell", pl, max_attempts, timeout_ms);
    if (job->state != AJ_STATE_DEAD || job->dead_reason != reason || job->error == NULL ||
        strstr(job->error, error) == NULL || job->attempts != attempts) {
        fail_msg("job %s: state %s, reason '%s', error '%s', attempts %u; want dead, '%s', '%s', "
                 "%u",
                 pl, aj_state_name(job->state), aj_dead_reason_name(job->dead_reason),
                 job->error ? job->error : "(none)", job->attempts, aj_dead_reason_name(reason),
                 error, attempts);
    }
    aj_job_free(job);
}

static void test_builtins_through_engine(void **state) {
    (void)state;
    aj_engine *e = NULL;
    assert_int_equal(aj_engine_open(&e, "mem:", NULL), 0);
    assert_int_equal(aj_register_builtins(e), 0);
    aj_worker_opts wo;
    aj_worker_opts_init(&wo);
    wo.concurrency = 2;
    assert_int_equal(aj_workers_start(e, &wo), 0);

    /* echo: the result is the payload. */
    aj_job *job = submit_and_wait(e, "echo", "{\"hello\":[1,2]}", 1, 0);
    assert_int_equal(job->state, AJ_STATE_COMPLETED);
    assert_string_equal((const char *)job->result, "{\"hello\":[1,2]}");
    aj_job_free(job);

    /* shell, success: the result is the status and output; the job's variables are set; a
     * failed first attempt is retried and AJ_ATTEMPT counts it. */
    job = submit_and_wait(e, "shell",
                          "{\"argv\":[\"sh\",\"-c\",\"echo $AJ_QUEUE $AJ_ATTEMPT; "
                          "test $AJ_ATTEMPT = 2\"]}",
                          2, 0);
    assert_int_equal(job->state, AJ_STATE_COMPLETED);
    assert_int_equal(job->attempts, 2);
    assert_string_equal((const char *)job->result,
                        "{\"exit_code\":0,\"signal\":0,\"output\":\"default 2\\n\"}");
    aj_job_free(job);

    expect_dead(e, "{\"argv\":[\"sh\",\"-c\",\"exit 3\"]}", 2, 0, AJ_DEAD_MAX_ATTEMPTS,
                "exit status 3", 2);
    expect_dead(e, "{\"argv\":[\"sh\",\"-c\",\"exit 100\"]}", 3, 0, AJ_DEAD_PERMANENT,
                "exit status 100 (permanent failure)", 1);
    expect_dead(e, "{\"argv\":[\"sh\",\"-c\",\"kill -TERM $$\"]}", 1, 0, AJ_DEAD_MAX_ATTEMPTS,
                "killed by signal SIGTERM", 1);
    expect_dead(e, "{\"argv\":[]}", 3, 0, AJ_DEAD_PERMANENT,
                "payload must be an object with \"argv\": a non-empty array of strings", 1);
    expect_dead(e, "{\"argv\":[\"aj-no-such-program-xyz\"]}", 1, 0, AJ_DEAD_MAX_ATTEMPTS,
                "exit status 127", 1);
    expect_dead(e, "{\"argv\":[\"sleep\",\"100\"]}", 1, 300, AJ_DEAD_TIMEOUT,
                "timed out after 300ms", 1);

    assert_int_equal(aj_workers_stop(e), 0);
    aj_engine_close(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_verbatim),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_output_merged),
        cmocka_unit_test(test_output_keeps_last_64k),
        cmocka_unit_test(test_output_invalid_utf8),
        cmocka_unit_test(test_output_cut_inside_a_character),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_policy),
        cmocka_unit_test(test_path_from_job_env),
        cmocka_unit_test(test_cwd),
        cmocka_unit_test(test_stdin_is_devnull),
        cmocka_unit_test(test_stdin_from_payload),
        cmocka_unit_test(test_no_descriptor_leaks),
        cmocka_unit_test(test_progress_lines),
        cmocka_unit_test(test_no_progress_fd_without_callback),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_program_not_found),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_timeout_sigkill_after_grace),
        cmocka_unit_test(test_leftovers_killed_on_exit),
        cmocka_unit_test(test_should_stop_kills),
        cmocka_unit_test(test_worker_death_kills_group),
        cmocka_unit_test(test_worker_death_with_concurrent_jobs),
        cmocka_unit_test(test_host_signal_state),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_builtins_through_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
