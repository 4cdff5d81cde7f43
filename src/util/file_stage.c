/*
 * file_stage.c — files published whole by rename (see file_stage.h).
 *
 * Why a lock on the temporary name rather than a unique name per writer: a unique name would
 * leave one stray file per killed writer, and nobody could tell a stray file from one a live
 * writer is filling. With one name per final path, the lock says which it is, and the next writer
 * of the same path reuses a stray file. The lock is flock(), which is independent of the POSIX
 * record locks SQLite takes on the same file.
 *
 * Invariant: while a stage is open, s->fd holds the flock of the inode currently named s->tmp.
 * Layer: src/util, depends on nothing above it.
 */
#include "util/file_stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

/* Attempts to lock the temporary name while other writers replace the file under it (each
 * attempt that loses a race sees a new inode); in practice one or two suffice. */
#define STAGE_LOCK_TRIES 8

int aj__stage_open(aj_file_stage *s, const char *path) {
    s->fd = -1;
    int n = snprintf(s->tmp, sizeof s->tmp, "%s%s", path, AJ_STAGE_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof s->tmp) {
        return aj__err(AJ_EINVAL, "path '%s' is too long for its temporary name", path);
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        return aj__err(AJ_EEXISTS, "'%s' already exists", path);
    }
    for (int i = 0; i < STAGE_LOCK_TRIES; i++) {
        int fd = open(s->tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            return aj__err(AJ_EIO, "cannot create '%s': %s", s->tmp, strerror(errno));
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK) {
                return aj__err(AJ_EBUSY, "another process is writing '%s' (its '%s' is locked)",
                               path, s->tmp);
            }
            return aj__err(AJ_EIO, "cannot lock '%s': %s", s->tmp, strerror(e));
        }
        /* The lock holds only if the name still points at the locked inode: a writer that
         * finished between our open and our lock has renamed it to its final path, which must
         * not be emptied. */
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(s->tmp, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            if (ftruncate(fd, 0) != 0) {
                int e = errno;
                close(fd);
                return aj__err(AJ_EIO, "cannot empty '%s': %s", s->tmp, strerror(e));
            }
            s->fd = fd;
            return 0;
        }
        close(fd);
    }
    return aj__err(AJ_EBUSY, "'%s' keeps changing under other writers", s->tmp);
}

/* Syncs the directory holding `path`, so that the rename itself survives a power loss. */
static int sync_dir(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else {
        *(slash == dir ? slash + 1 : slash) = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return aj__err(AJ_EIO, "cannot open directory '%s' to sync it: %s", dir, strerror(errno));
    }
    int rc = 0;
    /* Some file systems cannot sync a directory (EINVAL): they have nothing to sync. */
    if (fsync(fd) != 0 && errno != EINVAL) {
        rc = aj__err(AJ_EIO, "cannot sync directory '%s': %s", dir, strerror(errno));
    }
    close(fd);
    return rc;
}

/* Renames tmp to path unless path exists. RENAME_NOREPLACE where the file system has it, else a
 * hard link (which also never replaces), else a check and a rename (a race window, but only on
 * file systems that offer neither). */
static int rename_noreplace(const char *tmp, const char *path) {
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
        return -1;
    }
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return 0;
    }
    if (errno == EEXIST) {
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(tmp, path);
}

int aj__stage_publish(aj_file_stage *s, const char *path) {
    int rc = 0;
    if (fsync(s->fd) != 0) {
        rc = aj__err(AJ_EIO, "cannot sync '%s': %s", s->tmp, strerror(errno));
    } else if (rename_noreplace(s->tmp, path) != 0) {
        rc = errno == EEXIST
                 ? aj__err(AJ_EEXISTS, "'%s' already exists", path)
                 : aj__err(AJ_EIO, "cannot rename '%s' to '%s': %s", s->tmp, path, strerror(errno));
    }
    if (rc != 0) {
        aj__stage_abort(s);
        return rc;
    }
    close(s->fd);
    s->fd = -1;
    rc = sync_dir(path);
    if (rc != 0) {
        /* An error leaves nothing under the final name: a caller that is told "failed" and
         * finds a file there could not tell whether to trust it. */
        unlink(path);
    }
    return rc;
}

void aj__stage_abort(aj_file_stage *s) {
    if (s->fd < 0) {
        return;
    }
    /* Still locked by us, so the name is ours to remove. */
    unlink(s->tmp);
    close(s->fd);
    s->fd = -1;
}
