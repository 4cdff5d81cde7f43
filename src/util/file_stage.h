/*
 * file_stage.h — a file written whole or not at all: under a temporary name beside its final
 * path (PATH + AJ_STAGE_SUFFIX), synced, then renamed into place without replacing anything, and
 * the directory synced. A process killed on the way leaves only the temporary file, never a
 * partial file under the final name.
 *
 * The temporary name is locked (flock) while in use: a second writer of the same PATH is refused
 * at once, and a file left by a killed writer (whose lock died with it) is taken over and emptied
 * by the next one, so it never blocks anything.
 */
#ifndef AJ_UTIL_FILE_STAGE_H
#define AJ_UTIL_FILE_STAGE_H

#include <limits.h>

/* Appended to the final path to name the temporary file. */
#define AJ_STAGE_SUFFIX ".partial"

typedef struct aj_file_stage {
    char tmp[PATH_MAX]; /* the temporary file's path */
    int fd;             /* open on tmp and holding its lock; -1 when not staged */
} aj_file_stage;

/* Creates or takes over PATH's temporary file (mode 0600), empty and locked. AJ_EEXISTS when
 * PATH exists, AJ_EBUSY when another process is writing the same temporary file, AJ_EINVAL when
 * the name is too long, AJ_EIO otherwise. The caller writes tmp (through its own descriptors,
 * which it closes before publishing) and then calls aj__stage_publish or aj__stage_abort. */
int aj__stage_open(aj_file_stage *s, const char *path);
/* Syncs the temporary file, renames it to PATH (AJ_EEXISTS, nothing replaced, if PATH appeared
 * meanwhile), syncs the directory and releases the stage. On failure the temporary file is
 * removed. */
int aj__stage_publish(aj_file_stage *s, const char *path);
/* Removes the temporary file and releases the stage. Accepts a stage that is not open. */
void aj__stage_abort(aj_file_stage *s);

#endif
