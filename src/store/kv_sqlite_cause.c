/*
 * kv_sqlite_cause.c — turns an SQLite error whose text names the wrong cause into one that names
 * the file and what is wrong with it.
 *
 * SQLite reports the side files of a WAL store by their effect, not their cause: a full disk met
 * while extending the -shm file reads "disk I/O error"; a directory where -wal and -shm cannot be
 * created, or a stale -shm another user left without write permission, reads "attempt to write a
 * readonly database". So after such an error the backend asks here: the system errno SQLite kept
 * (sqlite3_system_errno) tells a full disk, and access(2) on the store, its -wal and -shm files
 * and its directory tells what this user cannot write. Only looks (stat, access, getpwuid_r);
 * changes nothing, so it is safe to call after any failure, from any thread.
 *
 * Layer: src/store, a helper of kv_sqlite.c.
 */
#include "store/kv_sqlite_cause.h"

#include <errno.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

#define CAUSE_PATH_MAX 4096 /* bytes of a store path with its "-wal" or "-shm" suffix */
#define CAUSE_PWBUF 1024    /* bytes getpwuid_r may use to name a file's owner */

/* Appends a sentence to buf, "; " between sentences; a cut-off tail is acceptable. */
static void add(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *buf, size_t n, const char *fmt, ...) {
    size_t used = strlen(buf);
    if (used > 0 && used + 2 < n) {
        memcpy(buf + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= n) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, n - used, fmt, ap);
    va_end(ap);
}

/* "name (uid N)", or "uid N" for a uid without a name. */
static void owner_name(uid_t uid, char *out, size_t n) {
    struct passwd pw, *res = NULL;
    char pwbuf[CAUSE_PWBUF];
    if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res != NULL) {
        snprintf(out, n, "%s (uid %u)", res->pw_name, (unsigned)uid);
    } else {
        snprintf(out, n, "uid %u", (unsigned)uid);
    }
}

/* Says why this user cannot write `path` (the store or one of its side files), if it cannot
 * because it exists without write permission for this user; `hint` says what to do about it
 * (`hint_empty` when the file is empty). Returns 1 when the file is missing (the caller knows
 * whether the directory can hold it). */
static int check_file(const char *path, const char *hint, const char *hint_empty, char *buf,
                      size_t n) {
    struct stat st;
    if (stat(path, &st) != 0) {
        return errno == ENOENT;
    }
    if (access(path, R_OK | W_OK) == 0) {
        return 0;
    }
    if (errno == EROFS) {
        add(buf, n, "'%s' is on a read-only file system", path);
        return 0;
    }
    if (errno == EPERM) {
        /* Not its mode: an immutable or append-only attribute (chattr), which binds root too. */
        add(buf, n, "'%s' may not be written (immutable or append-only: see lsattr)", path);
        return 0;
    }
    char owner[128];
    owner_name(st.st_uid, owner, sizeof owner);
    add(buf, n, "'%s' is not writable by this user (mode 0%03o, owner %s): %s", path,
        (unsigned)(st.st_mode & 07777), owner, st.st_size == 0 ? hint_empty : hint);
    return 0;
}

int kv__sqlite_cause(const char *db_path, int ext_rc, int sys_errno, char *buf, size_t n) {
    if (n == 0) {
        return 0;
    }
    buf[0] = '\0';
    int primary = ext_rc & 0xff;
    if (db_path == NULL || db_path[0] == '\0' ||
        (primary != SQLITE_IOERR && primary != SQLITE_CANTOPEN && primary != SQLITE_READONLY &&
         primary != SQLITE_FULL)) {
        return 0;
    }
    char wal[CAUSE_PATH_MAX], shm[CAUSE_PATH_MAX], dir[CAUSE_PATH_MAX];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    snprintf(shm, sizeof shm, "%s-shm", db_path);
    snprintf(dir, sizeof dir, "%s", db_path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }

    /* A full disk: SQLite keeps the errno only with an I/O error (or a failed open); a plain
     * SQLITE_FULL may as well be max_page_count, whose own message is right. */
    if ((primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN) &&
        (sys_errno == ENOSPC || sys_errno == EDQUOT)) {
        const char *what = sys_errno == ENOSPC ? "no space left on device" : "disk quota exceeded";
        if (ext_rc == SQLITE_IOERR_SHMSIZE || ext_rc == SQLITE_IOERR_SHMMAP ||
            ext_rc == SQLITE_IOERR_SHMOPEN) {
            add(buf, n, "%s extending '%s'", what, shm);
        } else {
            add(buf, n, "%s writing '%s' or '%s'", what, db_path, wal);
        }
        return AJ_EFULL;
    }

    /* What this user cannot write. The -shm first: a stale one is the usual culprit, and it alone
     * is safe to remove (SQLite rebuilds it from the WAL); a -wal may hold committed data. */
    static const char remove[] =
        "remove it while no process uses the store, or fix its permissions";
    static const char fix[] = "fix its permissions or run as its owner";
    check_file(db_path, fix, fix, buf, n);
    int no_shm = check_file(shm, remove, remove, buf, n);
    int no_wal = check_file(
        wal, "fix its permissions (do not remove it: it may hold committed data)", remove, buf, n);
    if ((no_shm || no_wal) && access(dir, W_OK | X_OK) != 0) {
        const char *why =
            errno == EROFS ? "is on a read-only file system" : "is not writable by this user";
        if (no_shm && no_wal) {
            add(buf, n, "cannot create '%s' and '%s': the directory '%s' %s", wal, shm, dir, why);
        } else {
            add(buf, n, "cannot create '%s': the directory '%s' %s", no_wal ? wal : shm, dir, why);
        }
    }
    if (buf[0] != '\0') {
        return AJ_EIO;
    }
    if (sys_errno != 0 && (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN)) {
        add(buf, n, "the system reported '%s' on '%s' or its -wal/-shm file", strerror(sys_errno),
            db_path);
        return AJ_EIO;
    }
    return 0;
}
