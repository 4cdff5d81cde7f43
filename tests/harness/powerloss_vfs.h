/*
 * powerloss_vfs.h — simulated power loss under SQLite (powerloss_vfs.c): the writes and syncs of
 * every file opened through the "aj_fault" VFS are recorded, power is cut at a chosen sync, and
 * the files are then rebuilt as a disk would hold them after the reboot.
 */
#ifndef AJ_TEST_POWERLOSS_VFS_H
#define AJ_TEST_POWERLOSS_VFS_H

/* What reaches the disk of the writes made since each file's last sync when power fails. */
typedef enum aj_powerloss_mode {
    AJ_POWERLOSS_DROP = 0, /* none of them */
    AJ_POWERLOSS_TEAR = 1, /* all of them in order, the last one torn: only its first half */
} aj_powerloss_mode;

/* The VFS name to open a store through: "sqlite:PATH?vfs=" AJ_POWERLOSS_VFS. */
#define AJ_POWERLOSS_VFS "aj_fault"

/* Registers the shim (not as the default VFS) and starts recording with power on: every file
 * opened from now on is watched; the contents files have when first opened count as synced.
 * Power is cut when the cut_at-th sync (1-based) is asked for (0: never): that sync and every
 * later write, truncate and sync fail with an I/O error, as in a machine that lost power.
 * Syncs are recorded, not performed: durability is what this shim says it is. 0, or -1. */
int aj_powerloss_start(long cut_at, aj_powerloss_mode mode);
/* Syncs asked for since aj_powerloss_start (those refused after the cut included). */
long aj_powerloss_syncs(void);
/* 1 once power was cut. */
int aj_powerloss_is_cut(void);
/* "Reboots" once every watched file is closed: rewrites each from what was synced (plus, in
 * AJ_POWERLOSS_TEAR, the unsynced writes with the last one torn), removes the files whose
 * directory entry was never synced, and removes the SQLite shared-memory files; then stops
 * watching. 0, or -1 with a message on stderr. */
int aj_powerloss_reboot(void);

#endif
