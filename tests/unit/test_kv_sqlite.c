/*
 * test_kv_sqlite.c — the SQLite backend's own promises: file modes, the format-version rule,
 * clear errors for a missing directory or a foreign file, a full disk (simulated honestly with
 * PRAGMA max_page_count) and recovery from it, relaxed durability, and another process's commit
 * noticed within milliseconds.
 */
#include "harness.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_vfs.h"
#include "store/kv.h"
#include "util/clock.h"

typedef struct fx {
    char *dir;
    char *path;
    char url[1100];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = aj_test_tmpdir();
    f->path = aj_test_path(f->dir, "kv.db");
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    aj_test_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static void put(kv_store *s, const char *k, const void *v, size_t vl, int want) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_put(t, k, strlen(k), v, vl), 0);
    int rc = kv_commit(t, KV_SYNC, NULL, NULL, NULL);
    if (rc != want) {
        fprintf(stderr, "commit: %s: %s\n", aj_err_name(rc), aj_errmsg());
    }
    assert_int_equal(rc, want);
}

static int get(kv_store *s, const char *k, size_t *vl) {
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    const uint8_t *v;
    int rc = kv_get(t, k, strlen(k), &v, vl);
    kv_abort(t);
    return rc;
}

static int mode_of(const char *path) {
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (int)(sb.st_mode & 0777);
}

static char *read_all(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return p;
}

static void test_file_modes(void **state) {
    fx *f = *state;
    mode_t old = umask(022);
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    put(s, "k", "v", 1, 0);
    char side[1200];
    assert_int_equal(mode_of(f->path), 0600);
    snprintf(side, sizeof side, "%s-wal", f->path);
    assert_int_equal(mode_of(side), 0600);
    snprintf(side, sizeof side, "%s-shm", f->path);
    assert_int_equal(mode_of(side), 0600);
    kv_close(s);
    umask(old);
}

static void test_newer_format_refused(void **state) {
    fx *f = *state;
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    put(s, "k", "v", 1, 0);
    kv_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE meta SET val = 2 WHERE name = 'format_version'", 0, 0, 0),
        SQLITE_OK);
    sqlite3_close(db);
    size_t n1, n2;
    char *before = read_all(f->path, &n1);
    assert_int_equal(kv_open(&s, f->url, NULL), AJ_EFORMAT);
    assert_non_null(strstr(aj_errmsg(), "store format 2 is newer than this aj supports (1)"));
    char *after = read_all(f->path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before);
    free(after);
}

/* Another process holding the write lock past the busy timeout: AJ_EBUSY (retryable), not an
 * I/O error; the store works again once the lock is released. Takes the timeout (10 s). */
static void test_busy(void **state) {
    fx *f = *state;
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    put(s, "k", "v", 1, 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0), SQLITE_OK);
    kv_txn *t;
    assert_int_equal(kv_begin(s, &t), 0);
    assert_int_equal(kv_put(t, "k", 1, "w", 1), 0);
    assert_int_equal(kv_commit(t, KV_SYNC, NULL, NULL, NULL), AJ_EBUSY);
    assert_non_null(strstr(aj_errmsg(), "locked"));
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    put(s, "k", "x", 1, 0);
    kv_close(s);
}

static void test_missing_directory(void **state) {
    fx *f = *state;
    char url[1200];
    snprintf(url, sizeof url, "sqlite:%s/nope/kv.db", f->dir);
    kv_store *s = NULL;
    assert_int_equal(kv_open(&s, url, NULL), AJ_EIO);
    assert_non_null(strstr(aj_errmsg(), url + 7));
    assert_non_null(strstr(aj_errmsg(), "does not exist"));
    assert_null(s);
}

static void test_not_a_database(void **state) {
    fx *f = *state;
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++) {
        fputs("this is not a database. ", fp);
    }
    fclose(fp);
    kv_store *s = NULL;
    assert_int_equal(kv_open(&s, f->url, NULL), AJ_EFORMAT);
    assert_non_null(strstr(aj_errmsg(), "not an aj store"));
}

static int64_t page_count(const char *path) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_disk_full_and_recovery(void **state) {
    fx *f = *state;
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    put(s, "before", "ok", 2, 0);
    size_t big_len = 1 << 20;
    char *big = calloc(1, big_len);
    assert_non_null(big);
    /* The "disk" is exactly as big as the data already there. */
    assert_int_equal(kv_sqlite_max_pages(s, (uint64_t)page_count(f->path)), 0);
    put(s, "big", big, big_len, AJ_EFULL);
    assert_non_null(strstr(aj_errmsg(), "full"));
    size_t vl;
    assert_int_equal(get(s, "big", &vl), AJ_ENOTFOUND);
    assert_int_equal(get(s, "before", &vl), 0);
    /* Space returns: the same commit goes through, and the store is intact. */
    assert_int_equal(kv_sqlite_max_pages(s, 0), 0);
    put(s, "big", big, big_len, 0);
    assert_int_equal(get(s, "big", &vl), 0);
    assert_int_equal(vl, big_len);
    kv_close(s);
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    assert_int_equal(get(s, "before", &vl), 0);
    assert_int_equal(get(s, "big", &vl), 0);
    kv_close(s);
    free(big);
}

static void test_relaxed(void **state) {
    fx *f = *state;
    kv_store *s;
    kv_open_opts opts = {.relaxed = 1};
    assert_int_equal(kv_open(&s, f->url, &opts), 0);
    put(s, "k", "v", 1, 0);
    uint64_t batches = 0, syncs = 9;
    kv_commit_stats(s, &batches, &syncs, NULL, 0);
    assert_int_equal(batches, 1);
    assert_int_equal(syncs, 0); /* synchronous=NORMAL: a commit is not an fsync */
    kv_close(s);
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    size_t vl;
    assert_int_equal(get(s, "k", &vl), 0);
    kv_close(s);
}

static void test_other_process_noticed(void **state) {
    fx *f = *state;
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    put(s, "init", "x", 1, 0);
    kv_close(s);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        kv_store *c;
        int ok = kv_open(&c, f->url, NULL) == 0;
        aj__sleep_ms(200);
        kv_txn *t;
        ok = ok && kv_begin(c, &t) == 0 && kv_put(t, "job", 3, "new", 3) == 0 &&
             kv_commit(t, KV_SYNC, NULL, NULL, NULL) == 0;
        int64_t committed = aj__mono_us(); /* CLOCK_MONOTONIC is shared by processes */
        ok = ok && write(fds[1], &committed, sizeof committed) == sizeof committed;
        kv_close(c);
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    uint64_t seen = kv_change_seq(s);
    size_t vl;
    int64_t woke = 0;
    for (int i = 0; i < 100 && get(s, "job", &vl) != 0; i++) {
        kv_wait_change(s, seen, 5000);
        woke = aj__mono_us();
        seen = kv_change_seq(s);
    }
    assert_int_equal(get(s, "job", &vl), 0);
    int64_t committed = 0;
    assert_int_equal(read(fds[0], &committed, sizeof committed), sizeof committed);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int64_t latency = woke - committed; /* may be negative: seen before the child's ack */
    printf("# another process's commit noticed after %lld us\n", (long long)latency);
    /* The promise is 20 ms; the assertion leaves room for a loaded CI machine. */
    assert_true(latency < 100 * 1000);
    kv_close(s);
}

static void test_backup_errors(void **state) {
    fx *f = *state;
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/nope/copy.db", f->dir);
    assert_int_equal(kv_backup(s, path), AJ_EIO);
    assert_non_null(strstr(aj_errmsg(), path));
    kv_close(s);
}

#define SP_TXNS 64

static atomic_int sp_done;
static int sp_rc[SP_TXNS];

static void sp_done_cb(void *ud, int rc) {
    sp_rc[(intptr_t)ud] = rc;
    atomic_fetch_add(&sp_done, 1);
}

/* A request whose savepoint cannot be released fails with its whole batch: its writes never
 * commit alongside the others' (issue 10, item 12). */
static void test_savepoint_failure_fails_batch(void **state) {
    fx *f = *state;
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    atomic_store(&sp_done, 0);
    /* Queued at once (asynchronous), so batches hold several requests. */
    kv_sqlite_fail_savepoint_at(SP_TXNS / 3);
    for (intptr_t i = 0; i < SP_TXNS; i++) {
        kv_txn *t;
        char a[16], b[16];
        snprintf(a, sizeof a, "a%03d", (int)i);
        snprintf(b, sizeof b, "b%03d", (int)i);
        assert_int_equal(kv_begin(s, &t), 0);
        assert_int_equal(kv_put(t, a, strlen(a), "x", 1), 0);
        assert_int_equal(kv_put(t, b, strlen(b), "y", 1), 0);
        assert_int_equal(kv_commit(t, KV_ASYNC, sp_done_cb, (void *)i, NULL), 0);
    }
    while (atomic_load(&sp_done) < SP_TXNS) {
        aj__sleep_ms(1);
    }
    kv_sqlite_fail_savepoint_at(0);
    int failed = 0;
    for (int i = 0; i < SP_TXNS; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "a%03d", i);
        snprintf(b, sizeof b, "b%03d", i);
        size_t vl;
        int want = sp_rc[i] == 0 ? 0 : AJ_ENOTFOUND;
        failed += sp_rc[i] != 0;
        assert_int_equal(get(s, a, &vl), want);
        assert_int_equal(get(s, b, &vl), want);
    }
    assert_true(failed > 0);
    kv_close(s);
}

/* An fsync that fails at COMMIT leaves the outcome unknown: the caller gets AJ_EIO saying so,
 * and the handle commits nothing more (a later fsync that succeeds would prove nothing); reads
 * go on, and a reopened store works (issue 10, item 12). */
static void test_fsync_failure_at_commit(void **state) {
    fx *f = *state;
    assert_int_equal(aj_fault_vfs_install("-wal"), 0);
    kv_store *s;
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    put(s, "k1", "1", 1, 0);
    aj_fault_vfs_fail_syncs(1);
    put(s, "k2", "2", 1, AJ_EIO);
    assert_int_equal(aj_fault_vfs_syncs_failed(), 1);
    assert_non_null(strstr(aj_errmsg(), "outcome unknown"));
    put(s, "k3", "3", 1, AJ_EIO);
    assert_non_null(strstr(aj_errmsg(), "accepts no more commits"));
    size_t vl;
    assert_int_equal(get(s, "k1", &vl), 0);
    kv_close(s);
    assert_int_equal(kv_open(&s, f->url, NULL), 0);
    assert_int_equal(get(s, "k1", &vl), 0);
    assert_int_equal(get(s, "k3", &vl), AJ_ENOTFOUND);
    put(s, "k4", "4", 1, 0);
    kv_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_format_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_and_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relaxed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_process_noticed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_savepoint_failure_fails_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_at_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
