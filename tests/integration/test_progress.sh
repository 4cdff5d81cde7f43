#!/usr/bin/env bash
# test_progress.sh — job progress through the real binary: a shell job writes lines to
# $AJ_PROGRESS_FD; `aj job progress ID` prints it (text and --json); `--follow` prints each
# change while the job runs and ends when the job is final, with the exit code of the outcome;
# malformed lines are counted, never fatal; bad input and unknown jobs exit 2 and 3.
source "${AJ_TEST_LIB:?}"

# A job that reports in stages, pausing long enough for each stage to be flushed and seen.
id=$(submit --queue p -- sh -c '
    p() { echo "$*" >&"$AJ_PROGRESS_FD"; }
    p step extract; p progress 20 reading input; p count rows 100
    sleep 1
    p not a progress line; p progress 200; p step load; p progress 60 writing; p count rows 50
    sleep 1
    p count errors 2; p progress 100 done
    echo finished')

# Before a worker runs it: nothing reported yet.
expect_ok aj job progress "$id" --json
expect_eq ready "$(jget state)" "state before running"
expect_eq null "$(jget percent)" "no percentage before any report"
expect_eq "[]" "$(jget steps_done)" "no steps before any report"
expect_eq "{}" "$(jget counters)" "no counters before any report"

start_worker --queue p
run timeout 60 "$AJ_BIN" --db "$DB" job progress "$id" --follow --json
[ "$RC" = 0 ] || fail "job progress --follow exited $RC"
FOLLOW=$OUT
lines=$(printf '%s\n' "$FOLLOW" | wc -l)
[ "$lines" -ge 3 ] || fail "--follow printed $lines lines, expected the stages as they happened"
last=$(printf '%s\n' "$FOLLOW" | tail -n 1)
expect_eq completed "$(jget state "$last")" "--follow ends with the final state"
expect_eq 100 "$(jget percent "$last")" "--follow last percent"
printf '%s\n' "$FOLLOW" | grep -q '"percent":20' || fail "--follow never showed 20%"
printf '%s\n' "$FOLLOW" | grep -q '"percent":60' || fail "--follow never showed 60%"
# Every line is one JSON object, and nothing repeats.
dups=$(printf '%s\n' "$FOLLOW" | sort | uniq -d | wc -l)
expect_eq 0 "$dups" "--follow prints a state once"
stop_worker

expect_ok aj job progress "$id" --json
expect_eq "$id" "$(jget id)" "id"
expect_eq completed "$(jget state)" "state"
expect_eq 100 "$(jget percent)" "percent"
expect_eq done "$(jget message)" "message"
expect_eq load "$(jget step)" "current step"
expect_eq '["extract","load"]' "$(jget steps_done)" "completed steps, in order"
expect_eq 150 "$(jget counters.rows)" "counter rows"
expect_eq 2 "$(jget counters.errors)" "counter errors"
expect_eq 2 "$(jget malformed_lines)" "malformed lines are counted"
[ "$(jget updated_at)" != null ] || fail "updated_at"
expect_eq completed "$(job_field "$id" state)" "malformed lines are not fatal"
expect_ok aj job progress "$id"
expect_line '^percent: +100%$' "$OUT" "text: percent"
expect_line '^steps done: +extract, load$' "$OUT" "text: steps done"
expect_line '^counters: +errors=2 rows=150$' "$OUT" "text: counters"
expect_line '^malformed lines: +2$' "$OUT" "text: malformed"

# --follow on a finished job prints once and exits at once; text mode is one line.
expect_ok aj job progress "$id" --follow
expect_eq "completed 100% step load (2 done) errors=2 rows=150 - done" "$OUT" "--follow text line"

# A job that dies: --follow exits 4, like `aj job wait`.
dead=$(submit --queue p --max-attempts 1 -- sh -c 'echo "progress 33.5 halfway" >&3; exit 4')
drain --queue p
expect_exit 4 aj job progress "$dead" --follow --json
expect_eq 33.5 "$(jget percent)" "a dead job keeps its progress"
expect_eq dead "$(jget state)" "dead job state"

# Bad input and unknown jobs.
expect_error 3 "job 999999 not found" aj job progress 999999
expect_error 3 "job 999999 not found" aj job progress 999999 --follow
expect_error 2 "job id 'x' is not a positive decimal integer" aj job progress x
expect_exit 2 aj job progress
expect_exit 2 aj job progress "$id" --bogus
expect_ok aj job progress --help
expect_contains "$OUT" "AJ_PROGRESS_FD" "help documents the descriptor"

# Progress goes with its job.
expect_ok aj dlq purge "$dead"
expect_error 3 "not found" aj job progress "$dead"
expect_ok aj check

echo "PASS test_progress"
