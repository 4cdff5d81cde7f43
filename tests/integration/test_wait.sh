#!/usr/bin/env bash
# test_wait.sh — `aj submit --wait` and `aj job wait` exit 0 only for a completed job and 4 for a
# dead or cancelled one (or a timeout); a worker stops cleanly on SIGTERM and SIGINT.
source "${AJ_TEST_LIB:?}"

start_worker --concurrency 2

# submit --wait: the id first, then the outcome.
expect_ok aj submit --wait -- sh -c 'echo fine'
expect_match '^[1-9][0-9]*$' "$OUT" "submit --wait prints the id"
expect_eq completed "$(job_field "$OUT" state)" "submit --wait returned after completion"

expect_exit 4 aj submit --wait -- sh -c 'exit 100'
dead=$OUT
expect_match '^[1-9][0-9]*$' "$dead" "submit --wait prints the id of a job that died"
expect_eq 1 "$(printf '%s\n' "$ERR" | wc -l)" "one error line"
expect_contains "$ERR" "aj: job $dead ended dead (permanent_failure)" "submit --wait error"

expect_exit 4 aj submit --wait --max-attempts 2 --backoff fixed:10ms -- false
expect_contains "$ERR" "(max_attempts)" "submit --wait after retries"
expect_eq 2 "$(job_field "$OUT" attempts)" "attempts before --wait returned"

expect_ok aj submit --wait --json --type echo --payload 7
expect_match '^\{"id":[1-9][0-9]*\}$' "$OUT" "submit --wait --json"

printf '1\n2\n3\n' >"$T/lines"
expect_ok aj submit --wait --type echo --payload-lines "$T/lines"
expect_eq 3 "$OUT" "submit --wait --payload-lines"

# job wait: prints the final state.
ok=$(submit --type echo)
expect_ok aj job wait "$ok"
expect_eq completed "$OUT" "job wait prints the state"
expect_ok aj job wait "$ok" --json
expect_eq completed "$(jget state)" "job wait --json"
expect_eq "$ok" "$(jget id)" "job wait --json id"
expect_exit 4 aj job wait "$dead"
expect_eq dead "$OUT" "job wait of a dead job"
expect_contains "$ERR" "ended dead (permanent_failure)" "job wait of a dead job"

# A timeout: exit 4 with the current state.
later=$(submit --type echo --delay 1h)
expect_exit 4 aj job wait "$later" --timeout 300ms
expect_eq scheduled "$OUT" "job wait --timeout prints the current state"
expect_contains "$ERR" "still scheduled after 300ms" "job wait --timeout error"

# A job cancelled while someone waits for it.
"$AJ_BIN" --db "$DB" job wait "$later" >"$T/wait.out" 2>"$T/wait.err" &
waiter=$!
_AJ_PIDS+=("$waiter")
sleep 0.3
expect_ok aj job cancel "$later"
wait "$waiter"
expect_eq 4 "$?" "job wait of a job cancelled meanwhile"
expect_eq cancelled "$(cat "$T/wait.out")" "job wait output of a cancelled job"
expect_exit 3 aj job wait 99999999

# SIGTERM: the worker stops and exits 0; SIGINT likewise.
stop_worker TERM
grep -q 'msg="stopping" signal=SIGTERM' "$T/worker.log" || fail "no stopping line in the log"
start_worker
wait_for 10 grep -q 'msg=serving' "$T/worker.log"
sleep 0.2
stop_worker INT
grep -q 'signal=SIGINT' "$T/worker.log" || fail "no SIGINT line in the log"

# A job submitted while a worker runs starts soon (wake-up, not polling).
start_worker
fast=$(submit --type echo)
expect_ok aj job wait "$fast" --timeout 10s
stop_worker TERM

echo "PASS test_wait"
