/*
 * args.c — the shared command-line parser (see args.h).
 *
 * Parsing never stops at the first problem: the whole line is read so that --help anywhere wins,
 * then the first problem found is reported as one line and the command exits 2 before it touches
 * the store. Values are never copied: they point into argv, which lives as long as the process.
 */
#include "args.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of one usage error message. */
#define ARGS_ERR_MAX 512

int args_usage_error(const char *cmd, const char *fmt, ...) {
    char msg[ARGS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "aj: %s (see '%s --help')\n", msg, cmd);
    return CLI_EXIT_USAGE;
}

int args_is_global(const char *arg, int *takes_value) {
    *takes_value = 0;
    if (strcmp(arg, "--db") == 0) {
        *takes_value = 1;
        return 1;
    }
    return strncmp(arg, "--db=", 5) == 0 || strcmp(arg, "--json") == 0 ||
           strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "--version") == 0;
}

void args_apply_global(cli *c, const char *arg, const char *value, int *help, int *version) {
    if (strncmp(arg, "--db=", 5) == 0) {
        c->db_url = arg + 5;
        c->db_given = 1;
    } else if (strcmp(arg, "--db") == 0) {
        c->db_url = value;
        c->db_given = 1;
    } else if (strcmp(arg, "--json") == 0) {
        c->json = 1;
    } else if (strcmp(arg, "--version") == 0) {
        *version = 1;
    } else {
        *help = 1;
    }
}

int args_print_version(const cli *c) {
    if (c->json) {
        printf("{\"version\":\"%s\"}\n", aj_version());
    } else {
        printf("aj %s\n", aj_version());
    }
    return CLI_EXIT_OK;
}

static const arg_flag *find_flag(const arg_flag *flags, const char *arg, size_t len) {
    for (const arg_flag *f = flags; f != NULL && f->name != NULL; f++) {
        if (strlen(f->name) == len && strncmp(f->name, arg, len) == 0) {
            return f;
        }
    }
    return NULL;
}

int args_is_flag_word(const arg_flag *flags, const char *arg) {
    int takes_value = 0;
    if (strcmp(arg, "--") == 0 || args_is_global(arg, &takes_value)) {
        return 1;
    }
    if (strncmp(arg, "--", 2) != 0) {
        return 0; /* "-1" is a fine payload; no command flag is a single dash */
    }
    const char *eq = strchr(arg, '=');
    return find_flag(flags, arg, eq != NULL ? (size_t)(eq - arg) : strlen(arg)) != NULL;
}

/* Remembers the first problem on the line; later ones are not reported. */
static void note(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(char *err, const char *fmt, ...) {
    if (err[0] != '\0') {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ARGS_ERR_MAX, fmt, ap);
    va_end(ap);
}

/* Reads one flag that is not global, taking its value from `=` or the next argument. */
static void take_flag(const arg_spec *spec, int argc, char **argv, int *i, char *err) {
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    const arg_flag *f = find_flag(spec->flags, arg, len);
    if (f == NULL) {
        note(err, "unknown flag '%.*s' for '%s'", (int)len, arg, spec->cmd);
        return;
    }
    if (f->set != NULL) {
        if (eq != NULL) {
            note(err, "flag '%s' takes no value", f->name);
        }
        *f->set = 1;
        return;
    }
    const char *value = NULL;
    if (eq != NULL) {
        value = eq + 1;
    } else if (*i + 1 < argc && !args_is_flag_word(spec->flags, argv[*i + 1])) {
        *i += 1;
        value = argv[*i];
    } else {
        /* `--type --queue q` forgot the type: taking "--queue" as it would report something
         * else (or, for a free-form value, nothing at all). `--flag=--x` still passes it. */
        note(err, "flag '%s' needs a value", f->name);
        return;
    }
    if (*f->text != NULL) {
        note(err, "flag '%s' given more than once", f->name);
        return;
    }
    *f->text = value;
}

static void check_positionals(const arg_spec *spec, const arg_result *r, char *err) {
    if (spec->pos_name == NULL && r->n_pos > 0) {
        note(err, "unexpected argument '%s' for '%s'", r->pos[0], spec->cmd);
    } else if (r->n_pos < spec->min_pos) {
        note(err, "missing %s for '%s'", spec->pos_name, spec->cmd);
    } else if (spec->max_pos > 0 && r->n_pos > spec->max_pos) {
        note(err, "unexpected argument '%s' for '%s'", r->pos[spec->max_pos], spec->cmd);
    }
}

void args_take_repeated(const char *flag, int *argc, char **argv, const char **values, size_t *n) {
    size_t flen = strlen(flag);
    int kept = 0;
    int i = 0;
    *n = 0;
    for (; i < *argc && strcmp(argv[i], "--") != 0; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, flag, flen) == 0 && arg[flen] == '=') {
            values[(*n)++] = arg + flen + 1;
        } else if (strcmp(arg, flag) == 0 && i + 1 < *argc && argv[i + 1][0] != '-') {
            values[(*n)++] = argv[++i];
        } else {
            argv[kept++] = argv[i];
        }
    }
    for (; i < *argc; i++) {
        argv[kept++] = argv[i];
    }
    *argc = kept;
}

int args_parse(cli *c, const arg_spec *spec, int argc, char **argv, arg_result *out) {
    memset(out, 0, sizeof *out);
    out->pos = calloc((size_t)argc + 1, sizeof *out->pos);
    out->rest = calloc((size_t)argc + 1, sizeof *out->rest);
    if (out->pos == NULL || out->rest == NULL) {
        args_free(out);
        return cli_error(CLI_EXIT_ERROR, "out of memory");
    }
    char err[ARGS_ERR_MAX] = "";
    int help = 0;
    int version = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        int takes_value = 0;
        if (out->dashes) {
            if (spec->rest_after_dashes) {
                out->rest[out->n_rest++] = arg;
            } else {
                out->pos[out->n_pos++] = arg;
            }
        } else if (strcmp(arg, "--") == 0) {
            out->dashes = 1;
        } else if (arg[0] != '-' || arg[1] == '\0') {
            out->pos[out->n_pos++] = arg; /* "-" alone names stdin */
        } else if (args_is_global(arg, &takes_value)) {
            const char *value = NULL;
            if (takes_value && i + 1 < argc && !args_is_flag_word(spec->flags, argv[i + 1])) {
                value = argv[++i];
            } else if (takes_value) {
                note(err, "flag '%s' needs a value", arg);
                continue;
            }
            args_apply_global(c, arg, value, &help, &version);
        } else {
            take_flag(spec, argc, argv, &i, err);
        }
    }
    check_positionals(spec, out, err);
    if (help) {
        fputs(spec->help, stdout);
        args_free(out);
        return CLI_EXIT_OK;
    }
    if (version) {
        args_free(out);
        return args_print_version(c);
    }
    if (err[0] != '\0') {
        args_free(out);
        return args_usage_error(spec->cmd, "%s", err);
    }
    return ARGS_PROCEED;
}

int args_parse_id(cli *c, const arg_spec *spec, int argc, char **argv, uint64_t *id) {
    arg_result r;
    int rc = args_parse(c, spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    rc = cli_parse_id(r.pos[0], id);
    args_free(&r);
    return rc == 0 ? ARGS_PROCEED : rc;
}

int args_parse_flags(cli *c, const arg_spec *spec, int argc, char **argv) {
    arg_result r;
    int rc = args_parse(c, spec, argc, argv, &r);
    if (rc == ARGS_PROCEED) {
        args_free(&r);
    }
    return rc;
}

int args_parse_names(cli *c, const arg_spec *spec, int argc, char **argv, const char *const *what,
                     const char **out) {
    arg_result r;
    int rc = args_parse(c, spec, argc, argv, &r);
    if (rc != ARGS_PROCEED) {
        return rc;
    }
    for (size_t i = 0; i < spec->max_pos; i++) {
        out[i] = r.pos[i]; /* an argv string: it outlives r */
    }
    args_free(&r);
    for (size_t i = 0; i < spec->max_pos; i++) {
        if (aj_name_check(what[i], out[i]) != 0) {
            return cli_error(CLI_EXIT_USAGE, "%s", aj_errmsg());
        }
    }
    return ARGS_PROCEED;
}

void args_free(arg_result *r) {
    free(r->pos);
    free(r->rest);
    r->pos = NULL;
    r->rest = NULL;
    r->n_pos = 0;
    r->n_rest = 0;
}
