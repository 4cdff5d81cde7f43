/*
 * kv_sqlite_cause.h — names the file-system cause behind an SQLite error (kv_sqlite_cause.c).
 */
#ifndef AJ_KV_SQLITE_CAUSE_H
#define AJ_KV_SQLITE_CAUSE_H

#include <stddef.h>

/* Looks at the file system after SQLite failed on the store `db_path` with the extended result
 * code `ext_rc` and the system error `sys_errno` (sqlite3_system_errno, 0 if none): when the real
 * cause is a full disk or a directory, -wal or -shm file this user cannot write, writes a sentence
 * naming it and the path into buf (always terminated) and returns the AJ_E* code that fits
 * (AJ_EFULL for a full disk, AJ_EIO otherwise). Returns 0, buf set to "", when it finds none. */
int kv__sqlite_cause(const char *db_path, int ext_rc, int sys_errno, char *buf, size_t n);

#endif
