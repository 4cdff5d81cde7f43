/*
 * fault_vfs.h — an SQLite VFS shim that fails chosen fsyncs and writes (fault_vfs.c).
 */
#ifndef AJ_TEST_FAULT_VFS_H
#define AJ_TEST_FAULT_VFS_H

#include <sqlite3.h>

/* Calls another shim takes over, file by file. open() sees every named file the shim opens and
 * returns its own state for it, or NULL to leave the file alone; the other hooks get that state
 * and the real file, and make the real call themselves (or refuse it). deleted() sees names
 * removed through the VFS. All are called from any thread. */
typedef struct aj_vfs_hooks {
    void *(*open)(const char *name, int flags);
    void (*close)(void *file);
    int (*write)(void *file, sqlite3_file *real, const void *p, int n, sqlite3_int64 off);
    int (*truncate)(void *file, sqlite3_file *real, sqlite3_int64 size);
    int (*sync)(void *file, sqlite3_file *real, int flags);
    void (*deleted)(const char *name);
} aj_vfs_hooks;

/* Registers the shim as "aj_fault" (once; again to change whether it is the default VFS). 0, or
 * -1 when SQLite has no default VFS to wrap. */
int aj_fault_vfs_register(int make_default);
/* Sets the hooks (NULL: none) for files opened from now on. Change them only while no file the
 * shim opened is open. */
void aj_fault_vfs_set_hooks(const aj_vfs_hooks *h);

/* Makes the shim SQLite's default VFS (once) and arms it for files whose names end with
 * `suffix` (e.g. "-wal"). 0, or -1 when SQLite has no default VFS. */
int aj_fault_vfs_install(const char *suffix);
/* The next n syncs of armed files fail with SQLITE_IOERR_FSYNC (0: none). */
void aj_fault_vfs_fail_syncs(int n);
/* The next n writes of armed files fail with SQLITE_IOERR_WRITE (0: none). */
void aj_fault_vfs_fail_writes(int n);
/* The SQLite code failed writes return from now on: SQLITE_IOERR_WRITE (the default) or, to
 * model a full disk the way SQLite's unix VFS reports ENOSPC, SQLITE_FULL. */
void aj_fault_vfs_write_error(int sqlite_code);
/* Syncs failed so far. */
int aj_fault_vfs_syncs_failed(void);
/* Writes failed so far. */
int aj_fault_vfs_writes_failed(void);

#endif
