/*
 * cmd_admin.c — `aj backup PATH` and `aj check`: maintenance of the store itself.
 *
 * backup refuses to overwrite: a backup that silently replaces an older one is how the only good
 * copy gets lost. check reports every problem aj_check() finds and exits 1 when there is one.
 */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "out.h"

/* Bytes of a backup path, and its NUL. */
#define BACKUP_PATH_MAX PATH_MAX

static const char backup_help[] =
    "Usage: aj backup PATH\n"
    "\n"
    "Writes a consistent copy of the store to PATH while it stays in use (workers may keep\n"
    "running). The copy is itself a store: aj --db sqlite:PATH ... reads it. SQLite stores only.\n"
    "Prints nothing ({\"path\":PATH} with --json).\n"
    "\n"
    "The copy is written to PATH.partial in the same directory, synced, and renamed to PATH only\n"
    "when whole: a backup that is killed or fails leaves nothing under PATH. A PATH.partial left\n"
    "by a killed backup is taken over by the next backup to PATH (or remove it by hand).\n"
    "\n"
    "Exit codes: 0 written, 1 store error (or PATH's directory is missing, or another backup is\n"
    "writing PATH right now), 2 bad input: PATH already exists (a backup never overwrites).\n"
    "\n"
    "Example:\n"
    "  aj backup /var/backups/aj-$(date +%F).db\n";

static const char check_help[] =
    "Usage: aj check\n"
    "\n"
    "Verifies every job record against its index entries and every index entry against its\n"
    "record. Prints each problem on its own line, then a summary line\n"
    "(\"checked N records: consistent\" or \"checked N records: K problems\"); with --json one\n"
    "object {\"records\":N,\"consistent\":true|false,\"problems\":[...]}.\n"
    "\n"
    "Exit codes: 0 consistent, 1 problems found (or a store error), 2 bad input.\n"
    "\n"
    "Example:\n"
    "  aj --db sqlite:/var/lib/aj/aj.db check\n";

int cmd_backup(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj backup", backup_help, NULL, "PATH", 1, 1, 0};
    arg_result r;
    int rc = args_parse(c, &spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    const char *path = r.pos[0];
    args_free(&r);
    if (path[0] == '\0') {
        return cli_error(CLI_EXIT_USAGE, "backup PATH is empty");
    }
    if (strlen(path) >= BACKUP_PATH_MAX) {
        return cli_error(CLI_EXIT_USAGE, "backup path is longer than %d bytes",
                         BACKUP_PATH_MAX - 1);
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        return cli_error(CLI_EXIT_USAGE, "backup target '%s' already exists; not overwriting it",
                         path);
    }
    /* Like a store in a missing directory, a backup there is a store error, whatever code the
     * backend would give it. */
    char dir[BACKUP_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *(slash == dir ? slash + 1 : slash) = '\0';
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            return cli_error(CLI_EXIT_ERROR,
                             "cannot back up to '%s': directory '%s' does not exist", path, dir);
        }
    }
    rc = cli_open(c, NULL);
    if (rc != 0) {
        return rc;
    }
    int arc = aj_backup(c->engine, path);
    if (arc != 0) {
        return cli_fail(arc, "cannot back up to '%s'", path);
    }
    if (c->json) {
        return out_json(json_pack("{s:s}", "path", path));
    }
    return CLI_EXIT_OK;
}

typedef struct check_report {
    int json;
    json_t *problems; /* with --json */
    uint64_t n;
} check_report;

static void report_line(void *ud, const char *line) {
    check_report *rep = ud;
    rep->n++;
    if (rep->json) {
        json_array_append_new(rep->problems, out_str_json(line));
    } else {
        printf("%s\n", line);
    }
}

int cmd_check(cli *c, int argc, char **argv) {
    const arg_spec spec = {"aj check", check_help, NULL, NULL, 0, 0, 0};
    int rc = args_parse_flags(c, &spec, argc, argv);
    if (rc != ARGS_PROCEED || (rc = cli_open(c, NULL)) != 0) {
        return rc;
    }
    check_report rep = {c->json, json_array(), 0};
    if (rep.problems == NULL) {
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    uint64_t records = 0;
    int arc = aj_check(c->engine, report_line, &rep, &records);
    if (arc != 0 && arc != AJ_ECORRUPT) {
        json_decref(rep.problems);
        return cli_fail(arc, "cannot check the store");
    }
    int consistent = arc == 0;
    if (c->json) {
        rc = out_json(json_pack("{s:I, s:b, s:o}", "records", (json_int_t)records, "consistent",
                                consistent, "problems", rep.problems));
    } else {
        json_decref(rep.problems);
        if (consistent) {
            printf("checked %" PRIu64 " records: consistent\n", records);
        } else {
            printf("checked %" PRIu64 " records: %" PRIu64 " problem%s\n", records, rep.n,
                   rep.n == 1 ? "" : "s");
        }
    }
    if (rc == 0 && !consistent) {
        rc = cli_error(CLI_EXIT_ERROR, "the store is not consistent: %" PRIu64 " problem%s", rep.n,
                       rep.n == 1 ? "" : "s");
    }
    return rc;
}
