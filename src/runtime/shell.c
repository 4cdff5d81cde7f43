/*
 * shell.c — runs one `shell` job's program (see shell.h). Part of the runtime layer: it uses only
 * util/ and jansson, and knows nothing of engines or stores; builtins.c maps its result onto a job.
 *
 * Three processes take part. The worker (the calling thread) forks a supervisor; the supervisor
 * calls setsid(), so it leads a new session and process group, then forks and execs the program
 * into that group. The worker reads the program's merged output (and, for a job with a progress
 * callback, the lines the program writes to AJ__SHELL_PROGRESS_FD, a second pipe) and talks to
 * the supervisor over a socketpair, the control socket:
 *   - supervisor -> worker: one report, the program's wait status, once it has exited;
 *   - worker -> supervisor: end of stream (shutdown) means "kill the group now".
 * The worker dying looks to the supervisor exactly like that request: its end of the control
 * socket closes with the process, even after SIGKILL. PR_SET_PDEATHSIG backs this up in case some
 * other process briefly holds a copy of the worker's end. Whatever the reason, the supervisor
 * sends SIGTERM to the group, waits up to AJ__SHELL_KILL_GRACE_MS for the program, reports its
 * status and finally sends SIGKILL to the whole group, itself included. It does the same after a
 * normal exit, so nothing the program started in its group outlives the job.
 *
 * Invariants:
 *  - Between fork and exec only async-signal-safe calls are made: everything the children need
 *    (argv, the environment, PATH) is built and allocated before the fork.
 *  - Every descriptor we create is close-on-exec (only the program's copy of the progress pipe
 *    is not, on purpose, at AJ__SHELL_PROGRESS_FD); the supervisor closes every descriptor it
 *    does not need, so it holds no copy of another job's pipes.
 *  - The worker waits only on its own supervisor's pid and installs no signal handler, so it
 *    neither blocks other threads nor takes SIGCHLD from the host program. It signals the group
 *    itself only as a fallback, while the supervisor (the group's leader) is still unreaped, so
 *    the group id cannot have been reused.
 *  - A process that leaves the group (setsid, setpgid) escapes all of this; cgroups would be the
 *    complete answer and are out of scope.
 */
#include "runtime/shell.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aj.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/mem.h"

/* Most entries in a payload's "env" object (merging is quadratic in it). */
#define SHELL_PAYLOAD_ENV_MAX 1024
/* After the program's fate is known, how long output still held open by a process that escaped
 * the group is waited for, in milliseconds. */
#define SHELL_DRAIN_MS 200
/* After the grace period, how long the worker waits for its supervisor before killing the group
 * itself, in milliseconds. */
#define SHELL_KILL_SLACK_MS 1000
/* How long the worker waits for its supervisor to exit after its report before SIGKILLing it, in
 * milliseconds, and how often it looks. */
#define SHELL_REAP_MS 1000
#define SHELL_REAP_STEP_MS 1
/* The supervisor is told of the worker thread's death with this signal (PR_SET_PDEATHSIG). */
#define SHELL_DEATH_SIGNAL SIGHUP
/* execvp()'s search path when the environment has no PATH (glibc's default). */
#define SHELL_DEFAULT_PATH "/bin:/usr/bin"
/* The interpreter of an executable without a #! line, as execvp() does. */
#define SHELL_FALLBACK_SH "/bin/sh"
/* Prefix of the messages written into the output when the program cannot be started. */
#define SHELL_MSG_PREFIX "aj-shell: "
/* Bytes of one such message (it is cut, not overflowed). */
#define SHELL_MSG_MAX 1024
/* Bytes read from the progress pipe at a time. */
#define SHELL_PROGRESS_CHUNK 4096
/* Exit status of a supervisor that could not set itself up; the worker sees only that it died
 * without reporting (AJ_EIO). */
#define SHELL_SUP_SETUP_FAILED 120

/* The result's JSON must fit in a job result even when every byte of output is escaped. */
_Static_assert(AJ__SHELL_OUTPUT_MAX * 6 + 256 <= AJ_PAYLOAD_MAX,
               "shell output, escaped, must fit in AJ_PAYLOAD_MAX");

/* What the supervisor reports over the control socket. */
enum { REPORT_STATUS = 1, REPORT_FORK_FAILED = 2 };
typedef struct shell_report {
    int32_t kind;  /* REPORT_* */
    int32_t value; /* a wait status, or an errno */
} shell_report;

/* Everything the supervisor and the program need, prepared before the fork. */
typedef struct shell_spec {
    char **argv_store; /* [0] reserved for SHELL_FALLBACK_SH; the program's argv starts at [1] */
    char **envp;
    const char *path; /* the search path, from envp */
    const char *cwd;  /* NULL: the worker's */
    pid_t worker_pid;
    int ctl;     /* the supervisor's end of the control socket */
    int out_w;   /* the output pipe's write end */
    int prog_w;  /* the progress pipe's write end; -1: none */
    int devnull; /* the program's stdin: /dev/null, or the payload's "stdin" */
} shell_spec;

/* ----------------------------------------------------------------------------------------------
 * Children: async-signal-safe code only.
 * -------------------------------------------------------------------------------------------- */

static void noop_handler(int sig) {
    (void)sig;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends s to a bounded message. */
static void msg_add(char *msg, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (n > SHELL_MSG_MAX - 1 - *len) {
        n = SHELL_MSG_MAX - 1 - *len;
    }
    memcpy(msg + *len, s, n);
    *len += n;
}

/* Writes "aj-shell: WHAT 'ARG': REASON\n" to stderr, which is the job's output. */
static void report_failure(const char *what, const char *arg, int err) {
    char msg[SHELL_MSG_MAX];
    size_t len = 0;
    const char *reason = strerrordesc_np(err);
    msg_add(msg, &len, SHELL_MSG_PREFIX);
    msg_add(msg, &len, what);
    msg_add(msg, &len, " '");
    msg_add(msg, &len, arg);
    msg_add(msg, &len, "': ");
    msg_add(msg, &len, reason != NULL ? reason : "unknown error");
    msg_add(msg, &len, "\n");
    ssize_t w = write(STDERR_FILENO, msg, len);
    (void)w;
}

/* Closes descriptors lo..hi (inclusive). */
static void close_fds(unsigned lo, unsigned hi) {
    if (lo > hi || close_range(lo, hi, 0) == 0) {
        return;
    }
    /* Kernels before 5.9 lack close_range: close one by one up to the descriptor limit. */
    struct rlimit rl;
    unsigned top = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)UINT_MAX) {
        top = (unsigned)rl.rlim_cur;
    }
    for (unsigned fd = lo; fd <= hi && fd < top; fd++) {
        close((int)fd);
    }
}

/* Closes every descriptor from 3 up except keep[0..n-1], which must be >= 3. */
static void close_all_but(int *keep, int n) {
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    }
    unsigned lo = 3;
    for (int i = 0; i < n; i++) {
        if ((unsigned)keep[i] > lo) {
            close_fds(lo, (unsigned)keep[i] - 1);
        }
        lo = (unsigned)keep[i] + 1;
    }
    close_fds(lo, UINT_MAX);
}

/* execvp() with the job's PATH and environment. Returns the errno to report. */
static int exec_search(shell_spec *sp) {
    char **argv = sp->argv_store + 1;
    const char *file = argv[0];
    if (file[0] == '\0') {
        return ENOENT;
    }
    if (strchr(file, '/') != NULL) {
        execve(file, argv, sp->envp);
        int err = errno;
        if (err == ENOEXEC) {
            sp->argv_store[0] = (char *)SHELL_FALLBACK_SH;
            sp->argv_store[1] = (char *)file;
            execve(SHELL_FALLBACK_SH, sp->argv_store, sp->envp);
        }
        return err;
    }
    char full[PATH_MAX];
    size_t flen = strlen(file);
    int saw_eacces = 0;
    const char *p = sp->path;
    for (;;) {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        if (dlen + 1 + flen + 1 <= sizeof full) {
            size_t k = 0;
            if (dlen > 0) { /* an empty element means the current directory */
                memcpy(full, p, dlen);
                full[dlen] = '/';
                k = dlen + 1;
            }
            memcpy(full + k, file, flen + 1);
            execve(full, argv, sp->envp);
            int err = errno;
            switch (err) {
            case EACCES:
                saw_eacces = 1;
                break;
            case ENOEXEC:
                sp->argv_store[0] = (char *)SHELL_FALLBACK_SH;
                sp->argv_store[1] = full;
                execve(SHELL_FALLBACK_SH, sp->argv_store, sp->envp);
                return err;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
                break;
            default:
                return err;
            }
        }
        if (*end == '\0') {
            break;
        }
        p = end + 1;
    }
    return saw_eacces ? EACCES : ENOENT;
}

/* The program's process, forked by the supervisor. Never returns. */
static _Noreturn void run_program(shell_spec *sp, pid_t supervisor) {
    /* Dispositions the host set to SIG_IGN would survive exec: give the program defaults. The
     * supervisor blocked every signal, so none can arrive before the mask is cleared below. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &dfl, NULL); /* fails harmlessly for signals glibc reserves */
        }
    }
    /* If the supervisor is killed outright, the program goes with it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != supervisor) {
        _exit(SHELL_SUP_SETUP_FAILED);
    }
    /* Every descriptor of ours is >= 3 (see supervise), so these cannot clobber one another. */
    if (dup2(sp->devnull, STDIN_FILENO) < 0 || dup2(sp->out_w, STDOUT_FILENO) < 0 ||
        dup2(sp->out_w, STDERR_FILENO) < 0) {
        _exit(AJ__SHELL_EXIT_NOEXEC);
    }
    /* The progress pipe goes to its fixed number without close-on-exec. Stdio is in place, so
     * whatever held that number (one of ours, all close-on-exec) is no longer needed. */
    if (sp->prog_w >= 0) {
        int moved = sp->prog_w == AJ__SHELL_PROGRESS_FD
                        ? fcntl(sp->prog_w, F_SETFD, 0) == 0
                        : dup2(sp->prog_w, AJ__SHELL_PROGRESS_FD) == AJ__SHELL_PROGRESS_FD;
        if (!moved) {
            _exit(AJ__SHELL_EXIT_NOEXEC);
        }
    }
    if (sp->cwd != NULL && chdir(sp->cwd) != 0) {
        report_failure("cannot change directory to", sp->cwd, errno);
        _exit(AJ__SHELL_EXIT_NOTFOUND);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int err = exec_search(sp);
    report_failure("cannot run", sp->argv_store[1] != NULL ? sp->argv_store[1] : "", err);
    _exit(err == ENOENT ? AJ__SHELL_EXIT_NOTFOUND : AJ__SHELL_EXIT_NOEXEC);
}

static void send_report(int ctl, int32_t kind, int32_t value) {
    shell_report rep = {kind, value};
    ssize_t w = send(ctl, &rep, sizeof rep, MSG_NOSIGNAL); /* fails if the worker is gone */
    (void)w;
}

/* Moves fd to a descriptor >= 3 (close-on-exec); the old one stays until close_all_but. */
static int above_stdio(int fd) {
    if (fd >= 3) {
        return fd;
    }
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0) {
        _exit(SHELL_SUP_SETUP_FAILED);
    }
    return moved;
}

/* The supervisor: leads the job's session and group, runs the program, reports its status,
 * kills the group when asked or orphaned. Never returns. */
static _Noreturn void supervise(shell_spec *sp) {
    /* First block everything: the host's handlers were inherited and must never run here. The
     * supervisor unblocks only SIGCHLD and the death signal, and only inside ppoll(). */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* A new session rather than only a new group: no controlling terminal, so the program can
     * neither be stopped by terminal job control nor receive the terminal's signals. */
    if (setsid() < 0) {
        _exit(SHELL_SUP_SETUP_FAILED);
    }
    struct sigaction wake;
    memset(&wake, 0, sizeof wake);
    wake.sa_handler = noop_handler;
    sigemptyset(&wake.sa_mask);
    sigaction(SIGCHLD, &wake, NULL);
    sigaction(SHELL_DEATH_SIGNAL, &wake, NULL);
    /* Check the parent after arming: it may have died before prctl() took effect. */
    if (prctl(PR_SET_PDEATHSIG, SHELL_DEATH_SIGNAL) != 0 || getppid() != sp->worker_pid) {
        _exit(SHELL_SUP_SETUP_FAILED);
    }
    sp->ctl = above_stdio(sp->ctl);
    sp->out_w = above_stdio(sp->out_w);
    sp->devnull = above_stdio(sp->devnull);
    if (sp->prog_w >= 0) {
        sp->prog_w = above_stdio(sp->prog_w);
    }
    int keep[4] = {sp->ctl, sp->out_w, sp->devnull, sp->prog_w};
    close_all_but(keep, sp->prog_w >= 0 ? 4 : 3);
    /* Our own stdio was the worker's: drop it, so that we hold nothing of the host's. */
    for (int fd = 0; fd < 3; fd++) {
        dup2(sp->devnull, fd);
    }

    pid_t self = getpid();
    pid_t prog = fork();
    if (prog < 0) {
        send_report(sp->ctl, REPORT_FORK_FAILED, errno);
        _exit(0);
    }
    if (prog == 0) {
        run_program(sp, self);
    }
    close(sp->out_w);
    close(sp->devnull);
    if (sp->prog_w >= 0) {
        close(sp->prog_w);
    }

    sigset_t waiting = all;
    sigdelset(&waiting, SIGCHLD);
    sigdelset(&waiting, SHELL_DEATH_SIGNAL);
    int ctl_open = 1;
    int64_t term_at = 0; /* when SIGTERM went to the group; 0: not yet */
    int status = 0;
    for (;;) {
        pid_t w = waitpid(prog, &status, WNOHANG);
        if (w == prog) {
            break;
        }
        if (w < 0 && errno != EINTR) {
            /* Cannot happen (the program is our only child); do not leave the group behind. */
            kill(0, SIGKILL);
            _exit(SHELL_SUP_SETUP_FAILED);
        }
        if (term_at == 0 && (!ctl_open || getppid() != sp->worker_pid)) {
            kill(0, SIGTERM); /* the whole group; SIGTERM stays blocked here */
            term_at = mono_ms();
        }
        struct timespec ts;
        struct timespec *tsp = NULL;
        if (term_at != 0) {
            int64_t left = term_at + AJ__SHELL_KILL_GRACE_MS - mono_ms();
            if (left <= 0) {
                kill(0, SIGKILL); /* the program, its descendants, and this process */
                _exit(0);
            }
            ts.tv_sec = (time_t)(left / 1000);
            ts.tv_nsec = (long)(left % 1000) * 1000000L;
            tsp = &ts;
        }
        /* SIGCHLD and the death signal are unblocked only for the duration of the wait, so a
         * child exiting between waitpid() and here still interrupts it. */
        struct pollfd pf = {sp->ctl, POLLIN, 0};
        int n = ppoll(&pf, ctl_open ? 1 : 0, tsp, &waiting);
        if (n > 0 && pf.revents != 0) {
            char b[64];
            ssize_t r = read(sp->ctl, b, sizeof b);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                ctl_open = 0; /* the worker asked for the kill, or died */
            }
        }
    }
    send_report(sp->ctl, REPORT_STATUS, status);
    kill(0, SIGKILL); /* whatever the program left running in its group, and this process */
    _exit(0);
}

/* ----------------------------------------------------------------------------------------------
 * Worker side.
 * -------------------------------------------------------------------------------------------- */

/* A NULL-terminated "K=V" list in which each key appears once. */
typedef struct env_list {
    char **v;
    size_t n;
    size_t cap;
} env_list;

static void env_free(env_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        aj__free(l->v[i]);
    }
    aj__free(l->v);
    memset(l, 0, sizeof *l);
}

/* Sets "key=val" (klen bytes of key), replacing an entry with the same key; takes nothing. */
static int env_set(env_list *l, const char *key, size_t klen, const char *val) {
    size_t vlen = strlen(val);
    char *kv = aj__malloc(klen + 1 + vlen + 1);
    if (kv == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory building a shell job's environment");
    }
    memcpy(kv, key, klen);
    kv[klen] = '=';
    memcpy(kv + klen + 1, val, vlen + 1);
    for (size_t i = 0; i < l->n; i++) {
        if (strncmp(l->v[i], key, klen) == 0 && l->v[i][klen] == '=') {
            aj__free(l->v[i]);
            l->v[i] = kv;
            return 0;
        }
    }
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = aj__realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            aj__free(kv);
            return aj__err(AJ_ENOMEM, "out of memory building a shell job's environment");
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = kv;
    l->v[l->n] = NULL;
    return 0;
}

/* Sets a "K=V" entry; entries without '=' (or with an empty key) are skipped. */
static int env_put(env_list *l, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) {
        return 0;
    }
    return env_set(l, kv, (size_t)(eq - kv), eq + 1);
}

static const char *env_get(const env_list *l, const char *key) {
    size_t klen = strlen(key);
    for (size_t i = 0; i < l->n; i++) {
        if (strncmp(l->v[i], key, klen) == 0 && l->v[i][klen] == '=') {
            return l->v[i] + klen + 1;
        }
    }
    return NULL;
}

#define SHELL_ARGV_ERR "payload must be an object with \"argv\": a non-empty array of strings"

/* Validates the payload and fills argv_store (pointing into *root), cwd and the payload's env
 * object (or NULL). Payload content never goes into a message: messages may be logged. */
static int parse_payload(const aj__shell_job *job, json_t **root, char ***argv_store,
                         const char **cwd, json_t **env) {
    json_error_t jerr;
    if (job->payload == NULL || job->payload_len == 0) {
        return aj__err(AJ_EINVAL, "payload is empty; " SHELL_ARGV_ERR);
    }
    *root = json_loadb(job->payload, job->payload_len, 0, &jerr);
    if (*root == NULL) {
        return aj__err(AJ_EINVAL, "payload is not valid JSON (error at byte %d); " SHELL_ARGV_ERR,
                       jerr.position);
    }
    if (!json_is_object(*root)) {
        return aj__err(AJ_EINVAL, SHELL_ARGV_ERR);
    }
    json_t *argv = json_object_get(*root, "argv");
    if (!json_is_array(argv) || json_array_size(argv) == 0) {
        return aj__err(AJ_EINVAL, SHELL_ARGV_ERR);
    }
    size_t argc = json_array_size(argv);
    for (size_t i = 0; i < argc; i++) {
        if (!json_is_string(json_array_get(argv, i))) {
            return aj__err(AJ_EINVAL, SHELL_ARGV_ERR " (argv[%zu] is not a string)", i);
        }
    }
    json_t *jcwd = json_object_get(*root, "cwd");
    if (jcwd != NULL && (!json_is_string(jcwd) || json_string_length(jcwd) == 0)) {
        return aj__err(AJ_EINVAL, "payload \"cwd\" must be a non-empty string");
    }
    json_t *jin = json_object_get(*root, "stdin");
    if (jin != NULL && !json_is_string(jin)) {
        return aj__err(AJ_EINVAL, "payload \"stdin\" must be a string");
    }
    *env = json_object_get(*root, "env");
    if (*env != NULL) {
        if (!json_is_object(*env)) {
            return aj__err(AJ_EINVAL, "payload \"env\" must be an object of string values");
        }
        if (json_object_size(*env) > SHELL_PAYLOAD_ENV_MAX) {
            return aj__err(AJ_EINVAL, "payload \"env\" has more than %d entries",
                           SHELL_PAYLOAD_ENV_MAX);
        }
        const char *key;
        json_t *val;
        json_object_foreach(*env, key, val) {
            if (key[0] == '\0' || strchr(key, '=') != NULL) {
                return aj__err(AJ_EINVAL,
                               "payload \"env\" keys must be non-empty and contain no '='");
            }
            if (!json_is_string(val)) {
                return aj__err(AJ_EINVAL, "payload \"env\" must be an object of string values "
                                          "(a value is not a string)");
            }
        }
    }
    /* One leading slot for SHELL_FALLBACK_SH and a trailing NULL. */
    char **store = aj__calloc(argc + 2, sizeof *store);
    if (store == NULL) {
        return aj__err(AJ_ENOMEM, "out of memory parsing a shell job's payload");
    }
    for (size_t i = 0; i < argc; i++) {
        store[i + 1] = (char *)json_string_value(json_array_get(argv, i));
    }
    *argv_store = store;
    *cwd = jcwd != NULL ? json_string_value(jcwd) : NULL;
    return 0;
}

void aj__shell_env_free(aj__shell_env *env) {
    for (size_t i = 0; i < env->n_pass; i++) {
        aj__free(env->pass[i]);
    }
    aj__free(env->pass);
    memset(env, 0, sizeof *env);
}

/* 1 when the worker's variable "K=V" reaches the program under `policy` (NULL: the default). */
static int env_passes(const aj__shell_env *policy, const char *kv) {
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; policy != NULL && i < policy->n_pass; i++) {
        if (strlen(policy->pass[i]) == klen && memcmp(policy->pass[i], kv, klen) == 0) {
            return 1;
        }
    }
    if (policy != NULL && policy->clear) {
        return 0;
    }
    size_t slen = strlen(AJ__SHELL_STORE_VAR);
    return !(klen == slen && memcmp(kv, AJ__SHELL_STORE_VAR, slen) == 0);
}

/* The worker's environment as the policy allows, then the payload's, then the job's variables,
 * then extra_env. */
static int build_env(const aj__shell_job *job, json_t *penv, env_list *l) {
    int rc = 0;
    for (char **e = environ; e != NULL && *e != NULL && rc == 0; e++) {
        if (env_passes(job->env, *e)) {
            rc = env_put(l, *e);
        }
    }
    if (penv != NULL) {
        const char *key;
        json_t *val;
        json_object_foreach(penv, key, val) {
            if (rc == 0) {
                rc = env_set(l, key, strlen(key), json_string_value(val));
            }
        }
    }
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, job->job_id);
    rc = rc ? rc : env_set(l, "AJ_JOB_ID", strlen("AJ_JOB_ID"), num);
    snprintf(num, sizeof num, "%" PRIu32, job->attempt);
    rc = rc ? rc : env_set(l, "AJ_ATTEMPT", strlen("AJ_ATTEMPT"), num);
    rc = rc ? rc : env_set(l, "AJ_QUEUE", strlen("AJ_QUEUE"), job->queue != NULL ? job->queue : "");
    if (job->on_progress != NULL) {
        snprintf(num, sizeof num, "%d", AJ__SHELL_PROGRESS_FD);
        rc = rc ? rc : env_set(l, "AJ_PROGRESS_FD", strlen("AJ_PROGRESS_FD"), num);
    }
    for (const char *const *e = job->extra_env; e != NULL && *e != NULL && rc == 0; e++) {
        rc = env_put(l, *e);
    }
    return rc; /* never an empty list: AJ_QUEUE at least, so l->v is NULL-terminated */
}

/* The last AJ__SHELL_OUTPUT_MAX bytes of output. */
typedef struct ring {
    uint8_t *p;     /* AJ__SHELL_OUTPUT_MAX bytes */
    size_t pos;     /* where the next byte goes */
    size_t len;     /* bytes held, <= AJ__SHELL_OUTPUT_MAX */
    uint64_t total; /* bytes ever read */
} ring;

/* Reads what is available. Returns 1 while the pipe is open, 0 at end of file or on error. */
static int ring_read(ring *r, int fd) {
    ssize_t n = read(fd, r->p + r->pos, AJ__SHELL_OUTPUT_MAX - r->pos);
    if (n < 0) {
        return errno == EINTR || errno == EAGAIN;
    }
    if (n == 0) {
        return 0;
    }
    r->pos = (r->pos + (size_t)n) % AJ__SHELL_OUTPUT_MAX;
    r->len = r->len + (size_t)n > AJ__SHELL_OUTPUT_MAX ? AJ__SHELL_OUTPUT_MAX : r->len + (size_t)n;
    r->total += (uint64_t)n;
    return 1;
}

/* The kept output as valid UTF-8: each byte that starts no well-formed sequence becomes U+FFFD.
 * When older output was dropped, the cut may have split a character: its tail is skipped. */
static void ring_text(const ring *r, aj_buf *txt) {
    aj_buf lin = AJ_BUF_INIT;
    size_t start = r->len == AJ__SHELL_OUTPUT_MAX ? r->pos : 0;
    aj__buf_add(&lin, r->p + start, r->len - start);
    aj__buf_add(&lin, r->p, start);
    if (lin.oom) {
        txt->oom = 1;
        aj__buf_free(&lin);
        return;
    }
    size_t i = 0;
    if (r->total > AJ__SHELL_OUTPUT_MAX) {
        while (i < lin.len && i < 3 && (lin.p[i] & 0xC0) == 0x80) {
            i++;
        }
    }
    while (i < lin.len) {
        size_t k = aj_utf8_seq(lin.p + i, lin.len - i);
        if (k == 0) {
            aj__buf_add(txt, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            aj__buf_add(txt, lin.p + i, k);
            i += k;
        }
    }
    aj__buf_free(&lin);
}

/* Builds {"exit_code":N,"signal":S,"output":"..."} into out->json. */
static int build_result(const ring *r, aj__shell_result *res) {
    aj_buf txt = AJ_BUF_INIT;
    ring_text(r, &txt);
    if (txt.oom) {
        aj__buf_free(&txt);
        return aj__err(AJ_ENOMEM, "out of memory building a shell job's result");
    }
    json_t *o = json_pack("{s:i,s:i,s:s%}", "exit_code", res->exit_code, "signal", res->signal,
                          "output", txt.p != NULL ? (const char *)txt.p : "", txt.len);
    aj__buf_free(&txt);
    /* Dumped straight into our buffer: no allocation of jansson's to free with its allocator. */
    size_t need = o != NULL ? json_dumpb(o, NULL, 0, JSON_COMPACT) : 0;
    if (need == 0 || aj__buf_reserve(&res->json, need) != 0) {
        json_decref(o);
        aj__buf_free(&res->json);
        return aj__err(AJ_ENOMEM, "out of memory building a shell job's result");
    }
    res->json.len = json_dumpb(o, (char *)res->json.p, need, JSON_COMPACT);
    json_decref(o);
    assert(res->json.len == need);
    return 0;
}

static int poll_timeout_ms(int64_t now_us, int64_t until_us, int timeout) {
    if (until_us == 0) {
        return timeout;
    }
    int64_t left = until_us - now_us;
    if (left <= 0) {
        return 0;
    }
    int64_t ms = (left + 999) / 1000;
    return ms < timeout ? (int)ms : timeout;
}

/* Waits for the supervisor to exit, killing it if it lingers. It reaps only its own pid, and
 * tolerates a host that reaps every child itself (ECHILD). */
static void reap_supervisor(pid_t sup) {
    int status;
    for (int waited = 0; waited < SHELL_REAP_MS; waited += SHELL_REAP_STEP_MS) {
        pid_t w = waitpid(sup, &status, WNOHANG);
        if (w == sup || (w < 0 && errno == ECHILD)) {
            return;
        }
        aj__sleep_ms(SHELL_REAP_STEP_MS);
    }
    kill(sup, SIGKILL);
    while (waitpid(sup, &status, 0) < 0 && errno == EINTR) {
    }
}

/* Splits the progress pipe into lines for job->on_progress. A line past AJ_PROGRESS_LINE_MAX
 * bytes keeps one byte more than the limit (so it reads as too long) and drops the rest. */
typedef struct line_reader {
    char buf[AJ_PROGRESS_LINE_MAX + 1];
    size_t len;
} line_reader;

/* Reads what is available. Returns 1 while the pipe is open, 0 at end of file or on error
 * (a last line without a newline is delivered then). */
static int progress_read(const aj__shell_job *job, line_reader *lr, int fd) {
    char chunk[SHELL_PROGRESS_CHUNK];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 1;
    }
    if (n <= 0) {
        if (lr->len > 0) {
            job->on_progress(job->progress_ud, lr->buf, lr->len);
            lr->len = 0;
        }
        return 0;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] == '\n') {
            job->on_progress(job->progress_ud, lr->buf, lr->len);
            lr->len = 0;
        } else if (lr->len < sizeof lr->buf) {
            lr->buf[lr->len++] = chunk[i];
        }
    }
    return 1;
}

/* The worker's loop: collects output and progress lines, watches the deadline and should_stop,
 * and receives the supervisor's report. Fills res's status fields; returns 0 or AJ_EIO. */
static int watch(const aj__shell_job *job, pid_t sup, int ctl, int out_r, int prog_r, ring *r,
                 aj__shell_result *res) {
    shell_report rep = {0, 0};
    size_t rep_got = 0;
    int have_report = 0;
    int ctl_open = 1;
    int out_open = 1;
    int prog_open = prog_r >= 0;
    line_reader *lr = NULL;
    if (prog_open) {
        lr = aj__malloc(sizeof *lr);
        if (lr == NULL) {
            /* The program runs without progress rather than not at all. */
            prog_open = 0;
        } else {
            lr->len = 0;
        }
    }
    int64_t kill_at = 0;     /* when the kill was requested (mono us); 0: not */
    int forced = 0;          /* the worker killed the group itself */
    int64_t drain_until = 0; /* stop reading output then (mono us); 0: still running */
    for (;;) {
        int64_t now = aj__mono_us();
        if (kill_at == 0 && drain_until == 0) {
            if (job->deadline_mono_us > 0 && now >= job->deadline_mono_us) {
                res->timed_out = 1;
            } else if (job->should_stop != NULL && job->should_stop(job->stop_ud)) {
                res->stopped = 1;
            }
            if (res->timed_out || res->stopped) {
                shutdown(ctl, SHUT_WR); /* the supervisor reads this as "kill the group" */
                kill_at = now;
            }
        }
        int lost = !ctl_open && !have_report; /* the supervisor died without reporting */
        if (!forced &&
            (lost ||
             (kill_at != 0 && drain_until == 0 &&
              now - kill_at >= (int64_t)(AJ__SHELL_KILL_GRACE_MS + SHELL_KILL_SLACK_MS) * 1000))) {
            /* The supervisor is still unreaped, so its group id cannot have been reused. */
            kill(-sup, SIGKILL);
            forced = 1;
        }
        if ((have_report || lost) && drain_until == 0) {
            drain_until = now + (int64_t)SHELL_DRAIN_MS * 1000;
        }
        if (drain_until != 0 && ((!out_open && !prog_open) || now >= drain_until)) {
            break;
        }
        struct pollfd pf[3];
        nfds_t n = 0;
        int out_i = -1;
        int ctl_i = -1;
        int prog_i = -1;
        if (prog_open) {
            prog_i = (int)n;
            pf[n++] = (struct pollfd){prog_r, POLLIN, 0};
        }
        if (out_open) {
            out_i = (int)n;
            pf[n++] = (struct pollfd){out_r, POLLIN, 0};
        }
        if (ctl_open) {
            ctl_i = (int)n;
            pf[n++] = (struct pollfd){ctl, POLLIN, 0};
        }
        int timeout = AJ__SHELL_POLL_MS;
        if (kill_at == 0) {
            timeout = poll_timeout_ms(now, job->deadline_mono_us, timeout);
        }
        timeout = poll_timeout_ms(now, drain_until, timeout);
        if (poll(pf, n, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            aj__free(lr);
            return aj__err(AJ_EIO, "poll: %s", strerror(errno));
        }
        if (out_i >= 0 && pf[out_i].revents != 0) {
            out_open = ring_read(r, out_r);
        }
        if (prog_i >= 0 && pf[prog_i].revents != 0) {
            prog_open = progress_read(job, lr, prog_r);
        }
        if (ctl_i >= 0 && pf[ctl_i].revents != 0) {
            ssize_t got = read(ctl, (char *)&rep + rep_got, sizeof rep - rep_got);
            if (got > 0) {
                rep_got += (size_t)got;
                if (rep_got == sizeof rep) {
                    have_report = 1;
                    ctl_open = 0;
                }
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                ctl_open = 0;
            }
        }
    }
    aj__free(lr);
    if (have_report && rep.kind == REPORT_FORK_FAILED) {
        return aj__err(AJ_EIO, "could not start a shell job: fork: %s", strerror(rep.value));
    }
    if (have_report && rep.kind == REPORT_STATUS && WIFEXITED(rep.value)) {
        res->exit_code = WEXITSTATUS(rep.value);
        res->signal = 0;
        return 0;
    }
    if (have_report && rep.kind == REPORT_STATUS && WIFSIGNALED(rep.value)) {
        res->exit_code = -1;
        res->signal = WTERMSIG(rep.value);
        return 0;
    }
    if (kill_at != 0) {
        /* We asked for the kill and then had to do it ourselves. */
        res->exit_code = -1;
        res->signal = SIGKILL;
        return 0;
    }
    return aj__err(AJ_EIO, "a shell job's supervisor process died without reporting");
}

/* An unlinked in-memory file holding `len` bytes, positioned at its start; -1 with errno. */
static int stdin_file(const char *data, size_t len) {
    int fd = memfd_create("aj-shell-stdin", MFD_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int saved = w < 0 ? errno : EIO;
            close(fd);
            errno = saved;
            return -1;
        }
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int aj__shell_run(const aj__shell_job *job, aj__shell_result *out) {
    json_t *root = NULL;
    json_t *penv = NULL;
    env_list env = {NULL, 0, 0};
    ring r = {NULL, 0, 0, 0};
    shell_spec sp;
    memset(&sp, 0, sizeof sp);
    int outp[2] = {-1, -1};
    int progp[2] = {-1, -1};
    int ctlp[2] = {-1, -1};
    int devnull = -1;
    pid_t sup = -1;
    aj__shell_result res;
    memset(&res, 0, sizeof res);

    int rc = parse_payload(job, &root, &sp.argv_store, &sp.cwd, &penv);
    if (rc == 0) {
        rc = build_env(job, penv, &env);
    }
    if (rc != 0) {
        goto done;
    }
    sp.envp = env.v;
    sp.path = env_get(&env, "PATH");
    if (sp.path == NULL) {
        sp.path = SHELL_DEFAULT_PATH;
    }
    r.p = aj__malloc(AJ__SHELL_OUTPUT_MAX);
    if (r.p == NULL) {
        rc = aj__err(AJ_ENOMEM, "out of memory for a shell job's output");
        goto done;
    }
    if (pipe2(outp, O_CLOEXEC) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctlp) != 0) {
        rc = aj__err(AJ_EIO, "could not start a shell job: pipe: %s", strerror(errno));
        goto done;
    }
    if (job->on_progress != NULL &&
        (pipe2(progp, O_CLOEXEC) != 0 || fcntl(progp[0], F_SETFL, O_NONBLOCK) != 0)) {
        rc = aj__err(AJ_EIO, "could not start a shell job: progress pipe: %s", strerror(errno));
        goto done;
    }
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
        rc = aj__err(AJ_EIO, "could not start a shell job: /dev/null: %s", strerror(errno));
        goto done;
    }
    json_t *jin = json_object_get(root, "stdin");
    if (jin != NULL) {
        /* The payload's "stdin" is the program's standard input, from an anonymous file so
         * that no pipe needs feeding while the output is read. */
        int fd = stdin_file(json_string_value(jin), json_string_length(jin));
        if (fd < 0) {
            rc = aj__err(AJ_EIO, "could not start a shell job: its stdin: %s", strerror(errno));
            goto done;
        }
        close(devnull);
        devnull = fd;
    }
    /* Only our end: the program's stdout must stay blocking. */
    if (fcntl(outp[0], F_SETFL, O_NONBLOCK) != 0) {
        rc = aj__err(AJ_EIO, "could not start a shell job: fcntl: %s", strerror(errno));
        goto done;
    }
    sp.worker_pid = getpid();
    sp.ctl = ctlp[1];
    sp.out_w = outp[1];
    sp.prog_w = progp[1];
    sp.devnull = devnull;
    sup = fork();
    if (sup < 0) {
        rc = aj__err(AJ_EIO, "could not start a shell job: fork: %s", strerror(errno));
        goto done;
    }
    if (sup == 0) {
        supervise(&sp);
    }
    /* Close our copies of the children's ends, so that their closing is seen. */
    close(ctlp[1]);
    ctlp[1] = -1;
    close(outp[1]);
    outp[1] = -1;
    if (progp[1] >= 0) {
        close(progp[1]);
        progp[1] = -1;
    }
    close(devnull);
    devnull = -1;

    rc = watch(job, sup, ctlp[0], outp[0], progp[0], &r, &res);
    reap_supervisor(sup);
    if (rc == 0) {
        rc = build_result(&r, &res);
    }
    if (rc == 0) {
        *out = res;
    }
done:
    if (devnull >= 0) {
        close(devnull);
    }
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0) {
            close(outp[i]);
        }
        if (progp[i] >= 0) {
            close(progp[i]);
        }
        if (ctlp[i] >= 0) {
            close(ctlp[i]);
        }
    }
    aj__free(r.p);
    env_free(&env);
    aj__free(sp.argv_store);
    json_decref(root);
    return rc;
}
