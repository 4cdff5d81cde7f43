/*
 * powerloss_vfs.c — simulated power loss for SQLite, in the manner of SQLite's own crash tests
 * (test6.c): hooks on the forwarding shim of fault_vfs.c record, per file, what a disk would hold
 * if power failed now, and cut power at a chosen sync.
 *
 * Model. Each watched file has a durable image: its bytes as of its last sync. Writes and
 * truncates go to the real file at once (so reads see them, like the page cache) and are also
 * queued, in the global order they happened; a sync of a file applies that file's queued
 * operations to its image. fsync is per file: a sync of the WAL makes nothing of the database
 * file durable, and the reverse. A directory entry is durable once the directory was synced
 * after the file appeared: SQLite's unix VFS syncs the directory at the first sync of a journal
 * or WAL it opened with SQLITE_OPEN_CREATE, so that first sync marks every file of its directory;
 * a file first seen empty counts as new (not yet in the directory), one first seen with content
 * as old and durable. Deletes are taken as durable.
 *
 * Power is cut at the Nth sync asked for: that sync and every later write, truncate and sync fail
 * with an I/O error, so nothing more is acknowledged. aj_powerloss_reboot() then rewrites each
 * file from its image — in AJ_POWERLOSS_TEAR mode after applying the queued writes in order with
 * the last one cut in half (whole 512-byte sectors where it has two or more) — removes files
 * whose directory entry was never synced and the -shm files (shared memory, rebuilt by SQLite).
 * Real fsyncs are skipped: the model decides what is durable, and the runs stay fast.
 *
 * Layer: tests/harness; uses fault_vfs.c's hooks, one watched file state per path.
 */
#include "powerloss_vfs.h"

#include "fault_vfs.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PL_FILES_MAX 16  /* distinct files watched at once (a store uses three) */
#define PL_SECTOR 512    /* a torn write keeps whole sectors of this size */
#define PL_NAME_MAX 1024 /* bytes in a watched file's path */

typedef struct pl_file {
    char name[PL_NAME_MAX];
    unsigned char *img; /* durable contents */
    size_t len, cap;
    int in_dir;  /* its directory entry is durable */
    int main_db; /* a main database: its -shm goes at reboot */
} pl_file;

typedef struct pl_handle {
    pl_file *f;
    int dirsync; /* the next successful sync also syncs the directory */
} pl_handle;

typedef struct pl_op {
    pl_file *f;
    sqlite3_int64 off; /* a write's offset, or a truncate's new size */
    int n;             /* a write's length; -1: a truncate */
    unsigned char *data;
} pl_op;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pl_file files[PL_FILES_MAX];
static int n_files;
static pl_op *ops; /* unsynced operations of every file, oldest first */
static size_t n_ops, cap_ops;
static long syncs, cut_at;
static int cut;
static aj_powerloss_mode mode;
static int failed; /* out of memory or too many files: the run cannot be trusted */

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) {
        return 0;
    }
    size_t c = *cap != 0 ? *cap : 16;
    while (c < need) {
        c *= 2;
    }
    void *q = realloc(*p, c * size);
    if (q == NULL) {
        return -1;
    }
    *p = q;
    *cap = c;
    return 0;
}

/* Applies one operation to an image; `n` may be shorter than op->n (a torn write). */
static int apply(pl_file *f, const pl_op *op, int n) {
    if (op->n < 0) {
        if ((size_t)op->off < f->len) {
            f->len = (size_t)op->off;
        }
        return 0;
    }
    size_t end = (size_t)op->off + (size_t)n;
    void *img = f->img;
    if (grow(&img, &f->cap, end, 1) != 0) {
        return -1;
    }
    f->img = img;
    if ((size_t)op->off > f->len) {
        memset(f->img + f->len, 0, (size_t)op->off - f->len);
    }
    memcpy(f->img + op->off, op->data, (size_t)n);
    if (end > f->len) {
        f->len = end;
    }
    return 0;
}

static size_t dir_len(const char *name) {
    const char *slash = strrchr(name, '/');
    return slash != NULL ? (size_t)(slash - name) : 0;
}

static pl_file *file_find(const char *name) {
    for (int i = 0; i < n_files; i++) {
        if (strcmp(files[i].name, name) == 0) {
            return &files[i];
        }
    }
    return NULL;
}

/* A file first seen: its image is what it holds now. */
static pl_file *file_add(const char *name, int flags) {
    if (n_files == PL_FILES_MAX || strlen(name) >= PL_NAME_MAX) {
        return NULL;
    }
    pl_file *f = &files[n_files];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    FILE *in = fopen(name, "rb");
    if (in != NULL) {
        unsigned char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
            pl_op op = {f, (sqlite3_int64)f->len, (int)got, buf};
            if (apply(f, &op, (int)got) != 0) {
                fclose(in);
                return NULL;
            }
        }
        fclose(in);
    }
    f->in_dir = f->len > 0;
    n_files++;
    return f;
}

static void *h_open(const char *name, int flags) {
    pthread_mutex_lock(&mu);
    pl_file *f = file_find(name);
    if (f == NULL) {
        f = file_add(name, flags);
    }
    pl_handle *h = f != NULL ? calloc(1, sizeof *h) : NULL;
    if (h == NULL) {
        failed = 1;
    } else {
        h->f = f;
        h->dirsync =
            (flags & SQLITE_OPEN_CREATE) != 0 &&
            (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL)) != 0;
    }
    pthread_mutex_unlock(&mu);
    return h;
}

static void h_close(void *file) {
    free(file);
}

static int queue_op(pl_file *f, sqlite3_int64 off, int n, const void *p) {
    void *o = ops;
    if (grow(&o, &cap_ops, n_ops + 1, sizeof *ops) != 0) {
        return -1;
    }
    ops = o;
    unsigned char *data = NULL;
    if (n >= 0) {
        data = malloc((size_t)n + 1);
        if (data == NULL) {
            return -1;
        }
        memcpy(data, p, (size_t)n);
    }
    ops[n_ops++] = (pl_op){f, off, n, data};
    return 0;
}

static int h_write(void *file, sqlite3_file *real, const void *p, int n, sqlite3_int64 off) {
    pl_handle *h = file;
    pthread_mutex_lock(&mu);
    int rc = cut ? SQLITE_IOERR_WRITE : real->pMethods->xWrite(real, p, n, off);
    if (rc == SQLITE_OK && queue_op(h->f, off, n, p) != 0) {
        failed = 1;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int h_truncate(void *file, sqlite3_file *real, sqlite3_int64 size) {
    pl_handle *h = file;
    pthread_mutex_lock(&mu);
    int rc = cut ? SQLITE_IOERR_TRUNCATE : real->pMethods->xTruncate(real, size);
    if (rc == SQLITE_OK && queue_op(h->f, size, -1, NULL) != 0) {
        failed = 1;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int h_sync(void *file, sqlite3_file *real, int flags) {
    (void)real;
    (void)flags;
    pl_handle *h = file;
    pthread_mutex_lock(&mu);
    syncs++;
    if (cut_at > 0 && syncs >= cut_at) {
        cut = 1;
    }
    int rc = SQLITE_OK;
    if (cut) {
        rc = SQLITE_IOERR_FSYNC;
    } else {
        /* The file's queued operations become durable; the others keep their order. */
        size_t kept = 0;
        for (size_t i = 0; i < n_ops; i++) {
            if (ops[i].f == h->f) {
                if (apply(h->f, &ops[i], ops[i].n) != 0) {
                    failed = 1;
                }
                free(ops[i].data);
            } else {
                ops[kept++] = ops[i];
            }
        }
        n_ops = kept;
        if (h->dirsync) {
            h->dirsync = 0;
            size_t dl = dir_len(h->f->name);
            for (int i = 0; i < n_files; i++) {
                if (dir_len(files[i].name) == dl && strncmp(files[i].name, h->f->name, dl) == 0) {
                    files[i].in_dir = 1;
                }
            }
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static void h_deleted(const char *name) {
    pthread_mutex_lock(&mu);
    pl_file *f = file_find(name);
    if (f != NULL) {
        f->len = 0;
        f->in_dir = 0;
        size_t kept = 0;
        for (size_t i = 0; i < n_ops; i++) {
            if (ops[i].f == f) {
                free(ops[i].data);
            } else {
                ops[kept++] = ops[i];
            }
        }
        n_ops = kept;
    }
    pthread_mutex_unlock(&mu);
}

static void forget(void) {
    for (size_t i = 0; i < n_ops; i++) {
        free(ops[i].data);
    }
    free(ops);
    ops = NULL;
    n_ops = cap_ops = 0;
    for (int i = 0; i < n_files; i++) {
        free(files[i].img);
    }
    n_files = 0;
    syncs = 0;
    cut = 0;
    failed = 0;
}

int aj_powerloss_start(long at, aj_powerloss_mode m) {
    if (aj_fault_vfs_register(0) != 0) {
        return -1;
    }
    static const aj_vfs_hooks pl_hooks = {h_open, h_close, h_write, h_truncate, h_sync, h_deleted};
    pthread_mutex_lock(&mu);
    forget();
    cut_at = at;
    mode = m;
    pthread_mutex_unlock(&mu);
    aj_fault_vfs_set_hooks(&pl_hooks);
    return 0;
}

long aj_powerloss_syncs(void) {
    pthread_mutex_lock(&mu);
    long n = syncs;
    pthread_mutex_unlock(&mu);
    return n;
}

int aj_powerloss_is_cut(void) {
    pthread_mutex_lock(&mu);
    int c = cut;
    pthread_mutex_unlock(&mu);
    return c;
}

/* The torn length of a write of n bytes: half of it, in whole sectors when it spans two. */
static int torn_len(int n) {
    int half = n / 2;
    return n >= 2 * PL_SECTOR ? half - half % PL_SECTOR : half;
}

static int rewrite(const pl_file *f) {
    if (!f->in_dir) {
        return unlink(f->name) == 0 || access(f->name, F_OK) != 0 ? 0 : -1;
    }
    FILE *out = fopen(f->name, "wb");
    if (out == NULL) {
        return -1;
    }
    int rc = f->len > 0 && fwrite(f->img, 1, f->len, out) != f->len ? -1 : 0;
    return fclose(out) != 0 ? -1 : rc;
}

int aj_powerloss_reboot(void) {
    aj_fault_vfs_set_hooks(NULL);
    pthread_mutex_lock(&mu);
    int rc = failed ? -1 : 0;
    if (failed) {
        fprintf(stderr, "powerloss: out of memory or more than %d files\n", PL_FILES_MAX);
    }
    if (rc == 0 && mode == AJ_POWERLOSS_TEAR) {
        size_t last = n_ops;
        for (size_t i = 0; i < n_ops; i++) {
            if (ops[i].n >= 0) {
                last = i;
            }
        }
        for (size_t i = 0; i < n_ops && rc == 0; i++) {
            rc = apply(ops[i].f, &ops[i], i == last ? torn_len(ops[i].n) : ops[i].n);
        }
    }
    for (int i = 0; i < n_files && rc == 0; i++) {
        rc = rewrite(&files[i]);
        if (rc != 0) {
            fprintf(stderr, "powerloss: cannot rewrite '%s'\n", files[i].name);
        }
        char shm[PL_NAME_MAX + 8];
        snprintf(shm, sizeof shm, "%.*s-shm", PL_NAME_MAX - 1, files[i].name);
        if (rc == 0 && files[i].main_db && unlink(shm) != 0 && access(shm, F_OK) == 0) {
            fprintf(stderr, "powerloss: cannot remove '%s'\n", shm);
            rc = -1;
        }
    }
    forget();
    cut_at = 0;
    pthread_mutex_unlock(&mu);
    return rc;
}
