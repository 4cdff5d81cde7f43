#!/usr/bin/env bash
# test_fencing_log.sh — a worker whose lease was taken back while it was frozen (SIGSTOP) sends
# its late outcome when it resumes; fencing refuses it, and the worker says so in its log (it
# used to drop the outcome without a line).
source "${AJ_TEST_LIB:?}"

id=$(submit --queue fq --lease 1s --max-attempts 1 -- sh -c 'sleep 3; echo late')
start_worker --queue fq --concurrency 1
frozen=$WORKER_PID
wait_for 60 state_is "$id" running
kill -STOP "$frozen"
# Another worker (serving another queue) reaps the expired lease: max 1 attempt, so dead.
"$AJ_BIN" --db "$DB" worker --queue elsewhere 2>>"$T/reaper.log" &
reaper=$!
_AJ_PIDS+=("$reaper")
wait_for 60 state_is "$id" dead
expect_eq lease_expired "$(job_field "$id" dead_reason)" "the reaped job's reason"
kill -CONT "$frozen"
# The frozen worker learns at its next heartbeat (or when the program ends) that the lease is
# gone; its outcome is refused and logged.
wait_for 60 grep -q "job outcome refused" "$T/worker.log"
line=$(grep "job outcome refused" "$T/worker.log")
expect_contains "$line" "level=warn" "the refusal's level"
expect_contains "$line" "stale epoch" "the refusal's reason"
expect_contains "$line" "job=$id " "the refusal names the job"
expect_eq dead "$(job_field "$id" state)" "the late outcome changed nothing"
stop_worker TERM
WORKER_PID=$reaper
stop_worker TERM

echo "PASS test_fencing_log"
