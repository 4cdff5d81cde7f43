#!/usr/bin/env bash
# test_output_fail.sh — a command that committed a change and then cannot print its outcome
# (stdout closed, a full disk, a closed pipe) exits 5, names what it committed on stderr, and
# never exits 1 (store error), which would make a caller retry and submit twice. A command that
# changed nothing still exits 1 when its output fails.
source "${AJ_TEST_LIB:?}"

# run_closed CMD...: runs CMD with stdout closed; stderr in $ERR, exit code in $RC.
run_closed() {
    "$@" >&- 2>"$T/.err"
    RC=$?
    OUT=""
    ERR=$(cat "$T/.err")
}

# run_full CMD...: runs CMD with stdout on /dev/full (every write fails with ENOSPC).
run_full() {
    "$@" >/dev/full 2>"$T/.err"
    RC=$?
    OUT=""
    ERR=$(cat "$T/.err")
}

# expect_committed WHAT: the last command exited 5 with one stderr line naming WHAT.
expect_committed() {
    [ "$RC" = 5 ] || fail "expected exit 5 (done, output failed), got $RC"
    [ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "expected one stderr line"
    expect_match "^aj: $1, but writing the output failed: " "$ERR" "the report names the change"
}

# total: the number of jobs in the store.
total() {
    local s
    s=$(aj stats --json) || fail "aj stats failed"
    perl -MJSON::PP -e 'my $j = decode_json($ARGV[0])->{jobs}; my $s = 0; $s += $_ for values %$j; print $s' "$s"
}

# --- aj submit, stdout closed: the job exists once, its id is on stderr. ---
run_closed aj submit --type echo --payload '{"n":1}'
expect_committed 'submitted job [1-9][0-9]*'
id=${ERR#aj: submitted job }
id=${id%%,*}
expect_eq 1 "$(total)" "one job after a submit whose output failed"
expect_eq '{"n":1}' "$(job_field "$id" payload)" "the job named on stderr"

# --- The same with --json, and with --payload-lines (every committed id is named). ---
run_closed aj submit --json --type echo
expect_committed 'submitted job [1-9][0-9]*'
seq 5 >"$T/lines"
run_closed aj submit --type echo --payload-lines "$T/lines"
expect_committed 'submitted jobs [1-9][0-9]*-[1-9][0-9]*'
expect_eq 7 "$(total)" "jobs after --payload-lines"
range=${ERR#aj: submitted jobs }
range=${range%%,*}
first=${range%-*}
last=${range#*-}
expect_eq 4 "$((last - first))" "the range names five jobs"
for ((i = first; i <= last; i++)); do
    expect_ok aj job show "$i" --json
    expect_eq "$((i - first + 1))" "$(jget payload)" "job $i of the lines"
done

# --- A full disk (ENOSPC at the final flush). ---
if [ -w /dev/full ]; then
    run_full aj submit --type echo
    expect_committed 'submitted job [1-9][0-9]*'
    run_full aj submit --type echo --payload-lines "$T/lines"
    expect_committed 'submitted jobs [1-9][0-9]*-[1-9][0-9]*'
    expect_eq 13 "$(total)" "jobs after the /dev/full submits"
    # A command that only reads still reports a store-independent output error as exit 1.
    run_full aj job ls
    expect_eq 1 "$RC" "job ls with a full stdout"
    expect_match '^aj: cannot write to stdout: ' "$ERR" "job ls's error"
fi

# --- A closed pipe: no death by SIGPIPE after the commit. The reader closes its end as soon as
# the fifo is open, long before aj has opened its store. ---
mkfifo "$T/fifo"
(exec 3<"$T/fifo") &
_AJ_PIDS+=("$!")
aj submit --type echo >"$T/fifo" 2>"$T/.err"
RC=$?
ERR=$(cat "$T/.err")
expect_committed 'submitted job [1-9][0-9]*'

# --- The other commands that create or change something. ---
n=$(total)
printf '{"jobs":[{"name":"a","type":"echo"},{"name":"b","type":"echo","after":["a"]}]}\n' >"$T/g.json"
run_closed aj dag submit "$T/g.json"
expect_committed 'submitted jobs [1-9][0-9]*-[1-9][0-9]*'
expect_eq "$((n + 2))" "$(total)" "jobs after dag submit"

run_closed aj wf start saga --id w-1 --input '{"steps":[{"name":"s","type":"echo","payload":1}]}'
expect_committed 'started workflow w-1'
expect_ok aj wf show w-1 --json

run_closed aj schedule add nightly --cron '0 3 * * *' --type echo
expect_committed "added schedule 'nightly'"
expect_ok aj schedule show nightly

n=$(total)
run_closed aj schedule trigger nightly
expect_committed 'submitted job [1-9][0-9]*'
expect_eq "$((n + 1))" "$(total)" "jobs after schedule trigger"

dead=$(submit --queue dq -- sh -c 'exit 100')
drain --queue dq
expect_eq dead "$(job_field "$dead" state)" "the job to redrive"
run_closed aj dlq redrive "$dead"
expect_committed "redrove job $dead"
expect_eq ready "$(job_field "$dead" state)" "the redriven job"

# A store error is still exit 1, output or not.
run_closed "$AJ_BIN" --db "sqlite:$T/missing/aj.db" submit --type echo
expect_eq 1 "$RC" "a store error with stdout closed"

echo "PASS test_output_fail"
