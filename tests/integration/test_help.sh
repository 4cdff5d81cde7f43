#!/usr/bin/env bash
# test_help.sh — every command and subcommand has --help (exit 0, usage on stdout, flags, exit
# codes, an example); `aj --version`; help never touches a store; bad command lines exit 2.
source "${AJ_TEST_LIB:?}"

cd "$T" || fail "cannot cd to $T"

for cmd in "" submit worker job "job show" "job wait" "job ls" "job cancel" dlq "dlq ls" \
    "dlq show" "dlq redrive" "dlq purge" "dlq export" stats backup check demo dag "dag submit" \
    "dag show"; do
    # shellcheck disable=SC2086 # $cmd holds the command words
    expect_ok "$AJ_BIN" $cmd --help
    help=$OUT
    expect_match "^Usage: aj ${cmd}" "$help" "aj $cmd --help"
    expect_contains "$help" "Example" "aj $cmd --help"
    case "$cmd" in
    "" | job | dlq | dag) ;;
    *) expect_contains "$help" "Exit codes" "aj $cmd --help" ;;
    esac
    # shellcheck disable=SC2086
    expect_ok "$AJ_BIN" $cmd -h
    expect_eq "$help" "$OUT" "aj $cmd -h"
    # shellcheck disable=SC2086
    expect_ok "$AJ_BIN" help $cmd
    expect_eq "$help" "$OUT" "aj help $cmd"
    # Global flags anywhere: --help before the command words, with --db and --json around.
    # shellcheck disable=SC2086
    expect_ok "$AJ_BIN" --json --help --db "sqlite:$T/nope/x.db" $cmd
    expect_eq "$help" "$OUT" "aj --help $cmd"
done

# The formats are explained where they are used.
expect_ok "$AJ_BIN" submit --help
for word in --queue --type --priority --delay --at --timeout --lease --max-attempts --backoff \
    --idempotency-key --metadata --payload --payload-file --payload-lines --wait critical \
    "fixed:DUR" "exp:INITIAL" "list:DUR" "64 MiB" "default: 5m" "default: 30s" "default: 3" \
    "exp:1s:2:5m"; do
    expect_contains "$OUT" "$word" "aj submit --help"
done
expect_ok "$AJ_BIN" worker --help
for word in --queue --concurrency --drain --shutdown-timeout SIGTERM 60s "other types"; do
    expect_contains "$OUT" "$word" "aj worker --help"
done
expect_ok "$AJ_BIN" --help
for word in "sqlite:aj.db" "mem:" "(exit 1)" "(exit 2)" "1h30m" "36500d" "-+/;.\$_()" "RFC 3339"; do
    expect_contains "$OUT" "$word" "aj --help"
done
for cmd in "job ls" "dlq ls"; do
    # shellcheck disable=SC2086
    expect_ok "$AJ_BIN" $cmd --help
    expect_contains "$OUT" "default: all of them" "aj $cmd --help"
done

# --help wins over other problems on the line and never opens (or creates) a store.
expect_ok "$AJ_BIN" submit --bogus --delay 5 --help
expect_match "^Usage: aj submit" "$OUT" "help despite a bad flag"
expect_ok "$AJ_BIN" job show --help
[ -e "$T/aj.db" ] && fail "--help created a store"

# Version.
expect_ok "$AJ_BIN" --version
expect_eq "aj 0.1.0" "$OUT" "aj --version"
expect_ok "$AJ_BIN" stats --version
expect_eq "aj 0.1.0" "$OUT" "aj stats --version"
expect_ok "$AJ_BIN" --json --version
expect_eq "0.1.0" "$(jget version)" "aj --json --version"

# No command, or a group without its subcommand: bad input like any other, one line naming the
# commands there are.
expect_error 2 "missing command for 'aj': " "$AJ_BIN"
expect_contains "$ERR" "submit, worker, job, dlq, " "bare aj names the commands"
expect_contains "$ERR" "(see 'aj --help')" "bare aj"
expect_error 2 "missing command for 'aj dlq': ls, show, redrive, purge" "$AJ_BIN" dlq
expect_contains "$ERR" "(see 'aj dlq --help')" "bare aj dlq"
expect_error 2 "missing command for 'aj job': show, wait, ls" "$AJ_BIN" --json job
expect_error 2 "unknown command 'frob' for 'aj'" "$AJ_BIN" frob
expect_error 2 "unknown command 'frob' for 'aj job'" "$AJ_BIN" job frob
expect_error 2 "unknown flag '--frob' for 'aj submit' (see 'aj submit --help')" \
    "$AJ_BIN" submit --frob
expect_error 2 "unknown flag '--frob' for 'aj dlq ls'" "$AJ_BIN" dlq ls --frob=1
expect_error 2 "unknown command 'frob' for 'aj'" "$AJ_BIN" help frob
[ -e "$T/aj.db" ] && fail "a usage error created a store"

# Help texts that say what the commands do (QA findings).
expect_ok "$AJ_BIN" submit --help
expect_contains "$OUT" "a cancelled dependency can" "submit --help: --on-dep-failure wait"
expect_ok "$AJ_BIN" dag submit --help
expect_contains "$OUT" "4 conflicting state" "dag submit --help: exit 4"
expect_ok "$AJ_BIN" wf reset --help
expect_contains "$OUT" 'Prints `ID run N`' "wf reset --help: its output"

echo "PASS test_help"
