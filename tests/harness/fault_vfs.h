/*
 * fault_vfs.h — an SQLite VFS shim that fails chosen fsyncs and writes (fault_vfs.c).
 */
#ifndef AJ_TEST_FAULT_VFS_H
#define AJ_TEST_FAULT_VFS_H

/* Makes the shim SQLite's default VFS (once) and arms it for files whose names end with
 * `suffix` (e.g. "-wal"). 0, or -1 when SQLite has no default VFS. */
int aj_fault_vfs_install(const char *suffix);
/* The next n syncs of armed files fail with SQLITE_IOERR_FSYNC (0: none). */
void aj_fault_vfs_fail_syncs(int n);
/* The next n writes of armed files fail with SQLITE_IOERR_WRITE (0: none). */
void aj_fault_vfs_fail_writes(int n);
/* Syncs failed so far. */
int aj_fault_vfs_syncs_failed(void);

#endif
