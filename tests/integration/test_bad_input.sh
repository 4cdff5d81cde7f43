#!/usr/bin/env bash
# test_bad_input.sh — bad input exits 2 with one line "aj: ..." naming the problem and changes
# nothing in the store; an unknown job id exits 3; a store that cannot be reached or written
# exits 1.
source "${AJ_TEST_LIB:?}"

seed=$(submit --type echo --payload '{"seed":true}')
before_counts=$(state_counts)
before_list=$(aj job ls --json --limit 0)

# bad CODE PATTERN ARGS...: `aj ARGS...` fails with CODE and a one-line error with PATTERN.
bad() {
    local code=$1 pattern=$2
    shift 2
    expect_error "$code" "$pattern" aj "$@"
}

# Unknown flags and commands, missing values and arguments.
bad 2 "unknown flag '--bogus' for 'aj submit' (see 'aj submit --help')" submit --type echo --bogus
bad 2 "unknown flag '-x' for 'aj submit'" submit --type echo -x
bad 2 "unknown command 'frobnicate' for 'aj'" frobnicate
bad 2 "unknown command 'frob' for 'aj dlq'" dlq frob
bad 2 "unknown flag '--state' for 'aj dlq ls'" dlq ls --state dead
bad 2 "needs a value" submit --type
# A flag where a value should be means the value is missing; it is never taken as the value.
bad 2 "flag '--type' needs a value" submit --type --queue q
bad 2 "flag '--queue' needs a value" submit --queue --type echo
bad 2 "flag '--idempotency-key' needs a value" submit --type echo --idempotency-key --json
bad 2 "flag '--payload' needs a value" submit --type echo --payload --wait
bad 2 "flag '--type' needs a value" submit --type -- echo hi
bad 2 "flag '--queue' needs a value" job ls --queue --json
bad 2 "flag '--db' needs a value" --db --json stats
bad 2 "flag '--db' needs a value (see 'aj stats --help')" stats --db --json
bad 2 "given more than once" submit --type echo --queue a --queue b
bad 2 "takes no value" submit --type echo --wait=yes
bad 2 "missing ID" job show
bad 2 "unexpected argument" job show 1 2
bad 2 "unexpected argument 'extra'" stats extra
bad 2 "missing --type" submit --payload '{}'
bad 2 "missing --type" submit
bad 2 "missing PROGRAM" submit --
bad 2 "exclude each other" submit --payload '{}' -- echo hi
bad 2 "exclude each other" submit --type echo --payload 1 --payload-file /dev/null
bad 2 "conflicts with '-- PROGRAM'" submit --type echo -- echo hi
bad 2 "exclude each other" submit --type echo --delay 1s --at 2099-01-01T00:00:00Z

# Durations: a bare number, a negative value, an unknown unit, a trailing number.
for d in 5 -5s 5x 1h30 "" 1.5s s 99999999999999999999d; do
    bad 2 "--delay: invalid duration '$d'" submit --type echo --delay "$d"
done
bad 2 "--timeout" submit --type echo --timeout 1y
bad 2 "--timeout" submit --type echo --timeout 0ms
bad 2 "--lease" submit --type echo --lease abc
bad 2 "--at" submit --type echo --at tomorrow
bad 2 "--at" submit --type echo --at 2026-13-01T00:00:00Z

# Priorities, attempts, backoff specs.
for p in urgent -1 4294967296 1.5 ""; do
    bad 2 "--priority: invalid priority '$p'" submit --type echo --priority "$p"
done
for m in 0 1000001 abc -1 ""; do
    bad 2 "--max-attempts" submit --type echo --max-attempts "$m"
done
for b in exp: fixed:5 lin:1s list: fixed "" exp:1s:x; do
    bad 2 "--backoff: invalid backoff '$b'" submit --type echo --backoff "$b"
done

# JSON: invalid payloads name the line and column; metadata must be an object.
bad 2 "line 1, column" submit --type echo --payload '{a:1}'
bad 2 "not valid JSON" submit --type echo --payload '{"a":1'
bad 2 "not valid JSON" submit --type echo --payload ''
bad 2 "not valid JSON" submit --type echo --payload '1 2'
printf '{\n  "a": 1,\n  "b": \n}\n' >"$T/bad.json"
bad 2 "line 4" submit --type echo --payload-file "$T/bad.json"
bad 2 "cannot read --payload-file" submit --type echo --payload-file "$T/missing.json"
bad 2 "--metadata" submit --type echo --metadata '[1]'
bad 2 "--metadata" submit --type echo --metadata '{bad'
bad 2 "argv" submit --type shell --payload '{"x":1}'
bad 2 "argv" submit --type shell --payload '{"argv":[]}'
bad 2 "argv" submit --type shell --payload '{"argv":["ls",1]}'
bad 2 "env" submit --type shell --payload '{"argv":["ls"],"env":{"A":1}}'
bad 2 "cwd" submit --type shell --payload '{"argv":["ls"],"cwd":7}'

# Payload over the limit (64 MiB).
perl -e 'print "\"", "a" x (67108864 - 1), "\""' >"$T/big.json"
bad 2 "payload is 67108865 bytes, over the 64 MiB limit" submit --type echo --payload-file "$T/big.json"

# Names outside the allowed characters or lengths.
long=$(printf 'q%.0s' $(seq 201))
for q in "a b" "-x" "" "é" "a,b" "$long" 'a"b' "a:b"; do
    bad 2 "queue" submit --type echo --queue "$q"
done
bad 2 "type" submit --type "x y"
bad 2 "type" submit --type ""
bad 2 "queue" job ls --queue "a b"
bad 2 "queue" worker --queue "a b"
bad 2 "queue" worker --queue "a,,b"
bad 2 "--idempotency-key" submit --type echo --idempotency-key ""
bad 2 "--idempotency-key" submit --type echo --idempotency-key "$(printf 'k%.0s' $(seq 257))"

# Ids, states, reasons, limits.
for i in abc 0 12x " 1" 1.0 18446744073709551616; do
    bad 2 "job id '$i' is not a positive decimal integer" job show "$i"
done
bad 2 "unknown flag '-1'" job show -1
bad 2 "--state 'bogus'" job ls --state bogus
bad 2 "--limit" job ls --limit x
bad 2 "--reason 'bogus'" dlq ls --reason bogus
bad 2 "--older-than" dlq ls --older-than 5
bad 2 "missing ID (or --all)" dlq redrive
bad 2 "not both" dlq redrive 1 --all
bad 2 "only with --all" dlq purge 1 --queue q
bad 2 "--concurrency" worker --concurrency 0
bad 2 "--concurrency" worker --concurrency 1025
bad 2 "--shutdown-timeout" worker --shutdown-timeout 5
bad 2 "--timeout" job wait "$seed" --timeout forever
bad 2 "--timeout: invalid duration '5'" job wait "$seed" --timeout 5
bad 2 "--jobs" demo --jobs -1
expect_error 2 "store URL" "$AJ_BIN" --db "$T/no-scheme.db" stats
[ -e "$T/no-scheme.db" ] && fail "a URL without a scheme created a file"
# Every malformed URL is bad input alike, whether the CLI or the library finds it.
for url in mem redis://x "foo:$T/x.db" sqlite: mem:x "" "postgres://h:notaport/db" \
    "postgres://h/db?aj_pool=0" "postgres://h/db?aj_nosuch=1"; do
    expect_error 2 "store URL" "$AJ_BIN" --db "$url" stats
done
# A PostgreSQL server that is down is a store error (exit 1) naming the reason, not bad input.
expect_error 1 "cannot connect to PostgreSQL (database db at 127.0.0.1:1" "$AJ_BIN" \
    --db postgres://127.0.0.1:1/db stats
expect_error 2 "store URL" env AJ_DB=bogus "$AJ_BIN" job ls

# Values the library would refuse only after opening the store are refused before it, so a
# store that did not exist is not created by bad input.
fresh="sqlite:$T/fresh.db"
expect_error 2 "--delay '36501d' is longer than 36500d (100 years)" \
    "$AJ_BIN" --db "$fresh" submit --type echo --delay 36501d
expect_error 2 "--lease '106751991167d' is longer than 36500d" \
    "$AJ_BIN" --db "$fresh" submit --type echo --lease 106751991167d
expect_error 2 "--lease '999ms' is shorter than the minimum lease, 1s" \
    "$AJ_BIN" --db "$fresh" submit --type echo --lease 999ms
expect_error 2 "--timeout '9223372036854775807ms' is longer" \
    "$AJ_BIN" --db "$fresh" submit --type echo --timeout 9223372036854775807ms
expect_error 2 "--shutdown-timeout '36501d' is longer" \
    "$AJ_BIN" --db "$fresh" worker --shutdown-timeout 36501d
expect_error 2 "--at '1969-12-31T23:59:59Z' is before 1970" \
    "$AJ_BIN" --db "$fresh" submit --type echo --at 1969-12-31T23:59:59Z
expect_error 2 "--older-than '36501d' is longer" "$AJ_BIN" --db "$fresh" dlq ls --older-than 36501d
expect_error 2 "backup PATH is empty" "$AJ_BIN" --db "$fresh" backup ""
[ -e "$T/fresh.db" ] && fail "bad input created the store"

# Nothing changed.
expect_eq "$before_counts" "$(state_counts)" "job counts after bad input"
expect_eq "$before_list" "$(aj job ls --json --limit 0)" "jobs after bad input"

# Unknown ids: exit 3, "job N not found".
for cmd in "job show" "job cancel" "job wait" "dlq show" "dlq redrive" "dlq purge"; do
    # shellcheck disable=SC2086
    bad 3 "job 987654321 not found" $cmd 987654321
done

# A missing directory: exit 1, and the directory is not created.
expect_error 1 "$T/nope/aj.db" "$AJ_BIN" --db "sqlite:$T/nope/aj.db" submit --type echo
[ -e "$T/nope" ] && fail "a missing directory was created"
expect_error 1 "cannot open store" "$AJ_BIN" --db "sqlite:$T/nope/aj.db" stats

# Something that is not a store: a directory, a file that is not a database.
expect_error 1 "cannot open store" "$AJ_BIN" --db "sqlite:$T" submit --type echo
head -c 8192 /dev/urandom >"$T/garbage.db"
cp "$T/garbage.db" "$T/garbage.copy"
run "$AJ_BIN" --db "sqlite:$T/garbage.db" submit --type echo
expect_eq 1 "$RC" "submit to a file that is not a database"
expect_eq 1 "$(printf '%s\n' "$ERR" | wc -l)" "one error line for a file that is not a database"
cmp -s "$T/garbage.db" "$T/garbage.copy" || fail "a file that is not a database was changed"

# An unwritable store (not testable as root, who may write anything).
if [ "$(id -u)" != 0 ]; then
    mkdir "$T/ro"
    "$AJ_BIN" --db "sqlite:$T/ro/aj.db" submit --type echo >/dev/null || fail "setup submit"
    chmod 0400 "$T/ro/aj.db"
    chmod 0500 "$T/ro"
    expect_exit 1 "$AJ_BIN" --db "sqlite:$T/ro/aj.db" submit --type echo
    expect_eq 1 "$(printf '%s\n' "$ERR" | wc -l)" "one error line for an unwritable store"
    chmod 0700 "$T/ro"
    chmod 0600 "$T/ro/aj.db"
fi

# An unwritable store as root: an immutable file (where the file system and capabilities allow
# it; lib.sh clears the flag before it removes $T). Reading still works; writing exits 1 with
# one line and changes nothing.
mkdir "$T/immutable"
im="sqlite:$T/immutable/aj.db"
im_id=$("$AJ_BIN" --db "$im" submit --type echo) || fail "setup submit"
if chattr +i "$T/immutable/aj.db" 2>/dev/null; then
    expect_error 1 "readonly database" "$AJ_BIN" --db "$im" submit --type echo
    expect_error 1 "cannot cancel job $im_id" "$AJ_BIN" --db "$im" job cancel "$im_id"
    expect_ok "$AJ_BIN" --db "$im" job show "$im_id" --json
    expect_eq ready "$(jget state)" "the job in the unwritable store"
    expect_ok "$AJ_BIN" --db "$im" stats --json
    expect_eq 1 "$(jget jobs.ready)" "nothing changed in the unwritable store"
    chattr -i "$T/immutable/aj.db"
fi

echo "PASS test_bad_input"
