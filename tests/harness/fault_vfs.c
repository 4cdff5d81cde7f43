/*
 * fault_vfs.c — an SQLite VFS shim for tests: it wraps the default VFS, forwards every call, and
 * fails the ones a test arms — fsyncs (SQLITE_IOERR_FSYNC) or writes (SQLITE_IOERR_WRITE, or
 * SQLITE_FULL for a full disk) of the files whose names end with a given suffix ("-wal", ".db").
 * The way SQLite's own test suite injects I/O faults (test6.c), without a hook in the code under
 * test.
 *
 * aj_fault_vfs_install() registers it as the default VFS, so every connection opened afterwards
 * goes through it; aj_fault_vfs_register(0) registers it by name only ("aj_fault", for a store URL
 * "sqlite:PATH?vfs=aj_fault"). Another test shim (powerloss_vfs.c) takes over writes, truncates and
 * syncs through aj_fault_vfs_set_hooks() instead of repeating this forwarding layer. Counters are
 * atomics: the committer thread does the I/O.
 */
#include "fault_vfs.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct fault_file {
    sqlite3_file base;
    int armed_name;             /* the file's name matched the suffix when it was opened */
    void *hooked;               /* what hooks.open returned for this file, or NULL: no hooks */
    sqlite3_io_methods methods; /* fault_methods with the real file's iVersion */
    sqlite3_file real[];
} fault_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_methods;
static char fault_suffix[32];
static atomic_int fail_syncs;  /* the next N syncs of matching files fail */
static atomic_int fail_writes; /* the next N writes of matching files fail */
static atomic_int syncs_failed;
static atomic_int writes_failed;
static atomic_int write_error = SQLITE_IOERR_WRITE; /* what a failed write returns */
static aj_vfs_hooks hooks; /* set before files are opened, cleared after they are closed */

#define REAL(f) (((fault_file *)(f))->real)

static int take(atomic_int *n) {
    int v = atomic_load(n);
    while (v > 0 && !atomic_compare_exchange_weak(n, &v, v - 1)) {
    }
    return v > 0;
}

static int f_close(sqlite3_file *f) {
    if (((fault_file *)f)->hooked != NULL) {
        hooks.close(((fault_file *)f)->hooked);
    }
    int rc = REAL(f)->pMethods != NULL ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
    if (((fault_file *)f)->armed_name && take(&fail_writes)) {
        atomic_fetch_add(&writes_failed, 1);
        return atomic_load(&write_error);
    }
    if (((fault_file *)f)->hooked != NULL) {
        return hooks.write(((fault_file *)f)->hooked, REAL(f), p, n, off);
    }
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    if (((fault_file *)f)->hooked != NULL) {
        return hooks.truncate(((fault_file *)f)->hooked, REAL(f), size);
    }
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags) {
    if (((fault_file *)f)->armed_name && take(&fail_syncs)) {
        atomic_fetch_add(&syncs_failed, 1);
        return SQLITE_IOERR_FSYNC;
    }
    if (((fault_file *)f)->hooked != NULL) {
        return hooks.sync(((fault_file *)f)->hooked, REAL(f), flags);
    }
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *out) {
    return REAL(f)->pMethods->xFileSize(REAL(f), out);
}
static int f_lock(sqlite3_file *f, int l) {
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l) {
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_check(sqlite3_file *f, int *out) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_fcntl(sqlite3_file *f, int op, void *arg) {
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) {
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_devchar(sqlite3_file *f) {
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shmmap(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shmbarrier(sqlite3_file *f) {
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shmunmap(sqlite3_file *f, int del) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    fault_file *ff = (fault_file *)f;
    memset(ff, 0, sizeof *ff);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    if (rc != SQLITE_OK) {
        return rc;
    }
    size_t n = name != NULL ? strlen(name) : 0, sl = strlen(fault_suffix);
    ff->armed_name = sl > 0 && n >= sl && strcmp(name + n - sl, fault_suffix) == 0;
    /* Only the methods the real file has: SQLite checks iVersion before the shm and mmap ones.
     * Each file has its own copy of the table, since threads open files at once. */
    ff->methods = fault_methods;
    ff->methods.iVersion = ff->real->pMethods->iVersion;
    ff->base.pMethods = &ff->methods;
    ff->hooked = hooks.open != NULL && name != NULL ? hooks.open(name, flags) : NULL;
    return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *v, const char *n, int sync) {
    (void)v;
    if (hooks.deleted != NULL) {
        hooks.deleted(n);
    }
    return real_vfs->xDelete(real_vfs, n, sync);
}
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out) {
    (void)v;
    return real_vfs->xAccess(real_vfs, n, flags, out);
}
static int v_fullpath(sqlite3_vfs *v, const char *n, int size, char *out) {
    (void)v;
    return real_vfs->xFullPathname(real_vfs, n, size, out);
}
static int v_random(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us) {
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *out) {
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return real_vfs->xGetLastError(real_vfs, n, out);
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out) {
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int aj_fault_vfs_register(int make_default) {
    if (real_vfs == NULL) {
        real_vfs = sqlite3_vfs_find(NULL);
        if (real_vfs == NULL) {
            return -1;
        }
        fault_methods = (sqlite3_io_methods){
            3,         f_close,      f_read,     f_write, f_truncate, f_sync,    f_size,
            f_lock,    f_unlock,     f_check,    f_fcntl, f_sector,   f_devchar, f_shmmap,
            f_shmlock, f_shmbarrier, f_shmunmap, f_fetch, f_unfetch};
        fault_vfs = *real_vfs;
        fault_vfs.iVersion = 2;
        fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
        fault_vfs.zName = "aj_fault";
        fault_vfs.pAppData = NULL;
        fault_vfs.xOpen = v_open;
        fault_vfs.xDelete = v_delete;
        fault_vfs.xAccess = v_access;
        fault_vfs.xFullPathname = v_fullpath;
        fault_vfs.xDlOpen = NULL;
        fault_vfs.xDlError = NULL;
        fault_vfs.xDlSym = NULL;
        fault_vfs.xDlClose = NULL;
        fault_vfs.xRandomness = v_random;
        fault_vfs.xSleep = v_sleep;
        fault_vfs.xCurrentTime = v_time;
        fault_vfs.xGetLastError = v_lasterr;
        fault_vfs.xCurrentTimeInt64 = v_time64;
    }
    return sqlite3_vfs_register(&fault_vfs, make_default) == SQLITE_OK ? 0 : -1;
}

void aj_fault_vfs_set_hooks(const aj_vfs_hooks *h) {
    hooks = h != NULL ? *h : (aj_vfs_hooks){0};
}

int aj_fault_vfs_install(const char *suffix) {
    if (aj_fault_vfs_register(1) != 0) {
        return -1;
    }
    snprintf(fault_suffix, sizeof fault_suffix, "%s", suffix);
    return 0;
}

void aj_fault_vfs_fail_syncs(int n) {
    atomic_store(&fail_syncs, n);
}

void aj_fault_vfs_fail_writes(int n) {
    atomic_store(&fail_writes, n);
}

void aj_fault_vfs_write_error(int sqlite_code) {
    atomic_store(&write_error, sqlite_code);
}

int aj_fault_vfs_writes_failed(void) {
    return atomic_load(&writes_failed);
}

int aj_fault_vfs_syncs_failed(void) {
    return atomic_load(&syncs_failed);
}
