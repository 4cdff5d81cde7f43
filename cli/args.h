/*
 * args.h — the command-line parser every `aj` command shares.
 *
 * A command declares its flags in a table; args_parse() walks its arguments once, taking the
 * global flags (--db, --json, --help/-h, --version) wherever they appear, the command's own flags
 * as `--flag VALUE` or `--flag=VALUE`, and positional arguments. `--` ends option parsing.
 * A VALUE that is itself a flag of the command (`--type --queue q`) is taken as a missing value;
 * `--flag=VALUE` passes any value.
 * --help wins over every error on the line, so `aj submit --bogus --help` still shows help.
 */
#ifndef AJ_CLI_ARGS_H
#define AJ_CLI_ARGS_H

#include <stddef.h>

#include "cli.h"

/* args_parse() returns this when the command should go on; any other value is the exit code to
 * return at once (0 after printing help or the version, 2 after printing a usage error). */
#define ARGS_PROCEED (-1)

typedef struct arg_flag {
    const char *name;  /* "--queue" */
    const char **text; /* a flag with a value: where the value goes (NULL until given) */
    int *set;          /* a flag without a value: set to 1 when given */
} arg_flag;

typedef struct arg_spec {
    const char *cmd;       /* "aj submit", for messages */
    const char *help;      /* printed to stdout by --help */
    const arg_flag *flags; /* terminated by an entry whose name is NULL; may be NULL */
    const char *pos_name;  /* what a positional argument is ("ID"); NULL: none allowed */
    size_t min_pos;        /* fewest positional arguments */
    size_t max_pos;        /* most positional arguments; 0 with pos_name set: no limit */
    int rest_after_dashes; /* 1: arguments after `--` go to `rest`, not to the positionals */
} arg_spec;

typedef struct arg_result {
    const char **pos; /* positional arguments (into argv); owned, free with args_free() */
    size_t n_pos;
    const char **rest; /* with rest_after_dashes: the arguments after `--` (into argv) */
    size_t n_rest;
    int dashes; /* 1 when `--` was given */
} arg_result;

/* A repeatable flag (`--pass-env A --pass-env B`): removes every `FLAG VALUE` and `FLAG=VALUE`
 * before `--` from argv (the rest shift down, *argc is updated) and stores the values in order
 * in values[0..*n) (pointers into argv; `values` has room for *argc entries). Call it before
 * args_parse(). A FLAG whose next word is missing or a flag is left in argv: list FLAG in the
 * command's flag table too, so that args_parse() reports its missing value (after --help). */
void args_take_repeated(const char *flag, int *argc, char **argv, const char **values, size_t *n);

/* Parses argv[0..argc) for the command `spec`, storing global flags in `c`. */
int args_parse(cli *c, const arg_spec *spec, int argc, char **argv, arg_result *out);
void args_free(arg_result *r);
/* args_parse for a command whose one positional argument is a job id (spec->max_pos 1): parses
 * it into *id. Returns ARGS_PROCEED, or the exit code to return at once (a bad id is a usage
 * error, reported as cli_parse_id does). */
int args_parse_id(cli *c, const arg_spec *spec, int argc, char **argv, uint64_t *id);
/* args_parse for a command that takes flags only (spec->pos_name NULL). Returns ARGS_PROCEED, or
 * the exit code to return at once. */
int args_parse_flags(cli *c, const arg_spec *spec, int argc, char **argv);
/* args_parse for a command whose positional arguments are all names (spec->min_pos ==
 * spec->max_pos of them, a workflow id, a signal name...): out[i] is the i-th, checked with
 * aj_name_check(what[i]) in order. Returns ARGS_PROCEED, or the exit code to return at once (a
 * bad name is a usage error naming the problem). */
int args_parse_names(cli *c, const arg_spec *spec, int argc, char **argv, const char *const *what,
                     const char **out);

/* Prints "aj: MESSAGE (see 'CMD --help')" as one line and returns CLI_EXIT_USAGE. */
int args_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 if `arg` is a global flag; *takes_value is set when its value is the next argument. */
int args_is_global(const char *arg, int *takes_value);
/* Applies a global flag (`value`: the next argument when it takes one) to `c`, and records
 * --help and --version in *help and *version. */
void args_apply_global(cli *c, const char *arg, const char *value, int *help, int *version);
/* 1 if `arg` is `--`, a global flag or one of `flags` (NULL: none), with or without =VALUE.
 * Such a word where a flag's value should be means the value is missing. */
int args_is_flag_word(const arg_flag *flags, const char *arg);
/* Prints the version ("aj 0.1.0", or JSON) and returns CLI_EXIT_OK. */
int args_print_version(const cli *c);

#endif
